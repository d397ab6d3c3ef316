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
//! # Where history lives
//!
//! History is a layer of the [backplane](crate::backplane), not of the connection: the frame path hands
//! `$positions` and `$history` to this module and otherwise knows nothing of epochs or offsets. On one
//! node, the server puts a layer over its [`MemoryBackplane`](crate::backplane::MemoryBackplane) that
//! numbers and keeps the frames of the groups with history and replays them on a join. An installed
//! backplane keeps history itself, as `RedisBackplane` does; one of your own does it with the pieces
//! here: [`take_position`] (where a joining client was), [`outcome`] (whether it recovers),
//! [`position_frame`] (the `$position` it gets), [`positioned`] (a frame with its position),
//! [`HistoryReply`] and [`raw_frame`] (the answer to `$history`), and
//! [`MemoryBackplane::send_to_group_where`](crate::backplane::MemoryBackplane::send_to_group_where)
//! (delivering to a group but the members still being replayed to).
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

mod local;
pub(crate) mod requests;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub(crate) use self::local::LocalHistory;
use crate::error::Error;
use crate::group::{GroupFilter, selects};
use crate::member::Member;
use crate::protocol::{self, Frame, POSITION_TYPE};
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

    /// Whether `group` keeps history.
    pub fn applies_to(&self, group: &str) -> bool {
        selects(&self.groups, group)
    }

    /// The most frames a group keeps ([`max_messages`](Self::max_messages)).
    pub fn frames_per_group(&self) -> usize {
        self.max_messages
    }

    /// The most bytes a group keeps ([`max_bytes`](Self::max_bytes)).
    pub fn bytes_per_group(&self) -> usize {
        self.max_bytes
    }

    /// The most groups that keep history at once ([`max_groups`](Self::max_groups)).
    pub fn group_limit(&self) -> usize {
        self.max_groups
    }

    /// How long a frame is kept ([`max_age`](Self::max_age)).
    pub fn age(&self) -> Duration {
        self.max_age
    }
}

/// Where a client was in a group's history, as it sends it in `$positions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Position {
    /// The history's epoch the client saw.
    pub epoch: String,
    /// The offset of the last frame it got.
    pub offset: u64,
}

/// The positions a client sent, kept until it joins those groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Positions(Arc<Mutex<HashMap<String, Position>>>);

#[derive(Serialize)]
struct Pos<'a> {
    group: &'a str,
    epoch: &'a str,
    offset: u64,
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

/// `frame` with `"pos": {group, epoch, offset}` added to its envelope, its payload untouched; `None` for a
/// frame that is not a JSON object's text.
pub fn positioned(frame: &Frame, group: &str, epoch: &str, offset: u64) -> Option<Frame> {
    let text = frame.as_text()?.trim_end();
    let body = text.strip_suffix('}')?;
    let pos = Pos {
        group,
        epoch,
        offset,
    };
    let pos = serde_json::to_string(&pos).ok()?;
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let spliced = format!("{body}{separator}\"pos\":{pos}}}");
    Some(Frame::text(spliced).with_delivery(frame.delivery().clone()))
}

/// The `$position` frame telling a client where it stands in a group's history: `at` is the history's
/// epoch and offset (`None` when the group has none yet), `recovered` and `reason` as [`outcome`] gives
/// them.
pub fn position_frame(
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
pub fn outcome(
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
pub fn take_position(client: &Member, group: &str) -> Option<Position> {
    client
        .extension::<Positions>()
        .and_then(|p| lock(&p.0).remove(group))
}

/// The answer to a `$history` request.
#[derive(Debug, Serialize)]
pub struct HistoryReply<'a> {
    /// The group asked for.
    pub group: &'a str,
    /// The history's epoch.
    pub epoch: &'a str,
    /// The offset of the group's last frame.
    pub offset: u64,
    /// Whether every frame after `since` is in `frames` (none was pushed out).
    pub complete: bool,
    /// The kept frames after `since`, oldest first, each as the JSON its client got ([`raw_frame`]).
    pub frames: Vec<&'a RawValue>,
}

impl HistoryReply<'_> {
    /// The `$reply` frame answering request `id`.
    pub fn to_frame(&self, id: u64) -> Frame {
        match serde_json::value::to_raw_value(self) {
            Ok(data) => protocol::reply_frame(id, &data),
            Err(e) => protocol::error_frame(Some(id), &Error::internal(e.to_string())),
        }
    }
}

/// A frame's text as the JSON value it is, for a [`HistoryReply`].
pub fn raw_frame(frame: &Frame) -> Option<&RawValue> {
    frame
        .as_text()
        .and_then(|text| serde_json::from_str(text).ok())
}
