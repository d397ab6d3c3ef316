//! `GroupRegistry`: the two-way index between groups and the clients in them.
//!
//! Both directions live under one lock so they can never disagree. Membership stays consistent when a join
//! races with a disconnect: a disconnecting client is first marked gone (outside this lock), then leaves all
//! its groups (inside it); a join checks the mark inside the lock. Whichever takes the lock first, the client
//! ends up in no group: no ghost members. An empty group is removed at once, so `group_count` counts groups
//! that have members.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::client::id::ClientId;
use crate::error::{Error, ErrorCode};
use crate::member::Member;
use crate::sync::{read, write};

/// Which groups a feature (presence, history) applies to; `None` means every group.
pub(crate) type GroupFilter = Option<Arc<dyn Fn(&str) -> bool + Send + Sync>>;

/// Whether `filter` selects `group`.
pub(crate) fn selects(filter: &GroupFilter, group: &str) -> bool {
    filter.as_ref().is_none_or(|f| f(group))
}

#[derive(Debug, Default)]
struct Index {
    groups: HashMap<Arc<str>, HashMap<ClientId, Member>>,
    memberships: HashMap<ClientId, HashSet<Arc<str>>>,
}

/// Removes one member; a group left empty is removed with it.
fn remove_member(
    groups: &mut HashMap<Arc<str>, HashMap<ClientId, Member>>,
    group: &str,
    id: &ClientId,
) {
    if let Some(members) = groups.get_mut(group) {
        members.remove(id);
        if members.is_empty() {
            groups.remove(group);
        }
    }
}

#[derive(Debug)]
pub(crate) struct GroupRegistry {
    index: RwLock<Index>,
    max_per_client: usize,
    max_name_len: usize,
    /// Counts changes, so presence can tell cheaply that nothing changed since it last looked.
    version: AtomicU64,
}

impl GroupRegistry {
    pub(crate) fn new(max_per_client: usize, max_name_len: usize) -> Self {
        Self {
            index: RwLock::new(Index::default()),
            max_per_client,
            max_name_len,
            version: AtomicU64::new(0),
        }
    }

    /// Adds `client` to `group`; `Ok(false)` if it already was a member.
    pub(crate) fn join(&self, group: &str, member: &Member) -> Result<bool, Error> {
        if group.len() > self.max_name_len {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                format!("group name longer than {} bytes", self.max_name_len),
            ));
        }
        let mut index = write(&self.index);
        if !member.is_connected() {
            return Err(Error::not_found("client disconnected"));
        }
        let Index {
            groups,
            memberships,
        } = &mut *index;
        let mine = memberships.entry(member.id().clone()).or_default();
        if mine.contains(group) {
            return Ok(false);
        }
        if mine.len() >= self.max_per_client {
            if mine.is_empty() {
                memberships.remove(member.id());
            }
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                "too many groups for one client",
            ));
        }
        let name: Arc<str> = match groups.get_key_value(group) {
            Some((name, _)) => name.clone(),
            None => Arc::from(group),
        };
        mine.insert(name.clone());
        groups
            .entry(name)
            .or_default()
            .insert(member.id().clone(), member.clone());
        self.version.fetch_add(1, Ordering::Release);
        Ok(true)
    }

    /// Removes `id` from `group`; returns whether it was a member.
    pub(crate) fn leave(&self, group: &str, id: &ClientId) -> bool {
        let mut index = write(&self.index);
        let Index {
            groups,
            memberships,
        } = &mut *index;
        let Some(mine) = memberships.get_mut(id) else {
            return false;
        };
        if !mine.remove(group) {
            return false;
        }
        if mine.is_empty() {
            memberships.remove(id);
        }
        remove_member(groups, group, id);
        self.version.fetch_add(1, Ordering::Release);
        true
    }

    /// Removes `id` from every group; returns the groups it left, sorted.
    pub(crate) fn leave_all(&self, id: &ClientId) -> Vec<String> {
        let mut index = write(&self.index);
        let Index {
            groups,
            memberships,
        } = &mut *index;
        let Some(mine) = memberships.remove(id) else {
            return Vec::new();
        };
        let mut left = Vec::with_capacity(mine.len());
        for group in mine {
            remove_member(groups, &group, id);
            left.push(group.to_string());
        }
        left.sort();
        self.version.fetch_add(1, Ordering::Release);
        left
    }

    /// A number that changes with every join and leave.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub(crate) fn contains(&self, group: &str, id: &ClientId) -> bool {
        read(&self.index)
            .groups
            .get(group)
            .is_some_and(|m| m.contains_key(id))
    }

    pub(crate) fn members(&self, group: &str) -> Vec<Member> {
        read(&self.index)
            .groups
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn member_ids(&self, group: &str) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = read(&self.index)
            .groups
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    pub(crate) fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.index)
            .groups
            .keys()
            .map(|g| g.to_string())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn groups_of(&self, id: &ClientId) -> Vec<String> {
        let mut names: Vec<String> = read(&self.index)
            .memberships
            .get(id)
            .map(|g| g.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub(crate) fn count(&self) -> usize {
        read(&self.index).groups.len()
    }

    /// Every group with its members' ids, in one read.
    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<ClientId>)> {
        read(&self.index)
            .groups
            .iter()
            .map(|(g, m)| (g.to_string(), m.keys().cloned().collect()))
            .collect()
    }

    /// Calls `f` for each member of `group` while holding the read lock; `f` must not block.
    pub(crate) fn for_each_member(&self, group: &str, mut f: impl FnMut(&Member)) {
        if let Some(members) = read(&self.index).groups.get(group) {
            for member in members.values() {
                f(member);
            }
        }
    }
}
