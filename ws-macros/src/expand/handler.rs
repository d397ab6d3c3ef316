//! `#[on(Enum::Variant)]`: the function keeps its name and becomes a function of the variant's
//! `HandlerContext` (a `TypedHandler`): it extracts each argument, runs the original body (kept as a nested
//! function) and serializes the reply. It stays a function, so a local variable may share its name. Type
//! checks are left to rustc through spanned assertions, so errors point at the user's tokens.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, PathSegment, ReturnType};

use crate::model::{Handler, snake_case};

pub(crate) fn handler(handler: &Handler) -> TokenStream {
    let item = &handler.item;
    let (vis, name) = (&item.vis, &item.sig.ident);
    let doc_attrs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let fn_attrs = item.attrs.iter().filter(|a| !a.path().is_ident("doc"));
    let (sig, block) = (&item.sig, &item.block);
    let variant_ty = variant_type(handler);

    let args: Vec<Ident> = (0..sig.inputs.len())
        .map(|i| format_ident!("__ws_arg{i}"))
        .collect();
    let extractions = sig.inputs.iter().zip(&args).map(|(input, arg)| {
        let ty = match input {
            FnArg::Typed(pat) => &pat.ty,
            FnArg::Receiver(_) => unreachable!("receivers are rejected by check::handler_fn"),
        };
        quote_spanned! {ty.span()=>
            let #arg = <#ty as ::ws_core::FromMessage<#variant_ty>>::from_message(&mut __ws_cx)?;
        }
    });
    let reply_span = match &sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let into_reply = quote_spanned! {reply_span=>
        ::ws_core::IntoHandlerReply::<<#variant_ty as ::ws_core::Variant>::Reply>::into_handler_reply(__ws_ret)
    };
    let boxed = quote_spanned! {name.span()=>
        ::std::boxed::Box::pin(async move {
            #(#extractions)*
            let __ws_ret = #name(#(#args),*).await;
            #into_reply
        })
    };
    let enum_path = &handler.enum_path;
    let variant_check = quote_spanned! {enum_path.span()=>
        ::ws_core::__private::assert_inbound_variant::<#variant_ty, #enum_path>();
    };
    let duplicate_guard = duplicate_guard(handler);
    quote! {
        #(#doc_attrs)*
        #vis fn #name(
            mut __ws_cx: ::ws_core::HandlerContext<#variant_ty>,
        ) -> ::ws_core::BoxFuture<::ws_core::Result<::ws_core::Reply>> {
            #(#fn_attrs)*
            #sig #block

            #variant_check
            #boxed
        }

        #duplicate_guard
    }
}

/// `path::Enum::Variant` → `path::enum_module::Variant`, the payload type `#[ws_messages]` generated. The
/// variant keeps its span, so an unknown variant is reported on the user's token.
fn variant_type(handler: &Handler) -> TokenStream {
    let mut path = handler.enum_path.clone();
    let last = path.segments.pop().map(syn::punctuated::Pair::into_value);
    if let Some(enum_segment) = last {
        let module = Ident::new(
            &snake_case(&enum_segment.ident.to_string()),
            enum_segment.ident.span(),
        );
        path.segments.push(PathSegment::from(module));
    }
    path.segments
        .push(PathSegment::from(handler.variant.clone()));
    quote!(#path)
}

/// A second handler for the same variant in the same module is a compile error ("defined multiple times"),
/// reported at the second `#[on(...)]`. Handlers in different modules are caught when registered: the
/// builder panics on a second handler for one message type.
fn duplicate_guard(handler: &Handler) -> TokenStream {
    let enum_name = handler
        .enum_path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let guard = Ident::new(
        &format!("__ws_duplicate_handler_for_{enum_name}_{}", handler.variant),
        handler.variant.span(),
    );
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const #guard: () = ();
    }
}
