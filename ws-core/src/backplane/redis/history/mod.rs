//! History on Redis: one numbering of a group's frames for every node, kept where any node can read it.
//!
//! A frame for a group with history is not delivered by the node that sends it. The node's publisher runs
//! [`SCRIPT`](script::SCRIPT) in Redis, which numbers the frame (`offset`, within the history's `epoch`), appends it to the
//! group's stream and publishes it, in one atomic step: every node, the sender too, receives the group's
//! frames in offset order and delivers them to its members with their position. A node remembers the
//! position of the last frame it delivered for each group with local members; a frame further on means
//! some were not received (a message dropped, a lost subscription), and the node reads them from the stream
//! before going on, so between nodes delivery is at least once and each frame reaches a client once.
//!
//! A client joining a group with history is held back from live frames of that group until the subscriber
//! has replayed, from the stream, what it missed up to the last frame this node delivered: the replay and the
//! live frames neither overlap nor leave a gap.
//!
//! # Glossary
//!
//! | word | what it is |
//! |---|---|
//! | `epoch` | a random id of one history of a group: a new one when the history starts again (expired, or lost by Redis) |
//! | `offset` | a frame's place in its group's history, from 1, given by [`SCRIPT`](script::SCRIPT); with the epoch, the position clients see |
//! | `number` | the sending node's own count of its history frames, so the script takes a frame sent twice once |
//! | `seq` | the sending node's membership change number, in every packet's header (not about history) |
//! | [`Unsent`](script::Unsent) | a frame the node numbered and Redis has not taken yet |
//! | `Entry` | a frame of a group's history as received or read back: its position, who it leaves out, when it was sent |
//! | `Kept` | a frame with its position written in, as members get it, in the node's recent copy |
//! | [`Tracked`] | where this node's members of a group stand, and their recent frames |

mod recovery;
mod script;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};

use redis::RedisError;
use tokio::sync::mpsc;

use super::config::RedisConfig;
use super::conn::Conn;
use super::wire::{self, millis, unix_millis};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::error::Error;
use crate::history::{History, Position, position_frame, take_position};
use crate::member::Member;
use crate::protocol::{self, Frame};
use crate::sync::lock;

pub(super) use self::recovery::run;
pub(super) use self::script::{Admissions, SCRIPT, Unsent, invoke, load_script};
use self::stream::{Entry, RedisStreams, Streams};

/// Where this node's members of a group stand, and the frames they were given last.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    epoch: String,
    offset: u64,
    /// The latest frames delivered here, with their position, within `max_messages` and `max_bytes`: a
    /// client that comes back to this node recovers from them without reading the stream.
    recent: VecDeque<Kept>,
    bytes: usize,
}

/// A frame of a group's history as its members get it.
#[derive(Debug, Clone)]
struct Kept {
    offset: u64,
    sent_ms: Option<u64>,
    frame: Frame,
}

impl Tracked {
    fn new(epoch: String, offset: u64) -> Self {
        Self {
            epoch,
            offset,
            ..Self::default()
        }
    }

    /// Records that `kept` was delivered: the new position, and the frame among the recent ones.
    fn keep(&mut self, epoch: &str, kept: Kept, history: &History) {
        if self.epoch != epoch {
            epoch.clone_into(&mut self.epoch);
            self.recent.clear();
            self.bytes = 0;
        }
        // A rewound history gives numbers again: what this node kept from them on is another history's.
        while self.recent.back().is_some_and(|k| k.offset >= kept.offset) {
            if let Some(old) = self.recent.pop_back() {
                self.bytes -= old.frame.len();
            }
        }
        self.offset = kept.offset;
        self.bytes += kept.frame.len();
        self.recent.push_back(kept);
        while self.recent.len() > history.frames_per_group()
            || self.bytes > history.bytes_per_group()
        {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.bytes -= old.frame.len();
        }
    }

    /// The recent frames after `offset`, when they reach back to the one right after it.
    fn after(&self, offset: u64) -> Option<Vec<Kept>> {
        let first = self.recent.front()?.offset;
        (first <= offset + 1).then(|| {
            self.recent
                .iter()
                .filter(|k| k.offset > offset)
                .cloned()
                .collect()
        })
    }
}

/// History's bookkeeping on this node.
#[derive(Debug)]
pub(super) struct HistoryState {
    /// This node's name among the nodes.
    pub(super) node: String,
    /// Where the keys and channels are.
    pub(super) keys: RedisConfig,
    /// The groups whose history this backplane keeps, once the server asked it to.
    pub(super) kept: OnceLock<crate::history::History>,
    /// Clients held back from a group's live frames until the subscriber has replayed what they missed.
    pub(super) pending: Mutex<Pending>,
    /// Per group with members here: the position of the last frame they were given.
    pub(super) tracked: Mutex<HashMap<String, Tracked>>,
    /// Recoveries and history requests for the subscriber.
    pub(super) commands: mpsc::Sender<Command>,
}

impl HistoryState {
    pub(super) fn new(node: String, keys: RedisConfig, commands: mpsc::Sender<Command>) -> Self {
        Self {
            node,
            keys,
            kept: OnceLock::new(),
            pending: Mutex::default(),
            tracked: Mutex::default(),
            commands,
        }
    }

    /// What Redis keeps of the histories, read on `conn`.
    pub(super) fn streams<'a>(&'a self, conn: &'a mut Conn) -> RedisStreams<'a> {
        RedisStreams::new(conn, &self.keys, self.kept.get())
    }

    /// Whether `group` keeps history here.
    pub(super) fn applies_to(&self, group: &str) -> bool {
        self.kept.get().is_some_and(|h| h.applies_to(group))
    }
}

/// Work for the subscriber, which alone delivers history frames and so can put a replay between them.
#[derive(Debug)]
pub(super) enum Command {
    /// Tell a client that joined where it stands and replay what it missed.
    Recover {
        client: Member,
        group: String,
        wanted: Option<Position>,
        /// Where this node's members stood when it joined, when any had joined before it.
        joined_at: Option<(String, u64)>,
        /// When it joined, on this node's clock.
        joined_ms: u64,
    },
    /// Answer a `$history` request.
    Fetch {
        client: Member,
        id: u64,
        group: String,
        since: u64,
    },
}

impl Kept {
    /// `entry` with its position written in.
    fn of(entry: &Entry, group: &str) -> Self {
        Self {
            offset: entry.offset,
            sent_ms: entry.sent_ms,
            frame: entry.positioned(group),
        }
    }

    /// Older than the history's age: gone, as on one node, even if the stream still has it.
    fn expired(&self, state: &HistoryState, now_ms: u64) -> bool {
        let age = state.kept.get().map_or(u64::MAX, |h| millis(h.age()));
        self.sent_ms
            .is_some_and(|sent| now_ms.saturating_sub(sent) > age)
    }
}

/// Joins `client` to a group through `local`; for a group with history, holds it back from live frames
/// and asks the subscriber to tell it where it stands.
pub(super) fn join(
    state: &HistoryState,
    local: &MemoryBackplane,
    group: &str,
    client: &Member,
) -> Result<bool, Error> {
    if !state.applies_to(group) {
        return local.join(group, client);
    }
    // Taken before the client is held back: every frame delivered here after this point is either one it
    // gets live (not held yet, not a member yet: nothing) or one after this position, which it is replayed.
    let joined_at = position_here(state, group);
    let joined_ms = unix_millis();
    let id = client.id().to_string();
    lock(&state.pending)
        .entry(group.to_owned())
        .or_default()
        .insert(id.clone());
    let joined = local.join(group, client);
    if !matches!(joined, Ok(true)) {
        release(state, group, &id);
        return joined;
    }
    let wanted = take_position(client, group);
    let failed = wanted.as_ref().map(|_| false);
    let command = Command::Recover {
        client: client.clone(),
        group: group.to_owned(),
        wanted,
        joined_at,
        joined_ms,
    };
    if state.commands.try_send(command).is_err() {
        release(state, group, &id);
        let _ = client.send(position_frame(group, None, failed, Some("unavailable")));
    }
    joined
}

/// Lets live frames of `group` reach the client again.
fn release(state: &HistoryState, group: &str, id: &str) {
    let mut pending = lock(&state.pending);
    if let Some(ids) = pending.get_mut(group) {
        ids.remove(id);
        if ids.is_empty() {
            pending.remove(group);
        }
    }
}

/// Queues a `$history` request for the subscriber, or answers it at once when it cannot be.
pub(super) fn fetch(
    state: &HistoryState,
    local: &MemoryBackplane,
    client: &Member,
    id: u64,
    group: &str,
    since: u64,
) {
    let refusal = if !state.applies_to(group) {
        Some(Error::not_found(format!("no history for {group:?}")))
    } else if !local.is_in_group(group, client.id()) {
        Some(Error::forbidden("only members read a group's history"))
    } else {
        let command = Command::Fetch {
            client: client.clone(),
            id,
            group: group.to_owned(),
            since,
        };
        state
            .commands
            .try_send(command)
            .err()
            .map(|_| Error::internal("history unavailable"))
    };
    if let Some(err) = refusal {
        let _ = client.send(protocol::error_frame(Some(id), &err));
    }
}

/// Hands `entry` to the group's members here, but for the one it leaves out and those held back, and
/// records it as the group's position here.
fn deliver(state: &HistoryState, local: &MemoryBackplane, group: &str, entry: &Entry) {
    let kept = Kept::of(entry, group);
    {
        let pending = lock(&state.pending);
        let held = pending.get(group);
        local.send_to_group_where(group, &kept.frame, |id| {
            !entry.except.iter().any(|e| e == id) && !held.is_some_and(|h| h.contains(id))
        });
    }
    let Some(history) = state.kept.get() else {
        return;
    };
    if entry.epoch.is_empty() {
        return;
    }
    if let Some(t) = lock(&state.tracked).get_mut(group) {
        t.keep(&entry.epoch, kept, history);
    }
}

/// Where this node's members of `group` stand, if any member here joined it.
fn position_here(state: &HistoryState, group: &str) -> Option<(String, u64)> {
    lock(&state.tracked)
        .get(group)
        .map(|t| (t.epoch.clone(), t.offset))
}

/// Applies a frame received from the channel or read back: delivered once, in order, after any frames
/// before it that this node did not receive (read from the stream).
pub(super) async fn apply(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
    group: &str,
    packet: &wire::Packet,
) -> Result<(), RedisError> {
    match Entry::from_packet(packet) {
        Some(entry) => apply_entry(state, local, reader, group, entry).await,
        None => Ok(()),
    }
}

/// Applies one frame of a group's history: see [`apply`].
async fn apply_entry(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
    group: &str,
    entry: Entry,
) -> Result<(), RedisError> {
    let Some((epoch, offset)) = position_here(state, group) else {
        // No member here has joined it: nothing to deliver and nothing to remember.
        return Ok(());
    };
    if entry.epoch.is_empty() {
        // No room for the group's history: delivered as it is, like a frame of a group without history.
        deliver(state, local, group, &entry);
        return Ok(());
    }
    let from = if epoch == entry.epoch {
        if entry.offset <= offset {
            if rewound(state, group, &entry) {
                // Redis lost frames this node had delivered (a failover without `WAIT`) and gives their
                // numbers again: the history goes on from this frame.
                deliver(state, local, group, &entry);
            }
            return Ok(());
        }
        offset + 1
    } else {
        // A new history (it expired, or Redis lost it): its frames start at 1.
        1
    };
    if entry.offset > from {
        let missed = reader.read(group, from, Some(entry.offset - 1)).await?;
        for m in missed.iter().filter(|m| m.epoch == entry.epoch) {
            deliver(state, local, group, m);
        }
    }
    deliver(state, local, group, &entry);
    Ok(())
}

/// Whether `entry`, numbered at or before where this node's members stand, is another frame than the
/// one this node delivered with that number: the history was rewound. A frame received twice (read back,
/// then received) is the same one.
fn rewound(state: &HistoryState, group: &str, entry: &Entry) -> bool {
    let tracked = lock(&state.tracked);
    let Some(delivered) = tracked
        .get(group)
        .and_then(|t| t.recent.iter().find(|k| k.offset == entry.offset))
    else {
        return false;
    };
    delivered.sent_ms != entry.sent_ms || delivered.frame != entry.positioned(group)
}

/// After the subscription was (re)made: each group with members here gets, from the stream, what was
/// published while this node was not listening.
pub(super) async fn catch_up(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
) -> Result<(), RedisError> {
    for (group, known) in tracked(state) {
        if let Some(missed) = missed(reader, group, known).await? {
            for entry in &missed.entries {
                deliver(state, local, &missed.group, entry);
            }
        }
    }
    Ok(())
}

/// Where this node stands in each group with members here: the epoch and offset of what it delivered last.
pub(super) fn tracked(state: &HistoryState) -> Vec<(String, (String, u64))> {
    lock(&state.tracked)
        .iter()
        .map(|(g, t)| (g.clone(), (t.epoch.clone(), t.offset)))
        .collect()
}

/// What `group`'s stream holds past `known` (the epoch and offset this node stands at): from the next
/// offset in the same epoch, from the first in a new one. `None` when there is nothing past it.
pub(super) async fn missed(
    reader: &mut impl Streams,
    group: String,
    (known_epoch, known_offset): (String, u64),
) -> Result<Option<Missed>, RedisError> {
    let Some((epoch, offset)) = reader.head(&group).await? else {
        return Ok(None);
    };
    let from = if epoch == known_epoch {
        if offset <= known_offset {
            return Ok(None);
        }
        known_offset + 1
    } else {
        1
    };
    let entries = reader.read(&group, from, Some(offset)).await?;
    Ok(Some(Missed { group, entries }))
}

/// A group's frames read back from its stream, in order, for [`apply_missed`].
pub(super) struct Missed {
    group: String,
    entries: Vec<Entry>,
}

/// Applies frames read back while this node went on receiving: each as if received, so what arrived
/// meanwhile is not delivered twice and what is still missing is read.
pub(super) async fn apply_missed(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut impl Streams,
    missed: Missed,
) -> Result<(), RedisError> {
    for entry in missed.entries {
        apply_entry(state, local, reader, &missed.group, entry).await?;
    }
    Ok(())
}

/// Forgets the position of groups without members here (they are read from Redis again on a join).
pub(super) fn forget_empty(state: &HistoryState, local: &MemoryBackplane) {
    let pending = lock(&state.pending);
    lock(&state.tracked).retain(|group, _| pending.contains_key(group) || local.has_members(group));
}

/// Groups held back for a client, per group: a client waits in one until its recovery ran.
pub(super) type Pending = HashMap<String, HashSet<String>>;
