//! Graceful stop (docs/protocol.md "Close codes": 1001): close 1001 to every client after its queue
//! drains, then the listener closes.

use serde_json::json;
use ws_core::Client;
use ws_core::Server;
use ws_core::protocol::Frame;
use ws_core::protocol::Message;

use crate::support::{config, refused_status, spawn};

/// docs/protocol.md "Answers to bad input", "`Server::stop`, SIGTERM, Ctrl-C": every client gets close 1001 after the frames already queued for it; new upgrades
/// get 503 while stopping; afterwards the listener is closed.
#[tokio::test]
async fn stop_closes_every_client_with_1001() {
    let srv = spawn(
        Server::builder(config()).on("queue", |c: Client, _: Message| async move {
            for i in 0..100 {
                let _ = c.send(Frame::envelope("queued", &i));
            }
            let server = c.server();
            tokio::spawn(async move { server.stop().await });
        }),
    )
    .await;
    let mut a = srv.connect().await;
    let mut b = srv.connect().await;
    a.send_json(json!({"type": "queue"})).await;
    for i in 0..100 {
        assert_eq!(
            a.recv().await["data"],
            i,
            "queued frames drain before the close"
        );
    }
    for client in [&mut a, &mut b] {
        let closed = client.recv_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1001, "server shutting down")
        );
    }
    assert!(srv.server.is_stopping());
    // Once stopped, the listener is gone: connecting fails (or is refused while still stopping).
    crate::support::eventually("listener closed", || async {
        tokio::net::TcpStream::connect(srv.addr).await.is_err()
    })
    .await;
}

/// Stopping twice is harmless, and a stopped server refuses upgrades on a router it still serves.
#[tokio::test]
async fn stop_is_idempotent_and_refuses_new_clients() {
    let srv = spawn(Server::builder(config())).await;
    srv.server.stop().await;
    srv.server.stop().await;
    let app = srv.server.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(refused_status(format!("ws://{addr}/ws")).await, 503);
}
