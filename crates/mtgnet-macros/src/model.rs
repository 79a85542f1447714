//! The service trait read into a model, every check done here so that the
//! renderers only write code: each mistake is a `syn::Error` at the token
//! that makes it.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemTrait, Lit, LitStr, Meta, Pat,
    PathArguments, ReturnType, Signature, TraitItem, TraitItemFn, Type, Visibility,
};

/// The most arguments a method may take: `FromArgs` is implemented for
/// tuples of up to eight values.
const MAX_ARGS: usize = 8;

/// Method names every service answers by itself (compared case-insensitively).
const BUILTIN_METHODS: [&str; 3] = ["methods", "describeMethod", "version"];

/// Names the client stub defines itself; a method cannot take them.
const STUB_NAMES: [&str; 4] = ["new", "client", "notify", "batch"];

/// What `#[mtgnet::service(...)]` says.
#[derive(Default)]
pub(crate) struct ServiceArgs {
    /// The wire name, when not the trait's.
    pub(crate) name: Option<LitStr>,
    /// `version = "1.0"`: its integer code and its text.
    pub(crate) version: Option<(i64, String)>,
}

impl ServiceArgs {
    /// Reads the attribute's arguments.
    pub(crate) fn parse(args: proc_macro2::TokenStream) -> syn::Result<ServiceArgs> {
        let mut parsed = ServiceArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let name: LitStr = meta.value()?.parse()?;
                if name.value().is_empty() {
                    return Err(syn::Error::new_spanned(
                        name,
                        "the service name cannot be empty",
                    ));
                }
                parsed.name = Some(name);
                Ok(())
            } else if meta.path.is_ident("version") {
                let version: LitStr = meta.value()?.parse()?;
                let text = version.value();
                let code = text
                    .split('.')
                    .next()
                    .and_then(|major| major.parse::<i64>().ok())
                    .ok_or_else(|| {
                        syn::Error::new_spanned(
                            &version,
                            "a version starts with its integer code, like \"1.0\" or \"2\"",
                        )
                    })?;
                parsed.version = Some((code, text));
                Ok(())
            } else {
                Err(meta
                    .error("unknown argument: expected `name = \"...\"` or `version = \"...\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, args)?;
        Ok(parsed)
    }
}

/// A service trait, checked.
pub(crate) struct ServiceDef {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// The name on the wire.
    pub(crate) wire_name: String,
    pub(crate) version: Option<(i64, String)>,
    /// The trait's doc comment: `describeService`'s description.
    pub(crate) doc: String,
    pub(crate) methods: Vec<MethodDef>,
}

/// One method of a service trait, checked.
pub(crate) struct MethodDef {
    pub(crate) ident: Ident,
    /// The name on the wire.
    pub(crate) wire_name: String,
    /// The doc comment: `describeMethod`'s text.
    pub(crate) doc: String,
    /// Whether it takes `ctx: &Context` after `&self`.
    pub(crate) context: bool,
    /// The arguments sent on the wire, in order.
    pub(crate) args: Vec<(Ident, Type)>,
    /// `T` of `Result<T, E>`.
    pub(crate) ok: Type,
}

impl ServiceDef {
    /// Checks the trait and reads it, collecting every error.
    pub(crate) fn parse(args: ServiceArgs, item: &ItemTrait) -> syn::Result<ServiceDef> {
        let mut errors = Errors::default();
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.push(syn::Error::new_spanned(
                &item.generics,
                "a service trait cannot be generic: its methods' types are the wire contract",
            ));
        }
        let mut methods: Vec<MethodDef> = Vec::new();
        for trait_item in &item.items {
            let TraitItem::Fn(method) = trait_item else {
                errors.push(syn::Error::new_spanned(
                    trait_item,
                    "a service trait holds only `async fn` methods",
                ));
                continue;
            };
            match MethodDef::parse(method) {
                Ok(def) => {
                    if STUB_NAMES.iter().any(|n| def.ident == n) {
                        errors.push(syn::Error::new_spanned(
                            &def.ident,
                            format!(
                                "the client stub has its own `{}`: name the method otherwise and keep its wire name with `#[method(name = \"...\")]`",
                                def.ident
                            ),
                        ));
                    } else if let Some(builtin) = BUILTIN_METHODS
                        .iter()
                        .find(|b| b.eq_ignore_ascii_case(&def.wire_name))
                    {
                        errors.push(syn::Error::new_spanned(
                            &def.ident,
                            format!(
                                "every service answers `{builtin}` by itself: give this method another name, or `#[method(name = \"...\")]`"
                            ),
                        ));
                    } else if let Some(first) = methods
                        .iter()
                        .find(|m| m.wire_name.eq_ignore_ascii_case(&def.wire_name))
                    {
                        errors.push(syn::Error::new_spanned(
                            &def.ident,
                            format!(
                                "`{}` is `{}` on the wire, and `{}` is already `{}`: wire names compare case-insensitively",
                                def.ident, def.wire_name, first.ident, first.wire_name
                            ),
                        ));
                    }
                    methods.push(def);
                }
                Err(e) => errors.push(e),
            }
        }
        errors.finish()?;
        Ok(ServiceDef {
            vis: item.vis.clone(),
            ident: item.ident.clone(),
            wire_name: args
                .name
                .map_or_else(|| unraw(&item.ident), |name| name.value()),
            version: args.version,
            doc: doc_text(&item.attrs),
            methods,
        })
    }
}

impl MethodDef {
    fn parse(method: &TraitItemFn) -> syn::Result<MethodDef> {
        let sig = &method.sig;
        let mut errors = Errors::default();
        check_signature_shape(sig, &mut errors);
        if let Some(body) = &method.default {
            errors.push(syn::Error::new_spanned(
                body,
                "a service method has no default body: the implementing type provides it",
            ));
        }
        let mut inputs = sig.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(receiver))
                if receiver.reference.is_some()
                    && receiver.mutability.is_none()
                    && receiver.colon_token.is_none() => {}
            Some(FnArg::Receiver(receiver)) => errors.push(syn::Error::new_spanned(
                receiver,
                "a service method takes `&self`: calls run concurrently on one shared handler",
            )),
            _ => errors.push(syn::Error::new_spanned(
                &sig.ident,
                "a service method takes `&self` as its first parameter",
            )),
        }
        let mut context = false;
        let mut args = Vec::new();
        for (position, input) in inputs.enumerate() {
            let FnArg::Typed(typed) = input else {
                continue;
            };
            if is_context(&typed.ty) {
                if position == 0 {
                    context = true;
                } else {
                    errors.push(syn::Error::new_spanned(
                        &typed.ty,
                        "`&Context` must be the first parameter after `&self`",
                    ));
                }
                continue;
            }
            let ident = match &*typed.pat {
                Pat::Ident(pat)
                    if pat.by_ref.is_none() && pat.mutability.is_none() && pat.subpat.is_none() =>
                {
                    pat.ident.clone()
                }
                other => {
                    errors.push(syn::Error::new_spanned(
                        other,
                        "an argument is a plain name and a type, like `a: i64`: patterns are not supported",
                    ));
                    continue;
                }
            };
            match &*typed.ty {
                Type::Reference(reference) => errors.push(syn::Error::new_spanned(
                    reference,
                    "arguments are read from JSON into owned values: take `String` for `&str`, `Vec<T>` for `&[T]`",
                )),
                Type::ImplTrait(bound) => errors.push(syn::Error::new_spanned(
                    bound,
                    "a service method cannot be generic: give each argument a concrete type",
                )),
                _ => {}
            }
            args.push((ident, (*typed.ty).clone()));
        }
        if args.len() > MAX_ARGS {
            errors.push(syn::Error::new_spanned(
                &sig.inputs,
                format!("a service method takes at most {MAX_ARGS} arguments"),
            ));
        }
        let ok = match result_ok_type(sig) {
            Ok(ok) => Some(ok),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let wire_name = method_name(&method.attrs, &mut errors);
        errors.finish()?;
        Ok(MethodDef {
            ident: sig.ident.clone(),
            wire_name: wire_name.unwrap_or_else(|| lower_camel_case(&unraw(&sig.ident))),
            doc: doc_text(&method.attrs),
            context,
            args,
            // `None` only with an error pushed, returned just above.
            ok: ok.ok_or_else(|| syn::Error::new(Span::call_site(), "no result type"))?,
        })
    }
}

/// `async`, not generic, no `unsafe`/`const`/`extern`/variadics.
fn check_signature_shape(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        let tokens = {
            let fn_token = &sig.fn_token;
            let ident = &sig.ident;
            quote::quote!(#fn_token #ident)
        };
        errors.push(syn::Error::new_spanned(
            tokens,
            "a service method must be `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a service method cannot be generic: its argument and result types are the wire contract",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a service method cannot be `unsafe`",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a service method cannot be `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a service method cannot have an `extern` ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a service method cannot be variadic",
        ));
    }
}

/// Whether `ty` is `&Context` (any path ending in `Context`).
fn is_context(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    let Type::Path(path) = &*reference.elem else {
        return false;
    };
    reference.mutability.is_none()
        && path.qself.is_none()
        && path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" && s.arguments.is_none())
}

/// `T` of a return type written `Result<T, E>`.
fn result_ok_type(sig: &Signature) -> syn::Result<Type> {
    const MESSAGE: &str =
        "a service method returns `Result<T, E>` (with `E: Into<Condition>`), written out as such";
    let ReturnType::Type(_, ty) = &sig.output else {
        return Err(syn::Error::new_spanned(
            sig,
            format!("{MESSAGE}; this one returns nothing"),
        ));
    };
    let Type::Path(path) = &**ty else {
        return Err(syn::Error::new_spanned(ty, MESSAGE));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(syn::Error::new_spanned(ty, MESSAGE));
    };
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(syn::Error::new_spanned(ty, MESSAGE));
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match (last.ident == "Result", types.as_slice()) {
        (true, [ok, _err]) => Ok((*ok).clone()),
        _ => Err(syn::Error::new_spanned(ty, MESSAGE)),
    }
}

/// `#[method(name = "...")]`, if given.
fn method_name(attrs: &[Attribute], errors: &mut Errors) -> Option<String> {
    let mut name = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("method")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                if value.value().is_empty() {
                    return Err(syn::Error::new_spanned(
                        value,
                        "a method name cannot be empty",
                    ));
                }
                name = Some(value.value());
                Ok(())
            } else {
                Err(meta.error("unknown argument: expected `name = \"...\"`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    name
}

/// Whether an attribute is this macro's own (`#[method(...)]`), not to be
/// written back on the trait.
pub(crate) fn is_method_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("method")
}

/// A doc comment's text: one line per `///` line, the one space after
/// `///` dropped, blank lines around it trimmed.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            text.lines()
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// An identifier without its `r#`.
fn unraw(ident: &Ident) -> String {
    let text = ident.to_token_stream().to_string();
    text.strip_prefix("r#").map_or(text.clone(), str::to_owned)
}

/// `who_am_i` -> `whoAmI`; `echo` -> `echo`.
pub(crate) fn lower_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.trim_start_matches('_').chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Errors collected so that one expansion reports every mistake.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_becomes_lower_camel_case() {
        assert_eq!(lower_camel_case("who_am_i"), "whoAmI");
        assert_eq!(lower_camel_case("echo"), "echo");
        assert_eq!(lower_camel_case("describe_service"), "describeService");
        assert_eq!(lower_camel_case("_private_thing"), "privateThing");
    }

    #[test]
    fn doc_lines_lose_one_leading_space_and_outer_blank_lines() {
        let item: ItemTrait = syn::parse_quote! {
            ///
            /// Adds two integers.
            ///   Indented.
            ///
            trait T {}
        };
        assert_eq!(doc_text(&item.attrs), "Adds two integers.\n  Indented.");
    }

    #[test]
    fn version_code_is_the_leading_integer() {
        let args =
            ServiceArgs::parse(quote::quote!(name = "Math", version = "2.1")).expect("valid");
        assert_eq!(args.version, Some((2, "2.1".to_owned())));
        assert!(ServiceArgs::parse(quote::quote!(version = "one")).is_err());
        assert!(ServiceArgs::parse(quote::quote!(colour = "blue")).is_err());
    }
}
