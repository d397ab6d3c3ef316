//! One connection's life: register → on_connect → read and write until the end → on_disconnect → leave all
//! groups → unregister.
//!
//! Two tasks serve a connection. The read task decodes and rate-limits frames, answers at once what needs
//! no handler, and runs the client's handlers one at a time, in arrival order, while it goes on reading
//! (the [pipeline]); the `on_connect` hooks run there first. The write task owns the socket's write half:
//! it drains the client's send queue, every queued frame in one vectored write ([`outgoing`]), writes the
//! protocol layer's own answers (pongs, the reply to a close) between frames, and sends pings. Neither
//! holds a lock shared with other clients while it touches the socket. The `on_disconnect` hooks run once
//! both tasks are done.
//!
//! A connection given up on (a slow consumer that cannot take its 1008 close frame, a write blocked past
//! `write_timeout`, a missing pong, the shutdown deadline) is reset rather than closed: a FIN would wait
//! behind megabytes of unsent data in the kernel for a peer that does not read, holding them.
//!
//! When the client closes, handlers of the frames it sent before its close still run, in order, for at
//! most `close_timeout`; frames that arrive after either side started closing are discarded.
//!
//! Closing is a handshake: after a close frame is sent, input is still read (and discarded) until the
//! peer's close frame or the end of the stream, within `close_timeout`. Closing a socket with unread input
//! makes the kernel answer with a reset, and the peer would lose the close frame and its code. When the
//! stream cannot be parsed any more (a protocol error, an oversized frame), the remaining bytes are read
//! raw until the peer goes quiet.
//!
//! Each connection's tasks run in a `ws.connection` span (`client_id`, `remote` when the peer address is
//! known, `user` when the authenticator named one with `ClientData::span_user`), and each handled message
//! in a `ws.message` span (`type`, `id`) inside it; closes are events with their `code`.

mod dispatch;
mod io;
mod outgoing;
mod pipeline;
mod reader;
mod writer;

#[cfg(any(feature = "bench-internals", feature = "fuzzing"))]
pub(crate) use self::dispatch::{answer_call, route};

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use hyper::upgrade::OnUpgrade;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::Instrument;

pub(crate) use self::io::{CountingIo, Ws};
pub(crate) use self::outgoing::SocketWriter;
use self::pipeline::bounded_hook;
use self::pipeline::handler_panicked;
use crate::admission::Slot;
use crate::auth::ClientData;
use crate::client::Client;
use crate::close;
use crate::compression::negotiate::Negotiated;
use crate::member::Abort;
use crate::server::Server;

/// How long the raw drain waits for more input before it considers the peer done.
const DRAIN_IDLE: Duration = Duration::from_millis(250);

/// A client registered before its socket exists: the handshake's answer (101) goes out after this, so a
/// client that has its 101 is reachable by every send made from then on (what is sent before the socket is
/// up waits in its queue).
pub(crate) struct Registered {
    server: Server,
    client: Client,
    span: tracing::Span,
    compression: Option<Negotiated>,
}

/// Registers a client for a handshake about to be accepted.
pub(crate) fn register(
    server: Server,
    data: ClientData,
    peer: Option<std::net::SocketAddr>,
    compression: Option<Negotiated>,
) -> Registered {
    let member = server.node().add_member(compression);
    let client = Client::new(member, server.clone());
    let refreshes = server
        .app()
        .routes
        .contains_key(crate::session::REFRESH_TYPE);
    let user = data.apply(client.member(), refreshes);
    // The expiry comes first, so the client can plan its refresh before anything else arrives.
    if let Some(left) = client.member().session().and_then(|s| s.expires_in()) {
        let _ = client.member().send(crate::session::session_frame(left));
    }
    // The features that follow each client (presence), before the backplane announces it.
    for feature in &server.app().features.on_register {
        feature(&client);
    }
    let span = tracing::info_span!(
        target: "ws_core::connection",
        "ws.connection",
        client_id = %client.id(),
        remote = tracing::field::Empty,
        user = tracing::field::Empty,
    );
    if let Some(peer) = peer {
        span.record("remote", tracing::field::display(peer));
    }
    if let Some(user) = user {
        span.record("user", user);
    }
    span.in_scope(|| tracing::debug!(target: "ws_core::connection", "connected"));
    server.node().backplane.client_connected(client.member());
    // `stop` closes the clients it finds; one registered after that finds the flag instead.
    if !server.node().is_running() {
        client.close(close::GOING_AWAY, "server shutting down");
    }
    Registered {
        server,
        client,
        span,
        compression,
    }
}

impl Registered {
    /// The client registered.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Waits for the upgrade to complete (within `handshake_timeout`), wraps the upgraded stream in the
    /// connection's socket, and serves it; abandons the client when the upgrade never completes.
    pub(crate) async fn run_upgraded(self, on_upgrade: OnUpgrade, slot: Slot) {
        let timeout = self.server.node().config.handshake_timeout;
        let Ok(Ok(upgraded)) = tokio::time::timeout(timeout, on_upgrade).await else {
            self.abandon();
            return;
        };
        let (io, writer) =
            CountingIo::new(upgraded, self.server.node(), self.compression.is_some());
        let config = Some(self.server.app().ws_config);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, config).await;
        self.run(ws, writer, slot).await;
    }

    /// Starts the write task on the socket's write half and returns the rest of the connection's life (the
    /// read side's) as a future.
    ///
    /// The work up to the write task's start is done here, outside the returned future: an `async fn`
    /// keeps its arguments for its whole life, so taking the socket as an argument would keep that space
    /// in every idle connection's task.
    pub(crate) fn run(
        self,
        ws: Ws,
        mut writer: SocketWriter,
        slot: Slot,
    ) -> impl Future<Output = ()> + Send {
        let Self {
            server,
            client,
            span,
            ..
        } = self;
        writer.report_writes_to(client.member().clone());
        let continuations = ws.get_ref().continuations();
        let writer = tokio::spawn(writer::run(writer, client.clone()).instrument(span.clone()));
        serve(server, client, ws, continuations, writer, slot).instrument(span)
    }

    /// The upgrade never completed (the peer left, or took longer than `handshake_timeout`): the client
    /// leaves as if disconnected, without hooks, since its `on_connect` never ran.
    pub(crate) fn abandon(self) {
        let Self {
            server,
            client,
            span,
            ..
        } = self;
        client.member().mark_gone();
        client.member().drop_pending();
        server.node().remove_member(client.id());
        span.in_scope(|| tracing::debug!(target: "ws_core::connection", "upgrade not completed"));
    }
}

async fn serve(
    server: Server,
    client: Client,
    mut stream: Ws,
    continuations: io::FrameCounter,
    writer: JoinHandle<writer::Ended>,
    slot: Slot,
) {
    let end = reader::run(&mut stream, &client, &continuations).await;
    if end == reader::ReadEnd::Closed {
        client.member().abort(Abort::Finished);
    }
    let ended = writer.await;
    client.member().queue().close();
    if let Ok(ended) = ended {
        if ended.reset {
            ended.writer.reset_on_close();
        } else if end == reader::ReadEnd::Failed {
            // Boxed: rare, and its state would otherwise enlarge every connection's task.
            Box::pin(drain_raw(&mut stream, server.node().config.close_timeout)).await;
        }
        ended.writer.release();
    }
    drop(stream);

    client.member().mark_gone();
    client.member().drop_pending();
    for hook in &server.app().hooks.on_disconnect {
        guarded(
            &server,
            &client,
            bounded_hook(&client, hook(client.clone())),
        )
        .await;
    }
    server.node().remove_member(client.id());
    tracing::debug!(target: "ws_core::connection", ?end, "disconnected");
    drop(slot);
}

/// Runs a hook; a panic closes the client with 1011 and reaches `on_error`, like a handler panic.
async fn guarded(server: &Server, client: &Client, hook: crate::handler::BoxFuture<()>) {
    if let Err(panic) = AssertUnwindSafe(hook).catch_unwind().await {
        handler_panicked(server, client, &*panic);
        client.close(close::INTERNAL_ERROR, "internal error");
    }
}

/// Reads and discards raw bytes until the peer closes, goes quiet, or `limit` passes.
async fn drain_raw(ws: &mut Ws, limit: Duration) {
    let io: &mut CountingIo = ws.get_mut();
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let until = deadline.min(Instant::now() + DRAIN_IDLE);
        match tokio::time::timeout_at(until, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}
