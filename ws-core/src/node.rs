//! `Node`: what every connection and every handle of one server share.
//!
//! The node is the part of the server below the application: its configuration, this node's members,
//! the backplane every send goes through, the counters, and whether the server still runs. Clients,
//! recipients, features and the connection's I/O hold it (or the piece of it they need), never the
//! server's routes and hooks, so delivery does not depend on the application's handlers.

use std::sync::Arc;

use tokio::sync::watch;

use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::id::ClientId;
use crate::compression::negotiate::Negotiated;
use crate::config::Config;
use crate::member::{Limits, Member};
use crate::protocol::Envelope;
use crate::registry::ClientRegistry;
use crate::send_queue::Bounds;
use crate::stats::{Stats, bump};
use crate::stream::Streams;

/// A feature's answer to a system frame (`$positions`, `$history`) a client sent.
pub(crate) type SystemFrame = Arc<dyn Fn(&Node, &Member, &Envelope) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    Stopping,
    Stopped,
}

pub(crate) struct Node {
    pub(crate) config: Config,
    /// This node's members, by id.
    pub(crate) clients: Arc<ClientRegistry>,
    /// Where every operation beyond one client goes: the memory backplane, a layer over it (one node's
    /// history), or a distributed backplane.
    pub(crate) backplane: Box<dyn Backplane>,
    /// This node's clients and groups, as the memory backplane serves them.
    pub(crate) local: MemoryBackplane,
    /// Whether `backplane` links other nodes (one was installed), rather than serving this node alone.
    pub(crate) distributed: bool,
    pub(crate) stats: Arc<Stats>,
    pub(crate) state: watch::Sender<RunState>,
    /// This node's streams: running, or ended and still resumable.
    pub(crate) streams: Arc<Streams>,
}

impl Node {
    pub(crate) fn is_running(&self) -> bool {
        *self.state.borrow() == RunState::Running
    }

    /// What sends narrowed with `.local()` go through: on one node, the backplane itself (with its
    /// layers); with other nodes linked, this node's memory backplane.
    pub(crate) fn local_backplane(&self) -> &dyn Backplane {
        if self.distributed {
            &self.local
        } else {
            &*self.backplane
        }
    }

    /// Registers a new member under a fresh id and counts the connection.
    pub(crate) fn add_member(&self, compression: Option<Negotiated>) -> Member {
        let config = &self.config;
        let limits = Limits {
            queue: Bounds {
                max_bytes: config.send_queue_max_bytes,
                max_lag: config.send_queue_max_lag,
                volatile_bytes: config.send_queue_volatile_bytes,
            },
            max_pending_requests: config.max_pending_requests,
            max_metadata_bytes: config.max_metadata_bytes,
        };
        let member = self
            .clients
            .insert_new(|id| Member::new(id, limits, self.stats.clone(), compression));
        bump(&self.stats.connected_clients);
        bump(&self.stats.total_connections);
        if compression.is_some() {
            bump(&self.stats.compressed_connections);
        }
        member
    }

    /// Forgets a member that is gone: its groups, its registry entry, and the backplane's record of it.
    pub(crate) fn remove_member(&self, id: &ClientId) {
        self.backplane.leave_all(id);
        self.clients.remove(id);
        self.backplane.client_disconnected(id);
        self.streams.detach(id);
    }
}
