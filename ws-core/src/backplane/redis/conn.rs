//! A connection to Redis, one server or a cluster, and the commands whose form depends on which.
//!
//! On one server a channel is an ordinary one (`PUBLISH`, `SUBSCRIBE`); on a cluster every channel is a
//! shard channel (`SPUBLISH`, `SSUBSCRIBE`), served by the master of its slot alone, so a cluster spreads
//! pub/sub over its shards instead of copying every message to every node. Subscriptions use RESP3 pushes
//! on a multiplexed connection: the same connection runs commands, and a subscription made is confirmed
//! when the call returns.
//!
//! A cluster accepts a pipeline only when all its commands are in one slot; [`Pipelines`] keeps one per
//! slot (one in all on a single server, where the order of the whole batch is kept).

use std::collections::HashMap;

use redis::aio::{AsyncPushSender, ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::config::{RedisConfig, Target};
use super::topology::slot_of;

/// A connection to the configured Redis: cloning it is cheap, and clones share the connection.
#[derive(Clone)]
pub(super) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Conn::Single",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// Connects to the configured Redis; with `push`, what the connection's subscriptions receive goes there.
pub(super) async fn connect(
    config: &RedisConfig,
    push: Option<impl AsyncPushSender>,
) -> RedisResult<Conn> {
    let timeout = config.node_timeout_value();
    match &config.target {
        Target::Single(client) => {
            let mut settings = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            if let Some(push) = push {
                settings = settings.set_push_sender(push);
            }
            let conn = client
                .get_multiplexed_async_connection_with_config(&settings)
                .await?;
            Ok(Conn::Single(conn))
        }
        Target::Cluster(seeds) => {
            let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(3);
            if let Some(push) = push {
                builder = builder.push_sender(push);
            }
            let client = builder.build()?;
            // The seeds are asked, then every node is connected to, each within `timeout`: a stopped
            // node costs one timeout per step, and holds up no other connection than this one.
            let conn = tokio::time::timeout(timeout * 3, client.get_async_connection())
                .await
                .map_err(|_| timed_out())??;
            Ok(Conn::Cluster(conn))
        }
    }
}

impl Conn {
    /// Whether this is a cluster (shard channels, one pipeline per slot).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Subscribes to `channels`; returns once Redis has confirmed it.
    pub(super) async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Self::Single(c) => c.subscribe(channels).await,
            // One command per channel: a cluster takes an SSUBSCRIBE of one slot only.
            Self::Cluster(c) => {
                for channel in channels {
                    c.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channels`.
    pub(super) async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Self::Single(c) => c.unsubscribe(channels).await,
            Self::Cluster(c) => {
                for channel in channels {
                    c.sunsubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The publishing command for a connection's kind of channel.
pub(super) fn publish_command(cluster: bool) -> &'static str {
    if cluster { "SPUBLISH" } else { "PUBLISH" }
}

/// Pipelines of one batch: a single one on one server; on a cluster, one per slot, each holding the
/// commands for that slot in the order they were added.
pub(super) struct Pipelines {
    cluster: bool,
    by_slot: HashMap<u16, Slotted>,
}

/// One slot's pipeline, and what it publishes.
#[derive(Default)]
pub(super) struct Slotted {
    pub(super) pipe: Pipeline,
    /// The indices in `pipe` of plain publications ([`Pipelines::publish`]): Redis pub/sub is at most
    /// once, so a pipeline that failed is sent again without them.
    pub(super) plain: Vec<usize>,
    /// The messages it publishes: plain publications and history frames.
    pub(super) messages: u64,
    /// The payload bytes of those.
    pub(super) bytes: usize,
    /// Whether it announces this node's heartbeat.
    pub(super) beat: bool,
    /// A key or channel of the slot, to route commands that name none.
    pub(super) key: String,
}

impl Pipelines {
    pub(super) fn new(cluster: bool) -> Self {
        Self {
            cluster,
            by_slot: HashMap::new(),
        }
    }

    fn slotted(&mut self, key: &str) -> &mut Slotted {
        let slot = if self.cluster { slot_of(key) } else { 0 };
        let slotted = self.by_slot.entry(slot).or_default();
        if slotted.key.is_empty() {
            key.clone_into(&mut slotted.key);
        }
        slotted
    }

    /// The pipeline for the commands on `key` (or on channel `key`).
    pub(super) fn on(&mut self, key: &str) -> &mut Pipeline {
        &mut self.slotted(key).pipe
    }

    /// The pipeline for the commands on `key` that publish one message of `bytes` (a history frame's
    /// script).
    pub(super) fn publishing_on(&mut self, key: &str, bytes: usize) -> &mut Pipeline {
        let slotted = self.slotted(key);
        slotted.messages += 1;
        slotted.bytes += bytes;
        &mut slotted.pipe
    }

    /// Adds a publication of `payload` on `channel`, its reply ignored.
    pub(super) fn publish(&mut self, channel: &str, payload: &[u8]) {
        let command = publish_command(self.cluster);
        let slotted = self.slotted(channel);
        slotted.plain.push(slotted.pipe.len());
        slotted.messages += 1;
        slotted.bytes += payload.len();
        slotted.pipe.cmd(command).arg(channel).arg(payload).ignore();
    }

    /// Adds the announcement of this node's heartbeat, `packet`, on `channel`.
    pub(super) fn publish_beat(&mut self, channel: &str, packet: &[u8]) {
        self.publish(channel, packet);
        self.slotted(channel).beat = true;
    }

    /// Each slot's pipeline, with its slot.
    pub(super) fn into_slots(self) -> impl Iterator<Item = (u16, Slotted)> {
        self.by_slot.into_iter()
    }

    /// Runs every pipeline and returns the replies not ignored: each pipeline's in order, pipelines in
    /// no particular order. On a cluster, the slots' pipelines run side by side.
    pub(super) async fn run_collecting(self, conn: &mut Conn) -> RedisResult<Vec<Value>> {
        let runs = self.by_slot.into_values().map(|slotted| {
            let mut conn = conn.clone();
            async move { slotted.pipe.query_async::<Vec<Value>>(&mut conn).await }
        });
        let mut replies = Vec::new();
        for reply in futures_util::future::join_all(runs).await {
            replies.extend(reply?);
        }
        Ok(replies)
    }

    /// Runs every pipeline; on a cluster, the slots' pipelines run side by side. The first error is
    /// returned, after all have run.
    pub(super) async fn run(self, conn: &mut Conn) -> RedisResult<()> {
        let runs = self.by_slot.into_values().map(|slotted| {
            let mut conn = conn.clone();
            async move { slotted.pipe.query_async::<()>(&mut conn).await }
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .collect::<RedisResult<Vec<()>>>()
            .map(drop)
    }
}

/// The error a connection or command that took too long ends with.
pub(super) fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
