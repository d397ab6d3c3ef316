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

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::envelope::Frame;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// One of the bounds would be passed.
    Full,
    /// The write task is gone.
    Closed,
}

#[derive(Debug)]
pub(crate) struct SendQueue {
    tx: mpsc::Sender<Frame>,
    bytes: AtomicUsize,
    max_bytes: usize,
}

impl SendQueue {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = Self {
            tx,
            bytes: AtomicUsize::new(0),
            max_bytes,
        };
        (queue, rx)
    }

    pub(crate) fn push(&self, frame: Frame) -> Result<(), PushError> {
        let len = frame.len();
        let before = self.bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(PushError::Full);
        }
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.bytes.fetch_sub(len, Ordering::AcqRel);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => PushError::Full,
                    mpsc::error::TrySendError::Closed(_) => PushError::Closed,
                })
            }
        }
    }

    /// Called by the write task once frames have left the queue.
    pub(crate) fn release(&self, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_frames() {
        let (q, _rx) = SendQueue::new(2, 1 << 20);
        assert_eq!(q.push(Frame::text("a")), Ok(()));
        assert_eq!(q.push(Frame::text("b")), Ok(()));
        assert_eq!(q.push(Frame::text("c")), Err(PushError::Full));
        assert_eq!(q.queued_bytes(), 2);
    }

    #[test]
    fn bounded_in_bytes_but_one_big_frame_fits_an_empty_queue() {
        let (q, mut rx) = SendQueue::new(100, 10);
        assert_eq!(q.push(Frame::text("x".repeat(25))), Ok(()));
        assert_eq!(q.push(Frame::text("y")), Err(PushError::Full));
        let f = rx.try_recv().unwrap();
        q.release(f.len());
        assert_eq!(q.push(Frame::text("12345")), Ok(()));
        assert_eq!(q.push(Frame::text("123456")), Err(PushError::Full));
        assert_eq!(q.push(Frame::text("12345")), Ok(()));
        assert_eq!(q.queued_bytes(), 10);
    }

    #[test]
    fn closed_when_receiver_gone() {
        let (q, rx) = SendQueue::new(2, 100);
        drop(rx);
        assert_eq!(q.push(Frame::text("a")), Err(PushError::Closed));
        assert_eq!(q.queued_bytes(), 0);
    }
}
