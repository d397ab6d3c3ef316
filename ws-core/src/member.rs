//! `Member`: what delivery knows of one connected client.
//!
//! A member is the client as the backplanes and group registries hold it: its id, its bounded send queue,
//! whether it is still connected, and the state its connection keeps (compression, close request, pending
//! requests, metadata). It knows nothing of the server, so a backplane built on members depends on
//! delivery alone. A [`Client`](crate::Client) is a member together with its server, and adds the
//! application's API (`to`, `join`, `request`).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{Notify, oneshot};

use crate::client::id::ClientId;
use crate::close::CloseCode;
use crate::compression::negotiate::Negotiated;
use crate::error::{Error, ErrorCode, SendError};
use crate::message::IntoFrame;
use crate::protocol::{self, Frame};
use crate::send_queue::{Bounds, PushError, Pushed, SendQueue, Stamp};
use crate::session::Session;
use crate::stats::{Stats, bump};
use crate::sync::lock;

/// Why the server cuts a connection short, without waiting for a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// The connection has ended on its own (end of stream, failed write); stop the other task.
    Finished,
    SlowConsumer,
    PongTimeout,
    WriteTimeout,
    ShutdownDeadline,
}

/// Where the client's answer to a server request goes.
type AnswerSender = oneshot::Sender<Result<Box<RawValue>, Error>>;

/// A client's presence meta as JSON text, kept as an extension of the member: presence computes it, a
/// distributed backplane replicates it to the other nodes.
#[derive(Debug, Clone)]
pub(crate) struct PresenceMeta(pub(crate) Arc<str>);

/// The bounds a member is created with, from the server's [`Config`](crate::Config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) queue: Bounds,
    pub(crate) max_pending_requests: usize,
    pub(crate) max_metadata_bytes: usize,
}

/// One connected client as delivery sees it: cheap to clone, safe to keep after the client has gone
/// (sends then fail with [`SendError::Disconnected`]).
#[derive(Clone)]
pub struct Member {
    inner: Arc<MemberInner>,
}

/// Laid out in declaration order: a fan-out touches every recipient's queue, liveness, compression and
/// counters, so those come first, together, and the rest after.
#[repr(C)]
struct MemberInner {
    queue: SendQueue,
    alive: AtomicBool,
    /// Set when the client negotiated compression.
    compression: Option<Negotiated>,
    /// The server's counters that delivery moves.
    stats: Arc<Stats>,
    id: ClientId,
    abort: OnceLock<Abort>,
    abort_notify: Notify,
    close_request: Mutex<Option<(CloseCode, String)>>,
    close_notify: Notify,
    /// Each value with its size as counted against `max_metadata_bytes`.
    metadata: Mutex<HashMap<String, (Value, usize)>>,
    extensions: Mutex<HashMap<std::any::TypeId, Box<dyn Any + Send + Sync>>>,
    started: Instant,
    last_pong_ms: AtomicU64,
    pending: Mutex<HashMap<u64, AnswerSender>>,
    next_request_id: AtomicU64,
    /// Its user and expiry, when the authenticator named either or the server refreshes sessions.
    session: OnceLock<Arc<Session>>,
    limits: Limits,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.inner.id)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Member {
    pub(crate) fn new(
        id: ClientId,
        limits: Limits,
        stats: Arc<Stats>,
        compression: Option<Negotiated>,
    ) -> Self {
        Self {
            inner: Arc::new(MemberInner {
                id,
                queue: SendQueue::new(limits.queue),
                alive: AtomicBool::new(true),
                abort: OnceLock::new(),
                abort_notify: Notify::new(),
                close_request: Mutex::new(None),
                close_notify: Notify::new(),
                metadata: Mutex::new(HashMap::new()),
                extensions: Mutex::new(HashMap::new()),
                started: Instant::now(),
                last_pong_ms: AtomicU64::new(0),
                pending: Mutex::new(HashMap::new()),
                next_request_id: AtomicU64::new(1),
                compression,
                session: OnceLock::new(),
                limits,
                stats,
            }),
        }
    }

    /// The client's id.
    pub fn id(&self) -> &ClientId {
        &self.inner.id
    }

    /// Whether the client is still connected (false from the moment its disconnection starts).
    pub fn is_connected(&self) -> bool {
        self.inner.alive.load(Ordering::Acquire)
    }

    /// Queues a frame for this client and returns at once.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the client has disconnected; [`SendError::SlowConsumer`] when its
    /// send queue passed its bounds, in which case the client is being dropped.
    pub fn send(&self, msg: impl IntoFrame) -> Result<(), SendError> {
        self.deliver(&msg.into_frame(), Stamp::now())
    }

    /// Queues a frame as of `now`; a fan-out reads the clock once for all its recipients.
    pub(crate) fn deliver(&self, frame: &Frame, now: Stamp) -> Result<(), SendError> {
        if !self.is_connected() {
            return Err(SendError::Disconnected);
        }
        let stats = &self.inner.stats;
        let message = match &self.inner.compression {
            Some(compression) => {
                frame.for_compressing_client(compression, &stats.frames_compressed)
            }
            None => frame.message.clone(),
        };
        match self.inner.queue.push(message, &frame.delivery, now) {
            Ok(Pushed::Queued) => Ok(()),
            Ok(Pushed::Skipped) => {
                bump(&stats.dropped_volatile);
                Ok(())
            }
            Ok(Pushed::Coalesced) => {
                bump(&stats.coalesced);
                Ok(())
            }
            Err(PushError::Closed) => Err(SendError::Disconnected),
            Err(PushError::Full) => {
                if self.abort(Abort::SlowConsumer) {
                    bump(&stats.slow_consumer_drops);
                }
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Sends a request frame and waits for the answer's `data`, bounded by `max_pending_requests`.
    pub(crate) async fn request_raw<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<Box<RawValue>, Error> {
        let id =
            self.inner.next_request_id.fetch_add(1, Ordering::Relaxed) % protocol::MAX_REQUEST_ID;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.pending);
            if pending.len() >= self.inner.limits.max_pending_requests {
                return Err(Error::new(
                    ErrorCode::LimitExceeded,
                    "too many requests waiting for this client",
                ));
            }
            pending.insert(id, tx);
        }
        // Removes the entry however this future ends: answered, timed out, or dropped.
        struct Pending<'a>(&'a MemberInner, u64);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                lock(&self.0.pending).remove(&self.1);
            }
        }
        let _pending = Pending(&self.inner, id);
        self.send(protocol::request_frame(kind, data, id))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::not_found("client disconnected")),
            Err(_) => Err(Error::new(
                ErrorCode::Timeout,
                format!("no answer to {kind:?} within {timeout:?}"),
            )),
        }
    }

    /// Delivers the client's answer to a pending request; `false` when no request has that id.
    pub(crate) fn resolve(&self, id: u64, answer: Result<Box<RawValue>, Error>) -> bool {
        match lock(&self.inner.pending).remove(&id) {
            Some(waiter) => waiter.send(answer).is_ok(),
            None => false,
        }
    }

    /// Fails every pending request (the client is gone).
    pub(crate) fn drop_pending(&self) {
        lock(&self.inner.pending).clear();
    }

    /// Stores a metadata value under `key` (any serializable value, kept as JSON).
    ///
    /// # Errors
    ///
    /// `internal` if the value cannot be represented as JSON; `limit_exceeded` if the client's metadata
    /// would hold more than `max_metadata_bytes` (each key's length plus its value's JSON length), in which
    /// case nothing is stored.
    pub(crate) fn set_metadata(
        &self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<(), Error> {
        let key = key.into();
        let value = serde_json::to_value(value)?;
        let size = metadata_bytes(&key, &value);
        let max = self.inner.limits.max_metadata_bytes;
        let mut metadata = lock(&self.inner.metadata);
        let others: usize = metadata
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, (_, size))| size)
            .sum();
        if others + size > max {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!("client metadata would exceed {max} bytes"),
            ));
        }
        metadata.insert(key, (value, size));
        Ok(())
    }

    /// A metadata value.
    pub(crate) fn get_metadata(&self, key: &str) -> Option<Value> {
        lock(&self.inner.metadata)
            .get(key)
            .map(|(value, _)| value.clone())
    }

    /// Removes a metadata value and returns it.
    pub(crate) fn remove_metadata(&self, key: &str) -> Option<Value> {
        lock(&self.inner.metadata)
            .remove(key)
            .map(|(value, _)| value)
    }

    /// Stores a typed value on the client, one per type (like `http::Extensions`).
    ///
    /// ```no_run
    /// # fn f(client: ws_core::Client) {
    /// #[derive(Clone)]
    /// struct User { name: String }
    /// client.insert_extension(User { name: "ann".into() });
    /// assert_eq!(client.extension::<User>().unwrap().name, "ann");
    /// # }
    /// ```
    pub(crate) fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        lock(&self.inner.extensions).insert(std::any::TypeId::of::<T>(), Box::new(value));
    }

    /// A copy of the typed value stored with [`Client::insert_extension`](crate::Client::insert_extension)
    /// or the authenticator's [`ClientData::extension`](crate::auth::ClientData::extension).
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.inner.extensions)
            .get(&std::any::TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Starts a clean close: frames already queued are written, then a close frame with `code` and
    /// `reason`, then the server waits (at most `close_timeout`) for the client's close frame.
    pub(crate) fn close(&self, code: CloseCode, reason: impl Into<String>) {
        {
            let mut request = lock(&self.inner.close_request);
            if request.is_some() {
                return;
            }
            let reason = reason.into();
            tracing::debug!(target: "ws_core::connection", client_id = %self.id(), code = code.as_u16(), %reason, "closing");
            *request = Some((code, reason));
            self.inner.close_notify.notify_one();
        }
        // Input is discarded from now on, so no answer to a pending request can arrive.
        self.drop_pending();
    }

    /// Cuts the connection without a handshake. Returns whether this call was the first to do so.
    pub(crate) fn abort(&self, why: Abort) -> bool {
        let first = self.inner.abort.set(why).is_ok();
        if first {
            self.mark_gone();
            self.inner.abort_notify.notify_waiters();
        }
        first
    }

    /// Why the connection was aborted, if it was.
    pub(crate) fn abort_reason(&self) -> Option<Abort> {
        self.inner.abort.get().copied()
    }

    /// Resolves once the connection is aborted.
    pub(crate) async fn aborted(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches a `Notified` from its creation on.
            let notified = self.inner.abort_notify.notified();
            if self.inner.abort.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Marks the client as gone: it leaves `connected_clients` at once and can join no group.
    pub(crate) fn mark_gone(&self) {
        if self.inner.alive.swap(false, Ordering::AcqRel) {
            self.inner
                .stats
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn take_close_request(&self) -> Option<(CloseCode, String)> {
        lock(&self.inner.close_request).clone()
    }

    pub(crate) async fn close_requested(&self) {
        loop {
            let notified = self.inner.close_notify.notified();
            if lock(&self.inner.close_request).is_some() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn set_session(&self, session: Session) {
        let _ = self.inner.session.set(Arc::new(session));
    }

    pub(crate) fn session(&self) -> Option<&Arc<Session>> {
        self.inner.session.get()
    }

    /// The user its authenticator named ([`ClientData::user`](crate::auth::ClientData::user)).
    pub fn user(&self) -> Option<&str> {
        self.session().and_then(|s| s.user())
    }

    pub(crate) fn queue(&self) -> &SendQueue {
        &self.inner.queue
    }

    pub(crate) fn record_pong(&self) {
        let ms = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.inner.last_pong_ms.store(ms, Ordering::Release);
    }

    /// When the last pong arrived (the connection's start if none has).
    pub(crate) fn last_pong(&self) -> Instant {
        self.inner.started
            + std::time::Duration::from_millis(self.inner.last_pong_ms.load(Ordering::Acquire))
    }
}

/// What one metadata entry counts against `max_metadata_bytes`: the key's length and the value's JSON length.
pub(crate) fn metadata_bytes(key: &str, value: &Value) -> usize {
    key.len() + crate::protocol::json_len(value)
}
