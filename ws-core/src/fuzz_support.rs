//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpus: each takes
//! bytes a client (or a peer node) chose and runs them through the real code. Not a stable API.
//!
//! The server behind [`dispatch`] and [`connection`](fn@connection) has typed handlers for integers of every width,
//! optional and nested fields, a tuple variant, a request and a unit variant, untyped handlers that join,
//! leave, broadcast and ask the client back, and small limits so the fuzzer reaches them. It runs on a
//! current-thread runtime with paused time, so timers (pings, timeouts, deadlines) pass at once.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::admission::Slot;
use crate::auth::ClientData;
use crate::client::Client;
use crate::connection::{self, CountingIo, answer_call, route};
use crate::protocol::{Envelope, Message};
use crate::server::Server;
use crate::{Error, on, ws_messages};

/// Messages of every shape the typed decoder handles.
#[ws_messages(crate = crate)]
pub enum FuzzInbound {
    /// Integers of every width, and a float.
    Numbers {
        /// u8
        a: u8,
        /// i16
        b: i16,
        /// u32
        c: u32,
        /// i64
        d: i64,
        /// u64
        e: u64,
        /// f64
        f: f64,
    },
    /// Optional, repeated and keyed fields.
    Shapes {
        /// A list.
        items: Vec<u16>,
        /// Maybe a list of strings.
        tags: Option<Vec<String>>,
        /// A map.
        scores: HashMap<String, i32>,
        /// A boolean.
        flag: bool,
    },
    /// A tuple variant.
    Count(u32),
    /// A request.
    #[ws(reply = u64)]
    Sum {
        /// Added up.
        values: Vec<u32>,
    },
    /// No payload.
    Tick,
}

#[on(FuzzInbound::Numbers, crate = crate)]
async fn numbers(msg: fuzz_inbound::Numbers) -> Result<(), Error> {
    if msg.f.is_nan() {
        return Err(Error::invalid_data("not a number").reported());
    }
    let _ = (msg.a, msg.b, msg.c, msg.d, msg.e);
    Ok(())
}

#[on(FuzzInbound::Shapes, crate = crate)]
async fn shapes(client: Client, msg: fuzz_inbound::Shapes) {
    for tag in msg.tags.unwrap_or_default().iter().take(4) {
        let _ = client.join(tag);
    }
    let _ = (msg.items.len(), msg.scores.len(), msg.flag);
}

#[on(FuzzInbound::Count, crate = crate)]
async fn count(msg: fuzz_inbound::Count) {
    let _ = msg.0;
}

#[on(FuzzInbound::Sum, crate = crate)]
async fn sum(msg: fuzz_inbound::Sum) -> u64 {
    msg.values.iter().map(|v| u64::from(*v)).sum()
}

#[on(FuzzInbound::Tick, crate = crate)]
async fn tick(client: Client) {
    let _ = client.set_metadata("ticks", 1);
}

/// The server the targets feed, with its runtime.
struct Target {
    runtime: Runtime,
    server: Server,
}

fn target() -> &'static Target {
    thread_local! {
        static TARGET: &'static Target = Box::leak(Box::new(build()));
    }
    TARGET.with(|t| *t)
}

fn build() -> Target {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let config = crate::Config::default()
        .max_message_size(64 * 1024)
        .max_groups_per_client(8)
        .max_group_name_bytes(64)
        .max_metadata_bytes(256)
        .inbound_queue_capacity(8)
        .inbound_queue_max_bytes(4096)
        .send_queue_max_bytes(16 * 1024)
        .max_pending_requests(2)
        .message_rate_limit(1000)
        .message_burst_size(64);
    let server = runtime.block_on(async {
        Server::builder(config)
            .handle(numbers)
            .handle(shapes)
            .handle(count)
            .handle(sum)
            .handle(tick)
            .on("join", |client: Client, msg: Message| async move {
                client.join(msg.data.as_str().unwrap_or_default())
            })
            .on("leave", |client: Client, msg: Message| async move {
                client.leave(msg.data.as_str().unwrap_or_default());
            })
            .on("everyone", |client: Client, msg: Message| async move {
                client.server().all().send(&msg);
            })
            .on("ask_back", |client: Client, msg: Message| async move {
                client
                    .request_json("question", &msg.data, Duration::from_secs(1))
                    .await
                    .map(|_| ())
            })
            .build()
            .expect("a valid config")
    });
    Target { runtime, server }
}

/// Parses `data` as the read task parses a text frame.
pub fn envelope(data: &[u8]) {
    let Ok(text) = Utf8Bytes::try_from(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Some(envelope) = Envelope::from_frame(text) {
        let _ = (envelope.data_json(), envelope.id);
    }
}

/// Handles `data` as a text frame of one client: parse, route, the typed decoder, the handler, the
/// answer; then empties the client's queue and lets it go.
pub fn dispatch(data: &[u8]) {
    let Ok(text) = Utf8Bytes::try_from(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Target { runtime, server } = target();
    runtime.block_on(async {
        let client = Client::new(server.node().add_member(None), server.clone());
        server.node().backplane.client_connected(client.member());
        if let Some(incoming) = Envelope::from_frame(text)
            && let Some(call) = route(server, &client, incoming)
        {
            let id = call.id;
            let result = call.start().await;
            answer_call(server, &client, id, result);
        }
        let (queue, mut frames) = (client.member().queue(), Vec::new());
        while let Some(taken) = queue.try_recv_many(&mut frames, 64) {
            queue.release(taken.bytes);
            frames.clear();
        }
        client.member().mark_gone();
        client.member().drop_pending();
        server.node().remove_member(client.id());
    });
}

/// Feeds `data` to a whole connection as the bytes a client sends after the upgrade (WebSocket frames,
/// masked), through an in-memory pipe, and runs the connection to its end: reader, pipeline, handlers,
/// writer, close handshake. What the server writes back is read and discarded. Returns the number of
/// data messages the server received.
pub fn connection(data: &[u8]) -> u64 {
    let Target { runtime, server } = target();
    let before = server.stats().messages_received;
    runtime.block_on(async {
        let Ok(slot) = Slot::reserve(server.admission(), None) else {
            return;
        };
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let (io, writer) = CountingIo::other(server_end, server.node());
        let ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(server.app().ws_config)).await;
        let served = tokio::spawn(
            connection::register(server.clone(), ClientData::new(), None, None)
                .run(ws, writer, slot),
        );
        let (mut from_server, mut to_server) = tokio::io::split(client_end);
        let drained = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while from_server.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let _ = to_server.write_all(data).await;
        let _ = to_server.shutdown().await;
        let _ = served.await;
        drop(to_server);
        let _ = drained.await;
    });
    server.stats().messages_received - before
}

/// Decodes `data` as a packet from another node and as a stored membership, and applies them to a
/// replica of the cluster.
#[cfg(feature = "redis")]
pub fn redis_peer_input(data: &[u8]) {
    crate::backplane::fuzz_peer_input(data);
}
