//! Prometheus metrics, through the [`prometheus_client`] crate: counters, gauges and histograms under
//! stable names, in the OpenMetrics text format that Prometheus scrapes as is.
//!
//! # Guarantees
//!
//! - **Names are stable**: each name below keeps its meaning, type and labels within a major version.
//!   Every name starts with `ws_`.
//! - **Label values are bounded by the server, never by clients**: `type` takes the message types the
//!   router was built with (frames of unknown types are counted in `ws_unknown_types_total`, not labelled),
//!   and `code` the close codes the server sends.
//! - **Scrapes cost the hot path nothing**: counters are the atomics behind [`Server::stats`], read when
//!   scraped; histograms are updated once per handled message, per fan-out and per write batch.
//!
//! # Exposing them
//!
//! [`Server::metrics_text`] renders the server's metrics alone. An application with metrics of its own
//! registers the server's in its registry with [`Server::register_metrics`] and serves one page:
//!
//! ```
//! use ws_core::metrics::prometheus_client::{encoding::text::encode, registry::Registry};
//! use ws_core::{Config, Server};
//!
//! let server = Server::builder(Config::default()).build()?;
//! let mut registry = Registry::default();
//! server.register_metrics(&mut registry);
//! let mut page = String::new();
//! encode(&mut page, &registry)?;
//! assert!(page.contains("# TYPE ws_connected_clients gauge"));
//! assert!(page.ends_with("# EOF\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serve it with the content type [`CONTENT_TYPE`].
//!
//! # Names
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `ws_connected_clients` | gauge | | clients connected now |
//! | `ws_groups` | gauge | | groups with members (cluster-wide with a backplane) |
//! | `ws_connections_total` | counter | | connections accepted |
//! | `ws_rejected_connections_total` | counter | | upgrades refused with an HTTP status |
//! | `ws_messages_received_total`, `ws_messages_sent_total` | counter | | data frames by direction |
//! | `ws_bytes_received_total`, `ws_bytes_sent_total` | counter | | bytes on the sockets by direction |
//! | `ws_server_disconnects_total` | counter | `code` | connections the server ended, by close code (1006: reset without a close frame) |
//! | `ws_slow_consumer_drops_total` | counter | | clients dropped behind their send queue's bounds |
//! | `ws_dropped_volatile_total`, `ws_coalesced_total` | counter | | volatile frames skipped, latest-value frames replaced |
//! | `ws_overloaded_total` | counter | | frames refused: too many waiting for a handler |
//! | `ws_rate_limit_closes_total`, `ws_invalid_frames_total`, `ws_unknown_types_total` | counter | | bad input |
//! | `ws_handler_errors_total`, `ws_handler_panics_total` | counter | | handler failures |
//! | `ws_pong_timeouts_total`, `ws_write_timeouts_total` | counter | | dead or stuck peers |
//! | `ws_sessions_expired_total`, `ws_sessions_refreshed_total` | counter | | connections closed past their credential's expiry, sessions refreshed in-band |
//! | `ws_streams_started_total`, `ws_streams_cancelled_total`, `ws_streams_resumed_total` | counter | | streams opened, cancelled (by `$cancel` or not resumed in time), resumed on a new connection |
//! | `ws_handler_duration_seconds` | histogram | `type` | time from a handler's start to its end |
//! | `ws_fanout_recipients` | histogram | | clients of this node reached by one broadcast or group send |
//! | `ws_send_queue_lag_seconds` | histogram | | how long a write batch's oldest frame waited in its send queue (sampled: each connection's first batch and every 16th) |
//! | `ws_backplane_*` | | | the backplane's own (see [`Backplane::register_metrics`](crate::backplane::Backplane::register_metrics)) |
//!
//! [`Server::stats`]: crate::Server::stats
//! [`Server::metrics_text`]: crate::Server::metrics_text
//! [`Server::register_metrics`]: crate::Server::register_metrics

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `prometheus-client` crate this module builds on, so an application registers its own metrics with
/// the same version.
pub use prometheus_client;

use crate::close;
use crate::node::Node;
use crate::stats::{Kind, Reading};

/// The content type of [`Server::metrics_text`](crate::Server::metrics_text)'s page (OpenMetrics 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Handler durations, from 100 µs to 10 s.
const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Send queue lags, from 1 ms (the queue's clock resolution) to the default lag bound and beyond.
const LAG_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Recipients per fan-out: powers of four up to 65 536.
const FANOUT_BUCKETS: [f64; 9] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// A histogram for latencies in seconds (handlers, backplanes), from 100 µs to 10 s.
pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

/// The histograms and labelled counters the server updates as it works; plain counters live in
/// [`Stats`](crate::stats) and are read at scrape time.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    handler_duration: Family<TypeLabel, Histogram>,
    pub(crate) fanout: Histogram,
    pub(crate) send_queue_lag: Histogram,
    server_disconnects: Family<CodeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            handler_duration: Family::new_with_constructor(latency_histogram),
            fanout: Histogram::new(FANOUT_BUCKETS),
            send_queue_lag: Histogram::new(LAG_BUCKETS),
            server_disconnects: Family::default(),
        };
        // The codes the server sends by itself are scraped from the start, at 0, so a rate over them is
        // defined before the first such disconnect; codes an application chooses appear with their first use.
        for code in [
            close::NORMAL,
            close::GOING_AWAY,
            close::PROTOCOL_ERROR,
            close::UNSUPPORTED_DATA,
            close::INVALID_PAYLOAD,
            close::POLICY_VIOLATION,
            close::MESSAGE_TOO_BIG,
            close::INTERNAL_ERROR,
        ]
        .map(u16::from)
        .into_iter()
        .chain([close::ABNORMAL])
        {
            metrics
                .server_disconnects
                .get_or_create_owned(&CodeLabel { code });
        }
        metrics
    }
}

impl Metrics {
    /// The duration histogram of one message type, made once when the router is built so a handled
    /// message finds its histogram without a lookup.
    pub(crate) fn handler_duration(&self, kind: &str) -> Histogram {
        self.handler_duration.get_or_create_owned(&TypeLabel {
            r#type: kind.to_owned(),
        })
    }

    /// Counts a connection the server ended, by the close code it sent (1006 when it reset the socket).
    pub(crate) fn server_disconnect(&self, code: u16) {
        self.server_disconnects
            .get_or_create(&CodeLabel { code })
            .inc();
    }
}

/// Registers the server's metrics (and its backplane's) in `registry`.
pub(crate) fn register(metrics: &Metrics, node: &Arc<Node>, registry: &mut Registry) {
    let ws = registry.sub_registry_with_prefix("ws");
    ws.register_collector(Box::new(Counters(Arc::downgrade(node))));
    // The unit is in the name rather than in a `# UNIT` line, which some parsers refuse on histograms.
    ws.register(
        "handler_duration_seconds",
        "Time from a handler's start to its end, by message type",
        metrics.handler_duration.clone(),
    );
    ws.register(
        "fanout_recipients",
        "Clients of this node reached by one broadcast or group send",
        metrics.fanout.clone(),
    );
    ws.register(
        "send_queue_lag_seconds",
        "How long the oldest frame of a write batch waited in its client's send queue (each connection's first batch and every 16th)",
        metrics.send_queue_lag.clone(),
    );
    ws.register(
        "server_disconnects",
        "Connections the server ended, by the close code it sent (1006: reset without a close frame)",
        metrics.server_disconnects.clone(),
    );
    node.backplane.register_metrics(ws);
}

fn encode_reading(encoder: &mut DescriptorEncoder, reading: Reading) -> std::fmt::Result {
    let Reading {
        name, help, value, ..
    } = reading;
    match reading.kind {
        Kind::Gauge => {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        }
        Kind::Counter => {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
        }
    }
}

/// Reads the server's counters at scrape time. Holds the server weakly: a registry that outlives the
/// server reports nothing for it rather than keeping it alive.
#[derive(Debug)]
struct Counters(std::sync::Weak<Node>);

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(node) = self.0.upgrade() else {
            return Ok(());
        };
        let groups = Reading {
            name: "groups",
            help: "Groups with members (cluster-wide with a backplane)",
            kind: Kind::Gauge,
            value: u64::try_from(node.backplane.group_count()).unwrap_or(u64::MAX),
        };
        let backplane = node.backplane.stats().map(|b| b.readings());
        let readings = node.stats.snapshot().readings().into_iter();
        for reading in readings
            .chain([groups])
            .chain(backplane.into_iter().flatten())
        {
            encode_reading(&mut encoder, reading)?;
        }
        Ok(())
    }
}
