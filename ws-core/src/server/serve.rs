//! The standalone accept loop: [`Server::serve`] and [`Server::serve_app`], with `TCP_NODELAY`, a bounded
//! request head, `max_handshakes` for TCP connections that are not WebSocket clients yet, and graceful
//! shutdown.

use std::io;
use std::sync::Arc;

use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::upgrade::handle_connection;
use super::{RunState, Server};
use crate::admission::Handshake;
use crate::stats::bump;

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
    /// An axum `Router` with the WebSocket endpoint at `config.path`; merge it into a larger app.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(
                &self.node().config.path,
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
        let inner = self.clone();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(inner.node().config.handshake_timeout);
        let http = Arc::new(http);
        let mut state = inner.node().state.subscribe();
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
            let Some(handshake) = Handshake::begin(inner.admission()) else {
                bump(&inner.node().stats.rejected_connections);
                tokio::spawn(refuse_handshake(tcp));
                continue;
            };
            limit_unsent(&tcp, inner.node().config.socket_unsent_bytes);
            let app = app.clone();
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
            let http = http.clone();
            let mut stop = inner.node().state.subscribe();
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
