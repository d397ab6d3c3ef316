//! Bad frames (docs/protocol.md "Answers to bad input", "Close codes"): each kind gets its close code or
//! error frame, and other clients are unaffected.

use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws_core::Client;
use ws_core::handler::Request;
use ws_core::protocol::Frame;
use ws_core::protocol::Message;
use ws_core::{Server, ServerBuilder};

use crate::support::{Closed, TestServer, config, spawn};

fn echo_server() -> ServerBuilder {
    Server::builder(config()).on("echo", |client: Client, msg: Message| async move {
        let _ = client.send(&msg);
    })
}

async fn assert_other_client_unaffected(srv: &TestServer) {
    let mut other = srv.connect().await;
    other.send_json(json!({"type": "echo", "data": 1})).await;
    assert_eq!(other.recv().await["data"], 1);
    other.close().await;
}

/// docs/protocol.md "Answers to bad input", "frame larger than `max_message_size`": close 1009.
#[tokio::test]
async fn oversized_frame_closes_1009() {
    let srv = spawn(echo_server().on("x", |_: Client, _: Message| async {})).await;
    let mut client = srv.connect().await;
    let big = format!(r#"{{"type":"x","data":"{}"}}"#, "a".repeat(600 * 1024));
    client.send_text(&big).await;
    assert_eq!(
        client.recv_close().await,
        Closed {
            code: 1009,
            reason: "message too big".into()
        }
    );
    assert_eq!(srv.server.stats().invalid_frames, 1);
    assert_other_client_unaffected(&srv).await;
}

/// docs/protocol.md "Answers to bad input", "binary frame": close 1003.
#[tokio::test]
async fn binary_frame_closes_1003() {
    let srv = spawn(echo_server()).await;
    let mut client = srv.connect().await;
    client
        .ws
        .send(WsMessage::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(client.recv_close().await.code, 1003);
    assert_other_client_unaffected(&srv).await;
}

/// docs/protocol.md "Answers to bad input", "not a JSON object with a string `type`": close 1007, for every shape of it.
#[tokio::test]
async fn invalid_envelope_closes_1007() {
    let srv = spawn(echo_server()).await;
    for bad in [
        "hello",
        "[1,2,3]",
        r#""chat""#,
        r#"{"data":{}}"#,
        r#"{"type":42}"#,
        r#"{"type":"echo","id":-1}"#,
        r#"{"type":"echo","id":"7"}"#,
        r#"{"type":"echo","id":1.5}"#,
        r#"{"type":"echo","id":9007199254740992}"#,
    ] {
        let mut client = srv.connect().await;
        client.send_text(bad).await;
        assert_eq!(
            client.recv_close().await,
            Closed {
                code: 1007,
                reason: "invalid envelope".into()
            },
            "for {bad}"
        );
    }
    assert_eq!(srv.server.stats().invalid_frames, 9);
    assert_other_client_unaffected(&srv).await;
}

/// A WebSocket protocol violation (reserved opcode) closes with 1002.
#[tokio::test]
async fn protocol_violation_closes_1002() {
    let srv = spawn(echo_server()).await;
    let mut client = srv.connect().await;
    // A masked frame with reserved opcode 0x3, written under the WebSocket layer.
    let raw = [0x83u8, 0x80, 1, 2, 3, 4];
    match client.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(&raw).await.unwrap(),
        _ => unreachable!("plain TCP in tests"),
    }
    assert_eq!(client.recv_close().await.code, 1002);
    assert_other_client_unaffected(&srv).await;
}

/// docs/protocol.md "Wire format": unknown `type` without `id`: dropped, counted, reported to the hook; the connection stays.
#[tokio::test]
async fn unknown_type_is_dropped_counted_and_reported() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let srv = spawn(
        echo_server()
            .on_unknown_type(move |_, kind| hook_seen.lock().unwrap().push(kind.to_owned())),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "nope", "data": 1})).await;
    client.send_json(json!({"type": "echo", "data": 2})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "echo", "data": 2, "from": client_id(&srv)})
    );
    assert_eq!(srv.server.stats().unknown_types, 1);
    assert_eq!(*seen.lock().unwrap(), vec!["nope".to_owned()]);
    client.close().await;
}

fn client_id(srv: &TestServer) -> String {
    srv.server.local_clients()[0].id().to_string()
}

/// docs/protocol.md "Wire format": unknown `type` with `id`: `$error` code `unknown_type` with that id.
#[tokio::test]
async fn unknown_type_request_gets_error_reply() {
    let srv = spawn(echo_server()).await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "nope", "id": 5})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 5, "data": {"code": "unknown_type", "message": "unknown message type \"nope\""}})
    );
    client.close().await;
}

/// docs/protocol.md "Wire format": known type with `data` that does not fit: `$error` `invalid_data`, with the id for a request, without
/// one otherwise; the connection stays.
#[tokio::test]
async fn invalid_data_gets_error_frame_and_connection_stays() {
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    let srv = spawn(
        Server::builder(config()).on("add", |req: Request| async move {
            let Add { a, b } = req.decode()?;
            Ok::<_, ws_core::Error>(a + b)
        }),
    )
    .await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "add", "data": {"a": "x"}}))
        .await;
    let err = client.recv().await;
    assert_eq!(err["type"], "$error");
    assert_eq!(err["data"]["code"], "invalid_data");
    assert!(err.get("id").is_none());
    client
        .send_json(json!({"type": "add", "data": {"a": 1}, "id": 9}))
        .await;
    let err = client.recv().await;
    assert_eq!(
        (err["type"].as_str(), err["id"].as_u64()),
        (Some("$error"), Some(9))
    );
    assert_eq!(err["data"]["code"], "invalid_data");
    client
        .send_json(json!({"type": "add", "data": {"a": 1, "b": 2}, "id": 10}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 10, "data": 3})
    );
}

/// docs/protocol.md "Wire format": a `from` sent by a client is ignored: handlers and relays see the server-written sender id.
#[tokio::test]
async fn client_supplied_from_is_ignored() {
    let srv = spawn(Server::builder(config()).on(
        "say",
        |client: Client, msg: Message| async move {
            client.server().all().send(&msg);
        },
    ))
    .await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "say", "data": "hi", "from": "someone-else", "target": "t1"}))
        .await;
    let got = client.recv().await;
    assert_eq!(got["from"], client_id(&srv));
    assert_eq!(got["target"], "t1");
    client.close().await;
}

/// docs/protocol.md "Wire format": a request type sent without `id` runs its handler and the return value is dropped.
#[tokio::test]
async fn request_without_id_runs_and_reply_is_dropped() {
    let srv = spawn(Server::builder(config()).on(
        "ping",
        |client: Client, _: Message| async move {
            let _ = client.send(Frame::envelope("side-effect", &true));
            Ok::<_, ws_core::Error>("pong")
        },
    ))
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "ping"})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "side-effect", "data": true})
    );
    client
        .expect_silence(std::time::Duration::from_millis(200))
        .await;
    client.send_json(json!({"type": "ping", "id": 0})).await;
    assert_eq!(client.recv().await["type"], "side-effect");
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 0, "data": "pong"})
    );
}
