//! `Server`: the handle handlers and applications use to reach clients and groups.
//!
//! A `Server` is an `Arc` inside: clone it freely. It is built once by [`ServerBuilder`] and is immutable
//! afterwards (handlers, middleware and hooks cannot change while clients are connected). Every operation
//! that reaches other clients goes through the [`Backplane`], so the same code serves one node or many.
//!
//! Names say their scope: methods named `local_*` see this node's clients only; every other method
//! covers all the nodes the backplane links.

pub(crate) mod builder;
mod serve;
pub(crate) mod upgrade;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::admission::Admission;
use crate::client::{Client, ClientId};
use crate::close::{self, CloseCode};
use crate::config::Config;
use crate::error::{Error, SendError};
use crate::handler::{Endpoint, Middleware};
use crate::hooks::Hooks;
use crate::member::{Abort, Member};
use crate::message::IntoFrame;
use crate::metrics::Metrics;
use crate::node::{Node, RunState, SystemFrame};
use crate::raw::RawHandler;
use crate::recipients::Recipients;
use crate::session::{Disconnect, Revocation, Target};
use crate::stats::StatsSnapshot;

pub(crate) type AuthHook = Arc<
    dyn Fn(
            crate::auth::AuthRequest,
        )
            -> crate::handler::BoxFuture<Result<crate::auth::ClientData, axum::response::Response>>
        + Send
        + Sync,
>;

/// A message type's handler and the histogram of its durations.
pub(crate) struct Route {
    pub(crate) endpoint: Endpoint,
    pub(crate) duration: prometheus_client::metrics::histogram::Histogram,
    /// Whether a request is answered with a stream, run beside the client's other handlers.
    pub(crate) stream: bool,
}

/// The server's state, in three parts: what the application declared ([`App`]), what every connection
/// and handle shares ([`Node`]), and the connection bounds ([`Admission`]).
pub(crate) struct Inner {
    pub(crate) node: Arc<Node>,
    pub(crate) app: App,
    pub(crate) metrics: Metrics,
    pub(crate) admission: Arc<Admission>,
}

/// What the application declared, fixed once built: read by the gates and the frame path.
pub(crate) struct App {
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) middleware: Arc<[Middleware]>,
    pub(crate) hooks: Hooks,
    pub(crate) auth: Option<AuthHook>,
    pub(crate) raw: Option<RawHandler>,
    pub(crate) states: crate::extract::States,
    /// What the features that are on add to each connection.
    pub(crate) features: Features,
}

/// What the features that are on (history's frames, presence, protocol versions) add to a connection,
/// in one place: the upgrade and the frame path ask here and name no feature.
#[derive(Default)]
pub(crate) struct Features {
    /// The `$` types a feature answers, with its answer.
    pub(crate) system_frames: HashMap<&'static str, SystemFrame>,
    /// What each feature does with a client registered (presence keeps its meta), in order.
    pub(crate) on_register: Vec<RegisterHook>,
    /// What each feature tells a client as it is accepted, from the upgrade request's URI (a client
    /// built for another protocol version is told so).
    pub(crate) on_greet: Vec<GreetHook>,
}

/// A feature's part in registering a client.
pub(crate) type RegisterHook = Arc<dyn Fn(&Client) + Send + Sync>;

/// A feature's greeting of a client just accepted.
pub(crate) type GreetHook = Arc<dyn Fn(&Member, &axum::http::Uri) + Send + Sync>;

/// The server: registry of clients and groups, and the operations on them.
///
/// ```no_run
/// use ws_core::protocol::Message;
/// use ws_core::{Client, Config, Server};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder(Config::default())
///     .on("chat", |client: Client, msg: Message| async move {
///         let out = Message::new("chat", msg.data).with_from(client.id().as_str());
///         client.server().all().send(&out);
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
            .field("path", &self.inner.node.config.path)
            .field("routes", &self.inner.app.routes.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// What every connection and handle of this server shares.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.inner.node
    }

    /// What the application declared.
    pub(crate) fn app(&self) -> &App {
        &self.inner.app
    }

    /// The server's histograms.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The connection bounds.
    pub(crate) fn admission(&self) -> &Arc<Admission> {
        &self.inner.admission
    }

    /// The configuration the server was built with.
    pub fn config(&self) -> &Config {
        &self.inner.node.config
    }

    /// Every client, on every node: `server.all().send(msg)`. See [`recipients`](crate::recipients).
    pub fn all(&self) -> Recipients<'_> {
        Recipients::all(&self.inner.node)
    }

    /// The members of `group`, on every node: `server.to("room").send(msg)`.
    pub fn to<'a>(&'a self, group: &'a str) -> Recipients<'a> {
        Recipients::group(&self.inner.node, group)
    }

    /// Sends a message to one client, on whichever node it is connected.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when no node has a client with this id (with a distributed backplane,
    /// a client of another node is only known by this node's replica of the membership);
    /// [`SendError::SlowConsumer`] when the client is local and its queue passed its bounds.
    pub fn send_to_client(
        &self,
        id: impl AsRef<str>,
        msg: impl IntoFrame,
    ) -> Result<(), SendError> {
        let id = id.as_ref();
        match self.inner.node.clients.get(id) {
            Some(member) => member.send(msg),
            None => self
                .inner
                .node
                .backplane
                .send_to_client(&ClientId::from(id), &msg.into_frame()),
        }
    }

    /// Adds a client to a group, on whichever node it is connected; `Ok(false)` if it already was a
    /// member.
    ///
    /// With a distributed backplane, a client of another node joins through that node (asynchronously: its
    /// membership shows once that node has applied it).
    ///
    /// # Errors
    ///
    /// `not_found` for an unknown or disconnected client; `limit_exceeded` when a client of this node
    /// already belongs to `max_groups_per_client` groups or the name is longer than
    /// `max_group_name_bytes`.
    pub fn join_group(&self, id: impl AsRef<str>, group: &str) -> Result<bool, Error> {
        let id = id.as_ref();
        match self.local_client(id) {
            Some(client) => client.join(group),
            None => self
                .inner
                .node
                .backplane
                .join_elsewhere(group, &ClientId::from(id)),
        }
    }

    /// Removes a client from a group, on whichever node it is connected; returns whether it was a
    /// member (for a client of another node: whether this node's replica counted it as one).
    pub fn leave_group(&self, id: impl AsRef<str>, group: &str) -> bool {
        let id = id.as_ref();
        match self.local_client(id) {
            Some(client) => self.inner.node.backplane.leave(group, client.id()),
            None => self
                .inner
                .node
                .backplane
                .leave_elsewhere(group, &ClientId::from(id)),
        }
    }

    /// Ids of the group's members on every node, sorted.
    pub fn group_members(&self, group: &str) -> Vec<ClientId> {
        self.inner.node.backplane.group_members(group)
    }

    /// Handles to the group's members connected to this node.
    pub fn local_group_members(&self, group: &str) -> Vec<Client> {
        self.inner
            .node
            .backplane
            .local_group_members(group)
            .into_iter()
            .map(|member| Client::new(member, self.clone()))
            .collect()
    }

    /// Names of the groups that have members on any node, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.node.backplane.groups()
    }

    /// Number of groups that have members on any node.
    pub fn group_count(&self) -> usize {
        self.inner.node.backplane.group_count()
    }

    /// Whether a group has no members on any node (an unknown group is empty).
    pub fn is_group_empty(&self, group: &str) -> bool {
        self.inner.node.backplane.group_members(group).is_empty()
    }

    /// A client connected to this node, by id (a [`ClientId`], or the id as a string, as it arrives in
    /// a message).
    pub fn local_client(&self, id: impl AsRef<str>) -> Option<Client> {
        self.inner
            .node
            .clients
            .get(id.as_ref())
            .map(|member| Client::new(member, self.clone()))
    }

    /// Every client connected to this node (a copy of the live set).
    pub fn local_clients(&self) -> Vec<Client> {
        let clients = self.inner.node.clients.all().into_iter();
        clients
            .map(|member| Client::new(member, self.clone()))
            .collect()
    }

    /// Closes one connection, on whichever node it is connected, with `code` and `reason`. Returns
    /// whether it was connected to this node; on another node the close happens once that node hears of
    /// it (see [`session`](crate::session)).
    pub fn disconnect_client(
        &self,
        id: impl AsRef<str>,
        code: CloseCode,
        reason: impl Into<String>,
    ) -> bool {
        self.disconnect(Disconnect {
            target: Target::Client(ClientId::from(id.as_ref())),
            code,
            reason: reason.into(),
            revocation: None,
        }) > 0
    }

    /// Closes every connection of `user` (as its authenticator named it with
    /// [`ClientData::user`](crate::auth::ClientData::user)) on every node, with `code` and `reason`.
    /// Returns how many were connected to this node.
    pub fn disconnect_user(&self, user: &str, code: CloseCode, reason: impl Into<String>) -> usize {
        self.disconnect(Disconnect {
            target: Target::User(user.to_owned()),
            code,
            reason: reason.into(),
            revocation: None,
        })
    }

    /// Revokes `user` on every node: closes their connections with
    /// [`REVOKED`](crate::session::REVOKED) (4003 "revoked"), and for `lasting` refuses their handshakes
    /// and refreshes whose credential was issued before now (all of them when the authenticator gives no
    /// [`issued_at`](crate::auth::ClientData::issued_at)) with 401 "token revoked". Make `lasting` as long
    /// as the longest-lived credential. Returns how many connections were on this node.
    ///
    /// ```no_run
    /// # fn ban(server: &ws_core::Server) {
    /// server.revoke_user("mallory", std::time::Duration::from_secs(3600));
    /// # }
    /// ```
    pub fn revoke_user(&self, user: &str, lasting: std::time::Duration) -> usize {
        let revoked_at = std::time::SystemTime::now();
        self.disconnect(Disconnect {
            target: Target::User(user.to_owned()),
            code: crate::session::REVOKED,
            reason: "revoked".to_owned(),
            revocation: Some(Revocation {
                revoked_at,
                until: revoked_at + lasting,
            }),
        })
    }

    fn disconnect(&self, order: Disconnect) -> usize {
        let closed = self.inner.node.local.disconnect(&order);
        let elsewhere = match order.target {
            Target::Client(_) => closed == 0,
            Target::User(_) => true,
        };
        if elsewhere {
            self.inner.node.backplane.disconnect_elsewhere(&order);
        }
        closed
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        let mut stats = self.inner.node.stats.snapshot();
        stats.backplane = self.inner.node.backplane.stats();
        stats
    }

    /// Registers this server's metrics in `registry`, under names that start with `ws_` (the table in
    /// [`metrics`](crate::metrics)), beside the application's own.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        crate::metrics::register(&self.inner.metrics, &self.inner.node, registry);
    }

    /// This server's metrics alone, as an OpenMetrics text page (serve it with
    /// [`metrics::CONTENT_TYPE`](crate::metrics::CONTENT_TYPE)).
    ///
    /// ```
    /// # fn main() -> Result<(), ws_core::config::ConfigError> {
    /// let server = ws_core::Server::builder(ws_core::Config::default()).build()?;
    /// let page = server.metrics_text();
    /// assert!(page.contains("# TYPE ws_messages_sent counter\nws_messages_sent_total 0\n"));
    /// # Ok(()) }
    /// ```
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.register_metrics(&mut registry);
        let mut page = String::with_capacity(8 * 1024);
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut page, &registry);
        page
    }

    /// Whether [`Server::stop`] has been called.
    pub fn is_stopping(&self) -> bool {
        !self.inner.node.is_running()
    }

    /// Stops the server gracefully.
    ///
    /// New upgrades are refused with 503; every client gets close 1001 after its queued frames; the server
    /// waits up to `shutdown_timeout` for the connections to end, aborts those still open, and then the
    /// listeners started by [`Server::serve`] close. Calling it again waits for the first call to finish.
    pub async fn stop(&self) {
        let first = self.inner.node.state.send_if_modified(|state| {
            let was_running = *state == RunState::Running;
            if was_running {
                *state = RunState::Stopping;
            }
            was_running
        });
        if !first {
            let mut state = self.inner.node.state.subscribe();
            let _ = state.wait_for(|s| *s == RunState::Stopped).await;
            return;
        }
        for client in self.local_clients() {
            client.close(close::GOING_AWAY, "server shutting down");
        }
        let mut connections = self.inner.admission.connections.subscribe();
        let drained = matches!(
            tokio::time::timeout(
                self.inner.node.config.shutdown_timeout,
                connections.wait_for(|n| *n == 0)
            )
            .await,
            Ok(Ok(_))
        );
        if !drained {
            for client in self.local_clients() {
                client.member().abort(Abort::ShutdownDeadline);
            }
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                connections.wait_for(|n| *n == 0),
            )
            .await;
        }
        self.inner.node.backplane.close().await;
        self.inner.node.state.send_replace(RunState::Stopped);
    }
}
