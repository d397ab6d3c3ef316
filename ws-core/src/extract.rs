//! Handler arguments: what a typed handler can ask for, extracted from the message being handled.
//!
//! Typed handlers (`#[on(...)]`) and untyped ones ([`ServerBuilder::on`](crate::ServerBuilder::on)) take
//! the same arguments. A handler's arguments are, in order, any number of extractors that read the message's context
//! ([`FromMessageParts`]) and, last, at most one that consumes it ([`FromMessage`]): the variant's payload
//! type, decoded once from the frame's `data` before the handler runs (a mismatch is answered with
//! `$error` `invalid_data`). As in axum, the payload comes last; taking it twice, or before another
//! argument, does not compile.
//!
//! | argument | what it is |
//! |---|---|
//! | the variant's payload type (`inbound::Join`) | the decoded message (last argument) |
//! | [`Message`] | the message of an untyped handler, `data` as JSON (last argument) |
//! | [`Request`] | the frame as it came: type, id, `data` to [`decode`](Request::decode) (last argument) |
//! | [`Client`] / [`ClientId`] | who sent the frame |
//! | [`Server`] | the server |
//! | [`RequestId`] | the frame's `id`, if it is a request |
//! | [`State<T>`] | a value given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state) |
//! | [`Extension<T>`] | a typed value stored on the client (for example by the authenticator) |
//! | [`Chunks<T>`](crate::stream::Chunks) | the stream that answers a `#[ws(stream = T)]` request; `T` must be the variant's item type |
//!
//! Implement [`FromMessageParts`] for your own extractors.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

use crate::client::{Client, ClientId};
use crate::error::Error;
use crate::handler::Request;
use crate::message::Variant;
use crate::protocol::Message;
use crate::server::Server;
use crate::stream::Chunks;

/// The decoded message and its request, from which handler arguments are extracted.
pub struct HandlerContext<V> {
    request: Request,
    payload: Option<V>,
}

impl<V> fmt::Debug for HandlerContext<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerContext")
            .field("request", &self.request)
            .field("payload_taken", &self.payload.is_none())
            .finish()
    }
}

impl<V> HandlerContext<V> {
    pub(crate) fn new(request: Request, payload: Option<V>) -> Self {
        Self { request, payload }
    }

    /// The request being handled.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The decoded payload (`None` for an untyped handler, whose message stays in the request).
    pub fn into_payload(self) -> Option<V> {
        self.payload
    }

    /// The request, taken whole.
    pub fn into_request(self) -> Request {
        self.request
    }
}

/// An argument read from the message's context; any number of them come before the last argument.
///
/// ```
/// use ws_core::Error;
/// use ws_core::extract::{FromMessageParts, HandlerContext};
///
/// /// Who the client is, as the authenticator stored it (`ClientData::extension`).
/// #[derive(Clone)]
/// struct User {
///     name: String,
///     admin: bool,
/// }
///
/// /// An admin's name: a handler taking it runs for admins only.
/// struct Admin(String);
///
/// impl<V> FromMessageParts<V> for Admin {
///     fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
///         match cx.request().client().extension::<User>() {
///             Some(user) if user.admin => Ok(Admin(user.name)),
///             _ => Err(Error::forbidden("admins only")),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a handler for `{V}` before its last argument",
    label = "not an extractor",
    note = "handler arguments are `Client`, `ClientId`, `Server`, `RequestId`, `State<T>` or `Extension<T>`, then, last, at most one payload `{V}` or `Request`"
)]
pub trait FromMessageParts<V>: Sized {
    /// Extracts the argument.
    ///
    /// # Errors
    ///
    /// When the value is not available (a missing state or extension); the request then gets this error.
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error>;
}

mod via {
    /// [`FromMessage`](super::FromMessage) through [`FromMessageParts`](super::FromMessageParts).
    #[derive(Debug)]
    pub enum Parts {}
    /// [`FromMessage`](super::FromMessage) by taking the payload.
    #[derive(Debug)]
    pub enum Payload {}
    /// [`FromMessage`](super::FromMessage) by taking the whole request.
    #[derive(Debug)]
    pub enum Whole {}
}

/// The last argument of a handler: the payload, or any [`FromMessageParts`] extractor. `M` tells the two
/// apart and is always inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a handler for `{V}`",
    label = "neither an extractor nor the payload type `{V}`",
    note = "handler arguments are `Client`, `ClientId`, `Server`, `RequestId`, `State<T>` or `Extension<T>`, then, last, at most one payload `{V}` or `Request`"
)]
pub trait FromMessage<V, M = via::Payload>: Sized {
    /// Extracts the argument.
    ///
    /// # Errors
    ///
    /// When the value is not available; the request then gets this error.
    fn from_message(cx: HandlerContext<V>) -> Result<Self, Error>;
}

impl<V: Variant> FromMessage<V, via::Payload> for V {
    fn from_message(cx: HandlerContext<V>) -> Result<Self, Error> {
        cx.into_payload()
            .ok_or_else(|| Error::internal(format!("no payload of {:?}", V::NAME)))
    }
}

/// The untyped message, its `data` decoded as JSON: the last argument of an untyped handler
/// ([`ServerBuilder::on`](crate::ServerBuilder::on)).
impl FromMessage<Message, via::Payload> for Message {
    fn from_message(cx: HandlerContext<Message>) -> Result<Self, Error> {
        cx.request.message()
    }
}

/// The whole request, to read its type, id and `data` as it came ([`Request::decode`] into any type):
/// the last argument, as it is taken, not copied.
impl<V> FromMessage<V, via::Whole> for Request {
    fn from_message(cx: HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.into_request())
    }
}

impl<V, T: FromMessageParts<V>> FromMessage<V, via::Parts> for T {
    fn from_message(cx: HandlerContext<V>) -> Result<Self, Error> {
        T::from_message_parts(&cx)
    }
}

impl<V> FromMessageParts<V> for Client {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.client().clone())
    }
}

impl<V> FromMessageParts<V> for ClientId {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.client().id().clone())
    }
}

impl<V> FromMessageParts<V> for Server {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.server())
    }
}

/// The frame's request id: `Some` when the client expects a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Option<u64>);

impl<V: Variant> FromMessageParts<V> for Chunks<V::Item> {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        const {
            assert!(
                V::IS_STREAM,
                "`Chunks<T>` is an argument of handlers for variants declared `#[ws(stream = T)]`"
            );
        }
        cx.request
            .stream()
            .map(|stream| Chunks::new(stream.clone()))
            .ok_or_else(|| Error::internal("a stream variant handled outside its stream"))
    }
}

impl<V> FromMessageParts<V> for RequestId {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        Ok(Self(cx.request.id()))
    }
}

/// A copy of the value of type `T` given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state).
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<V, T: Clone + Send + Sync + 'static> FromMessageParts<V> for State<T> {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        cx.request
            .client()
            .server()
            .app()
            .states
            .get::<T>()
            .map(State)
            .ok_or_else(|| {
                Error::internal(format!("no state of type {}", std::any::type_name::<T>()))
            })
    }
}

/// A copy of the typed value of type `T` stored on the client ([`Client::insert_extension`], or
/// [`ClientData::extension`](crate::auth::ClientData::extension) at authentication).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extension<T>(pub T);

impl<V, T: Clone + Send + Sync + 'static> FromMessageParts<V> for Extension<T> {
    fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
        cx.request
            .client()
            .extension::<T>()
            .map(Extension)
            .ok_or_else(|| {
                Error::internal(format!(
                    "no client extension of type {}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

/// Values given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state), one per type.
#[derive(Default)]
pub(crate) struct States(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl States {
    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }
}
