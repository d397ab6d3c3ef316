//! The `Backplane`: where every operation that reaches beyond one client goes.
//!
//! Broadcasts, group sends, direct sends and membership all pass through this trait, so one node and a
//! cluster look the same to handlers. [`MemoryBackplane`] is the default and serves one node from memory.
//! A distributed backplane wraps a `MemoryBackplane` for its local clients and carries the same operations to
//! the other nodes; [`ServerBuilder::backplane`](crate::ServerBuilder::backplane) installs one.
//!
//! Every method is synchronous and must not block: senders only enqueue frames, and a distributed backplane
//! hands its outgoing traffic to its own task.

mod memory;

use std::fmt::Debug;

pub use self::memory::MemoryBackplane;
use crate::client::{Client, ClientId};
use crate::envelope::Frame;
use crate::error::Error;

/// Carries cross-client operations, on one node or between nodes.
pub trait Backplane: Send + Sync + Debug + 'static {
    /// Delivers `frame` to every client, except `except`.
    fn broadcast(&self, frame: &Frame, except: Option<&ClientId>);
    /// Delivers `frame` to every member of `group`, except `except`.
    fn send_to_group(&self, group: &str, frame: &Frame, except: Option<&ClientId>);
    /// Delivers `frame` to one client.
    ///
    /// # Errors
    ///
    /// `not_found` when no such client is connected.
    fn send_to_client(&self, id: &str, frame: &Frame) -> Result<(), Error>;
    /// Adds a local client to a group; `Ok(false)` when it already was a member.
    ///
    /// # Errors
    ///
    /// `not_found` for a disconnected client, `limit_exceeded` past `max_groups_per_client`.
    fn join(&self, group: &str, client: &Client) -> Result<bool, Error>;
    /// Removes a client from a group; returns whether it was a member.
    fn leave(&self, group: &str, id: &ClientId) -> bool;
    /// Removes a client from all its groups; returns them, sorted.
    fn leave_all(&self, id: &ClientId) -> Vec<String>;
    /// Whether a client belongs to a group.
    fn is_in_group(&self, group: &str, id: &ClientId) -> bool;
    /// The groups of a client, sorted.
    fn client_groups(&self, id: &ClientId) -> Vec<String>;
    /// Handles to this node's members of a group.
    fn group_members(&self, group: &str) -> Vec<Client>;
    /// Ids of all members of a group, sorted.
    fn group_member_ids(&self, group: &str) -> Vec<ClientId>;
    /// Names of all groups with at least one member, sorted.
    fn groups(&self) -> Vec<String>;
    /// Number of groups with at least one member.
    fn group_count(&self) -> usize;
}
