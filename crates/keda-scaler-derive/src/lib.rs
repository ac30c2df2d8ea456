//! `#[derive(ScalerMetadata)]`: each field of a scaler's metadata struct declares one trigger
//! parameter with `#[param(..)]` — its name, aliases, sources, default or optionality, allowed
//! values, separator, deprecation. The derive writes the calls into `keda_scaler::params` that a
//! scaler used to write by hand (same order, same semantics, same error texts) and the parameter
//! table that `keda-rs scalers --schema` prints in the shape of KEDA's `scalers-schema.yaml`.
//!
//! Field attributes:
//! - `name = "listName"` (required), `alias = "other"` (repeatable);
//! - `from = METADATA_AUTH_ENV`: a source list from `keda_scaler::params`, or a path to one of the
//!   caller's own (default: metadata only);
//! - `default = <expr>`: used when absent (a string literal is converted like a given value, as
//!   KEDA's `default=` text is); without it, an `Option<T>` field is optional and any
//!   other field is required; `optional` marks a defaulted parameter optional in the table too
//!   (KEDA's `optional, default=…`);
//! - `one_of = ["a", "b"]`, `exclusive = ["a", "b"]`, `separator = ';'`;
//! - `deprecated = "message"` (using it is an error), `deprecated_announce = "message"` (a literal
//!   or a `&'static str` constant);
//! - an `Option<Found<T>>` field keeps the name the value was found under;
//! - `flatten`: the field is itself `ScalerMetadata` (a shared parameter group) and parses in place.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, ExprArray, Fields, Lit, LitStr, Path, Type, parse_macro_input};

/// See the crate documentation.
#[proc_macro_derive(ScalerMetadata, attributes(param))]
pub fn derive_scaler_metadata(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct ParamAttr {
    name: Option<LitStr>,
    aliases: Vec<LitStr>,
    from: Option<Path>,
    default: Option<Expr>,
    one_of: Option<ExprArray>,
    exclusive: Option<ExprArray>,
    separator: Option<Lit>,
    deprecated: Option<Expr>,
    announce: Option<Expr>,
    flatten: bool,
    optional: bool,
}

fn parse_attr(field: &syn::Field) -> syn::Result<ParamAttr> {
    let mut attr = ParamAttr::default();
    let mut seen = false;
    for a in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        seen = true;
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                attr.name = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("alias") {
                attr.aliases.push(meta.value()?.parse()?);
            } else if meta.path.is_ident("from") {
                attr.from = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("default") {
                attr.default = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("one_of") {
                attr.one_of = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("exclusive") {
                attr.exclusive = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("separator") {
                attr.separator = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("deprecated") {
                attr.deprecated = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("deprecated_announce") {
                attr.announce = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("flatten") {
                attr.flatten = true;
            } else if meta.path.is_ident("optional") {
                attr.optional = true;
            } else {
                return Err(meta.error("unknown #[param] key"));
            }
            Ok(())
        })?;
    }
    if !seen {
        return Err(syn::Error::new(
            field.span(),
            "every field needs #[param(name = \"…\")] or #[param(flatten)]",
        ));
    }
    if !attr.flatten && attr.name.is_none() {
        return Err(syn::Error::new(field.span(), "#[param] needs name = \"…\""));
    }
    Ok(attr)
}

/// `Option<T>` → `Some(T)`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

fn is_found(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Found"))
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "ScalerMetadata needs a struct",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "ScalerMetadata needs named fields",
        ));
    };
    let core = quote!(::keda_scaler::params);
    let mut inits = Vec::new();
    let mut infos = Vec::new();
    for field in &fields.named {
        let ident = field
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new(field.span(), "unnamed field"))?;
        let attr = parse_attr(field)?;
        let ty = &field.ty;
        if attr.flatten {
            inits.push(quote!(#ident: <#ty as #core::FromParams>::from_params(p)));
            infos.push(quote!(params.extend(<#ty as #core::FromParams>::params());));
            continue;
        }
        let Some(name) = &attr.name else { continue };
        let mut call = quote!(p.param(#name));
        for alias in &attr.aliases {
            call = quote!(#call.alias(#alias));
        }
        // A bare name is one of keda_scaler::params' source lists; a path is the caller's own.
        let sources = match &attr.from {
            Some(path) if path.segments.len() == 1 => quote!(#core::#path),
            Some(path) => quote!(#path),
            None => quote!(#core::METADATA),
        };
        if attr.from.is_some() {
            call = quote!(#call.from(#sources));
        }
        let allowed = match &attr.one_of {
            Some(values) => {
                call = quote!(#call.one_of(&#values));
                quote!(&#values)
            }
            None => quote!(&[]),
        };
        let exclusive = match &attr.exclusive {
            Some(values) => {
                call = quote!(#call.exclusive(&#values));
                quote!(&#values)
            }
            None => quote!(&[]),
        };
        let separator = match &attr.separator {
            Some(sep) => {
                call = quote!(#call.separator(#sep));
                quote!(::core::option::Option::Some(#sep))
            }
            None => quote!(::core::option::Option::None),
        };
        let deprecated = match &attr.deprecated {
            Some(message) => {
                call = quote!(#call.deprecated(#message));
                quote!(::core::option::Option::Some(#message))
            }
            None => quote!(::core::option::Option::None),
        };
        let announce = match &attr.announce {
            Some(message) => {
                call = quote!(#call.deprecated_announce(#message));
                quote!(::core::option::Option::Some(#message))
            }
            None => quote!(::core::option::Option::None),
        };
        let explicit_optional = attr.optional;
        let (value, optional, default) = match (&attr.default, option_inner(ty)) {
            (
                Some(Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(text),
                    ..
                })),
                _,
            ) => {
                let shown = text.value();
                (
                    quote!(#call.with_default_text(#text)),
                    explicit_optional,
                    quote!(::core::option::Option::Some(#shown)),
                )
            }
            (Some(default), _) => {
                let shown = default_text(default);
                (
                    quote!(#call.with_default(#default)),
                    explicit_optional,
                    quote!(::core::option::Option::Some(#shown)),
                )
            }
            // `Option<Found<T>>` keeps the name the value was found under (for follow-up errors).
            (None, Some(inner)) if is_found(inner) => (
                quote!(#call.found()),
                true,
                quote!(::core::option::Option::None),
            ),
            (None, Some(_)) => (
                quote!(#call.optional()),
                true,
                quote!(::core::option::Option::None),
            ),
            (None, None) => (
                quote!(#call.required()),
                false,
                quote!(::core::option::Option::None),
            ),
        };
        inits.push(quote!(#ident: #value));
        let aliases = &attr.aliases;
        infos.push(quote! {
            params.push(#core::ParamInfo {
                name: #name,
                aliases: &[#(#aliases),*],
                sources: #sources,
                optional: #optional,
                default: #default,
                allowed: #allowed,
                exclusive: #exclusive,
                separator: #separator,
                deprecated: #deprecated,
                deprecated_announce: #announce,
            });
        });
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let params_ident = format_ident!("params");
    Ok(quote! {
        impl #impl_generics #core::FromParams for #name #ty_generics #where_clause {
            fn from_params(p: &mut #core::MetadataParser<'_>) -> Self {
                Self { #(#inits),* }
            }

            fn params() -> ::std::vec::Vec<#core::ParamInfo> {
                let mut #params_ident = ::std::vec::Vec::new();
                #(#infos)*
                #params_ident
            }
        }
    })
}

/// The default as the schema shows it: `5`, `0.5`, `true`, or the expression's tokens.
fn default_text(default: &Expr) -> String {
    match default {
        Expr::Lit(syn::ExprLit { lit, .. }) => match lit {
            Lit::Int(i) => i.base10_digits().to_owned(),
            Lit::Float(f) => f.base10_digits().to_owned(),
            Lit::Bool(b) => b.value.to_string(),
            Lit::Char(c) => c.value().to_string(),
            other => quote!(#other).to_string(),
        },
        Expr::Unary(u) => quote!(#u).to_string().replace(' ', ""),
        other => quote!(#other).to_string(),
    }
}
