//! The client side: `<Trait>Client` (typed calls over an `mtgnet::Client`),
//! `<Trait>Notify` (the same methods as notifications) and `<Trait>Batch`
//! (the same methods as typed calls added to an `mtgnet::Batch`).
//!
//! A method's `ctx: &Context` is the server's business: the client side
//! leaves it out.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::{MethodDef, ServiceDef};

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    let vis = &def.vis;
    let service_trait = &def.ident;
    let client = format_ident!("{}Client", def.ident);
    let notify = format_ident!("{}Notify", def.ident);
    let batch = format_ident!("{}Batch", def.ident);
    let wire_name = &def.wire_name;

    let calls = def.methods.iter().map(|m| {
        let (doc, ident, params, wire, args, ok) = parts(m);
        quote! {
            #[doc = #doc]
            #vis async fn #ident(&self, #params) -> ::core::result::Result<#ok, ::mtgnet::CallError> {
                self.client.call(#client::SERVICE, #wire, #args).await
            }
        }
    });
    let notifications = def.methods.iter().map(|m| {
        let (doc, ident, params, wire, args, _) = parts(m);
        quote! {
            #[doc = #doc]
            ///
            /// As a notification: returns once it is queued; no result comes back.
            #vis async fn #ident(&self, #params) -> ::core::result::Result<(), ::mtgnet::CallError> {
                self.client.notify(#client::SERVICE, #wire, #args).await
            }
        }
    });
    let batch_calls = def.methods.iter().map(|m| {
        let (doc, ident, params, wire, args, ok) = parts(m);
        quote! {
            #[doc = #doc]
            ///
            /// Added to the batch as a call; its result is read from the
            /// batch's results with [`BatchCall::result`](::mtgnet::BatchCall::result).
            ///
            /// # Errors
            ///
            /// [`CallError::Arguments`](::mtgnet::CallError::Arguments) when the arguments do not serialize.
            #vis fn #ident(&mut self, #params) -> ::core::result::Result<::mtgnet::BatchCall<#ok>, ::mtgnet::CallError> {
                ::mtgnet::BatchCall::push(self.batch, #client::SERVICE, #wire, #args)
            }
        }
    });

    let client_doc = format!(
        "Calls [`{service_trait}`] (`{wire_name}` on the wire) over an [`mtgnet::Client`]: \
         `{client}::new(client).method(args).await`."
    );
    let notify_doc =
        format!("The methods of [`{service_trait}`] as notifications: see [`{client}::notify`].");
    let batch_doc = format!(
        "The methods of [`{service_trait}`] as typed calls added to an [`mtgnet::Batch`]: see [`{client}::batch`]."
    );
    quote! {
        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            client: ::mtgnet::Client,
        }

        impl #client {
            /// The service's name on the wire.
            #vis const SERVICE: &'static str = #wire_name;

            /// Calls the service over `client` (any connection; clone it to share it).
            #vis fn new(client: ::mtgnet::Client) -> Self {
                #client { client }
            }

            /// The connection the calls go over.
            #vis fn client(&self) -> &::mtgnet::Client {
                &self.client
            }

            /// The same methods, sent as notifications.
            #vis fn notify(&self) -> #notify<'_> {
                #notify { client: &self.client }
            }

            /// The same methods, added as calls to `batch`; send it with
            /// [`Client::batch`](::mtgnet::Client::batch).
            #vis fn batch(batch: &mut ::mtgnet::Batch) -> #batch<'_> {
                #batch { batch }
            }

            #(#calls)*
        }

        #[doc = #notify_doc]
        #[derive(Clone, Copy, Debug)]
        #vis struct #notify<'a> {
            client: &'a ::mtgnet::Client,
        }

        impl #notify<'_> {
            #(#notifications)*
        }

        #[doc = #batch_doc]
        #[derive(Debug)]
        #vis struct #batch<'b> {
            batch: &'b mut ::mtgnet::Batch,
        }

        impl #batch<'_> {
            #(#batch_calls)*
        }
    }
}

/// What every client-side rendering of a method uses: its doc, name,
/// parameters (without the context), wire name, argument tuple, result type.
fn parts(
    m: &MethodDef,
) -> (
    &str,
    &syn::Ident,
    TokenStream,
    &str,
    TokenStream,
    &syn::Type,
) {
    let names: Vec<_> = m.args.iter().map(|(name, _)| name).collect();
    let types: Vec<_> = m.args.iter().map(|(_, ty)| ty).collect();
    (
        &m.doc,
        &m.ident,
        quote!(#(#names: #types),*),
        &m.wire_name,
        quote!((#(#names,)*)),
        &m.ok,
    )
}
