//! History on Redis: one numbering of a group's frames for every node, kept where any node can read it.
//!
//! A frame for a group with history is not delivered by the node that sends it. The node's publisher runs
//! [`SCRIPT`] in Redis, which numbers the frame (`offset`, within the history's `epoch`), appends it to the
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
//! | `offset` | a frame's place in its group's history, from 1, given by [`SCRIPT`]; with the epoch, the position clients see |
//! | `number` | the sending node's own count of its history frames, so the script takes a frame sent twice once |
//! | `seq` | the sending node's membership change number, in every packet's header (not about history) |
//! | [`Unsent`] | a frame the node numbered and Redis has not taken yet |
//! | `Entry` | a frame of a group's history as received or read back: its position, who it leaves out, when it was sent |
//! | `Kept` | a frame with its position written in, as members get it, in the node's recent copy |
//! | [`Tracked`] | where this node's members of a group stand, and their recent frames |

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};

use redis::RedisError;
use tokio::sync::mpsc;

use super::config::RedisConfig;
use super::conn::{Conn, Pipelines};
use super::wire::{self, Op, millis, unix_millis};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::error::Error;
use crate::history::{
    History, HistoryReply, Position, outcome, position_frame, positioned, raw_frame, take_position,
};
use crate::member::Member;
use crate::protocol::{self, Frame};
use crate::sync::lock;

/// Numbers a frame, keeps it and publishes it on the group's channel. Redis runs a script alone, so the
/// offsets are given in the order the frames are published, which is the order every subscriber receives
/// them in.
///
/// A frame whose publication was cut by a lost connection is published again on the next one; the sending
/// node numbers its history frames, and the script takes each number once (the last one is kept for the
/// history's life), so a frame Redis took before the connection broke is not kept twice.
///
/// Every key it touches, and the channel, carry the group's hash tag: on a cluster they are in one slot.
/// Whether the group has room for history was asked before ([`ADMIT`]); a frame of a group without room
/// is published without a position (an empty epoch), as on one node. With `publish` empty, the frame is
/// kept and returned, not published: the node publishes it once replicas have it.
///
/// Its keys and arguments are named at its top, in the order [`ScriptCall::add_to`] passes them.
pub(super) const SCRIPT: &str = r#"
local history_key, stream_key, sent_key = KEYS[1], KEYS[2], KEYS[3]
local new_epoch, head, tail, kept = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local life_ms, channel, number, admitted, publish = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local last = tonumber(redis.call('GET', sent_key) or '0')
if tonumber(number) <= last then
  return false
end
redis.call('SET', sent_key, number, 'PX', life_ms)
local packet = head .. tail
if admitted == '1' then
  local epoch = redis.call('HGET', history_key, 'epoch')
  if not epoch then
    epoch = new_epoch
    redis.call('DEL', stream_key)
    redis.call('HSET', history_key, 'epoch', epoch, 'offset', 0)
  end
  local offset = redis.call('HINCRBY', history_key, 'offset', 1)
  packet = head .. ',"epoch":"' .. epoch .. '","offset":' .. offset .. tail
  redis.call('XADD', stream_key, 'MAXLEN', kept, offset .. '-0', 'p', packet)
  redis.call('PEXPIRE', history_key, life_ms)
  redis.call('PEXPIRE', stream_key, life_ms)
end
if publish == '' then
  return packet
end
redis.call(publish, channel, packet)
return true
"#;

/// Whether a group may have history: at most `max_groups` groups have it in the cluster. A sorted set
/// holds each with the time it was last admitted, and one not admitted for longer than the history's life
/// makes room. A node asks once per group and then every quarter of the history's life while it sends
/// (see [`Admissions`]), so the set is its own command, on its own slot, never one the script touches.
const ADMIT: &str = r#"
local histories_key = KEYS[1]
local group, life_ms, max_groups = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if not redis.call('ZSCORE', histories_key, group) then
  redis.call('ZREMRANGEBYSCORE', histories_key, '-inf', now - life_ms)
  if redis.call('ZCARD', histories_key) >= max_groups then
    return 0
  end
end
redis.call('ZADD', histories_key, now, group)
redis.call('PEXPIRE', histories_key, life_ms)
return 1
"#;

/// What this node last heard from [`ADMIT`], per group it sends history frames to.
#[derive(Debug, Default)]
pub(super) struct Admissions {
    answers: HashMap<String, (bool, std::time::Instant)>,
}

impl Admissions {
    /// Asks Redis about each of `groups` whose answer is missing or old (a quarter of the history's life
    /// for a group admitted, a second for one refused), and forgets answers older than the life.
    pub(super) async fn refresh(
        &mut self,
        state: &HistoryState,
        conn: &mut Conn,
        groups: impl IntoIterator<Item = String>,
    ) -> Result<(), RedisError> {
        let Some(history) = state.kept.get() else {
            return Ok(());
        };
        let life = history.age();
        let now = std::time::Instant::now();
        let fresh = |admitted: bool, at: std::time::Instant| {
            let lasts = if admitted {
                life / 4
            } else {
                std::time::Duration::from_secs(1)
            };
            now.duration_since(at) < lasts
        };
        self.answers
            .retain(|_, (_, at)| now.duration_since(*at) < life);
        for group in groups {
            if self
                .answers
                .get(&group)
                .is_some_and(|(a, at)| fresh(*a, *at))
            {
                continue;
            }
            let admitted: i64 = redis::cmd("EVAL")
                .arg(ADMIT)
                .arg(1)
                .arg(state.keys.histories_key())
                .arg(&group)
                .arg(millis(life).max(1))
                .arg(history.group_limit())
                .query_async(conn)
                .await?;
            self.answers.insert(group, (admitted == 1, now));
        }
        Ok(())
    }

    /// Whether `group` has room for history, as last heard.
    pub(super) fn admitted(&self, group: &str) -> bool {
        self.answers.get(group).is_some_and(|(a, _)| *a)
    }
}

/// One run of [`SCRIPT`], its keys and arguments by name.
struct ScriptCall<'a> {
    history_key: String,
    stream_key: String,
    sent_key: String,
    new_epoch: String,
    head: Vec<u8>,
    tail: Vec<u8>,
    kept: usize,
    life_ms: u64,
    channel: String,
    number: u64,
    admitted: bool,
    /// The publishing command, or nothing to have the frame returned instead.
    publish: &'a str,
}

impl ScriptCall<'_> {
    /// Adds the call to `pipe`, keys and arguments in the order the script names them.
    fn add_to(&self, pipe: &mut redis::Pipeline, sha: &str) {
        pipe.cmd("EVALSHA")
            .arg(sha)
            .arg(3)
            .arg(&self.history_key)
            .arg(&self.stream_key)
            .arg(&self.sent_key)
            .arg(&self.new_epoch)
            .arg(&self.head)
            .arg(&self.tail)
            .arg(self.kept)
            .arg(self.life_ms)
            .arg(&self.channel)
            .arg(self.number)
            .arg(if self.admitted { "1" } else { "0" })
            .arg(self.publish);
    }
}

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

/// History's bookkeeping on this node .
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

/// A frame of a group's history.
struct Entry {
    epoch: String,
    offset: u64,
    except: Vec<String>,
    sent_ms: Option<u64>,
    frame: Frame,
}

impl Entry {
    fn from_packet(packet: &wire::Packet) -> Option<Self> {
        let Op::History {
            epoch,
            offset,
            except,
            ..
        } = &packet.op
        else {
            return None;
        };
        Some(Self {
            epoch: epoch.clone(),
            offset: *offset,
            except: except.clone(),
            sent_ms: packet.sent_ms,
            frame: packet.frame()?,
        })
    }

    fn positioned(&self, group: &str) -> Frame {
        if self.epoch.is_empty() {
            return self.frame.clone();
        }
        positioned(&self.frame, group, &self.epoch, self.offset)
            .unwrap_or_else(|| self.frame.clone())
    }

    fn kept(&self, group: &str) -> Kept {
        Kept {
            offset: self.offset,
            sent_ms: self.sent_ms,
            frame: self.positioned(group),
        }
    }
}

impl Kept {
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

/// A frame for a group with history, numbered by its node, until Redis has taken it.
#[derive(Debug)]
pub(super) struct Unsent {
    pub(super) number: u64,
    pub(super) group: String,
    pub(super) except: Vec<String>,
    pub(super) frame: Frame,
    pub(super) queued_ms: u64,
}

/// Adds [`SCRIPT`] for `unsent` to the publisher's pipelines, on the group's slot; with `publish`
/// empty, its reply (the packet to publish, or nil for a frame taken before) is not ignored.
pub(super) fn invoke(
    state: &HistoryState,
    pipes: &mut Pipelines,
    script: &str,
    seq: u64,
    unsent: &Unsent,
    admitted: bool,
    publish: &str,
) {
    let config = &state.keys;
    let group = &unsent.group;
    let history = state.kept.get();
    let (head, tail) = wire::encode_history(
        &state.node,
        seq,
        group,
        unsent.except.clone(),
        &unsent.frame,
        unsent.queued_ms,
    );
    let history_key = config.history_key(group);
    let pipe = pipes.on(&history_key);
    ScriptCall {
        history_key,
        stream_key: config.stream_key(group),
        sent_key: config.sent_key(&state.node, group),
        new_epoch: format!("{:016x}", rand::random::<u64>()),
        head,
        tail,
        kept: history.map_or(1, History::frames_per_group),
        life_ms: history.map_or(1, |h| millis(h.age()).max(1)),
        channel: config.channel_group(group),
        number: unsent.number,
        admitted,
        publish,
    }
    .add_to(pipe, script);
    if !publish.is_empty() {
        pipe.ignore();
    }
}

/// The history's epoch and latest offset, `None` when the group has none (never sent to, or expired).
async fn head(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
) -> Result<Option<(String, u64)>, RedisError> {
    let (epoch, offset): (Option<String>, Option<u64>) = redis::cmd("HMGET")
        .arg(state.keys.history_key(group))
        .arg("epoch")
        .arg("offset")
        .query_async(reader)
        .await?;
    Ok(epoch.map(|e| (e, offset.unwrap_or(0))))
}

/// A stream entry as `XRANGE` returns it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// Whether `group` has, or can get, history: it is in the set of groups with history, or the set is not
/// full of groups active within the history's life.
async fn has_room(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
) -> Result<bool, RedisError> {
    let Some(history) = state.kept.get() else {
        return Ok(false);
    };
    let key = state.keys.histories_key();
    let since = unix_millis().saturating_sub(millis(history.age()));
    let (member, active): (Option<f64>, usize) = redis::pipe()
        .zscore(&key, group)
        .zcount(&key, since, "+inf")
        .query_async(reader)
        .await?;
    Ok(member.is_some() || active < history.group_limit())
}

/// The kept frames with offsets from `from` to `to` (the latest when `None`).
async fn read(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
    from: u64,
    to: Option<u64>,
) -> Result<Vec<Entry>, RedisError> {
    let count = state.kept.get().map_or(1, |h| h.frames_per_group());
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(state.keys.stream_key(group))
        .arg(format!("{from}-0"))
        .arg(to.map_or_else(|| "+".to_owned(), |to| format!("{to}-0")))
        .arg("COUNT")
        .arg(count)
        .query_async(reader)
        .await?;
    Ok(entries
        .into_iter()
        .filter_map(|(_, fields)| fields.into_iter().find(|(name, _)| name == "p"))
        .filter_map(|(_, packet)| wire::decode(&packet))
        .filter_map(|packet| Entry::from_packet(&packet))
        .collect())
}

/// Hands `entry` to the group's members here, but for the one it leaves out and those held back, and
/// records it as the group's position here.
fn deliver(state: &HistoryState, local: &MemoryBackplane, group: &str, entry: &Entry) {
    let kept = entry.kept(group);
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
    reader: &mut Conn,
    group: &str,
    packet: &wire::Packet,
) -> Result<(), RedisError> {
    let Some(entry) = Entry::from_packet(packet) else {
        return Ok(());
    };
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
        let missed = read(state, reader, group, from, Some(entry.offset - 1)).await?;
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
    reader: &mut Conn,
) -> Result<(), RedisError> {
    let groups: Vec<(String, (String, u64))> = lock(&state.tracked)
        .iter()
        .map(|(g, t)| (g.clone(), (t.epoch.clone(), t.offset)))
        .collect();
    for (group, (known_epoch, known_offset)) in groups {
        let Some((epoch, offset)) = head(state, reader, &group).await? else {
            continue;
        };
        let from = if epoch == known_epoch {
            if offset <= known_offset {
                continue;
            }
            known_offset + 1
        } else {
            1
        };
        for entry in read(state, reader, &group, from, Some(offset)).await? {
            deliver(state, local, &group, &entry);
        }
    }
    Ok(())
}

/// Forgets the position of groups without members here (they are read from Redis again on a join).
pub(super) fn forget_empty(state: &HistoryState, local: &MemoryBackplane) {
    let pending = lock(&state.pending);
    lock(&state.tracked).retain(|group, _| pending.contains_key(group) || local.has_members(group));
}

/// Runs a command; a Redis error is returned (the subscriber reconnects) after the client was answered.
/// `follow` subscribes this node to a group's channel, which a recovery does before it reads the history.
pub(super) async fn run(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut Conn,
    command: Command,
    follow: impl AsyncFnOnce(String) -> Result<(), RedisError>,
) -> Result<(), RedisError> {
    match command {
        Command::Recover {
            client,
            group,
            wanted,
            joined_at,
            joined_ms,
        } => {
            let failed = wanted.as_ref().map(|_| false);
            let joined = Joined {
                at: joined_at,
                ms: joined_ms,
            };
            // Subscribed before the history is read: what comes after is received live.
            let subscribed = follow(group.clone()).await;
            let done = match subscribed {
                Ok(()) => recover(state, local, reader, &client, &group, wanted, joined).await,
                Err(e) => Err(e),
            };
            release(state, &group, client.id().as_str());
            if done.is_err() {
                let _ = client.send(position_frame(&group, None, failed, Some("unavailable")));
            }
            done
        }
        Command::Fetch {
            client,
            id,
            group,
            since,
        } => match fetch_from(state, reader, &group, since, id).await {
            Ok(answer) => {
                let _ = client.send(answer);
                Ok(())
            }
            Err(e) => {
                let err = Error::internal("history unavailable");
                let _ = client.send(protocol::error_frame(Some(id), &err));
                Err(e)
            }
        },
    }
}

/// When and where a client joined: what a client without a position of its own is owed is every frame
/// numbered after that.
struct Joined {
    at: Option<(String, u64)>,
    ms: u64,
}

async fn recover(
    state: &HistoryState,
    local: &MemoryBackplane,
    reader: &mut Conn,
    client: &Member,
    group: &str,
    wanted: Option<Position>,
    joined: Joined,
) -> Result<(), RedisError> {
    if !local.is_in_group(group, client.id()) {
        return Ok(());
    }
    let (epoch, offset) = current(state, reader, group).await?;
    if epoch.is_empty() && !has_room(state, reader, group).await? {
        let failed = wanted.as_ref().map(|_| false);
        let _ = client.send(position_frame(group, None, failed, Some("unavailable")));
        return Ok(());
    }
    let start = match (&wanted, joined.at) {
        (Some(p), _) => (p.epoch == epoch && p.offset < offset).then_some(p.offset),
        (None, Some((at, o))) if at == epoch => Some(o),
        // The history restarted since the join: all of the new one came after it.
        (None, Some(_)) => Some(0),
        (None, None) => joined_before(state, reader, group, &epoch, offset, joined.ms).await?,
    };
    let mut missed = Vec::new();
    let mut first_kept = offset + 1;
    if let Some(start) = start.filter(|s| *s < offset) {
        missed = kept_after(state, reader, group, &epoch, start, offset).await?;
        if wanted.is_some() {
            let now = unix_millis();
            missed.retain(|k| !k.expired(state, now));
        }
        first_kept = missed.first().map_or(offset + 1, |k| k.offset);
    }
    let (recovered, reason) = outcome(wanted.as_ref(), &epoch, offset, first_kept);
    // A client without a position of its own stands right before the first frame it is owed.
    let stands_at = match (&wanted, start) {
        (None, Some(start)) if start < offset => start,
        _ => offset,
    };
    let at = (!epoch.is_empty()).then_some((epoch.as_str(), stands_at));
    let _ = client.send(position_frame(group, at, recovered, reason));
    if recovered == Some(true) || wanted.is_none() {
        for kept in missed {
            if client.send(kept.frame).is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// The position of `group` a joining client is placed against: where this node's members stand, unless
/// the history in Redis is another one (it restarted: Redis lost it, or it expired), or none joined here.
async fn current(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
) -> Result<(String, u64), RedisError> {
    let latest = head(state, reader, group).await?.unwrap_or_default();
    let Some((epoch, offset)) = position_here(state, group) else {
        let t = Tracked::new(latest.0.clone(), latest.1);
        lock(&state.tracked).insert(group.to_owned(), t);
        return Ok(latest);
    };
    if epoch != latest.0 {
        return Ok(latest);
    }
    Ok((epoch, offset))
}

/// The frames of `epoch` after `start`, up to `offset`: from this node's recent copy when it reaches
/// back that far, else from the stream.
async fn kept_after(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
    epoch: &str,
    start: u64,
    offset: u64,
) -> Result<Vec<Kept>, RedisError> {
    let recent = lock(&state.tracked)
        .get(group)
        .filter(|t| t.epoch == epoch)
        .and_then(|t| t.after(start));
    if let Some(recent) = recent {
        return Ok(recent.into_iter().filter(|k| k.offset <= offset).collect());
    }
    Ok(read(state, reader, group, start + 1, Some(offset))
        .await?
        .into_iter()
        .filter(|e| e.epoch == epoch && e.offset <= offset)
        .map(|e| e.kept(group))
        .collect())
}

/// For a client that joined a group no member here had joined: the offset of the last frame sent before
/// its join (by the senders' clocks, as the history's age is), read back from the stream, so that frames
/// numbered after the join but received here before, or not yet, are its own too. `None`: every kept
/// frame came before the join.
async fn joined_before(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
    epoch: &str,
    offset: u64,
    joined_ms: u64,
) -> Result<Option<u64>, RedisError> {
    if epoch.is_empty() || offset == 0 {
        return Ok(None);
    }
    let limit = state.kept.get().map_or(1, |h| h.frames_per_group());
    let mut newest = offset;
    let mut looked = 0;
    while looked < limit && newest > 0 {
        let batch = 64.min(limit - looked) as u64;
        let oldest = newest.saturating_sub(batch - 1).max(1);
        let entries = read(state, reader, group, oldest, Some(newest)).await?;
        if entries.is_empty() {
            return Ok(Some(oldest - 1));
        }
        for entry in entries.iter().rev().filter(|e| e.epoch == epoch) {
            if entry.sent_ms.is_none_or(|sent| sent < joined_ms) {
                return Ok(Some(entry.offset));
            }
        }
        looked += entries.len();
        newest = oldest - 1;
    }
    Ok(Some(newest))
}

/// The answer to `$history` request `id`, a `$reply` or an `$error`; `Err` for a Redis failure.
async fn fetch_from(
    state: &HistoryState,
    reader: &mut Conn,
    group: &str,
    since: u64,
    id: u64,
) -> Result<Frame, RedisError> {
    let Some((epoch, offset)) = head(state, reader, group).await? else {
        let err = Error::not_found(format!("no history for {group:?}"));
        return Ok(protocol::error_frame(Some(id), &err));
    };
    let now = unix_millis();
    let kept: Vec<Kept> = read(state, reader, group, since + 1, None)
        .await?
        .into_iter()
        .filter(|e| e.epoch == epoch)
        .map(|e| e.kept(group))
        .filter(|k| !k.expired(state, now))
        .collect();
    let first_kept = kept.first().map_or(offset + 1, |k| k.offset);
    let frames: Vec<Frame> = kept.into_iter().map(|k| k.frame).collect();
    let reply = HistoryReply {
        group,
        epoch: &epoch,
        offset,
        complete: since + 1 >= first_kept,
        frames: frames.iter().filter_map(raw_frame).collect(),
    };
    Ok(reply.to_frame(id))
}

/// Groups held back for a client, per group: a client waits in one until its recovery ran.
pub(super) type Pending = HashMap<String, HashSet<String>>;
