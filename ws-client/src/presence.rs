//! Presence lists: who is in each group this client joined, kept from the server's `$presence_state`
//! and `$presence_diff` frames, the same way the TypeScript SDK keeps them.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Groups whose list is kept, at most (the one changed longest ago is forgotten first).
const MAX_GROUPS: usize = 1024;
/// Members listed per group, at most; past it the list keeps its count and lists no newcomer. The
/// server's own threshold (1 000 by default) sends counts only well before.
const MAX_MEMBERS: usize = 10_000;

/// One member of a presence list: its client id and the meta the server shows for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's client id.
    pub id: String,
    /// What the server shows of it (the server's `Presence::meta`), as JSON.
    pub meta: Value,
}

impl Member {
    /// The meta as the type the server declares for it.
    ///
    /// # Errors
    ///
    /// When the meta does not fit `M`.
    pub fn meta_as<M: DeserializeOwned>(&self) -> Result<M, serde_json::Error> {
        M::deserialize(&self.meta)
    }
}

/// A group's presence list as this client last heard it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Presence {
    /// Members in the order they arrived; empty when the server sends counts only for the group.
    pub members: Vec<Member>,
    /// Members in the group, on every node.
    pub count: u64,
    /// Whether the server sends counts only for this group (it is bigger than the server's threshold).
    pub counts_only: bool,
}

impl Presence {
    /// The member with client id `id`, if listed.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// One change of a group's list, as [`Incoming::Presence`](crate::Incoming::Presence) tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceChange {
    /// The group.
    pub group: String,
    /// Members that arrived.
    pub joins: Vec<Member>,
    /// Members that left (every listed member when the connection was lost).
    pub leaves: Vec<Member>,
    /// Members in the group now.
    pub count: u64,
}

#[derive(Deserialize)]
struct Frame {
    group: String,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    members: Option<Map<String, Value>>,
    #[serde(default)]
    joins: Option<Map<String, Value>>,
    #[serde(default)]
    leaves: Option<Map<String, Value>>,
}

#[derive(Debug, Default)]
struct Group {
    /// Member id → (arrival, meta).
    members: HashMap<String, (u64, Value)>,
    count: u64,
    counts_only: bool,
    changed: u64,
}

impl Group {
    fn listed(&self) -> Vec<Member> {
        let mut members: Vec<(&String, &(u64, Value))> = self.members.iter().collect();
        members.sort_unstable_by_key(|(_, (arrival, _))| *arrival);
        members
            .into_iter()
            .map(|(id, (_, meta))| Member {
                id: id.clone(),
                meta: meta.clone(),
            })
            .collect()
    }
}

/// Every group's list.
#[derive(Debug, Default)]
pub(crate) struct Presences {
    groups: HashMap<String, Group>,
    ticks: u64,
}

fn member((id, meta): (String, Value)) -> Member {
    Member { id, meta }
}

impl Presences {
    /// Applies a `$presence_state` (`state`: the whole list) or a `$presence_diff`; `None` for a frame
    /// that is not one.
    pub(crate) fn apply(&mut self, state: bool, data: &str) -> Option<PresenceChange> {
        let frame: Frame = serde_json::from_str(data).ok()?;
        self.ticks += 1;
        if !self.groups.contains_key(&frame.group) && self.groups.len() >= MAX_GROUPS {
            let oldest = self.groups.iter().min_by_key(|(_, g)| g.changed);
            if let Some(oldest) = oldest.map(|(name, _)| name.clone()) {
                self.groups.remove(&oldest);
            }
        }
        let ticks = self.ticks;
        let group = self.groups.entry(frame.group.clone()).or_default();
        group.changed = ticks;
        let (mut joins, mut leaves) = (Vec::new(), Vec::new());
        if state {
            group.counts_only = frame.members.is_none();
            let members = frame.members.unwrap_or_default();
            let old = std::mem::take(&mut group.members);
            for (id, (_, meta)) in &old {
                if !members.contains_key(id) {
                    leaves.push(member((id.clone(), meta.clone())));
                }
            }
            for (id, meta) in members {
                if group.members.len() >= MAX_MEMBERS {
                    break;
                }
                let arrival = match old.get(&id) {
                    Some((arrival, _)) => *arrival,
                    None => {
                        joins.push(member((id.clone(), meta.clone())));
                        ticks * MAX_MEMBERS as u64 + group.members.len() as u64
                    }
                };
                group.members.insert(id, (arrival, meta));
            }
        } else {
            group.counts_only = frame.joins.is_none() && frame.leaves.is_none();
            for (id, meta) in frame.leaves.unwrap_or_default() {
                if group.members.remove(&id).is_some() {
                    leaves.push(member((id, meta)));
                }
            }
            for (id, meta) in frame.joins.unwrap_or_default() {
                let listed = group.members.len();
                let arrival = ticks * MAX_MEMBERS as u64 + listed as u64;
                match group.members.get_mut(&id) {
                    Some((_, known)) => *known = meta,
                    None if listed < MAX_MEMBERS => {
                        joins.push(member((id.clone(), meta.clone())));
                        group.members.insert(id, (arrival, meta));
                    }
                    None => {}
                }
            }
        }
        group.count = frame.count.unwrap_or(group.count);
        Some(PresenceChange {
            group: frame.group,
            joins,
            leaves,
            count: group.count,
        })
    }

    /// The list of `group`, if this client heard one.
    pub(crate) fn get(&self, group: &str) -> Option<Presence> {
        self.groups.get(group).map(|g| Presence {
            members: g.listed(),
            count: g.count,
            counts_only: g.counts_only,
        })
    }

    /// Forgets `group` (its membership ended).
    pub(crate) fn forget(&mut self, group: &str) -> Option<PresenceChange> {
        let group_name = group;
        let group = self.groups.remove(group)?;
        Some(PresenceChange {
            group: group_name.to_owned(),
            joins: Vec::new(),
            leaves: group.listed(),
            count: 0,
        })
    }

    /// The connection is gone and the server forgot its memberships: every list empties.
    pub(crate) fn reset(&mut self) -> Vec<PresenceChange> {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        names.iter().filter_map(|g| self.forget(g)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(members: &[Member]) -> Vec<&str> {
        members.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn a_state_then_diffs_keep_arrival_order_and_report_changes() {
        let mut p = Presences::default();
        let change = p
            .apply(
                true,
                r#"{"group":"r","count":2,"members":{"b":{"user":"bob"},"a":{"user":"ann"}}}"#,
            )
            .unwrap();
        assert_eq!(change.joins.len(), 2);
        let change = p
            .apply(false, r#"{"group":"r","count":2,"joins":{"c":{"user":"cy"}},"leaves":{"b":{"user":"bob"}}}"#)
            .unwrap();
        assert_eq!(
            (ids(&change.joins), ids(&change.leaves)),
            (vec!["c"], vec!["b"])
        );
        let list = p.get("r").unwrap();
        assert_eq!(list.members.last().unwrap().id, "c");
        assert_eq!(list.count, 2);
        assert_eq!(list.get("c").unwrap().meta["user"], "cy");
        // A new state replaces the list: who is missing left, who is new joined.
        let change = p
            .apply(true, r#"{"group":"r","count":1,"members":{"d":null}}"#)
            .unwrap();
        assert_eq!(ids(&change.joins), vec!["d"]);
        assert_eq!(change.leaves.len(), 2);
        assert_eq!(ids(&p.get("r").unwrap().members), vec!["d"]);
    }

    #[test]
    fn counts_only_groups_list_nobody_and_a_reset_empties_every_list() {
        let mut p = Presences::default();
        p.apply(true, r#"{"group":"big","count":5000}"#).unwrap();
        let big = p.get("big").unwrap();
        assert!(big.counts_only && big.members.is_empty() && big.count == 5000);
        p.apply(true, r#"{"group":"r","count":1,"members":{"a":1}}"#)
            .unwrap();
        let changes = p.reset();
        assert_eq!(changes.len(), 2);
        assert!(p.get("r").is_none());
        assert!(p.apply(true, "not json").is_none());
    }

    #[test]
    fn lists_and_groups_are_bounded() {
        let mut p = Presences::default();
        let members: Map<String, Value> = (0..MAX_MEMBERS + 5)
            .map(|i| (format!("m{i}"), Value::Null))
            .collect();
        let state = serde_json::json!({"group": "r", "count": MAX_MEMBERS + 5, "members": members});
        p.apply(true, &state.to_string()).unwrap();
        assert_eq!(p.get("r").unwrap().members.len(), MAX_MEMBERS);
        assert_eq!(p.get("r").unwrap().count, (MAX_MEMBERS + 5) as u64);
        for g in 0..MAX_GROUPS + 3 {
            p.apply(
                true,
                &format!(r#"{{"group":"g{g}","count":0,"members":{{}}}}"#),
            )
            .unwrap();
        }
        assert_eq!(p.groups.len(), MAX_GROUPS);
        assert!(
            p.get("r").is_none(),
            "the group changed longest ago is forgotten"
        );
    }
}
