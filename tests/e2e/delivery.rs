//! Delivery to clients that are behind (README "Slow clients and delivery policies"): the send queue's
//! bounds in bytes and lag, and the `volatile` and `latest` policies of outbound variants.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use ws_core::delivery::Delivery;
use ws_core::handler::Request;
use ws_core::protocol::{Frame, Message};
use ws_core::{Client, Config, Error, Server, ws_messages};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::support::deflate::{DeflateClient, WireFrame};
use crate::support::{WAIT, WsClient, config, spawn};

#[ws_messages(outbound)]
pub enum Outbound {
    Chat {
        text: String,
    },
    #[ws(volatile)]
    Typing {
        user: String,
    },
    #[ws(latest = "user")]
    Cursor {
        user: String,
        x: u32,
    },
    #[ws(latest)]
    Progress(u32),
}

/// Reads `n` frames as JSON.
async fn recv_n(client: &mut WsClient, n: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(client.recv().await);
    }
    frames
}

/// Sends every message of `script` to the requesting client in one go: the handler does not yield, so the
/// client's write task has taken none of them yet and each push sees the ones before it still waiting.
fn scripted(config: Config, script: fn() -> Vec<Outbound>) -> ws_core::ServerBuilder {
    Server::builder(config).on("go", move |req: Request| async move {
        for msg in script() {
            req.client().send(msg)?;
        }
        Ok::<_, Error>(())
    })
}

/// A config under which every volatile message finds its client behind, once anything is queued for it.
fn volatile_skipped_when_anything_waits() -> Config {
    config().send_queue_volatile_bytes(0)
}

/// `latest = "user"`: a newer cursor of the same user replaces the waiting one in place, other users'
/// cursors and other messages keep their order; `latest` without a key coalesces per type.
#[tokio::test]
async fn latest_replaces_the_waiting_frame_with_the_same_key() {
    let srv = spawn(scripted(config(), || {
        let cursor = |user: &str, x| Outbound::Cursor {
            user: user.into(),
            x,
        };
        let mut script = vec![
            cursor("ann", 0),
            Outbound::Chat { text: "hi".into() },
            cursor("bob", 0),
        ];
        for x in 1..=50 {
            script.push(cursor("ann", x));
            script.push(cursor("bob", 100 + x));
            script.push(Outbound::Progress(x));
        }
        script
    }))
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "go", "id": 1})).await;
    assert_eq!(
        recv_n(&mut client, 5).await,
        [
            json!({"type": "cursor", "data": {"user": "ann", "x": 50}}),
            json!({"type": "chat", "data": {"text": "hi"}}),
            json!({"type": "cursor", "data": {"user": "bob", "x": 150}}),
            json!({"type": "progress", "data": 50}),
            json!({"type": "$reply", "id": 1, "data": null}),
        ]
    );
    client.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(srv.server.stats().coalesced, 50 + 50 + 49);
}

/// `volatile`: skipped for a client whose queue holds more than `send_queue_volatile_bytes`, delivered to
/// one that is not behind; reliable messages are never skipped.
#[tokio::test]
async fn volatile_is_skipped_for_a_client_that_is_behind() {
    let srv = spawn(scripted(volatile_skipped_when_anything_waits(), || {
        vec![
            Outbound::Typing { user: "ann".into() },
            Outbound::Typing { user: "bob".into() },
            Outbound::Chat { text: "a".into() },
            Outbound::Typing { user: "cy".into() },
            Outbound::Chat { text: "b".into() },
        ]
    }))
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "go", "id": 1})).await;
    assert_eq!(
        recv_n(&mut client, 4).await,
        [
            json!({"type": "typing", "data": {"user": "ann"}}),
            json!({"type": "chat", "data": {"text": "a"}}),
            json!({"type": "chat", "data": {"text": "b"}}),
            json!({"type": "$reply", "id": 1, "data": null}),
        ],
        "the first volatile found an empty queue; the others did not"
    );
    assert_eq!(srv.server.stats().dropped_volatile, 2);
}

/// Untyped frames take a policy with `Frame::with_delivery`, and a broadcast applies it per recipient.
#[tokio::test]
async fn untyped_frames_carry_a_policy_through_a_broadcast() {
    let srv = spawn(
        Server::builder(config()).on("go", |req: Request| async move {
            for x in 0..10 {
                let msg = Message::new("pos", json!({"x": x}));
                let frame = Frame::from_message(&msg).with_delivery(Delivery::latest("pos"));
                req.server().all().send(frame);
            }
            Ok::<_, Error>(())
        }),
    )
    .await;
    let mut a = srv.connect().await;
    let mut b = srv.connect().await;
    a.send_json(json!({"type": "go", "id": 1})).await;
    assert_eq!(
        recv_n(&mut a, 2).await,
        [
            json!({"type": "pos", "data": {"x": 9}}),
            json!({"type": "$reply", "id": 1, "data": null})
        ]
    );
    assert_eq!(b.recv().await, json!({"type": "pos", "data": {"x": 9}}));
    assert_eq!(srv.server.stats().coalesced, 18);
}

/// A client that stops reading is dropped once its socket has refused the server's writes for
/// `send_queue_max_lag`, while a client that pauses for less than that and catches up is kept and misses
/// nothing.
#[tokio::test]
async fn a_stalled_reader_is_dropped_and_a_briefly_lagging_one_is_kept() {
    const FRAME: usize = 256 * 1024;
    let srv = spawn(Server::builder(
        config()
            .send_queue_max_bytes(1 << 30)
            .send_queue_max_lag(Duration::from_millis(1500))
            .write_timeout(Duration::from_secs(60)),
    ))
    .await;
    let stalled = srv.connect().await;
    let stalled_id = srv.server.local_clients()[0].id().clone();
    let mut lagging = srv.connect().await;
    let server = srv.server.clone();
    // About 25 MB/s to each client: the kernel's socket buffers fill within a fraction of a second, then
    // frames wait in the queue. Bounded: 1 200 frames, or until the stalled client is gone for a while.
    let publisher = tokio::spawn(async move {
        let payload = "z".repeat(FRAME);
        let mut after_drop = 0;
        for n in 0..1200u32 {
            server.all().send(Message::new("bulk", json!([n, payload])));
            if server.local_client(stalled_id.as_str()).is_none() {
                after_drop += 1;
                if after_drop == 50 {
                    return n + 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        1200
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut expected = 0u32;
    let sent = loop {
        let frame = lagging.recv().await;
        assert_eq!(frame["data"][0], expected, "in order, none missing");
        expected += 1;
        if publisher.is_finished() {
            let sent = publisher.await.unwrap();
            for n in expected..sent {
                assert_eq!(lagging.recv().await["data"][0], n);
            }
            break sent;
        }
    };
    assert!(
        sent < 1200,
        "the stalled client was dropped before the publisher ran out"
    );
    assert_eq!(srv.server.stats().slow_consumer_drops, 1);
    assert_eq!(
        srv.server.stats().connected_clients,
        1,
        "the lagging client stayed"
    );
    // Its socket could not take a close frame, so it was reset: no FIN waits behind megabytes of unsent
    // frames for a peer that does not read.
    let mut stalled = stalled;
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match stalled.ws.next().await {
                Some(Ok(WsMessage::Close(frame))) => return format!("close frame {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return format!("error {err}"),
                None => return "end of stream".to_owned(),
            }
        }
    })
    .await
    .expect("the stalled connection ended");
    assert!(end.contains("Connection reset by peer"), "{end}");
}

/// A client is not dropped for the server's own backlog: frames that waited past `send_queue_max_lag`
/// because the server was busy (here a handler holding the only worker thread, so the write task cannot
/// run) are all delivered, since the client's socket took every write it was offered.
#[tokio::test]
async fn frames_waiting_for_a_busy_server_do_not_drop_a_client_that_reads() {
    let srv = spawn(
        Server::builder(config().send_queue_max_lag(Duration::from_millis(50))).on(
            "go",
            |req: Request| async move {
                for n in 0..4 {
                    req.client().send(Message::new("n", json!(n)))?;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok::<_, Error>(())
            },
        ),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "go", "id": 1})).await;
    let frames = recv_n(&mut client, 5).await;
    let numbers: Vec<_> = frames[..4].iter().map(|f| f["data"].clone()).collect();
    assert_eq!(numbers, [json!(0), json!(1), json!(2), json!(3)]);
    assert_eq!(frames[4], json!({"type": "$reply", "id": 1, "data": null}));
    assert_eq!(srv.server.stats().slow_consumer_drops, 0);
}

/// The stats, and their metrics page, count what the policies did per reason.
#[tokio::test]
async fn drops_are_counted_per_reason_in_metrics() {
    let srv = spawn(scripted(volatile_skipped_when_anything_waits(), || {
        vec![
            Outbound::Chat { text: "x".into() },
            Outbound::Typing { user: "a".into() },
            Outbound::Progress(1),
            Outbound::Progress(2),
        ]
    }))
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "go", "id": 1})).await;
    recv_n(&mut client, 3).await;
    let text = srv.server.metrics_text();
    for line in [
        "ws_dropped_volatile_total 1\n",
        "ws_coalesced_total 1\n",
        "ws_slow_consumer_drops_total 0\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

/// With `socket_unsent_bytes`, the kernel holds little for a client that does not read, so the send
/// queue's byte bound sees the backlog: 2 MiB sent to a stalled client with a 256 KiB bound drop it.
#[tokio::test]
async fn socket_unsent_bytes_keeps_the_backlog_in_the_send_queue() {
    let srv = spawn(Server::builder(
        config()
            .socket_unsent_bytes(16 * 1024)
            .send_queue_max_bytes(256 * 1024),
    ))
    .await;
    let stalled = srv.connect().await;
    let id = srv.server.local_clients()[0].id().clone();
    let payload = "s".repeat(64 * 1024);
    for n in 0..32 {
        if srv
            .server
            .send_to_client(id.as_str(), Message::new("bulk", json!([n, payload])))
            .is_err()
        {
            break;
        }
        // Lets the write task hand what the kernel takes to the socket.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(srv.server.stats().slow_consumer_drops, 1);
    drop(stalled);
}

/// Six clients sending to one room at once, their handlers on different worker threads: every member gets
/// every line, each sender's lines in the order it sent them, and no member is dropped as a slow consumer,
/// since both read all they are sent (README "Slow clients and delivery policies").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_keep_their_order_and_no_reader_is_dropped() {
    const SENDERS: usize = 6;
    const LINES: u64 = 1500;
    // Lines a sender sends before it waits for a reply: well within `inbound_queue_capacity`.
    const WINDOW: u64 = 50;
    let srv = spawn(
        Server::builder(config().message_rate_limit(0))
            .on("join", |c: Client| async move { c.join("r") })
            .on("say", |c: Client, m: Message| async move {
                c.to("r")
                    .send(Message::new("line", m.data).with_from(c.id().as_str()));
            })
            .on("sync", || async {}),
    )
    .await;
    let mut listeners = Vec::new();
    for _ in 0..2 {
        let mut listener = srv.connect().await;
        listener.send_json(json!({"type": "join", "id": 1})).await;
        assert_eq!(listener.recv().await["type"], "$reply");
        listeners.push(tokio::spawn(async move {
            let mut next: HashMap<String, u64> = HashMap::new();
            for _ in 0..SENDERS as u64 * LINES {
                let frame = listener.recv().await;
                let from = frame["from"].as_str().expect("from").to_owned();
                let n = frame["data"].as_u64().expect("line number");
                let expected = next.entry(from.clone()).or_default();
                assert_eq!(n, *expected, "line of {from} out of order or missing");
                *expected += 1;
            }
            next
        }));
    }
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let mut sender = srv.connect().await;
        senders.push(tokio::spawn(async move {
            for window in 0..LINES / WINDOW {
                for n in window * WINDOW..(window + 1) * WINDOW {
                    sender.send_json(json!({"type": "say", "data": n})).await;
                }
                let answer = sender.ask("sync", Value::Null, window).await;
                assert_eq!(answer["type"], "$reply");
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    for listener in listeners {
        let next = listener.await.expect("listener got every line in order");
        assert_eq!(next.len(), SENDERS);
        assert!(next.values().all(|&n| n == LINES), "{next:?}");
    }
    assert_eq!(srv.server.stats().slow_consumer_drops, 0);
}

/// Sends `first`, then `second` after `gap`, to the requesting client.
fn two_frames_apart(config: Config, gap: Duration) -> ws_core::ServerBuilder {
    Server::builder(config).on("go", move |req: Request| async move {
        req.client().send(Outbound::Chat {
            text: "first".into(),
        })?;
        tokio::time::sleep(gap).await;
        req.client().send(Outbound::Chat {
            text: "second".into(),
        })?;
        Ok::<_, Error>(())
    })
}

/// `write_delay`: the write task waits that long once frames are queued, and sends what was queued
/// meanwhile with them in one write (one read on loopback); by default each goes out when queued.
#[tokio::test]
async fn write_delay_sends_the_frames_queued_meanwhile_in_one_write() {
    let gap = Duration::from_millis(400);
    let texts = |frames: Vec<WireFrame>| -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                serde_json::from_str::<Value>(&f.text()).expect("JSON")["data"]["text"].to_string()
            })
            .collect()
    };

    let delayed = spawn(two_frames_apart(
        config().write_delay(Duration::from_secs(1)),
        gap,
    ))
    .await;
    let mut client = DeflateClient::connect(delayed.addr, "/ws", None).await;
    let asked = std::time::Instant::now();
    client.send_frame(true, false, 1, br#"{"type":"go"}"#).await;
    let frames = client.frames_of_next_read().await;
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "written after the delay, not {:?} after the request",
        asked.elapsed()
    );
    assert_eq!(texts(frames), [r#""first""#, r#""second""#]);

    let at_once = spawn(two_frames_apart(config(), gap)).await;
    let mut client = DeflateClient::connect(at_once.addr, "/ws", None).await;
    client.send_frame(true, false, 1, br#"{"type":"go"}"#).await;
    assert_eq!(texts(client.frames_of_next_read().await), [r#""first""#]);
    assert_eq!(texts(client.frames_of_next_read().await), [r#""second""#]);
}
