//! The validated model of a message set and of a handler. Nothing here emits tokens.

use proc_macro2::Span;
use syn::{Attribute, Field, FieldsNamed, Ident, ItemEnum, ItemFn, Path, Type, Visibility};

use crate::attr::{self, Direction, MessagesArgs};
use crate::ctxt::Ctxt;
use crate::symbol::WS;

pub(crate) enum Shape {
    Unit,
    Struct(FieldsNamed),
    Newtype(Box<Field>),
}

pub(crate) struct MessageVariant {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    /// Where the wire name comes from: the `rename` literal, or the variant's name.
    pub(crate) wire_span: Span,
    pub(crate) shape: Shape,
    pub(crate) reply: Option<Type>,
    /// `#[ws(volatile)]` or `#[ws(latest)]`, where it is written; `None` is reliable.
    pub(crate) delivery: Option<(attr::Delivery, Span)>,
    /// The variant's attributes without `#[ws]` (docs and the like).
    pub(crate) attrs: Vec<Attribute>,
}

pub(crate) struct MessageSet {
    pub(crate) item: ItemEnum,
    pub(crate) direction: Direction,
    /// The module holding the payload types: the enum's name in snake case.
    pub(crate) module: Ident,
    pub(crate) variants: Vec<MessageVariant>,
}

impl MessageSet {
    pub(crate) fn ident(&self) -> &Ident {
        &self.item.ident
    }

    pub(crate) fn vis(&self) -> &Visibility {
        &self.item.vis
    }

    /// The enum's own attributes (derives, docs), without any `#[ws]`.
    pub(crate) fn attrs(&self) -> impl Iterator<Item = &Attribute> {
        self.item.attrs.iter().filter(|a| !a.path().is_ident(WS))
    }
}

/// Builds the model; shape problems are reported to `cx` (by `check`).
pub(crate) fn message_set(args: MessagesArgs, item: ItemEnum, cx: &mut Ctxt) -> MessageSet {
    let variants = item
        .variants
        .iter()
        .filter_map(|variant| {
            let parsed = attr::variant_args(&variant.attrs, cx);
            let shape = match &variant.fields {
                syn::Fields::Unit => Shape::Unit,
                syn::Fields::Named(named) => Shape::Struct(named.clone()),
                syn::Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                    Shape::Newtype(Box::new(unnamed.unnamed[0].clone()))
                }
                syn::Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "a message variant carries one payload: use named fields, or one type in parentheses",
                    );
                    return None;
                }
            };
            let (wire_name, wire_span) = match &parsed.rename {
                Some(lit) => (lit.value(), lit.span()),
                None => (args.rename_all.apply(&variant.ident.to_string()), variant.ident.span()),
            };
            Some(MessageVariant {
                ident: variant.ident.clone(),
                wire_name,
                wire_span,
                shape,
                reply: parsed.reply,
                delivery: parsed.delivery,
                attrs: variant.attrs.iter().filter(|a| !a.path().is_ident(WS)).cloned().collect(),
            })
        })
        .collect();
    MessageSet {
        module: Ident::new(&snake_case(&item.ident.to_string()), item.ident.span()),
        direction: args.direction,
        variants,
        item,
    }
}

/// `ChatInbound` → `chat_inbound`: the payload module's name, derived the same way by `#[on]`.
pub(crate) fn snake_case(name: &str) -> String {
    attr::RenameRule::Snake.apply(name)
}

pub(crate) struct Handler {
    pub(crate) item: ItemFn,
    /// `path::to::Enum`, without the variant.
    pub(crate) enum_path: Path,
    pub(crate) variant: Ident,
}
