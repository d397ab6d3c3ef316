//! Procedural macros of [`ws-core`](https://docs.rs/ws-core): `#[ws_messages]` declares a typed message set,
//! `#[on(Enum::Variant)]` makes an `async fn` a typed handler. Use them through `ws_core`
//! (`use ws_core::{ws_messages, on};`).
//!
//! Each macro parses its input, builds a model (`model`), checks the rules the compiler would not check
//! (`check`), and only then generates code (`expand`). All errors of one input are reported together, each
//! spanned on the token at fault; on an error the original item is emitted too, so editors keep working.

mod attr;
mod check;
mod ctxt;
mod expand;
mod model;
mod symbol;

use proc_macro::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

/// Declares a typed message set: an enum whose variants are message types of one direction.
///
/// ```
/// use ws_core::ws_messages;
///
/// #[ws_messages] // client → server (the default)
/// #[derive(Debug, Clone, PartialEq)]
/// pub enum Inbound {
///     Chat { text: String, room: Option<String> },
///     #[ws(reply = Vec<String>)]
///     Rooms,
///     #[ws(rename = "admin:purge")]
///     AdminPurge,
/// }
///
/// #[ws_messages(outbound)] // server → client
/// pub enum Outbound {
///     Welcome { client_id: String },
/// }
///
/// fn main() {
///     // Values of the enum are the envelope: {"type": wire name, "data": payload}.
///     let json = r#"{"type":"chat","data":{"text":"hi","room":null}}"#;
///     let msg: Inbound = serde_json::from_str(json).unwrap();
///     assert_eq!(msg, Inbound::Chat { text: "hi".into(), room: None });
///     // Each variant has a payload type in a module named after the enum.
///     assert_eq!(<inbound::AdminPurge as ws_core::message::Variant>::NAME, "admin:purge");
/// }
/// ```
///
/// Declare message enums at module level: the payload module refers to the enum's scope with `super`,
/// which does not reach items declared inside a function body.
///
/// For each variant, the macro generates:
///
/// - the serde envelope: `type` is the wire name (the variant's name in `snake_case`, or
///   `#[ws_messages(rename_all = "...")]`, or `#[ws(rename = "...")]`), `data` the payload;
/// - a payload type `enum_name::Variant` (a struct with the same fields, a unit struct, or a newtype around
///   the one type in parentheses) with `From`/`TryFrom` conversions, which handlers receive;
/// - its [`Variant`](../ws_core/trait.Variant.html) impl, with the reply type from `#[ws(reply = Type)]`
///   (`()` without it).
///
/// `#[ws_messages(crate = path)]` names `ws_core` when it is re-exported under another path.
///
/// The enum implements `WsMessages`, and `InboundMessages` (decoding by wire name, in one pass) or
/// `OutboundMessages` (which makes it sendable with `Client::send` and `Server::broadcast`).
///
/// Rejected at compile time, each pointing at the offending token: generic enums, tuple variants with more
/// than one field, discriminants, `#[serde]` on the enum or its variants (names must come from `#[ws]`),
/// wire names starting with `$` (reserved for `$reply` and `$error`), and two variants with one wire name:
///
/// ```compile_fail
/// #[ws_core::ws_messages]
/// enum Inbound {
///     #[ws(rename = "$reply")]
///     Sneaky,
/// }
/// ```
#[proc_macro_attribute]
pub fn ws_messages(args: TokenStream, input: TokenStream) -> TokenStream {
    messages_with_default(args, input, attr::default_crate)
}

/// [`ws_messages`] with `::ws_protocol` as the default path, as `ws_protocol::ws_messages`.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn protocol_ws_messages(args: TokenStream, input: TokenStream) -> TokenStream {
    messages_with_default(args, input, attr::protocol_crate)
}

fn messages_with_default(
    args: TokenStream,
    input: TokenStream,
    default: fn() -> syn::Path,
) -> TokenStream {
    let original = match syn::parse::<syn::ItemEnum>(input.clone()) {
        Ok(item) => without_helper_attributes(item).into_token_stream().into(),
        Err(_) => input.clone(),
    };
    expand_or_original(original, || messages(args.into(), input.into(), default))
}

/// The enum as the user wrote it, minus the attributes only this macro understands, so a failed expansion
/// reports its own errors and nothing about unknown attributes.
fn without_helper_attributes(mut item: syn::ItemEnum) -> syn::ItemEnum {
    let ours = |a: &syn::Attribute| a.path().is_ident(symbol::WS) || a.path().is_ident("serde");
    item.attrs.retain(|a| !ours(a));
    for variant in &mut item.variants {
        variant.attrs.retain(|a| !ours(a));
    }
    item
}

/// Makes an `async fn` the handler of one inbound message variant.
///
/// ```
/// use ws_core::extract::RequestId;
/// use ws_core::{Client, Error, Server, on, ws_messages};
///
/// #[ws_messages]
/// pub enum Inbound {
///     Join { room: String },
///     #[ws(reply = usize)]
///     Count,
/// }
///
/// #[on(Inbound::Join)]
/// async fn join(client: Client, msg: inbound::Join) -> Result<(), Error> {
///     client.join(&msg.room)?;
///     Ok(())
/// }
///
/// // Extractors first, the payload (if any) last; the return value is the variant's reply type.
/// #[on(Inbound::Count)]
/// async fn count(server: Server, _id: RequestId) -> usize {
///     server.local_clients().len()
/// }
///
/// fn main() {
///     let builder = Server::builder(ws_core::Config::default()).handle(join).handle(count);
/// #   let _ = builder;
/// }
/// ```
///
/// The message is named in any of these ways, all resolved by the compiler, so imports, aliases and
/// enums from other crates work:
///
/// - `#[on(Inbound::Join)]`: the enum (by any path or alias: `use protocol::ToServer as Wb;
///   #[on(Wb::Clear)]`), then the variant;
/// - `#[on(inbound::Join)]` or `#[on(Join)]`: the payload type `#[ws_messages]` generated, by any path.
///
/// A path whose next-to-last segment starts with an uppercase letter names an enum; any other path
/// names the payload type. `#[on(..., crate = path)]` names `ws_core` when it is re-exported under
/// another path.
///
/// The function keeps its name, arguments and body: it can be called, and unit-tested, as written
/// (`count(server, id).await`). Its future is wrapped in a `ws_core::handler::Handled`, which tells
/// `ServerBuilder::handle` which message it serves. Arguments are extractors (`Client`, `ClientId`,
/// `Server`, `RequestId`, `State<T>`, `Extension<T>`, or your own `FromMessageParts`), then, last, at
/// most one payload.
///
/// Compile errors point at the offending token: a payload type of another variant, a payload taken twice
/// or before another argument, an unknown variant, a return type that is not the variant's reply, a
/// second handler for the same variant in one module, a function that is not `async`, takes `self` or is
/// generic:
///
/// ```compile_fail
/// use ws_core::{on, ws_messages};
///
/// #[ws_messages]
/// pub enum Inbound { Ping, Pong }
///
/// #[on(Inbound::Ping)]
/// async fn ping(msg: inbound::Pong) {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn on(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_or_original(input.clone(), || handler(args.into(), input.into()))
}

/// Runs an expansion; on error, emits the original item next to the errors so editors still see it.
fn expand_or_original(
    input: TokenStream,
    expand: impl FnOnce() -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let output = match expand() {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens: proc_macro2::TokenStream = input.into();
            tokens.extend(err.into_compile_error());
            tokens
        }
    };
    if std::env::var_os("WS_MACROS_DEBUG").is_some() {
        eprintln!("{output}");
    }
    output.into()
}

pub(crate) fn messages(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
    default: fn() -> syn::Path,
) -> syn::Result<proc_macro2::TokenStream> {
    let item: syn::ItemEnum = syn::parse2(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`#[ws_messages]` goes on an enum whose variants are the message types",
        )
    })?;
    let mut cx = Ctxt::default();
    let parsed_args = attr::messages_args(args, &mut cx, default);
    check::enum_shape(&item, &mut cx);
    check::no_serde_naming(&item, &mut cx);
    let set = model::message_set(parsed_args, item, &mut cx);
    check::reserved_names(&set, &mut cx);
    check::unique_names(&set, &mut cx);
    check::delivery_policies(&set, &mut cx);
    check::streams(&set, &mut cx);
    cx.check()?;
    Ok(expand::message_set(&set))
}

pub(crate) fn handler(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let item: syn::ItemFn = syn::parse2(input)?;
    let mut cx = Ctxt::default();
    let parsed = if args.is_empty() {
        cx.error_spanned_by(
            item.sig.fn_token,
            "`#[on]` needs the message it handles: `#[on(Enum::Variant)]`",
        );
        None
    } else {
        match syn::parse2::<attr::OnArgs>(args) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                cx.push(syn::Error::new(
                    err.span(),
                    format!("{err}: expected `Enum::Variant` or the payload type, the message this handler serves"),
                ));
                None
            }
        }
    };
    check::handler_fn(&item, &mut cx);
    cx.check()?;
    let parsed = parsed.ok_or_else(|| {
        syn::Error::new(proc_macro2::Span::call_site(), "missing `Enum::Variant`")
    })?;
    let handler = model::Handler {
        item,
        target: model::Target::new(parsed.target),
        krate: parsed.krate,
    };
    Ok(expand::handler(&handler))
}

/// Makes a type usable in messages and replies: derives serde's `Serialize` and `Deserialize`, ts-rs's
/// `TS` and schemars's `JsonSchema` through `ws_core`, so one dependency on `ws-core` is enough.
///
/// ```
/// use ws_core::{payload, ws_messages};
///
/// #[payload]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct Point {
///     pub x: i32,
///     pub y: i32,
/// }
///
/// #[ws_messages]
/// pub enum Inbound {
///     #[ws(reply = Point)]
///     Move(Point),
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn payload(args: TokenStream, input: TokenStream) -> TokenStream {
    payload_with_crate(args, input, attr::default_crate)
}

/// [`payload`] deriving through `::ws_protocol`, as `ws_protocol::payload`.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn protocol_payload(args: TokenStream, input: TokenStream) -> TokenStream {
    payload_with_crate(args, input, attr::protocol_crate)
}

fn payload_with_crate(
    args: TokenStream,
    input: TokenStream,
    krate: fn() -> syn::Path,
) -> TokenStream {
    expand_or_original(input.clone(), || {
        if !args.is_empty() {
            let args: proc_macro2::TokenStream = args.into();
            return Err(syn::Error::new_spanned(
                args,
                "`#[payload]` takes no arguments",
            ));
        }
        let item: syn::DeriveInput = syn::parse(input)?;
        Ok(expand::payload(&item, &krate()))
    })
}
