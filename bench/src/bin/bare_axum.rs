//! The floor: the benchmark protocol on bare axum WebSockets, no framework (see `bench::floor`: one group,
//! a per-connection bounded queue, frames serialized once and shared, writes batched, `TCP_NODELAY`), with a
//! 4 KiB read buffer. `cargo run --release -p bench --bin bare_axum -- [PORT]`.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bench::floor::{self, Room};
use futures_util::StreamExt;

async fn upgrade(ws: WebSocketUpgrade, State(room): State<Arc<Room<Utf8Bytes>>>) -> Response {
    ws.read_buffer_size(4096)
        .on_upgrade(move |socket| connection(socket, room))
}

async fn connection(socket: WebSocket, room: Arc<Room<Utf8Bytes>>) {
    let (sink, mut stream) = socket.split();
    let member = room.member(sink, Message::Text);
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        if !member.apply(&room, text.as_str()).await {
            break;
        }
    }
    member.leave(&room).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    floor::serve(upgrade).await
}
