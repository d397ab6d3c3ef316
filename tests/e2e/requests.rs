//! Server → client requests (`Client::request`) and the `$ping` heartbeat (docs/protocol.md "Wire
//! format").

use std::time::Duration;

use serde_json::json;
use ws_core::{Error, Server};

use crate::support::{config, spawn, start_example};

/// `ask`: the server relays a question to another client as a request of its own and returns the answer.
#[tokio::test]
async fn chat_ask_relays_a_request_to_another_client() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, _) = chat.join("ann").await;
    let (mut bob, bob_id) = chat.join("bob").await;
    ann.send_json(json!({"type": "ask", "data": {"to": bob_id, "question": "tea?"}, "id": 1}))
        .await;
    let asked = bob.recv().await;
    let server_id = asked["id"]
        .as_u64()
        .expect("the server's request has an id");
    assert_eq!(
        asked,
        json!({"type": "ask", "data": {"question": "tea?", "user": "ann"}, "id": server_id})
    );
    bob.send_json(json!({"type": "$reply", "id": server_id, "data": {"answer": "yes"}}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "$reply", "id": 1, "data": {"answer": "yes"}})
    );
    // An error answer travels back as the asker's error.
    ann.send_json(json!({"type": "ask", "data": {"to": bob_id, "question": "coffee?"}, "id": 2}))
        .await;
    let asked = bob.recv().await;
    bob.send_json(json!({"type": "$error", "id": asked["id"], "data": {"code": "forbidden", "message": "no"}})).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "$error", "id": 2, "data": {"code": "forbidden", "message": "no"}})
    );
    // An answer that does not fit the reply type is `invalid_data`.
    ann.send_json(json!({"type": "ask", "data": {"to": bob_id, "question": "?"}, "id": 3}))
        .await;
    let asked = bob.recv().await;
    bob.send_json(json!({"type": "$reply", "id": asked["id"], "data": {"wrong": 1}}))
        .await;
    assert_eq!(ann.recv().await["data"]["code"], "invalid_data");
    // Asking nobody is `not_found`.
    ann.send_json(json!({"type": "ask", "data": {"to": "ghost", "question": "?"}, "id": 4}))
        .await;
    assert_eq!(ann.recv().await["data"]["code"], "not_found");
}

/// A request times out, respects `max_pending_requests`, and fails when the client leaves.
#[tokio::test]
async fn server_requests_time_out_are_bounded_and_end_with_the_client() {
    let srv = spawn(Server::builder(config().max_pending_requests(2))).await;
    let mut client = srv.connect().await;
    crate::support::eventually("registered", || async {
        srv.server.local_clients().len() == 1
    })
    .await;
    let target = srv.server.local_clients()[0].clone();

    let err = target
        .request_json("question", &1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "timeout");
    assert_eq!(
        client.recv().await,
        json!({"type": "question", "data": 1, "id": 1})
    );

    let (first, second) = (target.clone(), target.clone());
    let a = tokio::spawn(async move {
        first
            .request_json("question", &2, Duration::from_secs(10))
            .await
    });
    let b = tokio::spawn(async move {
        second
            .request_json("question", &3, Duration::from_secs(10))
            .await
    });
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(client.recv().await["id"].as_u64().unwrap());
    }
    let third = target
        .request_json("question", &4, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(third.code().as_str(), "limit_exceeded");
    client
        .send_json(json!({"type": "$reply", "id": ids[0], "data": "first"}))
        .await;
    // An answer to nothing (an unknown id) is ignored.
    client
        .send_json(json!({"type": "$reply", "id": 999, "data": "stray"}))
        .await;
    let answered: Vec<Result<serde_json::Value, Error>> = {
        client.close().await;
        vec![a.await.unwrap(), b.await.unwrap()]
    };
    let codes: Vec<String> = answered
        .iter()
        .map(|r| match r {
            Ok(v) => v.to_string(),
            Err(e) => e.code().as_str().to_owned(),
        })
        .collect();
    assert!(codes.contains(&"\"first\"".to_owned()), "{codes:?}");
    assert!(codes.contains(&"not_found".to_owned()), "{codes:?}");
}

/// `$ping` is answered with `$pong` at once, without a handler (with the ping's `id`, if any).
#[tokio::test]
async fn ping_gets_pong() {
    let srv = spawn(Server::builder(config())).await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "$ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "$pong"}));
    // A ping with an `id` is answered with that `id`, so a client can match its pongs.
    client.send_json(json!({"type": "$ping", "id": 5})).await;
    assert_eq!(client.recv().await, json!({"type": "$pong", "id": 5}));
    assert_eq!(srv.server.stats().unknown_types, 0);
    client.close().await;
}
