//! Limits a client can hit (README "Slow clients and delivery policies"; docs/protocol.md "Close codes";
//! SECURITY.md): rate limit, send queue, ping/pong, blocked writes, groups per client.

use std::time::Duration;

use bench::deflate::client_frame;
use serde_json::json;
use tokio::sync::mpsc;
use ws_core::Client;
use ws_core::error::ErrorCode;
use ws_core::protocol::Message;
use ws_core::{Config, Error, Server};

use crate::support::{Closed, config, eventually, spawn};

fn echo(config: Config) -> ws_core::ServerBuilder {
    Server::builder(config).on("echo", |client: Client, msg: Message| async move {
        let _ = client.send(&msg);
    })
}

fn rate_limited(rate: u32, burst: u32) -> Config {
    config().message_rate_limit(rate).message_burst_size(burst)
}

/// docs/protocol.md "Answers to bad input", "over the rate limit": a burst past `message_burst_size` closes with 1008 "rate limit exceeded"
/// after the admitted frames were handled; a request over the limit gets `$error` `rate_limited` first.
#[tokio::test]
async fn rate_limit_closes_1008() {
    let srv = spawn(echo(rate_limited(10, 5))).await;
    let mut client = srv.connect().await;
    for i in 0..20 {
        // The sixth frame, the first over the limit, is a request: it is answered before the close.
        let frame = if i == 5 {
            json!({"type": "echo", "data": i, "id": 99})
        } else {
            json!({"type": "echo", "data": i})
        };
        client.send_json(frame).await;
    }
    for i in 0..5 {
        assert_eq!(client.recv().await["data"], i);
    }
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 99, "data": {"code": "rate_limited", "message": "rate limit exceeded"}})
    );
    assert_eq!(
        client.recv_close().await,
        Closed {
            code: 1008,
            reason: "rate limit exceeded".into()
        }
    );
    assert_eq!(srv.server.stats().rate_limit_closes, 1);
}

/// Unsolicited WebSocket pongs take tokens like any frame: a flood of them closes with 1008.
#[tokio::test]
async fn unsolicited_pongs_count_against_the_rate_limit() {
    use futures_util::SinkExt;
    let srv = spawn(echo(rate_limited(10, 5))).await;
    let mut client = srv.connect().await;
    for _ in 0..20 {
        let pong = tokio_tungstenite::tungstenite::Message::Pong(Default::default());
        client.ws.feed(pong).await.unwrap();
    }
    client.ws.flush().await.unwrap();
    assert_eq!(
        client.recv_close().await,
        Closed {
            code: 1008,
            reason: "rate limit exceeded".to_owned()
        }
    );
    assert_eq!(srv.server.stats().rate_limit_closes, 1);
}

/// Under the rate, nothing is refused: the bucket refills between bursts.
#[tokio::test]
async fn rate_limit_refills() {
    let srv = spawn(echo(rate_limited(10, 5))).await;
    let mut client = srv.connect().await;
    for round in 0..2 {
        for i in 0..5 {
            client
                .send_json(json!({"type": "echo", "data": [round, i]}))
                .await;
        }
        for i in 0..5 {
            assert_eq!(client.recv().await["data"], json!([round, i]));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(srv.server.stats().rate_limit_closes, 0);
    client.close().await;
}

/// Rate 0 disables the limiter.
#[tokio::test]
async fn rate_limit_zero_is_unlimited() {
    let srv = spawn(echo(rate_limited(0, 0))).await;
    let mut client = srv.connect().await;
    for i in 0..500 {
        client.send_json(json!({"type": "echo", "data": i})).await;
    }
    for i in 0..500 {
        assert_eq!(client.recv().await["data"], i);
    }
    client.close().await;
}

/// docs/protocol.md "Answers to bad input", "a client's send queue past its bounds": the slow consumer is dropped and leaves `connected_clients` at once; the sender
/// and other clients go on.
#[tokio::test]
async fn slow_consumer_is_dropped() {
    let srv = spawn(
        echo(config().send_queue_max_bytes(16 * 1024))
        .on("flood", |client: Client, msg: Message| async move {
            let target = msg.data.as_str().unwrap_or_default().to_owned();
            let server = client.server();
            let payload = "x".repeat(1024);
            let before = server.stats().connected_clients;
            for sent in 0..200_000u32 {
                match server.send_to_client(&target, Message::new("bulk", payload.clone())) {
                    Ok(()) => {}
                    Err(err) => {
                        let after = server.stats().connected_clients;
                        return Ok(json!({"sent": sent, "code": ws_core::Error::from(err).code().as_str(), "before": before, "after": after}));
                    }
                }
                if sent % 32 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Err(Error::internal("the slow client was never dropped"))
        }),
    )
    .await;
    let mut slow = srv.connect().await;
    let slow_id = srv.server.local_clients()[0].id().to_string();
    let mut fast = srv.connect().await;
    fast.send_json(json!({"type": "flood", "data": slow_id, "id": 1}))
        .await;
    let reply = fast.recv().await;
    assert_eq!(reply["type"], "$reply", "{reply}");
    assert_eq!(reply["data"]["code"], "limit_exceeded");
    assert_eq!(
        (
            reply["data"]["before"].as_u64(),
            reply["data"]["after"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(srv.server.stats().slow_consumer_drops, 1);
    assert!(srv.server.local_client(&slow_id).is_none());
    // The others go on.
    fast.send_json(json!({"type": "echo", "data": "still here"}))
        .await;
    assert_eq!(fast.recv().await["data"], "still here");
    // The slow client's connection ends (after whatever was already in flight).
    let ended = tokio::time::timeout(crate::support::WAIT, async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = slow.ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the dropped client's connection did not end");
}

/// docs/protocol.md "Answers to bad input", "no pong within `pong_timeout`": the connection is closed and `on_disconnect` runs; a client that
/// answers pings stays.
#[tokio::test]
async fn missing_pong_closes_connection() {
    let (tx, mut disconnected) = mpsc::unbounded_channel();
    let srv = spawn(
        echo(
            config()
                .ping_interval(Duration::from_millis(100))
                .pong_timeout(Duration::from_millis(400)),
        )
        .on_disconnect(move |c| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(c.id().to_string());
            }
        }),
    )
    .await;
    // `silent` never reads, so its WebSocket layer never answers pings.
    let silent = srv.connect().await;
    let silent_id = srv.server.local_clients()[0].id().to_string();
    let mut lively = srv.connect().await;
    // Reading is what makes the WebSocket layer answer pings, so `lively` reads while we wait.
    let (gone, ()) = tokio::join!(
        tokio::time::timeout(crate::support::WAIT, disconnected.recv()),
        lively.expect_silence(Duration::from_millis(1500)),
    );
    assert_eq!(
        gone.expect("on_disconnect ran").as_deref(),
        Some(silent_id.as_str())
    );
    assert_eq!(srv.server.stats().pong_timeouts, 1);
    lively.send_json(json!({"type": "echo", "data": 1})).await;
    assert_eq!(lively.recv().await["data"], 1);
    assert_eq!(srv.server.stats().connected_clients, 1);
    drop(silent);
}

/// docs/protocol.md "Answers to bad input", "a write blocked longer than `write_timeout`": the connection is closed.
#[tokio::test]
async fn blocked_write_closes_connection() {
    let srv = spawn(
        echo(
            config()
                .write_timeout(Duration::from_millis(300))
                .send_queue_max_bytes(1 << 30)
                .send_queue_max_lag(Duration::from_secs(3600)),
        )
        .on("flood", |client: Client, msg: Message| async move {
            let target = msg.data.as_str().unwrap_or_default().to_owned();
            let server = client.server();
            let payload = "y".repeat(64 * 1024);
            for sent in 0..4000u32 {
                if server
                    .send_to_client(&target, Message::new("bulk", payload.clone()))
                    .is_err()
                {
                    return Ok(sent);
                }
                if sent % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Err(Error::internal("the blocked client was never closed"))
        }),
    )
    .await;
    let blocked = srv.connect().await;
    let blocked_id = srv.server.local_clients()[0].id().to_string();
    let mut driver = srv.connect().await;
    driver
        .send_json(json!({"type": "flood", "data": blocked_id, "id": 1}))
        .await;
    let reply = driver.recv().await;
    assert_eq!(reply["type"], "$reply", "{reply}");
    assert_eq!(srv.server.stats().write_timeouts, 1);
    assert_eq!(srv.server.stats().slow_consumer_drops, 0);
    eventually("blocked client removed", || async {
        srv.server.local_client(&blocked_id).is_none()
    })
    .await;
    drop(blocked);
}

/// `max_groups_per_client` bounds the groups one client can make the server track.
#[tokio::test]
async fn groups_per_client_limit() {
    let srv = spawn(Server::builder(config().max_groups_per_client(3)).on(
        "join",
        |client: Client, msg: Message| async move {
            let room = msg.data.as_str().unwrap_or_default().to_owned();
            client.join(&room)
        },
    ))
    .await;
    let mut client = srv.connect().await;
    for (i, room) in ["a", "b", "c", "d"].iter().enumerate() {
        client
            .send_json(json!({"type": "join", "data": room, "id": i}))
            .await;
    }
    for i in 0..3 {
        assert_eq!(
            client.recv().await,
            json!({"type": "$reply", "id": i, "data": true})
        );
    }
    let err = client.recv().await;
    assert_eq!(err["id"], 3);
    assert_eq!(err["data"]["code"], ErrorCode::LimitExceeded.as_str());
    assert_eq!(srv.server.groups(), vec!["a", "b", "c"]);
    client.close().await;
}

/// A group name longer than `max_group_name_bytes` is refused with `limit_exceeded`; the chat example's
/// defaults refuse a 100 KB room name.
#[tokio::test]
async fn group_name_length_limit() {
    let chat = crate::support::start_example("chat", &["--port", "0"]).await;
    let (mut ann, _) = chat.join("ann").await;
    let longest = "r".repeat(256);
    ann.send_json(json!({"type": "join", "data": {"room": longest}, "id": 1}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "$reply", "id": 1, "data": {"room": longest, "joined": true}})
    );
    for (id, len) in [(2, 257), (3, 100_000)] {
        ann.send_json(json!({"type": "join", "data": {"room": "r".repeat(len)}, "id": id}))
            .await;
        assert_eq!(
            ann.recv().await,
            json!({"type": "$error", "id": id, "data": {"code": "limit_exceeded", "message": "group name longer than 256 bytes"}})
        );
    }
    ann.send_json(json!({"type": "whoami", "id": 4})).await;
    assert_eq!(ann.recv().await["data"]["groups"], json!([longest]));
}

/// A masked client frame (mask key 0, so the payload goes as it is), written under the WebSocket layer.
async fn write_raw_frame(
    client: &mut crate::support::WsClient,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) {
    use tokio::io::AsyncWriteExt;
    match client.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp
            .write_all(&client_frame(fin, false, opcode, payload))
            .await
            .unwrap(),
        _ => unreachable!("plain TCP in tests"),
    }
}

/// docs/protocol.md "Answers to bad input", "a message not complete within `message_timeout`": the first
/// fragment of a message whose last never comes, kept alive with pings, is closed with 1008 once the
/// deadline passes; whole messages sent slowly, one by one, are not.
#[tokio::test]
async fn a_message_never_completed_closes_1008() {
    let timeout = Duration::from_millis(400);
    let srv = spawn(echo(config().message_timeout(timeout))).await;
    let mut patient = srv.connect().await;
    let mut stuck = srv.connect().await;
    write_raw_frame(&mut stuck, false, 0x1, br#"{"type":"echo","#).await;
    for _ in 0..3 {
        write_raw_frame(&mut stuck, true, 0x9, b"alive").await;
        // Whole messages, slower than the deadline altogether, each on time.
        patient.send_json(json!({"type": "echo", "data": 1})).await;
        assert_eq!(patient.recv().await["data"], 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        stuck.recv_close().await,
        Closed {
            code: 1008,
            reason: "message not completed in time".into()
        }
    );
    patient.send_json(json!({"type": "echo", "data": 2})).await;
    assert_eq!(patient.recv().await["data"], 2);
}

/// A frame header trickled byte by byte, slower than `message_timeout`, closes with 1008 too.
#[tokio::test]
async fn a_trickled_frame_closes_1008() {
    let srv = spawn(echo(config().message_timeout(Duration::from_millis(300)))).await;
    let mut client = srv.connect().await;
    for byte in [0x81u8, 0xfe] {
        use tokio::io::AsyncWriteExt;
        match client.ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(&[byte]).await.unwrap(),
            _ => unreachable!("plain TCP in tests"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.recv_close().await.code, 1008);
}

/// docs/protocol.md "Answers to bad input", "over the rate limit": a message sent in many continuation
/// frames takes a token per frame, so 20 fragments against a burst of 5 close with 1008; the same
/// message in one frame passes.
#[tokio::test]
async fn continuation_frames_count_against_the_rate_limit() {
    let srv = spawn(echo(rate_limited(10, 5))).await;
    let mut whole = srv.connect().await;
    whole
        .send_json(json!({"type": "echo", "data": "x".repeat(19)}))
        .await;
    assert_eq!(whole.recv().await["data"], "x".repeat(19));

    let mut fragmented = srv.connect().await;
    let text = json!({"type": "echo", "data": "x".repeat(19)}).to_string();
    let parts: Vec<&[u8]> = text.as_bytes().chunks(text.len().div_ceil(20)).collect();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        write_raw_frame(&mut fragmented, i == parts.len() - 1, opcode, part).await;
    }
    assert_eq!(
        fragmented.recv_close().await,
        Closed {
            code: 1008,
            reason: "rate limit exceeded".into()
        }
    );
}

/// docs/protocol.md "Answers to bad input", "metadata past `max_metadata_bytes`": `set_metadata` fails
/// with `limit_exceeded` and stores nothing; replacing a value counts the new one only.
#[tokio::test]
async fn metadata_past_its_bound_is_refused() {
    let srv = spawn(Server::builder(config().max_metadata_bytes(64)).on(
        "set",
        |client: Client, msg: Message| async move {
            let key = msg.data["key"].as_str().unwrap_or_default().to_owned();
            client.set_metadata(key, msg.data["value"].clone())
        },
    ))
    .await;
    let mut client = srv.connect().await;
    let set = |id: u64, key: &str, len: usize| json!({"type": "set", "id": id, "data": {"key": key, "value": "v".repeat(len)}});
    // "name" (4) + 40 characters in quotes (42) = 46 bytes.
    client.send_json(set(1, "name", 40)).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": null})
    );
    client.send_json(set(2, "more", 20)).await;
    let err = client.recv().await;
    assert_eq!(
        (err["id"].clone(), err["data"]["code"].clone()),
        (json!(2), json!("limit_exceeded"))
    );
    client.send_json(set(3, "name", 55)).await;
    assert_eq!(client.recv().await["type"], "$reply");
    let stored = srv.server.local_clients()[0].get_metadata("name");
    assert_eq!(stored, Some(json!("v".repeat(55))));
    assert_eq!(srv.server.local_clients()[0].get_metadata("more"), None);
    client.close().await;
}

/// docs/protocol.md "Answers to bad input", "a hook still running after `hook_timeout`": a hung
/// `on_disconnect` is dropped and reported to `on_error`, and the client's slot and groups are freed.
#[tokio::test]
async fn a_hung_on_disconnect_hook_is_dropped() {
    let (errors, mut errors_rx) = mpsc::unbounded_channel();
    let srv = spawn(
        Server::builder(config().hook_timeout(Duration::from_millis(200)))
            .on("join", |client: Client, _: Message| async move {
                client.join("g")
            })
            .on_disconnect(|_| std::future::pending())
            .on_error(move |_, err| {
                let _ = errors.send(err.detail().unwrap_or_default().to_owned());
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "join", "id": 1})).await;
    assert_eq!(client.recv().await["type"], "$reply");
    client.close().await;
    let err = tokio::time::timeout(Duration::from_secs(5), errors_rx.recv())
        .await
        .expect("on_error within the wait")
        .unwrap();
    assert!(err.starts_with("hook still running after"), "{err}");
    eventually("slot and group freed", || async {
        srv.server.stats().connected_clients == 0 && srv.server.groups().is_empty()
    })
    .await;
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// SECURITY.md "Memory one connection can hold": ten connections to the chat example each try to make the
/// server hold more than the defaults allow — 256 joins with 10 KB room names, then 256 rooms of 256-byte
/// names, the longest user name, a 500 KB message whose last fragment never comes — and the server's
/// resident memory grows by less than the documented worst case of one connection (2.4 MiB) each.
#[tokio::test]
async fn one_connection_holds_less_than_the_documented_worst_case() {
    const CONNECTIONS: u64 = 10;
    const WORST_CASE_KIB: u64 = 2400;
    let chat = crate::support::start_example("chat", &["--port", "0", "--rate-limit", "0"]).await;
    let pid = chat.child.id().expect("chat's pid");
    let (warm, _) = chat.join("warm").await;
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for c in 0..CONNECTIONS {
        let (mut client, _) = chat.join(&format!("{c:x>32}")).await;
        for i in 0..256 {
            let room = format!("{c}-{i:x>10000}");
            client
                .send_json(json!({"type": "join", "data": {"room": room}, "id": i}))
                .await;
            assert_eq!(client.recv().await["data"]["code"], "limit_exceeded");
        }
        for i in 0..256 {
            let room = format!("{c}-{i:x>252}");
            client
                .send_json(json!({"type": "join", "data": {"room": room}, "id": i}))
                .await;
            assert_eq!(client.recv().await["data"]["joined"], true);
        }
        let part = vec![b'x'; 62_500];
        write_raw_frame(&mut client, false, 0x1, &part).await;
        for _ in 0..7 {
            write_raw_frame(&mut client, false, 0x0, &part).await;
        }
        held.push(client);
    }
    // Let the server read what the sockets hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_kib(pid).saturating_sub(before);
    let per_connection = grown / CONNECTIONS;
    eprintln!("chat grew by {grown} KiB for {CONNECTIONS} connections: {per_connection} KiB each");
    assert!(
        per_connection < WORST_CASE_KIB,
        "{per_connection} KiB per connection"
    );
    drop((held, warm));
}

/// SECURITY.md "Memory one connection can hold", with compression: ten connections to the chat example (which
/// has permessage-deflate on) each send a compressed message that inflates to 480 KB, in a first fragment
/// whose last one never comes, so each holds a pooled decompressor and the inflated message; the server grows
/// by less than the documented worst case plus what compression adds (76 KiB) per connection.
#[tokio::test]
async fn a_compressed_message_held_open_stays_within_the_documented_worst_case() {
    const CONNECTIONS: u64 = 10;
    const WORST_CASE_KIB: u64 = 2400 + 76;
    let chat = crate::support::start_example("chat", &["--port", "0", "--rate-limit", "0"]).await;
    let pid = chat.child.id().expect("chat's pid");
    let (warm, _) = chat.join("warm").await;
    let before = rss_kib(pid);
    let text = format!(
        r#"{{"type":"chat","data":{{"text":"{}"#,
        "x".repeat(480_000)
    );
    let compressed = crate::support::deflate::deflate(text.as_bytes());
    let mut held = Vec::new();
    for c in 0..CONNECTIONS {
        let path = format!("/ws?token=deflating{c}");
        let offer = Some(crate::support::deflate::BROWSER_OFFER);
        let mut client =
            crate::support::deflate::DeflateClient::connect(chat.addr, &path, offer).await;
        assert!(client.extensions.is_some(), "the chat compresses");
        client.send_frame(false, true, 0x1, &compressed).await;
        held.push(client);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_kib(pid).saturating_sub(before);
    let per_connection = grown / CONNECTIONS;
    eprintln!(
        "chat grew by {grown} KiB for {CONNECTIONS} compressing connections: {per_connection} KiB each"
    );
    assert!(
        per_connection < WORST_CASE_KIB,
        "{per_connection} KiB per connection"
    );
    assert!(
        per_connection > 400,
        "{per_connection} KiB per connection: the messages were not inflated"
    );
    drop((held, warm));
}
