//! Picking who receives a message: `server.to("room")`, `server.all()`, `client.to("room")`, then `.send`.
//!
//! A [`Recipients`] names a set of clients; [`Recipients::send`] serializes the message once and queues
//! it for each of them. Narrow the set with [`Recipients::except`] (clients left out, one per call) and
//! [`Recipients::local`] (this node's clients only). Without `.local()`, a set reaches every node linked
//! by the [backplane](crate::backplane).
//!
//! | recipients | expression |
//! |---|---|
//! | every client | `server.all()` |
//! | every client but the sender | `client.broadcast()` (or `server.all().except(client.id())`) |
//! | a group | `server.to("room")` |
//! | a group but the sender | `client.to("room")` (or `server.to("room").except(client.id())`) |
//! | one client, anywhere | [`Server::send_to_client`](crate::Server::send_to_client) |
//! | one client of this node | [`Client::send`](crate::Client::send) |
//!
//! Sending to a set never fails and never waits: a recipient whose queue is past its bounds is dropped
//! as a slow consumer, and the others get the message.
//!
//! ```no_run
//! use ws_core::{Client, ws_messages};
//!
//! #[ws_messages(outbound)]
//! pub enum Outbound {
//!     Chat { text: String },
//! }
//!
//! fn relay(client: &Client, room: &str, text: String) {
//!     // Everybody in the room but the sender, on every node:
//!     client.to(room).send(Outbound::Chat { text: text.clone() }.sent_by(client.id()));
//!     // Everybody in the room connected to this node, the sender included:
//!     client.server().to(room).local().send(Outbound::Chat { text });
//! }
//! # fn main() {}
//! ```

use std::fmt;

use crate::backplane::Backplane;
use crate::client::id::ClientId;
use crate::message::IntoFrame;
use crate::node::Node;

/// A set of clients to send one message to; see the [module docs](self).
#[must_use = "a `Recipients` does nothing until `.send` is called"]
pub struct Recipients<'a> {
    node: &'a Node,
    group: Option<&'a str>,
    except: Vec<ClientId>,
    local: bool,
}

impl fmt::Debug for Recipients<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipients")
            .field("group", &self.group)
            .field("except", &self.except)
            .field("local", &self.local)
            .finish()
    }
}

impl<'a> Recipients<'a> {
    pub(crate) fn all(node: &'a Node) -> Self {
        Self {
            node,
            group: None,
            except: Vec::new(),
            local: false,
        }
    }

    pub(crate) fn group(node: &'a Node, group: &'a str) -> Self {
        Self {
            group: Some(group),
            ..Self::all(node)
        }
    }

    /// Leaves a client out; each call leaves out one more.
    pub fn except(mut self, id: &ClientId) -> Self {
        self.except.push(id.clone());
        self
    }

    /// Keeps only the clients connected to this node.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Sends a message to every recipient: an outbound typed message, a
    /// [`Message`](crate::protocol::Message) or a [`Frame`](crate::protocol::Frame), serialized once.
    pub fn send(&self, msg: impl IntoFrame) {
        let frame = msg.into_frame();
        let backplane: &dyn Backplane = if self.local {
            self.node.local_backplane()
        } else {
            &*self.node.backplane
        };
        match self.group {
            Some(group) => backplane.send_to_group(group, &frame, &self.except),
            None => backplane.broadcast(&frame, &self.except),
        }
    }
}
