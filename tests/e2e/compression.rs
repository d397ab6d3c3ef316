//! permessage-deflate (README "Compression", the `compression` module docs): negotiation, compressed
//! frames both ways, a group send compressed once, and the answers to bad compressed input.

use serde_json::{Value, json};
use std::time::Duration;

use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::compression::Compression;
use ws_core::protocol::Message;
use ws_core::{Client, Server, ServerBuilder};

use crate::support::deflate::{BROWSER_OFFER, DeflateClient, deflate};
use crate::support::redis::RedisServer;
use crate::support::{TestServer, config, eventually, spawn};

const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn server(compression: Compression) -> ServerBuilder {
    Server::builder(
        config()
            .compression(compression)
            .max_message_size(64 * 1024),
    )
    .on("echo", |client: Client, msg: Message| async move {
        let _ = client.send(&msg);
    })
    .on("join", |client: Client, msg: Message| async move {
        client.join(msg.data.as_str().unwrap_or_default())
    })
    .on("shout", |client: Client, msg: Message| async move {
        client.server().to("room").send(&msg)
    })
}

async fn connect(srv: &TestServer) -> DeflateClient {
    let client = DeflateClient::connect(srv.addr, "/ws", Some(BROWSER_OFFER)).await;
    assert_eq!(client.extensions.as_deref(), Some(ANSWER));
    client
}

/// A frame's JSON without the `from` the server adds when it relays.
fn body(text: &str) -> Value {
    let mut value: Value = serde_json::from_str(text).expect("JSON");
    value.as_object_mut().map(|o| o.remove("from"));
    value
}

async fn join(client: &mut DeflateClient) {
    client
        .send_compressed(r#"{"type":"join","data":"room","id":1}"#)
        .await;
    let reply: Value = serde_json::from_str(&client.next_frame().await.text()).unwrap();
    assert_eq!(reply, json!({"type": "$reply", "id": 1, "data": true}));
}

/// Each client gets `expected` compressed, in the same bytes as every other one.
async fn all_get_the_same_compressed_frame(clients: &mut [DeflateClient], expected: &Value) {
    let mut payloads = Vec::new();
    for client in clients {
        let frame = client.next_frame().await;
        assert!(frame.rsv1);
        assert_eq!(&body(&frame.text()), expected);
        payloads.push(frame.payload);
    }
    assert!(payloads.windows(2).all(|w| w[0] == w[1]));
}

/// The extension is agreed only when the server has it on and the client offers it.
#[tokio::test]
async fn negotiated_only_when_on_and_offered() {
    let off = spawn(server(Compression::off())).await;
    let client = DeflateClient::connect(off.addr, "/ws", Some(BROWSER_OFFER)).await;
    assert_eq!(client.extensions, None);

    let on = spawn(server(Compression::deflate())).await;
    let client = DeflateClient::connect(on.addr, "/ws", None).await;
    assert_eq!(client.extensions, None);
    let offers = "x-unknown, permessage-deflate; server_max_window_bits=8, permessage-deflate";
    let client = DeflateClient::connect(on.addr, "/ws", Some(offers)).await;
    assert_eq!(client.extensions.as_deref(), Some(ANSWER));
    let _ = connect(&on).await;
    assert_eq!(on.server.stats().compressed_connections, 2);
    assert_eq!(off.server.stats().compressed_connections, 0);
}

/// A compressed message is read, and the answer comes back compressed from `min_size` (256 bytes) on.
#[tokio::test]
async fn compressed_frames_both_ways() {
    let srv = spawn(server(Compression::deflate())).await;
    let mut client = connect(&srv).await;
    let long = json!({"type": "echo", "data": "hello ".repeat(100)}).to_string();
    client.send_compressed(&long).await;
    let frame = client.next_frame().await;
    assert!(frame.rsv1 && frame.fin && frame.opcode == 1);
    assert!(
        frame.payload.len() * 5 < long.len(),
        "{}",
        frame.payload.len()
    );
    assert_eq!(body(&frame.text()), body(&long));

    // A short frame, and an uncompressed one from the same client: both fine, the answer uncompressed.
    client
        .send_frame(true, false, 1, br#"{"type":"echo","data":1}"#)
        .await;
    let frame = client.next_frame().await;
    assert!(!frame.rsv1);
    assert_eq!(body(&frame.text()), json!({"type": "echo", "data": 1}));

    // A compressed message in three fragments.
    let compressed = deflate(long.as_bytes());
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    client.send_frame(false, true, 1, a).await;
    client.send_frame(false, false, 0, b).await;
    client.send_frame(true, false, 0, c).await;
    assert_eq!(body(&client.next_frame().await.text()), body(&long));
}

/// A group send to compressing clients is compressed once: every one of them gets the same bytes, a
/// client without compression gets the text, and `frames_compressed` grows by one.
#[tokio::test]
async fn a_group_send_is_compressed_once() {
    let srv = spawn(server(Compression::deflate())).await;
    let mut compressing = Vec::new();
    for _ in 0..4 {
        let mut client = connect(&srv).await;
        join(&mut client).await;
        compressing.push(client);
    }
    let mut plain = srv.connect().await;
    plain
        .send_json(json!({"type": "join", "data": "room", "id": 1}))
        .await;
    assert_eq!(plain.recv().await["data"], true);

    let before = srv.server.stats().frames_compressed;
    let shout = json!({"type": "shout", "data": {"text": "a long chat line ".repeat(120)}});
    plain.send_json(shout.clone()).await;
    all_get_the_same_compressed_frame(&mut compressing, &shout).await;
    let mut relayed = plain.recv().await;
    relayed.as_object_mut().map(|o| o.remove("from"));
    assert_eq!(relayed, shout);
    assert_eq!(srv.server.stats().frames_compressed - before, 1);
}

/// A small frame that inflates past `max_message_size` closes 1009; the others go on.
#[tokio::test]
async fn a_decompression_bomb_closes_1009() {
    let srv = spawn(server(Compression::deflate())).await;
    let mut bystander = connect(&srv).await;
    let mut attacker = connect(&srv).await;
    let bomb = format!(r#"{{"type":"echo","data":"{}"}}"#, " ".repeat(16 << 20));
    let compressed = deflate(bomb.as_bytes());
    assert!(compressed.len() < 20_000, "{}", compressed.len());
    attacker.send_frame(true, true, 1, &compressed).await;
    assert_eq!(attacker.close_code().await, 1009);
    assert_eq!(srv.server.stats().invalid_frames, 1);

    let hello = json!({"type": "echo", "data": "still here ".repeat(40)}).to_string();
    bystander.send_compressed(&hello).await;
    assert_eq!(body(&bystander.next_frame().await.text()), body(&hello));
}

/// Compressed data that does not inflate closes 1007; RSV1 on a connection that did not agree on
/// compression is a protocol error, 1002.
#[tokio::test]
async fn bad_compressed_input_gets_its_close_code() {
    let srv = spawn(server(Compression::deflate())).await;
    let mut client = connect(&srv).await;
    client.send_frame(true, true, 1, &[0xff; 32]).await;
    assert_eq!(client.close_code().await, 1007);

    let mut unagreed = DeflateClient::connect(srv.addr, "/ws", None).await;
    unagreed
        .send_frame(true, true, 1, &deflate(br#"{"type":"echo","data":1}"#))
        .await;
    assert_eq!(unagreed.close_code().await, 1002);
}

/// Behind another HTTP server (plain `axum::serve`: the socket is hyper's upgraded stream, not the
/// `TcpStream`), compression is negotiated and works the same.
#[tokio::test]
async fn behind_another_http_server() {
    let server = server(Compression::deflate()).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = server.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut client = DeflateClient::connect(addr, "/ws", Some(BROWSER_OFFER)).await;
    assert_eq!(client.extensions.as_deref(), Some(ANSWER));
    let long = json!({"type": "echo", "data": "over hyper's stream ".repeat(50)}).to_string();
    client.send_compressed(&long).await;
    let frame = client.next_frame().await;
    assert!(frame.rsv1);
    assert_eq!(body(&frame.text()), body(&long));
}

/// A group send relayed by the Redis backplane is compressed once on the node that delivers it: three
/// compressing members on node B get the same bytes, and B's `frames_compressed` grows by one.
#[tokio::test]
async fn a_relayed_group_send_is_compressed_once_per_node() {
    let redis = RedisServer::start().await;
    let node = || {
        let redis = RedisConfig::new(&redis.url())
            .expect("url")
            .heartbeat_interval(Duration::from_millis(50));
        server(Compression::deflate()).backplane(move |local| RedisBackplane::start(local, redis))
    };
    let (a, b) = (spawn(node()).await, spawn(node()).await);
    eventually("nodes linked through redis", || async {
        [&a, &b].iter().all(|n| {
            n.server
                .stats()
                .backplane
                .is_some_and(|s| s.connected && s.nodes == 1)
        })
    })
    .await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut client = connect(&b).await;
        join(&mut client).await;
        members.push(client);
    }
    eventually("node A sees the members", || async {
        a.server.group_members("room").len() == 3
    })
    .await;

    let before = b.server.stats().frames_compressed;
    let mut sender = connect(&a).await;
    let shout = json!({"type": "shout", "data": {"text": "across nodes ".repeat(100)}});
    sender.send_compressed(&shout.to_string()).await;
    all_get_the_same_compressed_frame(&mut members, &shout).await;
    assert_eq!(b.server.stats().frames_compressed - before, 1);
}
