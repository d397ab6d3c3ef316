//! Which shard serves which slot, as this node last heard, and which of this node's tasks each slot's
//! work goes to.
//!
//! The publisher's lanes and the tasks that wait for replicas each run one shard's work, in order, on a
//! connection of their own: a shard that is slow, or has lost its master, then holds up nothing but
//! itself. A shard is named by its master's address (`CLUSTER SLOTS`, asked again once per node
//! timeout); on a single Redis there is one, named `""`.

use std::collections::HashMap;
use std::time::Instant;

use redis::Value;
use tokio::sync::{Notify, oneshot};

use super::config::RedisConfig;
use super::conn::{Conn, Pipelines};

/// Slots on a Redis Cluster.
const SLOTS: u16 = 16_384;

/// The masters of the cluster's slots, as last asked.
#[derive(Default)]
pub(super) struct Topology {
    /// `(first slot, last slot, "host:port" of its master)`.
    masters: Vec<(u16, u16, String)>,
    asked: Option<Instant>,
    /// The answer to the question under way.
    answer: Option<oneshot::Receiver<Vec<(u16, u16, String)>>>,
}

impl Topology {
    /// Asks which master serves which slots, on a cluster, and waits for the answer.
    pub(super) async fn learn(&mut self, config: &RedisConfig, conn: &Conn, key: &str) {
        if config.is_cluster() {
            self.asked = Some(Instant::now());
            self.answer = None;
            if let Some(masters) = ask(conn.clone(), key.to_owned()).await {
                self.masters = masters;
            }
        }
    }

    /// Takes the answer to the last question if it came, and asks again, without waiting, if the last
    /// question is older than the node timeout: a slot's work then goes to its new master's task soon
    /// after a failover or a migration. Nothing waits for Redis here. When the answer shows a slot
    /// moved, `moved` is notified.
    pub(super) fn refresh(&mut self, config: &RedisConfig, conn: &Conn, key: &str, moved: &Notify) {
        if let Some(answer) = &mut self.answer {
            match answer.try_recv() {
                Ok(masters) => {
                    if masters != self.masters {
                        moved.notify_one();
                    }
                    self.masters = masters;
                    self.answer = None;
                }
                Err(oneshot::error::TryRecvError::Closed) => self.answer = None,
                Err(oneshot::error::TryRecvError::Empty) => return,
            }
        }
        let fresh = self
            .asked
            .is_some_and(|at| at.elapsed() < config.node_timeout_value());
        if !config.is_cluster() || fresh {
            return;
        }
        self.asked = Some(Instant::now());
        let (sender, receiver) = oneshot::channel();
        self.answer = Some(receiver);
        let (conn, key) = (conn.clone(), key.to_owned());
        tokio::spawn(async move {
            if let Some(masters) = ask(conn, key).await {
                let _ = sender.send(masters);
            }
        });
    }

    /// The shards known: one per master.
    pub(super) fn shards(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = self.masters.iter().map(|(_, _, m)| m.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
    }

    /// Whether a master of `slot` is known (always, on a single Redis).
    pub(super) fn knows(&self, config: &RedisConfig, slot: u16) -> bool {
        !config.is_cluster()
            || self
                .masters
                .iter()
                .any(|(first, last, _)| (*first..=*last).contains(&slot))
    }

    /// The shard that serves `slot`: its master, `slot N` while it is not known, `""` on a single Redis.
    pub(super) fn shard_of(&self, config: &RedisConfig, slot: u16) -> String {
        if !config.is_cluster() {
            return String::new();
        }
        self.masters
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map_or_else(|| format!("slot {slot}"), |(_, _, master)| master.clone())
    }
}

/// Which task each slot's work went to last.
#[derive(Default)]
pub(super) struct Placement {
    slots: HashMap<u16, String>,
}

impl Placement {
    /// The task `slot`'s work went to last, if any did.
    pub(super) fn last(&self, slot: u16) -> Option<&str> {
        self.slots.get(&slot).map(String::as_str)
    }

    /// The task for `slot`'s next work: its shard's, unless the slot's master changed (a failover, a
    /// migration) while the task it went to last still has some of its work. Then it stays there until
    /// that task is done, so one slot's work never runs on two tasks at once, out of order.
    pub(super) fn place(
        &mut self,
        topology: &Topology,
        config: &RedisConfig,
        slot: u16,
        busy: impl Fn(&str) -> bool,
    ) -> String {
        let learned = topology.shard_of(config, slot);
        let shard = match self.slots.get(&slot) {
            Some(before) if *before != learned && busy(before) => before.clone(),
            _ => learned,
        };
        if self.slots.get(&slot) != Some(&shard) {
            self.slots.insert(slot, shard.clone());
        }
        shard
    }
}

/// The masters of the slots, from `CLUSTER SLOTS` asked of the master of `key`'s slot, never of a random
/// node, which could be a stopped replica.
async fn ask(mut conn: Conn, key: String) -> Option<Vec<(u16, u16, String)>> {
    let mut pipes = Pipelines::new(true);
    pipes
        .on(&key)
        .cmd("EXISTS")
        .arg(&key)
        .ignore()
        .cmd("CLUSTER")
        .arg("SLOTS");
    match pipes.run_collecting(&mut conn).await.ok()?.first()? {
        Value::Array(ranges) => Some(ranges.iter().filter_map(master_of_range).collect()),
        _ => None,
    }
}

/// The slot of `key` on a cluster (CRC16 (XMODEM) of its hash tag, as Redis Cluster computes it); 0 on a
/// single Redis.
pub(super) fn slot_of(key: &str) -> u16 {
    let tag = key
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
}

/// A `CLUSTER SLOTS` entry as `(first, last, "host:port" of its master)`.
fn master_of_range(range: &Value) -> Option<(u16, u16, String)> {
    let Value::Array(fields) = range else {
        return None;
    };
    let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
        (fields.first(), fields.get(1), fields.get(2))
    else {
        return None;
    };
    let host = match master.first()? {
        Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
        Value::SimpleString(host) => host.clone(),
        _ => return None,
    };
    let Some(Value::Int(port)) = master.get(1) else {
        return None;
    };
    Some((
        u16::try_from(*first).ok()?,
        u16::try_from(*last).ok()?,
        format!("{host}:{port}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_on_the_slot_redis_cluster_gives_it() {
        // `CLUSTER KEYSLOT`'s answers in the Redis documentation.
        assert_eq!(slot_of("somekey"), 11_058);
        assert_eq!(slot_of("foo{hash_tag}"), 2_515);
        assert_eq!(slot_of("ws:v3:{g:room}:history"), slot_of("g:room"));
    }
}
