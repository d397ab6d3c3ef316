//! Rules the compiler would not check for us, one function each, reported with precise spans.

use std::collections::HashMap;

use syn::{GenericParam, ItemEnum, ItemFn};

use crate::attr::{Delivery, Direction};
use crate::ctxt::Ctxt;
use crate::model::{MessageSet, Shape};

/// Rule: a message set is a plain enum with at least one variant: no generics (a wire name must map to one
/// concrete type) and no explicit discriminants.
pub(crate) fn enum_shape(item: &ItemEnum, cx: &mut Ctxt) {
    if let Some(param) = item.generics.params.first() {
        let what = match param {
            GenericParam::Lifetime(_) => "lifetime",
            GenericParam::Type(_) => "type",
            GenericParam::Const(_) => "const",
        };
        cx.error_spanned_by(
            &item.generics,
            format!("`#[ws_messages]` enums cannot be generic ({what} parameter): each wire name needs one concrete type"),
        );
    }
    if item.variants.is_empty() {
        cx.error_spanned_by(&item.ident, "a message set needs at least one variant");
    }
    for variant in &item.variants {
        if let Some((_, discriminant)) = &variant.discriminant {
            cx.error_spanned_by(discriminant, "message variants cannot have discriminants");
        }
    }
}

/// Rule: wire names come from `#[ws(rename)]` or `rename_all`, never from serde attributes on the enum or
/// its variants, so the names the macro knows are the names serde writes.
pub(crate) fn no_serde_naming(item: &ItemEnum, cx: &mut Ctxt) {
    let attrs = item
        .attrs
        .iter()
        .chain(item.variants.iter().flat_map(|v| v.attrs.iter()));
    for attr in attrs.filter(|a| a.path().is_ident("serde")) {
        cx.error_spanned_by(
            attr,
            "`#[serde(...)]` is not allowed on a message enum or its variants: use `#[ws(rename = \"...\")]` or `#[ws_messages(rename_all = \"...\")]` (field attributes are fine)",
        );
    }
}

/// Rule: wire names starting with `$` are reserved for system frames (`$reply`, `$error`), and a wire name
/// is never empty.
pub(crate) fn reserved_names(set: &MessageSet, cx: &mut Ctxt) {
    for variant in &set.variants {
        if variant.wire_name.starts_with('$') {
            cx.push(syn::Error::new(
                variant.wire_span,
                format!(
                    "the wire name `{}` is reserved: names starting with `$` are system frames",
                    variant.wire_name
                ),
            ));
        } else if variant.wire_name.is_empty() {
            cx.push(syn::Error::new(
                variant.wire_span,
                "a wire name cannot be empty",
            ));
        }
    }
}

/// Rule: two variants never share a wire name after renaming; the second one is reported.
pub(crate) fn unique_names(set: &MessageSet, cx: &mut Ctxt) {
    let mut seen = HashMap::new();
    for variant in &set.variants {
        if let Some(first) = seen.insert(variant.wire_name.as_str(), &variant.ident) {
            cx.push(syn::Error::new(
                variant.wire_span,
                format!(
                    "the wire name `{}` is already used by variant `{first}`",
                    variant.wire_name
                ),
            ));
        }
    }
}

/// Rule: a stream answers a client's request: `stream = T` is for inbound variants, and a request is
/// answered by a reply or by a stream, not both.
pub(crate) fn streams(set: &MessageSet, cx: &mut Ctxt) {
    for variant in &set.variants {
        let Some(stream) = &variant.stream else {
            continue;
        };
        if set.direction == Direction::Outbound {
            cx.error_spanned_by(
                stream,
                "`stream` answers a client's request: declare it on a client → server variant (`#[ws_messages]`)",
            );
        }
        if variant.reply.is_some() {
            cx.error_spanned_by(
                stream,
                "a request is answered by a `reply` or by a `stream`, not both",
            );
        }
    }
}

/// Rule: delivery policies are for outbound messages that are not requests, and `latest = "field"` names
/// a field of the variant.
pub(crate) fn delivery_policies(set: &MessageSet, cx: &mut Ctxt) {
    for variant in &set.variants {
        let Some((delivery, span)) = &variant.delivery else {
            continue;
        };
        let name = match delivery {
            Delivery::Volatile => "volatile",
            Delivery::Latest(_) => "latest",
        };
        if set.direction == Direction::Inbound {
            cx.push(syn::Error::new(
                *span,
                format!("`{name}` is a delivery policy for server → client messages: declare it in a `#[ws_messages(outbound)]` enum"),
            ));
            continue;
        }
        if variant.reply.is_some() {
            cx.push(syn::Error::new(
                *span,
                format!("`{name}` cannot be combined with `reply`: a request is always delivered, and answered once"),
            ));
        }
        if let Delivery::Latest(Some(key)) = delivery {
            let fields: Vec<String> = match &variant.shape {
                Shape::Struct(fields) => fields
                    .named
                    .iter()
                    .filter_map(|f| f.ident.as_ref().map(|i| i.to_string()))
                    .collect(),
                Shape::Unit | Shape::Newtype(_) => Vec::new(),
            };
            if !fields.contains(&key.value()) {
                let expected = if fields.is_empty() {
                    "this variant has no named fields; use `latest` to key on the type alone"
                        .to_owned()
                } else {
                    format!("expected one of: {}", fields.join(", "))
                };
                cx.push(syn::Error::new(
                    key.span(),
                    format!(
                        "`{}` is not a field of `{}`: {expected}",
                        key.value(),
                        variant.ident
                    ),
                ));
            }
        }
    }
}

/// Rule: a handler is a free `async fn` without generics, so it can be stored and called for any client.
pub(crate) fn handler_fn(item: &ItemFn, cx: &mut Ctxt) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, "`#[on]` handlers must be `async fn`");
    }
    if let Some(receiver) = sig.receiver() {
        cx.error_spanned_by(
            receiver,
            "`#[on]` handlers cannot take `self`: use a free `async fn`",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(&sig.generics, "`#[on]` handlers cannot be generic");
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "`#[on]` handlers cannot be variadic");
    }
    if sig.inputs.len() > MAX_HANDLER_ARGS {
        cx.error_spanned_by(
            &sig.inputs,
            format!("`#[on]` handlers take at most {MAX_HANDLER_ARGS} arguments"),
        );
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && matches!(**ty, syn::Type::ImplTrait(_))
    {
        cx.error_spanned_by(
            ty,
            "`#[on]` handlers name their return type: `impl Trait` cannot be a reply",
        );
    }
}

/// The arities `ws_core::handler::Handler` is implemented for.
const MAX_HANDLER_ARGS: usize = 8;
