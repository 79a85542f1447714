//! The `#[mtgnet::service]` attribute: one Rust trait is the contract of an
//! MTGNet service, and renders both ends of it.
//!
//! Use it through the `mtgnet` crate (`mtgnet::service`), whose docs show it
//! running; the generated code names `::mtgnet` paths. From a trait `Math`
//! of `async fn` methods it writes:
//!
//! ```text
//!   trait Math          the same methods, each `-> impl Future<Output = …> + Send`
//!   MathServer<T>       wraps a `T: Math`; `Into<mtgnet::Service>` (render_server.rs)
//!   MathClient          typed stub over an `mtgnet::Client` (render_client.rs)
//!   MathNotify<'_>      the same methods as notifications
//!   MathBatch<'_>       the same methods as calls added to an `mtgnet::Batch`
//! ```
//!
//! Every mistake in the trait is reported at the token that makes it
//! (`tests/ui/`); nothing else is generated then.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemTrait, ReturnType, TraitItem, parse_macro_input};

mod model;
mod render_client;
mod render_server;

use model::{ServiceArgs, ServiceDef};

/// Turns a trait of `async fn` methods into an MTGNet service: the trait
/// (with `Send` futures), a server adapter `<Trait>Server<T>` and a client
/// stub `<Trait>Client`. See `mtgnet::service` for the full description
/// and an example.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemTrait);
    let expanded = ServiceArgs::parse(args.into())
        .and_then(|args| ServiceDef::parse(args, &item))
        .map(|def| {
            let service_trait = render_trait(item, &def);
            let server = render_server::render(&def);
            let client = render_client::render(&def);
            quote! {
                #service_trait
                #server
                #client
            }
        });
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// The trait as written, each `async fn` turned into a method returning a
/// `Send` future, so that implementors may still write `async fn` and the
/// server can run the calls on any thread.
fn render_trait(mut item: ItemTrait, def: &ServiceDef) -> proc_macro2::TokenStream {
    let mtgnet_doc = format!(
        "\n\nAn MTGNet service (`{}` on the wire): serve it with [`{}Server`], call it with [`{}Client`].",
        def.wire_name, def.ident, def.ident
    );
    item.attrs.push(syn::parse_quote!(#[doc = #mtgnet_doc]));
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        method.attrs.retain(|a| !model::is_method_attr(a));
        method.sig.asyncness = None;
        let output = match &method.sig.output {
            ReturnType::Type(_, ty) => quote!(#ty),
            ReturnType::Default => quote!(()),
        };
        method.sig.output = syn::parse_quote! {
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
    }
    quote!(#item)
}
