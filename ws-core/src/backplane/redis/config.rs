use std::time::Duration;

use super::wire::WIRE_VERSION;

use crate::config::ConfigError;

/// Settings of a [`RedisBackplane`](super::RedisBackplane).
///
/// ```
/// use std::time::Duration;
///
/// let config = ws_core::backplane::RedisConfig::new("redis://127.0.0.1:6379/")?
///     .prefix("chat")
///     .heartbeat_interval(Duration::from_millis(500));
/// assert_eq!(config.node_timeout_value(), Duration::from_secs(5));
/// # Ok::<(), ws_core::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(super) client: redis::Client,
    pub(super) prefix: String,
    pub(super) heartbeat_interval: Duration,
    pub(super) node_timeout: Duration,
    pub(super) queue_capacity: usize,
    pub(super) queue_bytes: usize,
    pub(super) reconnect_min: Duration,
    pub(super) reconnect_max: Duration,
}

impl RedisConfig {
    /// Settings for the Redis server at `url` (`redis://[user:password@]host[:port][/db]`), with defaults for
    /// the rest. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BackplaneUrl`] when the URL cannot be parsed.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let client = redis::Client::open(url).map_err(|e| ConfigError::BackplaneUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            prefix: String::from("ws"),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            queue_capacity: 10_000,
            queue_bytes: 16 * 1024 * 1024,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        })
    }

    /// Namespace of every channel and key (default `ws`): nodes with the same prefix form one cluster.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often a node announces itself and refreshes its membership key (default 1 s).
    #[must_use]
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.heartbeat_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How long a silent node is still believed to exist (default 5 s). Its membership key expires after
    /// the same time. Kept above twice the heartbeat interval.
    #[must_use]
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// The node timeout in effect.
    pub fn node_timeout_value(&self) -> Duration {
        self.node_timeout.max(self.heartbeat_interval * 2)
    }

    /// Bound of the outgoing queue, in messages and in bytes (defaults 10 000 and 16 MiB). While Redis is
    /// unreachable, messages for other nodes wait here; past either bound they are dropped and counted.
    #[must_use]
    pub fn queue_limits(mut self, messages: usize, bytes: usize) -> Self {
        self.queue_capacity = messages.max(1);
        self.queue_bytes = bytes.max(1);
        self
    }

    /// Bounds of the reconnect delay (defaults 100 ms and 5 s): each failed attempt doubles the ceiling, and
    /// the wait is drawn at random below it so nodes do not reconnect in step.
    #[must_use]
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    pub(super) fn channel_all(&self) -> String {
        format!("{}:v{WIRE_VERSION}:all", self.prefix)
    }

    pub(super) fn channel_node(&self, node: &str) -> String {
        format!("{}:v{WIRE_VERSION}:node:{node}", self.prefix)
    }

    pub(super) fn membership_key(&self, node: &str) -> String {
        format!("{}:v{WIRE_VERSION}:members:{node}", self.prefix)
    }

    /// The hash holding a group's history `epoch` and the `offset` of its latest frame.
    pub(super) fn history_key(&self, group: &str) -> String {
        format!("{}:v{WIRE_VERSION}:history:{group}", self.prefix)
    }

    /// The groups with history, each scored with the time of its latest frame (Unix milliseconds).
    pub(super) fn histories_key(&self) -> String {
        format!("{}:v{WIRE_VERSION}:histories", self.prefix)
    }

    /// The number of the last frame of `group` that `node` had kept in its history.
    pub(super) fn sent_key(&self, node: &str, group: &str) -> String {
        format!("{}:v{WIRE_VERSION}:sent:{node}:{group}", self.prefix)
    }

    /// The stream of a group's kept frames, one entry per frame with the id `<offset>-0`.
    pub(super) fn stream_key(&self, group: &str) -> String {
        format!("{}:v{WIRE_VERSION}:stream:{group}", self.prefix)
    }
}
