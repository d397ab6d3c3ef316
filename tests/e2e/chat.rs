//! The chat example's contract (README "The chat demo"), against the real binary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    WAIT, WsClient, eventually, example_path, http_get, refused_status, start_example,
};

const QUIET: Duration = Duration::from_millis(200);

/// First stdout line, the welcome frame, and nothing the client did not cause.
#[tokio::test]
async fn welcome_then_silence() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let mut ann = chat.connect("ann").await;
    let welcome = ann.recv().await;
    let id = welcome["data"]["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        welcome,
        json!({"type": "welcome", "data": {"client_id": id, "message": "connected"}})
    );
    ann.send_json(json!({"type": "join", "data": {"room": "r"}}))
        .await;
    ann.send_json(json!({"type": "leave", "data": {"room": "r"}}))
        .await;
    let (_bob, _) = chat.join("bob").await;
    ann.expect_silence(QUIET).await;
}

/// README "The chat demo": the token is required (any non-empty value, at most 32 characters): 401
/// without it, 400 when longer.
#[tokio::test]
async fn token_required() {
    let chat = start_example("chat", &["--port", "0"]).await;
    assert_eq!(refused_status(format!("ws://{}/ws", chat.addr)).await, 401);
    assert_eq!(
        refused_status(format!("ws://{}/ws?token=", chat.addr)).await,
        401
    );
    let long = "u".repeat(33);
    assert_eq!(
        refused_status(format!("ws://{}/ws?token={long}", chat.addr)).await,
        400
    );
    chat.join(&"u".repeat(32)).await;
}

/// README "The chat demo": texts and questions longer than 2 000 characters get `$error` `invalid_data`
/// and reach nobody; the connection stays.
#[tokio::test]
async fn long_texts_are_refused() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    let (mut bob, bob_id) = chat.join("bob").await;
    let long = "x".repeat(2001);
    let refused = |what: &str| json!({"type": "$error", "data": {"code": "invalid_data", "message": format!("{what} longer than 2000 characters")}});
    ann.send_json(json!({"type": "chat", "data": {"text": long}}))
        .await;
    assert_eq!(ann.recv().await, refused("text"));
    ann.send_json(json!({"type": "dm", "data": {"to": bob_id, "text": long}}))
        .await;
    assert_eq!(ann.recv().await, refused("text"));
    ann.send_json(json!({"type": "ask", "id": 1, "data": {"to": bob_id, "question": long}}))
        .await;
    let mut answer = refused("the question");
    answer["id"] = json!(1);
    assert_eq!(ann.recv().await, answer);
    bob.expect_silence(QUIET).await;
    let longest = "x".repeat(2000);
    ann.send_json(json!({"type": "chat", "data": {"text": longest}}))
        .await;
    assert_eq!(bob.recv().await["from"], ann_id.as_str());
}

/// README "The chat demo": a request addressed to a name other than this machine's (a page on a name
/// that resolves here: DNS rebinding) gets 403, even from a page on that same name; `--allowed-host`
/// replaces the list.
#[tokio::test]
async fn other_host_names_get_403() {
    let rebinding = |addr: std::net::SocketAddr| {
        let port = addr.port();
        format!(
            "GET /ws?token=ann HTTP/1.1\r\nHost: rebind.test:{port}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://rebind.test:{port}\r\n\r\n"
        )
    };
    let chat = start_example("chat", &["--port", "0"]).await;
    let (status, body) = crate::support::http(chat.addr, &rebinding(chat.addr)).await;
    assert_eq!((status, body.as_str()), (403, "host not allowed"));
    chat.join("ann").await;

    let named = start_example("chat", &["--port", "0", "--allowed-host", "rebind.test"]).await;
    let (status, _) = crate::support::http(named.addr, &rebinding(named.addr)).await;
    assert_eq!(status, 101);
    assert_eq!(
        refused_status(format!("ws://{}/ws?token=ann", named.addr)).await,
        403
    );
}

/// Everyone-chat reaches everybody, the sender too, with `from`, `data.text` and `data.user`.
#[tokio::test]
async fn chat_to_everyone() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    let (mut bob, _) = chat.join("bob").await;
    ann.send_json(json!({"type": "chat", "data": {"text": "hello all"}}))
        .await;
    let expected =
        json!({"type": "chat", "from": ann_id, "data": {"text": "hello all", "user": "ann"}});
    assert_eq!(ann.recv().await, expected);
    assert_eq!(bob.recv().await, expected);
}

/// Room chat reaches the room's members (the sender too) and nobody else.
#[tokio::test]
async fn rooms_isolate() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    let (mut bob, _) = chat.join("bob").await;
    let (mut cid, _) = chat.join("cid").await;
    for (client, id) in [(&mut ann, 1), (&mut bob, 2)] {
        client
            .send_json(json!({"type": "join", "data": {"room": "rust"}, "id": id}))
            .await;
        assert_eq!(
            client.recv().await,
            json!({"type": "$reply", "id": id, "data": {"room": "rust", "joined": true}})
        );
    }
    ann.send_json(json!({"type": "chat", "data": {"text": "in room", "room": "rust"}}))
        .await;
    let expected = json!({"type": "chat", "from": ann_id, "data": {"text": "in room", "room": "rust", "user": "ann"}});
    assert_eq!(ann.recv().await, expected);
    assert_eq!(bob.recv().await, expected);
    cid.expect_silence(QUIET).await;
    bob.send_json(json!({"type": "leave", "data": {"room": "rust"}, "id": 3}))
        .await;
    assert_eq!(
        bob.recv().await["data"],
        json!({"room": "rust", "left": true})
    );
    ann.send_json(json!({"type": "chat", "data": {"text": "again", "room": "rust"}}))
        .await;
    assert_eq!(ann.recv().await["data"]["text"], "again");
    bob.expect_silence(QUIET).await;
}

/// `dm` reaches its target with `from`; an unknown target is `$error` `not_found` for the sender.
/// `typing`: relayed to the others in the room, or to everyone else, never back to the sender.
#[tokio::test]
async fn typing_reaches_the_others() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    let (mut bob, _) = chat.join("bob").await;
    let (mut cid, _) = chat.join("cid").await;
    for client in [&mut ann, &mut bob] {
        client
            .send_json(json!({"type": "join", "data": {"room": "rust"}, "id": 1}))
            .await;
        assert_eq!(client.recv().await["type"], "$reply");
    }
    ann.send_json(json!({"type": "typing", "data": {"room": "rust"}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "typing", "data": {"user": "ann", "room": "rust"}, "from": ann_id})
    );
    ann.send_json(json!({"type": "typing", "data": {}})).await;
    let everyone = json!({"type": "typing", "data": {"user": "ann"}, "from": ann_id});
    assert_eq!(bob.recv().await, everyone);
    assert_eq!(
        cid.recv().await,
        everyone,
        "cid is not in the room: only this one"
    );
    ann.expect_silence(QUIET).await;
}

#[tokio::test]
async fn direct_messages() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    let (mut bob, bob_id) = chat.join("bob").await;
    ann.send_json(json!({"type": "dm", "data": {"to": bob_id, "text": "psst"}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "dm", "from": ann_id, "data": {"text": "psst", "user": "ann"}})
    );
    ann.expect_silence(QUIET).await;
    ann.send_json(json!({"type": "dm", "data": {"to": "ghost", "text": "hello?"}}))
        .await;
    let err = ann.recv().await;
    assert_eq!(
        (err["type"].as_str(), err.get("id")),
        (Some("$error"), None)
    );
    assert_eq!(err["data"]["code"], "not_found");
    ann.send_json(json!({"type": "dm", "data": {"to": "ghost", "text": "hello?"}, "id": 8}))
        .await;
    let err = ann.recv().await;
    assert_eq!(
        (err["id"].as_u64(), err["data"]["code"].as_str()),
        (Some(8), Some("not_found"))
    );
}

/// `whoami` answers with id, user and groups; `admin:purge` is forbidden unless the plan is admin.
#[tokio::test]
async fn whoami_and_admin_purge() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    ann.send_json(json!({"type": "join", "data": {"room": "b"}}))
        .await;
    ann.send_json(json!({"type": "join", "data": {"room": "a"}}))
        .await;
    ann.send_json(json!({"type": "whoami", "id": 1})).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "$reply", "id": 1, "data": {"client_id": ann_id, "user": "ann", "groups": ["a", "b"]}})
    );
    ann.send_json(json!({"type": "admin:purge", "id": 2})).await;
    let err = ann.recv().await;
    assert_eq!(
        (err["type"].as_str(), err["id"].as_u64()),
        (Some("$error"), Some(2))
    );
    assert_eq!(err["data"]["code"], "forbidden");
    let (mut admin, _) = chat.join("admin").await;
    admin
        .send_json(json!({"type": "admin:purge", "id": 3}))
        .await;
    assert_eq!(
        admin.recv().await,
        json!({"type": "$reply", "id": 3, "data": {"purged": true}})
    );
}

/// `/`, `/stats`, `/metrics` and `/health`.
#[tokio::test]
async fn http_routes() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (_ann, _) = chat.join("ann").await;
    let (status, page) = http_get(chat.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>ws-core chat</title>"));
    // The welcome is counted once its write has completed, which the client can see a moment before.
    eventually("the welcome is counted", || async {
        let (status, stats) = http_get(chat.addr, "/stats").await;
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        status == 200 && stats["connected_clients"] == 1 && stats["messages_sent"] == 1
    })
    .await;
    let (status, metrics) = http_get(chat.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("ws_connected_clients 1\n"), "{metrics}");
    assert_eq!(http_get(chat.addr, "/health").await, (200, "ok".to_owned()));
}

/// A flag out of its type's range is refused at start-up instead of wrapping (4 294 967 296 as a `u32`
/// would be 0: no rate limit).
#[tokio::test]
async fn out_of_range_flags_are_refused() {
    for flag in ["--rate-limit", "--burst"] {
        let out = tokio::process::Command::new(example_path("chat"))
            .args(["--port", "0", flag, "4294967296"])
            .output();
        let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
        assert!(!out.status.success(), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("4294967296 is above 4294967295"),
            "{stderr}"
        );
    }
}

/// The limit flags reach the server: rate limit, burst, connections per address, message size, origins.
#[tokio::test]
async fn limit_flags() {
    let chat = start_example(
        "chat",
        &[
            "--port",
            "0",
            "--rate-limit",
            "2",
            "--burst",
            "3",
            "--max-connections",
            "2",
            "--max-message-size",
            "200",
            "--allowed-origin",
            "https://chat.test",
            "--max-connections-per-ip",
            "1",
        ],
    )
    .await;
    let (mut ann, _) = chat.join("ann").await;
    for _ in 0..4 {
        ann.send_json(json!({"type": "join", "data": {"room": "r"}}))
            .await;
    }
    assert_eq!(ann.recv_close().await.code, 1008);
    // ann's 1008 frees her slot once the server has let go of her connection.
    crate::support::eventually_connects(
        "ann's slot is free",
        &format!("ws://{}/ws?token=bob", chat.addr),
    )
    .await;
    let (mut bob, _) = chat.join("bob").await;
    assert_eq!(
        refused_status(format!("ws://{}/ws?token=dan", chat.addr)).await,
        429
    );
    bob.send_json(json!({"type": "chat", "data": {"text": "x".repeat(300)}}))
        .await;
    assert_eq!(bob.recv_close().await.code, 1009);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws?token=eve", chat.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.test".parse().unwrap());
    assert_eq!(refused_status(req).await, 403);
}

/// SIGTERM: every client gets close 1001 and the process exits 0.
#[tokio::test]
async fn sigterm_closes_clients_with_1001() {
    let mut chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, _) = chat.join("ann").await;
    let pid = chat.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ann.recv_close().await.code, 1001);
    let exit = tokio::time::timeout(crate::support::WAIT, chat.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let _ = WsClient::try_connect(&format!("ws://{}/ws?token=x", chat.addr))
        .await
        .err()
        .expect("server gone");
}

/// The generated JSON Schema of one direction of the chat's protocol (`examples/chat/sdk/schema`).
fn chat_schema(direction: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/chat/sdk/schema")
        .join(format!("{direction}.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// README "TypeScript client and JSON Schema": the frames of history and presence, as the chat sends them
/// over a socket (`$position`, `$presence_state`, `$presence_diff`, a room message with its `pos`, the
/// answer to `$history`) and as a client sends them (`$positions`, `$history`), validate against the
/// generated schema, which refuses a `$position` with a reason the server never gives.
#[tokio::test]
async fn history_and_presence_frames_match_the_generated_schema() {
    let chat = start_example("chat", &["--port", "0", "--history", "100"]).await;
    let (to_server, to_client) = (
        chat_schema("client-to-server"),
        chat_schema("server-to-client"),
    );
    let url = |user: &str| format!("ws://{}/ws?token={user}", chat.addr);
    let mut ann = WsClient::connect(&url("ann")).await;
    let mut seen = Vec::new();
    let check = |seen: &mut Vec<String>, frame: Value| {
        assert!(to_client.is_valid(&frame), "{frame}");
        seen.push(frame["type"].as_str().unwrap_or_default().to_owned());
        frame
    };
    let sent = [
        json!({"type": "$positions", "data": {"rust": {"epoch": "gone", "offset": 3}}, "id": 1}),
        json!({"type": "join", "data": {"room": "rust"}, "id": 2}),
    ];
    for frame in sent {
        assert!(to_server.is_valid(&frame), "{frame}");
        ann.send_json(frame).await;
    }
    while !seen.iter().any(|t| t == "$presence_state") {
        let frame = check(&mut seen, ann.recv().await);
        if frame["type"] == "$position" {
            assert_eq!(frame["data"]["reason"], "epoch", "{frame}");
        }
    }
    let mut bob = WsClient::connect(&url("bob")).await;
    bob.send_json(json!({"type": "join", "data": {"room": "rust"}, "id": 1}))
        .await;
    while !seen.iter().any(|t| t == "$presence_diff") {
        check(&mut seen, ann.recv().await);
    }
    bob.send_json(json!({"type": "chat", "data": {"text": "hi", "room": "rust"}}))
        .await;
    loop {
        let frame = check(&mut seen, ann.recv().await);
        if frame["type"] == "chat" {
            assert_eq!(frame["pos"]["offset"], 1, "{frame}");
            break;
        }
    }
    let ask = json!({"type": "$history", "data": {"group": "rust", "since": 0}, "id": 3});
    assert!(to_server.is_valid(&ask));
    ann.send_json(ask).await;
    loop {
        let frame = check(&mut seen, ann.recv().await);
        if frame["id"] == 3 {
            assert_eq!(frame["data"]["frames"][0]["data"]["text"], "hi", "{frame}");
            break;
        }
    }
    for kind in [
        "welcome",
        "$position",
        "$reply",
        "$presence_state",
        "$presence_diff",
        "chat",
    ] {
        assert!(seen.iter().any(|t| t == kind), "no {kind} among {seen:?}");
    }
    let invented = json!({"type": "$position", "data": {"group": "rust", "recovered": false, "reason": "bogus"}});
    assert!(!to_client.is_valid(&invented));
}
