use std::time::Duration;

use super::wire::WIRE_VERSION;

use crate::config::ConfigError;

/// A node's spare channels on a cluster. Each one's slot is hashed from its name, like any key: with
/// eight, the chance that none is on a shard other than a given one is (1/3)⁸ with three masters.
pub(super) const SPARE_CHANNELS: usize = 8;

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
    pub(super) target: Target,
    pub(super) prefix: String,
    pub(super) heartbeat_interval: Duration,
    pub(super) node_timeout: Duration,
    pub(super) queue_capacity: usize,
    pub(super) queue_bytes: usize,
    pub(super) reconnect_min: Duration,
    pub(super) reconnect_max: Duration,
    pub(super) replicas: Option<(usize, Duration)>,
}

/// Where Redis is: one server, or a cluster known by some of its nodes.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster(Vec<redis::ConnectionInfo>),
}

impl RedisConfig {
    /// Settings for the Redis server at `url` (`redis://[user:password@]host[:port][/db]`), with defaults for
    /// the rest. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BackplaneUrl`] when the URL cannot be parsed.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let info = resp3(url)?;
        let client = redis::Client::open(info).map_err(|e| ConfigError::BackplaneUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self::with_target(Target::Single(client)))
    }

    /// Settings for a Redis Cluster (or Valkey cluster), known by the URLs of some of its nodes (the
    /// others are found from them), with defaults for the rest. Nothing connects yet.
    ///
    /// On a cluster, channels are shard channels (`SSUBSCRIBE`, `SPUBLISH`: Redis 7 or later), each
    /// group's keys and channel share one slot by a hash tag, and nothing spans slots, so every group is
    /// served by the shard that owns it. The order of one node's frames is kept per group, per client
    /// for direct sends, and for broadcasts, but not between them (they may be on different shards).
    ///
    /// ```
    /// let config = ws_core::backplane::RedisConfig::cluster([
    ///     "redis://127.0.0.1:7000/",
    ///     "redis://127.0.0.1:7001/",
    /// ])?;
    /// # Ok::<(), ws_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::BackplaneUrl`] when a URL cannot be parsed, or none is given.
    pub fn cluster<I, S>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let seeds = urls
            .into_iter()
            .map(|url| resp3(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if seeds.is_empty() {
            return Err(ConfigError::BackplaneUrl {
                url: String::new(),
                reason: "a cluster needs the URL of at least one of its nodes".to_owned(),
            });
        }
        Ok(Self::with_target(Target::Cluster(seeds)))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            prefix: String::from("ws"),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            queue_capacity: 10_000,
            queue_bytes: 16 * 1024 * 1024,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            replicas: None,
        }
    }

    /// Whether the configuration is for a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Namespace of every channel and key (default `ws`): nodes with the same prefix form one cluster.
    /// Keep braces out of it: on a Redis Cluster, a `{...}` in the prefix would be the hash tag of every
    /// key, and put all groups on one shard.
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

    /// For groups with history: a frame is given to clients only once `replicas` replicas of the Redis
    /// master that keeps it have it too (`WAIT`), or `timeout` has passed. Off by default.
    ///
    /// Redis replicates asynchronously: when a master fails and a replica takes its place, the frames
    /// the replica had not received are gone from the history, though clients had them, and the next
    /// frames take their numbers. Waiting makes every frame a client has seen survive the failover of
    /// its master (with one replica per master and `replicas` 1), at the price of a round trip to the
    /// replica per round of frames. Past `timeout` the frame is delivered anyway (and may be lost), and
    /// counted in `unreplicated`; the master is then asked for its replicas before each round, and while
    /// it has fewer than `replicas` connected and acknowledging (a replica silent for more than two
    /// seconds does not count), frames are delivered at once and counted the same way.
    ///
    /// Only the frames of groups with history wait, each group's slot on its own: direct messages,
    /// broadcasts, groups without history and groups on other shards do not queue behind a slow replica.
    /// No frame reaches a client before its wait ended, by any path: nodes read a group's history back
    /// only up to its last frame published.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    pub(super) fn channel_all(&self) -> String {
        format!("{}:v{WIRE_VERSION}:all", self.prefix)
    }

    pub(super) fn channel_node(&self, node: &str) -> String {
        format!("{}:v{WIRE_VERSION}:node:{node}", self.prefix)
    }

    /// The channels a node also listens on, on a cluster, for what other nodes send it while the shard
    /// of its own channel does not answer: numbered from 1 to [`SPARE_CHANNELS`], each in the slot its
    /// own name hashes to, so some are most likely on other shards.
    pub(super) fn channel_node_spare(&self, node: &str, n: usize) -> String {
        format!("{}:v{WIRE_VERSION}:node:{node}:{n}", self.prefix)
    }

    /// The channels a node listens on whatever groups it serves: the broadcast channel, its own, and on
    /// a cluster its spares.
    pub(super) fn fixed_channels(&self, node: &str) -> Vec<String> {
        let mut fixed = vec![self.channel_all(), self.channel_node(node)];
        if self.is_cluster() {
            fixed.extend((1..=SPARE_CHANNELS).map(|n| self.channel_node_spare(node, n)));
        }
        fixed
    }

    pub(super) fn membership_key(&self, node: &str) -> String {
        format!("{}:v{WIRE_VERSION}:members:{node}", self.prefix)
    }

    /// The channel of a group's frames, in the group's slot.
    pub(super) fn channel_group(&self, group: &str) -> String {
        format!("{}:v{WIRE_VERSION}:{}:group", self.prefix, group_tag(group))
    }

    /// The group whose channel is `channel`, if it is one of this prefix's group channels.
    pub(super) fn group_of_channel(&self, channel: &str) -> Option<String> {
        let tag = channel
            .strip_prefix(&format!("{}:v{WIRE_VERSION}:{{g:", self.prefix))?
            .strip_suffix("}:group")?;
        Some(tag.replace("%7D", "}").replace("%25", "%"))
    }

    /// The hash holding a group's history `epoch` and the `offset` of its latest frame.
    pub(super) fn history_key(&self, group: &str) -> String {
        format!(
            "{}:v{WIRE_VERSION}:{}:history",
            self.prefix,
            group_tag(group)
        )
    }

    /// The groups with history, each scored with the time of its latest frame (Unix milliseconds).
    pub(super) fn histories_key(&self) -> String {
        format!("{}:v{WIRE_VERSION}:histories", self.prefix)
    }

    /// The number of the last frame of `group` that `node` had kept in its history.
    pub(super) fn sent_key(&self, node: &str, group: &str) -> String {
        format!(
            "{}:v{WIRE_VERSION}:{}:sent:{node}",
            self.prefix,
            group_tag(group)
        )
    }

    /// The stream of a group's kept frames, one entry per frame with the id `<offset>-0`.
    pub(super) fn stream_key(&self, group: &str) -> String {
        format!(
            "{}:v{WIRE_VERSION}:{}:stream",
            self.prefix,
            group_tag(group)
        )
    }
}

/// `{g:NAME}`: the hash tag that puts every key and the channel of a group in one slot. The name is
/// escaped (`%` as `%25`, `}` as `%7D`) so that the tag ends where it should, whatever the name.
pub(super) fn group_tag(group: &str) -> String {
    let escaped = group.replace('%', "%25").replace('}', "%7D");
    format!("{{g:{escaped}}}")
}

/// `url` parsed, with RESP3: subscriptions arrive as pushes on a connection that also runs commands.
fn resp3(url: &str) -> Result<redis::ConnectionInfo, ConfigError> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|e| ConfigError::BackplaneUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}
