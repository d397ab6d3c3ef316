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
    /// `#[ws(stream = T)]`: the item type of the stream that answers the request.
    pub(crate) stream: Option<Type>,
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
    /// The path to `ws_core` in generated code: `::ws_core`, or `#[ws_messages(crate = path)]`.
    pub(crate) krate: Path,
}

impl MessageSet {
    pub(crate) fn ident(&self) -> &Ident {
        &self.item.ident
    }

    pub(crate) fn vis(&self) -> &Visibility {
        &self.item.vis
    }

    /// The path to `ws_core`, for generated code.
    pub(crate) fn krate(&self) -> proc_macro2::TokenStream {
        let krate = &self.krate;
        quote::quote!(#krate)
    }

    /// The path to a crate `ws_core` re-exports, as the string serde, ts-rs and schemars take.
    pub(crate) fn private_crate(&self, name: &str) -> String {
        let krate = self.krate().to_string().replace(' ', "");
        format!("{krate}::__private::{name}")
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
                stream: parsed.stream,
                delivery: parsed.delivery,
                attrs: variant.attrs.iter().filter(|a| !a.path().is_ident(WS)).cloned().collect(),
            })
        })
        .collect();
    MessageSet {
        krate: args.krate,
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

/// How `#[on(...)]` names the message it handles.
pub(crate) enum Target {
    /// `Enum::Variant`, through any path, import or alias of the enum (the segment before the variant
    /// is UpperCamelCase, as types are).
    Variant { enum_path: Path, variant: Ident },
    /// The payload type itself: `module::Variant`, or `Variant` imported.
    Payload(Path),
}

impl Target {
    pub(crate) fn new(path: Path) -> Self {
        let n = path.segments.len();
        let enum_like = n >= 2
            && path.segments[n - 2]
                .ident
                .to_string()
                .starts_with(|c: char| c.is_ascii_uppercase());
        if !enum_like {
            return Self::Payload(path);
        }
        let mut enum_path = path;
        let variant = enum_path
            .segments
            .pop()
            .map(syn::punctuated::Pair::into_value)
            .map(|segment| segment.ident)
            .expect("two segments or more");
        enum_path.segments.pop_punct();
        Self::Variant { enum_path, variant }
    }
}

pub(crate) struct Handler {
    pub(crate) item: ItemFn,
    pub(crate) target: Target,
    /// The path to `ws_core` in generated code.
    pub(crate) krate: Path,
}
