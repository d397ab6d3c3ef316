//! The publisher: this node's traffic to Redis, in pipelines handed to the shards' lanes, and its
//! heartbeats.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use redis::{RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::config::{RedisConfig, SPARE_CHANNELS};
use super::conn::{Conn, Pipelines, publish_command};
use super::history::{self, Admissions, Unsent};
use super::lanes::Lanes;
use super::link::{Backoff, FAREWELL_TIMEOUT, connect, stopped, wait_or_stop};
use super::replication::{Replication, Waiting};
use super::shared::{Outgoing, Shared};
use super::topology::{Topology, slot_of};
use super::wire::millis;
use super::wire::{self, Change, Op};
use crate::backplane::Backplane;
use crate::backplane::MemoryBackplane;
use crate::member::PresenceMeta;

/// Most messages sent in one pipeline.
const BATCH: usize = 256;

/// The publisher: drains the outgoing queue into pipelines and sends heartbeats.
pub(super) async fn publish(
    shared: Arc<Shared>,
    local: MemoryBackplane,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<(Outgoing, usize)>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut queue = queue.lock_owned().await;
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut publisher = Publisher {
        shared: &shared,
        local: &local,
        seq: 0,
        stored: false,
        batch: Vec::with_capacity(BATCH),
        numbered: 0,
        admissions: Admissions::default(),
        topology: Topology::default(),
        lanes: Lanes::new(shared.clone(), stop.clone()),
        beat: None,
        replication: config
            .replicas
            .map(|_| Replication::new(shared.clone(), stop.clone())),
    };
    loop {
        let connected = tokio::select! {
            c = publisher.connect() => c,
            () = stopped(&mut stop) => break,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(target: "ws_core::backplane", error = %e, "redis: cannot connect the publisher");
                if wait_or_stop(backoff.next_delay(), &mut stop).await {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        shared.link.publisher_up.store(true, Relaxed);
        publisher.stored = false;
        let failure = publisher.run(&mut conn, &mut queue, &mut stop).await;
        shared.link.publisher_up.store(false, Relaxed);
        match failure {
            None => {
                publisher.farewell(&mut conn).await;
                break;
            }
            Some(e) => {
                tracing::warn!(target: "ws_core::backplane", error = %e, "redis: publisher lost its connection");
                shared.counters.reconnects.fetch_add(1, Relaxed);
                if wait_or_stop(backoff.next_delay(), &mut stop).await {
                    break;
                }
            }
        }
    }
}

struct Publisher<'a> {
    shared: &'a Shared,
    local: &'a MemoryBackplane,
    /// Number of this node's latest membership change.
    seq: u64,
    /// Whether this node's key holds its whole membership, on this connection; cleared when a change may
    /// have missed it.
    stored: bool,
    batch: Vec<(Outgoing, usize)>,
    /// The number of this node's latest frame for a group with history.
    numbered: u64,
    /// Which groups have room for history.
    admissions: Admissions,
    /// Which master serves which slots.
    topology: Topology,
    /// The shards' lanes, which send what the publisher encodes.
    lanes: Lanes,
    /// The replies of the heartbeat under way: whether this node's key was still there.
    beat: Option<oneshot::Receiver<RedisResult<Vec<Value>>>>,
    /// With replicas to wait for: the slots' tasks that keep, wait for and publish history frames.
    replication: Option<Replication>,
}

/// What encoding a batch found: the clients whose entry in this node's key changed, the groups they
/// joined or left, and the frames for groups with history that the publisher's lanes keep.
#[derive(Default)]
struct Encoded {
    touched: BTreeSet<String>,
    groups: BTreeSet<String>,
    histories: Vec<Unsent>,
}

impl Publisher<'_> {
    /// Connects, with history loads the script, and starts a lane (and a task waiting for replicas) for
    /// each shard, so each has its connection before one fails.
    async fn connect(&mut self) -> Result<Conn, RedisError> {
        let shared = self.shared;
        let mut conn = connect(shared).await?;
        if shared.history.kept.get().is_some() {
            // Loaded on every connection: a Redis that restarted has forgotten it. A history set up after
            // this point has its first frames answered `NOSCRIPT`, and the lane loads it then.
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(history::SCRIPT)
                .query_async::<()>(&mut conn)
                .await?;
        }
        let key = shared.config.membership_key(&shared.node);
        self.topology.learn(&shared.config, &conn, &key).await;
        self.lanes.open(&self.topology);
        if let Some(replication) = &mut self.replication {
            replication.open(&self.topology);
        }
        Ok(conn)
    }

    /// Publishes what is queued and sends heartbeats until the backplane stops (`None`) or the connection
    /// fails (its error).
    async fn run(
        &mut self,
        conn: &mut Conn,
        queue: &mut mpsc::Receiver<(Outgoing, usize)>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<RedisError> {
        let shared = self.shared;
        let mut ticker = tokio::time::interval(shared.config.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                biased;
                () = stopped(stop) => return None,
                _ = ticker.tick() => {
                    // Asked here too: a node that sends nothing still learns that a slot moved.
                    let key = shared.config.membership_key(&shared.node);
                    self.topology.refresh(&shared.config, conn, &key, &shared.link.slots_moved);
                    self.heartbeat();
                    Ok(())
                }
                // Redis went away under the subscriber (a restart, say), which counted the publisher as
                // down: it is up again once a heartbeat has been answered.
                () = shared.link.subscriber_lost.notified() => {
                    self.heartbeat();
                    Ok(())
                }
                beat = async { self.beat.as_mut().expect("a heartbeat under way").await },
                    if self.beat.is_some() => {
                    self.beat = None;
                    self.beaten(beat.unwrap_or_else(|_| Err(super::conn::timed_out())));
                    Ok(())
                }
                // Never closed: the backplane's shared state holds a sender until the tasks stop.
                _ = queue.recv_many(&mut self.batch, BATCH) => self.send_batch(conn).await,
            };
            if let Err(e) = result {
                return Some(e);
            }
        }
    }

    /// Sends one batch: admits the groups whose history it numbers, encodes every message into Redis
    /// commands, follows the groups joined, stores the membership changed, adds the history frames, and
    /// hands it all to the shards' lanes.
    async fn send_batch(&mut self, conn: &mut Conn) -> Result<(), RedisError> {
        let shared = self.shared;
        self.admit_histories(conn).await?;
        let key = shared.config.membership_key(&shared.node);
        self.topology
            .refresh(&shared.config, conn, &key, &shared.link.slots_moved);
        let mut pipes = Pipelines::new(conn.is_cluster());
        let Encoded {
            touched,
            groups,
            histories,
        } = self.encode(&mut pipes);
        self.keep(&mut pipes, &histories, publish_command(conn.is_cluster()));
        self.follow(groups).await;
        if !touched.is_empty() {
            self.store_clients(pipes.on(&key), touched);
        }
        self.lanes.send(&self.topology, pipes);
        Ok(())
    }

    /// Asks, when it is time to, whether the groups of this batch's history frames may have history.
    async fn admit_histories(&mut self, conn: &mut Conn) -> Result<(), RedisError> {
        let histories: BTreeSet<String> = self
            .batch
            .iter()
            .filter_map(|(m, _)| match m {
                Outgoing::History { group, .. } => Some(group.clone()),
                _ => None,
            })
            .collect();
        if histories.is_empty() {
            return Ok(());
        }
        self.admissions
            .refresh(&self.shared.history, conn, histories)
            .await
    }

    /// Turns the batch into publications on `pipes`, and history frames into unsent ones numbered by
    /// this node.
    fn encode(&mut self, pipes: &mut Pipelines) -> Encoded {
        let shared = self.shared;
        let config = &shared.config;
        let all = config.channel_all();
        let mut encoded = Encoded::default();
        for (message, size) in self.batch.drain(..) {
            shared.outbox.queued_bytes.fetch_sub(size, Relaxed);
            let (channel, payload) = match message {
                Outgoing::Deliver {
                    node,
                    op,
                    frame,
                    queued_ms,
                } => {
                    let channel = match (&node, &op) {
                        (Some(node), _) => channel_to(config, &self.topology, &self.lanes, node),
                        (None, Op::Group { group, .. }) => config.channel_group(group),
                        (None, _) => all.clone(),
                    };
                    let seq = self.seq;
                    (
                        channel,
                        wire::encode(&shared.node, seq, op, Some(&frame), Some(queued_ms)),
                    )
                }
                Outgoing::History {
                    group,
                    except,
                    frame,
                    queued_ms,
                } => {
                    self.numbered += 1;
                    let unsent = history::Unsent {
                        number: self.numbered,
                        group,
                        except,
                        frame,
                        queued_ms,
                    };
                    match &mut self.replication {
                        Some(replication) => replication.hand_over(
                            &self.topology,
                            Waiting {
                                admitted: self.admissions.admitted(&unsent.group),
                                unsent,
                                seq: self.seq,
                            },
                        ),
                        None => encoded.histories.push(unsent),
                    }
                    continue;
                }
                Outgoing::Request { node, op } => {
                    let payload = wire::encode(&shared.node, self.seq, op, None, None);
                    (
                        channel_to(config, &self.topology, &self.lanes, &node),
                        payload,
                    )
                }
                Outgoing::Order(op) => {
                    let payload = wire::encode(&shared.node, self.seq, op, None, None);
                    (all.clone(), payload)
                }
                Outgoing::Change(change) => {
                    self.seq += 1;
                    encoded.touched.insert(change.id().to_owned());
                    if let Change::Join { group, .. } | Change::Leave { group, .. } = &change {
                        encoded.groups.insert(group.clone());
                    }
                    let payload =
                        wire::encode(&shared.node, self.seq, Op::Change(change), None, None);
                    (all.clone(), payload)
                }
            };
            pipes.publish(&channel, &payload);
        }
        encoded
    }

    /// Subscribes to the groups joined in this batch before their joins are published, so a node that
    /// sends to a group because it sees the member reaches it; a group left is let go after. A failure
    /// is the subscriber's connection's: it subscribes to every group served when it is back.
    async fn follow(&self, groups: BTreeSet<String>) {
        if groups.is_empty() {
            return;
        }
        let shared = self.shared;
        let subscribed = shared
            .subscriptions
            .update(&shared.config, &shared.history, self.local, groups)
            .await;
        if let Err(e) = subscribed {
            tracing::debug!(target: "ws_core::backplane", error = %e, "redis: a group subscription waits for the subscriber's next connection");
        }
    }

    /// Adds the history script for `histories`, publishing with `publish`.
    fn keep(&self, pipes: &mut Pipelines, histories: &[Unsent], publish: &str) {
        for unsent in histories {
            let admitted = self.admissions.admitted(&unsent.group);
            history::invoke(
                &self.shared.history,
                pipes,
                self.seq,
                unsent,
                admitted,
                publish,
            );
        }
    }

    /// Adds to `pipe` the entries of `ids` in this node's key, as they are now (a client gone since is
    /// removed), and the latest change number.
    fn store_clients(&self, pipe: &mut redis::Pipeline, ids: impl IntoIterator<Item = String>) {
        let key = self.shared.config.membership_key(&self.shared.node);
        for id in ids {
            match self.local.member(&id) {
                Some(client) => {
                    let meta = client.extension::<PresenceMeta>();
                    let field = wire::client_field(
                        &self.local.client_groups(client.id()),
                        meta.as_ref().map(|m| &*m.0),
                    );
                    pipe.hset(&key, id, field)
                }
                None => pipe.hdel(&key, id),
            };
            pipe.ignore();
        }
        pipe.hset(&key, wire::SEQ_FIELD, self.seq).ignore();
    }

    /// Writes this node's key from scratch (after a change was lost, on a new connection, or when the key
    /// vanished), then extends its life and announces the latest change number. Otherwise the key is
    /// already up to date, change by change, and only its life is extended. Sent through the lanes, in
    /// order with the changes before it; the one before must have been answered.
    fn heartbeat(&mut self) {
        let shared = self.shared;
        let cluster = shared.config.is_cluster();
        let mut beat = Pipelines::new(cluster);
        // Announced even while the key's shard has not answered the last one: the others, and this node's
        // subscriber, hear from it through the broadcast channel's shard.
        let announce = |beat: &mut Pipelines, seq| {
            let packet = wire::encode(&shared.node, seq, Op::Heartbeat, None, None);
            beat.publish_beat(&shared.config.channel_all(), &packet);
        };
        if self.beat.is_some() {
            announce(&mut beat, self.seq);
            self.lanes.send(&self.topology, beat);
            return;
        }
        if shared.outbox.changes_lost.swap(false, Relaxed) {
            self.stored = false;
        }
        let key = shared.config.membership_key(&shared.node);
        let ttl = i64::try_from(millis(shared.config.node_timeout_value())).unwrap_or(i64::MAX);
        let mut pipes = Pipelines::new(cluster);
        let pipe = pipes.on(&key);
        if !self.stored {
            // Once per connection or loss: the only time the whole membership is copied, under a number
            // no change carried, so the others read it anew. A copy read before this one lands may be
            // partial (a change's own write, sent again once Redis is back, can make the key anew): it
            // bears an older number, and is read again at the next heartbeat.
            self.seq += 1;
            pipe.atomic().del(&key).ignore();
            let ids = self
                .local
                .client_ids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            self.store_clients(pipe, ids);
        }
        pipe.pexpire(&key, ttl);
        self.beat = Some(self.lanes.ask(&self.topology, pipes));
        // Taken for stored until the answer says otherwise: the changes that follow update it.
        self.stored = true;
        announce(&mut beat, self.seq);
        self.lanes.send(&self.topology, beat);
    }

    /// Takes a heartbeat's answer: a key that vanished (Redis restarted without persistence, or evicted
    /// it), or a heartbeat that failed, has the next one write it again.
    fn beaten(&mut self, answer: RedisResult<Vec<Value>>) {
        let link = &self.shared.link;
        match answer.as_deref() {
            Ok([kept, ..]) => {
                link.publisher_up.store(true, Relaxed);
                if !matches!(kept, Value::Int(1) | Value::Boolean(true)) {
                    self.stored = false;
                }
            }
            Ok([]) | Err(_) => {
                link.publisher_up.store(false, Relaxed);
                self.stored = false;
            }
        }
    }

    /// Removes this node's key and tells the others it is leaving, so they forget its clients at once.
    async fn farewell(&mut self, conn: &mut Conn) {
        let shared = self.shared;
        let mut pipes = Pipelines::new(conn.is_cluster());
        let key = shared.config.membership_key(&shared.node);
        pipes.on(&key).del(&key).ignore();
        let bye = wire::encode(&shared.node, self.seq, Op::Bye, None, None);
        pipes.publish(&shared.config.channel_all(), &bye);
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, pipes.run(conn)).await;
    }
}

/// The channel to publish on for `node`: its own, unless this node's lane to the shard of that channel is
/// stalled (the shard has no master, or does not answer) or the cluster names no master for its slot;
/// then the first of the node's spare channels on a shard known and not stalled.
fn channel_to(config: &RedisConfig, topology: &Topology, lanes: &Lanes, node: &str) -> String {
    let own = config.channel_node(node);
    if !config.is_cluster() {
        return own;
    }
    let answers = |slot| topology.knows(config, slot) && !lanes.stalled(topology, slot);
    let slot = slot_of(&own);
    if answers(slot) {
        return own;
    }
    let shard = topology.shard_of(config, slot);
    (1..=SPARE_CHANNELS)
        .map(|n| config.channel_node_spare(node, n))
        .find(|spare| {
            let slot = slot_of(spare);
            topology.shard_of(config, slot) != shard && answers(slot)
        })
        .unwrap_or(own)
}
