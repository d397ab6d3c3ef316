//! The upgrade: the handler that turns an HTTP request into a WebSocket client, one gate at a time.
//!
//! Every refusal happens before `101 Switching Protocols`, as a plain HTTP status, and none of them takes a
//! client slot:
//!
//! | situation | status |
//! |---|---|
//! | no `Upgrade: websocket` / `Connection: upgrade`, or a WebSocket version other than 13 | 426 |
//! | missing or malformed `Sec-WebSocket-Key` (not 16 bytes in base64) | 400 |
//! | `Host` not in `allowed_hosts` (when set) | 403 |
//! | `Origin` not allowed | 403 |
//! | authenticator returned an error | the error's response: for an [`Error`](crate::Error), 401, or 403 for `forbidden`, 429 for `rate_limited` (see its `IntoResponse`) |
//! | authenticator still running after `handshake_timeout` | 503 |
//! | authenticator's metadata larger than `max_metadata_bytes` | 500 |
//! | `max_connections_per_ip` reached for the peer's address | 429 |
//! | `max_connections` reached, or the server is stopping | 503 |
//!
//! In front of those, [`Server::serve_app`] bounds the TCP connections that are not WebSocket clients
//! (`max_handshakes`): past it a new connection is answered 503 and closed before its request is read.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Server;
use crate::admission::{NoSlot, Slot};
use crate::auth::{AuthRequest, ClientData, host_allowed, origin_allowed};
use crate::stats::bump;
use crate::{compression, connection};

/// The axum handler that upgrades a request to a WebSocket client of the [`Server`] in the router's state.
///
/// Mount it on any route; the state only needs to provide a `Server` (`Server: FromRef<S>`).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use ws_core::{Config, Server, handle_connection};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder(Config::default()).build()?;
/// let app = Router::new().route("/realtime", get(handle_connection)).with_state(server.clone());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// server.serve_app(listener, app).await?;
/// # Ok(()) }
/// ```
pub async fn handle_connection(State(server): State<Server>, req: Request) -> Response {
    server.upgrade(req).await
}

impl Server {
    /// Upgrades one HTTP request to a WebSocket client, or refuses it with an HTTP status (see the module
    /// table). [`handle_connection`] calls this; call it yourself from a handler with other extractors.
    pub async fn upgrade(&self, req: Request) -> Response {
        let inner = self;
        match admit(inner, req).await {
            Ok(switching) => switching,
            Err(refusal) => refusal.answer(inner),
        }
    }
}

/// Why an upgrade was refused: one per gate, each answered with its HTTP status (the module table).
enum Refusal {
    ShuttingDown,
    NotWebSocket,
    BadKey,
    Host,
    Origin,
    /// The authenticator's own answer.
    Authenticator(Box<Response>),
    AuthTimeout,
    MetadataTooLarge,
    Full,
    PerIp,
    NoUpgrade,
}

impl Refusal {
    /// The HTTP answer, counted in `rejected_connections`.
    fn answer(self, inner: &Server) -> Response {
        bump(&inner.node().stats.rejected_connections);
        let (status, reason) = match self {
            Self::Authenticator(response) => {
                tracing::trace!(target: "ws_core::rejection", status = %response.status(), "upgrade refused by the authenticator");
                return *response;
            }
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down"),
            Self::NotWebSocket => (
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket only",
            ),
            Self::BadKey => (
                StatusCode::BAD_REQUEST,
                "missing or malformed Sec-WebSocket-Key",
            ),
            Self::Host => (StatusCode::FORBIDDEN, "host not allowed"),
            Self::Origin => (StatusCode::FORBIDDEN, "origin not allowed"),
            Self::AuthTimeout => (StatusCode::SERVICE_UNAVAILABLE, "authentication timed out"),
            Self::MetadataTooLarge => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "client metadata too large",
            ),
            Self::Full => (StatusCode::SERVICE_UNAVAILABLE, "too many connections"),
            Self::PerIp => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address",
            ),
            Self::NoUpgrade => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the HTTP server does not support upgrades",
            ),
        };
        tracing::trace!(target: "ws_core::rejection", %status, reason, "upgrade refused");
        let mut response = (status, reason).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            let h = response.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Every gate in order; the client is registered before its `101` goes out.
async fn admit(inner: &Server, mut req: Request) -> Result<Response, Refusal> {
    if !inner.node().is_running() {
        return Err(Refusal::ShuttingDown);
    }
    let accept_key = websocket_key(req.headers())?;
    host_and_origin(inner, req.headers())?;
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let data = authenticate(inner, req.uri(), req.headers(), peer).await?;
    if data.metadata_bytes() > inner.node().config.max_metadata_bytes {
        tracing::warn!(target: "ws_core::serve", "the authenticator's metadata exceeds max_metadata_bytes");
        return Err(Refusal::MetadataTooLarge);
    }
    let slot = Slot::reserve(inner.admission(), peer.map(|p| p.ip())).map_err(|no| match no {
        NoSlot::Full => Refusal::Full,
        NoSlot::PerIp => Refusal::PerIp,
    })?;
    let on_upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(Refusal::NoUpgrade)?;
    let compression =
        compression::negotiate::negotiate(&inner.node().config.compression, req.headers());
    let registered = connection::register(inner.clone(), data, peer, compression);
    for greet in &inner.app().features.on_greet {
        greet(registered.client().member(), req.uri());
    }
    tokio::spawn(registered.run_upgraded(on_upgrade, slot));
    let mut switching = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key);
    if let Some(compression) = compression {
        switching = switching.header(header::SEC_WEBSOCKET_EXTENSIONS, compression.response());
    }
    Ok(switching.body(Body::empty()).unwrap_or_default())
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Sec-WebSocket-Accept` value of a well-formed WebSocket upgrade.
fn websocket_key(headers: &HeaderMap) -> Result<String, Refusal> {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
        || !version_ok
    {
        return Err(Refusal::NotWebSocket);
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_websocket_key(key.as_bytes()) => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(Refusal::BadKey),
    }
}

fn host_and_origin(inner: &Server, headers: &HeaderMap) -> Result<(), Refusal> {
    if !host_allowed(&inner.node().config.allowed_hosts, headers) {
        return Err(Refusal::Host);
    }
    if !origin_allowed(&inner.node().config.allowed_origins, headers) {
        return Err(Refusal::Origin);
    }
    Ok(())
}

/// What the authenticator gives the client, within `handshake_timeout`.
async fn authenticate(
    inner: &Server,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<ClientData, Refusal> {
    let Some(auth) = &inner.app().auth else {
        return Ok(ClientData::new());
    };
    let request = AuthRequest::new(uri.clone(), headers.clone(), peer);
    match tokio::time::timeout(inner.node().config.handshake_timeout, auth(request)).await {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(refusal)) => Err(Refusal::Authenticator(Box::new(refusal))),
        Err(_) => Err(Refusal::AuthTimeout),
    }
}

/// Whether `key` is what RFC 6455 requires of `Sec-WebSocket-Key`: 16 bytes in base64, 24 characters.
fn is_websocket_key(key: &[u8]) -> bool {
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    // 16 bytes fill 21 characters and 2 bits of the 22nd, whose other 4 bits are zero: A, Q, g or w.
    key.len() == 24
        && key[..21].iter().all(base64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}
