//! The subscriber: the other nodes' traffic from Redis, applied to this node, and the history commands
//! that need a connection of their own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::{PushInfo, PushKind, RedisError};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::conn::timed_out;
use super::conn::{self, Conn};
use super::history::{self, Command};
use super::link::{Backoff, stopped, wait_or_stop};
use super::shared::{Outgoing, Shared};
use super::wire::{self, Change, Op};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::id::ClientId;
use crate::close::CloseCode;
use crate::session::{Disconnect, Revocation, Target};
use crate::sync::lock;

/// The receiver: subscribes to the broadcast channel, this node's and its groups', and applies what
/// arrives.
pub(super) async fn subscribe(
    shared: Arc<Shared>,
    local: MemoryBackplane,
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<Command>>>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut commands = commands.lock_owned().await;
    loop {
        let ended = tokio::select! {
            e = listen(&shared, &local, &mut commands, &mut backoff) => e,
            () = stopped(&mut stop) => break,
        };
        shared.subscriptions.stop().await;
        let was_up = shared.link.subscriber_up.swap(false, Relaxed);
        // The publisher's connection, to the same Redis, is suspect too, and may not notice before its next
        // heartbeat: `connected` must not say so meanwhile.
        shared.link.publisher_up.store(false, Relaxed);
        shared.link.subscriber_lost.notify_one();
        // Unreachable nodes are not members of anything this node can deliver to.
        lock(&shared.peers).clear();
        tracing::warn!(target: "ws_core::backplane", error = %ended, "redis: subscriber lost its connection");
        if was_up {
            shared.counters.reconnects.fetch_add(1, Relaxed);
        }
        if wait_or_stop(backoff.next_delay(), &mut stop).await {
            break;
        }
    }
    lock(&shared.peers).clear();
}

/// Subscribes, catches up, then applies what arrives until the connection is lost; returns why.
async fn listen(
    shared: &Arc<Shared>,
    local: &MemoryBackplane,
    commands: &mut mpsc::Receiver<Command>,
    backoff: &mut Backoff,
) -> RedisError {
    let config = &shared.config;
    let (arrived, mut incoming) = mpsc::channel(config.queue_capacity);
    let inbox = Inbox::new(arrived, config.queue_bytes, shared.clone());
    let buffered = inbox.buffered.clone();
    let lost = Arc::new(tokio::sync::Notify::new());
    let fixed = config.fixed_channels(&shared.node);
    let mut reader = match open(shared, local, inbox, lost.clone(), &fixed).await {
        Ok(conn) => conn,
        Err(e) => return e,
    };
    shared.link.subscriber_up.store(true, Relaxed);
    backoff.reset();
    let timeout = config.node_timeout_value();
    let mut ticker = tokio::time::interval(config.heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When this node last heard its own heartbeat; the one Redis took and it has not heard yet, if any.
    let mut own_heartbeat = Instant::now();
    lock(&shared.link.beat_unanswered).take();
    // A cluster node's connection lost: subscribing again in the background, so the other shards' traffic
    // goes on meanwhile.
    let mut resubscribing = Resubscribing::new(config);
    let mut catching_up = CatchingUp::new();
    let mut reads = MembershipReads::new();
    loop {
        // A silent node is forgotten when its time is up, not at this node's next tick, which may be up to
        // a heartbeat interval later; but only for a silence this node heard itself through (a cluster
        // that elects a master refuses every publication for a while: the silence is then everyone's).
        let heard = own_heartbeat + config.heartbeat_interval;
        let next_expiry = lock(&shared.peers)
            .next_expiry(timeout)
            .filter(|at| Instant::from_std(*at) < heard);
        let expiry = async {
            match next_expiry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            Some(payload) = incoming.recv() => {
                buffered.release(payload.len());
                received(shared, local, &mut reader, &mut reads, &payload, &mut own_heartbeat).await
            }
            () = lost.notified() => {
                if reader.is_cluster() {
                    resubscribing.start(shared, &reader, &fixed).await;
                    Ok(())
                } else {
                    Err(RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
                }
            }
            () = resubscribing.done() => {
                // What was published on the lost node's channels meanwhile is read from the streams.
                resubscribing.backoff.reset();
                catching_up.start(shared, &reader);
                Ok(())
            }
            () = shared.link.slots_moved.notified() => {
                // The cluster connection follows a moved channel by itself; what was published there
                // before it did is read from the streams.
                catching_up.start(shared, &reader);
                Ok(())
            }
            () = shared.subscriptions.ended_notified() => {
                // A channel whose slot moved: subscribed again where it is now, then what was published
                // there before is read from the streams.
                let restored = shared.subscriptions.restore(&shared.config, &shared.history, local, &fixed).await;
                if restored.is_ok() {
                    catching_up.start(shared, &reader);
                }
                restored
            }
            () = reads.next(shared) => Ok(()),
            missed = catching_up.next() => {
                history::apply_missed(&shared.history, local, &mut shared.history.streams(&mut reader), missed).await
            }
            Some(command) = commands.recv() => {
                let follow = async |group| {
                    let (keys, history) = (&shared.config, &shared.history);
                    shared.subscriptions.update(keys, history, local, [group]).await
                };
                let mut streams = shared.history.streams(&mut reader);
                history::run(&shared.history, local, &mut streams, command, follow).await
            },
            () = expiry => {
                if let Some(deadline) = Instant::now().min(heard).checked_sub(timeout) {
                    lock(&shared.peers).expire(deadline.into_std());
                }
                Ok(())
            }
            _ = ticker.tick() => {
                history::forget_empty(&shared.history, local);
                match Instant::now().checked_sub(timeout) {
                    Some(deadline) => {
                        if let Some(silent) = Instant::now().min(heard).checked_sub(timeout) {
                            lock(&shared.peers).expire(silent.into_std());
                        }
                        // Broken somewhere: a heartbeat Redis took has not come back.
                        let unanswered = *lock(&shared.link.beat_unanswered);
                        if unanswered.is_some_and(|at| at < deadline.into_std()) {
                            return timed_out();
                        } else {
                            shared.subscriptions.reconcile(&shared.config, &shared.history, local).await
                        }
                    }
                    None => shared.subscriptions.reconcile(&shared.config, &shared.history, local).await,
                }
            }
        };
        match result {
            Ok(()) => {}
            // On a cluster, a command that failed had one shard out of reach (it may be electing a
            // master): the others' traffic goes on, and the subscriptions are made again until that shard
            // answers. What proves the whole link broken is this node's heartbeat not coming back.
            Err(e) if reader.is_cluster() => {
                tracing::warn!(target: "ws_core::backplane", error = %e, "redis: a shard is out of reach; subscribing again");
                resubscribing.start(shared, &reader, &fixed).await;
            }
            Err(e) => return e,
        }
    }
}

/// Subscribing again to every channel after a cluster node's connection was lost, until each is
/// subscribed where its slot is served now (after a failover, on the promoted replica). The cluster
/// connection subscribes a node it reconnects to again, but not the slots that moved away from it; a
/// subscription to a channel already subscribed to changes nothing.
struct Resubscribing {
    task: Option<tokio::task::JoinHandle<()>>,
    /// Grows with each start until the catch-up after one succeeds.
    backoff: Backoff,
}

impl Resubscribing {
    fn new(config: &super::config::RedisConfig) -> Self {
        Self {
            task: None,
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
        }
    }

    /// Starts again from the channels as they are now, after a backoff.
    async fn start(&mut self, shared: &Arc<Shared>, reader: &Conn, fixed: &[String]) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let channels = shared.subscriptions.channels(&shared.config, fixed).await;
        let (shared, mut conn) = (shared.clone(), reader.clone());
        // Short enough not to leave a promoted master's channels unsubscribed long.
        let first = self
            .backoff
            .next_delay()
            .min(shared.config.heartbeat_interval);
        self.task = Some(tokio::spawn(async move {
            tokio::time::sleep(first).await;
            // Tried again at the shortest delay, not backing off: each try waits for the shard's answer
            // or the node timeout, and a channel not yet subscribed where its slot now is loses what is
            // published on it.
            while let Err(e) = conn.subscribe(&channels).await {
                tracing::debug!(target: "ws_core::backplane", error = %e, "redis: subscribing again after a node was lost");
                tokio::time::sleep(shared.config.reconnect_min).await;
            }
        }));
    }

    /// Resolves once the subscriptions are back; never while none is under way.
    async fn done(&mut self) {
        match &mut self.task {
            Some(task) => {
                let _ = task.await;
                self.task = None;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Resubscribing {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// At most this many groups' streams are read at once when catching up, and at most this many groups'
/// frames read back wait for the subscriber.
const CATCH_UP_GROUPS: usize = 16;

/// Most changes of one node held while its membership is read; past it the read's answer is applied
/// alone and the node is read again at its next heartbeat.
const HELD_CHANGES: usize = 10_000;

/// The changes of a node held while its membership is read, with their numbers; `None` past
/// [`HELD_CHANGES`].
type Held = Option<Vec<(u64, Change)>>;

/// Reads of other nodes' stored membership (`HGETALL` of their key), when a heartbeat shows this node's
/// replica of one out of date. They run beside the subscriber's other work: a key whose shard has no
/// master yet waits for the election without holding up everything this node receives. While a node's
/// read is out, its changes are applied as they come and also held; the answer replaces the replica,
/// then the held changes numbered past the answer's are applied again, in order, so none that arrived
/// during the read is lost.
struct MembershipReads {
    /// The nodes read, each with its read's task and the changes held.
    held: HashMap<String, (tokio::task::Id, Held)>,
    /// The reads out, by task.
    nodes: HashMap<tokio::task::Id, String>,
    reads: tokio::task::JoinSet<Result<Option<wire::Membership>, RedisError>>,
}

impl MembershipReads {
    fn new() -> Self {
        Self {
            held: HashMap::new(),
            nodes: HashMap::new(),
            reads: tokio::task::JoinSet::new(),
        }
    }

    /// Reads `node`'s membership, unless a read of it is out already.
    fn start(&mut self, shared: &Shared, reader: &Conn, node: &str) {
        if self.held.contains_key(node) {
            return;
        }
        let key = shared.config.membership_key(node);
        let mut conn = reader.clone();
        let task = self.reads.spawn(async move {
            let read: Result<Vec<(String, Vec<u8>)>, RedisError> =
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await;
            read.map(wire::membership_from_fields)
        });
        self.held
            .insert(node.to_owned(), (task.id(), Some(Vec::new())));
        self.nodes.insert(task.id(), node.to_owned());
    }

    /// Holds change `seq` of `node` if its membership is being read.
    fn hold(&mut self, node: &str, seq: u64, change: &Change) {
        if let Some((_, held)) = self.held.get_mut(node) {
            match held {
                Some(changes) if changes.len() < HELD_CHANGES => {
                    changes.push((seq, change.clone()))
                }
                _ => *held = None,
            }
        }
    }

    /// Forgets `node`'s read (the node left): its answer is not applied.
    fn forget(&mut self, node: &str) {
        self.held.remove(node);
    }

    /// The next read's answer, applied to the replica with the changes held meanwhile.
    async fn next(&mut self, shared: &Shared) {
        let (task, read) = match self.reads.join_next_with_id().await {
            Some(Ok((task, read))) => (task, Some(read)),
            // A read that panicked: the node is read again at its next heartbeat.
            Some(Err(e)) => (e.id(), None),
            None => return std::future::pending().await,
        };
        let Some(node) = self.nodes.remove(&task) else {
            return;
        };
        // A node forgotten, or read again since, keeps what is under way.
        if self.held.get(&node).is_none_or(|(id, _)| *id != task) {
            return;
        }
        let Some((_, held)) = self.held.remove(&node) else {
            return;
        };
        let Some(read) = read else {
            return;
        };
        let now = std::time::Instant::now();
        let mut peers = lock(&shared.peers);
        match read {
            Ok(Some(membership)) => peers.replace_then_apply(&node, membership, held, now),
            // Not written yet: the node is read again at its next heartbeat.
            Ok(None) => peers.remove(&node),
            Err(e) => {
                tracing::debug!(target: "ws_core::backplane", %node, error = %e, "redis: a node's membership is out of reach; read again at its next heartbeat");
            }
        }
    }
}

/// Reading back, in the background, what each group with members here missed while a cluster node was
/// out of reach or a slot moved. The reads run beside the subscriber's other work: a group whose shard
/// has no master yet waits for the election without holding up the other shards' traffic (read in line,
/// they held up every frame of the node until the election ended). What is read comes back to the
/// subscriber, which applies it in order with what it received meanwhile.
struct CatchingUp {
    task: Option<tokio::task::JoinHandle<()>>,
    found: mpsc::Receiver<history::Missed>,
    sender: mpsc::Sender<history::Missed>,
}

impl CatchingUp {
    fn new() -> Self {
        let (sender, found) = mpsc::channel(CATCH_UP_GROUPS);
        Self {
            task: None,
            found,
            sender,
        }
    }

    /// Reads every group again from where this node stands now, replacing a catch-up under way (what it
    /// read already is applied, and changes nothing applied twice).
    fn start(&mut self, shared: &Arc<Shared>, reader: &Conn) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let groups = history::tracked(&shared.history);
        let (shared, reader, sender) = (shared.clone(), reader.clone(), self.sender.clone());
        self.task = Some(tokio::spawn(async move {
            futures_util::stream::iter(groups)
                .for_each_concurrent(CATCH_UP_GROUPS, |(group, known)| {
                    let (shared, mut conn, sender) = (shared.clone(), reader.clone(), sender.clone());
                    async move {
                        let config = &shared.config;
                        let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
                        loop {
                            let mut streams = shared.history.streams(&mut conn);
                            match history::missed(&mut streams, group.clone(), known.clone()).await {
                                Ok(Some(missed)) => {
                                    let _ = sender.send(missed).await;
                                    return;
                                }
                                Ok(None) => return,
                                Err(e) => {
                                    tracing::debug!(target: "ws_core::backplane", %group, error = %e, "redis: a group's stream is out of reach; reading it again");
                                    tokio::time::sleep(backoff.next_delay()).await;
                                }
                            }
                        }
                    }
                })
                .await;
        }));
    }

    /// The next group's frames read back.
    async fn next(&mut self) -> history::Missed {
        match self.found.recv().await {
            Some(missed) => missed,
            // This holds a sender: never closed.
            None => std::future::pending().await,
        }
    }
}

impl Drop for CatchingUp {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Connects with subscriptions to the broadcast channel, this node's and its groups', then reads from
/// the streams what was missed. The connection runs the history's commands too.
async fn open(
    shared: &Shared,
    local: &MemoryBackplane,
    inbox: Inbox,
    lost: Arc<tokio::sync::Notify>,
    fixed: &[String],
) -> Result<Conn, RedisError> {
    let config = &shared.config;
    let push = move |info: PushInfo| -> Result<(), ()> {
        match info.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(redis::Value::BulkString(payload)) = info.data.into_iter().nth(1) {
                    inbox.push(Bytes::from(payload));
                }
            }
            PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                if let Some(redis::Value::BulkString(channel)) = info.data.into_iter().next() {
                    let channel = String::from_utf8_lossy(&channel).into_owned();
                    inbox.shared.subscriptions.ended(channel);
                }
            }
            PushKind::Disconnection => lost.notify_one(),
            _ => {}
        }
        Ok(())
    };
    let opened = tokio::time::timeout(
        config.node_timeout_value(),
        conn::connect(config, Some(push)),
    );
    let conn = opened.await.map_err(|_| timed_out())??;
    shared
        .subscriptions
        .start(&shared.config, &shared.history, local, conn.clone(), fixed)
        .await?;
    let mut reader = conn;
    // Subscribed first, then caught up: a frame published in between is both read and received, and
    // delivered once.
    history::catch_up(
        &shared.history,
        local,
        &mut shared.history.streams(&mut reader),
    )
    .await?;
    Ok(reader)
}

/// Where Redis's pushes go: a bounded channel to the subscriber.
///
/// Redis pushes as fast as others publish; the connection hands each message here as it arrives, and
/// what this node cannot apply in time is dropped, counted, past either bound (messages or bytes).
pub(super) struct Inbox {
    arrived: mpsc::Sender<Bytes>,
    buffered: Arc<Buffered>,
    shared: Arc<Shared>,
}

impl Inbox {
    pub(super) fn new(arrived: mpsc::Sender<Bytes>, bytes: usize, shared: Arc<Shared>) -> Self {
        Self {
            arrived,
            buffered: Arc::new(Buffered::new(bytes)),
            shared,
        }
    }

    pub(super) fn push(&self, payload: Bytes) {
        let counters = &self.shared.counters;
        counters.received.fetch_add(1, Relaxed);
        let n = payload.len();
        counters.received_bytes.fetch_add(n as u64, Relaxed);
        if !self.buffered.reserve(n) {
            counters.received_dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.arrived.try_send(payload).is_err() {
            self.buffered.release(n);
            counters.received_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Decodes and applies one payload; this node's own packets are skipped, but for its heartbeat, which
/// proves the link works, and its frames of groups with history, which come back numbered and are
/// delivered now.
async fn received(
    shared: &Shared,
    local: &MemoryBackplane,
    reader: &mut Conn,
    reads: &mut MembershipReads,
    payload: &[u8],
    own_heartbeat: &mut Instant,
) -> Result<(), RedisError> {
    let Some(packet) = wire::decode(payload) else {
        return Ok(());
    };
    if packet.node == shared.node && !matches!(packet.op, Op::History { .. }) {
        if packet.op == Op::Heartbeat {
            *own_heartbeat = Instant::now();
            lock(&shared.link.beat_unanswered).take();
        }
        return Ok(());
    }
    apply(shared, local, reader, reads, packet).await
}

/// Bytes of received payloads waiting to be applied, against their bound.
#[derive(Debug)]
struct Buffered {
    bytes: AtomicUsize,
    limit: usize,
}

impl Buffered {
    fn new(limit: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            limit,
        }
    }

    fn reserve(&self, n: usize) -> bool {
        self.bytes
            .fetch_update(Relaxed, Relaxed, |b| (b + n <= self.limit).then_some(b + n))
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.bytes.fetch_sub(n, Relaxed);
    }
}

async fn apply(
    shared: &Shared,
    local: &MemoryBackplane,
    reader: &mut Conn,
    reads: &mut MembershipReads,
    packet: wire::Packet,
) -> Result<(), RedisError> {
    let now = std::time::Instant::now();
    if let Some(sent) = packet.sent_ms {
        let lag_ms = wire::unix_millis().saturating_sub(sent);
        shared.counters.lag.observe(lag_ms as f64 / 1000.0);
    }
    match packet.op {
        Op::Broadcast { ref except } => {
            if let Some(frame) = packet.frame() {
                local.broadcast(&frame, &wire::client_ids(except));
            }
        }
        Op::Group {
            ref group,
            ref except,
        } => {
            if let Some(frame) = packet.frame() {
                local.send_to_group(group, &frame, &wire::client_ids(except));
            }
        }
        Op::History { ref group, .. } => {
            history::apply(
                &shared.history,
                local,
                &mut shared.history.streams(reader),
                group,
                &packet,
            )
            .await?
        }
        Op::Direct { ref to } => {
            if let Some(frame) = packet.frame() {
                // The client may have left since the sender looked; a full queue has dropped it already.
                let _ = local.send_to_client(&ClientId::from(to.clone()), &frame);
            }
        }
        Op::JoinRequest { group, id } => {
            let Some(client) = local.member(&id) else {
                return Ok(());
            };
            match history::join(&shared.history, local, &group, &client) {
                Ok(true) => shared.enqueue(Outgoing::Change(Change::Join { group, id })),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(target: "ws_core::backplane", client_id = %id, %group, error = %e, "join from another node refused");
                }
            }
        }
        Op::LeaveRequest { group, id } => {
            if local.leave(&group, &ClientId::from(id.clone())) {
                shared.enqueue(Outgoing::Change(Change::Leave { group, id }));
            }
        }
        Op::Disconnect {
            client,
            user,
            code,
            reason,
            revoked_at_ms,
            revoked_until_ms,
        } => {
            let target = match (client, user) {
                (Some(id), _) => Target::Client(ClientId::from(id)),
                (None, Some(user)) => Target::User(user),
                (None, None) => return Ok(()),
            };
            let Ok(code) = CloseCode::try_from(code) else {
                return Ok(());
            };
            let revocation = (revoked_until_ms > 0).then(|| Revocation {
                revoked_at: wire::from_millis(revoked_at_ms),
                until: wire::from_millis(revoked_until_ms),
            });
            local.disconnect(&Disconnect {
                target,
                code,
                reason,
                revocation,
            });
        }
        Op::Stream {
            kind,
            key,
            after,
            reader,
            id,
            user,
        } => {
            if let Some(order) = wire::stream_order(&kind, key, after, reader, id, user) {
                local.stream_order(&order);
            }
        }
        Op::Change(change) => {
            reads.hold(&packet.node, packet.seq, &change);
            lock(&shared.peers).apply(&packet.node, packet.seq, change, now);
        }
        Op::Heartbeat => {
            let stale = lock(&shared.peers).heartbeat(&packet.node, packet.seq, now);
            if stale {
                reads.start(shared, reader, &packet.node);
            }
        }
        Op::Bye => {
            reads.forget(&packet.node);
            lock(&shared.peers).remove(&packet.node);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Change, HELD_CHANGES, MembershipReads};

    #[tokio::test]
    async fn changes_held_during_a_read_are_bounded() {
        let mut reads = MembershipReads::new();
        let task = reads.reads.spawn(async { Ok(None) }).id();
        reads.held.insert("n".to_owned(), (task, Some(Vec::new())));
        let change = Change::Connect {
            id: "a".into(),
            meta: None,
        };
        for seq in 1..=HELD_CHANGES as u64 {
            reads.hold("n", seq, &change);
        }
        assert!(
            reads.held["n"]
                .1
                .as_ref()
                .is_some_and(|h| h.len() == HELD_CHANGES)
        );
        reads.hold("n", HELD_CHANGES as u64 + 1, &change);
        assert!(reads.held["n"].1.is_none(), "past the bound, none held");
        reads.hold("other", 1, &change);
        assert!(
            !reads.held.contains_key("other"),
            "a node not read holds nothing"
        );
    }
}
