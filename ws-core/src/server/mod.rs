//! `Server`: the handle handlers and applications use to reach clients and groups.
//!
//! A `Server` is an `Arc` inside: clone it freely. It is built once by [`ServerBuilder`] and is immutable
//! afterwards (handlers, middleware and hooks cannot change while clients are connected). Every operation
//! that reaches other clients goes through the [`Backplane`], so the same code serves one node or many.

mod builder;
pub(crate) mod serve;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use self::builder::ServerBuilder;
use crate::backplane::Backplane;
use crate::client::{Abort, Client, ClientId};
use crate::close;
use crate::config::Config;
use crate::envelope;
use crate::error::Error;
use crate::handler::{Endpoint, Middleware};
use crate::hooks::Hooks;
use crate::message::IntoFrame;
use crate::raw::RawHandler;
use crate::registry::ClientRegistry;
use crate::stats::{Stats, StatsSnapshot};

pub(crate) type AuthHook = Arc<
    dyn Fn(
            crate::auth::AuthRequest,
        ) -> crate::handler::BoxFuture<Result<crate::auth::ClientData, Error>>
        + Send
        + Sync,
>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    Stopping,
    Stopped,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) routes: HashMap<String, Endpoint>,
    pub(crate) middleware: Arc<[Middleware]>,
    pub(crate) hooks: Hooks,
    pub(crate) auth: Option<AuthHook>,
    pub(crate) raw: Option<RawHandler>,
    pub(crate) states: crate::typed::States,
    pub(crate) clients: Arc<ClientRegistry>,
    pub(crate) backplane: Box<dyn Backplane>,
    pub(crate) stats: Stats,
    /// Connections holding a slot: upgrades in progress and live clients.
    pub(crate) connections: watch::Sender<usize>,
    pub(crate) state: watch::Sender<RunState>,
}

impl Inner {
    pub(crate) fn is_running(&self) -> bool {
        *self.state.borrow() == RunState::Running
    }
}

/// The server: registry of clients and groups, and the operations on them.
///
/// ```no_run
/// use ws_core::{Config, Message, Server};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder(Config::default())
///     .on("chat", |client, msg: Message| async move {
///         let out = Message::new("chat", msg.data).with_from(client.id().as_str());
///         client.server().broadcast(&out);
///     })
///     .build()?;
/// server.serve().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.inner.config.path)
            .field("routes", &self.inner.routes.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts building a server.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder::new(config)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The configuration the server was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Sends a message to every connected client (the sender included, if any): an outbound typed message,
    /// a [`Message`](crate::Message) or a [`Frame`](crate::Frame). The message is serialized once for all recipients.
    pub fn broadcast(&self, msg: impl IntoFrame) {
        self.inner.backplane.broadcast(&msg.into_frame(), None);
    }

    /// Sends `{"type": kind, "data": data}` to every connected client.
    pub fn broadcast_json<T: Serialize + ?Sized>(&self, kind: &str, data: &T) {
        self.broadcast(envelope::encode(kind, data, None));
    }

    /// Sends a message to every client except `except`.
    pub fn broadcast_except(&self, except: &ClientId, msg: impl IntoFrame) {
        self.inner
            .backplane
            .broadcast(&msg.into_frame(), Some(except));
    }

    /// Sends a message to one client.
    ///
    /// # Errors
    ///
    /// `not_found` when no client with that id is connected; `limit_exceeded` when its queue is full.
    pub fn send_to_client(&self, id: &str, msg: impl IntoFrame) -> Result<(), Error> {
        self.inner.backplane.send_to_client(id, &msg.into_frame())
    }

    /// Adds a client to a group; `Ok(false)` if it already was a member.
    ///
    /// With a distributed backplane, a client of another node joins through that node (asynchronously: its
    /// membership shows once that node has applied it).
    ///
    /// # Errors
    ///
    /// `not_found` for an unknown or disconnected client; `limit_exceeded` when a client of this node
    /// already belongs to `max_groups_per_client` groups.
    pub fn join_group(&self, id: &str, group: &str) -> Result<bool, Error> {
        match self.get_client(id) {
            Some(client) => self.inner.backplane.join(group, &client),
            None => self.inner.backplane.join_elsewhere(group, id),
        }
    }

    /// Removes a client from a group; returns whether it was a member. A client of another node leaves
    /// through that node, as with [`Server::join_group`].
    pub fn leave_group(&self, id: &str, group: &str) -> bool {
        match self.get_client(id) {
            Some(client) => self.inner.backplane.leave(group, client.id()),
            None => self.inner.backplane.leave_elsewhere(group, id),
        }
    }

    /// Removes a client from all its groups and returns them, sorted. Runs automatically on disconnect.
    pub fn leave_all_groups(&self, id: &str) -> Vec<String> {
        match self.get_client(id) {
            Some(client) => self.inner.backplane.leave_all(client.id()),
            None => Vec::new(),
        }
    }

    /// Sends a message to every member of a group.
    pub fn broadcast_to_group(&self, group: &str, msg: impl IntoFrame) {
        self.inner
            .backplane
            .send_to_group(group, &msg.into_frame(), None);
    }

    /// Same as [`Server::broadcast_to_group`].
    pub fn send_to_group(&self, group: &str, msg: impl IntoFrame) {
        self.broadcast_to_group(group, msg);
    }

    /// Sends a message to every member of a group except `sender`.
    pub fn send_to_others_in_group(&self, group: &str, sender: &str, msg: impl IntoFrame) {
        let frame = msg.into_frame();
        match self.get_client(sender) {
            Some(sender) => self
                .inner
                .backplane
                .send_to_group(group, &frame, Some(sender.id())),
            None => self.inner.backplane.send_to_group(group, &frame, None),
        }
    }

    /// Handles to the group's members on this node.
    pub fn group_members(&self, group: &str) -> Vec<Client> {
        self.inner.backplane.group_members(group)
    }

    /// Ids of the group's members, sorted.
    pub fn group_member_ids(&self, group: &str) -> Vec<ClientId> {
        self.inner.backplane.group_member_ids(group)
    }

    /// Names of all groups that have members, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.backplane.groups()
    }

    /// Number of groups that have members.
    pub fn group_count(&self) -> usize {
        self.inner.backplane.group_count()
    }

    /// Whether a group has no members (an unknown group is empty).
    pub fn is_group_empty(&self, group: &str) -> bool {
        self.inner.backplane.group_member_ids(group).is_empty()
    }

    /// A connected client by id.
    pub fn get_client(&self, id: &str) -> Option<Client> {
        self.inner.clients.get(id)
    }

    /// All connected clients (a copy of the live set).
    pub fn clients(&self) -> Vec<Client> {
        self.inner.clients.all()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        let mut stats = self.inner.stats.snapshot();
        stats.backplane = self.inner.backplane.stats();
        stats
    }

    /// Whether [`Server::stop`] has been called.
    pub fn is_stopping(&self) -> bool {
        !self.inner.is_running()
    }

    /// Stops the server gracefully.
    ///
    /// New upgrades are refused with 503; every client gets close 1001 after its queued frames; the server
    /// waits up to `shutdown_timeout` for the connections to end, aborts those still open, and then the
    /// listeners started by [`Server::serve`] close. Calling it again waits for the first call to finish.
    pub async fn stop(&self) {
        let first = self.inner.state.send_if_modified(|state| {
            let was_running = *state == RunState::Running;
            if was_running {
                *state = RunState::Stopping;
            }
            was_running
        });
        if !first {
            let mut state = self.inner.state.subscribe();
            let _ = state.wait_for(|s| *s == RunState::Stopped).await;
            return;
        }
        for client in self.clients() {
            client.close(close::GOING_AWAY, "server shutting down");
        }
        let mut connections = self.inner.connections.subscribe();
        let drained = matches!(
            tokio::time::timeout(
                self.inner.config.shutdown_timeout,
                connections.wait_for(|n| *n == 0)
            )
            .await,
            Ok(Ok(_))
        );
        if !drained {
            for client in self.clients() {
                client.abort(Abort::ShutdownDeadline);
            }
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                connections.wait_for(|n| *n == 0),
            )
            .await;
        }
        self.inner.backplane.close().await;
        self.inner.state.send_replace(RunState::Stopped);
    }
}
