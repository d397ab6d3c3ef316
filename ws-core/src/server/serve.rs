//! HTTP side: the upgrade handler, the gates in front of it, and the standalone accept loop.
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

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Inner, RunState, Server};
use crate::auth::{AuthRequest, ClientData, host_allowed, origin_allowed};
use crate::connection::{self, CountingIo};
use crate::stats::bump;

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

fn refuse(inner: &Inner, status: StatusCode, reason: &str) -> Response {
    bump(&inner.stats.rejected_connections);
    tracing::trace!(target: "ws_core::rejection", %status, reason, "upgrade refused");
    (status, reason.to_owned()).into_response()
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A slot in `max_connections` (and in `max_connections_per_ip` for its address), released when dropped.
pub(crate) struct Slot {
    inner: Arc<Inner>,
    ip: Option<IpAddr>,
}

/// Why no [`Slot`] was given.
pub(crate) enum NoSlot {
    Full,
    PerIp,
}

impl Slot {
    pub(crate) fn reserve(inner: &Arc<Inner>, peer: Option<IpAddr>) -> Result<Self, NoSlot> {
        let max = inner.config.max_connections;
        let reserved = inner.connections.send_if_modified(|n| {
            let free = max == 0 || *n < max;
            if free {
                *n += 1;
            }
            free
        });
        if !reserved {
            return Err(NoSlot::Full);
        }
        // Built before the per-address check, so a refusal there gives the global slot back on drop.
        let mut slot = Self {
            inner: inner.clone(),
            ip: None,
        };
        let per_ip = inner.config.max_connections_per_ip;
        if let Some(ip) = peer.filter(|_| per_ip > 0) {
            let mut counts = crate::sync::lock(&inner.connections_per_ip);
            let count = counts.entry(ip).or_insert(0);
            if *count >= per_ip {
                return Err(NoSlot::PerIp);
            }
            *count += 1;
            slot.ip = Some(ip);
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut counts = crate::sync::lock(&self.inner.connections_per_ip);
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
        self.inner.connections.send_modify(|n| *n -= 1);
    }
}

/// One accepted TCP connection that is not a WebSocket client (yet), counted in `max_handshakes`.
struct Handshake(Arc<Inner>);

impl Handshake {
    fn begin(inner: &Arc<Inner>) -> Option<Self> {
        let max = inner.config.max_handshakes;
        let admitted = inner
            .handshakes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Self(inner.clone()))
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection past `max_handshakes` without parsing its request, and closes it. What the client
/// sent is read and discarded until it closes too (for at most a second): closing with unread input
/// would reset the connection, and the client could lose the answer.
async fn refuse_handshake(mut tcp: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
        Content-Length: 21\r\nConnection: close\r\n\r\ntoo many handshakes\r\n";
    let answer = async {
        tcp.write_all(BUSY).await?;
        tcp.shutdown().await?;
        let mut discard = [0u8; 1024];
        while tcp.read(&mut discard).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), answer).await;
}

impl Server {
    /// Upgrades one HTTP request to a WebSocket client, or refuses it with an HTTP status (see the module
    /// table). [`handle_connection`] calls this; call it yourself from a handler with other extractors.
    pub async fn upgrade(&self, mut req: Request) -> Response {
        let inner = self.inner();
        if !inner.is_running() {
            return refuse(
                inner,
                StatusCode::SERVICE_UNAVAILABLE,
                "server is shutting down",
            );
        }
        let headers = req.headers();
        let version_ok = headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
        if !has_token(headers, header::UPGRADE, "websocket")
            || !has_token(headers, header::CONNECTION, "upgrade")
            || !version_ok
        {
            let mut resp = refuse(
                inner,
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket only",
            );
            let h = resp.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return resp;
        }
        let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
            Some(key) if is_websocket_key(key.as_bytes()) => derive_accept_key(key.as_bytes()),
            _ => {
                return refuse(
                    inner,
                    StatusCode::BAD_REQUEST,
                    "missing or malformed Sec-WebSocket-Key",
                );
            }
        };
        if !host_allowed(&inner.config.allowed_hosts, headers) {
            return refuse(inner, StatusCode::FORBIDDEN, "host not allowed");
        }
        if !origin_allowed(&inner.config.allowed_origins, headers) {
            return refuse(inner, StatusCode::FORBIDDEN, "origin not allowed");
        }
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let data = match &inner.auth {
            Some(auth) => {
                let request = AuthRequest::new(req.uri().clone(), headers.clone(), peer);
                match tokio::time::timeout(inner.config.handshake_timeout, auth(request)).await {
                    Ok(Ok(data)) => data,
                    Ok(Err(refusal)) => {
                        bump(&inner.stats.rejected_connections);
                        tracing::trace!(target: "ws_core::rejection", status = %refusal.status(), "upgrade refused by the authenticator");
                        return refusal;
                    }
                    Err(_) => {
                        return refuse(
                            inner,
                            StatusCode::SERVICE_UNAVAILABLE,
                            "authentication timed out",
                        );
                    }
                }
            }
            None => ClientData::new(),
        };
        if data.metadata_bytes() > inner.config.max_metadata_bytes {
            tracing::warn!(target: "ws_core::serve", "the authenticator's metadata exceeds max_metadata_bytes");
            return refuse(
                inner,
                StatusCode::INTERNAL_SERVER_ERROR,
                "client metadata too large",
            );
        }
        let slot = match Slot::reserve(inner, peer.map(|p| p.ip())) {
            Ok(slot) => slot,
            Err(NoSlot::Full) => {
                return refuse(
                    inner,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections",
                );
            }
            Err(NoSlot::PerIp) => {
                return refuse(
                    inner,
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many connections from this address",
                );
            }
        };
        let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
            return refuse(
                inner,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the HTTP server does not support upgrades",
            );
        };
        let server = inner.clone();
        let registered = connection::register(server.clone(), data, peer);
        tokio::spawn(async move {
            let upgraded = tokio::time::timeout(server.config.handshake_timeout, on_upgrade).await;
            let Ok(Ok(upgraded)) = upgraded else {
                registered.abandon();
                return;
            };
            let io = CountingIo::new(upgraded, server.clone());
            let ws =
                WebSocketStream::from_raw_socket(io, Role::Server, Some(server.ws_config)).await;
            registered.run(ws, slot).await;
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, key)
            .body(Body::empty())
            .unwrap_or_default()
    }

    /// An axum `Router` with the WebSocket endpoint at `config.path`; merge it into a larger app.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(
                &self.inner().config.path,
                axum::routing::get(handle_connection),
            )
            .with_state(self.clone())
    }

    /// Binds `config.host:config.port` and serves [`Server::router`] until [`Server::stop`] completes.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn serve(&self) -> io::Result<()> {
        let config = self.config();
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        self.serve_app(listener, self.router()).await
    }

    /// Serves any axum app (which should include [`Server::router`] or [`handle_connection`]) on a bound
    /// listener, until [`Server::stop`] completes.
    ///
    /// Accepted sockets get `TCP_NODELAY` (small frames leave at once instead of waiting up to 40 ms for
    /// Nagle's algorithm), and a request head must arrive within `handshake_timeout`. On stop, HTTP
    /// connections finish their current request and close.
    ///
    /// # Errors
    ///
    /// This returns `Ok` once stopped; accept errors (such as running out of file descriptors) are logged
    /// and retried, not returned.
    pub async fn serve_app(&self, listener: TcpListener, app: axum::Router) -> io::Result<()> {
        let inner = self.inner().clone();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(inner.config.handshake_timeout);
        let http = Arc::new(http);
        let mut state = inner.state.subscribe();
        loop {
            let accepted = tokio::select! {
                () = wait_for_state(&mut state, |s| s == RunState::Stopped) => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(target: "ws_core::serve", error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(handshake) = Handshake::begin(&inner) else {
                bump(&inner.stats.rejected_connections);
                tokio::spawn(refuse_handshake(tcp));
                continue;
            };
            limit_unsent(&tcp, inner.config.socket_unsent_bytes);
            let app = app.clone();
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
            let http = http.clone();
            let mut stop = inner.state.subscribe();
            tokio::spawn(async move {
                // Held until hyper lets go of the connection: closed, or handed over as a WebSocket.
                let _handshake = handshake;
                let conn = http
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = wait_for_state(&mut stop, |s| s != RunState::Running) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
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

/// Sets `TCP_NOTSENT_LOWAT` (see [`Config::socket_unsent_bytes`](crate::Config::socket_unsent_bytes)).
fn limit_unsent(tcp: &TcpStream, bytes: usize) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if bytes > 0 {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let _ = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(bytes);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, bytes);
}

async fn wait_for_state(
    state: &mut tokio::sync::watch::Receiver<RunState>,
    until: impl Fn(RunState) -> bool,
) {
    let _ = state.wait_for(|s| until(*s)).await;
}
