//! Waiting for replicas off the publisher's path ([`RedisConfig::wait_for_replicas`]).
//!
//! A history frame that a replica must have before any client sees it is kept in Redis, `WAIT`ed for and
//! only then published, by a task of its group's slot: the publisher hands it over and goes on, so direct
//! messages, broadcasts, membership, heartbeats and groups on other shards never queue behind a slow
//! replica. One task per shard (the master of the group's slot, from `CLUSTER SLOTS`; the one task on a
//! single Redis) takes its frames in the order they came, a round at a time (all that waited meanwhile, up
//! to [`ROUND`]), with one `WAIT` per round; shards run side by side on a connection of their own, where a
//! `WAIT` holds up its own shard only.
//!
//! **A master without its replicas** (after a failover, until the old master comes back as a replica) is
//! seen from a `WAIT` that ran out: the slot's next rounds ask the master for its replicas first (`INFO
//! replication`) and, while it has fewer than asked for that are connected and acknowledging, publish at
//! once and count the frames in `unreplicated`, rather than wait out the timeout on every round. A
//! replica acknowledges every second; one silent for longer than [`SILENT`] (stopped, cut off, stuck)
//! keeps its connection for up to `repl-timeout` (a minute by default) but would only make every round
//! wait out its timeout, so it does not count. A frame whose wait ran out is published too, and counted
//! the same way.
//!
//! **Nothing is read back before its wait ended.** Publishing a frame also marks it confirmed in its
//! group's history hash (`confirmed`: epoch and offset); with replicas asked for, nodes read a group's
//! history only up to its confirmed frame (a reconnecting node catching up, a joining client's replay, a
//! `$history` answer), so a frame that is kept but still waiting reaches no client by any path.
//!
//! [`RedisConfig::wait_for_replicas`]: super::RedisConfig::wait_for_replicas

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::{RedisError, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use super::conn::{self, Conn, Pipelines};
use super::history::{self, Unsent, load_script};
use super::link::{Backoff, wait_or_stop};
use super::shared::Shared;
use super::topology::{Placement, Topology, slot_of};
use super::wire::{self, Op, millis};

/// Most frames one shard keeps, waits for and publishes in one round: a shard whose replica is slow
/// still publishes this many per wait.
pub(super) const ROUND: usize = 1024;

/// How long a replica may go without acknowledging the master's stream before it stops counting as one
/// that `WAIT` could hear from (Redis's `lag`, whole seconds since its last acknowledgement; a replica
/// acknowledges every second, so a healthy one shows 0 or 1, and 2 now and then on a loaded host).
const SILENT: u64 = 2;

/// Frames waiting for one shard's task; past that, a frame is dropped and counted in `dropped`, as on the
/// publisher's own queue.
const WAITING: usize = 8 * ROUND;

/// Sets a group's confirmed frame, unless its history is gone (the hash expired): a confirmation never
/// creates a hash without a life.
const CONFIRM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'confirmed', ARGV[1])
end
return 0
";

/// A history frame the publisher numbered and admitted, for its slot's task.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) unsent: Unsent,
    pub(super) admitted: bool,
    /// The publisher's membership change number when it handed the frame over, for the packet's header.
    pub(super) seq: u64,
}

/// The shards' tasks, as the publisher hands frames to them.
pub(super) struct Replication {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    /// Each shard's task, by its master's address (empty on a single Redis, `slot N` for a slot whose
    /// master is not known).
    shards: HashMap<String, Shard>,
    /// The keeping script takes a group's frames once and in order, so a frame kept by a new task first
    /// would make the old task's older frames look kept already, and they would never be published: a
    /// slot stays with its old task until that task has published everything it was handed.
    placement: Placement,
}

impl Replication {
    pub(super) fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Self {
        Self {
            shared,
            stop,
            shards: HashMap::new(),
            placement: Placement::default(),
        }
    }

    /// Starts a task for each shard known that has none, so each has its connection before a node stops
    /// answering (while one does, a new cluster connection takes the node timeout to make).
    pub(super) fn open(&mut self, topology: &Topology) {
        if !self.shared.config.is_cluster() {
            self.task(String::new());
        }
        for shard in topology.shards() {
            self.task(shard.to_owned());
        }
    }

    /// Hands `waiting` to the task of its group's shard, starting it on first use. A master's slots share
    /// its task; a slot whose master is not known yet has its own, so a round's one `WAIT` always covers
    /// every frame of the round.
    pub(super) fn hand_over(&mut self, topology: &Topology, waiting: Waiting) {
        let key = self.shared.config.history_key(&waiting.unsent.group);
        let shards = &self.shards;
        let shard = self
            .placement
            .place(topology, &self.shared.config, slot_of(&key), |shard| {
                shards.get(shard).is_some_and(Shard::busy)
            });
        let task = self.task(shard.clone());
        match task.sender.try_send(waiting) {
            Ok(()) => {
                task.unpublished.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.shared.counters.dropped.fetch_add(1, Relaxed);
            }
            // The task ended (it panicked): the next frame of the shard starts another.
            Err(TrySendError::Closed(_)) => {
                self.shards.remove(&shard);
                self.shared.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// The task of `shard`, started on first use.
    fn task(&mut self, shard: String) -> &Shard {
        self.shards.entry(shard).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(WAITING);
            let unpublished = Arc::new(AtomicUsize::new(0));
            tokio::spawn(wait_in_order(
                self.shared.clone(),
                receiver,
                unpublished.clone(),
                self.stop.clone(),
            ));
            Shard {
                sender,
                unpublished,
            }
        })
    }
}

/// One shard's task, as the publisher hands it frames.
struct Shard {
    sender: mpsc::Sender<Waiting>,
    /// Frames handed to the task and not yet published.
    unpublished: Arc<AtomicUsize>,
}

impl Shard {
    fn busy(&self) -> bool {
        self.unpublished.load(Relaxed) > 0
    }
}

/// One shard's task: rounds of keep, wait and publish, in the order the frames came, until the backplane
/// stops. A round that fails is run again on a new connection; frames it already kept are not kept again
/// (the script takes each frame once) but waited for and published from what their keeping returned, so
/// a master lost during a round's `WAIT` loses none of its frames.
async fn wait_in_order(
    shared: Arc<Shared>,
    mut waiting: mpsc::Receiver<Waiting>,
    unpublished: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut short = false;
    // Whether this task loaded the history script on the slot's master since its last error.
    let mut loaded = false;
    let mut round = Vec::with_capacity(ROUND);
    // The replies of the round's keeping, once it succeeded: what a retry publishes.
    let mut kept = None;
    // The task's own connection: a `WAIT` holds up the replies of its master's connection, and a cluster
    // connection that refreshes its view of the cluster holds up everything sent on it. Made at once,
    // while every node answers: one made while a node is stopped takes the node timeout.
    let mut conn = tokio::select! {
        made = connection(&shared) => made.ok(),
        () = super::link::stopped(&mut stop) => return,
    };
    loop {
        if round.is_empty() {
            let received = tokio::select! {
                n = waiting.recv_many(&mut round, ROUND) => n,
                () = super::link::stopped(&mut stop) => return,
            };
            if received == 0 {
                return;
            }
        }
        match run_round(
            &shared,
            &mut conn,
            &mut loaded,
            &mut short,
            &round,
            &mut kept,
        )
        .await
        {
            Ok(()) => {
                kept = None;
                shared
                    .counters
                    .published
                    .fetch_add(round.len() as u64, Relaxed);
                unpublished.fetch_sub(round.len(), Relaxed);
                round.clear();
                backoff.reset();
            }
            Err(e) => {
                tracing::warn!(target: "ws_core::backplane", error = %e, "redis: history frames wait for a connection to keep them");
                // A cluster connection heals itself; a single server's is made again.
                if conn.as_ref().is_some_and(|conn: &Conn| !conn.is_cluster()) {
                    conn = None;
                }
                loaded = false;
                if wait_or_stop(backoff.next_delay(), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Keeps the round's frames, waits for the replicas (unless the master is known to lack them), then
/// publishes and confirms the frames.
async fn run_round(
    shared: &Shared,
    conn: &mut Option<Conn>,
    loaded: &mut bool,
    short: &mut bool,
    round: &[Waiting],
    kept: &mut Option<Vec<Value>>,
) -> Result<(), RedisError> {
    let Some((replicas, timeout)) = shared.config.replicas else {
        return Ok(());
    };
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(connection(shared).await?),
    };
    let key = shared.config.history_key(&round[0].unsent.group);
    if !*loaded {
        load_script(conn, &key).await?;
        *loaded = true;
    }
    if *short {
        *short = acknowledging_replicas(conn, &key).await? < replicas;
    }
    let cluster = conn.is_cluster();
    if kept.is_none() {
        let mut keep = Pipelines::new(cluster);
        for w in round {
            history::invoke(&shared.history, &mut keep, w.seq, &w.unsent, w.admitted, "");
        }
        *kept = Some(keep.run_collecting(conn).await?);
    }
    let mut replies = kept.clone().unwrap_or_default();
    if !*short {
        // After every keep of the round, on the same connection to the same master: it covers them all.
        let mut wait = Pipelines::new(cluster);
        wait.on(&key)
            .cmd("EXISTS")
            .arg(&key)
            .ignore()
            .cmd("WAIT")
            .arg(replicas)
            .arg(millis(timeout));
        replies.extend(wait.run_collecting(conn).await?);
    }
    let (publish, kept, acknowledged) = publications(shared, cluster, replies);
    if acknowledged.is_none_or(|n| n < replicas) {
        shared.counters.unreplicated.fetch_add(kept, Relaxed);
        // Seen short: the next rounds ask for the replicas before they wait.
        *short = true;
    }
    publish.run(conn).await
}

/// From the replies of a round's scripts and `WAIT`: the publications of the kept frames with their
/// groups' confirmations, how many frames were kept, and how many replicas acknowledged them (`None`
/// when the round did not wait).
fn publications(
    shared: &Shared,
    cluster: bool,
    replies: Vec<Value>,
) -> (Pipelines, u64, Option<usize>) {
    let mut publish = Pipelines::new(cluster);
    let mut confirmed = BTreeMap::new();
    let mut kept = 0;
    let mut acknowledged = None;
    for reply in replies {
        match reply {
            Value::BulkString(packet) => {
                if let Some(wire::Packet {
                    op:
                        Op::History {
                            group,
                            epoch,
                            offset,
                            ..
                        },
                    ..
                }) = wire::decode(&packet)
                {
                    publish.publish(&shared.config.channel_group(&group), &packet);
                    confirmed.insert(group, format!("{epoch}:{offset}"));
                    kept += 1;
                }
            }
            Value::Int(n) => acknowledged = Some(usize::try_from(n).unwrap_or(0)),
            _ => {}
        }
    }
    for (group, at) in confirmed {
        let key = shared.config.history_key(&group);
        publish
            .on(&key)
            .cmd("EVAL")
            .arg(CONFIRM)
            .arg(1)
            .arg(&key)
            .arg(at)
            .ignore();
    }
    (publish, kept, acknowledged)
}

/// A connection for a shard's task, which waits for `WAIT`'s replies.
async fn connection(shared: &Shared) -> Result<Conn, RedisError> {
    // A `WAIT` answers after its timeout at the latest: the connection waits that long for replies.
    let config = &shared.config;
    let wait = config
        .replicas
        .map_or(Duration::ZERO, |(_, timeout)| timeout);
    let patient = config
        .clone()
        .node_timeout(config.node_timeout_value() + wait);
    conn::connect(&patient, None::<fn(redis::PushInfo) -> Result<(), ()>>).await
}

/// How many replicas the master of `key`'s slot has that are connected and heard from within [`SILENT`],
/// from its `INFO replication`.
async fn acknowledging_replicas(conn: &mut Conn, key: &str) -> Result<usize, RedisError> {
    let mut pipes = Pipelines::new(conn.is_cluster());
    // The key routes the pipeline to the slot's master; `INFO` names none.
    pipes
        .on(key)
        .cmd("EXISTS")
        .arg(key)
        .ignore()
        .cmd("INFO")
        .arg("replication");
    let replies = pipes.run_collecting(conn).await?;
    Ok(match replies.first() {
        Some(Value::BulkString(info)) => acknowledging(&String::from_utf8_lossy(info)),
        Some(Value::VerbatimString { text, .. }) => acknowledging(text),
        _ => 0,
    })
}

/// The replicas an `INFO replication` answer lists as online and heard from within [`SILENT`]: lines
/// `slaveN:ip=…,port=…,state=online,offset=…,lag=…`. A replica answers for a master of its own only.
fn acknowledging(info: &str) -> usize {
    if !info.lines().any(|line| line.trim_end() == "role:master") {
        return 0;
    }
    info.lines()
        .filter(|line| {
            line.strip_prefix("slave")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .filter(|line| {
            let field = |name: &str| {
                line.split([':', ',']).find_map(|kv| {
                    kv.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('='))
                })
            };
            field("state") == Some("online")
                && field("lag")
                    .and_then(|lag| lag.trim().parse::<u64>().ok())
                    .is_some_and(|lag| lag <= SILENT)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::acknowledging;

    #[test]
    fn replicas_count_while_online_and_heard_from_lately() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n\
            slave0:ip=127.0.0.1,port=7004,state=online,offset=9120,lag=0\r\n\
            slave1:ip=127.0.0.1,port=7005,state=online,offset=8000,lag=2\r\n\
            slave2:ip=127.0.0.1,port=7006,state=online,offset=4410,lag=3\r\n\
            slave_expires_tracked_keys:0\r\nmaster_repl_offset:9120\r\n";
        assert_eq!(acknowledging(info), 2, "lag 3 is past SILENT");
        let syncing =
            "role:master\r\nslave0:ip=127.0.0.1,port=7004,state=wait_bgsave,offset=0,lag=0\r\n";
        assert_eq!(acknowledging(syncing), 0, "not online yet");
        let replica = "role:slave\r\nmaster_host:127.0.0.1\r\nslave_read_repl_offset:1\r\n";
        assert_eq!(
            acknowledging(replica),
            0,
            "a replica has no replicas to wait for"
        );
        assert_eq!(acknowledging(""), 0);
    }
}
