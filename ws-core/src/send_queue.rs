//! `SendQueue`: the bounded queue between everything that sends to a client and that client's write task.
//!
//! Senders never wait: a broadcast to ten thousand clients must not stall because one of them reads slowly.
//! So the queue is bounded twice, in frames and in bytes, and a push that would pass either bound fails.
//! The caller then drops the client (close 1008, best effort) instead of dropping the message: a client that
//! silently misses messages is worse than one that knows it must reconnect and resynchronise. This is the
//! same trade as tokio's broadcast channel reporting `Lagged`, made at the connection level.
//!
//! One frame larger than the whole byte bound is still accepted into an empty queue, so a big reply is not
//! undeliverable by construction.
//!
//! The queue is a `VecDeque` under a mutex rather than a channel: a channel allocates its first block of
//! slots when it is created, which every idle connection would pay for (1.8 KiB with tokio's mpsc), while a
//! `VecDeque` allocates on the first push and is given back when a burst has drained. The write task takes
//! everything queued in one lock, so a burst costs the broadcaster one uncontended lock per recipient and
//! the writer one lock per batch.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

use crate::envelope::Frame;
use crate::sync::lock;

/// A drained queue keeps its buffer up to this many frames; a larger one (left by a burst) is freed.
const KEEP_CAPACITY: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

#[derive(Debug)]
pub(crate) struct SendQueue {
    state: Mutex<State>,
    capacity: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes queued or taken but not yet written (see [`SendQueue::release`]).
    bytes: usize,
    closed: bool,
    writer: Option<Waker>,
}

impl SendQueue {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity,
            max_bytes,
        }
    }

    pub(crate) fn push(&self, frame: Frame) -> Result<(), PushError> {
        let len = frame.len();
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.frames.len() >= self.capacity
            || (state.bytes > 0 && state.bytes + len > self.max_bytes)
        {
            return Err(PushError::Full);
        }
        state.frames.push_back(frame);
        state.bytes += len;
        let writer = state.writer.take();
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(())
    }

    /// Waits for frames and moves up to `max` of them into `batch`; 0 once the queue is closed and empty.
    pub(crate) async fn recv_many(&self, batch: &mut Vec<Frame>, max: usize) -> usize {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.frames.is_empty() {
                if state.closed {
                    return Poll::Ready(0);
                }
                match &state.writer {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.writer = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            let n = state.frames.len().min(max);
            batch.extend(state.frames.drain(..n));
            if state.frames.is_empty() && state.frames.capacity() > KEEP_CAPACITY {
                state.frames = VecDeque::new();
            }
            Poll::Ready(n)
        })
        .await
    }

    /// Takes one queued frame without waiting.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        lock(&self.state).frames.pop_front()
    }

    /// Written frames leave the byte count only now, so a client cannot hold more than the bound in
    /// flight by having the writer take frames it cannot write.
    pub(crate) fn release(&self, bytes: usize) {
        let mut state = lock(&self.state);
        state.bytes = state.bytes.saturating_sub(bytes);
    }

    /// The writer is gone: later pushes fail, and what is queued is freed.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.frames = VecDeque::new();
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

    #[test]
    fn bounded_in_frames() {
        let q = SendQueue::new(2, 1 << 20);
        assert_eq!(q.push(Frame::text("a")), Ok(()));
        assert_eq!(q.push(Frame::text("b")), Ok(()));
        assert_eq!(q.push(Frame::text("c")), Err(PushError::Full));
        assert_eq!(q.queued_bytes(), 2);
        let f = q.try_recv().unwrap();
        assert_eq!(
            q.push(Frame::text("c")),
            Ok(()),
            "a taken frame frees its slot"
        );
        q.release(f.len());
        assert_eq!(q.queued_bytes(), 2);
    }

    #[test]
    fn bounded_in_bytes_but_one_big_frame_fits_an_empty_queue() {
        let q = SendQueue::new(100, 10);
        assert_eq!(q.push(Frame::text("x".repeat(25))), Ok(()));
        assert_eq!(q.push(Frame::text("y")), Err(PushError::Full));
        let f = q.try_recv().unwrap();
        assert_eq!(
            q.push(Frame::text("y")),
            Err(PushError::Full),
            "taken, not yet written"
        );
        q.release(f.len());
        assert_eq!(q.push(Frame::text("12345")), Ok(()));
        assert_eq!(q.push(Frame::text("123456")), Err(PushError::Full));
        assert_eq!(q.push(Frame::text("12345")), Ok(()));
        assert_eq!(q.queued_bytes(), 10);
    }

    #[test]
    fn closed_queue_refuses_and_frees() {
        let q = SendQueue::new(2, 100);
        assert_eq!(q.push(Frame::text("a")), Ok(()));
        q.close();
        assert_eq!(q.push(Frame::text("b")), Err(PushError::Closed));
        assert_eq!(q.queued_bytes(), 0);
        assert!(q.try_recv().is_none());
    }

    #[tokio::test]
    async fn recv_many_wakes_on_push_and_gives_back_a_burst_buffer() {
        let q = std::sync::Arc::new(SendQueue::new(1000, 1 << 20));
        let waiting = tokio::spawn({
            let q = q.clone();
            async move {
                let mut batch = Vec::new();
                let n = q.recv_many(&mut batch, 10).await;
                (n, batch)
            }
        });
        tokio::task::yield_now().await;
        q.push(Frame::text("hello")).unwrap();
        let (n, batch) = waiting.await.unwrap();
        assert_eq!((n, batch), (1, vec![Frame::text("hello")]));
        for _ in 0..500 {
            q.push(Frame::text("x")).unwrap();
        }
        let mut batch = Vec::new();
        while q.recv_many(&mut batch, 64).await == 64 {}
        assert_eq!(batch.len(), 500);
        assert_eq!(lock(&q.state).frames.capacity(), 0, "burst buffer freed");
    }
}
