//! The server adapter: `<Trait>Server<T>`, which turns a handler `T` into
//! an `mtgnet::Service` whose methods decode their arguments, call `T`, and
//! turn its error into a `Condition`.
//!
//! Each method is registered with `Service::method_with_context`, exactly
//! as a hand-written closure would be: the call costs what the closure
//! builder costs (one boxed future), plus one reference count.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::{MethodDef, ServiceDef};

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    let vis = &def.vis;
    let service_trait = &def.ident;
    let server = format_ident!("{}Server", def.ident);
    let wire_name = &def.wire_name;
    let description = &def.doc;
    let version = def
        .version
        .as_ref()
        .map(|(code, name)| quote!(.version(#code, #name)));
    let methods = def.methods.iter().map(|m| render_method(service_trait, m));
    let doc = format!(
        "Serves [`{service_trait}`] as the MTGNet service `{wire_name}`: \
         `Registry::new().with({server}::new(handler))`.\n\n\
         Calls run concurrently on one shared handler, so the handler keeps \
         its state behind `&self` (atomics, locks, channels)."
    );
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #server<T> {
            handler: T,
        }

        impl<T> #server<T> {
            /// Serves `handler`'s methods.
            #vis fn new(handler: T) -> Self {
                #server { handler }
            }

            /// The handler.
            #vis fn handler(&self) -> &T {
                &self.handler
            }
        }

        impl<T> ::core::convert::From<#server<T>> for ::mtgnet::Service
        where
            T: #service_trait + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn from(server: #server<T>) -> ::mtgnet::Service {
                let handler = ::std::sync::Arc::new(server.handler);
                let service = ::mtgnet::Service::new(#wire_name)
                    .description(#description)
                    #version;
                #(#methods)*
                service
            }
        }
    }
}

/// `let service = service.method_with_context(...)` for one method.
fn render_method(service_trait: &syn::Ident, method: &MethodDef) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire_name;
    let doc = &method.doc;
    let names: Vec<_> = method.args.iter().map(|(name, _)| name).collect();
    let types: Vec<_> = method.args.iter().map(|(_, ty)| ty).collect();
    let (ctx_param, ctx_arg) = if method.context {
        (quote!(ctx), quote!(&ctx,))
    } else {
        (quote!(_), quote!())
    };
    quote! {
        let service = {
            let handler = ::std::sync::Arc::clone(&handler);
            service.method_with_context(
                #wire_name,
                #doc,
                move |#ctx_param: ::mtgnet::Context, (#(#names,)*): (#(#types,)*)| {
                    let handler = ::std::sync::Arc::clone(&handler);
                    async move {
                        <T as #service_trait>::#ident(&*handler, #ctx_arg #(#names),*)
                            .await
                            .map_err(::core::convert::Into::<::mtgnet::Condition>::into)
                    }
                },
            )
        };
    }
}
