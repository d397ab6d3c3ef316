//! Typed handlers: what `#[on(Enum::Variant)]` turns an `async fn` into.
//!
//! The macro wraps the function into a [`TypedHandler`] of the same name; register it with
//! [`ServerBuilder::handle`](crate::ServerBuilder::handle). Before the handler runs, the
//! frame's `data` is decoded once, straight into the variant's payload type (a mismatch is answered with
//! `$error` `invalid_data`). Each argument is then produced by [`FromMessage`], in any order:
//!
//! - the payload type itself (at most once);
//! - [`Client`] and [`ClientId`]: who sent the frame;
//! - [`Server`]: the server;
//! - [`RequestId`]: the frame's `id`, if it is a request;
//! - [`State<T>`]: a value given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state);
//! - [`Extension<T>`]: a typed value stored on the client (for example by the authenticator).
//!
//! The return value answers requests: the variant's reply type `R` (from `#[ws(reply = R)]`, `()` without
//! it), or `Result<R, E>` with `E: Into<Error>`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::client::{Client, ClientId};
use crate::error::Error;
use crate::handler::{BoxFuture, Endpoint, Reply, Request};
use crate::message::{Variant, decode_payload};
use crate::server::Server;

/// A handler bound to one message variant `V`.
///
/// `#[on(Enum::Variant)]` turns an `async fn` into a function of a [`HandlerContext<V>`] that extracts the
/// arguments, runs the original body and serializes the reply; every such function is a `TypedHandler`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed message handler",
    label = "not annotated with `#[on(Enum::Variant)]`",
    note = "annotate the `async fn` with `#[ws_core::on(Enum::Variant)]`, or register it with `ServerBuilder::on(\"type\", ...)`"
)]
pub trait TypedHandler<V>: Send + Sync + 'static {
    /// Runs the handler on one decoded message.
    fn call(&self, cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>>;
}

impl<F, V> TypedHandler<V> for F
where
    F: Fn(HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> + Send + Sync + 'static,
    V: Variant,
{
    fn call(&self, cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> {
        self(cx)
    }
}

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
    /// The request being handled.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Takes the decoded payload; `None` once taken.
    pub fn take_payload(&mut self) -> Option<V> {
        self.payload.take()
    }
}

pub(crate) fn endpoint<H: TypedHandler<V>, V: Variant>(handler: H) -> Endpoint {
    let handler = Arc::new(handler);
    Arc::new(
        move |request: Request| match decode_payload::<V>(request.data_json()) {
            Ok(payload) => handler.call(HandlerContext {
                request,
                payload: Some(payload),
            }),
            Err(err) => Box::pin(async move { Err(err) }),
        },
    )
}

/// A handler argument, extracted from the message being handled.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a handler for `{V}`",
    label = "neither an extractor nor the payload type `{V}`",
    note = "handler arguments are the payload type `{V}`, `Client`, `ClientId`, `Server`, `RequestId`, `State<T>` or `Extension<T>`"
)]
pub trait FromMessage<V>: Sized {
    /// Extracts the argument.
    ///
    /// # Errors
    ///
    /// When the value is not available (a missing state or extension, the payload taken twice); the request
    /// then gets an `internal` error.
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error>;
}

impl<V: Variant> FromMessage<V> for V {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        cx.take_payload().ok_or_else(|| {
            Error::internal(format!(
                "the payload of {:?} is taken by two arguments",
                V::NAME
            ))
        })
    }
}

impl<V> FromMessage<V> for Client {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.client().clone())
    }
}

impl<V> FromMessage<V> for ClientId {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.client().id().clone())
    }
}

impl<V> FromMessage<V> for Server {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        Ok(cx.request.server())
    }
}

/// The frame's request id: `Some` when the client expects a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Option<u64>);

impl<V> FromMessage<V> for RequestId {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        Ok(Self(cx.request.id()))
    }
}

/// A copy of the value of type `T` given to [`ServerBuilder::with_state`](crate::ServerBuilder::with_state).
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<V, T: Clone + Send + Sync + 'static> FromMessage<V> for State<T> {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
        cx.request
            .client()
            .server_inner()
            .states
            .get::<T>()
            .map(State)
            .ok_or_else(|| {
                Error::internal(format!("no state of type {}", std::any::type_name::<T>()))
            })
    }
}

/// A copy of the typed value of type `T` stored on the client ([`Client::insert_extension`], or
/// [`ClientData::extension`](crate::ClientData::extension) at authentication).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extension<T>(pub T);

impl<V, T: Clone + Send + Sync + 'static> FromMessage<V> for Extension<T> {
    fn from_message(cx: &mut HandlerContext<V>) -> Result<Self, Error> {
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

/// What a typed handler may return for a variant whose reply type is `R`.
#[diagnostic::on_unimplemented(
    message = "a handler for this message must return `{R}` or `Result<{R}, E>`",
    label = "returns `{Self}`",
    note = "the reply type is set with `#[ws(reply = Type)]` on the variant; without it, it is `()`"
)]
pub trait IntoHandlerReply<R> {
    /// Serializes the reply once.
    ///
    /// # Errors
    ///
    /// The handler's error, or `internal` when the reply cannot be serialized.
    fn into_handler_reply(self) -> Result<Reply, Error>;
}

impl<R: Serialize> IntoHandlerReply<R> for R {
    fn into_handler_reply(self) -> Result<Reply, Error> {
        Reply::json(&self)
    }
}

impl<R: Serialize, E: Into<Error>> IntoHandlerReply<R> for Result<R, E> {
    fn into_handler_reply(self) -> Result<Reply, Error> {
        self.map_err(Into::into).and_then(|v| Reply::json(&v))
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
