//! Live counters: what the server has done, readable at any time without stopping anything.
//!
//! Counters are atomics updated where the event happens. Bytes are counted at the socket, after the
//! WebSocket framing, so `bytes_sent`/`bytes_received` are what really crossed the network (handshakes
//! excluded). Messages are counted per frame and per recipient: a broadcast to 100 clients is 100 messages
//! sent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// How a counter is shown on the metrics page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A total that only grows.
    Counter,
}

/// One counter as the metrics page shows it: its name (without the `ws_` prefix), help and value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    pub(crate) value: u64,
}

/// Declares each counter once: its atomic in `Stats`, its field (with its doc) in `StatsSnapshot`, its copy
/// in `snapshot()`, and its metric's name, kind and help in `readings()`.
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $field:ident => $kind:ident $metric:literal $help:literal, )*) => {
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $( pub(crate) $field: AtomicU64, )*
        }

        /// A point-in-time copy of the server's counters.
        ///
        /// Serializes to JSON with these field names; the same counters are in the Prometheus metrics
        /// ([`metrics`](crate::metrics)).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub struct StatsSnapshot {
            $( $(#[doc = $doc])* pub $field: u64, )*
            /// The distributed backplane's counters; absent on a single node.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub backplane: Option<BackplaneStats>,
        }

        impl Stats {
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $( $field: self.$field.load(Relaxed), )*
                    backplane: None,
                }
            }
        }

        impl StatsSnapshot {
            /// The server's counters (not the backplane's) as the metrics page shows them.
            pub(crate) fn readings(&self) -> Vec<Reading> {
                vec![$( Reading { name: $metric, help: $help, kind: Kind::$kind, value: self.$field }, )*]
            }
        }
    };
}

counters! {
    /// Clients connected now.
    connected_clients => Gauge "connected_clients" "Clients connected now",
    /// Connections accepted since start.
    total_connections => Counter "connections" "Connections accepted",
    /// Upgrade requests refused with an HTTP status (origin, auth, capacity, shutdown).
    rejected_connections => Counter "rejected_connections" "Upgrades refused with an HTTP status",
    /// Data frames received from clients (text and binary).
    messages_received => Counter "messages_received" "Data frames received from clients",
    /// Data frames written to clients.
    messages_sent => Counter "messages_sent" "Data frames written to clients",
    /// Bytes read from client sockets after the handshake.
    bytes_received => Counter "bytes_received" "Bytes read from client sockets after the handshake",
    /// Bytes written to client sockets after the handshake.
    bytes_sent => Counter "bytes_sent" "Bytes written to client sockets after the handshake",
    /// Clients dropped as slow consumers: their send queue stayed behind past its bounds (bytes or lag).
    slow_consumer_drops => Counter "slow_consumer_drops"
        "Clients dropped as slow consumers (send queue past its bytes or lag bound)",
    /// Volatile messages skipped, one per recipient that was behind.
    dropped_volatile => Counter "dropped_volatile" "Volatile frames skipped for a recipient that was behind",
    /// Latest-value messages that replaced a waiting one, one per recipient.
    coalesced => Counter "coalesced" "Latest-value frames that replaced a waiting one",
    /// Frames refused because too many of their client's frames were waiting for a handler.
    overloaded => Counter "overloaded"
        "Frames refused: too many of the client's frames were waiting for a handler",
    /// Clients closed with 1008 for exceeding the rate limit.
    rate_limit_closes => Counter "rate_limit_closes" "Clients closed for exceeding the rate limit",
    /// Frames whose `type` had no handler.
    unknown_types => Counter "unknown_types" "Frames with no handler for their type",
    /// Connections closed for an invalid frame (1002, 1003, 1007, 1009).
    invalid_frames => Counter "invalid_frames" "Connections closed for an invalid frame",
    /// Handler errors (each also reached `on_error`).
    handler_errors => Counter "handler_errors" "Handler errors",
    /// Handler panics (each closed its client with 1011).
    handler_panics => Counter "handler_panics" "Handler panics",
    /// Connections closed for not answering pings.
    pong_timeouts => Counter "pong_timeouts" "Connections closed for missing pongs",
    /// Connections closed because a write blocked longer than `write_timeout`.
    write_timeouts => Counter "write_timeouts" "Connections closed for a blocked write",
    /// Connections closed with 4001 past their credential's expiry and `session_grace`.
    sessions_expired => Counter "sessions_expired" "Connections closed past their credential's expiry",
    /// Sessions refreshed in-band (`$refresh` answered with `$reply`).
    sessions_refreshed => Counter "sessions_refreshed" "Sessions refreshed in-band",
    /// Streams opened (requests of a `#[ws(stream = T)]` variant).
    streams_started => Counter "streams_started" "Streams opened",
    /// Streams cancelled by their reader (`$cancel`) or not resumed in time.
    streams_cancelled => Counter "streams_cancelled" "Streams cancelled",
    /// Streams resumed by a reader on a new connection (`$resume`).
    streams_resumed => Counter "streams_resumed" "Streams resumed after a lost connection",
    /// Connections that negotiated permessage-deflate.
    compressed_connections => Counter "compressed_connections" "Connections that negotiated permessage-deflate",
    /// Outgoing frames compressed: once per frame, however many compressing clients it went to.
    frames_compressed => Counter "frames_compressed" "Outgoing frames compressed, once per frame whatever its recipients",
}

/// Counters of a distributed backplane, part of [`StatsSnapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Whether this node is connected to the other nodes now (publishing and subscribed).
    pub connected: bool,
    /// Other nodes this node sees.
    pub nodes: u64,
    /// Messages this node handed to the other nodes.
    pub published: u64,
    /// Messages this node received from the link (pub/sub echoes this node's own messages back; they count).
    pub received: u64,
    /// Outgoing messages dropped because the outgoing queue was full (the link was down or too slow).
    pub dropped: u64,
    /// Times the link to the other nodes was lost and set up again.
    pub reconnects: u64,
    /// Times one of the backplane's own tasks failed (a panic) and was started again; while it is down,
    /// `connected` is false.
    #[serde(default)]
    pub task_restarts: u64,
    /// Messages from other nodes dropped on arrival because this node could not apply them as fast as
    /// they came (the incoming buffer's bounds are the outgoing queue's).
    #[serde(default)]
    pub received_dropped: u64,
    /// Bytes of the messages this node received from the link.
    #[serde(default)]
    pub received_bytes: u64,
    /// Groups whose traffic this node receives: those it has members of (a channel per group).
    #[serde(default)]
    pub subscribed_groups: u64,
    /// History frames delivered although fewer replicas than asked had them when the wait ran out
    /// ([`RedisConfig::wait_for_replicas`](crate::backplane::RedisConfig::wait_for_replicas)): they may be lost if their master fails.
    #[serde(default)]
    pub unreplicated: u64,
}

impl BackplaneStats {
    /// The backplane's counters as the metrics page shows them (`ws_backplane_*`).
    pub(crate) fn readings(&self) -> [Reading; 11] {
        let reading = |name, help, kind, value| Reading {
            name,
            help,
            kind,
            value,
        };
        [
            reading(
                "backplane_connected",
                "1 while linked to the other nodes",
                Kind::Gauge,
                u64::from(self.connected),
            ),
            reading(
                "backplane_nodes",
                "Other nodes seen",
                Kind::Gauge,
                self.nodes,
            ),
            reading(
                "backplane_published",
                "Messages sent to the other nodes",
                Kind::Counter,
                self.published,
            ),
            reading(
                "backplane_received",
                "Messages received from the other nodes",
                Kind::Counter,
                self.received,
            ),
            reading(
                "backplane_dropped",
                "Outgoing messages dropped on a full queue",
                Kind::Counter,
                self.dropped,
            ),
            reading(
                "backplane_reconnects",
                "Times the link to the other nodes was set up again",
                Kind::Counter,
                self.reconnects,
            ),
            reading(
                "backplane_task_restarts",
                "Times a backplane task panicked and was started again",
                Kind::Counter,
                self.task_restarts,
            ),
            reading(
                "backplane_received_dropped",
                "Messages from other nodes dropped because they arrived faster than they were applied",
                Kind::Counter,
                self.received_dropped,
            ),
            reading(
                "backplane_received_bytes",
                "Bytes of the messages received from the other nodes",
                Kind::Counter,
                self.received_bytes,
            ),
            reading(
                "backplane_subscribed_groups",
                "Groups whose channel this node listens to",
                Kind::Gauge,
                self.subscribed_groups,
            ),
            reading(
                "backplane_unreplicated",
                "History frames delivered before the replicas asked for had them",
                Kind::Counter,
                self.unreplicated,
            ),
        ]
    }
}
