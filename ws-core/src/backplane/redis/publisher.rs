//! The publisher: this node's traffic to Redis, in pipelines, and its heartbeats.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use redis::RedisError;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::history::{self};
use super::link::{Backoff, FAREWELL_TIMEOUT, connect, millis, stopped, wait_or_stop};
use super::shared::{Outgoing, Shared};
use super::wire::{self, Op};
use crate::backplane::MemoryBackplane;
use crate::presence::PresenceMeta;

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
        script: String::new(),
        numbered: 0,
        unsent: Vec::new(),
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
    /// The history script's SHA-1, as loaded on this connection.
    script: String,
    /// The number of this node's latest frame for a group with history.
    numbered: u64,
    /// History frames of a pipeline that failed (at most one batch): sent first on the next connection.
    unsent: Vec<history::Unsent>,
}

impl Publisher<'_> {
    /// Connects, and with history loads the script and sends again what a lost connection cut.
    async fn connect(&mut self) -> Result<MultiplexedConnection, RedisError> {
        let mut conn = connect(self.shared).await?;
        if self.shared.history.config.get().is_some() {
            // Loaded on every connection: a Redis that restarted has forgotten it.
            self.script = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(history::SCRIPT)
                .query_async::<String>(&mut conn)
                .await?;
            self.resend(&mut conn).await?;
        }
        Ok(conn)
    }

    /// Publishes what is queued and sends heartbeats until the backplane stops (`None`) or the connection
    /// fails (its error).
    async fn run(
        &mut self,
        conn: &mut MultiplexedConnection,
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
                _ = ticker.tick() => self.heartbeat(conn).await,
                // Redis went away under the subscriber (a restart, say), which counted this connection as
                // down: it is up again once it has answered.
                () = shared.link.subscriber_lost.notified() => {
                    let answered = self.heartbeat(conn).await;
                    if answered.is_ok() {
                        shared.link.publisher_up.store(true, Relaxed);
                    }
                    answered
                }
                // Never closed: the backplane's shared state holds a sender until the tasks stop.
                _ = queue.recv_many(&mut self.batch, BATCH) => self.send_batch(conn).await,
            };
            if let Err(e) = result {
                return Some(e);
            }
        }
    }

    async fn send_batch(&mut self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        let shared = self.shared;
        let all = shared.config.channel_all();
        let mut pipe = redis::pipe();
        // Clients whose entry in this node's key changed in this batch.
        let mut touched = BTreeSet::new();
        let count = self.batch.len() as u64;
        for (message, size) in self.batch.drain(..) {
            shared.outbox.queued_bytes.fetch_sub(size, Relaxed);
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
                shared.outbox.changes_lost.store(true, Relaxed);
            }
            return Err(e);
        }
        self.unsent.clear();
        shared.counters.published.fetch_add(count, Relaxed);
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
            .counters
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
        if shared.outbox.changes_lost.swap(false, Relaxed) {
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
        shared.counters.published.fetch_add(1, Relaxed);
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
