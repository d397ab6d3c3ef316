//! The publisher's lanes: one per shard, each sending its shard's commands in order, on a connection of
//! its own.
//!
//! The publisher turns each batch into one pipeline per slot and hands each to its shard's lane without
//! waiting for Redis. A lane runs what it was handed in order, merging what waited meanwhile into one
//! pipeline; lanes run side by side. So a shard that is slow, or has lost its master while the cluster
//! elects another, holds up its own slots only: direct messages, broadcasts, membership and the groups
//! of other shards go on (one cluster connection for all would not do: while it refreshes its view of
//! the cluster it sends nothing at all).
//!
//! **What a failure costs.** A pipeline that fails is sent again, with backoff, until it is taken or the
//! backplane stops. One that Redis refused (`CLUSTERDOWN` while the cluster elects a master, `TRYAGAIN`,
//! `MASTERDOWN`, `LOADING`) is sent again whole: nothing of it ran. One whose connection broke or timed
//! out is sent again without its plain publications: Redis pub/sub is at most once, and Redis may have
//! taken them before the connection broke, so they are dropped and counted in `dropped`; its history
//! frames (which the history script takes once, by number) and membership writes (which set what is,
//! not what changed) are sent until taken. A lost publication may have been a membership change: the
//! next heartbeat then makes the other nodes read this node's whole membership.
//!
//! **Bounds.** A lane holds at most `queue_bytes` of payloads; past it, what the publisher hands it is
//! dropped and counted, so a shard without a master cannot take the memory of the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use redis::{ErrorKind, Pipeline, RedisResult, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{self, Conn, Pipelines, Slotted};
use super::history::load_script;
use super::link::{Backoff, stopped, wait_or_stop};
use super::shared::Shared;
use super::topology::{Placement, Topology};
use crate::sync::lock;

/// Most pipelines a lane merges into one.
const MERGED: usize = 64;

/// Pipelines waiting for one lane, at most (the bytes they hold are bounded too).
const WAITING: usize = 4096;

/// How long a lane may work on one round before it counts as stalled (its shard has no master, or does
/// not answer): a round on a shard that answers takes milliseconds.
const STALLED_MS: u64 = 250;

/// What a lane is handed: one slot's pipeline, and whoever waits for its replies.
struct Work {
    slot: u16,
    slotted: Slotted,
    /// The replies not ignored, for a pipeline that is run alone and not sent again when it fails.
    reply: Option<oneshot::Sender<RedisResult<Vec<Value>>>>,
}

/// One lane, as the publisher hands it work.
struct Lane {
    sender: mpsc::Sender<Work>,
    /// Pipelines handed to the lane and not yet done.
    pending: Arc<AtomicUsize>,
    /// Payload bytes those hold.
    bytes: Arc<AtomicUsize>,
    /// When the lane began its round under way, in Unix milliseconds; 0 while it has nothing to do.
    busy_since: Arc<AtomicU64>,
    /// Whether its last command failed.
    failing: Arc<AtomicBool>,
    /// Whether one of its connection's links to a cluster node dropped since its last round done.
    suspect: Arc<AtomicBool>,
}

/// The lanes, by shard.
pub(super) struct Lanes {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    lanes: HashMap<String, Lane>,
    placement: Placement,
}

impl Lanes {
    pub(super) fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Self {
        Self {
            shared,
            stop,
            lanes: HashMap::new(),
            placement: Placement::default(),
        }
    }

    /// Starts a lane for each shard known that has none, so each has its connection before a shard fails
    /// (while one is stopped, a new cluster connection takes the node timeout to make).
    pub(super) fn open(&mut self, topology: &Topology) {
        if !self.shared.config.is_cluster() {
            self.lane(String::new());
        }
        for shard in topology.shards() {
            self.lane(shard.to_owned());
        }
    }

    /// Hands each of `pipes`' pipelines to its shard's lane.
    pub(super) fn send(&mut self, topology: &Topology, pipes: Pipelines) {
        for (slot, slotted) in pipes.into_slots() {
            self.hand_over(topology, slot, slotted, None);
        }
    }

    /// Whether the lane of `slot`'s shard is stalled: its last command failed, or it has been on one
    /// round for longer than [`STALLED_MS`], or since a link of its connection dropped (a node died: the
    /// lanes of the shards still answering finish their rounds within milliseconds and count again).
    /// Both the lane the slot's work went to last and that of its master as last learned count: after a
    /// topology change, the first may still hold the slot's work, the second may be new and idle.
    pub(super) fn stalled(&self, topology: &Topology, slot: u16) -> bool {
        let learned = topology.shard_of(&self.shared.config, slot);
        let stalled = |shard: &str| {
            self.lanes.get(shard).is_some_and(|lane| {
                let since = lane.busy_since.load(Relaxed);
                lane.failing.load(Relaxed)
                    || since != 0
                        && (lane.suspect.load(Relaxed)
                            || super::wire::unix_millis().saturating_sub(since) > STALLED_MS)
            })
        };
        stalled(&learned) || self.placement.last(slot).is_some_and(stalled)
    }

    /// Hands `pipes` (of one slot) to its shard's lane, to be run alone; its replies, or its error, go
    /// to the receiver returned.
    pub(super) fn ask(
        &mut self,
        topology: &Topology,
        pipes: Pipelines,
    ) -> oneshot::Receiver<RedisResult<Vec<Value>>> {
        let (sender, receiver) = oneshot::channel();
        let mut sender = Some(sender);
        for (slot, slotted) in pipes.into_slots() {
            self.hand_over(topology, slot, slotted, sender.take());
        }
        receiver
    }

    fn hand_over(
        &mut self,
        topology: &Topology,
        slot: u16,
        slotted: Slotted,
        reply: Option<oneshot::Sender<RedisResult<Vec<Value>>>>,
    ) {
        let lanes = &self.lanes;
        let shard = self
            .placement
            .place(topology, &self.shared.config, slot, |shard| {
                lanes
                    .get(shard)
                    .is_some_and(|lane| lane.pending.load(Relaxed) > 0)
            });
        let limit = self.shared.config.queue_bytes;
        let lane = self.lane(shard.clone());
        let size = slotted.bytes;
        let messages = slotted.messages;
        if lane.bytes.load(Relaxed) + size > limit && lane.pending.load(Relaxed) > 0 {
            self.refused(messages);
            return;
        }
        lane.bytes.fetch_add(size, Relaxed);
        lane.pending.fetch_add(1, Relaxed);
        let (pending, bytes) = (lane.pending.clone(), lane.bytes.clone());
        let refused = match lane.sender.try_send(Work {
            slot,
            slotted,
            reply,
        }) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            // The lane ended (it panicked): the next pipeline for the shard starts another.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        };
        pending.fetch_sub(1, Relaxed);
        bytes.fetch_sub(size, Relaxed);
        if refused {
            self.lanes.remove(&shard);
        }
        self.refused(messages);
    }

    /// Counts `messages` a lane could not take; one may have been a membership change.
    fn refused(&self, messages: u64) {
        self.shared.counters.dropped.fetch_add(messages, Relaxed);
        self.shared.outbox.changes_lost.store(true, Relaxed);
    }

    /// The lane of `shard`, started on first use.
    fn lane(&mut self, shard: String) -> &Lane {
        self.lanes.entry(shard).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(WAITING);
            let lane = Lane {
                sender,
                pending: Arc::default(),
                bytes: Arc::default(),
                busy_since: Arc::default(),
                failing: Arc::default(),
                suspect: Arc::default(),
            };
            tokio::spawn(run(
                self.shared.clone(),
                receiver,
                Progress {
                    pending: lane.pending.clone(),
                    bytes: lane.bytes.clone(),
                    busy_since: lane.busy_since.clone(),
                    failing: lane.failing.clone(),
                    suspect: lane.suspect.clone(),
                },
                self.stop.clone(),
            ));
            lane
        })
    }
}

/// What a lane tells the publisher of its work.
struct Progress {
    pending: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    busy_since: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    suspect: Arc<AtomicBool>,
}

impl Progress {
    /// A connection for the lane, which marks it suspect when one of its links to a cluster node drops.
    async fn connect(&self, shared: &Shared) -> RedisResult<Conn> {
        let suspect = self.suspect.clone();
        let notice = move |info: redis::PushInfo| -> Result<(), ()> {
            if info.kind == redis::PushKind::Disconnection {
                suspect.store(true, Relaxed);
            }
            Ok(())
        };
        conn::connect(&shared.config, Some(notice)).await
    }

    /// Notes the end of a command: the lane counts among the failing ones while its last failed, and
    /// is no longer suspect once one succeeded.
    fn note(&self, shared: &Shared, ok: bool) {
        let was_failing = self.failing.swap(!ok, Relaxed);
        if was_failing && ok {
            shared.link.lanes_failing.fetch_sub(1, Relaxed);
        } else if !was_failing && !ok {
            shared.link.lanes_failing.fetch_add(1, Relaxed);
        }
        if ok {
            self.suspect.store(false, Relaxed);
        }
    }
}

/// One lane: what it is handed, in order, until the backplane stops.
async fn run(
    shared: Arc<Shared>,
    mut work: mpsc::Receiver<Work>,
    progress: Progress,
    mut stop: watch::Receiver<bool>,
) {
    // Made at once, while every node answers: a cluster connection made while one is stopped takes the
    // node timeout.
    let mut conn = tokio::select! {
        made = progress.connect(&shared) => made.ok(),
        () = stopped(&mut stop) => return,
    };
    let mut backoff = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
    let mut waiting = Vec::with_capacity(MERGED);
    loop {
        if waiting.is_empty() {
            let received = tokio::select! {
                n = work.recv_many(&mut waiting, MERGED) => n,
                () = stopped(&mut stop) => return,
            };
            if received == 0 {
                return;
            }
            progress
                .busy_since
                .store(super::wire::unix_millis().max(1), Relaxed);
        }
        let (done_bytes, done) = match next_of(&mut waiting) {
            Next::Alone(work) => {
                let result = query(&shared, &progress, &mut conn, &work.slotted.pipe).await;
                progress.note(&shared, result.is_ok());
                if let Some(reply) = work.reply {
                    let _ = reply.send(result);
                }
                (work.slotted.bytes, 1)
            }
            Next::Merged(mut runs) => {
                let done = (
                    runs.iter().map(|m| m.bytes).sum(),
                    runs.iter().map(|m| m.works).sum(),
                );
                loop {
                    let failed = run_side_by_side(&shared, &progress, &mut conn, &mut runs).await;
                    progress.note(&shared, failed.is_none());
                    let Some(e) = failed else {
                        break;
                    };
                    tracing::warn!(target: "ws_core::backplane", error = %e, "redis: a shard's lane sends a pipeline again");
                    if runs.is_empty() || wait_or_stop(backoff.next_delay(), &mut stop).await {
                        break;
                    }
                }
                done
            }
        };
        backoff.reset();
        progress.bytes.fetch_sub(done_bytes, Relaxed);
        progress.pending.fetch_sub(done, Relaxed);
        let next = if waiting.is_empty() {
            0
        } else {
            super::wire::unix_millis().max(1)
        };
        progress.busy_since.store(next, Relaxed);
    }
}

/// What a lane runs next.
enum Next {
    Alone(Work),
    /// One pipeline per slot: a cluster takes no pipeline across slots.
    Merged(Vec<Merged>),
}

/// Runs each slot's pipeline of `runs`, side by side, and keeps in `runs` those that failed, without
/// their plain publications; returns the first error.
async fn run_side_by_side(
    shared: &Shared,
    progress: &Progress,
    conn: &mut Option<Conn>,
    runs: &mut Vec<Merged>,
) -> Option<redis::RedisError> {
    let made = match conn {
        Some(made) => made.clone(),
        None => match progress.connect(shared).await {
            Ok(made) => conn.insert(made).clone(),
            Err(e) => return Some(e),
        },
    };
    let results = futures_util::future::join_all(runs.iter().map(|m| {
        let mut made = made.clone();
        async move { m.pipe.query_async::<()>(&mut made).await }
    }))
    .await;
    let mut first = None;
    let mut failed = Vec::new();
    for (mut merged, result) in runs.drain(..).zip(results) {
        match result {
            Ok(()) => {
                shared
                    .counters
                    .published
                    .fetch_add(merged.messages, Relaxed);
                if merged.beat {
                    lock(&shared.link.beat_unanswered).get_or_insert_with(std::time::Instant::now);
                }
            }
            Err(e) => {
                // Refused as a whole (the cluster is down while it elects, a master loads its data):
                // nothing ran, all of it is sent again. Otherwise some may have run.
                let refused = matches!(
                    e.kind(),
                    ErrorKind::Server(
                        ServerErrorKind::ClusterDown
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::BusyLoading
                    )
                );
                // Redis answered every command, and refused only the history scripts: the rest ran.
                let noscript = e.kind() == ErrorKind::Server(ServerErrorKind::NoScript);
                if noscript {
                    merged.without_plain(shared, Taken::Yes);
                } else if !refused {
                    merged.without_plain(shared, Taken::Maybe);
                }
                if noscript && let Err(e) = load_script(&mut made.clone(), &merged.key).await {
                    tracing::debug!(target: "ws_core::backplane", error = %e, "redis: cannot load the history script yet");
                }
                // A single Redis's connection is made again after it broke; a cluster's heals itself.
                if e.is_unrecoverable_error() && !made.is_cluster() {
                    *conn = None;
                    shared.counters.reconnects.fetch_add(1, Relaxed);
                }
                if !merged.pipe.is_empty() {
                    failed.push(merged);
                }
                first.get_or_insert(e);
            }
        }
    }
    *runs = failed;
    first
}

/// The next of `waiting` (none of which has been run): the first alone if it awaits replies, else all
/// before the first that does, merged.
fn next_of(waiting: &mut Vec<Work>) -> Next {
    match waiting.iter().position(|w| w.reply.is_some()) {
        Some(0) => Next::Alone(waiting.remove(0)),
        Some(at) => {
            let rest: Vec<Work> = waiting.drain(at..).collect();
            let merged = Merged::by_slot(waiting.drain(..));
            waiting.extend(rest);
            Next::Merged(merged)
        }
        None => Next::Merged(Merged::by_slot(waiting.drain(..))),
    }
}

/// Several pipelines of a lane as one.
struct Merged {
    pipe: Pipeline,
    plain: Vec<usize>,
    messages: u64,
    bytes: usize,
    works: usize,
    key: String,
    /// Whether it announces this node's heartbeat.
    beat: bool,
}

impl Merged {
    /// The works' pipelines merged, one per slot, each in the order they came.
    fn by_slot(works: impl Iterator<Item = Work>) -> Vec<Self> {
        let mut by_slot: Vec<(u16, Vec<Work>)> = Vec::new();
        for work in works {
            match by_slot.iter_mut().find(|(slot, _)| *slot == work.slot) {
                Some((_, same)) => same.push(work),
                None => by_slot.push((work.slot, vec![work])),
            }
        }
        by_slot
            .into_iter()
            .map(|(_, works)| Self::of(works.into_iter()))
            .collect()
    }

    fn of(works: impl Iterator<Item = Work>) -> Self {
        let mut merged = Self {
            pipe: Pipeline::new(),
            plain: Vec::new(),
            messages: 0,
            bytes: 0,
            works: 0,
            key: String::new(),
            beat: false,
        };
        for work in works {
            let slotted = work.slotted;
            if merged.works == 0 {
                merged.pipe = slotted.pipe;
                merged.plain = slotted.plain;
                merged.key = slotted.key;
            } else {
                let base = merged.pipe.len();
                merged
                    .plain
                    .extend(slotted.plain.iter().map(|at| base + at));
                for cmd in slotted.pipe.cmd_iter() {
                    merged.pipe.add_command(cmd.clone());
                }
            }
            merged.beat |= slotted.beat;
            merged.messages += slotted.messages;
            merged.bytes += slotted.bytes;
            merged.works += 1;
        }
        merged
    }

    /// Takes the plain publications out of the pipeline before it is sent again: pub/sub is at most
    /// once. Counted published if Redis `taken` them, else dropped.
    fn without_plain(&mut self, shared: &Shared, taken: Taken) {
        if self.plain.is_empty() {
            return;
        }
        let mut kept = Pipeline::new();
        for (at, cmd) in self.pipe.cmd_iter().enumerate() {
            if self.plain.binary_search(&at).is_err() {
                kept.add_command(cmd.clone());
            }
        }
        let plain = self.plain.len() as u64;
        self.pipe = kept;
        self.plain.clear();
        self.messages -= plain;
        let beat = std::mem::take(&mut self.beat);
        match taken {
            Taken::Yes => {
                shared.counters.published.fetch_add(plain, Relaxed);
                if beat {
                    lock(&shared.link.beat_unanswered).get_or_insert_with(std::time::Instant::now);
                }
            }
            Taken::Maybe => {
                shared.counters.dropped.fetch_add(plain, Relaxed);
                // One may have been a membership change: the next heartbeat makes the others read it all.
                shared.outbox.changes_lost.store(true, Relaxed);
            }
        }
    }
}

/// Whether Redis took the commands of a pipeline that failed.
#[derive(Clone, Copy)]
enum Taken {
    /// It answered each: the failure was some commands' own.
    Yes,
    /// The connection broke or timed out: some may have run.
    Maybe,
}

/// Runs `pipe` on the lane's connection, making it first if there is none. A single Redis's connection
/// is made again after it broke; a cluster connection heals itself.
async fn query<T: redis::FromRedisValue>(
    shared: &Shared,
    progress: &Progress,
    conn: &mut Option<Conn>,
    pipe: &Pipeline,
) -> RedisResult<T> {
    let made = match conn {
        Some(made) => made,
        None => conn.insert(progress.connect(shared).await?),
    };
    let result = pipe.query_async::<T>(made).await;
    if let Err(e) = &result
        && e.is_unrecoverable_error()
        && !made.is_cluster()
    {
        *conn = None;
        shared.counters.reconnects.fetch_add(1, Relaxed);
    }
    result
}
