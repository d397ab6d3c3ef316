//! The Redis backplane: several nodes serve one set of clients and groups.
//!
//! Every operation is first done locally, from memory, exactly as on a single node; what the other nodes
//! must see is then queued for a publisher task and sent over Redis pub/sub. Nothing in a handler ever waits
//! for Redis, and a node that loses Redis goes on serving its own clients; only the other nodes' clients are
//! out of reach until the link is back (it reconnects with jittered exponential backoff).
//!
//! A broadcast goes to a channel every node subscribes to, a group send to the group's channel, which a
//! node subscribes to while it has members of the group (see [`subscriptions`]), and a direct send to the
//! channel of the node holding the client. Membership (which clients each node has, and their groups) is
//! replicated: each node publishes its changes, numbered, and keeps its membership under a key that it
//! updates with each change and that expires unless the node refreshes it, so a crashed node disappears
//! by itself (see
//! [`Peers`](peers::Peers) for how a replica catches up after a lost message).
//!
//! The same nodes run on one Redis or on a Redis Cluster ([`RedisConfig::cluster`]): there, channels are
//! shard channels, and every key and the channel of a group carry its hash tag, so each group lives on one
//! shard and no command spans slots.
//!
//! Guarantees are those of Redis pub/sub: at most once, in order per publishing node (per channel on a
//! cluster). A frame published while
//! a receiving node is disconnected from Redis is lost for that node's clients. Groups with history (when
//! the server has [`history`](crate::history)) are the exception: their frames are numbered and kept in a
//! Redis stream, and a node reads from it what it did not receive.
//!
//! # Where things are
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`RedisBackplane`]: the [`Backplane`] operations, each done here first, then queued for the others |
//! | `shared.rs` | what the backplane and its tasks share, by kind: outgoing queue, link state, counters, the peers, history's bookkeeping, subscriptions |
//! | `publisher.rs` | the task that encodes this node's traffic, membership changes and heartbeats into pipelines |
//! | `lanes.rs` | one lane per shard, on a connection of its own, that sends those pipelines in order |
//! | `topology.rs` | which master serves which slot, and which lane or task each slot's work goes to |
//! | `subscriber.rs` | the task that applies the other nodes' traffic and runs history's reads |
//! | `subscriptions.rs` | the channels this node listens to: one per group it serves |
//! | `conn.rs` | a connection to one Redis or a cluster, and pipelines by slot |
//! | `link.rs` | what both tasks share: connecting, backoff, restart after a panic |
//! | `peers.rs` | the replica of the other nodes' clients and groups |
//! | `history/` | history on Redis: its bookkeeping, the scripts, recovery, `$history`, the reads recovery makes |
//! | `replication.rs` | with `wait_for_replicas`: history frames kept, waited for and published per shard, off the publisher's path |
//! | `wire.rs` | the packets and the stored membership, encoded and decoded |
//! | `config.rs` | [`RedisConfig`] |
//!
//! # Wire format, version 3
//!
//! Everything lives under the configured prefix `P` (default `ws`) and the wire version: nodes of another
//! version on the same Redis do not see these nodes.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `P:v3:all` | channel, every node subscribes | broadcasts, membership changes, heartbeats, goodbyes |
//! | `P:v3:{g:G}:group` | channel, nodes with members of `G` subscribe | group sends to `G`, and its history frames |
//! | `P:v3:node:N` | channel, node `N` subscribes | direct sends to a client of `N`, join/leave requests for one |
//! | `P:v3:node:N:K` | channel, `K` from 1 to 8, node `N` subscribes on a cluster | the same, from a node whose lane to the shard of `node:N` is stalled (its last command failed, a link of its connection dropped during its round, or one round has taken over 250 ms): the first `K` on another shard whose lane is not |
//! | `P:v3:members:N` | hash, expires after `node_timeout` | node `N`'s membership: a field per client id, its groups as a JSON array (`["a","b"]`), and `$seq`, the latest change the hash reflects |
//! | `P:v3:{g:G}:history` | hash, expires `max_age` after the group's last frame | group `G`'s history: `epoch`, and `offset`, the number of its latest frame; with `wait_for_replicas`, `confirmed` (`epoch:offset`), its latest frame published after its wait |
//! | `P:v3:{g:G}:stream` | stream, the same life, `max_messages` entries | the kept frames of `G`: entry `<offset>-0`, field `p`, the packet as published |
//! | `P:v3:histories` | sorted set, the same life | the groups with history, scored with the time they were last admitted: at most `max_groups` within `max_age` |
//! | `P:v3:{g:G}:sent:N` | string, the same life | the number node `N` gave its latest frame for `G` that Redis took: a frame sent again after a lost connection is taken once |
//!
//! `{g:G}` is the group's hash tag: the name, with `%` written `%25` and `}` written `%7D`. On one Redis
//! channels are ordinary (`PUBLISH`), on a cluster shard channels (`SPUBLISH`, Redis 7 or later).
//!
//! A node updates its hash in the same pipeline as it publishes its changes: one `HSET` (or `HDEL`, for a
//! client gone) per client whose groups changed, and `$seq`. It writes the whole hash (`DEL`, then an
//! `HSET` per client, in one transaction) only when it has to: on each new connection to Redis, after a
//! change could not be published, or when its key vanished (Redis restarted empty); each heartbeat
//! extends the key's life with `PEXPIRE`. A node that must catch up reads the hash with `HGETALL`.
//!
//! Every message is one JSON header line, a newline, then for deliveries the frame's payload byte for
//! byte (a header never embeds the frame, which would escape it twice). The header:
//! `{"v": 2, "node": N, "seq": S, "op": ..., "binary"?: true, "volatile"?: true, "latest"?: key, "ts"?: T, ...}`,
//! where `node` is the sender's random 128-bit id in hex, `seq` the number of its latest membership
//! change, `ts` (deliveries) when the sender queued it in Unix milliseconds (receivers ignore a field they
//! do not know, and measure `ws_backplane_lag_seconds` from this one), and `op` one of:
//!
//! | `op` | fields | sent on | effect on a receiving node |
//! |---|---|---|---|
//! | `broadcast` | `except` | `all` | the body to every local client but `except` |
//! | `group` | `group`, `except` | the group's | the body to the group's local members but `except` |
//! | `history` | `group`, `except`, `epoch`, `offset` | the group's, by the history script | the body, with its position, to the group's local members but `except`, after any frames before `offset` this node did not receive (read from the stream) |
//! | `direct` | `to` | `node:N` | the body to client `to` |
//! | `join_request` / `leave_request` | `group`, `id` | `node:N` | `N` applies it to its client (its limits apply) |
//! | `change` | `change`: `connect`/`disconnect` `{id}`, `join`/`leave` `{group, id}` | `all` | the sender's replica is updated; a gap in `seq` makes the receiver read `members:N` |
//! | `heartbeat` | — | `all` | the sender is alive; a `seq` ahead of the replica makes the receiver read `members:N` |
//! | `bye` | — | `all` | the sender's clients are forgotten at once |
//!
//! A packet of another version, or that is not a header at all (another program on the channel), is
//! ignored. Changes are idempotent, so applying one twice (a message and then the stored membership) is
//! harmless.
//!
//! # Cost per node
//!
//! Each node holds one connection that subscribes (and runs the history's reads) and one that publishes.
//! A broadcast is one `PUBLISH` to `all`, which Redis fans out to every node; a group send is one
//! `PUBLISH` to the group's channel, which reaches only the nodes with members of the group, whatever
//! their number; each node then delivers from memory. A node subscribes to a group's channel when its
//! first member of the group joins and unsubscribes when its last one leaves. A direct send to a client
//! elsewhere is one `PUBLISH` to that node's channel. Each membership change is one `PUBLISH` to every
//! node and one `HSET` of the client's entry (at most `max_groups_per_client` × `max_group_name_bytes`,
//! 64 KiB with the defaults); every `heartbeat_interval` (1 s) a node publishes a heartbeat and extends
//! its key's life. Every node keeps a replica of every other node's clients and groups: memory grows with
//! all the nodes' total membership, not with this node's.
//!
//! Order: on one Redis, what a node publishes reaches every other node in the order it was sent, whatever
//! the channels. On a cluster, each channel is on its shard: one node's frames keep their order per group,
//! per destination node, and among broadcasts, not across them; while the shard of a destination node's
//! channel does not answer (it elects a master), what is sent to that node goes by one of its spare
//! channels and can arrive before what was sent earlier and waited for the shard.

mod config;
mod conn;
mod history;
mod lanes;
mod link;
mod peers;
mod publisher;
mod replication;
mod shared;
mod subscriber;
mod subscriptions;
mod topology;
mod wire;

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, MutexGuard};

use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

pub use self::config::RedisConfig;
use self::link::supervise;
use self::peers::Peers;
#[cfg(feature = "fuzzing")]
pub(crate) use self::peers::fuzz_peer_input;
use self::shared::{Outgoing, Shared};
use self::wire::unix_millis;
use self::wire::{Change, Op};
use super::{Backplane, BackplaneStats, MemoryBackplane};
use crate::client::id::ClientId;
use crate::error::{Error, SendError};
use crate::member::Member;
use crate::protocol::Frame;
use crate::session::{Disconnect, Target};
use crate::sync::lock;

/// A [`Backplane`] that shares broadcasts, group sends, direct sends and membership between nodes through
/// Redis.
///
/// Install it with [`ServerBuilder::backplane`](crate::ServerBuilder::backplane), inside a Tokio runtime
/// (it starts its tasks there):
///
/// ```no_run
/// use ws_core::backplane::{RedisBackplane, RedisConfig};
/// use ws_core::{Config, Server};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisConfig::new("redis://127.0.0.1:6379/")?;
/// let server = Server::builder(Config::default())
///     .backplane(|local| RedisBackplane::start(local, redis))
///     .build()?;
/// server.serve().await?;
/// # Ok(())
/// # }
/// ```
///
/// Membership queries ([`Server::group_members`](crate::Server::group_members),
/// [`Server::groups`](crate::Server::groups), [`Member::groups`](crate::Client::groups) of a remote id,
/// [`Server::send_to_client`](crate::Server::send_to_client) to a remote id) answer from this node's
/// replica of the others, which is at most one heartbeat behind.
/// [`Server::local_group_members`](crate::Server::local_group_members) returns handles, so it lists this
/// node's members only.
#[derive(Debug)]
pub struct RedisBackplane {
    local: MemoryBackplane,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    publisher_done: watch::Receiver<bool>,
}

impl RedisBackplane {
    /// Starts the backplane's tasks on the current Tokio runtime and returns at once; the first connection
    /// to Redis is made in the background.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(local: MemoryBackplane, config: RedisConfig) -> Self {
        let node = format!("{:032x}", rand::random::<u128>());
        let (outgoing, queue) = mpsc::channel(config.queue_capacity);
        let (commands, commands_queue) = mpsc::channel(config.queue_capacity);
        let (shutdown, stop) = watch::channel(false);
        let (done, publisher_done) = watch::channel(false);
        let shared = Arc::new(Shared::new(node, config, outgoing, commands));
        tokio::spawn({
            let (shared, local, stop) = (shared.clone(), local.clone(), stop.clone());
            // Shared with each run of the publisher, so a run that panicked leaves it to the next one.
            let queue = Arc::new(tokio::sync::Mutex::new(queue));
            async move {
                supervise(&shared, "publisher", || {
                    publisher::publish(shared.clone(), local.clone(), queue.clone(), stop.clone())
                })
                .await;
                done.send_replace(true);
            }
        });
        tokio::spawn({
            let (shared, local) = (shared.clone(), local.clone());
            let commands = Arc::new(tokio::sync::Mutex::new(commands_queue));
            async move {
                supervise(&shared, "subscriber", || {
                    subscriber::subscribe(
                        shared.clone(),
                        local.clone(),
                        commands.clone(),
                        stop.clone(),
                    )
                })
                .await;
            }
        });
        Self {
            local,
            shared,
            shutdown,
            publisher_done,
        }
    }

    /// This node's name among its peers (random, new at every start).
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    fn deliver_elsewhere(&self, node: Option<String>, op: Op, frame: &Frame) {
        self.shared.enqueue(Outgoing::Deliver {
            node,
            op,
            frame: frame.clone(),
            queued_ms: unix_millis(),
        });
    }

    fn peers(&self) -> MutexGuard<'_, Peers> {
        lock(&self.shared.peers)
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl Backplane for RedisBackplane {
    fn broadcast(&self, frame: &Frame, except: &[ClientId]) {
        self.local.broadcast(frame, except);
        let except = wire::except_ids(except);
        self.deliver_elsewhere(None, Op::Broadcast { except }, frame);
    }

    fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]) {
        if self.shared.history.applies_to(group) {
            // Delivered here too when it comes back numbered, in the order every node sees.
            self.shared.enqueue(Outgoing::History {
                group: group.to_owned(),
                except: wire::except_ids(except),
                frame: frame.clone(),
                queued_ms: unix_millis(),
            });
            return;
        }
        self.local.send_to_group(group, frame, except);
        let op = Op::Group {
            group: group.to_owned(),
            except: wire::except_ids(except),
        };
        self.deliver_elsewhere(None, op, frame);
    }

    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
        if self.local.has_client(id.as_str()) {
            return self.local.send_to_client(id, frame);
        }
        let id = id.as_str();
        let owner = self.peers().owner(id).map(str::to_owned);
        match owner {
            Some(node) => {
                let op = Op::Direct { to: id.to_owned() };
                self.deliver_elsewhere(Some(node), op, frame);
                Ok(())
            }
            None => Err(SendError::Disconnected),
        }
    }

    fn join(&self, group: &str, client: &Member) -> Result<bool, Error> {
        let joined = history::join(&self.shared.history, &self.local, group, client)?;
        if joined {
            self.shared.enqueue(Outgoing::Change(Change::Join {
                group: group.to_owned(),
                id: client.id().to_string(),
            }));
        }
        Ok(joined)
    }

    fn leave(&self, group: &str, id: &ClientId) -> bool {
        let left = self.local.leave(group, id);
        if left {
            self.shared.enqueue(Outgoing::Change(Change::Leave {
                group: group.to_owned(),
                id: id.to_string(),
            }));
        }
        left
    }

    fn leave_all(&self, id: &ClientId) -> Vec<String> {
        let groups = self.local.leave_all(id);
        for group in &groups {
            self.shared.enqueue(Outgoing::Change(Change::Leave {
                group: group.clone(),
                id: id.to_string(),
            }));
        }
        groups
    }

    fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
        self.local.is_in_group(group, id) || self.peers().is_in_group(group, id.as_str())
    }

    fn client_groups(&self, id: &ClientId) -> Vec<String> {
        let groups = self.local.client_groups(id);
        if groups.is_empty() && !self.local.has_client(id.as_str()) {
            return self.peers().groups_of(id.as_str());
        }
        groups
    }

    fn local_group_members(&self, group: &str) -> Vec<Member> {
        self.local.local_group_members(group)
    }

    fn group_members(&self, group: &str) -> Vec<ClientId> {
        let mut remote = Vec::new();
        self.peers().member_ids(group, &mut remote);
        let mut ids = self.local.group_members(group);
        ids.extend(remote.into_iter().map(ClientId::from));
        ids.sort();
        ids.dedup();
        ids
    }

    fn groups(&self) -> Vec<String> {
        let mut names = self.local.groups();
        self.peers().groups(&mut names);
        names.sort();
        names.dedup();
        names
    }

    fn group_count(&self) -> usize {
        self.groups().len()
    }

    fn join_elsewhere(&self, group: &str, id: &ClientId) -> Result<bool, Error> {
        let id = id.as_str();
        let (owner, member) = {
            let peers = self.peers();
            (
                peers.owner(id).map(str::to_owned),
                peers.is_in_group(group, id),
            )
        };
        let Some(node) = owner else {
            return Err(Error::not_found(format!("no client {id:?}")));
        };
        if member {
            return Ok(false);
        }
        let op = Op::JoinRequest {
            group: group.to_owned(),
            id: id.to_owned(),
        };
        self.shared.enqueue(Outgoing::Request { node, op });
        Ok(true)
    }

    fn leave_elsewhere(&self, group: &str, id: &ClientId) -> bool {
        let id = id.as_str();
        let owner = {
            let peers = self.peers();
            peers
                .is_in_group(group, id)
                .then(|| peers.owner(id).map(str::to_owned))
                .flatten()
        };
        let Some(node) = owner else {
            return false;
        };
        let op = Op::LeaveRequest {
            group: group.to_owned(),
            id: id.to_owned(),
        };
        self.shared.enqueue(Outgoing::Request { node, op });
        true
    }

    fn stream_order_elsewhere(&self, order: &crate::stream::StreamOrder) {
        self.shared.enqueue(Outgoing::Order(wire::stream_op(order)));
    }

    fn disconnect_elsewhere(&self, order: &Disconnect) {
        let (client, user) = match &order.target {
            Target::Client(id) => (Some(id.to_string()), None),
            Target::User(user) => (None, Some(user.clone())),
        };
        let (revoked_at_ms, revoked_until_ms) = order.revocation.map_or((0, 0), |r| {
            (
                wire::system_millis(r.revoked_at),
                wire::system_millis(r.until),
            )
        });
        self.shared.enqueue(Outgoing::Order(Op::Disconnect {
            client,
            user,
            code: order.code.as_u16(),
            reason: order.reason.clone(),
            revoked_at_ms,
            revoked_until_ms,
        }));
    }

    fn client_connected(&self, client: &Member) {
        let meta = client
            .extension::<crate::member::PresenceMeta>()
            .and_then(|m| serde_json::from_str(&m.0).ok());
        self.shared.enqueue(Outgoing::Change(Change::Connect {
            id: client.id().to_string(),
            meta,
        }));
    }

    fn client_disconnected(&self, id: &ClientId) {
        self.shared
            .enqueue(Outgoing::Change(Change::Disconnect { id: id.to_string() }));
    }

    fn presence_meta(&self, id: &ClientId) -> Option<Arc<str>> {
        self.peers().meta(id.as_str())
    }

    fn membership_version(&self) -> Option<u64> {
        let local = self.local.membership_version().unwrap_or(0);
        Some(local.wrapping_add(self.peers().version()))
    }

    fn keep_history(&self, history: &crate::history::History) -> bool {
        self.shared.history.kept.set(history.clone()).is_ok()
    }

    fn fetch_history(&self, client: &Member, id: u64, group: &str, since: u64) {
        history::fetch(&self.shared.history, &self.local, client, id, group, since);
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "backplane_lag_seconds",
            "Time from another node queueing a delivery to this node handing it to its clients, by the two \
             nodes' clocks (keep them synchronized)",
            self.shared.counters.lag.clone(),
        );
    }

    fn stats(&self) -> Option<BackplaneStats> {
        let s = &self.shared;
        Some(BackplaneStats {
            connected: s.link.connected(),
            nodes: self.peers().node_count() as u64,
            published: s.counters.published.load(Relaxed),
            received: s.counters.received.load(Relaxed),
            received_bytes: s.counters.received_bytes.load(Relaxed),
            dropped: s.counters.dropped.load(Relaxed),
            reconnects: s.counters.reconnects.load(Relaxed),
            task_restarts: s.counters.task_restarts.load(Relaxed),
            received_dropped: s.counters.received_dropped.load(Relaxed),
            subscribed_groups: s.subscriptions.group_count(),
            unreplicated: s.counters.unreplicated.load(Relaxed),
        })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.shutdown.send_replace(true);
        let mut done = self.publisher_done.clone();
        let wait = self
            .shared
            .config
            .heartbeat_interval
            .max(link::FAREWELL_TIMEOUT);
        Box::pin(async move {
            let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_reported_down() {
        let server = crate::Server::builder(crate::Config::default())
            .build()
            .unwrap();
        let unreachable = RedisConfig::new("redis://127.0.0.1:1/")
            .unwrap()
            .reconnect_delay(Duration::from_millis(1), Duration::from_millis(2));
        let backplane = RedisBackplane::start(server.node().local.clone(), unreachable);
        backplane.shared.link.publisher_up.store(true, Relaxed);
        backplane.shared.link.subscriber_up.store(true, Relaxed);
        let runs = std::cell::Cell::new(0);
        supervise(&backplane.shared, "test", || {
            runs.set(runs.get() + 1);
            let run = runs.get();
            async move {
                assert!(run >= 3, "run {run} fails");
            }
        })
        .await;
        let stats = backplane.stats().unwrap();
        assert_eq!(
            (runs.get(), stats.task_restarts, stats.connected),
            (3, 2, false)
        );
    }

    #[tokio::test]
    async fn what_arrives_faster_than_it_is_applied_is_dropped_and_counted() {
        let server = crate::Server::builder(crate::Config::default())
            .build()
            .unwrap();
        let unreachable = RedisConfig::new("redis://127.0.0.1:1/").unwrap();
        let backplane = RedisBackplane::start(server.node().local.clone(), unreachable);
        let payloads = || (0..50).map(|_| bytes::Bytes::from(vec![b'x'; 100]));

        // 10 messages fit; nobody applies them.
        let (arrived, _waiting) = mpsc::channel(10);
        let inbox = subscriber::Inbox::new(arrived, 1 << 20, backplane.shared.clone());
        payloads().for_each(|p| inbox.push(p));
        assert_eq!(backplane.stats().unwrap().received_dropped, 40);

        // 500 bytes fit: five payloads of 100.
        let (arrived, _waiting) = mpsc::channel(1000);
        let inbox = subscriber::Inbox::new(arrived, 500, backplane.shared.clone());
        payloads().for_each(|p| inbox.push(p));
        let stats = backplane.stats().unwrap();
        assert_eq!((stats.received_dropped, stats.received), (40 + 45, 100));
    }
}
