//! Handler arguments: what a typed handler can ask for, extracted from the message being handled.
//!
//! A handler's arguments are, in order, any number of extractors that read the message's context
//! ([`FromMessageParts`]) and, last, at most one that consumes it ([`FromMessage`]): the variant's payload
//! type, decoded once from the frame's `data` before the handler runs (a mismatch is answered with
//! `$error` `invalid_data`). As in axum, the payload comes last; taking it twice, or before another
//! argument, does not compile.
//!
//! | argument | what it is |
//! |---|---|
//! | the variant's payload type (`inbound::Join`) | the decoded message (last argument) |
//! | [`Client`] / [`ClientId`] | who sent the frame |
//! | [`Server`] | the server |
//! | [`RequestId`] | the frame's `id`, if it is a request |
//! | [`State<T>`] | a value given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state) |
//! | [`Extension<T>`] | a typed value stored on the client (for example by the authenticator) |
//!
//! Implement [`FromMessageParts`] for your own extractors.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

use crate::client::{Client, ClientId};
use crate::error::Error;
use crate::handler::Request;
use crate::message::Variant;
use crate::server::Server;

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
    pub(crate) fn new(request: Request, payload: V) -> Self {
        Self {
            request,
            payload: Some(payload),
        }
    }

    /// The request being handled.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Takes the decoded payload; `None` once taken.
    pub fn take_payload(&mut self) -> Option<V> {
        self.payload.take()
    }
}

/// An argument read from the message's context; any number of them come before the last argument.
///
/// ```
/// use ws_core::Error;
/// use ws_core::extract::{FromMessageParts, HandlerContext};
///
/// /// The `user` the authenticator stored on the client.
/// struct User(String);
///
/// impl<V> FromMessageParts<V> for User {
///     fn from_message_parts(cx: &HandlerContext<V>) -> Result<Self, Error> {
///         let user = cx.request().client().get_metadata("user");
///         let user = user.and_then(|u| u.as_str().map(String::from));
///         user.map(User).ok_or_else(|| Error::forbidden("log in first"))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a handler for `{V}` before its last argument",
    label = "not an extractor",
    note = "handler arguments are `Client`, `ClientId`, `Server`, `RequestId`, `State<T>` or `Extension<T>`, then, last, at most one payload `{V}`"
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
}

/// The last argument of a handler: the payload, or any [`FromMessageParts`] extractor. `M` tells the two
/// apart and is always inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a handler for `{V}`",
    label = "neither an extractor nor the payload type `{V}`",
    note = "handler arguments are `Client`, `ClientId`, `Server`, `RequestId`, `State<T>` or `Extension<T>`, then, last, at most one payload `{V}`"
)]
pub trait FromMessage<V, M = via::Payload>: Sized {
    /// Extracts the argument.
    ///
    /// # Errors
    ///
    /// When the value is not available; the request then gets this error.
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error>;
}

impl<V: Variant> FromMessage<V, via::Payload> for V {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        cx.take_payload()
            .ok_or_else(|| Error::internal(format!("the payload of {:?} was taken", V::NAME)))
    }
}

impl<V, T: FromMessageParts<V>> FromMessage<V, via::Parts> for T {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        T::from_message_parts(cx)
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
            .server_inner()
            .app
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
