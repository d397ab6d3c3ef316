//! `Peers`: this node's replica of the other nodes' clients and groups.
//!
//! Each node numbers its membership changes. A replica applies a node's changes in order; when a number is
//! missing (a message lost while Redis was unreachable, a node seen for the first time), the replica still
//! applies what it gets — changes are idempotent set operations — but marks the node out of sync. The next
//! heartbeat, which carries the node's latest number, then makes this node read the whole membership from
//! the node's key. A replica is therefore never more than one heartbeat away from the truth, and the common
//! case costs one small message per change and no reads.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "fuzzing")]
use super::wire::{self, Op};
use super::wire::{Change, Membership};

#[derive(Debug)]
struct RemoteNode {
    seq: u64,
    synced: bool,
    last_seen: Instant,
    clients: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, BTreeSet<String>>,
    /// Presence meta (JSON text) of the clients that have one.
    meta: HashMap<String, Arc<str>>,
}

impl RemoteNode {
    fn new(now: Instant) -> Self {
        Self {
            seq: 0,
            synced: false,
            last_seen: now,
            clients: HashMap::new(),
            groups: HashMap::new(),
            meta: HashMap::new(),
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Connect { id, meta } => {
                if let Some(meta) = meta {
                    self.meta.insert(id.clone(), Arc::from(meta.to_string()));
                }
                self.clients.entry(id).or_default();
            }
            Change::Disconnect { id } => {
                self.meta.remove(&id);
                for group in self.clients.remove(&id).unwrap_or_default() {
                    self.remove_member(&group, &id);
                }
            }
            Change::Join { group, id } => {
                self.groups
                    .entry(group.clone())
                    .or_default()
                    .insert(id.clone());
                self.clients.entry(id).or_default().insert(group);
            }
            Change::Leave { group, id } => {
                self.remove_member(&group, &id);
                if let Some(groups) = self.clients.get_mut(&id) {
                    groups.remove(&group);
                }
            }
        }
    }

    fn remove_member(&mut self, group: &str, id: &str) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

/// The other nodes, as far as this node knows.
#[derive(Debug, Default)]
pub(super) struct Peers {
    nodes: HashMap<String, RemoteNode>,
    owners: HashMap<String, String>,
    /// Counts changes to the replica, for presence.
    version: u64,
}

impl Peers {
    /// Applies change number `seq` of `node`.
    pub(super) fn apply(&mut self, node: &str, seq: u64, change: Change, now: Instant) {
        let remote = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| RemoteNode::new(now));
        // A peer's number is not trusted to leave room for one more.
        if remote.seq.checked_add(1) != Some(seq) {
            remote.synced = false;
        }
        remote.seq = seq;
        remote.last_seen = now;
        self.version = self.version.wrapping_add(1);
        match &change {
            Change::Connect { id, .. } | Change::Join { id, .. } => {
                self.owners.insert(id.clone(), node.to_owned());
            }
            Change::Disconnect { id } => {
                self.owners.remove(id);
            }
            Change::Leave { .. } => {}
        }
        remote.apply(change);
    }

    /// Records a heartbeat; returns whether the node's membership must be read again.
    pub(super) fn heartbeat(&mut self, node: &str, seq: u64, now: Instant) -> bool {
        let remote = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| RemoteNode::new(now));
        remote.last_seen = now;
        !remote.synced || remote.seq != seq
    }

    /// Replaces a node's replica with the membership read from its key, then applies again the node's
    /// changes `held` while the read was out (each was applied as it came, and the read may predate
    /// it): those numbered past the membership's, in order. Without them (`None`: too many to hold), the
    /// node is read again at its next heartbeat.
    pub(super) fn replace_then_apply(
        &mut self,
        node: &str,
        membership: Membership,
        held: Option<Vec<(u64, Change)>>,
        now: Instant,
    ) {
        let seq = membership.seq;
        self.replace(node, membership, now);
        match held {
            Some(changes) => {
                for (n, change) in changes.into_iter().filter(|(n, _)| *n > seq) {
                    self.apply(node, n, change, now);
                }
            }
            None => {
                if let Some(remote) = self.nodes.get_mut(node) {
                    remote.synced = false;
                }
            }
        }
    }

    /// Replaces a node's replica with the membership read from its key.
    pub(super) fn replace(&mut self, node: &str, membership: Membership, now: Instant) {
        self.remove(node);
        self.version = self.version.wrapping_add(1);
        let mut remote = RemoteNode::new(now);
        remote.seq = membership.seq;
        remote.synced = true;
        remote.meta = membership
            .meta
            .into_iter()
            .map(|(id, meta)| (id, Arc::from(meta)))
            .collect();
        for id in membership.clients {
            self.owners.insert(id.clone(), node.to_owned());
            remote.clients.entry(id).or_default();
        }
        for (group, ids) in membership.groups {
            for id in ids {
                self.owners.insert(id.clone(), node.to_owned());
                remote.apply(Change::Join {
                    group: group.clone(),
                    id,
                });
            }
        }
        self.nodes.insert(node.to_owned(), remote);
    }

    /// Forgets a node and its clients.
    pub(super) fn remove(&mut self, node: &str) {
        if let Some(remote) = self.nodes.remove(node) {
            self.version = self.version.wrapping_add(1);
            for id in remote.clients.keys() {
                if self.owners.get(id).is_some_and(|owner| owner == node) {
                    self.owners.remove(id);
                }
            }
        }
    }

    /// When the node heard from longest ago falls silent for `timeout`, if there is one.
    pub(super) fn next_expiry(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.nodes
            .values()
            .map(|n| n.last_seen)
            .min()?
            .checked_add(timeout)
    }

    /// Forgets the nodes not heard from since `deadline`; returns how many.
    pub(super) fn expire(&mut self, deadline: Instant) -> usize {
        let silent: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.last_seen < deadline)
            .map(|(name, _)| name.clone())
            .collect();
        for node in &silent {
            self.remove(node);
        }
        silent.len()
    }

    /// Forgets everything (the link to the other nodes is down).
    pub(super) fn clear(&mut self) {
        self.nodes.clear();
        self.owners.clear();
        self.version = self.version.wrapping_add(1);
    }

    /// A number that changes with every change to the replica.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// The presence meta of a remote client, if it has one.
    pub(super) fn meta(&self, id: &str) -> Option<Arc<str>> {
        self.owner(id)
            .and_then(|node| self.nodes.get(node))
            .and_then(|n| n.meta.get(id).cloned())
    }

    pub(super) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node a remote client is connected to.
    pub(super) fn owner(&self, id: &str) -> Option<&str> {
        self.owners.get(id).map(String::as_str)
    }

    pub(super) fn is_in_group(&self, group: &str, id: &str) -> bool {
        self.owner(id)
            .and_then(|node| self.nodes.get(node))
            .and_then(|n| n.groups.get(group))
            .is_some_and(|m| m.contains(id))
    }

    pub(super) fn groups_of(&self, id: &str) -> Vec<String> {
        self.owner(id)
            .and_then(|node| self.nodes.get(node))
            .and_then(|n| n.clients.get(id))
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn member_ids(&self, group: &str, out: &mut Vec<String>) {
        for node in self.nodes.values() {
            if let Some(members) = node.groups.get(group) {
                out.extend(members.iter().cloned());
            }
        }
    }

    pub(super) fn groups(&self, out: &mut Vec<String>) {
        for node in self.nodes.values() {
            out.extend(node.groups.keys().cloned());
        }
    }
}

/// Decodes `data` as a packet from another node and applies what it says to a replica of the peers,
/// and decodes it as a stored membership too: everything a peer (or whoever reaches Redis) controls.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_peer_input(data: &[u8]) {
    let now = std::time::Instant::now();
    let mut view = Peers::default();
    if let Some(packet) = wire::decode(data) {
        let _ = packet.frame();
        match packet.op {
            Op::Change(change) => view.apply(&packet.node, packet.seq, change, now),
            Op::Heartbeat => {
                view.heartbeat(&packet.node, packet.seq, now);
            }
            Op::Bye => view.remove(&packet.node),
            _ => {}
        }
        for id in ["a", "b"] {
            let _ = view.groups_of(id);
        }
    }
    // As the fields of a stored membership: lines, alternately a field and its value.
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let fields = lines
        .chunks(2)
        .map(|pair| {
            let field = String::from_utf8_lossy(pair[0]).into_owned();
            (field, pair.get(1).map_or_else(Vec::new, |v| v.to_vec()))
        })
        .collect();
    if let Some(membership) = wire::membership_from_fields(fields) {
        view.replace("n", membership, now);
        view.expire(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(group: &str, id: &str) -> Change {
        Change::Join {
            group: group.into(),
            id: id.into(),
        }
    }

    fn members(view: &Peers, group: &str) -> Vec<String> {
        let mut ids = Vec::new();
        view.member_ids(group, &mut ids);
        ids.sort();
        ids
    }

    #[test]
    fn in_order_changes_keep_the_node_in_sync() {
        let now = Instant::now();
        let mut view = Peers::default();
        view.replace("n", Membership::default(), now);
        view.apply(
            "n",
            1,
            Change::Connect {
                id: "a".into(),
                meta: Some(serde_json::json!({"name": "ann"})),
            },
            now,
        );
        assert_eq!(view.meta("a").as_deref(), Some(r#"{"name":"ann"}"#));
        view.apply("n", 2, join("g", "a"), now);
        view.apply("n", 3, join("h", "a"), now);
        assert!(!view.heartbeat("n", 3, now));
        assert_eq!(view.owner("a"), Some("n"));
        assert_eq!(view.groups_of("a"), ["g", "h"]);
        assert_eq!(members(&view, "g"), ["a"]);
        view.apply(
            "n",
            4,
            Change::Leave {
                group: "g".into(),
                id: "a".into(),
            },
            now,
        );
        assert!(members(&view, "g").is_empty());
        view.apply("n", 5, Change::Disconnect { id: "a".into() }, now);
        assert_eq!(view.owner("a"), None);
        assert!(!view.is_in_group("h", "a"));
        assert!(!view.heartbeat("n", 5, now));
    }

    #[test]
    fn a_gap_or_a_new_node_asks_for_a_read_at_the_next_heartbeat() {
        let now = Instant::now();
        let mut view = Peers::default();
        view.apply("n", 4, join("g", "a"), now);
        assert!(view.is_in_group("g", "a"), "applied even out of sync");
        assert!(view.heartbeat("n", 4, now), "never read: must read");
        let membership = Membership {
            seq: 6,
            clients: vec!["a".into(), "b".into()],
            groups: [("g".to_owned(), vec!["b".to_owned()])].into(),
            meta: [("b".to_owned(), r#"{"name":"bob"}"#.to_owned())].into(),
        };
        let before = view.version();
        view.replace("n", membership, now);
        assert_ne!(
            view.version(),
            before,
            "a read changes the replica's version"
        );
        assert_eq!(view.meta("b").as_deref(), Some(r#"{"name":"bob"}"#));
        assert!(!view.heartbeat("n", 6, now));
        assert_eq!(members(&view, "g"), ["b"]);
        view.apply("n", 8, join("g", "a"), now);
        assert!(view.heartbeat("n", 8, now), "change 7 is missing");
        assert!(view.heartbeat("n", 9, now));
    }

    #[test]
    fn silent_and_departed_nodes_are_forgotten() {
        let start = Instant::now();
        let later = start + std::time::Duration::from_secs(10);
        let mut view = Peers::default();
        view.apply("old", 1, join("g", "a"), start);
        view.apply("new", 1, join("g", "b"), later);
        view.apply("bye", 1, join("g", "c"), later);
        assert_eq!(view.expire(start + std::time::Duration::from_secs(1)), 1);
        view.remove("bye");
        assert_eq!(members(&view, "g"), ["b"]);
        assert_eq!(view.owner("a"), None);
        assert_eq!(view.node_count(), 1);
        let mut groups = Vec::new();
        view.groups(&mut groups);
        assert_eq!(groups, ["g"]);
        view.clear();
        assert_eq!(view.node_count(), 0);
        assert_eq!(view.owner("b"), None);
    }

    #[test]
    fn changes_held_during_a_read_are_applied_on_top_of_its_answer() {
        let now = Instant::now();
        let read = |seq: u64| Membership {
            seq,
            clients: vec!["a".into(), "b".into()],
            groups: [("g".to_owned(), vec!["a".to_owned()])].into(),
            ..Membership::default()
        };
        let leave = |id: &str| Change::Leave {
            group: "g".into(),
            id: id.into(),
        };
        // Change 5 is in the answer already; 6 and 7 came after it was read.
        let mut view = Peers::default();
        let held = vec![(5, join("g", "a")), (6, join("g", "b")), (7, leave("a"))];
        view.replace_then_apply("n", read(5), Some(held), now);
        assert_eq!(members(&view, "g"), ["b"]);
        assert!(!view.heartbeat("n", 7, now), "in sync at 7");

        // Too many to hold: the answer alone, and a read at the next heartbeat.
        let mut view = Peers::default();
        view.replace_then_apply("n", read(5), None, now);
        assert_eq!(members(&view, "g"), ["a"]);
        assert!(view.heartbeat("n", 5, now), "read again");

        // A change missed between the answer and the first held: a read at the next heartbeat.
        let mut view = Peers::default();
        view.replace_then_apply("n", read(5), Some(vec![(7, leave("a"))]), now);
        assert!(members(&view, "g").is_empty());
        assert!(view.heartbeat("n", 7, now), "change 6 is missing");
    }
}
