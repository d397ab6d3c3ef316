//! HTTP side: the upgrade handler, the gates in front of it, and the standalone accept loop.
//!
//! Every refusal happens before `101 Switching Protocols`, as a plain HTTP status, and none of them takes a
//! client slot:
//!
//! | situation | status |
//! |---|---|
//! | no `Upgrade: websocket` / `Connection: upgrade`, or a WebSocket version other than 13 | 426 |
//! | missing or malformed `Sec-WebSocket-Key` (not 16 bytes in base64) | 400 |
//! | `Origin` not allowed | 403 |
//! | authenticator returned an error | the error's response: for an [`Error`](crate::Error), 401, or 403 for `forbidden`, 429 for `rate_limited` (see its `IntoResponse`) |
//! | `max_connections` reached, or the server is stopping | 503 |

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Inner, RunState, Server};
use crate::auth::{AuthRequest, ClientData, origin_allowed};
use crate::connection;
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

/// A slot in `max_connections`, released when dropped.
pub(crate) struct Slot(Arc<Inner>);

impl Slot {
    fn reserve(inner: &Arc<Inner>) -> Option<Self> {
        let max = inner.config.max_connections;
        let reserved = inner.connections.send_if_modified(|n| {
            let free = max == 0 || *n < max;
            if free {
                *n += 1;
            }
            free
        });
        reserved.then(|| Self(inner.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.send_modify(|n| *n -= 1);
    }
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
        if !origin_allowed(&inner.config.allowed_origins, headers) {
            return refuse(inner, StatusCode::FORBIDDEN, "origin not allowed");
        }
        let data = match &inner.auth {
            Some(auth) => match auth(AuthRequest::new(req.uri().clone(), headers.clone())).await {
                Ok(data) => data,
                Err(refusal) => {
                    bump(&inner.stats.rejected_connections);
                    tracing::trace!(target: "ws_core::rejection", status = %refusal.status(), "upgrade refused by the authenticator");
                    return refusal;
                }
            },
            None => ClientData::new(),
        };
        let Some(slot) = Slot::reserve(inner) else {
            return refuse(
                inner,
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections",
            );
        };
        let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
            return refuse(
                inner,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the HTTP server does not support upgrades",
            );
        };
        let server = inner.clone();
        tokio::spawn(async move {
            let upgraded = tokio::time::timeout(server.config.handshake_timeout, on_upgrade).await;
            let Ok(Ok(upgraded)) = upgraded else {
                return;
            };
            let io = CountingIo::new(upgraded, server.clone());
            let ws =
                WebSocketStream::from_raw_socket(io, Role::Server, Some(server.ws_config)).await;
            connection::run(server, ws, data, slot).await;
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
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    tracing::warn!(target: "ws_core::serve", error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            limit_unsent(&tcp, inner.config.socket_unsent_bytes);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let http = http.clone();
            let mut stop = inner.state.subscribe();
            tokio::spawn(async move {
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

/// The upgraded socket, counting the bytes that really cross it.
///
/// Behind [`Server::serve_app`] the socket is the accepted `TcpStream` itself, taken back from hyper, so
/// an abandoned connection can be reset (see [`CountingIo::reset_on_close`]); behind another HTTP server it
/// is hyper's `Upgraded`, whatever that wraps.
pub(crate) struct CountingIo {
    io: UpgradedIo,
    server: Arc<Inner>,
}

enum UpgradedIo {
    /// The TCP socket, and what hyper had read past the HTTP request (the first frames, if the client sent
    /// them at once), to be read first.
    Tcp(TcpStream, bytes::Bytes),
    Other(TokioIo<hyper::upgrade::Upgraded>),
}

impl CountingIo {
    fn new(upgraded: hyper::upgrade::Upgraded, server: Arc<Inner>) -> Self {
        let io = match upgraded.downcast::<TokioIo<TcpStream>>() {
            // An empty slice of hyper's read buffer would still keep the whole buffer alive.
            Ok(parts) if parts.read_buf.is_empty() => {
                UpgradedIo::Tcp(parts.io.into_inner(), bytes::Bytes::new())
            }
            Ok(parts) => UpgradedIo::Tcp(parts.io.into_inner(), parts.read_buf),
            Err(upgraded) => UpgradedIo::Other(TokioIo::new(upgraded)),
        };
        Self { io, server }
    }

    /// Makes closing the socket send a reset instead of a FIN behind unsent data: for a connection given
    /// up on, whose peer does not read, the kernel would otherwise keep its whole send buffer (up to
    /// megabytes) until the FIN gets through.
    pub(crate) fn reset_on_close(&self) {
        if let UpgradedIo::Tcp(tcp, _) = &self.io {
            let _ = tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = match &mut self.io {
            UpgradedIo::Tcp(_, pending) if !pending.is_empty() => {
                let n = pending.len().min(buf.remaining());
                buf.put_slice(&pending.split_to(n));
                if pending.is_empty() {
                    *pending = bytes::Bytes::new();
                }
                Poll::Ready(Ok(()))
            }
            UpgradedIo::Tcp(tcp, _) => Pin::new(tcp).poll_read(cx, buf),
            UpgradedIo::Other(io) => Pin::new(io).poll_read(cx, buf),
        };
        let read = buf.filled().len() - before;
        if read > 0 {
            self.server
                .stats
                .bytes_received
                .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = match &mut self.io {
            UpgradedIo::Tcp(tcp, _) => Pin::new(tcp).poll_write(cx, buf),
            UpgradedIo::Other(io) => Pin::new(io).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = polled {
            self.server
                .stats
                .bytes_sent
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            UpgradedIo::Tcp(tcp, _) => Pin::new(tcp).poll_flush(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            UpgradedIo::Tcp(tcp, _) => Pin::new(tcp).poll_shutdown(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
