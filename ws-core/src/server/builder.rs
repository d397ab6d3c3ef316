use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::response::IntoResponse;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{App, AuthHook, Features, Inner, RegisterHook, Route, Server};
use crate::admission::Admission;
use crate::auth::{AuthRequest, ClientData};
use crate::backplane::{Backplane, MemoryBackplane};
use crate::client::Client;
use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::extract::States;
use crate::group::GroupRegistry;
use crate::handler::{Endpoint, Handler, Middleware, Next, Reply, Request};
use crate::history::LocalHistory;
use crate::hooks::Hooks;
use crate::message::Variant;
use crate::metrics::Metrics;
use crate::node::{Node, RunState};
use crate::protocol::Message;
use crate::raw::{RawHandler, RawMessage};
use crate::registry::ClientRegistry;
use crate::session::policy::{JoinCheck, Policy};
use crate::session::refresh::RefreshHook;
use crate::session::{Membership, Revocations};
use crate::stats::Stats;
use crate::stream::Streams;
use crate::typed;

type BackplaneFactory = Box<dyn FnOnce(MemoryBackplane) -> Box<dyn Backplane> + Send>;

/// Registers handlers, middleware, hooks and gates, then builds an immutable [`Server`].
///
/// Registering two handlers for one `type`, or a `type` starting with `$` (reserved for system frames),
/// is a programming error and panics at once:
///
/// ```should_panic
/// use ws_core::protocol::Message;
/// use ws_core::{Client, Config, Server};
///
/// let _ = Server::builder(Config::default())
///     .on("chat", |_: Client, _: Message| async {})
///     .on("chat", |_: Client, _: Message| async {});
/// ```
pub struct ServerBuilder {
    config: Config,
    routes: HashMap<String, Endpoint>,
    /// The types whose requests are answered with a stream (`#[ws(stream = T)]`).
    streams: HashSet<String>,
    presence: Option<crate::presence::Presence>,
    history: Option<crate::history::History>,
    protocol: Option<crate::version::ProtocolVersion>,
    middleware: Vec<Middleware>,
    hooks: Hooks,
    auth: Option<AuthHook>,
    raw: Option<RawHandler>,
    states: States,
    backplane: Option<BackplaneFactory>,
    authorize_join: Option<JoinCheck>,
}

impl Server {
    /// Starts building a server.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder::new(config)
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.routes.keys().collect();
        types.sort();
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("types", &types)
            .field("middleware", &self.middleware.len())
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            routes: HashMap::new(),
            streams: HashSet::new(),
            presence: None,
            history: None,
            protocol: None,
            middleware: Vec::new(),
            hooks: Hooks::default(),
            auth: None,
            raw: None,
            states: States::default(),
            backplane: None,
            authorize_join: None,
        }
    }

    /// Handles frames of one `type` with an untyped handler: an async function or closure whose arguments
    /// are [extractors](crate::extract) (`Client`, `Server`, `State<T>`, `Extension<T>`, ...), the last
    /// of which may be the [`Message`] (its `data` as JSON) or the whole [`Request`] (to
    /// [`decode`](Request::decode) `data` into a type of yours). Closures name their arguments' types.
    ///
    /// The return value answers requests: `()`, a [`Reply`], or `Result<T, E>` where `T` is the reply
    /// data (see [`IntoReply`](crate::handler::IntoReply)).
    ///
    /// ```
    /// use ws_core::handler::Request;
    /// use ws_core::protocol::Message;
    /// use ws_core::{Client, Config, Error, Server};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Add {
    ///     a: i64,
    ///     b: i64,
    /// }
    ///
    /// let server = Server::builder(Config::default())
    ///     .on("shout", |client: Client, msg: Message| async move {
    ///         client.server().all().send(&msg);
    ///     })
    ///     .on("add", |req: Request| async move {
    ///         let add: Add = req.decode()?;
    ///         Ok::<_, Error>(add.a + add.b)
    ///     })
    ///     .build()?;
    /// # let _ = server;
    /// # Ok::<(), ws_core::config::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `kind` already has a handler or starts with `$`.
    #[track_caller]
    #[must_use]
    pub fn on<H, Args>(self, kind: &str, handler: H) -> Self
    where
        H: Handler<Message, Args>,
    {
        self.route(kind, typed::endpoint(handler))
    }

    /// Registers a typed handler: an `async fn` annotated with `#[on(Enum::Variant)]`. The message type
    /// it serves comes from the function itself.
    ///
    /// # Panics
    ///
    /// If the variant's type already has a handler.
    #[track_caller]
    #[must_use]
    pub fn handle<H, V, Args>(self, handler: H) -> Self
    where
        H: Handler<V, Args>,
        V: Variant,
    {
        let mut this = self.route(V::NAME, typed::endpoint(handler));
        if V::IS_STREAM {
            this.streams.insert(V::NAME.to_owned());
        }
        this
    }

    /// Makes a value available to typed handlers through the [`State<T>`](crate::extract::State) argument (one value
    /// per type; a second call for the same type replaces the first).
    #[must_use]
    pub fn with_state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.states.insert(state);
        self
    }

    #[track_caller]
    fn route(mut self, kind: &str, endpoint: Endpoint) -> Self {
        assert!(
            !kind.starts_with('$'),
            "message type {kind:?} is reserved: names starting with `$` are system frames"
        );
        assert!(
            self.routes.insert(kind.to_owned(), endpoint).is_none(),
            "a handler for message type {kind:?} is already registered"
        );
        self
    }

    /// Adds middleware around every handler. Middleware runs in registration order; each calls
    /// [`Next::run`] to go on, or returns its own answer.
    ///
    /// ```no_run
    /// use ws_core::handler::{Next, Request};
    /// use ws_core::{Config, Error, Server};
    ///
    /// /// Set on admins' clients by the authenticator (`ClientData::extension`).
    /// #[derive(Clone)]
    /// struct Admin;
    ///
    /// let builder = Server::builder(Config::default()).use_middleware(|req: Request, next: Next| async move {
    ///     if req.kind().starts_with("admin:") && req.client().extension::<Admin>().is_none() {
    ///         return Err(Error::forbidden("admins only"));
    ///     }
    ///     next.run(req).await
    /// });
    /// ```
    #[must_use]
    pub fn use_middleware<F, Fut>(mut self, middleware: F) -> Self
    where
        F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, Error>> + Send + 'static,
    {
        self.middleware
            .push(Arc::new(move |req, next| Box::pin(middleware(req, next))));
        self
    }

    /// Runs after a client is registered, before its first frame is read.
    #[must_use]
    pub fn on_connect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks
            .on_connect
            .push(Arc::new(move |c| Box::pin(hook(c))));
        self
    }

    /// Runs after a connection ends, while the client's groups are still readable.
    #[must_use]
    pub fn on_disconnect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks
            .on_disconnect
            .push(Arc::new(move |c| Box::pin(hook(c))));
        self
    }

    /// Runs when a handler returns an error or panics.
    #[must_use]
    pub fn on_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Client, &Error) + Send + Sync + 'static,
    {
        self.hooks.on_error.push(Arc::new(hook));
        self
    }

    /// Runs when a frame's `type` has no handler (the frame is then dropped, or answered with
    /// `unknown_type` if it is a request).
    #[must_use]
    pub fn on_unknown_type<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Client, &str) + Send + Sync + 'static,
    {
        self.hooks.on_unknown_type.push(Arc::new(hook));
        self
    }

    /// Authenticates the upgrade request before the WebSocket exists. An `Ok` attaches its
    /// [`ClientData`] to the new client; an `Err` is the HTTP answer, and no slot is taken.
    ///
    /// The error is anything axum can answer with: a [`Error`] (401, or 403 for `forbidden`, 429 for
    /// `rate_limited`, 500 for `internal`: see its `IntoResponse`), a `StatusCode`, a
    /// `(StatusCode, &str)`, a whole `Response`.
    ///
    /// ```no_run
    /// use axum::http::StatusCode;
    /// use ws_core::auth::{AuthRequest, ClientData};
    /// use ws_core::{Config, Error, Server};
    ///
    /// // 403 without a token (`Error::unauthorized` would answer 401):
    /// let builder = Server::builder(Config::default()).auth(|req: AuthRequest| async move {
    ///     let token = req.query("token").filter(|t| !t.is_empty());
    ///     let token = token.ok_or_else(|| Error::forbidden("missing token"))?;
    ///     Ok::<_, Error>(ClientData::new().span_user(token))
    /// });
    ///
    /// // Any status:
    /// let builder = Server::builder(Config::default()).auth(|req: AuthRequest| async move {
    ///     match req.header("x-api-key") {
    ///         Some("secret") => Ok(ClientData::new()),
    ///         _ => Err((StatusCode::TOO_MANY_REQUESTS, "try later")),
    ///     }
    /// });
    /// ```
    #[must_use]
    pub fn auth<F, Fut, E>(mut self, auth: F) -> Self
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ClientData, E>> + Send + 'static,
        E: IntoResponse + 'static,
    {
        self.auth = Some(Arc::new(move |req| {
            let answer = auth(req);
            Box::pin(async move { answer.await.map_err(IntoResponse::into_response) })
        }));
        self
    }

    /// Refreshes sessions in-band: a client's `$refresh {"token"}` request is answered by `refresh`, which
    /// checks the new token as the authenticator would and returns the connection's new [`ClientData`]
    /// (its expiry, metadata and extensions replace what the connection had; see
    /// [`session`](crate::session)). An `Err` is the request's `$error`, and changes nothing.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// use ws_core::auth::{AuthRequest, ClientData};
    /// use ws_core::{Client, Config, Error, Server};
    ///
    /// /// The application's own check: the user a token names, and when it expires.
    /// fn check(token: &str) -> Result<(String, SystemTime), Error> {
    ///     let user = token.strip_prefix("valid:").ok_or_else(|| Error::unauthorized("bad token"))?;
    ///     Ok((user.to_owned(), SystemTime::now() + Duration::from_secs(300)))
    /// }
    ///
    /// let builder = Server::builder(Config::default())
    ///     .auth(|req: AuthRequest| async move {
    ///         let (user, expires) = check(&req.query("token").unwrap_or_default())?;
    ///         Ok::<_, Error>(ClientData::new().user(user).expires_at(expires))
    ///     })
    ///     .on_refresh(|_client: Client, token: String| async move {
    ///         let (user, expires) = check(&token)?;
    ///         Ok(ClientData::new().user(user).expires_at(expires))
    ///     });
    /// ```
    #[must_use]
    pub fn on_refresh<F, Fut>(mut self, refresh: F) -> Self
    where
        F: Fn(Client, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ClientData, Error>> + Send + 'static,
    {
        let hook: RefreshHook = Arc::new(move |client, token| Box::pin(refresh(client, token)));
        self.routes.insert(
            crate::session::REFRESH_TYPE.to_owned(),
            crate::session::refresh::endpoint(hook),
        );
        self
    }

    /// Checks every join of a client of this node before it happens (the role of Phoenix's `join/3`):
    /// `check` sees the client (its user, its extensions: the claims its token carried) and the group,
    /// and grants a [`Membership`], for good or until a time, or refuses with the join's error. A
    /// membership that ends takes the client out of the group with `$left`; a refresh checks every group
    /// again (see [`session`](crate::session)).
    ///
    /// ```
    /// use ws_core::member::Member;
    /// use ws_core::session::Membership;
    /// use ws_core::{Config, Error, Server};
    ///
    /// /// The rooms a token lets its bearer into, put there by the authenticator.
    /// #[derive(Clone)]
    /// struct Rooms(Vec<String>);
    ///
    /// let builder = Server::builder(Config::default()).authorize_join(|member: &Member, group: &str| {
    ///     let rooms = member.extension::<Rooms>().unwrap_or(Rooms(Vec::new()));
    ///     if rooms.0.iter().any(|r| r == group) {
    ///         Ok(Membership::granted())
    ///     } else {
    ///         Err(Error::forbidden(format!("not a member of {group}")))
    ///     }
    /// });
    /// ```
    #[must_use]
    pub fn authorize_join<F>(mut self, check: F) -> Self
    where
        F: Fn(&crate::member::Member, &str) -> Result<Membership, Error> + Send + Sync + 'static,
    {
        self.authorize_join = Some(Arc::new(check));
        self
    }

    /// Switches the server to raw mode: every text and binary frame goes to `handler` as it is, without the
    /// envelope. Message handlers and middleware are not used in raw mode.
    #[must_use]
    pub fn raw<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Client, RawMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.raw = Some(Arc::new(move |c, m| Box::pin(handler(c, m))));
        self
    }

    /// Replaces the default in-memory backplane. The factory receives the [`MemoryBackplane`] serving this
    /// node's clients, to wrap for cross-node delivery.
    #[must_use]
    pub fn backplane<F, B>(mut self, factory: F) -> Self
    where
        F: FnOnce(MemoryBackplane) -> B + Send + 'static,
        B: Backplane,
    {
        self.backplane = Some(Box::new(move |local| Box::new(factory(local))));
        self
    }

    /// Turns on presence for the groups `presence` selects: their members get `$presence_state` when they
    /// join and `$presence_diff` as others come and go (see [`presence`](crate::presence)).
    #[must_use]
    pub fn presence(mut self, presence: crate::presence::Presence) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Keeps the recent frames of the groups `history` selects, numbered, and replays what a client missed
    /// when it joins again (see [`history`](crate::history)). With a backplane, the backplane keeps it for
    /// every node; building with one that cannot fails with [`ConfigError::HistoryUnsupported`].
    #[must_use]
    pub fn history(mut self, history: crate::history::History) -> Self {
        self.history = Some(history);
        self
    }

    /// Declares the protocol's version (its message sets), so a client built for another one is told at
    /// once with `$error` `protocol_mismatch`, or closed with 3409 (see [`version`](crate::version)).
    #[must_use]
    pub fn protocol_version(mut self, version: crate::version::ProtocolVersion) -> Self {
        self.protocol = Some(version);
        self
    }

    /// Builds the server.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the configuration cannot work (see [`Config::validate`]).
    pub fn build(self) -> Result<Server, ConfigError> {
        self.config.validate()?;
        let clients = Arc::new(ClientRegistry::default());
        let groups = Arc::new(GroupRegistry::new(
            self.config.max_groups_per_client,
            self.config.max_group_name_bytes,
        ));
        let metrics = Metrics::default();
        let policy = Arc::new(Policy {
            revocations: Revocations::new(self.config.max_revoked_users),
            authorize: self.authorize_join,
        });
        let local = MemoryBackplane::new(clients.clone(), groups, metrics.fanout.clone(), policy);
        let distributed = self.backplane.is_some();
        let stats = Arc::new(Stats::default());
        let streams = Streams::new(&self.config, stats.clone());
        let features = features(
            self.history.is_some(),
            self.presence,
            self.protocol.as_ref(),
            &streams,
        );
        let backplane: Box<dyn Backplane> = match (self.backplane, self.history) {
            (Some(factory), history) => {
                let backplane = factory(local.clone());
                if history.is_some_and(|history| !backplane.keep_history(&history)) {
                    return Err(ConfigError::HistoryUnsupported);
                }
                backplane
            }
            (None, Some(history)) => Box::new(LocalHistory::new(local.clone(), history)),
            (None, None) => Box::new(local.clone()),
        };
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(self.config.read_buffer_size)
            .write_buffer_size(self.config.write_buffer_size)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.config.max_message_size))
            .max_frame_size(Some(self.config.max_message_size));
        let app = App {
            ws_config,
            routes: self
                .routes
                .into_iter()
                .map(|(kind, endpoint)| {
                    let duration = metrics.handler_duration(&kind);
                    let stream = self.streams.contains(&kind);
                    (
                        kind,
                        Route {
                            endpoint,
                            duration,
                            stream,
                        },
                    )
                })
                .collect(),
            middleware: self.middleware.into(),
            hooks: self.hooks,
            auth: self.auth,
            raw: self.raw,
            states: self.states,
            features,
        };
        let node = Node {
            config: self.config,
            clients,
            backplane,
            local,
            distributed,
            stats,
            state: watch::Sender::new(RunState::Running),
            streams,
        };
        let admission = Admission::new(
            node.config.max_connections,
            node.config.max_connections_per_ip,
            node.config.max_handshakes,
        );
        let node = Arc::new(node);
        if node.distributed {
            link_streams(&node);
        }
        let inner = Inner {
            node,
            app,
            metrics,
            admission: Arc::new(admission),
        };
        Ok(Server::from_inner(Arc::new(inner)))
    }
}

/// Lets readers resume, through any node, the streams this node runs, and this node's readers the streams
/// of others: frames to a client elsewhere and orders go through the backplane.
fn link_streams(node: &Arc<Node>) {
    let sending = Arc::downgrade(node);
    let ordering = Arc::downgrade(node);
    node.streams.link(crate::stream::Links {
        send: Arc::new(move |client, frame| {
            sending
                .upgrade()
                .is_some_and(|node| node.backplane.send_to_client(client, frame).is_ok())
        }),
        order: Arc::new(move |order| {
            if let Some(node) = ordering.upgrade() {
                node.backplane.stream_order_elsewhere(order);
            }
        }),
    });
    let streams = Arc::downgrade(&node.streams);
    node.local.on_stream_order(Arc::new(move |order| {
        if let Some(streams) = streams.upgrade() {
            streams.order(order);
        }
    }));
}

/// The features that are on, as the connections see them: history's frames (answered whether history is
/// on or not), presence's registration hook, and the protocol version's greeting.
fn features(
    keeps_history: bool,
    presence: Option<crate::presence::Presence>,
    protocol: Option<&crate::version::ProtocolVersion>,
    streams: &Arc<Streams>,
) -> Features {
    let mut features = Features::default();
    features
        .system_frames
        .extend(crate::history::requests::system_frames(keeps_history));
    features
        .system_frames
        .extend(crate::stream::requests::system_frames(streams.clone()));
    if let Some(presence) = presence {
        let hub = Arc::new(crate::presence::PresenceHub::new(presence));
        let registered: RegisterHook = Arc::new(move |client| hub.client_registered(client));
        features.on_register.push(registered);
    }
    if let Some(protocol) = protocol.map(crate::version::ServerProtocol::new) {
        features
            .on_greet
            .push(Arc::new(move |client, uri| protocol.greet(client, uri)));
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "reserved")]
    fn reserved_type_panics() {
        let _ =
            ServerBuilder::new(Config::default()).on("$reply", |_: Client, _: Message| async {});
    }

    #[test]
    fn invalid_config_is_rejected_at_build() {
        let config = Config {
            message_burst_size: 0,
            ..Config::default()
        };
        assert_eq!(
            ServerBuilder::new(config).build().unwrap_err(),
            ConfigError::BurstTooSmall
        );
    }
}
