//! The benchmark protocol on socketioxide: `join` (room name), `publish` (broadcast to the room),
//! `echo` (answered with an acknowledgement). Usage: `socketioxide-peer [PORT]`.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

const GROUP: &str = "bench";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // The same per-client queue bound as the ws-core server under test (4096 frames).
    let (layer, io) = SocketIo::builder().max_buffer_size(4096).build_layer();
    let broadcaster = io.clone();
    io.ns("/", async move |s: SocketRef| {
        s.on("join", async |s: SocketRef, Data(room): Data<String>| {
            s.join(room);
        });
        let io = broadcaster.clone();
        s.on("publish", async move |Data(data): Data<Value>| {
            let _ = io.to(GROUP).emit("publish", &data).await;
        });
        s.on("echo", async |Data(data): Data<Value>, ack: AckSender| {
            let _ = ack.send(&data);
        });
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
