//! The Lua scripts history runs in Redis, and how the publisher calls them.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::RedisError;

use super::HistoryState;
use crate::backplane::redis::conn::{Conn, Pipelines};
use crate::backplane::redis::wire::{self, millis};
use crate::history::History;
use crate::protocol::Frame;

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
pub(crate) const SCRIPT: &str = r#"
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
pub(crate) struct Admissions {
    answers: HashMap<String, (bool, std::time::Instant)>,
}

impl Admissions {
    /// Asks Redis about each of `groups` whose answer is missing or old (a quarter of the history's life
    /// for a group admitted, a second for one refused), and forgets answers older than the life.
    pub(crate) async fn refresh(
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
    pub(crate) fn admitted(&self, group: &str) -> bool {
        self.answers.get(group).is_some_and(|(a, _)| *a)
    }
}

/// [`SCRIPT`]'s SHA-1, by which `EVALSHA` names it. Known without asking Redis: a frame encoded before
/// any connection loaded the script (the history may be set up after the publisher connected) names it
/// right, and runs once a `NOSCRIPT` answer had it loaded.
pub(crate) fn script_sha() -> &'static str {
    static SCRIPT_HASH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SCRIPT));
    SCRIPT_HASH.get_hash()
}

/// Loads the history script on the master of `key`'s slot. Not `SCRIPT LOAD` alone, which a cluster
/// connection sends to every node: a stopped replica would hold it up.
pub(crate) async fn load_script(conn: &mut Conn, key: &str) -> Result<(), RedisError> {
    let mut pipes = Pipelines::new(conn.is_cluster());
    pipes
        .on(key)
        .cmd("EXISTS")
        .arg(key)
        .ignore()
        .cmd("SCRIPT")
        .arg("LOAD")
        .arg(SCRIPT)
        .ignore();
    pipes.run(conn).await
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
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("EVALSHA")
            .arg(script_sha())
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

/// A frame for a group with history, numbered by its node, until Redis has taken it.
#[derive(Debug)]
pub(crate) struct Unsent {
    pub(crate) number: u64,
    pub(crate) group: String,
    pub(crate) except: Vec<String>,
    pub(crate) frame: Frame,
    pub(crate) queued_ms: u64,
}

/// Adds [`SCRIPT`] for `unsent` to the publisher's pipelines, on the group's slot; with `publish`
/// empty, its reply (the packet to publish, or nil for a frame taken before) is not ignored.
pub(crate) fn invoke(
    state: &HistoryState,
    pipes: &mut Pipelines,
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
    let pipe = if publish.is_empty() {
        pipes.on(&history_key)
    } else {
        pipes.publishing_on(&history_key, head.len() + tail.len())
    };
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
    .add_to(pipe);
    if !publish.is_empty() {
        pipe.ignore();
    }
}
