//! The floor: the benchmark protocol on bare axum WebSockets, no framework. One group, a per-connection
//! bounded queue, frames serialized once and shared, writes batched (feed all queued frames, flush once),
//! `TCP_NODELAY`, a 4 KiB read buffer. `cargo run --release -p bench --bin bare_axum -- [PORT]`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

#[derive(Default)]
struct Room {
    members: Mutex<HashMap<u64, mpsc::Sender<Utf8Bytes>>>,
    next_id: AtomicU64,
}

async fn upgrade(ws: WebSocketUpgrade, State(room): State<Arc<Room>>) -> Response {
    ws.read_buffer_size(4096)
        .on_upgrade(move |socket| connection(socket, room))
}

async fn connection(socket: WebSocket, room: Arc<Room>) {
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(4096);
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 64).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            break;
        };
        match frame["type"].as_str() {
            Some("join") => {
                room.members
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, tx.clone());
            }
            Some(kind @ ("publish" | "cursor" | "cursor_plain")) => {
                let out =
                    Utf8Bytes::from(format!(r#"{{"type":"{kind}","data":{}}}"#, frame["data"]));
                let members = room.members.lock().unwrap_or_else(|e| e.into_inner());
                for member in members.values() {
                    let _ = member.try_send(out.clone());
                }
            }
            Some("echo") => {
                let reply = format!(
                    r#"{{"type":"$reply","id":{},"data":{}}}"#,
                    frame["id"], frame["data"]
                );
                if tx.send(Utf8Bytes::from(reply)).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    room.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    drop(tx);
    let _ = writer.await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let app = Router::new()
        .route("/ws", get(upgrade))
        .with_state(Arc::new(Room::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
