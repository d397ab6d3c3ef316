//! `SendQueue`: the bounded queue between everything that sends to a client and that client's write task.
//!
//! Senders never wait: a broadcast to ten thousand clients must not stall because one of them reads slowly.
//! So the queue is bounded, and a push past the bound fails; the caller then drops the client (close 1008,
//! best effort) instead of dropping the message: a client that silently misses messages is worse than one
//! that knows it must reconnect and resynchronise. This is the same trade as tokio's broadcast channel
//! reporting `Lagged`, made at the connection level.
//!
//! The bounds tell a client that does not read from a server that is behind. A healthy client falls
//! behind for a moment when a burst arrives faster than it reads, and catches up; a server short of CPU
//! falls behind on every client at once, and its write tasks wait for their turn, not for their sockets;
//! a stuck client stops taking bytes. Only the last is the client's doing, and only the client's socket
//! shows it: so a client is dropped once its socket has refused the server's writes for
//! `send_queue_max_lag` straight ([`WriteStall`]: the time is counted from the write the kernel could not
//! take, and starts again whenever it takes bytes), or once its queue would pass `send_queue_max_bytes`
//! (each frame counting its length plus [`ENTRY_COST`] for its slot), the hard cap on what one client can
//! make the server hold, whatever the reason it is behind. How long frames have waited in the queue is
//! not a bound: under overload every queue's frames wait, and dropping the clients for the server's own
//! backlog would turn a latency spike into mass disconnects and reconnect storms. One frame larger than the
//! whole byte bound is still accepted into an empty queue, so a big reply is not undeliverable by
//! construction.
//!
//! Delivery policies are applied here, per recipient: a volatile frame is skipped when the queue is past
//! `send_queue_volatile_bytes`, and a latest-value frame replaces a waiting frame with the same key in place
//! (found through a small index that exists only while such frames wait).
//!
//! The queue is a `VecDeque` under a mutex rather than a channel: a channel allocates its first block of
//! slots when it is created, which every idle connection would pay for (1.8 KiB with tokio's mpsc), while a
//! `VecDeque` allocates on the first push and is given back when a burst has drained. The write task takes
//! everything queued in one lock, so a burst costs the broadcaster one uncontended lock per recipient and
//! the writer one lock per batch.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::delivery::{Delivery, LatestKey};
#[cfg(test)]
use crate::protocol::Frame;
use crate::sync::lock;

/// A drained queue keeps its buffer up to this many frames; a larger one (left by a burst) is freed.
const KEEP_CAPACITY: usize = 64;

/// What one queued frame costs beyond its payload: its slot in the queue and the frame's handles.
pub(crate) const ENTRY_COST: usize = 64;

/// The bytes a frame counts for in the queue.
pub(crate) fn cost(message: &Message) -> usize {
    message.len() + ENTRY_COST
}

/// When a frame was queued: milliseconds since the process's first stamp, in 4 bytes rather than an
/// `Instant`'s 16, since every queued frame carries one. Differences are exact for 24 days either way.
///
/// Stamps do not follow the order of the pushes: a fan-out reads the clock once, then walks its
/// recipients, while other threads queue frames stamped later. So a difference is signed, and a stamp
/// older than the one it is compared with is no time at all, never a wrapped-around 49 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

impl Stamp {
    pub(crate) fn now() -> Self {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        // Truncation is the point: stamps are compared by wrapping difference.
        Self(epoch.elapsed().as_millis() as u32)
    }

    /// Milliseconds from `earlier` to `self`; 0 when `earlier` is in fact later.
    pub(crate) fn millis_since(self, earlier: Self) -> u32 {
        // The wrapped difference read as signed: exact for any two stamps less than 24 days apart.
        u32::try_from(self.0.wrapping_sub(earlier.0).cast_signed()).unwrap_or(0)
    }
}

/// Since when the client's socket has refused the server's writes: set by the socket when a write finds
/// the kernel's buffers full, cleared as soon as the kernel takes bytes again. Part of the client's queue,
/// which reads it on every push (beside the queue's lock, in the cache line a push touches anyway), and
/// written by its socket.
#[derive(Debug, Default)]
pub(crate) struct WriteStall(AtomicU32);

impl WriteStall {
    /// The socket could not take a write as of `now`; an earlier refusal not since ended stands.
    pub(crate) fn refused(&self, now: Stamp) {
        if self.0.load(Ordering::Relaxed) == 0 {
            // 0 means "not refusing": the first millisecond of the epoch counts as the second.
            self.0.store(now.0.max(1), Ordering::Relaxed);
        }
    }

    /// The socket took bytes: whatever it refused before, it is draining.
    pub(crate) fn progressed(&self) {
        if self.0.load(Ordering::Relaxed) != 0 {
            self.0.store(0, Ordering::Relaxed);
        }
    }

    /// For how long, as of `now`, the socket has refused writes without taking a byte; 0 when it is not.
    fn millis(&self, now: Stamp) -> u32 {
        match self.0.load(Ordering::Relaxed) {
            0 => 0,
            since => now.millis_since(Stamp(since)),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Past a bound: the client's socket refused writes for too long, or its queue holds too much.
    Full,
    Closed,
}

/// What a successful push did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// A volatile frame was skipped: the client is behind.
    Skipped,
    /// A latest-value frame replaced a waiting one.
    Coalesced,
}

/// The queue's bounds (from the server's config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) max_bytes: usize,
    pub(crate) max_lag: Duration,
    pub(crate) volatile_bytes: usize,
}

/// Laid out in declaration order: what a push reads comes first, together.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SendQueue {
    state: Mutex<State>,
    stall: WriteStall,
    max_bytes: usize,
    max_lag_ms: u32,
    volatile_bytes: usize,
    /// Wakes producers waiting for the queue to drain ([`SendQueue::space`]); notified only while one
    /// waits (`space_wanted`), so the write path pays one relaxed load otherwise.
    space: Notify,
    space_wanted: AtomicBool,
}

/// One waiting frame. Kept to one cache line: a fan-out writes one of these per recipient, and a backlog
/// holds one per recipient and frame. Latest-value keys live in the index instead.
#[derive(Debug)]
struct Entry {
    message: Message,
    queued: Stamp,
}

/// Keys are hashes computed once per message: used as they are.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Where the waiting latest-value frames are; exists only while the queue is not empty.
#[derive(Debug, Default)]
struct LatestIndex {
    /// Sequence number of `entries[0]`, counted from the index's creation.
    head: u64,
    /// Key hash → the sequence number and key of the waiting frame with that key.
    slots: Map<(u64, LatestKey)>,
    /// Sequence number → key hash, for the frames in `slots`.
    by_seq: Map<u64>,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Entry>,
    latest: Option<Box<LatestIndex>>,
    /// Bytes queued or taken but not yet written (see [`SendQueue::release`]).
    bytes: usize,
    closed: bool,
    writer: Option<Waker>,
}

impl State {
    /// Replaces the waiting frame with the same key, if there is one; gives `message` back otherwise.
    fn coalesce(&mut self, key: &LatestKey, message: Message) -> Result<(), Message> {
        let Some(index) = &self.latest else {
            return Err(message);
        };
        let Some((seq, _)) = index.slots.get(&key.hash()).filter(|(_, k)| k == key) else {
            // No waiting frame with this key (or another key with the same hash, left as it is).
            return Err(message);
        };
        let entry = seq
            .checked_sub(index.head)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.entries.get_mut(i));
        let Some(entry) = entry else {
            return Err(message);
        };
        self.bytes = self.bytes - cost(&entry.message) + cost(&message);
        entry.message = message;
        Ok(())
    }

    /// Records the frame about to be queued as the waiting one for `key`.
    fn index(&mut self, key: LatestKey) {
        let (len, hash) = (self.entries.len() as u64, key.hash());
        let index = self.latest.get_or_insert_with(Box::default);
        let seq = index.head + len;
        if let std::collections::hash_map::Entry::Vacant(slot) = index.slots.entry(hash) {
            slot.insert((seq, key));
            index.by_seq.insert(seq, hash);
        }
    }

    /// Moves `n` frames from the front into `out`.
    fn take(&mut self, n: usize, out: &mut impl Extend<Message>) {
        out.extend(self.entries.drain(..n).map(|e| e.message));
        if let Some(index) = &mut self.latest {
            for seq in index.head..index.head + n as u64 {
                if let Some(hash) = index.by_seq.remove(&seq) {
                    index.slots.remove(&hash);
                }
            }
            index.head += n as u64;
        }
        if self.entries.is_empty() {
            self.latest = None;
            if self.entries.capacity() > KEEP_CAPACITY {
                self.entries = VecDeque::new();
            }
        }
    }
}

/// What [`SendQueue::recv_many`] handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) frames: usize,
    /// The bytes the frames count for, to [`release`](SendQueue::release) once they are written.
    pub(crate) bytes: usize,
    /// When the first of them was queued.
    pub(crate) oldest: Stamp,
}

impl Taken {
    /// These frames, then `later` ones.
    pub(crate) fn and(self, later: Option<Self>) -> Self {
        match later {
            Some(later) => Self {
                frames: self.frames + later.frames,
                bytes: self.bytes + later.bytes,
                oldest: self.oldest,
            },
            None => self,
        }
    }
}

impl SendQueue {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            state: Mutex::new(State::default()),
            stall: WriteStall::default(),
            max_bytes: bounds.max_bytes,
            max_lag_ms: u32::try_from(bounds.max_lag.as_millis())
                .unwrap_or(u32::MAX)
                .min(u32::MAX / 2),
            volatile_bytes: bounds.volatile_bytes,
            space: Notify::new(),
            space_wanted: AtomicBool::new(false),
        }
    }

    /// Queues `frame` as of `now`.
    #[cfg(test)]
    pub(crate) fn push_frame(&self, frame: &Frame, now: Stamp) -> Result<Pushed, PushError> {
        self.push(frame.message.clone(), &frame.delivery, now)
    }

    /// Queues `message`, a frame's bytes under `delivery`, as of `now` (a fan-out reads the clock once for
    /// all its recipients, and hands every queue the same frame: what is queued is a clone of its bytes'
    /// handle, compressed or not).
    pub(crate) fn push(
        &self,
        message: Message,
        delivery: &Delivery,
        now: Stamp,
    ) -> Result<Pushed, PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        // A client whose socket has taken nothing for that long is stuck, whatever the new frame's policy.
        if self.stall.millis(now) > self.max_lag_ms {
            return Err(PushError::Full);
        }
        let (message, latest) = match delivery {
            Delivery::Volatile if state.bytes > self.volatile_bytes => {
                return Ok(Pushed::Skipped);
            }
            Delivery::Reliable | Delivery::Volatile => (message, None),
            Delivery::Latest(key) => match state.coalesce(key, message) {
                Ok(()) => return Ok(Pushed::Coalesced),
                Err(message) => (message, Some(key.clone())),
            },
        };
        let len = cost(&message);
        if state.bytes > 0 && state.bytes + len > self.max_bytes {
            return Err(PushError::Full);
        }
        if let Some(key) = latest {
            state.index(key);
        }
        state.entries.push_back(Entry {
            message,
            queued: now,
        });
        state.bytes += len;
        let writer = state.writer.take();
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(Pushed::Queued)
    }

    /// What the client's socket reports its refused writes to.
    pub(crate) fn write_stall(&self) -> &WriteStall {
        &self.stall
    }

    /// Waits for frames and moves up to `max` of them into `batch` (the write task hands them straight to
    /// its socket's writer). `None` once the queue is closed and empty.
    pub(crate) async fn recv_many(
        &self,
        batch: &mut impl Extend<Message>,
        max: usize,
    ) -> Option<Taken> {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.entries.is_empty() {
                if state.closed {
                    return Poll::Ready(None);
                }
                match &state.writer {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.writer = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            Poll::Ready(Some(Self::take(&mut state, max, batch)))
        })
        .await
    }

    /// [`recv_many`](Self::recv_many) without waiting; `None` when no frame is queued.
    pub(crate) fn try_recv_many(
        &self,
        batch: &mut impl Extend<Message>,
        max: usize,
    ) -> Option<Taken> {
        let mut state = lock(&self.state);
        (!state.entries.is_empty()).then(|| Self::take(&mut state, max, batch))
    }

    fn take(state: &mut State, max: usize, batch: &mut impl Extend<Message>) -> Taken {
        let frames = state.entries.len().min(max);
        let bytes = state
            .entries
            .range(..frames)
            .map(|e| cost(&e.message))
            .sum();
        let oldest = state.entries[0].queued;
        state.take(frames, batch);
        Taken {
            frames,
            bytes,
            oldest,
        }
    }

    /// Takes one queued frame without waiting.
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Option<Message> {
        let mut state = lock(&self.state);
        if state.entries.is_empty() {
            return None;
        }
        let mut one = Vec::with_capacity(1);
        state.take(1, &mut one);
        one.pop()
    }

    /// Written frames leave the byte count only now (`bytes` as counted by [`cost`]), so a client cannot
    /// hold more than the bound in flight by having the writer take frames it cannot write.
    pub(crate) fn release(&self, bytes: usize) {
        let mut state = lock(&self.state);
        state.bytes = state.bytes.saturating_sub(bytes);
        drop(state);
        self.wake_producers();
    }

    fn wake_producers(&self) {
        if self.space_wanted.load(Ordering::Relaxed)
            && self.space_wanted.swap(false, Ordering::SeqCst)
        {
            self.space.notify_waiters();
        }
    }

    /// Waits until the queue holds at most `limit` bytes, or is closed (a stream's producer waits here
    /// for its reader).
    pub(crate) async fn space(&self, limit: usize) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.space_wanted.store(true, Ordering::SeqCst);
            {
                let state = lock(&self.state);
                if state.closed || state.bytes <= limit {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The writer is gone: later pushes fail, and what is queued is freed.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.entries = VecDeque::new();
        state.latest = None;
        state.bytes = 0;
        state.writer = None;
        drop(state);
        self.wake_producers();
    }

    /// Bytes waiting, as the bounds count them.
    pub(crate) fn queued_bytes(&self) -> usize {
        lock(&self.state).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_bytes: usize) -> SendQueue {
        SendQueue::new(Bounds {
            max_bytes,
            max_lag: Duration::from_secs(1),
            volatile_bytes: max_bytes / 2,
        })
    }

    fn texts(q: &SendQueue) -> Vec<String> {
        std::iter::from_fn(|| q.try_recv())
            .map(|m| m.to_text().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn bounded_in_bytes_but_one_big_frame_fits_an_empty_queue() {
        let now = Stamp::now();
        let q = queue(2 * ENTRY_COST + 10);
        assert_eq!(
            q.push_frame(&Frame::text("x".repeat(500)), now),
            Ok(Pushed::Queued)
        );
        assert_eq!(q.push_frame(&Frame::text("y"), now), Err(PushError::Full));
        let f = q.try_recv().unwrap();
        assert_eq!(
            q.push_frame(&Frame::text("y"), now),
            Err(PushError::Full),
            "taken, not yet written"
        );
        q.release(cost(&f));
        assert_eq!(q.push_frame(&Frame::text("12345"), now), Ok(Pushed::Queued));
        assert_eq!(
            q.push_frame(&Frame::text("123456"), now),
            Err(PushError::Full)
        );
        assert_eq!(q.push_frame(&Frame::text("12345"), now), Ok(Pushed::Queued));
        assert_eq!(q.queued_bytes(), 2 * ENTRY_COST + 10);
    }

    #[test]
    fn bounded_by_how_long_the_socket_refused_writes_not_by_how_long_frames_wait() {
        let t0 = Stamp::now();
        let q = queue(1 << 20);
        let stall = q.write_stall();
        assert_eq!(q.push_frame(&Frame::text("a"), t0), Ok(Pushed::Queued));
        assert_eq!(
            q.push_frame(&Frame::text("b"), Stamp(t0.0 + 60_000)),
            Ok(Pushed::Queued),
            "a frame waiting a minute for a writer that did not run is the server's backlog"
        );
        stall.refused(Stamp(t0.0 + 60_000));
        stall.refused(Stamp(t0.0 + 60_500));
        assert_eq!(
            q.push_frame(&Frame::text("c"), Stamp(t0.0 + 61_000)),
            Ok(Pushed::Queued),
            "refusing for 1 s is within the lag, counted from the first refusal"
        );
        let late = Stamp(t0.0 + 61_001);
        assert_eq!(q.push_frame(&Frame::text("d"), late), Err(PushError::Full));
        stall.progressed();
        assert_eq!(
            q.push_frame(&Frame::text("d"), late),
            Ok(Pushed::Queued),
            "the socket took bytes again"
        );
        assert_eq!(texts(&q), ["a", "b", "c", "d"]);
    }

    /// A fan-out reads the clock once, before it walks its recipients; meanwhile the socket may have
    /// refused a write a millisecond later. That refusal is younger than the fan-out's stamp, not 49 days
    /// old: the push goes through.
    #[test]
    fn a_refusal_stamped_after_the_pushers_clock_read_is_no_lag() {
        let t0 = Stamp::now();
        let q = queue(1 << 20);
        q.write_stall().refused(Stamp(t0.0 + 1));
        assert_eq!(
            q.push_frame(&Frame::text("fan-out"), t0),
            Ok(Pushed::Queued)
        );
        assert_eq!(texts(&q), ["fan-out"]);
    }

    #[test]
    fn volatile_frames_are_skipped_past_the_soft_mark() {
        let now = Stamp::now();
        let q = queue(4 * ENTRY_COST);
        let volatile = || Frame::text("v").with_delivery(Delivery::Volatile);
        assert_eq!(q.push_frame(&volatile(), now), Ok(Pushed::Queued));
        assert_eq!(q.push_frame(&Frame::text("r"), now), Ok(Pushed::Queued));
        assert_eq!(
            q.push_frame(&volatile(), now),
            Ok(Pushed::Skipped),
            "past half the bound"
        );
        assert_eq!(
            q.push_frame(&Frame::text("r"), now),
            Ok(Pushed::Queued),
            "reliable frames still queue"
        );
        assert_eq!(texts(&q), ["v", "r", "r"]);
    }

    #[test]
    fn latest_frames_replace_the_waiting_one_in_place() {
        let now = Stamp::now();
        let q = queue(1 << 20);
        let cursor = |user: &str, x: u32| {
            Frame::text(format!("{user}{x}")).with_delivery(Delivery::latest_by("cursor", user))
        };
        assert_eq!(q.push_frame(&cursor("ann", 1), now), Ok(Pushed::Queued));
        assert_eq!(q.push_frame(&Frame::text("chat"), now), Ok(Pushed::Queued));
        assert_eq!(q.push_frame(&cursor("bob", 1), now), Ok(Pushed::Queued));
        assert_eq!(q.push_frame(&cursor("ann", 2), now), Ok(Pushed::Coalesced));
        assert_eq!(
            q.push_frame(&cursor("ann", 300), now),
            Ok(Pushed::Coalesced)
        );
        assert_eq!(q.queued_bytes(), 3 * ENTRY_COST + "ann300chatbob1".len());
        assert_eq!(texts(&q), ["ann300", "chat", "bob1"]);
        q.release(q.queued_bytes());
        // Taken frames are no longer waiting: a new value queues behind them.
        assert_eq!(q.push_frame(&cursor("ann", 4), now), Ok(Pushed::Queued));
        let mut batch = Vec::new();
        assert_eq!(lock(&q.state).entries.len(), 1);
        lock(&q.state).take(1, &mut batch);
        assert_eq!(q.push_frame(&cursor("ann", 5), now), Ok(Pushed::Queued));
        assert_eq!(q.push_frame(&cursor("ann", 6), now), Ok(Pushed::Coalesced));
        assert_eq!(texts(&q), ["ann6"]);
    }

    #[test]
    fn closed_queue_refuses_and_frees() {
        let now = Stamp::now();
        let q = queue(1000);
        assert_eq!(q.push_frame(&Frame::text("a"), now), Ok(Pushed::Queued));
        q.close();
        assert_eq!(q.push_frame(&Frame::text("b"), now), Err(PushError::Closed));
        assert_eq!(q.queued_bytes(), 0);
        assert!(q.try_recv().is_none());
    }

    #[tokio::test]
    async fn recv_many_wakes_on_push_and_gives_back_a_burst_buffer() {
        let q = std::sync::Arc::new(queue(1 << 20));
        let waiting = tokio::spawn({
            let q = q.clone();
            async move {
                let mut batch = Vec::new();
                let received = q.recv_many(&mut batch, 10).await;
                (received.map(|taken| taken.frames), batch)
            }
        });
        tokio::task::yield_now().await;
        q.push_frame(&Frame::text("hello"), Stamp::now()).unwrap();
        let (n, batch) = waiting.await.unwrap();
        assert_eq!((n, batch), (Some(1), vec![Message::text("hello")]));
        for _ in 0..500 {
            q.push_frame(&Frame::text("x"), Stamp::now()).unwrap();
        }
        let mut batch = Vec::new();
        while q
            .recv_many(&mut batch, 64)
            .await
            .is_some_and(|taken| taken.frames == 64)
        {}
        assert_eq!(batch.len(), 500);
        assert_eq!(lock(&q.state).entries.capacity(), 0, "burst buffer freed");
    }
}
