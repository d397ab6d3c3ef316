//! Handlers, replies and middleware: what runs when a frame arrives.
//!
//! Every frame whose `type` has a handler becomes a [`Request`]. It passes through the middleware in
//! registration order, each of which may inspect it, answer it itself, or call [`Next::run`]; the last
//! `Next` calls the handler. What comes back, `Ok(Reply)` or `Err(Error)`, is the answer to a request
//! (`$reply` or `$error` with the request's `id`); for a frame without `id` a reply is dropped and an error
//! only reaches `on_error` (and the client, if its code is `invalid_data`).
//!
//! One client's frames are handled one at a time, in the order they arrived; different clients' handlers
//! run concurrently.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::client::Client;
use crate::error::Error;
use crate::protocol::{Envelope, Message};
use crate::server::Server;
use crate::stream::Stream;
pub use crate::typed::{AnyReply, Handled, Handler, IntoReply};

/// A boxed, sendable future, as handlers and hooks are stored.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub(crate) type Endpoint = Arc<dyn Fn(Request) -> BoxFuture<Result<Reply, Error>> + Send + Sync>;
pub(crate) type Middleware =
    Arc<dyn Fn(Request, Next) -> BoxFuture<Result<Reply, Error>> + Send + Sync>;

/// One incoming frame on its way to a handler; a handler can take it whole as its last argument.
pub struct Request {
    client: Client,
    incoming: Envelope,
    /// The stream that answers it, for a variant declared `#[ws(stream = T)]`.
    stream: Option<Arc<Stream>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("client", self.client.id())
            .field("type", &self.incoming.kind)
            .field("id", &self.incoming.id)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(client: Client, incoming: Envelope) -> Self {
        Self {
            client,
            incoming,
            stream: None,
        }
    }

    /// The request of a stream, answered through `stream`.
    pub(crate) fn with_stream(mut self, stream: Arc<Stream>) -> Self {
        self.stream = Some(stream);
        self
    }

    pub(crate) fn stream(&self) -> Option<&Arc<Stream>> {
        self.stream.as_ref()
    }

    /// The client that sent the frame.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server.
    pub fn server(&self) -> Server {
        self.client.server()
    }

    /// The frame's `type`.
    pub fn kind(&self) -> &str {
        &self.incoming.kind
    }

    /// The request id, when the frame is a request.
    pub fn id(&self) -> Option<u64> {
        self.incoming.id
    }

    /// The frame's `target`, if any.
    pub fn target(&self) -> Option<&str> {
        self.incoming.target.as_deref()
    }

    /// `data` as the JSON text the client sent (`null` when absent).
    pub fn data_json(&self) -> &str {
        self.incoming.data_json()
    }

    /// Decodes `data` straight from the frame's text into `T`.
    ///
    /// # Errors
    ///
    /// An `invalid_data` error when `data` does not fit `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        crate::message::decode_payload(self.data_json())
    }

    /// The frame as a [`Message`], with `from` set to the sender's id (a `from` sent by the client is never
    /// used).
    ///
    /// # Errors
    ///
    /// An `invalid_data` error if `data` cannot be read as JSON (it always can: the envelope was checked).
    pub fn message(&self) -> Result<Message, Error> {
        Ok(Message {
            kind: self.incoming.kind.clone(),
            data: self.decode()?,
            target: self.incoming.target.clone(),
            from: Some(self.client.id().to_string()),
            id: self.incoming.id,
        })
    }
}

/// The answer to a request: JSON serialized once, or `null`.
#[derive(Debug, Clone, Default)]
pub struct Reply(Option<Box<RawValue>>);

impl Reply {
    /// A reply whose `data` is `null`.
    pub fn empty() -> Self {
        Self(None)
    }

    /// A reply carrying `value` as `data`.
    ///
    /// # Errors
    ///
    /// `internal` when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        Ok(Self(Some(serde_json::value::to_raw_value(value)?)))
    }

    pub(crate) fn raw(&self) -> &RawValue {
        self.0.as_deref().unwrap_or(RawValue::NULL)
    }
}

/// The rest of the middleware chain, ending in the handler.
pub struct Next {
    chain: Arc<[Middleware]>,
    index: usize,
    endpoint: Endpoint,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining_middleware", &(self.chain.len() - self.index))
            .finish_non_exhaustive()
    }
}

impl Next {
    pub(crate) fn new(chain: Arc<[Middleware]>, endpoint: Endpoint) -> Self {
        Self {
            chain,
            index: 0,
            endpoint,
        }
    }

    /// Runs the next middleware, or the handler after the last one.
    pub fn run(mut self, req: Request) -> BoxFuture<Result<Reply, Error>> {
        match self.chain.get(self.index).cloned() {
            Some(middleware) => {
                self.index += 1;
                middleware(req, self)
            }
            None => (self.endpoint)(req),
        }
    }
}
