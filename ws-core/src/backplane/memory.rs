use std::sync::Arc;

use super::Backplane;
use crate::client::{Client, ClientId};
use crate::error::{Error, SendError};
use crate::group::GroupRegistry;
use crate::protocol::Frame;
use crate::registry::ClientRegistry;
use crate::send_queue::Stamp;

/// The in-process backplane: this node's clients and groups, delivered from memory.
///
/// Fan-out walks the recipients under a read lock and hands each one a clone of the same frame (a
/// reference-count increment); nothing blocks, because pushing onto a send queue never waits.
#[derive(Debug, Clone)]
pub struct MemoryBackplane {
    clients: Arc<ClientRegistry>,
    groups: Arc<GroupRegistry>,
}

impl MemoryBackplane {
    pub(crate) fn new(clients: Arc<ClientRegistry>, groups: Arc<GroupRegistry>) -> Self {
        Self { clients, groups }
    }

    /// Ids of this node's clients, and every group with its members' ids.
    #[cfg(feature = "redis")]
    pub(crate) fn membership(&self) -> (Vec<String>, Vec<(String, Vec<String>)>) {
        let mut ids = Vec::new();
        self.clients.for_each(|c| ids.push(c.id().to_string()));
        (ids, self.groups.snapshot())
    }

    /// Whether a client with this id is connected here.
    #[cfg(feature = "redis")]
    pub(crate) fn has_client(&self, id: &str) -> bool {
        self.clients.get(id).is_some()
    }

    /// A client connected here.
    #[cfg(feature = "redis")]
    pub(crate) fn client(&self, id: &str) -> Option<Client> {
        self.clients.get(id)
    }
}

fn deliver(client: &Client, frame: &Frame, except: Option<&ClientId>, now: Stamp) {
    if except != Some(client.id()) {
        // A failed push has already dropped that client as a slow consumer; the others go on.
        let _ = client.deliver(frame, now);
    }
}

impl Backplane for MemoryBackplane {
    fn broadcast(&self, frame: &Frame, except: Option<&ClientId>) {
        let now = Stamp::now();
        self.clients.for_each(|c| deliver(c, frame, except, now));
    }

    fn send_to_group(&self, group: &str, frame: &Frame, except: Option<&ClientId>) {
        let now = Stamp::now();
        self.groups
            .for_each_member(group, |c| deliver(c, frame, except, now));
    }

    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
        match self.clients.get(id.as_str()) {
            Some(client) => client.send(frame),
            None => Err(SendError::Disconnected),
        }
    }

    fn join(&self, group: &str, client: &Client) -> Result<bool, Error> {
        self.groups.join(group, client)
    }

    fn leave(&self, group: &str, id: &ClientId) -> bool {
        self.groups.leave(group, id)
    }

    fn leave_all(&self, id: &ClientId) -> Vec<String> {
        self.groups.leave_all(id)
    }

    fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
        self.groups.contains(group, id)
    }

    fn client_groups(&self, id: &ClientId) -> Vec<String> {
        self.groups.groups_of(id)
    }

    fn group_members(&self, group: &str) -> Vec<Client> {
        self.groups.members(group)
    }

    fn group_member_ids(&self, group: &str) -> Vec<ClientId> {
        self.groups.member_ids(group)
    }

    fn groups(&self) -> Vec<String> {
        self.groups.groups()
    }

    fn group_count(&self) -> usize {
        self.groups.count()
    }
}
