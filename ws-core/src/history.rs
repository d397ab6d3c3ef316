//! History and recovery: a group's recent frames, numbered, so a client that lost its connection gets
//! what it missed when it joins again — in order, each frame once — or is told that it cannot.
//!
//! # Guarantees
//!
//! - **Positions in the envelope.** Every frame sent to a group with history (`server.to(group)`,
//!   `client.to(group)`) carries `"pos": {"group", "epoch", "offset"}` beside `type` and `data`: `offset`
//!   counts the group's frames from 1 within an `epoch`, a random name given to the group's history when
//!   it starts. The payload is never touched.
//! - **Nothing missed, nothing twice, in order.** A client tells the server where it was with
//!   `$positions` (the SDK sends it first on every connection). When it then joins a group (through any
//!   handler), the join and the replay happen under the group's history lock, which every send to the
//!   group also takes: frames sent before the join are replayed, frames sent after it arrive live, after
//!   the replay. The client first gets `$position` `{group, epoch, offset, recovered}`: `recovered: true`
//!   and the missed frames follow; `false` with `reason` `"epoch"` (the history restarted: the node
//!   restarted, or the history expired while idle) or `"expired"` (frames it missed are gone: older than
//!   `max_age`, or pushed out by `max_messages` or `max_bytes`), and nothing is replayed. A join without a
//!   position gets `$position` too (no `recovered`), so the client knows where it starts.
//! - **On demand.** A member asks for the kept frames after an offset with `$history {group, since?}`,
//!   answered `{group, epoch, offset, complete, frames}` (`forbidden` for a non-member, `not_found` for a
//!   group without history).
//! - **Bounded.** Per group: `max_messages` (1 000), `max_bytes` (256 KiB) and `max_age` (5 minutes); at
//!   most `max_groups` (1 000) groups keep history, and past that a group whose history is empty is
//!   forgotten to make room (its epoch ends), or else the new group gets none (its frames carry no
//!   position and its joins get `recovered: false`, `reason: "unavailable"`). `$positions` is read for at
//!   most `max_groups_per_client` groups.
//! - **One node or many.** Without a backplane, history lives in the node's memory, and a restart starts
//!   new epochs. With [`RedisBackplane`](crate::backplane::RedisBackplane), Redis keeps it: a script
//!   numbers each frame of a group with history, appends it to the group's stream (`max_messages` entries,
//!   the keys expiring `max_age` after the last frame) and publishes it, in one step, so every node
//!   delivers it with the same position, and a client recovers on any node, after the node it was on
//!   died too. The frames of such a group go through Redis before reaching any client, the sender's
//!   node's too: while Redis is unreachable they wait in the node's outgoing queue (its bounds apply), and
//!   a frame whose publication was cut by a lost connection is published again (Redis takes it once). A
//!   node that missed frames (a lost subscription, a dropped message) reads them from the stream before
//!   delivering the next one: between nodes, at least once, and each frame reaches a client once. Recovery
//!   across a Redis restart needs Redis to keep what it acknowledged (`appendonly yes`, and
//!   `appendfsync always` to lose nothing); a Redis that restarts empty starts new epochs. On Redis,
//!   `max_groups` holds for the whole cluster (a group idle for `max_age` makes room), and a join's
//!   `$position` may come after the join's reply. Each node keeps the frames it delivered last for each
//!   group with members there (within `max_messages` and `max_bytes`), so a client that comes back to a
//!   node its group has members on recovers from memory; elsewhere, from the stream. `max_bytes` bounds
//!   only that copy: in Redis, `maxmemory` bounds the bytes. A backplane of another kind must keep history itself
//!   ([`Backplane::keep_history`](crate::backplane::Backplane::keep_history)); the server refuses to build
//!   with one that does not ([`ConfigError::HistoryUnsupported`](crate::config::ConfigError::HistoryUnsupported)).
//! - **A group without frames yet** has no epoch: a join gets `$position` `{group}` (plus `recovered:
//!   false`, `reason: "epoch"` for a client that sent a position) on a cluster, where the history is made by
//!   the first frame; on one node the join makes it.
//!
//! ```
//! use std::time::Duration;
//! use ws_core::history::History;
//! use ws_core::{Config, Server};
//!
//! let server = Server::builder(Config::default())
//!     .history(
//!         History::new()
//!             .groups(|group| group.starts_with("room:"))
//!             .max_messages(500)
//!             .max_age(Duration::from_secs(120)),
//!     )
//!     .build()?;
//! # let _ = server;
//! # Ok::<(), ws_core::config::ConfigError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::Error;
use crate::group::{GroupFilter, selects};
use crate::protocol::{Frame, POSITION_TYPE};
use crate::sync::lock;

/// History settings: which groups, and how much each keeps.
#[derive(Clone)]
pub struct History {
    groups: GroupFilter,
    max_messages: usize,
    max_bytes: usize,
    max_age: Duration,
    max_groups: usize,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("every_group", &self.groups.is_none())
            .field("max_messages", &self.max_messages)
            .field("max_bytes", &self.max_bytes)
            .field("max_age", &self.max_age)
            .field("max_groups", &self.max_groups)
            .finish()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// History on every group: 1 000 frames, 256 KiB and 5 minutes per group, 1 000 groups.
    pub fn new() -> Self {
        Self {
            groups: None,
            max_messages: 1000,
            max_bytes: 256 * 1024,
            max_age: Duration::from_secs(300),
            max_groups: 1000,
        }
    }

    /// Only the groups for which `filter` is true keep history.
    #[must_use]
    pub fn groups(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.groups = Some(Arc::new(filter));
        self
    }

    /// Frames kept per group (1 000).
    #[must_use]
    pub fn max_messages(mut self, frames: usize) -> Self {
        self.max_messages = frames;
        self
    }

    /// Bytes of frames kept per group (256 KiB).
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How long a frame is kept (5 minutes).
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Groups keeping history at once (1 000).
    #[must_use]
    pub fn max_groups(mut self, groups: usize) -> Self {
        self.max_groups = groups;
        self
    }

    pub(crate) fn applies_to(&self, group: &str) -> bool {
        selects(&self.groups, group)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn frames_per_group(&self) -> usize {
        self.max_messages
    }

    #[cfg(feature = "redis")]
    pub(crate) fn bytes_per_group(&self) -> usize {
        self.max_bytes
    }

    #[cfg(feature = "redis")]
    pub(crate) fn group_limit(&self) -> usize {
        self.max_groups
    }

    #[cfg(feature = "redis")]
    pub(crate) fn age(&self) -> Duration {
        self.max_age
    }
}

/// Where a client was in a group's history, as it sends it in `$positions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Position {
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// The positions a client sent, kept until it joins those groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Positions(Arc<Mutex<HashMap<String, Position>>>);

/// One group's kept frames.
struct GroupHistory {
    epoch: String,
    /// The offset of the last frame sent.
    offset: u64,
    frames: VecDeque<(u64, Instant, Frame)>,
    bytes: usize,
}

impl GroupHistory {
    fn new() -> Self {
        Self {
            epoch: format!("{:016x}", rand::random::<u64>()),
            offset: 0,
            frames: VecDeque::new(),
            bytes: 0,
        }
    }

    fn expire(&mut self, config: &History, now: Instant) {
        while let Some((_, at, frame)) = self.frames.front() {
            let full = self.frames.len() > config.max_messages || self.bytes > config.max_bytes;
            if !full && now.duration_since(*at) <= config.max_age {
                break;
            }
            self.bytes -= frame.len();
            self.frames.pop_front();
        }
    }
}

/// Every group's history, for one server.
pub(crate) struct HistoryStore {
    config: History,
    groups: Mutex<HashMap<String, Arc<Mutex<GroupHistory>>>>,
}

impl fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub(crate) struct Pos<'a> {
    pub(crate) group: &'a str,
    pub(crate) epoch: &'a str,
    pub(crate) offset: u64,
}

#[derive(Serialize)]
struct PositionData<'a> {
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// `frame` with `"pos"` added to its envelope; `None` for a frame that is not a JSON object's text.
pub(crate) fn positioned(frame: &Frame, pos: &Pos<'_>) -> Option<Frame> {
    let text = frame.as_text()?.trim_end();
    let body = text.strip_suffix('}')?;
    let pos = serde_json::to_string(pos).ok()?;
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let spliced = format!("{body}{separator}\"pos\":{pos}}}");
    Some(Frame::text(spliced).with_delivery(frame.delivery().clone()))
}

/// The `$position` frame telling a client where it stands in a group's history.
pub(crate) fn position_frame(
    group: &str,
    at: Option<(&str, u64)>,
    recovered: Option<bool>,
    reason: Option<&'static str>,
) -> Frame {
    let data = PositionData {
        group,
        epoch: at.map(|(epoch, _)| epoch),
        offset: at.map(|(_, offset)| offset),
        recovered,
        reason,
    };
    Frame::envelope(POSITION_TYPE, &data)
}

/// Whether a client that was at `wanted` gets what it missed from a history now at `epoch`/`offset`
/// whose oldest kept frame is `first_kept`: `(recovered, reason)` as `$position` says it.
pub(crate) fn outcome(
    wanted: Option<&Position>,
    epoch: &str,
    offset: u64,
    first_kept: u64,
) -> (Option<bool>, Option<&'static str>) {
    match wanted {
        None => (None, None),
        Some(p) if p.epoch != epoch || p.offset > offset => (Some(false), Some("epoch")),
        // Complete when the frame after the client's last one is still kept (or none was sent since).
        Some(p) if p.offset + 1 >= first_kept => (Some(true), None),
        Some(_) => (Some(false), Some("expired")),
    }
}

/// The position a client sent for `group`, taken: it is used by one join.
pub(crate) fn take_position(client: &Client, group: &str) -> Option<Position> {
    client
        .extension::<Positions>()
        .and_then(|p| lock(&p.0).remove(group))
}

impl HistoryStore {
    pub(crate) fn new(config: History) -> Self {
        Self {
            config,
            groups: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn applies_to(&self, group: &str) -> bool {
        self.config.applies_to(group)
    }

    /// The history of `group`, made if needed; `None` when `max_groups` have history and none is empty.
    fn history(&self, group: &str) -> Option<Arc<Mutex<GroupHistory>>> {
        let mut groups = lock(&self.groups);
        if let Some(history) = groups.get(group) {
            return Some(history.clone());
        }
        if groups.len() >= self.config.max_groups {
            let now = Instant::now();
            groups.retain(|_, history| {
                let mut h = lock(history);
                h.expire(&self.config, now);
                !h.frames.is_empty()
            });
            if groups.len() >= self.config.max_groups {
                return None;
            }
        }
        let history = Arc::new(Mutex::new(GroupHistory::new()));
        groups.insert(group.to_owned(), history.clone());
        Some(history)
    }

    /// Numbers `frame`, keeps it, and hands it to `deliver` while holding the group's history lock, so a
    /// join in progress either finds it in the history or is a member when it is delivered.
    pub(crate) fn publish(&self, group: &str, frame: Frame, deliver: impl FnOnce(&Frame)) {
        let Some(history) = self.history(group) else {
            deliver(&frame);
            return;
        };
        let mut h = lock(&history);
        let offset = h.offset + 1;
        let pos = Pos {
            group,
            epoch: &h.epoch,
            offset,
        };
        let Some(frame) = positioned(&frame, &pos) else {
            drop(h);
            deliver(&frame);
            return;
        };
        h.offset = offset;
        h.bytes += frame.len();
        let now = Instant::now();
        h.frames.push_back((offset, now, frame.clone()));
        h.expire(&self.config, now);
        deliver(&frame);
    }

    /// Joins `client` to `group` with `join`, under the group's history lock, and tells it where it
    /// stands: `$position`, then what it missed if it sent a position for the group and it can be
    /// recovered.
    pub(crate) fn join(
        &self,
        group: &str,
        client: &Client,
        join: impl FnOnce() -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        let wanted = take_position(client, group);
        let Some(history) = self.history(group) else {
            let joined = join()?;
            if joined {
                let recovered = wanted.map(|_| false);
                let _ = client.send(position_frame(group, None, recovered, Some("unavailable")));
            }
            return Ok(joined);
        };
        let mut h = lock(&history);
        let joined = join()?;
        if !joined {
            return Ok(false);
        }
        h.expire(&self.config, Instant::now());
        let first_kept = h.frames.front().map_or(h.offset + 1, |(o, _, _)| *o);
        let (recovered, reason) = outcome(wanted.as_ref(), &h.epoch, h.offset, first_kept);
        let at = Some((h.epoch.as_str(), h.offset));
        let _ = client.send(position_frame(group, at, recovered, reason));
        if let (Some(true), Some(p)) = (recovered, &wanted) {
            for (_, _, frame) in h.frames.iter().filter(|(o, _, _)| *o > p.offset) {
                if client.send(frame.clone()).is_err() {
                    break;
                }
            }
        }
        Ok(true)
    }
}

/// A `$history` request: a group, and the offset after which the client wants its frames.
#[derive(Deserialize)]
pub(crate) struct HistoryRequest {
    pub(crate) group: String,
    #[serde(default)]
    pub(crate) since: u64,
}

impl HistoryRequest {
    pub(crate) fn parse(data: &str) -> Result<Self, Error> {
        serde_json::from_str(data)
            .map_err(|e| Error::invalid_data(format!("$history wants {{group, since?}}: {e}")))
    }
}

/// The answer to a `$history` request.
#[derive(Serialize)]
pub(crate) struct HistoryReply<'a> {
    pub(crate) group: &'a str,
    pub(crate) epoch: &'a str,
    pub(crate) offset: u64,
    /// Whether every frame after `since` is in `frames` (none was pushed out).
    pub(crate) complete: bool,
    pub(crate) frames: Vec<&'a serde_json::value::RawValue>,
}

impl HistoryReply<'_> {
    pub(crate) fn to_raw(&self) -> Result<Box<serde_json::value::RawValue>, Error> {
        serde_json::value::to_raw_value(self).map_err(|e| Error::internal(e.to_string()))
    }
}

/// A frame's text as the JSON value it is, for a [`HistoryReply`].
pub(crate) fn raw_frame(frame: &Frame) -> Option<&serde_json::value::RawValue> {
    frame
        .as_text()
        .and_then(|text| serde_json::from_str(text).ok())
}

impl HistoryStore {
    /// Answers `$history`: the kept frames of a group after `since`, for a member of the group.
    pub(crate) fn fetch(
        &self,
        client: &Client,
        data: &str,
    ) -> Result<Box<serde_json::value::RawValue>, Error> {
        let request = HistoryRequest::parse(data)?;
        let group = request.group.as_str();
        if !self.applies_to(group) || !lock(&self.groups).contains_key(group) {
            return Err(Error::not_found(format!("no history for {group:?}")));
        }
        if !client.is_in_group(group) {
            return Err(Error::forbidden("only members read a group's history"));
        }
        let Some(history) = self.history(group) else {
            return Err(Error::not_found(format!("no history for {group:?}")));
        };
        let mut h = lock(&history);
        h.expire(&self.config, Instant::now());
        let first_kept = h.frames.front().map_or(h.offset + 1, |(o, _, _)| *o);
        let frames = h
            .frames
            .iter()
            .filter(|(o, _, _)| *o > request.since)
            .filter_map(|(_, _, f)| raw_frame(f))
            .collect();
        let reply = HistoryReply {
            group,
            epoch: &h.epoch,
            offset: h.offset,
            complete: request.since + 1 >= first_kept,
            frames,
        };
        reply.to_raw()
    }
}

/// Reads a `$positions` frame's data, `{"<group>": {"epoch", "offset"}, ...}`, keeping at most `max`
/// entries with names of at most `max_name` bytes; replaces what the client sent before.
pub(crate) fn set_positions(client: &Client, data: &str, max: usize, max_name: usize) {
    let Ok(all) = serde_json::from_str::<HashMap<String, Position>>(data) else {
        return;
    };
    let kept: HashMap<String, Position> = all
        .into_iter()
        .filter(|(group, _)| group.len() <= max_name)
        .take(max)
        .collect();
    let positions = client.extension::<Positions>().unwrap_or_else(|| {
        let positions = Positions::default();
        client.insert_extension(positions.clone());
        positions
    });
    *lock(&positions.0) = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_goes_into_the_envelope_and_the_payload_is_untouched() {
        let pos = Pos {
            group: "r\"1",
            epoch: "e",
            offset: 7,
        };
        let frame = Frame::text(r#"{"type":"chat","data":{"pos":1}}"#);
        let out = positioned(&frame, &pos).unwrap();
        let value: serde_json::Value = serde_json::from_str(out.as_text().unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "chat", "data": {"pos": 1}, "pos": {"group": "r\"1", "epoch": "e", "offset": 7}})
        );
        assert!(positioned(&Frame::text("not an object"), &pos).is_none());
        assert!(positioned(&Frame::binary(vec![1u8]), &pos).is_none());
    }

    #[test]
    fn a_group_keeps_its_latest_frames_within_count_bytes_and_age() {
        let config = History::new().max_messages(3).max_bytes(1000);
        let store = HistoryStore::new(config);
        for i in 0..5 {
            store.publish(
                "g",
                Frame::text(format!(r#"{{"type":"t","data":{i}}}"#)),
                |_| {},
            );
        }
        let history = store.history("g").unwrap();
        let h = lock(&history);
        assert_eq!(h.offset, 5);
        let kept: Vec<u64> = h.frames.iter().map(|(o, _, _)| *o).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(
            h.bytes,
            h.frames.iter().map(|(_, _, f)| f.len()).sum::<usize>()
        );
    }
}
