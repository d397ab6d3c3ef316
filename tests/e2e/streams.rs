//! Typed streams (`ws_core::stream`): a request answered by chunks, read whole, cancelled, resumed after a
//! cut (on its node, and through another node of a Redis backplane), held back by a slow reader, ended by a
//! handler's error, and the limits and refusals around them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use ws_core::extract::State;
use ws_core::stream::Chunks;
use ws_core::{Config, Error, Server, close, on, payload, ws_messages};

use ws_core::backplane::{RedisBackplane, RedisConfig};

use crate::support::redis::{RedisServer, fast, linked};
use crate::support::{TestServer, WsClient, eventually, spawn};

#[payload]
#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) n: u32,
    pub(crate) text: String,
}

#[ws_messages]
pub(crate) enum Inbound {
    /// Chunks 1..=to, each with `pad` bytes of text, `delay_ms` apart.
    #[ws(stream = Token)]
    Count { to: u32, pad: usize, delay_ms: u64 },
    /// `after` chunks, then `forbidden`.
    #[ws(stream = Token)]
    Fail { after: u32 },
}

/// What the producers did: items made, and handlers whose future was dropped before the end.
#[derive(Clone, Default)]
struct Work {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

/// Counts a handler's future dropped before it finished (a cancel).
struct DropGuard(Arc<AtomicU64>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[on(Inbound::Count)]
async fn count(
    State(work): State<Work>,
    mut chunks: Chunks<Token>,
    msg: inbound::Count,
) -> Result<(), Error> {
    let mut guard = DropGuard(work.dropped.clone(), false);
    for n in 1..=msg.to {
        chunks
            .send(Token {
                n,
                text: "x".repeat(msg.pad),
            })
            .await?;
        work.produced.fetch_add(1, Ordering::SeqCst);
        if msg.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(msg.delay_ms)).await;
        }
    }
    guard.1 = true;
    Ok(())
}

#[on(Inbound::Fail)]
async fn fail(mut chunks: Chunks<Token>, msg: inbound::Fail) -> Result<(), Error> {
    for n in 1..=msg.after {
        chunks
            .send(Token {
                n,
                text: String::new(),
            })
            .await?;
    }
    Err(Error::forbidden("no more for you"))
}

async fn server(config: Config) -> (TestServer, Work) {
    let work = Work::default();
    let srv = spawn(
        Server::builder(config.port(0))
            .with_state(work.clone())
            .handle(count)
            .handle(fail),
    )
    .await;
    (srv, work)
}

async fn connect(srv: &TestServer) -> WsClient {
    WsClient::connect(&srv.url("/ws")).await
}

/// Reads the `$stream` that opens request `id` and returns its key.
async fn opened(ws: &mut WsClient, id: u64) -> String {
    let frame = ws.recv().await;
    assert_eq!(
        (&frame["type"], &frame["id"]),
        (&json!("$stream"), &json!(id)),
        "{frame}"
    );
    frame["data"]["stream"].as_str().expect("a key").to_owned()
}

/// Reads chunks of request `id` until `last` (its `seq`), checking that they come once each, in order,
/// from `first`.
async fn chunks(ws: &mut WsClient, id: u64, first: u64, last: u64) {
    for seq in first..=last {
        let frame = ws.recv().await;
        assert_eq!(frame["type"], "$chunk", "{frame}");
        assert_eq!(
            (frame["id"].as_u64(), frame["seq"].as_u64()),
            (Some(id), Some(seq))
        );
        assert_eq!(frame["data"]["n"].as_u64(), Some(seq));
    }
}

async fn end(ws: &mut WsClient, id: u64) -> Value {
    let frame = ws.recv().await;
    assert_eq!(frame["id"], id, "{frame}");
    frame
}

/// README "Typed streams": `$stream` with the key, every chunk once in order with its `seq`, then `$end`
/// with the count.
#[tokio::test]
async fn a_thousand_chunks_are_read_whole() {
    let (srv, work) = server(Config::default()).await;
    let mut ws = connect(&srv).await;
    ws.send_json(json!({"type": "count", "id": 1, "data": {"to": 1000, "pad": 10, "delay_ms": 0}}))
        .await;
    let key = opened(&mut ws, 1).await;
    assert_eq!(key.len(), 32);
    chunks(&mut ws, 1, 1, 1000).await;
    let end = end(&mut ws, 1).await;
    assert_eq!(
        end,
        json!({"type": "$end", "id": 1, "data": {"count": 1000}})
    );
    assert_eq!(work.produced.load(Ordering::SeqCst), 1000);
    assert_eq!(srv.server.stats().streams_started, 1);
}

/// README "Typed streams": `$cancel` drops the handler's future, so its work stops, and nothing more is
/// sent for it.
#[tokio::test]
async fn a_cancel_stops_the_handler() {
    let (srv, work) = server(Config::default()).await;
    let mut ws = connect(&srv).await;
    ws.send_json(
        json!({"type": "count", "id": 7, "data": {"to": 1_000_000, "pad": 0, "delay_ms": 1}}),
    )
    .await;
    opened(&mut ws, 7).await;
    chunks(&mut ws, 7, 1, 50).await;
    ws.send_json(json!({"type": "$cancel", "data": {"id": 7}}))
        .await;
    eventually("the handler's future dropped", || async {
        work.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    let stopped = work.produced.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        work.produced.load(Ordering::SeqCst),
        stopped,
        "no work after the cancel"
    );
    assert!(stopped < 1000);
    assert_eq!(srv.server.stats().streams_cancelled, 1);
    // What was in flight before the cancel may still arrive; nothing after, and no end.
    let quiet = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let frame = ws.recv().await;
            assert_eq!(
                frame["type"], "$chunk",
                "only chunks sent before the cancel: {frame}"
            );
        }
    })
    .await;
    assert!(quiet.is_err());
}

/// README "Typed streams": a reader cut after chunk 300 resumes on a new connection with `$resume` and
/// gets chunks 301 to 1000 once each, in order, then the end.
#[tokio::test]
async fn a_stream_cut_after_300_chunks_resumes_where_it_broke() {
    let (srv, _) = server(Config::default()).await;
    cut_after_300_then_resume(&srv, &srv).await;
    assert_eq!(srv.server.stats().streams_resumed, 1);
}

/// Starts a stream of 1 000 chunks on `runs`, reads 300, has `runs` cut the connection, resumes the
/// stream on a new connection to `resumes_on`, and checks chunks 301 to 1 000 once each, in order, then the
/// end.
async fn cut_after_300_then_resume(runs: &TestServer, resumes_on: &TestServer) {
    let mut first = connect(runs).await;
    first
        .send_json(
            json!({"type": "count", "id": 1, "data": {"to": 1000, "pad": 20, "delay_ms": 1}}),
        )
        .await;
    let key = opened(&mut first, 1).await;
    chunks(&mut first, 1, 1, 300).await;
    let reader = runs.server.local_clients()[0].id().clone();
    assert!(
        runs.server
            .disconnect_client(&reader, close::GOING_AWAY, "cut")
    );
    drop(first);

    let mut second = connect(resumes_on).await;
    second
        .send_json(json!({"type": "$resume", "id": 2, "data": {"stream": key, "after": 300}}))
        .await;
    assert_eq!(opened(&mut second, 2).await, key);
    chunks(&mut second, 2, 301, 1000).await;
    let end = end(&mut second, 2).await;
    assert_eq!(
        (&end["type"], &end["data"]["count"]),
        (&json!("$end"), &json!(1000))
    );
}

/// README "Typed streams": a reader that does not read holds its producer back, so the server's memory
/// for it stays within the window: the producer stops, far short of what it was asked for.
#[tokio::test]
async fn a_reader_that_does_not_read_holds_the_producer_back() {
    let (srv, work) = server(Config::default()).await;
    let mut ws = connect(&srv).await;
    ws.send_json(
        json!({"type": "count", "id": 1, "data": {"to": 1_000_000, "pad": 1000, "delay_ms": 0}}),
    )
    .await;
    let mut last = 0;
    let mut paused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = work.produced.load(Ordering::SeqCst);
        if now == last && now > 0 {
            paused = true;
            break;
        }
        last = now;
    }
    assert!(paused, "the producer keeps going: {last} items");
    // What the kernel's socket buffers took, plus the 64 KiB window: a few thousand 1 KiB items at most.
    assert!(
        last < 20_000,
        "{last} items made for a reader that read none"
    );
    // Reading again lets it go on.
    opened(&mut ws, 1).await;
    chunks(&mut ws, 1, 1, last + 100).await;
}

/// README "Typed streams": a handler's error ends the stream with `$error` and the request's `id`, after
/// the chunks it sent.
#[tokio::test]
async fn a_handler_error_ends_the_stream_with_it() {
    let (srv, _) = server(Config::default()).await;
    let mut ws = connect(&srv).await;
    ws.send_json(json!({"type": "fail", "id": 4, "data": {"after": 3}}))
        .await;
    opened(&mut ws, 4).await;
    chunks(&mut ws, 4, 1, 3).await;
    let end = end(&mut ws, 4).await;
    assert_eq!(
        end,
        json!({"type": "$error", "id": 4, "data": {"code": "forbidden", "message": "no more for you"}})
    );
}

/// docs/protocol.md "Streams": what cannot be served gets its answer — a stream request without `id`, one
/// stream too many for a client, a resume of an unknown key, and one from before what is kept.
#[tokio::test]
async fn refusals_are_answered() {
    let config = Config::default()
        .max_streams_per_client(2)
        .stream_kept_chunks(10);
    let (srv, _) = server(config).await;
    let mut ws = connect(&srv).await;

    ws.send_json(json!({"type": "count", "data": {"to": 1, "pad": 0, "delay_ms": 0}}))
        .await;
    let refused = ws.recv().await;
    assert_eq!(
        (&refused["type"], &refused["data"]["code"]),
        (&json!("$error"), &json!("invalid_data"))
    );

    for id in [1, 2] {
        ws.send_json(
            json!({"type": "count", "id": id, "data": {"to": 1_000_000, "pad": 0, "delay_ms": 5}}),
        )
        .await;
    }
    let mut keys = std::collections::HashMap::new();
    while keys.len() < 2 {
        let frame = ws.recv().await;
        if frame["type"] == "$stream" {
            keys.insert(frame["id"].as_u64(), frame["data"]["stream"].clone());
        }
    }
    let key = keys[&Some(1)].clone();
    ws.send_json(json!({"type": "count", "id": 3, "data": {"to": 1, "pad": 0, "delay_ms": 0}}))
        .await;
    let third = ws.answer(3).await;
    assert_eq!(third["data"]["code"], "limit_exceeded", "{third}");

    let unknown = ws
        .ask(
            "$resume",
            json!({"stream": "0123456789abcdef0123456789abcdef", "after": 0}),
            4,
        )
        .await;
    assert_eq!(unknown["data"]["code"], "not_found", "{unknown}");

    // Stream 1 has sent more than the 10 chunks it keeps: a resume from chunk 1 cannot be served.
    let mut seen = 0;
    while seen < 30 {
        let frame = ws.recv().await;
        if frame["type"] == "$chunk" && frame["id"] == 1 {
            seen = frame["seq"].as_u64().unwrap_or(0);
        }
    }
    let expired = ws
        .ask("$resume", json!({"stream": key, "after": 0}), 5)
        .await;
    assert_eq!(expired["data"]["code"], "expired", "{expired}");
}

#[ws_messages(outbound)]
pub(crate) enum Outbound {
    Note { text: String },
}

type StreamClient = ws_client::Client<Inbound, Outbound>;

/// README "Typed streams": the Rust client reads a stream typed by the variant's item, resumes it by itself
/// after the server cut its connection after item 300 (every item once, in order), and gets a handler's
/// error typed.
#[tokio::test]
async fn the_rust_client_resumes_across_a_cut_and_types_the_error() {
    let (srv, _) = server(Config::default()).await;
    let client: StreamClient = StreamClient::connect(srv.url("/ws"))
        .await
        .expect("connects");
    let mut tokens = client
        .stream(inbound::Count {
            to: 1000,
            pad: 20,
            delay_ms: 1,
        })
        .expect("stream opened");
    for n in 1..=300 {
        let token = tokens.next().await.expect("an item").expect("not an error");
        assert_eq!(token.n, n);
    }
    let reader = srv.server.local_clients()[0].id().clone();
    assert!(
        srv.server
            .disconnect_client(&reader, close::GOING_AWAY, "cut")
    );
    for n in 301..=1000 {
        let token = tokens.next().await.expect("an item").expect("not an error");
        assert_eq!(token.n, n, "each item once, in order");
    }
    assert!(tokens.next().await.is_none(), "the end after item 1000");
    assert_eq!(srv.server.stats().total_connections, 2);
    assert_eq!(srv.server.stats().streams_resumed, 1);

    let mut failing = client
        .stream(inbound::Fail { after: 2 })
        .expect("stream opened");
    assert_eq!(failing.next().await.unwrap().unwrap().n, 1);
    assert_eq!(failing.next().await.unwrap().unwrap().n, 2);
    match failing.next().await {
        Some(Err(ws_client::ClientError::Server(e))) => {
            assert_eq!(
                (e.code().as_str(), e.message()),
                ("forbidden", "no more for you")
            );
        }
        other => panic!("expected the handler's error, got {other:?}"),
    }
    assert!(failing.next().await.is_none());
    client.close();
}

/// README "Typed streams": through a Redis backplane, a reader cut from the node that runs its stream
/// resumes through another node — chunks 301 to 1 000 once each, in order, then the end — and a resume of a
/// key no node keeps is `not_found`.
#[tokio::test]
async fn a_stream_resumes_through_another_node() {
    let redis = RedisServer::start().await;
    let work = Work::default();
    let node = |redis: RedisConfig| {
        Server::builder(Config::default().port(0))
            .with_state(work.clone())
            .handle(count)
            .handle(fail)
            .backplane(move |local| RedisBackplane::start(local, redis))
    };
    let a = spawn(node(fast(&redis.url()))).await;
    let b = spawn(node(fast(&redis.url()))).await;
    linked(&[&a.server, &b.server], 1).await;

    cut_after_300_then_resume(&a, &b).await;
    assert_eq!(
        a.server.stats().streams_resumed,
        1,
        "the node running the stream served it"
    );

    let mut other = connect(&b).await;
    let unknown = other
        .ask(
            "$resume",
            json!({"stream": "0123456789abcdef0123456789abcdef", "after": 0}),
            3,
        )
        .await;
    assert_eq!(unknown["data"]["code"], "not_found", "{unknown}");
}
