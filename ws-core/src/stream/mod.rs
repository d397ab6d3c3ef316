//! Typed streams: a request answered by many items, which survives a lost connection.
//!
//! A client → server variant declares `#[ws(stream = Item)]`; its handler takes a [`Chunks<Item>`] and
//! sends items with [`Chunks::send`]; returning `Ok` ends the stream, an error ends it with that error.
//!
//! ```
//! use ws_core::stream::Chunks;
//! use ws_core::{Error, on, payload, ws_messages};
//!
//! #[payload]
//! pub struct Token {
//!     pub text: String,
//! }
//!
//! #[ws_messages]
//! pub enum Inbound {
//!     #[ws(stream = Token)]
//!     Ask { question: String },
//! }
//!
//! #[on(Inbound::Ask)]
//! async fn ask(mut chunks: Chunks<Token>, msg: inbound::Ask) -> Result<(), Error> {
//!     for word in msg.question.split(' ') {
//!         chunks.send(Token { text: word.to_owned() }).await?;
//!     }
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! # Guarantees
//!
//! - **Its own task.** A stream's handler runs beside the client's other handlers, not in their line: a
//!   long answer does not hold up the client's next frames. A client reads at most
//!   `max_streams_per_client` streams at once (`$error` `limit_exceeded` past it), a node keeps at most
//!   `max_streams` (`overloaded`).
//! - **Framed by the request.** The request `{"type", "id", "data"}` is answered first with
//!   `{"type": "$stream", "id", "data": {"stream": "<key>"}}`, then one `{"type": "$chunk", "id", "seq",
//!   "data": <item>}` per item (`seq` counts from 1), then `{"type": "$end", "id", "data": {"count": N}}`,
//!   or the handler's error as `$error` with the `id`. The key is 128 random bits: it is what lets a
//!   reader resume.
//! - **Cancel.** `{"type": "$cancel", "data": {"id": 7}}` drops the handler's future at its next await:
//!   its work stops, nothing more is sent, and the stream is forgotten (counted in `streams_cancelled`).
//! - **Resume.** A reader that lost its connection sends, on its next one, `{"type": "$resume", "id": 9,
//!   "data": {"stream": "<key>", "after": 300}}`, and gets `$stream` with the new `id`, every chunk after
//!   `seq` 300 once and in order, then the rest live, then the end. The stream keeps its last
//!   `stream_kept_chunks` chunks and `stream_kept_bytes` of item JSON for that; while it has no reader, the
//!   producer waits once that is full, so what a resuming reader missed is still there. A resume the
//!   stream cannot serve is `$error`: `not_found` for a key this node does not keep (never started,
//!   cancelled, or forgotten), `expired` when chunks after `after` were dropped, `forbidden` for another
//!   user's stream. A stream without a reader for `stream_resume_timeout` is cancelled; an ended one is
//!   forgotten that long after its end.
//! - **Backpressure, not buffering.** [`Chunks::send`] waits while the reader's send queue holds more
//!   than `stream_window_bytes`, so a slow reader slows its producer down; the server holds at most that
//!   window plus one item in the reader's queue and the kept chunks per stream, whatever the producer
//!   does.
//! - **Any node resumes.** A stream lives in the memory of the node its handler runs on. With a
//!   backplane that links nodes (Redis), a reader that comes back to another node resumes through it:
//!   that node asks the others ([`StreamOrder::Resume`]), and the node running the stream sends the replay
//!   and the rest to the reader through the backplane (without the window: the reader's node applies its
//!   send-queue bounds). No answer within two seconds is `not_found`, as is a stream whose node stopped
//!   or restarted. A `$cancel` reaches the node running the stream the same way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::client::id::ClientId;
use crate::config::Config;
use crate::error::{Error, ErrorCode};
use crate::member::Member;
use crate::protocol::{self, Frame};
use crate::stats::{Stats, bump};
use crate::sync::lock;

pub(crate) mod requests;

/// The `type` of the frame that opens a stream: `{"stream": "<key>"}` with the request's `id`.
pub const STREAM_TYPE: &str = "$stream";
/// The `type` of one item of a stream: `data` is the item, `seq` its number from 1.
pub const CHUNK_TYPE: &str = "$chunk";
/// The `type` of a stream's end: `{"count": N}` with the request's `id`.
pub const END_TYPE: &str = "$end";
/// The `type` of a client's cancel of a stream: `{"id": <the stream request's id>}`.
pub const CANCEL_TYPE: &str = "$cancel";
/// The `type` of a client's resume of a stream after a lost connection: `{"stream", "after"}`, with an
/// `id` of its own.
pub const RESUME_TYPE: &str = "$resume";

/// The chunks of the stream that answers the request being handled: a handler argument for a variant
/// declared `#[ws(stream = T)]` (see the [module docs](self)).
pub struct Chunks<T> {
    stream: Arc<Stream>,
    item: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for Chunks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunks")
            .field("stream", &self.stream.key)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> Chunks<T> {
    pub(crate) fn new(stream: Arc<Stream>) -> Self {
        Self {
            stream,
            item: PhantomData,
        }
    }

    /// Sends one item; waits while the reader is behind by more than `stream_window_bytes`, or, with no
    /// reader, while the kept chunks are full.
    ///
    /// # Errors
    ///
    /// `not_found` when the stream is over for its reader (cancelled, or not resumed in time): stop
    /// producing; returned from the handler with `?`, nothing more is sent. `internal` when the item
    /// cannot be serialized.
    pub async fn send(&mut self, item: T) -> Result<(), Error> {
        let item = serde_json::value::to_raw_value(&item)?;
        self.stream.push(item).await
    }

    /// The items sent so far.
    pub fn sent(&self) -> u64 {
        lock(&self.stream.state).seq
    }
}

/// How a stream ended.
#[derive(Debug, Clone)]
enum End {
    Done(u64),
    Failed(Error),
}

/// Sends a frame to a client of another node (through the backplane); `false` when no node has it.
pub(crate) type RemoteSend = Arc<dyn Fn(&ClientId, &Frame) -> bool + Send + Sync>;

/// Where a stream's reader is.
enum ReaderAt {
    /// A connection of this node: the producer waits on its send queue.
    Here(Member),
    /// A client of another node, reached through the backplane: no window (its node's send-queue bounds
    /// apply there).
    Elsewhere(ClientId, RemoteSend),
}

/// Who reads a stream now, and the request id its frames carry.
struct Reader {
    at: ReaderAt,
    id: u64,
}

impl Reader {
    fn send(&self, frame: Frame) -> bool {
        match &self.at {
            ReaderAt::Here(member) => member.send(frame).is_ok(),
            ReaderAt::Elsewhere(client, send) => send(client, &frame),
        }
    }

    fn client(&self) -> &ClientId {
        match &self.at {
            ReaderAt::Here(member) => member.id(),
            ReaderAt::Elsewhere(client, _) => client,
        }
    }

    /// The reader's connection, when it is on this node and still connected.
    fn here(&self) -> Option<&Member> {
        match &self.at {
            ReaderAt::Here(member) if member.is_connected() => Some(member),
            _ => None,
        }
    }

    fn connected(&self) -> bool {
        match &self.at {
            ReaderAt::Here(member) => member.is_connected(),
            ReaderAt::Elsewhere(..) => true,
        }
    }
}

struct State {
    /// The last items, with their `seq`, for a resume.
    kept: VecDeque<(u64, Box<RawValue>)>,
    kept_bytes: usize,
    /// The last `seq` given.
    seq: u64,
    reader: Option<Reader>,
    /// Bumped whenever the reader changes, so a resume deadline knows whether it still applies.
    generation: u64,
    ended: Option<End>,
    cancelled: bool,
}

/// One stream: its key, owner, kept chunks and reader.
pub(crate) struct Stream {
    key: String,
    user: Option<String>,
    state: Mutex<State>,
    /// Wakes a producer waiting for a reader (a resume) or for room among the kept chunks.
    changed: Notify,
    task: OnceLock<AbortHandle>,
    /// The node's streams, which forget this one when its reader does not come back.
    streams: Weak<Streams>,
    window: usize,
    kept_chunks: usize,
    kept_bytes: usize,
}

fn chunk_frame(id: u64, seq: u64, item: &RawValue) -> Frame {
    #[derive(Serialize)]
    struct Chunk<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: u64,
        seq: u64,
        data: &'a RawValue,
    }
    Frame::serialized(&Chunk {
        kind: CHUNK_TYPE,
        id,
        seq,
        data: item,
    })
}

fn opened_frame(id: u64, key: &str) -> Frame {
    Frame::serialized(&serde_json::json!({"type": STREAM_TYPE, "id": id, "data": {"stream": key}}))
}

fn end_frame(id: u64, end: &End) -> Frame {
    match end {
        End::Done(count) => Frame::serialized(
            &serde_json::json!({"type": END_TYPE, "id": id, "data": {"count": count}}),
        ),
        End::Failed(err) => protocol::error_frame(Some(id), err),
    }
}

impl Stream {
    async fn push(self: &Arc<Self>, item: Box<RawValue>) -> Result<(), Error> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let waiting_for = {
                let mut state = lock(&self.state);
                if state.cancelled || state.ended.is_some() {
                    return Err(Error::not_found("the stream is over"));
                }
                let behind = state.reader.as_ref().filter(|r| r.connected()).map(|r| {
                    r.here()
                        .is_some_and(|m| m.queue().queued_bytes() > self.window)
                });
                match behind {
                    Some(false) => {
                        self.keep(&mut state, item);
                        return Ok(());
                    }
                    Some(true) => state.reader.as_ref().and_then(|r| r.here().cloned()),
                    None if state.kept.len() < self.kept_chunks
                        && state.kept_bytes + item.get().len() <= self.kept_bytes =>
                    {
                        self.keep(&mut state, item);
                        return Ok(());
                    }
                    None => None,
                }
            };
            match waiting_for {
                Some(reader) => {
                    tokio::select! {
                        () = reader.queue().space(self.window) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Numbers `item`, keeps it for a resume and sends it to the reader, under the lock a resume takes, so
    /// a resumed reader gets the replay before anything live.
    fn keep(self: &Arc<Self>, state: &mut State, item: Box<RawValue>) {
        state.seq += 1;
        let seq = state.seq;
        if let Some(reader) = &state.reader
            && !reader.send(chunk_frame(reader.id, seq, &item))
        {
            // The reader is gone (a client elsewhere that left): wait for a resume, for a while.
            state.reader = None;
            state.generation += 1;
            if let Some(streams) = self.streams.upgrade() {
                streams.await_resume(self.clone(), state.generation);
            }
        }
        state.kept_bytes += item.get().len();
        state.kept.push_back((seq, item));
        while state.kept.len() > self.kept_chunks
            || (state.kept_bytes > self.kept_bytes && state.kept.len() > 1)
        {
            if let Some((_, dropped)) = state.kept.pop_front() {
                state.kept_bytes -= dropped.get().len();
            }
        }
    }
}

/// An order about a stream, between nodes: a reader that comes back to another node than its stream's
/// resumes it through the backplane (`Backplane::stream_order_elsewhere`, applied with
/// `MemoryBackplane::stream_order`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamOrder {
    /// Client `reader` (on the sending node) resumes stream `key` after `after`, as its request `id`.
    Resume {
        /// The stream's key.
        key: String,
        /// The last `seq` the reader got.
        after: u64,
        /// The reader.
        reader: ClientId,
        /// The reader's request id.
        id: u64,
        /// The reader's user, checked against the stream's.
        user: Option<String>,
    },
    /// The node holding the stream answered `reader`'s request `id` (the chunks, or an `$error`).
    Answered {
        /// The reader.
        reader: ClientId,
        /// Its request id.
        id: u64,
    },
    /// Client `reader` cancels the stream it reads with request `id`.
    Cancel {
        /// The reader.
        reader: ClientId,
        /// Its request id.
        id: u64,
    },
}

/// How a node's streams reach the other nodes, when a backplane links them.
pub(crate) struct Links {
    /// A frame for a client of another node.
    pub(crate) send: RemoteSend,
    /// An order for every other node.
    pub(crate) order: Arc<dyn Fn(&StreamOrder) + Send + Sync>,
}

/// How long a resume of a stream this node does not hold waits for another node to answer it.
const ELSEWHERE_WAIT: Duration = Duration::from_secs(2);

/// The streams of one node, by key and by reader.
pub(crate) struct Streams {
    by_key: Mutex<HashMap<String, Arc<Stream>>>,
    /// Resumes sent to the other nodes and not answered yet: (reader, request id).
    asked_elsewhere: Mutex<HashSet<(ClientId, u64)>>,
    links: OnceLock<Links>,
    this: Weak<Streams>,
    max_per_client: usize,
    max: usize,
    window: usize,
    kept_chunks: usize,
    kept_bytes: usize,
    resume_timeout: Duration,
    stats: Arc<Stats>,
}

/// A `$resume` request's data.
#[derive(Deserialize)]
struct Resume {
    stream: String,
    #[serde(default)]
    after: u64,
}

impl Streams {
    pub(crate) fn new(config: &Config, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            by_key: Mutex::new(HashMap::new()),
            asked_elsewhere: Mutex::new(HashSet::new()),
            links: OnceLock::new(),
            this: this.clone(),
            max_per_client: config.max_streams_per_client,
            max: config.max_streams,
            window: config.stream_window_bytes,
            kept_chunks: config.stream_kept_chunks,
            kept_bytes: config.stream_kept_bytes,
            resume_timeout: config.stream_resume_timeout,
            stats,
        })
    }

    /// Links this node's streams to the other nodes: readers may resume through any of them.
    pub(crate) fn link(&self, links: Links) {
        let _ = self.links.set(links);
    }

    fn reading(&self, member: &Member) -> usize {
        lock(&self.by_key)
            .values()
            .filter(|s| {
                let state = lock(&s.state);
                state.ended.is_none()
                    && state
                        .reader
                        .as_ref()
                        .is_some_and(|r| r.client() == member.id())
            })
            .count()
    }

    /// Opens a stream for request `id` of `member` and tells it the key (`$stream`).
    ///
    /// # Errors
    ///
    /// `limit_exceeded` past `max_streams_per_client`, `overloaded` past `max_streams`.
    pub(crate) fn open(&self, member: &Member, id: u64) -> Result<Arc<Stream>, Error> {
        if self.reading(member) >= self.max_per_client {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!("at most {} streams at once", self.max_per_client),
            ));
        }
        let bits: u128 = rand::random();
        let stream = Arc::new(Stream {
            key: format!("{bits:032x}"),
            user: member.user().map(str::to_owned),
            state: Mutex::new(State {
                kept: VecDeque::new(),
                kept_bytes: 0,
                seq: 0,
                reader: Some(Reader {
                    at: ReaderAt::Here(member.clone()),
                    id,
                }),
                generation: 0,
                ended: None,
                cancelled: false,
            }),
            changed: Notify::new(),
            task: OnceLock::new(),
            streams: self.this.clone(),
            window: self.window,
            kept_chunks: self.kept_chunks,
            kept_bytes: self.kept_bytes,
        });
        {
            let mut by_key = lock(&self.by_key);
            if by_key.len() >= self.max {
                return Err(Error::new(
                    ErrorCode::Overloaded,
                    "too many streams on this server",
                ));
            }
            by_key.insert(stream.key.clone(), stream.clone());
        }
        bump(&self.stats.streams_started);
        let _ = member.send(opened_frame(id, &stream.key));
        Ok(stream)
    }

    /// Records the task that produces `stream`, so a cancel can stop it.
    pub(crate) fn started(&self, stream: &Stream, task: AbortHandle) {
        let _ = stream.task.set(task);
    }

    /// The handler returned: the reader gets the end, and the stream stays resumable for a while.
    pub(crate) fn ended(self: &Arc<Self>, stream: &Arc<Stream>, result: Result<(), Error>) {
        let end = match result {
            Ok(()) => End::Done(lock(&stream.state).seq),
            Err(err) => End::Failed(err),
        };
        {
            let mut state = lock(&stream.state);
            if state.cancelled {
                return;
            }
            if let Some(reader) = &state.reader {
                reader.send(end_frame(reader.id, &end));
            }
            state.ended = Some(end);
        }
        stream.changed.notify_waiters();
        let streams = self.clone();
        let key = stream.key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(streams.resume_timeout).await;
            lock(&streams.by_key).remove(&key);
        });
    }

    /// `$cancel {id}` from `member`: stops the stream it reads with request `id`, here or on the node
    /// that runs it.
    pub(crate) fn cancel(&self, member: &Member, id: u64) {
        if !self.cancel_for(member.id(), id)
            && let Some(links) = self.links.get()
        {
            (links.order)(&StreamOrder::Cancel {
                reader: member.id().clone(),
                id,
            });
        }
    }

    /// Stops the stream `reader` reads with request `id`; whether this node runs it.
    fn cancel_for(&self, reader: &ClientId, id: u64) -> bool {
        let found = lock(&self.by_key)
            .values()
            .find(|s| {
                lock(&s.state)
                    .reader
                    .as_ref()
                    .is_some_and(|r| r.id == id && r.client() == reader)
            })
            .cloned();
        let Some(stream) = found else {
            return false;
        };
        self.stop(&stream);
        bump(&self.stats.streams_cancelled);
        true
    }

    /// Ends `stream` without a word to its reader, stops its producer, and forgets it.
    fn stop(&self, stream: &Stream) {
        {
            let mut state = lock(&stream.state);
            state.cancelled = true;
            state.reader = None;
            state.kept = VecDeque::new();
        }
        if let Some(task) = stream.task.get() {
            task.abort();
        }
        stream.changed.notify_waiters();
        lock(&self.by_key).remove(&stream.key);
    }

    /// `$resume {stream, after}` as request `id` of `member`: served here when this node runs the stream,
    /// else asked of the other nodes (answered `not_found` when none does within two seconds).
    pub(crate) fn resume(&self, member: &Member, id: u64, data: &str) -> Result<(), Error> {
        let resume: Resume =
            serde_json::from_str(data).map_err(|e| Error::invalid_data(format!("$resume: {e}")))?;
        let not_kept =
            || Error::not_found("no such stream: it ended long ago, was cancelled, or never began");
        let stream = lock(&self.by_key).get(&resume.stream).cloned();
        if let Some(stream) = stream {
            let reader = Reader {
                at: ReaderAt::Here(member.clone()),
                id,
            };
            return self.attach(&stream, reader, resume.after, member.user());
        }
        let Some(links) = self.links.get() else {
            return Err(not_kept());
        };
        let asked = (member.id().clone(), id);
        {
            let mut asked_elsewhere = lock(&self.asked_elsewhere);
            if asked_elsewhere.len() >= self.max {
                return Err(not_kept());
            }
            asked_elsewhere.insert(asked.clone());
        }
        (links.order)(&StreamOrder::Resume {
            key: resume.stream,
            after: resume.after,
            reader: member.id().clone(),
            id,
            user: member.user().map(str::to_owned),
        });
        let (streams, member) = (self.this.clone(), member.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ELSEWHERE_WAIT).await;
            let unanswered = streams
                .upgrade()
                .is_some_and(|s| lock(&s.asked_elsewhere).remove(&asked));
            if unanswered {
                let _ = member.send(protocol::error_frame(Some(id), &not_kept()));
            }
        });
        Ok(())
    }

    /// Makes `reader` the stream's reader after `after`: `$stream`, the kept chunks after it, and the end
    /// if the stream is over.
    fn attach(
        &self,
        stream: &Arc<Stream>,
        reader: Reader,
        after: u64,
        user: Option<&str>,
    ) -> Result<(), Error> {
        if stream.user.is_some() && stream.user.as_deref() != user {
            return Err(Error::forbidden("another user's stream"));
        }
        {
            let mut state = lock(&stream.state);
            if state.cancelled {
                return Err(Error::not_found("the stream was cancelled"));
            }
            let first_kept = state.kept.front().map_or(state.seq + 1, |(seq, _)| *seq);
            if after + 1 < first_kept {
                return Err(Error::custom(
                    "expired",
                    format!(
                        "chunks {}..{} are no longer kept (a stream keeps its last {})",
                        after + 1,
                        first_kept - 1,
                        self.kept_chunks
                    ),
                ));
            }
            reader.send(opened_frame(reader.id, &stream.key));
            for (seq, item) in state.kept.iter().filter(|(seq, _)| *seq > after) {
                reader.send(chunk_frame(reader.id, *seq, item));
            }
            if let Some(end) = &state.ended {
                reader.send(end_frame(reader.id, end));
            }
            state.reader = Some(reader);
            state.generation += 1;
        }
        bump(&self.stats.streams_resumed);
        stream.changed.notify_waiters();
        Ok(())
    }

    /// An order from another node.
    pub(crate) fn order(&self, order: &StreamOrder) {
        match order {
            StreamOrder::Resume {
                key,
                after,
                reader,
                id,
                user,
            } => {
                let Some(links) = self.links.get() else {
                    return;
                };
                let Some(stream) = lock(&self.by_key).get(key).cloned() else {
                    return;
                };
                let remote = Reader {
                    at: ReaderAt::Elsewhere(reader.clone(), links.send.clone()),
                    id: *id,
                };
                if let Err(err) = self.attach(&stream, remote, *after, user.as_deref()) {
                    (links.send)(reader, &protocol::error_frame(Some(*id), &err));
                }
                (links.order)(&StreamOrder::Answered {
                    reader: reader.clone(),
                    id: *id,
                });
            }
            StreamOrder::Answered { reader, id } => {
                lock(&self.asked_elsewhere).remove(&(reader.clone(), *id));
            }
            StreamOrder::Cancel { reader, id } => {
                self.cancel_for(reader, *id);
            }
        }
    }

    /// `member`'s connection is gone: its streams wait `stream_resume_timeout` for a resume, then stop.
    pub(crate) fn detach(&self, member: &ClientId) {
        let streams: Vec<Arc<Stream>> = lock(&self.by_key).values().cloned().collect();
        for stream in streams {
            let generation = {
                let mut state = lock(&stream.state);
                if state.reader.as_ref().is_none_or(|r| r.client() != member) {
                    continue;
                }
                state.reader = None;
                state.generation += 1;
                if state.ended.is_some() {
                    continue;
                }
                state.generation
            };
            stream.changed.notify_waiters();
            self.await_resume(stream, generation);
        }
    }

    /// Stops `stream` if its reader has not changed since `generation` within `stream_resume_timeout`.
    fn await_resume(&self, stream: Arc<Stream>, generation: u64) {
        let streams = self.this.clone();
        let timeout = self.resume_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let abandoned = {
                let state = lock(&stream.state);
                state.generation == generation && state.ended.is_none()
            };
            if abandoned && let Some(streams) = streams.upgrade() {
                streams.stop(&stream);
                bump(&streams.stats.streams_cancelled);
            }
        });
    }
}
