//! `#[on(...)]`: the function keeps its name, arguments and body, so it stays callable and testable as
//! written. Only its future changes type: it comes back as a `Handled<Payload, _>`, which carries the
//! variant's payload type to `ServerBuilder::handle` and `.await`s to what the body returns. The body
//! runs in a nested `async fn` with the user's signature, so argument patterns and `?` behave as written.
//!
//! Type checks are left to rustc through spanned assertions, so errors point at the user's tokens: each
//! argument is checked as an extractor (the last one may be the payload), the return type as the reply.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ReturnType};

use crate::model::{Handler, Target};

pub(crate) fn handler(handler: &Handler) -> TokenStream {
    let item = &handler.item;
    let krate = &handler.krate;
    let (vis, name) = (&item.vis, &item.sig.ident);
    let doc_attrs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let fn_attrs = item.attrs.iter().filter(|a| !a.path().is_ident("doc"));
    let (sig, block) = (&item.sig, &item.block);
    let payload = payload_type(handler);

    let types: Vec<&syn::Type> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(pat) => &*pat.ty,
            FnArg::Receiver(_) => unreachable!("receivers are rejected by check::handler_fn"),
        })
        .collect();
    let args: Vec<Ident> = (0..types.len())
        .map(|i| format_ident!("__ws_arg{i}"))
        .collect();
    let last = types.len().saturating_sub(1);
    let arg_checks = types.iter().enumerate().map(|(i, ty)| {
        if i == last {
            quote_spanned! {ty.span()=> #krate::__private::assert_last_argument::<#ty, #payload, _>(); }
        } else {
            quote_spanned! {ty.span()=> #krate::__private::assert_argument::<#ty, #payload>(); }
        }
    });
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let reply_span = match &sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let reply_check = quote_spanned! {reply_span=>
        #krate::__private::assert_reply::<#output, #payload>();
    };
    let target_check = quote_spanned! {target_span(handler)=>
        #krate::__private::assert_inbound::<#payload>();
    };
    let mut inner_sig = sig.clone();
    inner_sig.ident = format_ident!("__ws_body");
    let inner_name = &inner_sig.ident;
    let duplicate_guard = duplicate_guard(handler);
    quote! {
        #(#doc_attrs)*
        #vis fn #name(#(#args: #types),*) -> #krate::handler::Handled<
            #payload,
            impl ::std::future::Future<Output = #output> + ::std::marker::Send + 'static,
        > {
            #(#fn_attrs)*
            #inner_sig #block

            const _: () = {
                #[allow(dead_code)]
                fn __ws_checks() {
                    #target_check
                    #(#arg_checks)*
                    #reply_check
                }
            };
            #krate::handler::Handled::new(#inner_name(#(#args),*))
        }

        #duplicate_guard
    }
}

/// The payload type named by the target: `<Enum as VariantNamed<hash>>::Payload` for `Enum::Variant`
/// (resolved by rustc, so imports, aliases and other crates work), or the payload type as written. The
/// variant keeps its span, so an unknown variant is reported on the user's token.
fn payload_type(handler: &Handler) -> TokenStream {
    let krate = &handler.krate;
    match &handler.target {
        Target::Payload(path) => quote!(#path),
        Target::Variant { enum_path, variant } => {
            let name = variant.to_string();
            quote_spanned! {variant.span()=>
                <#enum_path as #krate::__private::VariantNamed<{ #krate::__private::variant_hash(#name) }>>::Payload
            }
        }
    }
}

fn target_span(handler: &Handler) -> proc_macro2::Span {
    match &handler.target {
        Target::Payload(path) => path.span(),
        Target::Variant { enum_path, .. } => enum_path.span(),
    }
}

/// A second handler for the same target in the same module is a compile error ("defined multiple times"),
/// reported at the second `#[on(...)]`. Handlers in different modules, or naming one variant two ways,
/// are caught when registered: the builder panics on a second handler for one message type.
fn duplicate_guard(handler: &Handler) -> TokenStream {
    let (path, span) = match &handler.target {
        Target::Payload(path) => (path.clone(), path.span()),
        Target::Variant { enum_path, variant } => {
            let mut path = enum_path.clone();
            path.segments.push(variant.clone().into());
            (path, variant.span())
        }
    };
    let joined: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let guard = Ident::new(
        &format!("__ws_duplicate_handler_for_{}", joined.join("_")),
        span,
    );
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const #guard: () = ();
    }
}
