//! `ClientRegistry`: the clients connected to this node, by id.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::client::id::ClientId;
use crate::member::Member;
use crate::sync::{read, write};

#[derive(Debug, Default)]
pub(crate) struct ClientRegistry {
    clients: RwLock<HashMap<ClientId, Member>>,
}

impl ClientRegistry {
    /// Registers a client built around a fresh id that no connected client has.
    pub(crate) fn insert_new(&self, make: impl FnOnce(ClientId) -> Member) -> Member {
        let mut clients = write(&self.clients);
        let mut id = crate::client::id::random();
        while clients.contains_key(&id) {
            id = crate::client::id::random();
        }
        let client = make(id.clone());
        clients.insert(id, client.clone());
        client
    }

    pub(crate) fn remove(&self, id: &ClientId) {
        write(&self.clients).remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Member> {
        read(&self.clients)
            .get(id)
            .filter(|c| c.is_connected())
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<Member> {
        read(&self.clients)
            .values()
            .filter(|c| c.is_connected())
            .cloned()
            .collect()
    }

    /// Calls `f` for every connected client while holding the read lock; `f` must not block.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Member)) {
        for client in read(&self.clients).values() {
            f(client);
        }
    }
}
