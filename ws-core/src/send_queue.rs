//! `SendQueue`: the bounded queue between everything that sends to a client and that client's write task.
//!
//! Senders never wait: a broadcast to ten thousand clients must not stall because one of them reads slowly.
//! So the queue is bounded, and a push past the bound fails; the caller then drops the client (close 1008,
//! best effort) instead of dropping the message: a client that silently misses messages is worse than one
//! that knows it must reconnect and resynchronise. This is the same trade as tokio's broadcast channel
//! reporting `Lagged`, made at the connection level.
//!
//! The bounds tell a burst from a stuck client. A healthy client falls behind for a moment when a burst
//! arrives faster than it reads, and catches up; a stuck one stops taking frames. So the queue is bounded by
//! how long its oldest frame has waited (`send_queue_max_lag`) and by its size in bytes
//! (`send_queue_max_bytes`, each frame counting its length plus [`ENTRY_COST`] for its slot), not by a
//! frame count that a burst of small frames reaches in milliseconds. One frame larger than the whole byte
//! bound is still accepted into an empty queue, so a big reply is not undeliverable by construction.
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
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::delivery::Delivery;
use crate::envelope::Frame;
use crate::sync::lock;

/// A drained queue keeps its buffer up to this many frames; a larger one (left by a burst) is freed.
const KEEP_CAPACITY: usize = 64;

/// What one queued frame costs beyond its payload: its slot in the queue and the frame's handles.
pub(crate) const ENTRY_COST: usize = 64;

/// The bytes a frame counts for in the queue.
pub(crate) fn cost(frame: &Frame) -> usize {
    frame.len() + ENTRY_COST
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Past a bound: the client is behind for too long or by too much.
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

#[derive(Debug)]
pub(crate) struct SendQueue {
    state: Mutex<State>,
    bounds: Bounds,
}

#[derive(Debug)]
struct Entry {
    frame: Frame,
    queued: Instant,
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

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`: positions stay valid while the front is taken.
    head: u64,
    /// Latest-value key hash → sequence number of the waiting frame with that key.
    latest: HashMap<u64, u64, BuildHasherDefault<KeyHasher>>,
    /// Bytes queued or taken but not yet written (see [`SendQueue::release`]).
    bytes: usize,
    closed: bool,
    writer: Option<Waker>,
}

impl State {
    /// Replaces the waiting frame with the same key, if there is one.
    fn coalesce(&mut self, frame: Frame) -> Result<(), Frame> {
        let Delivery::Latest(key) = &frame.delivery else {
            return Err(frame);
        };
        let Some(&seq) = self.latest.get(&key.hash()) else {
            return Err(frame);
        };
        let Some(entry) = seq
            .checked_sub(self.head)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.entries.get_mut(i))
        else {
            return Err(frame);
        };
        if entry.frame.delivery != frame.delivery {
            // Two keys with one hash: the newer frame is queued without an index entry.
            return Err(frame);
        }
        self.bytes = self.bytes - cost(&entry.frame) + cost(&frame);
        entry.frame = frame;
        Ok(())
    }

    /// Takes up to `n` frames from the front.
    fn take(&mut self, n: usize, out: &mut Vec<Frame>) {
        for entry in self.entries.drain(..n) {
            if let Delivery::Latest(key) = &entry.frame.delivery
                && self.latest.get(&key.hash()) == Some(&self.head)
            {
                self.latest.remove(&key.hash());
            }
            self.head += 1;
            out.push(entry.frame);
        }
        if self.entries.is_empty() {
            if self.entries.capacity() > KEEP_CAPACITY {
                self.entries = VecDeque::new();
            }
            if self.latest.capacity() > KEEP_CAPACITY {
                self.latest = HashMap::default();
            }
        }
    }
}

impl SendQueue {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            state: Mutex::new(State::default()),
            bounds,
        }
    }

    /// Queues `frame` as of `now` (a fan-out reads the clock once for all its recipients).
    pub(crate) fn push(&self, frame: Frame, now: Instant) -> Result<Pushed, PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        // A client whose oldest frame waits too long is stuck, whatever the new frame's policy.
        if state.entries.front().is_some_and(|oldest| {
            now.saturating_duration_since(oldest.queued) > self.bounds.max_lag
        }) {
            return Err(PushError::Full);
        }
        if frame.delivery == Delivery::Volatile && state.bytes > self.bounds.volatile_bytes {
            return Ok(Pushed::Skipped);
        }
        let frame = match state.coalesce(frame) {
            Ok(()) => return Ok(Pushed::Coalesced),
            Err(frame) => frame,
        };
        let len = cost(&frame);
        if state.bytes > 0 && state.bytes + len > self.bounds.max_bytes {
            return Err(PushError::Full);
        }
        if let Delivery::Latest(key) = &frame.delivery {
            let seq = state.head + state.entries.len() as u64;
            state.latest.entry(key.hash()).or_insert(seq);
        }
        state.entries.push_back(Entry { frame, queued: now });
        state.bytes += len;
        let writer = state.writer.take();
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(Pushed::Queued)
    }

    /// Waits for frames and moves up to `max` of them into `batch`; 0 once the queue is closed and empty.
    pub(crate) async fn recv_many(&self, batch: &mut Vec<Frame>, max: usize) -> usize {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.entries.is_empty() {
                if state.closed {
                    return Poll::Ready(0);
                }
                match &state.writer {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.writer = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            let n = state.entries.len().min(max);
            state.take(n, batch);
            Poll::Ready(n)
        })
        .await
    }

    /// Takes one queued frame without waiting.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        let mut state = lock(&self.state);
        let mut one = Vec::with_capacity(1);
        if !state.entries.is_empty() {
            state.take(1, &mut one);
        }
        one.pop()
    }

    /// Written frames leave the byte count only now (`bytes` as counted by [`cost`]), so a client cannot
    /// hold more than the bound in flight by having the writer take frames it cannot write.
    pub(crate) fn release(&self, bytes: usize) {
        let mut state = lock(&self.state);
        state.bytes = state.bytes.saturating_sub(bytes);
    }

    /// The writer is gone: later pushes fail, and what is queued is freed.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.entries = VecDeque::new();
        state.latest = HashMap::default();
        state.bytes = 0;
        state.writer = None;
    }

    #[cfg(test)]
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
            .map(|f| f.as_text().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn bounded_in_bytes_but_one_big_frame_fits_an_empty_queue() {
        let now = Instant::now();
        let q = queue(2 * ENTRY_COST + 10);
        assert_eq!(
            q.push(Frame::text("x".repeat(500)), now),
            Ok(Pushed::Queued)
        );
        assert_eq!(q.push(Frame::text("y"), now), Err(PushError::Full));
        let f = q.try_recv().unwrap();
        assert_eq!(
            q.push(Frame::text("y"), now),
            Err(PushError::Full),
            "taken, not yet written"
        );
        q.release(cost(&f));
        assert_eq!(q.push(Frame::text("12345"), now), Ok(Pushed::Queued));
        assert_eq!(q.push(Frame::text("123456"), now), Err(PushError::Full));
        assert_eq!(q.push(Frame::text("12345"), now), Ok(Pushed::Queued));
        assert_eq!(q.queued_bytes(), 2 * ENTRY_COST + 10);
    }

    #[test]
    fn bounded_in_lag_of_the_oldest_frame() {
        let t0 = Instant::now();
        let q = queue(1 << 20);
        assert_eq!(q.push(Frame::text("a"), t0), Ok(Pushed::Queued));
        let t1 = t0 + Duration::from_millis(900);
        assert_eq!(
            q.push(Frame::text("b"), t1),
            Ok(Pushed::Queued),
            "a burst within the lag"
        );
        let late = t0 + Duration::from_millis(1001);
        assert_eq!(q.push(Frame::text("c"), late), Err(PushError::Full));
        assert_eq!(texts(&q), ["a", "b"]);
        assert_eq!(
            q.push(Frame::text("c"), late),
            Ok(Pushed::Queued),
            "caught up"
        );
    }

    #[test]
    fn volatile_frames_are_skipped_past_the_soft_mark() {
        let now = Instant::now();
        let q = queue(4 * ENTRY_COST);
        let volatile = || Frame::text("v").with_delivery(Delivery::Volatile);
        assert_eq!(q.push(volatile(), now), Ok(Pushed::Queued));
        assert_eq!(q.push(Frame::text("r"), now), Ok(Pushed::Queued));
        assert_eq!(
            q.push(volatile(), now),
            Ok(Pushed::Skipped),
            "past half the bound"
        );
        assert_eq!(
            q.push(Frame::text("r"), now),
            Ok(Pushed::Queued),
            "reliable frames still queue"
        );
        assert_eq!(texts(&q), ["v", "r", "r"]);
    }

    #[test]
    fn latest_frames_replace_the_waiting_one_in_place() {
        let now = Instant::now();
        let q = queue(1 << 20);
        let cursor = |user: &str, x: u32| {
            Frame::text(format!("{user}{x}")).with_delivery(Delivery::latest_by("cursor", user))
        };
        assert_eq!(q.push(cursor("ann", 1), now), Ok(Pushed::Queued));
        assert_eq!(q.push(Frame::text("chat"), now), Ok(Pushed::Queued));
        assert_eq!(q.push(cursor("bob", 1), now), Ok(Pushed::Queued));
        assert_eq!(q.push(cursor("ann", 2), now), Ok(Pushed::Coalesced));
        assert_eq!(q.push(cursor("ann", 300), now), Ok(Pushed::Coalesced));
        assert_eq!(q.queued_bytes(), 3 * ENTRY_COST + "ann300chatbob1".len());
        assert_eq!(texts(&q), ["ann300", "chat", "bob1"]);
        q.release(q.queued_bytes());
        // Taken frames are no longer waiting: a new value queues behind them.
        assert_eq!(q.push(cursor("ann", 4), now), Ok(Pushed::Queued));
        let mut batch = Vec::new();
        assert_eq!(lock(&q.state).entries.len(), 1);
        lock(&q.state).take(1, &mut batch);
        assert_eq!(q.push(cursor("ann", 5), now), Ok(Pushed::Queued));
        assert_eq!(q.push(cursor("ann", 6), now), Ok(Pushed::Coalesced));
        assert_eq!(texts(&q), ["ann6"]);
    }

    #[test]
    fn closed_queue_refuses_and_frees() {
        let now = Instant::now();
        let q = queue(1000);
        assert_eq!(q.push(Frame::text("a"), now), Ok(Pushed::Queued));
        q.close();
        assert_eq!(q.push(Frame::text("b"), now), Err(PushError::Closed));
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
                let n = q.recv_many(&mut batch, 10).await;
                (n, batch)
            }
        });
        tokio::task::yield_now().await;
        q.push(Frame::text("hello"), Instant::now()).unwrap();
        let (n, batch) = waiting.await.unwrap();
        assert_eq!((n, batch), (1, vec![Frame::text("hello")]));
        for _ in 0..500 {
            q.push(Frame::text("x"), Instant::now()).unwrap();
        }
        let mut batch = Vec::new();
        while q.recv_many(&mut batch, 64).await == 64 {}
        assert_eq!(batch.len(), 500);
        assert_eq!(lock(&q.state).entries.capacity(), 0, "burst buffer freed");
    }
}
