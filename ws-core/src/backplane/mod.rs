//! The `Backplane`: where every operation that reaches beyond one client goes.
//!
//! Broadcasts, group sends, direct sends and membership all pass through this trait, so one node and a
//! cluster look the same to handlers. [`MemoryBackplane`] is the default and serves one node from memory.
//! A distributed backplane wraps a `MemoryBackplane` for its local clients and carries the same operations to
//! the other nodes; [`ServerBuilder::backplane`](crate::ServerBuilder::backplane) installs one.
//!
//! Every method is synchronous and must not block: senders only enqueue frames, and a distributed backplane
//! hands its outgoing traffic to its own task. That is why membership queries answer from what this node
//! knows now: a distributed backplane keeps a replica of the other nodes' clients and groups, fed by their
//! events, rather than asking a remote store in the middle of a handler.
//!
//! # Writing a backplane
//!
//! A backplane for another transport (NATS, a message bus, a test harness) is a crate of its own that
//! implements [`Backplane`]. The pattern `RedisBackplane` follows:
//!
//! - keep the [`MemoryBackplane`] the builder's factory hands you, and do every operation on it first,
//!   so this node's clients are served from memory;
//! - send what other nodes must do (the frame as [`Frame::as_text`]/[`Frame::as_binary`] bytes, its
//!   [`Frame::delivery`], the operation) from a task of your own, through a bounded queue;
//! - apply what other nodes send by calling the same trait methods on your `MemoryBackplane`
//!   (`broadcast`, `send_to_group`, `send_to_client`, and `join`/`leave` on
//!   [`MemoryBackplane::member`]), rebuilding frames with [`Frame::text_from_bytes`] and
//!   [`Frame::with_delivery`];
//! - keep a replica of the other nodes' membership for the queries, fed by
//!   [`Backplane::client_connected`], [`Backplane::client_disconnected`] and the join/leave calls on
//!   each node, with [`MemoryBackplane::membership`] as the snapshot a node publishes when another one
//!   needs to catch up.
//!
//! ```
//! use ws_core::backplane::{Backplane, MemoryBackplane};
//! use ws_core::protocol::Frame;
//! use ws_core::member::Member;
//! use ws_core::{ClientId, Error, SendError};
//!
//! /// Logs every broadcast, then delivers locally.
//! #[derive(Debug)]
//! struct Logged(MemoryBackplane);
//!
//! impl Backplane for Logged {
//!     fn broadcast(&self, frame: &Frame, except: &[ClientId]) {
//!         eprintln!("broadcast of {} bytes", frame.len());
//!         self.0.broadcast(frame, except);
//!     }
//!     fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]) {
//!         self.0.send_to_group(group, frame, except)
//!     }
//!     fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
//!         self.0.send_to_client(id, frame)
//!     }
//!     fn join(&self, group: &str, member: &Member) -> Result<bool, Error> {
//!         self.0.join(group, member)
//!     }
//!     fn leave(&self, group: &str, id: &ClientId) -> bool {
//!         self.0.leave(group, id)
//!     }
//!     fn leave_all(&self, id: &ClientId) -> Vec<String> {
//!         self.0.leave_all(id)
//!     }
//!     fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
//!         self.0.is_in_group(group, id)
//!     }
//!     fn client_groups(&self, id: &ClientId) -> Vec<String> {
//!         self.0.client_groups(id)
//!     }
//!     fn local_group_members(&self, group: &str) -> Vec<Member> {
//!         self.0.local_group_members(group)
//!     }
//!     fn group_members(&self, group: &str) -> Vec<ClientId> {
//!         self.0.group_members(group)
//!     }
//!     fn groups(&self) -> Vec<String> {
//!         self.0.groups()
//!     }
//!     fn group_count(&self) -> usize {
//!         self.0.group_count()
//!     }
//! }
//!
//! let server = ws_core::Server::builder(ws_core::Config::default())
//!     .backplane(Logged)
//!     .build()
//!     .unwrap();
//! # let _ = server;
//! ```
//!
//! The end-to-end tests link two servers in one process with such a backplane of their own
//! (`tests/e2e/custom_backplane.rs`).

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt::Debug;
use std::pin::Pin;

pub use self::memory::{LocalMembership, MemoryBackplane};
#[cfg(all(feature = "redis", feature = "fuzzing"))]
pub(crate) use self::redis::fuzz_peer_input;
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackplane, RedisConfig};
use crate::client::id::ClientId;
use crate::error::{Error, SendError};
use crate::member::Member;
use crate::protocol::Frame;
pub use crate::stats::BackplaneStats;

/// Carries cross-client operations, on one node or between nodes.
pub trait Backplane: Send + Sync + Debug + 'static {
    /// Delivers `frame` to every client but those in `except`.
    fn broadcast(&self, frame: &Frame, except: &[ClientId]);
    /// Delivers `frame` to every member of `group` but those in `except`.
    fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]);
    /// Delivers `frame` to one client.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when no node has this client; [`SendError::SlowConsumer`] when it is
    /// local and its queue passed its bounds.
    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError>;
    /// Adds a local client to a group; `Ok(false)` when it already was a member.
    ///
    /// # Errors
    ///
    /// `not_found` for a disconnected client, `limit_exceeded` past `max_groups_per_client`.
    fn join(&self, group: &str, member: &Member) -> Result<bool, Error>;
    /// Removes a client from a group; returns whether it was a member.
    fn leave(&self, group: &str, id: &ClientId) -> bool;
    /// Removes a client from all its groups; returns them, sorted.
    fn leave_all(&self, id: &ClientId) -> Vec<String>;
    /// Whether a client belongs to a group.
    fn is_in_group(&self, group: &str, id: &ClientId) -> bool;
    /// The groups of a client, sorted.
    fn client_groups(&self, id: &ClientId) -> Vec<String>;
    /// Handles to this node's members of a group.
    fn local_group_members(&self, group: &str) -> Vec<Member>;
    /// Ids of all members of a group, sorted.
    fn group_members(&self, group: &str) -> Vec<ClientId>;
    /// Names of all groups with at least one member, sorted.
    fn groups(&self) -> Vec<String>;
    /// Number of groups with at least one member.
    fn group_count(&self) -> usize;

    /// Adds a client of another node to a group, through that node; `Ok(false)` when it already was a
    /// member. The default serves one node: no client is elsewhere.
    ///
    /// # Errors
    ///
    /// `not_found` when no node has this client. Limits are checked by the node that has it.
    fn join_elsewhere(&self, group: &str, id: &ClientId) -> Result<bool, Error> {
        let _ = group;
        Err(Error::not_found(format!("no client {id:?}")))
    }

    /// Removes a client of another node from a group, through that node; returns whether it was a member.
    fn leave_elsewhere(&self, group: &str, id: &ClientId) -> bool {
        let _ = (group, id);
        false
    }

    /// Carries a disconnection (and a user's revocation) to the other nodes, which apply it with
    /// [`MemoryBackplane::disconnect`]; this node has applied it already. The default serves one node.
    fn disconnect_elsewhere(&self, order: &crate::session::Disconnect) {
        let _ = order;
    }

    /// Carries a stream order to the other nodes (a reader resuming, or cancelling, a stream that another
    /// node runs: see [`stream`](crate::stream)), which apply it with
    /// [`MemoryBackplane::stream_order`]. The default serves one node: a resume of a stream it does not run
    /// is `not_found`.
    fn stream_order_elsewhere(&self, order: &crate::stream::StreamOrder) {
        let _ = order;
    }

    /// A client of this node connected (called once it is registered, before `on_connect` hooks run).
    fn client_connected(&self, member: &Member) {
        let _ = member;
    }

    /// A client of this node is gone (called after it left its groups and was unregistered).
    fn client_disconnected(&self, id: &ClientId) {
        let _ = id;
    }

    /// The presence meta (JSON text) of a client of another node, for presence lists; `None` when unknown
    /// (it is then listed as `null`). This node's clients' meta is known without asking.
    fn presence_meta(&self, id: &ClientId) -> Option<std::sync::Arc<str>> {
        let _ = id;
        None
    }

    /// A number that changes whenever a membership this backplane knows of changes (a join or leave on
    /// any node, a node gone or read again). Presence skips a tick in which it did not change; `None`
    /// (the default) means it cannot tell, and presence compares every tick.
    fn membership_version(&self) -> Option<u64> {
        None
    }

    /// Takes over the history of the groups `history` selects (see [`history`](crate::history)), for every
    /// node: this backplane numbers their frames once for the whole cluster, keeps them where every node can
    /// read them, adds their position to the frames it delivers, answers the `$position` of a client that
    /// joins one, and [`fetch_history`](Self::fetch_history). Returns whether it does; the default, `false`,
    /// makes [`ServerBuilder::build`](crate::ServerBuilder::build) fail with
    /// [`ConfigError::HistoryUnsupported`](crate::config::ConfigError::HistoryUnsupported).
    fn keep_history(&self, history: &crate::history::History) -> bool {
        let _ = history;
        false
    }

    /// Answers a client's `$history` request `id` (the frames of `group` after offset `since`) with a
    /// `$reply` or an `$error`, now or later; called only on a backplane that keeps history.
    fn fetch_history(&self, member: &Member, id: u64, group: &str, since: u64) {
        let _ = (group, since);
        let err = Error::not_found("this server keeps no history");
        let _ = member.send(crate::protocol::error_frame(Some(id), &err));
    }

    /// Counters of a distributed backplane; `None` for one that serves a single node.
    fn stats(&self) -> Option<BackplaneStats> {
        None
    }

    /// Registers the backplane's own metrics (lag, queue depths) beside the server's; `registry` is
    /// already under the `ws_` prefix, so a name such as `backplane_lag_seconds` is scraped as `ws_backplane_lag_seconds`.
    /// Its counters in [`stats`](Self::stats) are exported by the server and need no registering.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let _ = registry;
    }

    /// Called once by [`Server::stop`](crate::Server::stop) after the clients are gone, so a distributed
    /// backplane can tell the other nodes this one is leaving.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}
