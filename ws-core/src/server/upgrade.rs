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
//! | the authenticator's expiry has passed, or its user is revoked (see [`session`](crate::session)) | 401 |
//! | authenticator's metadata larger than `max_metadata_bytes` | 500 |
//! | `max_connections_per_ip` reached for the peer's address | 429 |
//! | `max_connections` reached, or the server is stopping | 503 |
//!
//! In front of those, [`Server::serve_app`] bounds the TCP connections that are not WebSocket clients
//! (`max_handshakes`): past it a new connection is answered 503 and closed before its request is read.
//!
//! # Refusals a browser can read
//!
//! A browser's `WebSocket` never shows a refused handshake's status or body: the page only sees close
//! 1006, the same as a lost network, and cannot tell "your token is wrong" from "the server is down". A
//! well-formed upgrade whose query says `ws_refusal=close` (the SDK sends it) is therefore refused after
//! the upgrade instead: `101`, then at once a close frame with code 3000 + the status (3400, 3401, 3403,
//! 3429, 3500, 3503, ...) and the refusal's text as the reason (cut to the 123 bytes a close frame holds).
//! Nothing reaches the application: no client is registered and no slot is taken. The close goes out
//! within a place of `max_handshakes`; without a free place the refusal is the plain HTTP status. The
//! first two rows (not a WebSocket upgrade, a bad key) are always plain HTTP: there is nothing to upgrade.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Server;
use axum::http::request::Parts;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::admission::{Handshake, NoSlot, Slot};
use crate::auth::{AuthRequest, ClientData, host_allowed, origin_allowed};
use crate::close::CloseCode;
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
        let (mut req, _body) = req.into_parts();
        let in_band = refusal_in_band(&req.uri);
        let accept_key = match websocket_key(&req.headers) {
            Ok(key) => key,
            Err(refusal) => return refusal.answer(self),
        };
        let Some(on_upgrade) = req.extensions.remove::<OnUpgrade>() else {
            return Refusal::NoUpgrade.answer(self);
        };
        match admit(self, req, on_upgrade).await {
            Ok(compression) => switching(accept_key, compression),
            Err((refusal, on_upgrade)) if in_band => match Handshake::begin(self.admission()) {
                Some(place) => {
                    refusal
                        .close_after_upgrade(self, accept_key, on_upgrade, place)
                        .await
                }
                None => refusal.answer(self),
            },
            Err((refusal, _)) => refusal.answer(self),
        }
    }
}

/// Whether the query asks for refusals as close frames (`ws_refusal=close`).
fn refusal_in_band(uri: &Uri) -> bool {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(name, value)| name == "ws_refusal" && value == "close")
}

/// `101 Switching Protocols`, with the compression agreed on.
fn switching(
    accept_key: String,
    compression: Option<compression::negotiate::Negotiated>,
) -> Response {
    let mut switching = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key);
    if let Some(compression) = compression {
        switching = switching.header(header::SEC_WEBSOCKET_EXTENSIONS, compression.response());
    }
    switching.body(Body::empty()).unwrap_or_default()
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
    /// The authenticator's expiry has passed already.
    Expired,
    /// The authenticator's user is revoked, and the credential was issued before the revocation.
    Revoked,
    MetadataTooLarge,
    Full,
    PerIp,
    NoUpgrade,
}

impl Refusal {
    /// Upgrades, then closes with 3000 + the status and the refusal's text (see the module docs).
    async fn close_after_upgrade(
        self,
        inner: &Server,
        accept_key: String,
        on_upgrade: OnUpgrade,
        place: Handshake,
    ) -> Response {
        let answer = self.answer(inner);
        let status = answer.status().as_u16();
        let Ok(code) = CloseCode::try_from(3000 + status) else {
            return answer;
        };
        let text = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap_or_default();
        let reason = close_reason(&String::from_utf8_lossy(&text));
        let timeout = inner.node().config.handshake_timeout;
        tokio::spawn(async move {
            let _place = place;
            let close = async {
                let io = TokioIo::new(on_upgrade.await.ok()?);
                let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                let frame = CloseFrame {
                    code: u16::from(code).into(),
                    reason: reason.into(),
                };
                ws.close(Some(frame)).await.ok()?;
                // The peer's close answers ours; closing before it arrives could reset the connection
                // with our frame unread.
                while let Some(Ok(_)) = ws.next().await {}
                Some(())
            };
            let _ = tokio::time::timeout(timeout, close).await;
        });
        switching(accept_key, None)
    }

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
            Self::Expired => (StatusCode::UNAUTHORIZED, "token expired"),
            Self::Revoked => (StatusCode::UNAUTHORIZED, "token revoked"),
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

/// A close frame's reason: `text`'s first line, cut at a character boundary to the 123 bytes a close
/// frame holds.
fn close_reason(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut end = line.len().min(123);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

/// Every gate after the key, in order; the client is registered before its `101` goes out. A refusal
/// hands back the upgrade, for a refusal after it.
async fn admit(
    inner: &Server,
    req: Parts,
    on_upgrade: OnUpgrade,
) -> Result<Option<compression::negotiate::Negotiated>, (Refusal, OnUpgrade)> {
    match gates(inner, &req).await {
        Ok((data, slot)) => {
            let compression =
                compression::negotiate::negotiate(&inner.node().config.compression, &req.headers);
            let peer = peer(&req);
            let registered = connection::register(inner.clone(), data, peer, compression);
            for greet in &inner.app().features.on_greet {
                greet(registered.client().member(), &req.uri);
            }
            tokio::spawn(registered.run_upgraded(on_upgrade, slot));
            Ok(compression)
        }
        Err(refusal) => Err((refusal, on_upgrade)),
    }
}

fn peer(req: &Parts) -> Option<SocketAddr> {
    req.extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// The gates from a running server to a free slot: what the client is, and its place.
async fn gates(inner: &Server, req: &Parts) -> Result<(ClientData, Slot), Refusal> {
    if !inner.node().is_running() {
        return Err(Refusal::ShuttingDown);
    }
    host_and_origin(inner, &req.headers)?;
    let peer = peer(req);
    let data = authenticate(inner, &req.uri, &req.headers, peer).await?;
    if data
        .expiry()
        .is_some_and(|at| at <= std::time::SystemTime::now())
    {
        return Err(Refusal::Expired);
    }
    if let Some(user) = data.user_name()
        && inner.node().local.revoked(user, data.issued())
    {
        return Err(Refusal::Revoked);
    }
    if data.metadata_bytes() > inner.node().config.max_metadata_bytes {
        tracing::warn!(target: "ws_core::serve", "the authenticator's metadata exceeds max_metadata_bytes");
        return Err(Refusal::MetadataTooLarge);
    }
    let slot = Slot::reserve(inner.admission(), peer.map(|p| p.ip())).map_err(|no| match no {
        NoSlot::Full => Refusal::Full,
        NoSlot::PerIp => Refusal::PerIp,
    })?;
    Ok((data, slot))
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
