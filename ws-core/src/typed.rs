//! Typed handlers: what `#[on(...)]` makes of an `async fn`, and how the builder registers one.
//!
//! `#[on(Enum::Variant)]` keeps the function's name, arguments and body: it still is a function, callable
//! (and unit-testable) as written. Its future comes back wrapped in a [`Handled<V, F>`], which names the
//! variant `V` the function serves and `.await`s to what the body returns. That wrapper is how
//! [`ServerBuilder::handle`](crate::ServerBuilder::handle) learns, from the function alone, which message
//! type to route to it: any `Fn(T1, …, Tn) -> Handled<V, F>` whose arguments are extractors
//! ([`FromMessageParts`]) followed by at most one payload ([`FromMessage`]) is a [`TypedHandler`].

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{BoxError, Error};
use crate::extract::{FromMessage, FromMessageParts, HandlerContext};
use crate::handler::{BoxFuture, Endpoint, Reply, Request};
use crate::message::{InboundMessages, Variant, decode_payload};

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

/// A function registered with [`ServerBuilder::handle`](crate::ServerBuilder::handle): an `async fn`
/// annotated with `#[on(...)]`. `Args` is inferred; it tells the arities apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed message handler",
    label = "not an `async fn` annotated with `#[on(...)]`, or its arguments are not extractors",
    note = "annotate the `async fn` with `#[ws_core::on(Enum::Variant)]`, or register it with `ServerBuilder::on(\"type\", ...)`"
)]
pub trait TypedHandler<Args>: Clone + Send + Sync + Sized + 'static {
    /// The variant served.
    type Variant: Variant;

    /// Runs the handler on one decoded message.
    fn call(&self, cx: HandlerContext<Self::Variant>) -> BoxFuture<Result<Reply, Error>>;
}

macro_rules! typed_handler {
    ($($part:ident),*) => {
        #[allow(non_snake_case, unused_variables, unused_mut, unused_parens)]
        impl<Func, V, Fut, M, $($part,)* P> TypedHandler<(M, $($part,)* P)> for Func
        where
            Func: Fn($($part,)* P) -> Handled<V, Fut> + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoHandlerReply<V::Reply>,
            V: Variant,
            V::Set: InboundMessages,
            $($part: FromMessageParts<V> + Send + 'static,)*
            P: FromMessage<V, M> + Send + 'static,
        {
            type Variant = V;

            fn call(&self, mut cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> {
                let args = (|| {
                    $(let $part = $part::from_message_parts(&cx)?;)*
                    let payload = P::from_message(&mut cx)?;
                    Ok::<_, Error>(($($part,)* payload))
                })();
                let this = self.clone();
                Box::pin(async move {
                    let ($($part,)* payload) = args?;
                    this($($part,)* payload).await.into_handler_reply()
                })
            }
        }
    };
}

/// The function of a handler without arguments.
impl<Func, V, Fut> TypedHandler<()> for Func
where
    Func: Fn() -> Handled<V, Fut> + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHandlerReply<V::Reply>,
    V: Variant,
    V::Set: InboundMessages,
{
    type Variant = V;

    fn call(&self, _cx: HandlerContext<V>) -> BoxFuture<Result<Reply, Error>> {
        let future = self().into_future();
        Box::pin(async move { future.await.into_handler_reply() })
    }
}

typed_handler!();
typed_handler!(T1);
typed_handler!(T1, T2);
typed_handler!(T1, T2, T3);
typed_handler!(T1, T2, T3, T4);
typed_handler!(T1, T2, T3, T4, T5);
typed_handler!(T1, T2, T3, T4, T5, T6);
typed_handler!(T1, T2, T3, T4, T5, T6, T7);

pub(crate) fn endpoint<H: TypedHandler<Args>, Args>(handler: H) -> Endpoint {
    Arc::new(
        move |request: Request| match decode_payload::<H::Variant>(request.data_json()) {
            Ok(payload) => handler.call(HandlerContext::new(request, payload)),
            Err(err) => Box::pin(async move { Err(err) }),
        },
    )
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

impl<R: Serialize, E: Into<BoxError>> IntoHandlerReply<R> for Result<R, E> {
    fn into_handler_reply(self) -> Result<Reply, Error> {
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
pub fn assert_reply<R: IntoHandlerReply<P::Reply>, P: Variant>() {}
