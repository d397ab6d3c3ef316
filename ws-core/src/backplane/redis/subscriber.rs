//! The subscriber: the other nodes' traffic from Redis, applied to this node, and the history commands
//! that need a connection of their own.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use redis::RedisError;
use redis::aio::{MultiplexedConnection, PubSub};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::history::{self, Command};
use super::link::{AbortOnDrop, Backoff, connect, stopped, timed_out, wait_or_stop};
use super::shared::{Outgoing, Shared};
use super::wire::{self, Change, Op};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::ClientId;
use crate::sync::lock;

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
        let was_up = shared.link.subscriber_up.swap(false, Relaxed);
        // The publisher's connection, to the same Redis, is suspect too, and may not notice before its next
        // heartbeat: `connected` must not say so meanwhile.
        shared.link.publisher_up.store(false, Relaxed);
        shared.link.subscriber_lost.notify_one();
        // Unreachable nodes are not members of anything this node can deliver to.
        lock(&shared.cluster).clear();
        tracing::warn!(target: "ws_core::backplane", error = %ended, "redis: subscriber lost its connection");
        if was_up {
            shared.counters.reconnects.fetch_add(1, Relaxed);
        }
        if wait_or_stop(backoff.next_delay(), &mut stop).await {
            break;
        }
    }
    lock(&shared.cluster).clear();
}

/// Subscribes, catches up, then applies what arrives until the connection is lost; returns why.
async fn listen(
    shared: &Arc<Shared>,
    local: &MemoryBackplane,
    commands: &mut mpsc::Receiver<Command>,
    backoff: &mut Backoff,
) -> RedisError {
    let (pubsub, mut reader) = match open(shared, local).await {
        Ok(opened) => opened,
        Err(e) => return e,
    };
    shared.link.subscriber_up.store(true, Relaxed);
    backoff.reset();
    let (mut incoming, buffered, _stop_forwarding) = start_forwarding(shared, pubsub);
    let config = &shared.config;
    let timeout = config.node_timeout_value();
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
        let result = tokio::select! {
            message = incoming.recv() => {
                let Some(payload) = message else {
                    return RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
                };
                buffered.release(payload.len());
                received(shared, local, &mut reader, &payload, &mut own_heartbeat).await
            }
            Some(command) = commands.recv() => history::run(shared, local, &mut reader, command).await,
            () = expiry => {
                if let Some(deadline) = Instant::now().checked_sub(timeout) {
                    lock(&shared.cluster).expire(deadline.into_std());
                }
                Ok(())
            }
            _ = ticker.tick() => {
                history::forget_empty(shared, local);
                match Instant::now().checked_sub(timeout) {
                    Some(deadline) => {
                        lock(&shared.cluster).expire(deadline.into_std());
                        if own_heartbeat < deadline { Err(timed_out()) } else { Ok(()) }
                    }
                    None => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            return e;
        }
    }
}

/// Subscribes to the cluster's channel and this node's, connects the reader, and reads from the streams
/// what was missed.
async fn open(
    shared: &Shared,
    local: &MemoryBackplane,
) -> Result<(PubSub, MultiplexedConnection), RedisError> {
    let config = &shared.config;
    let opened = tokio::time::timeout(
        config.node_timeout_value(),
        config.client.get_async_pubsub(),
    );
    let mut pubsub = opened.await.map_err(|_| timed_out())??;
    let channels = [config.channel_all(), config.channel_node(&shared.node)];
    pubsub.subscribe(&channels).await?;
    let mut reader = connect(shared).await?;
    // Subscribed first, then caught up: a frame published in between is both read and received, and
    // delivered once.
    history::catch_up(shared, local, &mut reader).await?;
    Ok((pubsub, reader))
}

/// Starts the task that moves what Redis pushes into a bounded channel.
///
/// Redis pushes as fast as others publish, into a buffer of the client's that has no bound; a task that
/// only moves payloads keeps that buffer empty, and the bounded channel behind it drops what this node
/// cannot apply in time, counted.
fn start_forwarding(
    shared: &Arc<Shared>,
    pubsub: PubSub,
) -> (mpsc::Receiver<Bytes>, Arc<Buffered>, AbortOnDrop) {
    let config = &shared.config;
    let (arrived, incoming) = mpsc::channel(config.queue_capacity);
    let buffered = Arc::new(Buffered::new(config.queue_bytes));
    let forwarder = tokio::spawn(forward(
        pubsub
            .into_on_message()
            .map(|m| Bytes::copy_from_slice(m.get_payload_bytes())),
        arrived,
        buffered.clone(),
        shared.clone(),
    ));
    (incoming, buffered, AbortOnDrop(forwarder))
}

/// Decodes and applies one payload; this node's own packets are skipped, but for its heartbeat, which
/// proves the link works, and its frames of groups with history, which come back numbered and are
/// delivered now.
async fn received(
    shared: &Shared,
    local: &MemoryBackplane,
    reader: &mut MultiplexedConnection,
    payload: &[u8],
    own_heartbeat: &mut Instant,
) -> Result<(), RedisError> {
    let Some(packet) = wire::decode(payload) else {
        return Ok(());
    };
    if packet.node == shared.node && !matches!(packet.op, Op::History { .. }) {
        if packet.op == Op::Heartbeat {
            *own_heartbeat = Instant::now();
        }
        return Ok(());
    }
    apply(shared, local, reader, packet).await
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
        shared.counters.received.fetch_add(1, Relaxed);
        let n = payload.len();
        if !buffered.reserve(n) {
            shared.counters.received_dropped.fetch_add(1, Relaxed);
            continue;
        }
        match arrived.try_send(payload) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                buffered.release(n);
                shared.counters.received_dropped.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
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
