//! The server's and client's public operations (README "Sending"): sends, lookups, metadata, extensions,
//! stats.

use std::time::Duration;

use serde_json::json;
use ws_core::Client;
use ws_core::Server;
use ws_core::protocol::Frame;
use ws_core::protocol::Message;

use crate::support::{config, eventually, http_get, spawn};

/// README "Sending": a client that has its 101 is registered, so a broadcast made the moment its handshake
/// completes reaches it (200 times over, the server on other threads than the client: the upgraded socket
/// is handed over after the 101 is written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_right_after_the_handshake_reaches_the_new_client() {
    let srv = spawn(Server::builder(config())).await;
    for n in 0..200 {
        let mut client = srv.connect().await;
        srv.server.all().send(Message::new("hello", n));
        assert_eq!(client.recv().await, json!({"type": "hello", "data": n}));
        client.close().await;
    }
}

/// README "Sending": `server.all()` reaches everyone once (the sender too); `client.broadcast()` and
/// `server.all().except(id)` skip one, and each further `.except` one more.
#[tokio::test]
async fn broadcast_reaches_every_client() {
    let srv = spawn(
        Server::builder(config()).on("shout", |c: Client, m: Message| async move {
            let out = Message::new("shout", m.data).with_from(c.id().as_str());
            if out.data == "quiet" {
                c.broadcast().send(&out);
            } else {
                c.server().all().send(&out);
            }
        }),
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(srv.connect().await);
    }
    clients[0]
        .send_json(json!({"type": "shout", "data": "hello"}))
        .await;
    for client in &mut clients {
        assert_eq!(client.recv().await["data"], "hello");
    }
    clients[1]
        .send_json(json!({"type": "shout", "data": "quiet"}))
        .await;
    for (i, client) in clients.iter_mut().enumerate() {
        if i == 1 {
            client.expect_silence(Duration::from_millis(150)).await;
        } else {
            assert_eq!(client.recv().await["data"], "quiet");
        }
    }
    let first = srv.server.local_clients()[0].id().clone();
    srv.server
        .all()
        .except(&first)
        .send(Frame::envelope("notice", &json!({"n": 1})));
    let mut silent = 0;
    for client in &mut clients {
        match tokio::time::timeout(Duration::from_millis(300), client.recv()).await {
            Ok(frame) => assert_eq!(frame, json!({"type": "notice", "data": {"n": 1}})),
            Err(_) => silent += 1,
        }
    }
    assert_eq!(silent, 1, "exactly the excepted client hears nothing");
    let ids: Vec<_> = srv.server.local_clients()[..3]
        .iter()
        .map(|c| c.id().clone())
        .collect();
    srv.server
        .all()
        .except(&ids[0])
        .except(&ids[1])
        .except(&ids[2])
        .send(Frame::envelope("notice", &json!({"n": 2})));
    let mut silent = 0;
    for client in &mut clients {
        match tokio::time::timeout(Duration::from_millis(300), client.recv()).await {
            Ok(frame) => assert_eq!(frame, json!({"type": "notice", "data": {"n": 2}})),
            Err(_) => silent += 1,
        }
    }
    assert_eq!(silent, 3, "each `except` leaves one more client out");
}

/// README "Sending": `send_to_client` delivers to one client, by `&ClientId` or by the id as a string,
/// and fails with `SendError::Disconnected` for an unknown id; `local_client` and `local_clients` see the
/// live set, and a kept `Client` handle of a gone client fails its sends the same way.
#[tokio::test]
async fn send_to_client_local_client_and_local_clients() {
    let srv = spawn(Server::builder(config())).await;
    let server = &srv.server;
    let mut a = srv.connect().await;
    let a_id = server.local_clients()[0].id().to_string();
    let mut b = srv.connect().await;
    let mut ids: Vec<String> = server
        .local_clients()
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter()
            .all(|id| id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()))
    );
    let b_id = ids.into_iter().find(|id| *id != a_id).unwrap();

    server
        .send_to_client(&b_id, Message::new("direct", "for b"))
        .unwrap();
    assert_eq!(b.recv().await, json!({"type": "direct", "data": "for b"}));
    a.expect_silence(Duration::from_millis(150)).await;
    let err = server
        .send_to_client("nobody", Message::new("direct", 1))
        .unwrap_err();
    assert_eq!(err, ws_core::SendError::Disconnected);

    let a_client = server.local_client(&a_id).unwrap();
    assert_eq!(a_client.id().as_str(), a_id);
    server
        .send_to_client(a_client.id(), Message::new("direct", "for a"))
        .unwrap();
    assert_eq!(a.recv().await, json!({"type": "direct", "data": "for a"}));
    assert!(server.local_client("nobody").is_none());
    a.close().await;
    eventually("a is gone", || async {
        server.local_client(&a_id).is_none()
    })
    .await;
    assert_eq!(
        a_client.send(Message::new("late", 1)),
        Err(ws_core::SendError::Disconnected)
    );
    assert_eq!(server.local_clients().len(), 1);
    b.close().await;
}

/// client.send_json / send_message, metadata (JSON values) and typed extensions.
#[tokio::test]
async fn client_sends_metadata_and_extensions() {
    #[derive(Clone, Debug, PartialEq)]
    struct Plan(&'static str);
    let srv = spawn(
        Server::builder(config())
            .on_connect(|c| async move {
                c.set_metadata("user", "ann").unwrap();
                c.set_metadata("score", 3).unwrap();
                c.insert_extension(Plan("gold"));
            })
            .on("inspect", |c: Client, _: Message| async move {
                let removed = c.remove_metadata("score");
                c.send(Frame::envelope(
                    "meta",
                    &json!({
                        "user": c.get_metadata("user"),
                        "removed": removed,
                        "score_after": c.get_metadata("score"),
                        "plan": c.extension::<Plan>().map(|p| p.0),
                        "missing": c.extension::<String>(),
                    }),
                ))?;
                c.send(Message::new("whole", json!([1, 2])).with_target("t"))?;
                Ok::<_, ws_core::Error>(())
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "inspect"})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "meta", "data": {"user": "ann", "removed": 3, "score_after": null, "plan": "gold", "missing": null}})
    );
    assert_eq!(
        client.recv().await,
        json!({"type": "whole", "data": [1, 2], "target": "t"})
    );
    client.close().await;
}

/// Stats count what really happened: clients, frames and bytes both ways, and render as Prometheus text.
#[tokio::test]
async fn stats_are_true() {
    let srv = spawn(
        Server::builder(config()).on("echo", |c: Client, m: Message| async move {
            let _ = c.send(Message::new("echo", m.data));
        }),
    )
    .await;
    let mut client = srv.connect().await;
    let frame = json!({"type": "echo", "data": "abc"}).to_string();
    for _ in 0..10 {
        client.send_text(&frame).await;
    }
    for _ in 0..10 {
        client.recv().await;
    }
    let s = srv.server.stats();
    assert_eq!((s.connected_clients, s.total_connections), (1, 1));
    assert_eq!((s.messages_received, s.messages_sent), (10, 10));
    // Client frames are masked: 2 header bytes + 4 mask bytes + payload.
    assert_eq!(s.bytes_received, 10 * (6 + frame.len() as u64));
    // Server frames: 2 header bytes + payload; the reply is the same envelope.
    assert_eq!(s.bytes_sent, 10 * (2 + frame.len() as u64));
    let text = srv.server.metrics_text();
    assert!(text.contains("ws_messages_received_total 10\n"), "{text}");
    assert!(text.contains("ws_connected_clients 1\n"));
    client.close().await;
    eventually("disconnect counted", || async {
        srv.server.stats().connected_clients == 0
    })
    .await;
    // Nothing else is served on the socket path.
    assert_eq!(http_get(srv.addr, "/elsewhere").await.0, 404);
}
