//! Live counters: what the server has done, readable at any time without stopping anything.
//!
//! Counters are atomics updated where the event happens. Bytes are counted at the socket, after the
//! WebSocket framing, so `bytes_sent`/`bytes_received` are what really crossed the network (handshakes
//! excluded). Messages are counted per frame and per recipient: a broadcast to 100 clients is 100 messages
//! sent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::backplane::BackplaneStats;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connected_clients: AtomicU64,
    pub(crate) total_connections: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) slow_consumer_drops: AtomicU64,
    pub(crate) rate_limit_closes: AtomicU64,
    pub(crate) unknown_types: AtomicU64,
    pub(crate) invalid_frames: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) pong_timeouts: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
    pub(crate) dropped_volatile: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) overloaded: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// A point-in-time copy of the server's counters.
///
/// Serializes to JSON with these field names; the same counters are in the Prometheus metrics
/// ([`metrics`](crate::metrics)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Clients connected now.
    pub connected_clients: u64,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Upgrade requests refused with an HTTP status (origin, auth, capacity, shutdown).
    pub rejected_connections: u64,
    /// Data frames received from clients (text and binary).
    pub messages_received: u64,
    /// Data frames written to clients.
    pub messages_sent: u64,
    /// Bytes read from client sockets after the handshake.
    pub bytes_received: u64,
    /// Bytes written to client sockets after the handshake.
    pub bytes_sent: u64,
    /// Clients dropped as slow consumers: their send queue stayed behind past its bounds (bytes or lag).
    pub slow_consumer_drops: u64,
    /// Volatile messages skipped, one per recipient that was behind.
    pub dropped_volatile: u64,
    /// Latest-value messages that replaced a waiting one, one per recipient.
    pub coalesced: u64,
    /// Frames refused because too many of their client's frames were waiting for a handler.
    pub overloaded: u64,
    /// Clients closed with 1008 for exceeding the rate limit.
    pub rate_limit_closes: u64,
    /// Frames whose `type` had no handler.
    pub unknown_types: u64,
    /// Connections closed for an invalid frame (1002, 1003, 1007, 1009).
    pub invalid_frames: u64,
    /// Handler errors (each also reached `on_error`).
    pub handler_errors: u64,
    /// Handler panics (each closed its client with 1011).
    pub handler_panics: u64,
    /// Connections closed for not answering pings.
    pub pong_timeouts: u64,
    /// Connections closed because a write blocked longer than `write_timeout`.
    pub write_timeouts: u64,
    /// The distributed backplane's counters; absent on a single node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backplane: Option<BackplaneStats>,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connected_clients: self.connected_clients.load(Relaxed),
            total_connections: self.total_connections.load(Relaxed),
            rejected_connections: self.rejected_connections.load(Relaxed),
            messages_received: self.messages_received.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            slow_consumer_drops: self.slow_consumer_drops.load(Relaxed),
            dropped_volatile: self.dropped_volatile.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
            rate_limit_closes: self.rate_limit_closes.load(Relaxed),
            unknown_types: self.unknown_types.load(Relaxed),
            invalid_frames: self.invalid_frames.load(Relaxed),
            handler_errors: self.handler_errors.load(Relaxed),
            handler_panics: self.handler_panics.load(Relaxed),
            pong_timeouts: self.pong_timeouts.load(Relaxed),
            write_timeouts: self.write_timeouts.load(Relaxed),
            backplane: None,
        }
    }
}
