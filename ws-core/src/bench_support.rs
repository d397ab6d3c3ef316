//! The hot path without sockets, for the micro-benchmarks in `bench/benches`: parsing an envelope,
//! dispatching a frame to its handler, and fanning a frame out to clients whose send queues nobody drains.
//! Not a stable API.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::client::Client;
use crate::connection::{answer_call, route};
use crate::protocol::Envelope;
use crate::server::Server;

/// Parses a text frame as the read task does; `false` for anything that is not an envelope.
pub fn parse_envelope(frame: &Bytes) -> bool {
    Utf8Bytes::try_from(frame.clone())
        .ok()
        .and_then(Envelope::from_frame)
        .is_some()
}

/// A client registered with `server` that has a send queue and no socket.
pub fn detached_client(server: &Server) -> Client {
    let client = Client::new(server.node().add_member(None), server.clone());
    server.node().backplane.client_connected(client.member());
    client
}

/// Empties a detached client's send queue; returns how many frames it held.
pub fn drain(client: &Client) -> usize {
    let queue = client.member().queue();
    let (mut n, mut frames) = (0, Vec::new());
    while let Some(taken) = queue.try_recv_many(&mut frames, 64) {
        queue.release(taken.bytes);
        n += taken.frames;
        frames.clear();
    }
    n
}

/// Handles a text frame from `client` as the read task does: parse, route, middleware, handler, answer.
pub async fn dispatch(client: &Client, frame: &Bytes) {
    let Some(incoming) = Utf8Bytes::try_from(frame.clone())
        .ok()
        .and_then(Envelope::from_frame)
    else {
        return;
    };
    let server = client.server();
    if let Some(call) = route(&server, client, incoming) {
        let id = call.id;
        let result = call.start().await;
        answer_call(&server, client, id, result);
    }
}
