//! History on one node: [`LocalHistory`], a backplane layer over the node's [`MemoryBackplane`] that
//! numbers and keeps the frames of the groups with history, and replays them to a client that joins again.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{History, HistoryReply, outcome, position_frame, positioned, raw_frame, take_position};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::id::ClientId;
use crate::error::{Error, SendError};
use crate::member::Member;
use crate::protocol::{self, Frame};
use crate::sync::lock;

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
struct HistoryStore {
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

impl HistoryStore {
    fn new(config: History) -> Self {
        Self {
            config,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn applies_to(&self, group: &str) -> bool {
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
    fn publish(&self, group: &str, frame: &Frame, deliver: impl FnOnce(&Frame)) {
        let Some(history) = self.history(group) else {
            deliver(frame);
            return;
        };
        let mut h = lock(&history);
        let offset = h.offset + 1;
        let Some(frame) = positioned(frame, group, &h.epoch, offset) else {
            drop(h);
            deliver(frame);
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
    fn join(
        &self,
        group: &str,
        client: &Member,
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

impl HistoryStore {
    /// Answers `$history` request `id`: the kept frames of a group after `since`, for a member of the group.
    fn fetch(&self, in_group: bool, id: u64, group: &str, since: u64) -> Frame {
        match self.reply(in_group, group, since, id) {
            Ok(frame) => frame,
            Err(err) => protocol::error_frame(Some(id), &err),
        }
    }

    fn reply(&self, in_group: bool, group: &str, since: u64, id: u64) -> Result<Frame, Error> {
        if !self.applies_to(group) || !lock(&self.groups).contains_key(group) {
            return Err(Error::not_found(format!("no history for {group:?}")));
        }
        if !in_group {
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
            .filter(|(o, _, _)| *o > since)
            .filter_map(|(_, _, f)| raw_frame(f))
            .collect();
        let reply = HistoryReply {
            group,
            epoch: &h.epoch,
            offset: h.offset,
            complete: since + 1 >= first_kept,
            frames,
        };
        Ok(reply.to_frame(id))
    }
}

/// The history of one node, as a layer over its [`MemoryBackplane`]: a send to a group with history is
/// numbered, kept and delivered under the group's history lock, and a join to one is made under the same
/// lock and followed by the client's `$position` and what it missed. Everything else is the memory
/// backplane's.
#[derive(Debug)]
pub(crate) struct LocalHistory {
    memory: MemoryBackplane,
    store: HistoryStore,
}

impl LocalHistory {
    pub(crate) fn new(memory: MemoryBackplane, history: History) -> Self {
        Self {
            memory,
            store: HistoryStore::new(history),
        }
    }
}

impl Backplane for LocalHistory {
    fn broadcast(&self, frame: &Frame, except: &[ClientId]) {
        self.memory.broadcast(frame, except);
    }

    fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]) {
        if !self.store.applies_to(group) {
            return self.memory.send_to_group(group, frame, except);
        }
        self.store.publish(group, frame, |frame| {
            self.memory.send_to_group(group, frame, except);
        });
    }

    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
        self.memory.send_to_client(id, frame)
    }

    fn join(&self, group: &str, client: &Member) -> Result<bool, Error> {
        if !self.store.applies_to(group) {
            return self.memory.join(group, client);
        }
        self.store
            .join(group, client, || self.memory.join(group, client))
    }

    fn leave(&self, group: &str, id: &ClientId) -> bool {
        self.memory.leave(group, id)
    }

    fn leave_all(&self, id: &ClientId) -> Vec<String> {
        self.memory.leave_all(id)
    }

    fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
        self.memory.is_in_group(group, id)
    }

    fn client_groups(&self, id: &ClientId) -> Vec<String> {
        self.memory.client_groups(id)
    }

    fn local_group_members(&self, group: &str) -> Vec<Member> {
        self.memory.local_group_members(group)
    }

    fn group_members(&self, group: &str) -> Vec<ClientId> {
        self.memory.group_members(group)
    }

    fn groups(&self) -> Vec<String> {
        self.memory.groups()
    }

    fn group_count(&self) -> usize {
        self.memory.group_count()
    }

    fn membership_version(&self) -> Option<u64> {
        self.memory.membership_version()
    }

    fn keep_history(&self, _: &History) -> bool {
        true
    }

    fn fetch_history(&self, client: &Member, id: u64, group: &str, since: u64) {
        let in_group = self.memory.is_in_group(group, client.id());
        let _ = client.send(self.store.fetch(in_group, id, group, since));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_goes_into_the_envelope_and_the_payload_is_untouched() {
        let frame = Frame::text(r#"{"type":"chat","data":{"pos":1}}"#);
        let out = positioned(&frame, "r\"1", "e", 7).unwrap();
        let value: serde_json::Value = serde_json::from_str(out.as_text().unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "chat", "data": {"pos": 1}, "pos": {"group": "r\"1", "epoch": "e", "offset": 7}})
        );
        assert!(positioned(&Frame::text("not an object"), "g", "e", 1).is_none());
        assert!(positioned(&Frame::binary(vec![1u8]), "g", "e", 1).is_none());
    }

    #[test]
    fn a_group_keeps_its_latest_frames_within_count_bytes_and_age() {
        let config = History::new().max_messages(3).max_bytes(1000);
        let store = HistoryStore::new(config);
        for i in 0..5 {
            store.publish(
                "g",
                &Frame::text(format!(r#"{{"type":"t","data":{i}}}"#)),
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
