//! Streams: a request answered by items (`#[ws(stream = T)]`), read with [`Streaming::next`], resumed by
//! the client itself after a lost connection (`$resume` with the last `seq` it got), cancelled when
//! dropped (`$cancel`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use ws_protocol::Error;

use crate::client::lock;
use crate::driver::Outgoing;
use crate::error::{ClientError, CloseInfo};

/// Items a stream holds for [`Streaming::next`]; at that many, the connection's socket is not read until
/// the reader takes one, so the server's producer waits instead of this client's memory growing.
pub(crate) const STREAM_BUFFER: usize = 1024;
/// Streams one client reads at once, at most (the server's default per client is 16).
pub(crate) const MAX_STREAMS: usize = 64;

/// What arrived for one stream and not read yet.
#[derive(Default)]
struct Buffer {
    items: VecDeque<String>,
    /// `Some` once the stream is over: its end, or why it failed.
    end: Option<Result<(), ClientError>>,
}

/// One stream's buffer, shared by its reader and the connection's task.
pub(crate) struct StreamShared {
    buffer: Mutex<Buffer>,
    /// Wakes the reader: an item or the end arrived.
    items: Notify,
    /// Wakes the connection's task: the reader took an item, or is gone.
    space: Notify,
}

impl StreamShared {
    /// Whether the buffer is full and its reader still there.
    pub(crate) fn is_full(&self) -> bool {
        let buffer = lock(&self.buffer);
        buffer.items.len() >= STREAM_BUFFER && buffer.end.is_none()
    }

    /// Resolves once the reader took an item or went away.
    pub(crate) fn space(&self) -> tokio::sync::futures::Notified<'_> {
        self.space.notified()
    }
}

/// One stream as the connection's task sees it.
struct Entry {
    /// The server's key, once `$stream` came: what a resume names.
    key: Option<String>,
    /// The last `seq` received.
    last: u64,
    buffer: Arc<StreamShared>,
}

/// The client's streams, by request id.
#[derive(Default)]
pub(crate) struct Streams {
    by_id: HashMap<u64, Entry>,
}

impl Streams {
    fn finish(&mut self, id: u64, end: Result<(), ClientError>) {
        if let Some(entry) = self.by_id.remove(&id) {
            lock(&entry.buffer.buffer).end.get_or_insert(end);
            entry.buffer.items.notify_waiters();
            entry.buffer.space.notify_waiters();
        }
    }

    /// Whether `id` is one of this client's streams (its `$error` ends the stream).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// `$stream`: the key that a resume names.
    pub(crate) fn opened(&mut self, id: u64, key: String) {
        if let Some(entry) = self.by_id.get_mut(&id) {
            entry.key = Some(key);
        }
    }

    /// A `$chunk`: kept for the reader unless seen already; returns the stream when its buffer is now
    /// full, so the connection's task waits for the reader before it reads on.
    pub(crate) fn chunk(&mut self, id: u64, seq: u64, item: &str) -> Option<Arc<StreamShared>> {
        let entry = self.by_id.get_mut(&id)?;
        if seq <= entry.last {
            return None;
        }
        entry.last = seq;
        let full = {
            let mut buffer = lock(&entry.buffer.buffer);
            buffer.items.push_back(item.to_owned());
            buffer.items.len() >= STREAM_BUFFER
        };
        entry.buffer.items.notify_waiters();
        full.then(|| entry.buffer.clone())
    }

    /// `$end`.
    pub(crate) fn ended(&mut self, id: u64) {
        self.finish(id, Ok(()));
    }

    /// An `$error` answering the stream (its handler's error, or a resume the server could not serve).
    pub(crate) fn failed(&mut self, id: u64, error: Error) {
        self.finish(id, Err(ClientError::Server(error)));
    }

    /// The connection is gone: a stream whose key is known waits for the next one; the others fail.
    pub(crate) fn lost(&mut self, close: &CloseInfo) {
        let unkeyed: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.key.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in unkeyed {
            self.finish(id, Err(ClientError::Lost(close.clone())));
        }
    }

    /// The client is closed for good: every stream fails with `error`.
    pub(crate) fn close(&mut self, error: impl Fn() -> ClientError) {
        let ids: Vec<u64> = self.by_id.keys().copied().collect();
        for id in ids {
            self.finish(id, Err(error()));
        }
    }

    /// The `$resume` of every stream waiting for a new connection, each under its own request id.
    pub(crate) fn resumes(&self) -> Vec<String> {
        self.by_id
            .iter()
            .filter_map(|(id, e)| {
                let key = e.key.as_ref()?;
                let data = json!({"stream": key, "after": e.last});
                Some(json!({"type": "$resume", "id": id, "data": data}).to_string())
            })
            .collect()
    }
}

fn cancel_frame(id: u64) -> Outgoing {
    Outgoing::frame(
        json!({"type": "$cancel", "data": {"id": id}}).to_string(),
        None,
    )
}

/// Registers stream `id` and returns its reader; `None` past [`MAX_STREAMS`].
pub(crate) fn open<T>(
    streams: &Arc<Mutex<Streams>>,
    id: u64,
    outgoing: mpsc::Sender<Outgoing>,
) -> Option<Streaming<T>> {
    let buffer = Arc::new(StreamShared {
        buffer: Mutex::new(Buffer::default()),
        items: Notify::new(),
        space: Notify::new(),
    });
    {
        let mut streams = lock(streams);
        if streams.by_id.len() >= MAX_STREAMS {
            return None;
        }
        let entry = Entry {
            key: None,
            last: 0,
            buffer: buffer.clone(),
        };
        streams.by_id.insert(id, entry);
    }
    Some(Streaming {
        id,
        buffer,
        streams: streams.clone(),
        outgoing,
        done: false,
        item: PhantomData,
    })
}

/// The items of one stream, in order, each once, across reconnections; dropping it cancels the stream.
pub struct Streaming<T> {
    id: u64,
    buffer: Arc<StreamShared>,
    streams: Arc<Mutex<Streams>>,
    outgoing: mpsc::Sender<Outgoing>,
    done: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Streaming<T> {
    /// The next item; `None` after the last one (the server's `$end`).
    ///
    /// # Errors
    ///
    /// `Some(Err(_))`, once, when the stream failed: [`ClientError::Server`] for the handler's error or a
    /// resume the server could not serve (`expired`, `not_found`), [`ClientError::Lost`] when the
    /// connection went before the stream began, [`ClientError::Closed`], [`ClientError::InvalidReply`]
    /// for an item that does not fit `T` (the stream is cancelled then). A reader that falls 1 024 items
    /// behind holds the connection's reading until it takes one: the server's producer waits meanwhile.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        if self.done {
            return None;
        }
        let shared = self.buffer.clone();
        loop {
            let waiting = shared.items.notified();
            tokio::pin!(waiting);
            waiting.as_mut().enable();
            let (item, end) = {
                let mut buffer = lock(&shared.buffer);
                let item = buffer.items.pop_front();
                let end = if item.is_none() {
                    buffer.end.take()
                } else {
                    None
                };
                (item, end)
            };
            if let Some(item) = item {
                shared.space.notify_waiters();
                return Some(serde_json::from_str(&item).map_err(|e| {
                    self.cancel();
                    ClientError::InvalidReply(e.to_string())
                }));
            }
            if let Some(end) = end {
                self.done = true;
                return end.err().map(Err);
            }
            waiting.await;
        }
    }

    fn cancel(&mut self) {
        self.done = true;
        let mut streams = lock(&self.streams);
        if streams.by_id.remove(&self.id).is_some() {
            let _ = self.outgoing.try_send(cancel_frame(self.id));
        }
    }
}

impl<T> Drop for Streaming<T> {
    fn drop(&mut self) {
        let mut streams = lock(&self.streams);
        if streams.by_id.remove(&self.id).is_some() {
            let _ = self.outgoing.try_send(cancel_frame(self.id));
        }
        // The connection's task may wait for this reader: it is gone.
        lock(&self.buffer.buffer).end.get_or_insert(Ok(()));
        self.buffer.space.notify_waiters();
    }
}
