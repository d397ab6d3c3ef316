//! Handlers: what `#[on(...)]` makes of an `async fn`, what an untyped handler is, and the one path both
//! take from a request to a reply.
//!
//! `#[on(Enum::Variant)]` keeps the function's name, arguments and body: it still is a function, callable
//! (and unit-testable) as written. Its future comes back wrapped in a [`Handled<V, F>`], which names the
//! variant `V` the function serves and `.await`s to what the body returns. That wrapper is how
//! [`ServerBuilder::handle`](crate::ServerBuilder::handle) learns, from the function alone, which message
//! type to route to it: any `Fn(T1, …, Tn) -> Handled<V, F>` whose arguments are extractors
//! ([`FromMessageParts`]) followed by at most one payload ([`FromMessage`]) is a [`Handler`] for `V`. An
//! untyped handler, registered for a `type` with [`ServerBuilder::on`](crate::ServerBuilder::on), is the
//! same with a plain future, for [`Message`]: the same extractors, the same reply trait, the same
//! endpoint.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{BoxError, Error};
use crate::extract::{FromMessage, FromMessageParts, HandlerContext};
use crate::handler::{BoxFuture, Endpoint, Reply, Request};
use crate::message::{InboundMessages, Variant, decode_payload};
use crate::protocol::Message;

/// The future of a handler for variant `V` (what `#[on]` makes an `async fn` return); `.await` it for the
/// body's result.
///
/// ```
/// use ws_core::{on, ws_messages};
///
/// #[ws_messages]
/// pub enum Inbound {
///     #[ws(reply = u32)]
///     Add { a: u32, b: u32 },
/// }
///
/// #[on(Inbound::Add)]
/// async fn add(msg: inbound::Add) -> u32 {
///     msg.a + msg.b
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(add(inbound::Add { a: 2, b: 3 }).await, 5);
/// # }
/// ```
#[must_use = "a handler does nothing unless `.await`ed or registered"]
pub struct Handled<V, F> {
    future: F,
    variant: PhantomData<fn() -> V>,
}

impl<V, F> Handled<V, F> {
    /// Wraps the future of a handler for `V` (used by `#[on]`).
    pub fn new(future: F) -> Self {
        Self {
            future,
            variant: PhantomData,
        }
    }
}

impl<V, F: Future> IntoFuture for Handled<V, F> {
    type Output = F::Output;
    type IntoFuture = F;

    fn into_future(self) -> F {
        self.future
    }
}

impl<V, F> std::fmt::Debug for Handled<V, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handled")
            .field("variant", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

/// A handler: an `async fn` annotated with `#[on(...)]` (its message type `V` is a variant, registered with
/// [`ServerBuilder::handle`](crate::ServerBuilder::handle)), or any async function or closure of
/// extractors registered for a `type` with [`ServerBuilder::on`](crate::ServerBuilder::on) (`V` is then
/// [`Message`], the untyped message). Both take the same extractors ([`FromMessageParts`], then at most one
/// [`FromMessage`] last), and answer with [`IntoReply`]. `Args` is inferred; it tells the arities apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler for `{V}`",
    label = "not a handler, or its arguments are not extractors",
    note = "a typed handler is an `async fn` annotated with `#[ws_core::on(Enum::Variant)]`, registered with `.handle(..)`; an untyped one is an async function or closure of extractors (`Client`, `Server`, `State<T>`, `Extension<T>`, ...) ending in `Message` or `Request`, each argument's type written, registered with `.on(\"type\", ..)`"
)]
pub trait Handler<V, Args>: Clone + Send + Sync + Sized + 'static {
    /// Runs the handler on one message.
    fn call(&self, cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>>;
}

/// The reply type of untyped handlers ([`ServerBuilder::on`](crate::ServerBuilder::on)): any JSON, so
/// `()`, a [`Reply`] or `Result<T: Serialize, E>` answer. It has no values.
#[derive(Debug)]
pub enum AnyReply {}

macro_rules! handler {
    ($($part:ident),*) => {
        #[allow(non_snake_case, unused_variables, unused_mut, unused_parens)]
        impl<Func, V, Fut, M, $($part,)* P> Handler<V, (M, $($part,)* P)> for Func
        where
            Func: Fn($($part,)* P) -> Handled<V, Fut> + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoReply<V::Reply>,
            V: Variant,
            V::Set: InboundMessages,
            $($part: FromMessageParts<V> + Send + 'static,)*
            P: FromMessage<V, M> + Send + 'static,
        {
            fn call(&self, cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> {
                let args = (|| {
                    $(let $part = $part::from_message_parts(&cx)?;)*
                    let payload = P::from_message(cx)?;
                    Ok::<_, Error>(($($part,)* payload))
                })();
                let this = self.clone();
                Box::pin(async move {
                    let ($($part,)* payload) = args?;
                    this($($part,)* payload).await.into_reply()
                })
            }
        }

        #[allow(non_snake_case, unused_variables, unused_mut, unused_parens)]
        impl<Func, Fut, M, $($part,)* P> Handler<Message, (M, $($part,)* P)> for Func
        where
            Func: Fn($($part,)* P) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoReply<AnyReply>,
            $($part: FromMessageParts<Message> + Send + 'static,)*
            P: FromMessage<Message, M> + Send + 'static,
        {
            fn call(&self, cx: HandlerContext<Message>) -> BoxFuture<Result<Reply, Error>> {
                let args = (|| {
                    $(let $part = $part::from_message_parts(&cx)?;)*
                    let payload = P::from_message(cx)?;
                    Ok::<_, Error>(($($part,)* payload))
                })();
                let future = args.map(|($($part,)* payload)| self($($part,)* payload));
                Box::pin(async move { future?.await.into_reply() })
            }
        }
    };
}

/// The function of a typed handler without arguments.
impl<Func, V, Fut> Handler<V, ()> for Func
where
    Func: Fn() -> Handled<V, Fut> + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReply<V::Reply>,
    V: Variant,
    V::Set: InboundMessages,
{
    fn call(&self, _cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> {
        let future = self().into_future();
        Box::pin(async move { future.await.into_reply() })
    }
}

/// The function of an untyped handler without arguments.
impl<Func, Fut> Handler<Message, ()> for Func
where
    Func: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReply<AnyReply>,
{
    fn call(&self, _cx: HandlerContext<Message>) -> BoxFuture<Result<Reply, Error>> {
        let future = self();
        Box::pin(async move { future.await.into_reply() })
    }
}

handler!();
handler!(T1);
handler!(T1, T2);
handler!(T1, T2, T3);
handler!(T1, T2, T3, T4);
handler!(T1, T2, T3, T4, T5);
handler!(T1, T2, T3, T4, T5, T6);
handler!(T1, T2, T3, T4, T5, T6, T7);

/// How a handler's message is read before it runs: a variant's payload decoded at once (a mismatch is
/// `invalid_data` before any extractor runs), or, untyped, left in the request for the last argument.
pub(crate) trait Payload: Sized + Send + 'static {
    fn decode(request: &Request) -> Result<Option<Self>, Error>;
}

impl<V: Variant> Payload for V {
    fn decode(request: &Request) -> Result<Option<Self>, Error> {
        decode_payload(request.data_json()).map(Some)
    }
}

impl Payload for Message {
    fn decode(_: &Request) -> Result<Option<Self>, Error> {
        Ok(None)
    }
}

/// The endpoint of any handler: its message read, then the handler called with its arguments.
pub(crate) fn endpoint<V: Payload, H: Handler<V, Args>, Args>(handler: H) -> Endpoint {
    Arc::new(move |request: Request| match V::decode(&request) {
        Ok(payload) => handler.call(HandlerContext::new(request, payload)),
        Err(err) => Box::pin(async move { Err(err) }),
    })
}

/// What a handler may return for a message whose reply type is `R`: `R` or `Result<R, E>` for a typed
/// handler (`R` is the variant's `#[ws(reply = R)]`, `()` without one); `()`, a [`Reply`], or
/// `Result<T, E>` with any `T: Serialize` for an untyped one (`R` is [`AnyReply`]). `E: Into<BoxError>`:
/// an [`Error`] keeps its code; any other error is `internal`.
#[diagnostic::on_unimplemented(
    message = "a handler for this message must return `{R}` or `Result<{R}, E>`",
    label = "returns `{Self}`",
    note = "the reply type is set with `#[ws(reply = Type)]` on the variant; without it, it is `()`; an untyped handler returns `()`, `Reply` or `Result<T, E>` with `T: Serialize`"
)]
pub trait IntoReply<R> {
    /// Serializes the reply once.
    ///
    /// # Errors
    ///
    /// The handler's error, or `internal` when the reply cannot be serialized.
    fn into_reply(self) -> Result<Reply, Error>;
}

impl<R: Serialize> IntoReply<R> for R {
    fn into_reply(self) -> Result<Reply, Error> {
        Reply::json(&self)
    }
}

impl<R: Serialize, E: Into<BoxError>> IntoReply<R> for Result<R, E> {
    fn into_reply(self) -> Result<Reply, Error> {
        self.map_err(|e| Error::from(e.into()))
            .and_then(|v| Reply::json(&v))
    }
}

impl IntoReply<AnyReply> for () {
    fn into_reply(self) -> Result<Reply, Error> {
        Ok(Reply::empty())
    }
}

impl IntoReply<AnyReply> for Reply {
    fn into_reply(self) -> Result<Reply, Error> {
        Ok(self)
    }
}

impl<T: Serialize, E: Into<BoxError>> IntoReply<AnyReply> for Result<T, E> {
    fn into_reply(self) -> Result<Reply, Error> {
        self.map_err(|e| Error::from(e.into()))
            .and_then(|v| Reply::json(&v))
    }
}

/// Compiles only when `P` is the payload of an inbound (client → server) variant (used by `#[on]`).
#[doc(hidden)]
pub fn assert_inbound<P>()
where
    P: Variant,
    P::Set: InboundMessages,
{
}

/// Compiles only when `T` can be an argument before the last of a handler for `P` (used by `#[on]`).
#[doc(hidden)]
pub fn assert_argument<T: FromMessageParts<P>, P>() {}

/// Compiles only when `T` can be the last argument of a handler for `P` (used by `#[on]`).
#[doc(hidden)]
pub fn assert_last_argument<T: FromMessage<P, M>, P, M>() {}

/// Compiles only when `R` answers a request for `P` (used by `#[on]`).
#[doc(hidden)]
pub fn assert_reply<R: IntoReply<P::Reply>, P: Variant>() {}
