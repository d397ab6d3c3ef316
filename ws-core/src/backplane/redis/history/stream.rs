//! Where recovery reads a group's kept frames back: the group's stream and history hash in Redis
//! (`Conn`), or memory in the unit tests. Recovery's rules depend only on these three reads.

use redis::RedisError;

use crate::backplane::redis::config::RedisConfig;
use crate::backplane::redis::conn::Conn;
use crate::backplane::redis::wire::{self, Op, millis, unix_millis};
use crate::history::{History, positioned};
use crate::protocol::Frame;

/// A frame of a group's history, as received or read back.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(super) epoch: String,
    pub(super) offset: u64,
    /// The ids it leaves out.
    pub(super) except: Vec<String>,
    /// When its sender queued it, by the sender's clock.
    pub(super) sent_ms: Option<u64>,
    pub(super) frame: Frame,
}

impl Entry {
    pub(super) fn from_packet(packet: &wire::Packet) -> Option<Self> {
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

    /// The frame with its position written in, as members get it.
    pub(super) fn positioned(&self, group: &str) -> Frame {
        if self.epoch.is_empty() {
            return self.frame.clone();
        }
        positioned(&self.frame, group, &self.epoch, self.offset)
            .unwrap_or_else(|| self.frame.clone())
    }
}

/// The reads recovery makes of what Redis keeps.
pub(crate) trait Streams {
    /// The history's epoch and latest offset, `None` when the group has none (never sent to, or expired).
    /// With replicas to wait for, the latest offset is that of the last frame confirmed, published after
    /// its wait.
    async fn head(&mut self, group: &str) -> Result<Option<(String, u64)>, RedisError>;

    /// Whether `group` has, or can get, history: it is among the groups with history, or they are fewer
    /// than the limit, counting those active within the history's life.
    async fn has_room(&mut self, group: &str) -> Result<bool, RedisError>;

    /// The kept frames with offsets from `from` to `to` (the latest when `None`), at most the history's
    /// frames per group.
    async fn read(
        &mut self,
        group: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Entry>, RedisError>;
}

/// A stream entry as `XRANGE` returns it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The group's stream and history hash in Redis, read on the subscriber's connection.
pub(crate) struct RedisStreams<'a> {
    conn: &'a mut Conn,
    keys: &'a RedisConfig,
    /// The groups whose history is kept, once the server asked for it.
    history: Option<&'a History>,
}

impl<'a> RedisStreams<'a> {
    pub(super) fn new(
        conn: &'a mut Conn,
        keys: &'a RedisConfig,
        history: Option<&'a History>,
    ) -> Self {
        Self {
            conn,
            keys,
            history,
        }
    }
}

impl Streams for RedisStreams<'_> {
    async fn head(&mut self, group: &str) -> Result<Option<(String, u64)>, RedisError> {
        let (epoch, offset, confirmed): (Option<String>, Option<u64>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.history_key(group))
                .arg("epoch")
                .arg("offset")
                .arg("confirmed")
                .query_async(self.conn)
                .await?;
        let Some(epoch) = epoch else {
            return Ok(None);
        };
        let offset = offset.unwrap_or(0);
        if self.keys.replicas.is_none() {
            return Ok(Some((epoch, offset)));
        }
        // Frames waiting for their replicas are kept but not confirmed: nothing past the confirmed one
        // is read back.
        let confirmed = confirmed
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .filter(|(e, _)| *e == epoch)
            .and_then(|(_, o)| o.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Some((epoch, offset.min(confirmed))))
    }

    async fn has_room(&mut self, group: &str) -> Result<bool, RedisError> {
        let Some(history) = self.history else {
            return Ok(false);
        };
        let key = self.keys.histories_key();
        let since = unix_millis().saturating_sub(millis(history.age()));
        let (member, active): (Option<f64>, usize) = redis::pipe()
            .zscore(&key, group)
            .zcount(&key, since, "+inf")
            .query_async(self.conn)
            .await?;
        Ok(member.is_some() || active < history.group_limit())
    }

    async fn read(
        &mut self,
        group: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Entry>, RedisError> {
        let count = self.history.map_or(1, History::frames_per_group);
        let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
            .arg(self.keys.stream_key(group))
            .arg(format!("{from}-0"))
            .arg(to.map_or_else(|| "+".to_owned(), |to| format!("{to}-0")))
            .arg("COUNT")
            .arg(count)
            .query_async(self.conn)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(_, fields)| fields.into_iter().find(|(name, _)| name == "p"))
            .filter_map(|(_, packet)| wire::decode(&packet))
            .filter_map(|packet| Entry::from_packet(&packet))
            .collect())
    }
}
