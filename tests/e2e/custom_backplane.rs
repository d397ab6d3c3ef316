//! A backplane written outside ws-core, as another crate would (module docs of `ws_core::backplane`,
//! "Writing a backplane"): two servers in one process, linked by forwarding every cross-client operation
//! to the other's `MemoryBackplane`. Clients of either server reach each other with the same calls
//! handlers use on one node.

use std::sync::{Arc, OnceLock};

use serde_json::json;
use ws_core::backplane::{Backplane, MemoryBackplane};
use ws_core::member::Member;
use ws_core::protocol::{Frame, Message};
use ws_core::{Client, ClientId, Error, SendError, Server};

use crate::support::{config, spawn};

/// The other server's local state, known once both are built.
type Peer = Arc<OnceLock<MemoryBackplane>>;

#[derive(Debug)]
pub(crate) struct Linked {
    local: MemoryBackplane,
    peer: Peer,
}

impl Linked {
    /// A backplane linked to no other server yet.
    pub(crate) fn solo(local: MemoryBackplane) -> Self {
        Self {
            local,
            peer: Peer::default(),
        }
    }

    fn peer(&self) -> Option<&MemoryBackplane> {
        self.peer.get()
    }

    /// A frame as another node receives it: rebuilt from its bytes, its policy carried along.
    fn carried(frame: &Frame) -> Frame {
        let bytes = bytes::Bytes::copy_from_slice(frame.as_text().unwrap_or_default().as_bytes());
        Frame::text_from_bytes(bytes)
            .expect("text frames are UTF-8")
            .with_delivery(frame.delivery().clone())
    }
}

impl Backplane for Linked {
    fn broadcast(&self, frame: &Frame, except: &[ClientId]) {
        self.local.broadcast(frame, except);
        if let Some(peer) = self.peer() {
            peer.broadcast(&Self::carried(frame), except);
        }
    }

    fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]) {
        self.local.send_to_group(group, frame, except);
        if let Some(peer) = self.peer() {
            peer.send_to_group(group, &Self::carried(frame), except);
        }
    }

    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
        match self.peer() {
            Some(peer) if peer.has_client(id) => peer.send_to_client(id, &Self::carried(frame)),
            _ => self.local.send_to_client(id, frame),
        }
    }

    fn join(&self, group: &str, member: &Member) -> Result<bool, Error> {
        self.local.join(group, member)
    }

    fn leave(&self, group: &str, id: &ClientId) -> bool {
        self.local.leave(group, id)
    }

    fn leave_all(&self, id: &ClientId) -> Vec<String> {
        self.local.leave_all(id)
    }

    fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
        self.local.is_in_group(group, id) || self.peer().is_some_and(|p| p.is_in_group(group, id))
    }

    fn client_groups(&self, id: &ClientId) -> Vec<String> {
        let mut groups = self.local.client_groups(id);
        groups.extend(self.peer().map(|p| p.client_groups(id)).unwrap_or_default());
        groups
    }

    fn local_group_members(&self, group: &str) -> Vec<Member> {
        self.local.local_group_members(group)
    }

    fn group_members(&self, group: &str) -> Vec<ClientId> {
        let mut ids = self.local.group_members(group);
        ids.extend(
            self.peer()
                .map(|p| p.group_members(group))
                .unwrap_or_default(),
        );
        ids.sort();
        ids
    }

    fn groups(&self) -> Vec<String> {
        let mut groups = self.local.groups();
        groups.extend(self.peer().map(|p| p.groups()).unwrap_or_default());
        groups.sort();
        groups.dedup();
        groups
    }

    fn group_count(&self) -> usize {
        self.groups().len()
    }

    fn join_elsewhere(&self, group: &str, id: &ClientId) -> Result<bool, Error> {
        let member = self.peer().and_then(|p| p.member(id));
        match (self.peer(), member) {
            (Some(peer), Some(member)) => peer.join(group, &member),
            _ => Err(Error::not_found(format!("no client {id}"))),
        }
    }
}

/// A server whose backplane links it to `peer`, and the slot through which the other one links back.
fn linked(peer: Peer) -> (ws_core::ServerBuilder, Peer) {
    let mine: Peer = Arc::default();
    let own = mine.clone();
    let builder = Server::builder(config())
        .backplane(move |local: MemoryBackplane| {
            let _ = own.set(local.clone());
            Linked { local, peer }
        })
        .on("shout", |client: Client, m: Message| async move {
            client.server().all().send(Message::new("shout", m.data));
        })
        .on("room", |client: Client, m: Message| async move {
            let room = m.data["room"].as_str().unwrap_or_default().to_owned();
            client
                .to(&room)
                .send(Message::new("room", m.data["text"].clone()));
        })
        .on("local_room", |client: Client, m: Message| async move {
            let room = m.data["room"].as_str().unwrap_or_default().to_owned();
            client
                .server()
                .to(&room)
                .local()
                .send(Message::new("local", m.data["text"].clone()));
        })
        .on("join", |client: Client, m: Message| async move {
            let _ = client.join(m.data.as_str().unwrap_or_default());
        })
        .on("direct", |client: Client, m: Message| async move {
            let to = m.data["to"].as_str().unwrap_or_default().to_owned();
            client
                .server()
                .send_to_client(&to, Message::new("direct", m.data["text"].clone()))
                .map_err(Error::from)
        });
    (builder, mine)
}

/// `ws_core::backplane`, "Writing a backplane": broadcasts, room sends (membership seen across the link)
/// and direct sends reach the other server's clients through a backplane built on the public API only;
/// README "Sending": `.local()` keeps a send on this node.
#[tokio::test]
async fn a_backplane_from_another_crate_links_two_servers() {
    let a_slot: Peer = Arc::default();
    let b_slot: Peer = Arc::default();
    let (a_builder, a_local) = linked(b_slot.clone());
    let (b_builder, b_local) = linked(a_slot.clone());
    let a = spawn(a_builder).await;
    let b = spawn(b_builder).await;
    let _ = a_slot.set(a_local.get().unwrap().clone());
    let _ = b_slot.set(b_local.get().unwrap().clone());

    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    let id_b = b.server.local_clients()[0].id().to_string();

    on_a.send_json(json!({"type": "shout", "data": "hello"}))
        .await;
    assert_eq!(on_a.recv().await, json!({"type": "shout", "data": "hello"}));
    assert_eq!(on_b.recv().await, json!({"type": "shout", "data": "hello"}));

    on_b.send_json(json!({"type": "join", "data": "r"})).await;
    crate::support::eventually("b's client is in r, seen from a", || async {
        a.server.group_members("r") == [ClientId::from(id_b.as_str())]
    })
    .await;
    on_a.send_json(json!({"type": "room", "data": {"room": "r", "text": "in r"}}))
        .await;
    assert_eq!(on_b.recv().await, json!({"type": "room", "data": "in r"}));

    on_a.send_json(json!({"type": "direct", "data": {"to": id_b, "text": "just you"}}))
        .await;
    assert_eq!(
        on_b.recv().await,
        json!({"type": "direct", "data": "just you"})
    );
    on_a.expect_silence(std::time::Duration::from_millis(150))
        .await;

    // `.local()` stays on the sending server: A's member gets it, B's does not.
    on_a.send_json(json!({"type": "join", "data": "r"})).await;
    crate::support::eventually("both clients are in r", || async {
        a.server.group_members("r").len() == 2
    })
    .await;
    on_a.send_json(json!({"type": "local_room", "data": {"room": "r", "text": "here only"}}))
        .await;
    assert_eq!(
        on_a.recv().await,
        json!({"type": "local", "data": "here only"})
    );
    on_b.expect_silence(std::time::Duration::from_millis(150))
        .await;
}
