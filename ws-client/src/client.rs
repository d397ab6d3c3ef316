//! The client: a handle the application holds, and a task that owns the socket and connects again.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use ws_protocol::Error;
use ws_protocol::message::{InboundMessages, Variant, WsMessages};
use ws_protocol::version::ProtocolVersion;

use crate::driver::{self, Outgoing};
use crate::error::{ClientError, CloseInfo};
use crate::policy::{Backoff, CloseDecision, close_policy};
use crate::positions::{Position, Positions};
use crate::presence::{Presence, PresenceChange, Presences};
use crate::runtime::{self, MaybeSend};
use crate::stream::{self, Streaming, Streams};

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connecting, for the first time or again.
    Connecting,
    /// Open.
    Open,
    /// Closed for good, with the close that ended it (`None`: the application closed it).
    Closed(Option<CloseInfo>),
}

/// What the server sent that is not an answer to a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming<O> {
    /// A message of the server → client set, with the client it was relayed for (`from`).
    Message {
        /// The message.
        message: O,
        /// The client the server relayed it for, if any.
        from: Option<String>,
    },
    /// An `$error` that answers no request (a `send` the server refused).
    Error(Error),
    /// A group's presence list changed ([`Client::presence`] has the list now); when a connection is lost,
    /// every list empties (memberships end with their connection), told as one change per group.
    Presence(PresenceChange),
    /// The server ended this client's membership of `group` (`$left`): a session's grant for it ran out or
    /// was withdrawn (`reason`, such as `expired` or `revoked`).
    Left {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },
    /// Where this client stands in a group with history, told as it joins: `recovered` is `Some(true)`
    /// when the frames it missed while disconnected follow (once each, in order), `Some(false)` with a
    /// `reason` (`expired`, `epoch`, `unavailable`) when they cannot, `None` on a first join.
    Recovery {
        /// The group.
        group: String,
        /// Whether what was missed follows.
        recovered: Option<bool>,
        /// Why not.
        reason: Option<String>,
    },
}

/// A request's answer: the reply's `data` as JSON text, or why not.
type Answer = oneshot::Sender<Result<String, ClientError>>;
#[cfg(not(target_arch = "wasm32"))]
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
#[cfg(target_arch = "wasm32")]
type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;
/// Answers one server request: its `data`, as JSON text, to the reply's JSON or an error.
pub(crate) type ServerHandler =
    Arc<dyn Fn(&str) -> BoxFuture<Result<serde_json::Value, Error>> + Send + Sync>;

/// What the handle and the task share.
pub(crate) struct Shared {
    pub(crate) pending: Mutex<HashMap<u64, Answer>>,
    next_id: AtomicU64,
    max_pending: usize,
    pub(crate) handlers: Mutex<HashMap<&'static str, ServerHandler>>,
    pub(crate) state: watch::Sender<State>,
    pub(crate) dropped: AtomicU64,
    pub(crate) positions: Mutex<Positions>,
    pub(crate) presence: Mutex<Presences>,
    pub(crate) streams: Arc<Mutex<Streams>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Fails every request waiting for an answer.
    pub(crate) fn fail_pending(&self, error: impl Fn() -> ClientError) {
        for (_, answer) in lock(&self.pending).drain() {
            let _ = answer.send(Err(error()));
        }
    }
}

/// Extra handshake headers: native only, a browser sends its own.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Headers = Vec<(http::HeaderName, http::HeaderValue)>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Headers = ();

/// Settings of a [`Client`]; [`Client::builder`] starts from the defaults.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    headers: Headers,
    backoff: Backoff,
    request_timeout: Duration,
    connect_timeout: Duration,
    max_queue: usize,
    max_pending: usize,
    message_buffer: usize,
    stable_after: Duration,
}

impl ClientBuilder {
    /// A header sent with every handshake, such as `authorization` for an authenticator that reads it
    /// (native only: a browser sends its own headers, so pass a token in the URL there).
    ///
    /// ```
    /// use ws_client::Client;
    /// use ws_client::http::{HeaderValue, header};
    ///
    /// let builder = Client::builder("ws://127.0.0.1:6001/ws")
    ///     .header(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
    /// # let _ = builder;
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    #[must_use]
    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Reconnection delays (default: 250 ms doubling to 10 s, unlimited attempts).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a request waits for its answer (default 10 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) waits for the first connection (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Frames that may wait to be written, also while reconnecting (default 1 024); past it a send
    /// fails with [`ClientError::QueueFull`].
    #[must_use]
    pub fn max_queue(mut self, frames: usize) -> Self {
        self.max_queue = frames.max(1);
        self
    }

    /// Server messages that may wait for [`Client::next`] (default 1 024); past it new ones are dropped
    /// and counted ([`Client::dropped_messages`]), so a client that only makes requests never stalls.
    #[must_use]
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
        self
    }

    /// Connects, typed by the server's message sets: `I` what this client sends (`#[ws_messages]`), `O`
    /// what the server sends (`#[ws_messages(outbound)]`). Resolves once the first connection is open.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] when the server refused in a way the policy does not retry (a 34xx
    /// handshake refusal, 3409 another protocol version, ...); [`ClientError::Timeout`] when no
    /// connection opened within the connect timeout (the client is closed then).
    pub async fn connect<I, O>(self) -> Result<Client<I, O>, ClientError>
    where
        I: InboundMessages,
        O: WsMessages + DeserializeOwned,
    {
        let fingerprint = ProtocolVersion::new()
            .messages::<I>()
            .messages::<O>()
            .fingerprint();
        let url = driver::address(&self.url, &fingerprint);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            max_pending: self.max_pending,
            handlers: Mutex::new(HashMap::new()),
            state: watch::Sender::new(State::Connecting),
            dropped: AtomicU64::new(0),
            positions: Mutex::new(Positions::default()),
            presence: Mutex::new(Presences::default()),
            streams: Arc::new(Mutex::new(Streams::default())),
        });
        let (outgoing, queue) = mpsc::channel(self.max_queue);
        let (delivered, incoming) = mpsc::channel(self.message_buffer);
        let settings = driver::Settings {
            url,
            headers: self.headers,
            backoff: self.backoff,
            stable_after: self.stable_after,
        };
        runtime::spawn(driver::run::<O>(
            settings,
            shared.clone(),
            queue,
            outgoing.clone(),
            delivered,
        ));
        let client = Client {
            shared,
            outgoing,
            incoming: Arc::new(tokio::sync::Mutex::new(incoming)),
            request_timeout: self.request_timeout,
            _inbound: PhantomData,
        };
        let mut state = client.shared.state.subscribe();
        let opened = state.wait_for(|s| !matches!(s, State::Connecting));
        match runtime::timeout(self.connect_timeout, opened).await {
            Some(Ok(state)) => match &*state {
                State::Open => {}
                State::Closed(close) => return Err(ClientError::Closed(close.clone())),
                State::Connecting => unreachable!("waited for another state"),
            },
            Some(Err(_)) => return Err(ClientError::Closed(None)),
            None => {
                client.close();
                return Err(ClientError::Timeout);
            }
        }
        Ok(client)
    }
}

/// A typed client of a ws-core server: `I` is what it sends, `O` what the server sends, the very enums
/// the server declares. Cloning shares the connection.
///
/// It connects again after a close its policy retries ([`close_policy`]), with jittered backoff that
/// starts over once a connection stayed open 5 s; frames sent meanwhile wait in a bounded queue; requests
/// in flight when a connection is lost fail with [`ClientError::Lost`]. After a final close every send
/// and request fails at once with [`ClientError::Closed`], naming it.
pub struct Client<I, O> {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Outgoing>,
    incoming: Arc<tokio::sync::Mutex<mpsc::Receiver<Incoming<O>>>>,
    request_timeout: Duration,
    _inbound: PhantomData<fn(I)>,
}

impl<I, O> Clone for Client<I, O> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            outgoing: self.outgoing.clone(),
            incoming: self.incoming.clone(),
            request_timeout: self.request_timeout,
            _inbound: PhantomData,
        }
    }
}

impl<I, O> fmt::Debug for Client<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Client<(), ()> {
    /// A client of the server at `url` (`ws://` or `wss://`), with the default settings.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            headers: Headers::default(),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_queue: 1024,
            max_pending: 1000,
            message_buffer: 1024,
            stable_after: Duration::from_secs(5),
        }
    }
}

/// `{"type": ..., "data": ..., "id": ...}`, a request's frame.
#[derive(Serialize)]
struct RequestFrame<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a T,
    id: u64,
}

impl<I, O> Client<I, O>
where
    I: InboundMessages,
    O: WsMessages + DeserializeOwned,
{
    /// Connects to `url` with the default settings (see [`ClientBuilder::connect`]).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, ClientError> {
        Client::builder(url).connect().await
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.shared.state.borrow().clone()
    }

    /// Sends a message; it waits in the queue while the client reconnects.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] once closed for good; [`ClientError::QueueFull`] past `max_queue`.
    pub fn send(&self, message: impl Into<I>) -> Result<(), ClientError> {
        self.ended()?;
        let text = serde_json::to_string(&message.into())
            .map_err(|e| ClientError::InvalidReply(e.to_string()))?;
        self.push(Outgoing::frame(text, None))
    }

    /// Sends a request and waits for its reply, typed by the variant's `#[ws(reply = T)]`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Server`] for the server's `$error` (its code and message), [`ClientError::Timeout`],
    /// [`ClientError::Lost`] when the connection went first, [`ClientError::Closed`],
    /// [`ClientError::QueueFull`], [`ClientError::InvalidReply`] for a reply that does not fit.
    pub async fn request<V>(&self, payload: V) -> Result<V::Reply, ClientError>
    where
        V: Variant<Set = I>,
        V::Reply: DeserializeOwned,
    {
        let (id, text) = self.request_frame(&payload)?;
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if pending.len() >= self.shared.max_pending {
                return Err(ClientError::QueueFull);
            }
            pending.insert(id, answer);
        }
        if let Err(e) = self.push(Outgoing::frame(text, Some(id))) {
            lock(&self.shared.pending).remove(&id);
            return Err(e);
        }
        let reply = match runtime::timeout(self.request_timeout, answered).await {
            Some(Ok(reply)) => reply?,
            Some(Err(_)) => return Err(ClientError::Closed(None)),
            None => {
                lock(&self.shared.pending).remove(&id);
                return Err(ClientError::Timeout);
            }
        };
        serde_json::from_str(&reply).map_err(|e| ClientError::InvalidReply(e.to_string()))
    }

    /// Sends a request of a variant declared `#[ws(stream = T)]` and returns its items as they come.
    /// The client resumes the stream by itself after a lost connection (each item once, in order);
    /// dropping the [`Streaming`] cancels it.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] once closed for good; [`ClientError::QueueFull`] past 64 streams at once
    /// or past `max_queue`.
    pub fn stream<V>(&self, payload: V) -> Result<Streaming<V::Item>, ClientError>
    where
        V: Variant<Set = I>,
    {
        const {
            assert!(
                V::IS_STREAM,
                "`Client::stream` takes a variant declared `#[ws(stream = T)]`; use `request` or `send`"
            );
        }
        let (id, text) = self.request_frame(&payload)?;
        let streaming = stream::open(&self.shared.streams, id, self.outgoing.clone())
            .ok_or(ClientError::QueueFull)?;
        self.push(Outgoing::frame(text, None))?;
        Ok(streaming)
    }

    /// A fresh request id and the request's frame, once the client is not closed.
    fn request_frame<V: Variant>(&self, payload: &V) -> Result<(u64, String), ClientError> {
        self.ended()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = RequestFrame {
            kind: V::NAME,
            data: payload,
            id,
        };
        let text =
            serde_json::to_string(&frame).map_err(|e| ClientError::InvalidReply(e.to_string()))?;
        Ok((id, text))
    }

    /// The next message or unanswered `$error` from the server, in arrival order; `None` once the client
    /// is closed for good and everything was read.
    pub async fn next(&self) -> Option<Incoming<O>> {
        self.incoming.lock().await.recv().await
    }

    /// Answers the server's requests of type `V` (a variant of `O`) with `handler`: its `Ok` is the
    /// `$reply`, its `Err` the `$error`. A server request of a type with no handler is answered
    /// `unknown_type` at once; an answer ready only after its connection was lost is dropped.
    pub fn handle<V, F, Fut>(&self, handler: F)
    where
        V: Variant<Set = O>,
        F: Fn(V) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V::Reply, Error>> + MaybeSend + 'static,
    {
        let handler = Arc::new(handler);
        let run: ServerHandler = Arc::new(move |data: &str| {
            let decoded = serde_json::from_str::<V>(data);
            let handler = handler.clone();
            Box::pin(async move {
                let payload = decoded.map_err(|e| Error::invalid_data(e.to_string()))?;
                let reply = handler(payload).await?;
                serde_json::to_value(reply).map_err(Error::internal)
            })
        });
        lock(&self.shared.handlers).insert(V::NAME, run);
    }

    /// The presence list of `group` as this client last heard it (`None` before the server's first
    /// `$presence_state` for it, and after the membership ended). Lists are kept for 1 024 groups and
    /// 10 000 members each at most; a longer list keeps its count.
    pub fn presence(&self, group: &str) -> Option<Presence> {
        lock(&self.shared.presence).get(group)
    }

    /// Server messages dropped because [`next`](Self::next) was not called often enough.
    pub fn dropped_messages(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Closes for good (1000): requests waiting fail, nothing is sent any more.
    pub fn close(&self) {
        let _ = self.outgoing.try_send(Outgoing::Close);
        self.shared.state.send_if_modified(|state| {
            let open = !matches!(state, State::Closed(_));
            if open {
                *state = State::Closed(None);
            }
            open
        });
        self.shared.fail_pending(|| ClientError::Closed(None));
        lock(&self.shared.streams).close(|| ClientError::Closed(None));
    }

    fn ended(&self) -> Result<(), ClientError> {
        match &*self.shared.state.borrow() {
            State::Closed(close) => Err(ClientError::Closed(close.clone())),
            _ => Ok(()),
        }
    }

    fn push(&self, frame: Outgoing) -> Result<(), ClientError> {
        self.outgoing.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ClientError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => ClientError::Closed(None),
        })
    }
}

/// The policy's answer to `close`, with the attempts left.
pub(crate) fn decide(close: &CloseInfo, backoff: &Backoff, attempt: u32) -> CloseDecision {
    let decision = close_policy(close.code);
    if backoff.max_attempts.is_some_and(|max| attempt >= max) {
        return CloseDecision::Stop;
    }
    decision
}

/// A frame as it arrives: what routes it, with `data` left as JSON text.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default, borrow)]
    pub(crate) data: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) pos: Option<Position>,
    #[serde(default)]
    pub(crate) seq: Option<u64>,
}
