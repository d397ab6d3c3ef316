//! The two tasks that talk to Redis: one publishes this node's traffic, one receives the others'.
//!
//! They are separate because a Redis connection in subscribe mode can run no other command, and because a
//! slow publish must not hold up delivering what other nodes sent. Each reconnects on its own with jittered
//! exponential backoff. The receiver also listens for this node's own heartbeats: when they stop arriving,
//! the link is broken somewhere even if no socket reported an error, and it reconnects.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::history::{self, Command};
use super::wire::{self, Change, Op};
use super::{Outgoing, Shared, millis};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::ClientId;
use crate::presence::PresenceMeta;
use crate::sync::lock;

/// How long a leaving node waits for Redis to take its goodbye.
pub(super) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Most messages sent in one pipeline.
const BATCH: usize = 256;

/// Full-jitter exponential backoff: the ceiling doubles per failure, the wait is drawn below it.
struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = rand::random_range(self.min..=self.ceiling);
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

/// Resolves when the backplane is closed or dropped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits `delay`; `true` if the backplane was closed meanwhile.
async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = stopped(stop) => true,
    }
}

async fn connect(shared: &Shared) -> Result<MultiplexedConnection, RedisError> {
    let timeout = shared.config.node_timeout_value();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    shared
        .config
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

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
        script: String::new(),
        numbered: 0,
        unsent: Vec::new(),
    };
    loop {
        let connected = tokio::select! {
            c = connect(&shared) => c,
            () = stopped(&mut stop) => break,
        };
        let connected = match connected {
            Ok(mut conn) if shared.history.get().is_some() => {
                // Loaded on every connection: a Redis that restarted has forgotten it.
                let loaded = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(history::SCRIPT)
                    .query_async::<String>(&mut conn)
                    .await;
                match loaded {
                    Ok(sha) => {
                        publisher.script = sha;
                        publisher.resend(&mut conn).await.map(|()| conn)
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
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
        shared.publisher_up.store(true, Relaxed);
        publisher.stored = false;
        let mut ticker = tokio::time::interval(config.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let failure = loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break None,
                _ = ticker.tick() => {
                    if let Err(e) = publisher.heartbeat(&mut conn).await {
                        break Some(e);
                    }
                }
                // Redis went away under the subscriber (a restart, say), which counted this connection as
                // down: it is up again once it has answered.
                () = shared.subscriber_lost.notified() => {
                    if let Err(e) = publisher.heartbeat(&mut conn).await {
                        break Some(e);
                    }
                    shared.publisher_up.store(true, Relaxed);
                }
                // Never closed: the backplane's shared state holds a sender until the tasks stop.
                _ = queue.recv_many(&mut publisher.batch, BATCH) => {
                    if let Err(e) = publisher.send_batch(&mut conn).await {
                        break Some(e);
                    }
                }
            }
        };
        shared.publisher_up.store(false, Relaxed);
        match failure {
            None => {
                publisher.farewell(&mut conn).await;
                break;
            }
            Some(e) => {
                tracing::warn!(target: "ws_core::backplane", error = %e, "redis: publisher lost its connection");
                shared.reconnects.fetch_add(1, Relaxed);
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
    /// The history script's SHA-1, as loaded on this connection.
    script: String,
    /// The number of this node's latest frame for a group with history.
    numbered: u64,
    /// History frames of a pipeline that failed (at most one batch): sent first on the next connection.
    unsent: Vec<history::Unsent>,
}

impl Publisher<'_> {
    async fn send_batch(&mut self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        let shared = self.shared;
        let all = shared.config.channel_all();
        let mut pipe = redis::pipe();
        // Clients whose entry in this node's key changed in this batch.
        let mut touched = BTreeSet::new();
        let count = self.batch.len() as u64;
        for (message, size) in self.batch.drain(..) {
            shared.queued_bytes.fetch_sub(size, Relaxed);
            match message {
                Outgoing::Deliver {
                    node,
                    op,
                    frame,
                    queued_ms,
                } => {
                    let payload =
                        wire::encode(&shared.node, self.seq, op, Some(&frame), Some(queued_ms));
                    match node {
                        Some(node) => pipe.publish(shared.config.channel_node(&node), payload),
                        None => pipe.publish(&all, payload),
                    };
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
                    history::invoke(shared, &mut pipe, &self.script, self.seq, &unsent);
                    self.unsent.push(unsent);
                    continue;
                }
                Outgoing::Request { node, op } => {
                    let payload = wire::encode(&shared.node, self.seq, op, None, None);
                    pipe.publish(shared.config.channel_node(&node), payload);
                }
                Outgoing::Change(change) => {
                    self.seq += 1;
                    touched.insert(change.id().to_owned());
                    pipe.publish(
                        &all,
                        wire::encode(&shared.node, self.seq, Op::Change(change), None, None),
                    );
                }
            }
            pipe.ignore();
        }
        let changes = !touched.is_empty();
        if changes {
            self.store_clients(&mut pipe, touched);
        }
        if let Err(e) = pipe.query_async::<()>(conn).await {
            if changes {
                shared.changes_lost.store(true, Relaxed);
            }
            return Err(e);
        }
        self.unsent.clear();
        shared.published.fetch_add(count, Relaxed);
        Ok(())
    }

    /// Publishes again the history frames of a pipeline that failed; Redis skips those it had taken.
    async fn resend(&mut self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for unsent in &self.unsent {
            history::invoke(self.shared, &mut pipe, &self.script, self.seq, unsent);
        }
        pipe.query_async::<()>(conn).await?;
        self.shared
            .published
            .fetch_add(self.unsent.len() as u64, Relaxed);
        self.unsent.clear();
        Ok(())
    }

    /// Adds to `pipe` the entries of `ids` in this node's key, as they are now (a client gone since is
    /// removed), and the latest change number.
    fn store_clients(&self, pipe: &mut redis::Pipeline, ids: impl IntoIterator<Item = String>) {
        let key = self.shared.config.membership_key(&self.shared.node);
        for id in ids {
            match self.local.client(&id) {
                Some(client) => {
                    let meta = client.extension::<PresenceMeta>();
                    let field = wire::client_field(&client.groups(), meta.as_ref().map(|m| &*m.0));
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
    /// already up to date, change by change, and only its life is extended.
    async fn heartbeat(&mut self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        let shared = self.shared;
        if shared.changes_lost.swap(false, Relaxed) {
            // The others cannot have seen this number: they will read the whole membership.
            self.seq += 1;
            self.stored = false;
        }
        let key = shared.config.membership_key(&shared.node);
        let ttl = i64::try_from(millis(shared.config.node_timeout_value())).unwrap_or(i64::MAX);
        let rewrite = !self.stored;
        let mut pipe = redis::pipe();
        if rewrite {
            // Once per connection or loss: the only time the whole membership is copied.
            pipe.atomic().del(&key).ignore();
            let ids = self
                .local
                .client_ids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            self.store_clients(&mut pipe, ids);
        }
        pipe.pexpire(&key, ttl);
        let beat = wire::encode(&shared.node, self.seq, Op::Heartbeat, None, None);
        pipe.publish(shared.config.channel_all(), beat).ignore();
        let (kept,): (redis::Value,) = pipe.query_async(conn).await?;
        // A key that vanished (Redis restarted without persistence, or evicted it) is written again.
        let kept = matches!(kept, redis::Value::Int(1) | redis::Value::Boolean(true));
        self.stored = kept;
        shared.published.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Removes this node's key and tells the others it is leaving, so they forget its clients at once.
    async fn farewell(&mut self, conn: &mut MultiplexedConnection) {
        let shared = self.shared;
        let mut pipe = redis::pipe();
        pipe.del(shared.config.membership_key(&shared.node))
            .ignore();
        let bye = wire::encode(&shared.node, self.seq, Op::Bye, None, None);
        pipe.publish(shared.config.channel_all(), bye).ignore();
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, pipe.query_async::<()>(conn)).await;
    }
}

/// The receiver: subscribes to the cluster's channel and this node's, and applies what arrives.
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
        let was_up = shared.subscriber_up.swap(false, Relaxed);
        // The publisher's connection, to the same Redis, is suspect too, and may not notice before its next
        // heartbeat: `connected` must not say so meanwhile.
        shared.publisher_up.store(false, Relaxed);
        shared.subscriber_lost.notify_one();
        // Unreachable nodes are not members of anything this node can deliver to.
        lock(&shared.cluster).clear();
        tracing::warn!(target: "ws_core::backplane", error = %ended, "redis: subscriber lost its connection");
        if was_up {
            shared.reconnects.fetch_add(1, Relaxed);
        }
        if wait_or_stop(backoff.next_delay(), &mut stop).await {
            break;
        }
    }
    lock(&shared.cluster).clear();
}

async fn listen(
    shared: &Arc<Shared>,
    local: &MemoryBackplane,
    commands: &mut mpsc::Receiver<Command>,
    backoff: &mut Backoff,
) -> RedisError {
    let config = &shared.config;
    let timeout = config.node_timeout_value();
    let opened = tokio::time::timeout(timeout, config.client.get_async_pubsub()).await;
    let mut pubsub = match opened {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return e,
        Err(_) => return timed_out(),
    };
    let channels = [config.channel_all(), config.channel_node(&shared.node)];
    if let Err(e) = pubsub.subscribe(&channels).await {
        return e;
    }
    let mut reader = match connect(shared).await {
        Ok(conn) => conn,
        Err(e) => return e,
    };
    // Subscribed first, then caught up: a frame published in between is both read and received, and
    // delivered once.
    if let Err(e) = history::catch_up(shared, local, &mut reader).await {
        return e;
    }
    shared.subscriber_up.store(true, Relaxed);
    backoff.reset();
    // Redis pushes as fast as others publish, into a buffer of the client's that has no bound; a task that
    // only moves payloads keeps that buffer empty, and the bounded channel behind it drops what this node
    // cannot apply in time, counted.
    let (arrived, mut incoming) = mpsc::channel(config.queue_capacity);
    let buffered = Arc::new(Buffered::new(config.queue_bytes));
    let forwarder = tokio::spawn(forward(
        pubsub
            .into_on_message()
            .map(|m| Bytes::copy_from_slice(m.get_payload_bytes())),
        arrived,
        buffered.clone(),
        shared.clone(),
    ));
    let _stop_forwarding = AbortOnDrop(forwarder);
    let mut ticker = tokio::time::interval(config.heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut own_heartbeat = Instant::now();
    loop {
        // A silent node is forgotten when its time is up, not at this node's next tick, which may be up to
        // a heartbeat interval later.
        let next_expiry = lock(&shared.cluster).next_expiry(timeout);
        let expiry = async {
            match next_expiry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = incoming.recv() => {
                let Some(payload) = message else {
                    return RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
                };
                let packet = wire::decode(&payload);
                buffered.release(payload.len());
                let Some(packet) = packet else {
                    continue;
                };
                // This node's own frames of groups with history come back numbered: they are delivered now.
                if packet.node == shared.node && !matches!(packet.op, Op::History { .. }) {
                    if packet.op == Op::Heartbeat {
                        own_heartbeat = Instant::now();
                    }
                    continue;
                }
                if let Err(e) = apply(shared, local, &mut reader, packet).await {
                    return e;
                }
            }
            Some(command) = commands.recv() => {
                if let Err(e) = history::run(shared, local, &mut reader, command).await {
                    return e;
                }
            }
            () = expiry => {
                if let Some(deadline) = Instant::now().checked_sub(timeout) {
                    lock(&shared.cluster).expire(deadline.into_std());
                }
            }
            _ = ticker.tick() => {
                history::forget_empty(shared, local);
                let now = Instant::now();
                if let Some(deadline) = now.checked_sub(timeout) {
                    lock(&shared.cluster).expire(deadline.into_std());
                    if own_heartbeat < deadline {
                        return timed_out();
                    }
                }
            }
        }
    }
}

/// Bytes of received payloads waiting to be applied, against their bound.
#[derive(Debug)]
pub(super) struct Buffered {
    bytes: AtomicUsize,
    limit: usize,
}

impl Buffered {
    pub(super) fn new(limit: usize) -> Self {
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

/// Moves what Redis delivers into the bounded channel, as fast as it arrives; past either bound (messages
/// or bytes) a payload is dropped and counted in `received_dropped`.
pub(super) async fn forward(
    mut messages: impl Stream<Item = Bytes> + Unpin,
    arrived: mpsc::Sender<Bytes>,
    buffered: Arc<Buffered>,
    shared: Arc<Shared>,
) {
    while let Some(payload) = messages.next().await {
        shared.received.fetch_add(1, Relaxed);
        let n = payload.len();
        if !buffered.reserve(n) {
            shared.received_dropped.fetch_add(1, Relaxed);
            continue;
        }
        match arrived.try_send(payload) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                buffered.release(n);
                shared.received_dropped.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Aborts the task when dropped: the forwarder lives exactly as long as the subscription it serves.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

async fn apply(
    shared: &Shared,
    local: &MemoryBackplane,
    reader: &mut MultiplexedConnection,
    packet: wire::Packet,
) -> Result<(), RedisError> {
    let now = std::time::Instant::now();
    if let Some(sent) = packet.sent_ms {
        let lag_ms = super::unix_millis().saturating_sub(sent);
        shared.lag.observe(lag_ms as f64 / 1000.0);
    }
    match packet.op {
        Op::Broadcast { ref except } => {
            if let Some(frame) = packet.frame() {
                let except = except.clone().map(ClientId::from);
                local.broadcast(&frame, except.as_ref());
            }
        }
        Op::Group {
            ref group,
            ref except,
        } => {
            if let Some(frame) = packet.frame() {
                let except = except.clone().map(ClientId::from);
                local.send_to_group(group, &frame, except.as_ref());
            }
        }
        Op::History { ref group, .. } => {
            history::apply(shared, local, reader, group, &packet).await?
        }
        Op::Direct { ref to } => {
            if let Some(frame) = packet.frame() {
                // The client may have left since the sender looked; a full queue has dropped it already.
                let _ = local.send_to_client(&ClientId::from(to.clone()), &frame);
            }
        }
        Op::JoinRequest { group, id } => {
            let Some(client) = local.client(&id) else {
                return Ok(());
            };
            match history::join(shared, local, &group, &client) {
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
        Op::Change(change) => lock(&shared.cluster).apply(&packet.node, packet.seq, change, now),
        Op::Heartbeat => {
            let stale = lock(&shared.cluster).heartbeat(&packet.node, packet.seq, now);
            if stale {
                let key = shared.config.membership_key(&packet.node);
                let fields: Vec<(String, Vec<u8>)> =
                    redis::cmd("HGETALL").arg(key).query_async(reader).await?;
                let membership = wire::membership_from_fields(fields);
                let mut cluster = lock(&shared.cluster);
                match membership {
                    Some(m) => cluster.replace(&packet.node, m, now),
                    // Not written yet: the node is read again at its next heartbeat.
                    None => cluster.remove(&packet.node),
                }
            }
        }
        Op::Bye => lock(&shared.cluster).remove(&packet.node),
    }
    Ok(())
}
