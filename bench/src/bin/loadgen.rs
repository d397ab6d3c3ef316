//! Load generator for the benchmark protocol (see `bench/src/lib.rs`). One process, many connections,
//! every loop bounded in count and time. Prints one JSON object per run.
//!
//! ```text
//! loadgen fanout  URL[,URL...] SUBSCRIBERS RATE SECONDS [STALLED]   # RATE 0: as fast as the publisher can send
//! loadgen cursors URL CLIENTS RATE SECONDS TYPE               # TYPE: cursor (latest) or cursor_plain
//! loadgen ask     URL SECONDS                                # ours only: server → client requests
//! loadgen reqrep  URL CLIENTS SECONDS
//! loadgen reqrep-typed URL CLIENTS SECONDS   (the same with ws-client, the typed Rust client)
//! loadgen idle    URL CONNECTIONS HOLD_SECONDS [OFFER]           # OFFER 1: the connections offer permessage-deflate
//! loadgen storm   URL CONNECTIONS
//! loadgen presence URL MEMBERS JOINS_PER_SEC SECONDS            # ours with presence on
//! loadgen recover URL CLIENTS MISSED                            # ours with history on (memory or Redis)
//! loadgen chat    URL SUBSCRIBERS RATE SECONDS OFFER            # OFFER 1: subscribers offer permessage-deflate
//! loadgen streams URL STREAMS CHUNKS PAD                       # ours: STREAMS typed streams at once, each on its own connection
//! loadgen resume  URL CHUNKS PAD ROUNDS                        # ours: a stream cut by the server half-way, resumed
//! ```
//!
//! Streams: STREAMS clients (`ws-client`) each read a typed stream of CHUNKS items of PAD bytes, all at
//! once; it reports items per second over all of them, each stream's time to its end (p50, p99), and the
//! items that came out of order or twice (none expected). Resume: ROUNDS times, a stream of CHUNKS items
//! is read half-way, the server closes the connection (`cut`), and the client reconnects and resumes; it
//! reports the gap between the cut and the next item (reconnection and `$resume`, the client's backoff at
//! 1 ms) beside the time a new connection takes to its first item of a new stream.
//!
//! Chat: fan-out of a 1 KiB chat line (`{"t", "text"}`, words that differ from line to line) to subscribers
//! read by hand-framed sockets (`bench::deflate`) that offer permessage-deflate or not and count the bytes
//! that cross them; one in ten inflates and reads its lines for the latencies (all of them would need more
//! than the load generator's core). It reports deliveries per second, wire bytes per delivery, and how
//! many subscribers the server agreed to compress for.
//!
//! Recover: MISSED frames are published to the group while nobody is in it; then CLIENTS connect at once,
//! each sends the position it had before them (`$positions`) and joins. It reports the time until every
//! client has its MISSED frames, and how many were told `recovered: true`.
//!
//! Presence: MEMBERS clients join the group; then, for SECONDS, JOINS_PER_SEC newcomers a second join it
//! and leave (close) a second later. It reports the presence frames and bytes each member receives per
//! second during the churn, against the joins and leaves per second that caused them.
//!
//! Fan-out with several URLs spreads the subscribers over them in turn (nodes of one cluster) and publishes
//! on the first. A URL whose path starts with `/socket.io/` is spoken to in Socket.IO v5 over Engine.IO v4
//! (`40` to open the default namespace, events as `42["name",data]`, acknowledgements as `43<id>[data]`),
//! the protocol of socket.io and socketioxide; any other in the JSON envelope.
//!
//! Fan-out counts the subscribers the server closed (by close code) or cut off. With `STALLED` = 1, one
//! more subscriber joins and never reads: the result says when (seconds after publishing started) the
//! server dropped it, from the socket's readiness (the peer's FIN or a reset), since a client that does
//! not read cannot see a close frame.
//!
//! The cursor storm: every client joins the group and sends RATE positions per second as `TYPE`, which the
//! server relays to the group; one more client reads at a tenth of the rate the others receive. It reports
//! how old positions are when they are read, for the fast clients and for the slow one (whose socket
//! receive buffer is fixed at 64 KiB, see `connect_small_window`), and who was closed.
//!
//! `ask` measures a handler's request to a client: client A asks the server, in a closed loop, to ask
//! a question to client B, then to A itself; the handler waits for the answer and replies with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use bench::deflate::Subscriber;
use bench::{BenchInbound, BenchOutbound, bench_inbound};
use ws_client::{Backoff, Client};

type BenchClient = Client<BenchInbound, BenchOutbound>;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PAD: usize = 100;

/// How a server under test frames the benchmark's events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Envelope,
    SocketIo,
}

impl Proto {
    fn of(url: &str) -> Self {
        let path = url
            .split("://")
            .nth(1)
            .and_then(|r| r.find('/').map(|i| &r[i..]));
        if path.is_some_and(|p| p.starts_with("/socket.io/")) {
            Self::SocketIo
        } else {
            Self::Envelope
        }
    }

    fn join(self) -> String {
        match self {
            Self::Envelope => json!({"type": "join", "data": bench::GROUP}).to_string(),
            Self::SocketIo => format!("42{}", json!(["join", bench::GROUP])),
        }
    }

    fn publish(self, t: u64, pad: &str) -> String {
        match self {
            Self::Envelope => format!(r#"{{"type":"publish","data":{{"t":{t},"pad":"{pad}"}}}}"#),
            Self::SocketIo => format!(r#"42["publish",{{"t":{t},"pad":"{pad}"}}]"#),
        }
    }

    fn echo(self, id: u64) -> String {
        match self {
            Self::Envelope => format!(r#"{{"type":"echo","data":{{"n":{id}}},"id":{id}}}"#),
            Self::SocketIo => format!(r#"42{id}["echo",{{"n":{id}}}]"#),
        }
    }

    fn is_reply(self, text: &str, id: u64) -> bool {
        match self {
            Self::Envelope => text.contains("$reply"),
            Self::SocketIo => text
                .strip_prefix("43")
                .and_then(|r| r.strip_prefix(id.to_string().as_str()))
                .is_some_and(|r| r.starts_with('[')),
        }
    }
}

/// Connects and, for Socket.IO, opens the default namespace (Engine.IO open packet, `40`, `40{sid}`).
async fn connect(url: &str) -> Ws {
    let mut ws = connect_ws(url).await;
    if Proto::of(url) == Proto::SocketIo {
        let mut opened = false;
        for _ in 0..4 {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .ok()
                .flatten()
                .and_then(Result::ok);
            let Some(Message::Text(text)) = msg else {
                panic!("socket.io handshake: {msg:?}");
            };
            if text.starts_with("0{") {
                ws.send(Message::text("40")).await.expect("open namespace");
            } else if text.starts_with("40") {
                opened = true;
                break;
            }
        }
        assert!(opened, "socket.io handshake: no namespace answer");
    }
    ws
}

async fn connect_ws(url: &str) -> Ws {
    for attempt in 0..50 {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => {
                if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                    let _ = tcp.set_nodelay(true);
                }
                return ws;
            }
            Err(e) if attempt < 49 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("connect {url}: {e}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// A plain WebSocket connection whose socket receive buffer is fixed at 64 KiB: a client on a slow link
/// holds little in flight, while on loopback the kernel would grow the buffer to tens of megabytes for a
/// client that reads slowly, a backlog that no server can skip or replace.
async fn connect_small_window(url: &str) -> Ws {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("url with a host");
    let addr: std::net::SocketAddr = host.parse().expect("the load generator takes IP:PORT URLs");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let tcp = socket.connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .expect("handshake");
    ws
}

/// The `t` (microseconds since the run's start) a published frame carries in its data.
fn sent_at(text: &str) -> Option<u64> {
    text.split("\"t\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|t| t.trim().parse().ok())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// How long subscribers keep reading after the publisher stops: what has not arrived by then counts as
/// not delivered, so a server with an unbounded backlog cannot stretch the run.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

async fn fanout(
    urls: &str,
    subscribers: usize,
    rate: u64,
    seconds: u64,
    stalled: bool,
) -> serde_json::Value {
    let stalled_flag = stalled;
    let urls: Vec<&str> = urls.split(',').collect();
    let url = urls[0];
    let proto = Proto::of(url);
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let last_delivery_us = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    // Microseconds since `start` at which subscribers stop reading; 0 while publishing.
    let stop_us = Arc::new(AtomicU64::new(0));
    let closes = Arc::new(Closes::default());
    let mut readers = Vec::new();
    let mut joined = 0;
    for i in 0..subscribers {
        let mut ws = connect(urls[i % urls.len()]).await;
        ws.send(Message::text(proto.join())).await.expect("join");
        joined += 1;
        let (delivered, latencies, last, stop_us, closes) = (
            delivered.clone(),
            latencies.clone(),
            last_delivery_us.clone(),
            stop_us.clone(),
            closes.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut local = Vec::new();
            loop {
                let stop = stop_us.load(Ordering::Relaxed);
                let limit = if stop == 0 {
                    Instant::now() + Duration::from_millis(200)
                } else {
                    start + Duration::from_micros(stop)
                };
                let msg = match tokio::time::timeout_at(limit.into(), ws.next()).await {
                    Ok(Some(Ok(msg))) => msg,
                    Ok(_) => {
                        closes.cut.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(_) if stop != 0 => break,
                    Err(_) => continue,
                };
                if let Message::Close(frame) = &msg {
                    closes.record(frame.as_ref().map(|f| u16::from(f.code)));
                    break;
                }
                // {"type":"publish","data":{"t":<micros since start>,...}}
                let sent = match &msg {
                    Message::Text(text) => sent_at(text.as_str()),
                    _ => None,
                };
                if let Some(sent) = sent {
                    let now = start.elapsed().as_micros() as u64;
                    local.push(now.saturating_sub(sent));
                    delivered.fetch_add(1, Ordering::Relaxed);
                    last.fetch_max(now, Ordering::Relaxed);
                }
            }
            latencies.lock().await.extend(local);
        }));
    }
    let stalled = if stalled {
        let mut ws = connect(url).await;
        ws.send(Message::text(proto.join())).await.expect("join");
        Some(ws)
    } else {
        None
    };
    // Let every join land before publishing.
    tokio::time::sleep(Duration::from_millis(500 + subscribers as u64 / 10)).await;
    let mut publisher = connect(url).await;
    let watch = stalled.map(|ws| {
        tokio::spawn(async move {
            let dropped = dropped_within(&ws, Duration::from_secs(seconds) + DRAIN_GRACE).await;
            drop(ws);
            dropped
        })
    });
    let pad = "x".repeat(PAD);
    let publish_start_us = start.elapsed().as_micros() as u64;
    let sent = publish(
        &mut publisher,
        rate,
        seconds,
        |t| proto.publish(t, &pad),
        start,
    )
    .await;
    let stop = start.elapsed() + DRAIN_GRACE;
    stop_us.store(stop.as_micros() as u64, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.await;
    }
    let stalled_dropped_after_s = match watch {
        Some(watch) => watch.await.ok().flatten(),
        None => None,
    };
    drop(publisher);
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_unstable();
    let expected = sent * joined as u64;
    let got = delivered.load(Ordering::Relaxed);
    let span = (last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(publish_start_us)) as f64
        / 1e6;
    json!({
        "scenario": "fanout", "nodes": urls.len(), "subscribers": subscribers, "rate": rate, "seconds": seconds,
        "published": sent, "expected": expected, "delivered": got,
        "delivered_pct": if expected > 0 { 100.0 * got as f64 / expected as f64 } else { 0.0 },
        "deliveries_per_sec": if span > 0.0 { got as f64 / span } else { 0.0 },
        "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99), "p999_ms": percentile(&lat, 0.999),
        "closed_1008": closes.policy.load(Ordering::Relaxed), "closed_other": closes.other.load(Ordering::Relaxed),
        "cut_off": closes.cut.load(Ordering::Relaxed),
        "stalled": stalled_flag, "stalled_dropped_after_s": stalled_dropped_after_s,
    })
}

/// Publishes `line(t)` (`t`: microseconds since `start`) at `rate` messages a second (0: as fast as the
/// server takes them) for `seconds`; returns how many were sent. Fixed rates send a burst every 10 ms, or
/// one message per period below 100 msg/s.
async fn publish(
    publisher: &mut Ws,
    rate: u64,
    seconds: u64,
    line: impl Fn(u64) -> String,
    start: Instant,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (tick, per_tick) = if rate >= 100 {
        (Duration::from_millis(10), rate / 100)
    } else {
        (Duration::from_secs_f64(1.0 / rate.max(1) as f64), 1)
    };
    let mut sent: u64 = 0;
    let mut next_tick = Instant::now();
    while Instant::now() < deadline {
        let burst = if rate == 0 { 64 } else { per_tick };
        let publish = async {
            for _ in 0..burst {
                let t = start.elapsed().as_micros() as u64;
                publisher.feed(Message::text(line(t))).await?;
                sent += 1;
            }
            publisher.flush().await
        };
        // A server that stops reading blocks the publisher; the run still ends on time.
        match tokio::time::timeout_at(deadline.into(), publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("publish: {e}"),
            Err(_) => break,
        }
        if rate > 0 {
            next_tick += tick;
            tokio::time::sleep_until(next_tick.into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    sent
}

/// Subscribers the server closed, by close code, or cut off without a close frame.
#[derive(Default)]
struct Closes {
    policy: AtomicU64,
    other: AtomicU64,
    cut: AtomicU64,
}

impl Closes {
    fn record(&self, code: Option<u16>) {
        let counter = if code == Some(1008) {
            &self.policy
        } else {
            &self.other
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves when the kernel reports the peer's FIN or a reset on the connection, without reading from it
/// (readiness `read_closed`, epoll's RDHUP/HUP); `None` after `limit`.
async fn dropped_within(ws: &Ws, limit: Duration) -> Option<f64> {
    let MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
        return None;
    };
    let from = Instant::now();
    while from.elapsed() < limit {
        if let Ok(Ok(ready)) =
            tokio::time::timeout(Duration::from_millis(50), tcp.ready(Interest::READABLE)).await
            && ready.is_read_closed()
        {
            return Some(from.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The cursor storm (see the module docs).
async fn cursors(
    url: &str,
    clients: usize,
    rate: u64,
    seconds: u64,
    kind: &str,
) -> serde_json::Value {
    let start = Instant::now();
    let deadline =
        start + Duration::from_millis(500 + clients as u64 * 2) + Duration::from_secs(seconds);
    let join = json!({"type": "join", "data": bench::GROUP}).to_string();
    let closes = Arc::new(Closes::default());
    // Received-position ages in microseconds: fast clients, and the slow one.
    let fast_ages = Arc::new(Mutex::new(Vec::<u64>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // The slow reader takes at most a tenth of what each fast client is sent: (clients × rate) / 10 per
    // second, in 10 ms ticks.
    let slow_per_tick = ((clients as u64 * rate) / 1000).max(1);
    for i in 0..=clients {
        let slow = i == clients;
        let mut ws = if slow {
            connect_small_window(url).await
        } else {
            connect(url).await
        };
        ws.send(Message::text(join.clone())).await.expect("join");
        let (closes, fast_ages, received) = (closes.clone(), fast_ages.clone(), received.clone());
        let kind = kind.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let sender = (!slow).then(|| {
                tokio::spawn(async move {
                    // Senders start together once everyone has joined; each sends `rate` positions per second.
                    tokio::time::sleep_until(
                        (start + Duration::from_millis(500 + clients as u64 * 2)).into(),
                    )
                    .await;
                    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
                    let mut next = Instant::now();
                    let mut seq = 0u64;
                    while Instant::now() < deadline {
                        seq += 1;
                        let t = start.elapsed().as_micros() as u64;
                        let frame = format!(
                            r#"{{"type":"{kind}","data":{{"user":{i},"seq":{seq},"t":{t}}}}}"#
                        );
                        let sent = tokio::time::timeout_at(
                            deadline.into(),
                            sink.send(Message::text(frame)),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                        next += period;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    sink
                })
            });
            let mut ages = Vec::new();
            let mut next_tick = Instant::now();
            let mut budget = slow_per_tick;
            let mut connected = true;
            loop {
                let limit = deadline + DRAIN_GRACE;
                let msg = match tokio::time::timeout_at(limit.into(), stream.next()).await {
                    Ok(Some(Ok(msg))) => msg,
                    Ok(_) => {
                        closes.cut.fetch_add(1, Ordering::Relaxed);
                        connected = false;
                        break;
                    }
                    Err(_) => break,
                };
                if let Message::Close(frame) = &msg {
                    closes.record(frame.as_ref().map(|f| u16::from(f.code)));
                    connected = false;
                    break;
                }
                let Message::Text(text) = &msg else { continue };
                if let Some(t) = sent_at(text.as_str()) {
                    let now = start.elapsed().as_micros() as u64;
                    ages.push(now.saturating_sub(t));
                    received.fetch_add(1, Ordering::Relaxed);
                }
                if slow {
                    budget -= 1;
                    if budget == 0 {
                        next_tick += Duration::from_millis(10);
                        tokio::time::sleep_until(next_tick.into()).await;
                        budget = slow_per_tick;
                    }
                }
                if Instant::now() > deadline + DRAIN_GRACE {
                    break;
                }
            }
            if let Some(sender) = sender {
                let _ = sender.await;
            }
            if !slow {
                fast_ages.lock().await.extend(ages);
                return None;
            }
            Some((ages, connected))
        }));
    }
    let mut slow = (Vec::new(), false);
    for task in tasks {
        if let Ok(Some(result)) = task.await {
            slow = result;
        }
    }
    let mut fast = std::mem::take(&mut *fast_ages.lock().await);
    fast.sort_unstable();
    let (mut slow_ages, slow_connected) = slow;
    let slow_received = slow_ages.len();
    slow_ages.sort_unstable();
    json!({
        "scenario": "cursors", "clients": clients, "rate": rate, "seconds": seconds, "type": kind,
        "received": received.load(Ordering::Relaxed),
        "receipts_per_sec": received.load(Ordering::Relaxed) as f64 / (seconds as f64),
        "fast_age_p50_ms": percentile(&fast, 0.50), "fast_age_p99_ms": percentile(&fast, 0.99),
        "slow_connected": slow_connected, "slow_received": slow_received,
        "slow_age_p50_ms": percentile(&slow_ages, 0.50), "slow_age_p99_ms": percentile(&slow_ages, 0.99),
        "closed_1008": closes.policy.load(Ordering::Relaxed), "closed_other": closes.other.load(Ordering::Relaxed),
        "cut_off": closes.cut.load(Ordering::Relaxed),
    })
}

/// One closed loop of `ask` for `seconds`: to B when `to` is set, else to the asker; latencies in µs.
async fn ask_loop(a: &mut Ws, to: Option<&str>, seconds: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut lat = Vec::new();
    let mut id = 0u64;
    while Instant::now() < deadline {
        id += 1;
        let sent = Instant::now();
        let frame = json!({"type": "ask", "data": to, "id": id}).to_string();
        if a.send(Message::text(frame)).await.is_err() {
            break;
        }
        loop {
            let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_secs(10), a.next()).await
            else {
                return lat;
            };
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if let Some(answer) = answer_question(&frame) {
                let _ = a.send(answer).await;
            } else if frame["type"] == "$reply" && frame["id"] == id {
                lat.push(sent.elapsed().as_micros() as u64);
                break;
            }
        }
    }
    lat
}

/// The `$reply` to the server's `question` request, if `frame` is one.
fn answer_question(frame: &serde_json::Value) -> Option<Message> {
    (frame["type"] == "question").then(|| {
        Message::text(json!({"type": "$reply", "id": frame["id"], "data": "yes"}).to_string())
    })
}

async fn ask(url: &str, seconds: u64) -> serde_json::Value {
    let mut a = connect(url).await;
    let mut b = connect(url).await;
    b.send(Message::text(r#"{"type":"whoami","id":1}"#))
        .await
        .expect("whoami");
    let b_id = loop {
        match tokio::time::timeout(Duration::from_secs(10), b.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: serde_json::Value =
                    serde_json::from_str(text.as_str()).unwrap_or_default();
                if frame["type"] == "$reply" {
                    break frame["data"].as_str().unwrap_or_default().to_owned();
                }
            }
            other => panic!("whoami: {other:?}"),
        }
    };
    // B answers every question it is asked.
    let answering = tokio::spawn(async move {
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(seconds * 2 + 10), b.next()).await
        {
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if let Some(answer) = answer_question(&frame)
                && b.send(answer).await.is_err()
            {
                break;
            }
        }
    });
    let mut other = ask_loop(&mut a, Some(&b_id), seconds).await;
    let mut own = ask_loop(&mut a, None, seconds).await;
    answering.abort();
    other.sort_unstable();
    own.sort_unstable();
    json!({
        "scenario": "ask", "seconds": seconds,
        "other_asks": other.len(), "other_p50_ms": percentile(&other, 0.50), "other_p99_ms": percentile(&other, 0.99),
        "own_asks": own.len(), "own_p50_ms": percentile(&own, 0.50), "own_p99_ms": percentile(&own, 0.99),
    })
}

async fn reqrep(url: &str, clients: usize, seconds: u64) -> serde_json::Value {
    let proto = Proto::of(url);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut ws = connect(url).await;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut id = 0u64;
            while Instant::now() < deadline {
                id += 1;
                let sent = Instant::now();
                if ws.send(Message::text(proto.echo(id))).await.is_err() {
                    break;
                }
                let answered = loop {
                    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if proto.is_reply(t.as_str(), id) => {
                            break true;
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => break false,
                    }
                };
                if !answered {
                    break;
                }
                lat.push(sent.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    replies("reqrep", clients, seconds, tasks).await
}

/// The result of a closed request/reply loop: each task gives its latencies in microseconds.
async fn replies(
    scenario: &str,
    clients: usize,
    seconds: u64,
    tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>,
) -> serde_json::Value {
    let start = Instant::now();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap_or_default());
    }
    let secs = start.elapsed().as_secs_f64().max(seconds as f64);
    lat.sort_unstable();
    json!({
        "scenario": scenario, "clients": clients, "seconds": seconds, "replies": lat.len(),
        "replies_per_sec": lat.len() as f64 / secs,
        "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99),
    })
}

/// `reqrep` with `ws-client`, the typed Rust client, as the load: the cost of its types, queue and task.
async fn reqrep_typed(url: &str, clients: usize, seconds: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = ws_client::Client::<BenchInbound, BenchOutbound>::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let sent = Instant::now();
                match client.request(bench_inbound::Echo { n }).await {
                    Ok(reply) if reply.n == n => lat.push(sent.elapsed().as_micros() as u64),
                    _ => break,
                }
            }
            client.close();
            lat
        }));
    }
    replies("reqrep-typed", clients, seconds, tasks).await
}

/// STREAMS typed streams read at once, each on its own connection.
async fn streams(url: &str, streams: usize, chunks: u64, pad: usize) -> serde_json::Value {
    let mut clients = Vec::with_capacity(streams);
    for _ in 0..streams {
        let client = BenchClient::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        clients.push(client);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for client in clients {
        tasks.push(tokio::spawn(async move {
            let mut items = client
                .stream(bench_inbound::Stream { chunks, pad })
                .expect("a stream");
            let (mut expected, mut disordered) = (1, 0u64);
            while Instant::now() < deadline {
                match items.next().await {
                    Some(Ok(chunk)) => {
                        if chunk.n != expected {
                            disordered += 1;
                        }
                        expected = chunk.n + 1;
                    }
                    _ => break,
                }
            }
            let took = start.elapsed().as_micros() as u64;
            client.close();
            (expected - 1, disordered, took)
        }));
    }
    let (mut items, mut disordered, mut took) = (0, 0, Vec::new());
    for task in tasks {
        let (n, d, t) = task.await.unwrap_or_default();
        items += n;
        disordered += d;
        took.push(t);
    }
    let secs = start.elapsed().as_secs_f64();
    took.sort_unstable();
    json!({
        "scenario": "streams", "streams": streams, "chunks": chunks, "pad": pad, "items": items,
        "items_per_sec": items as f64 / secs, "seconds": secs,
        "stream_p50_ms": percentile(&took, 0.50), "stream_p99_ms": percentile(&took, 0.99),
        "out_of_order_or_twice": disordered,
    })
}

/// A stream cut by the server half-way and resumed, ROUNDS times; beside it, a new connection's first item.
async fn resume(url: &str, chunks: u64, pad: usize, rounds: u64) -> serde_json::Value {
    let fast = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        max_attempts: None,
    };
    let (mut gaps, mut fresh, mut lost) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..rounds {
        let opened = Instant::now();
        let client = Client::builder(url)
            .backoff(fast)
            .connect::<BenchInbound, BenchOutbound>()
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let mut items = client
            .stream(bench_inbound::Stream { chunks, pad })
            .expect("a stream");
        let mut expected = 1;
        // After the cut, the longest pause between two items: the items queued before the close arrive at
        // once, then the connection is lost, reconnected and the stream resumed.
        let (mut previous, mut gap, mut cut) = (Instant::now(), 0, false);
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(10), items.next()).await
        {
            if chunk.n == 1 {
                fresh.push(opened.elapsed().as_micros() as u64);
            }
            if cut {
                gap = gap.max(previous.elapsed().as_micros() as u64);
            }
            previous = Instant::now();
            if chunk.n != expected {
                lost += 1;
            }
            expected = chunk.n + 1;
            if chunk.n == chunks / 2 {
                client.send(BenchInbound::Cut).expect("cut sent");
                cut = true;
            }
        }
        gaps.push(gap);
        lost += chunks + 1 - expected;
        client.close();
    }
    gaps.sort_unstable();
    fresh.sort_unstable();
    json!({
        "scenario": "resume", "chunks": chunks, "pad": pad, "rounds": rounds,
        "resume_gap_p50_ms": percentile(&gaps, 0.50), "resume_gap_p99_ms": percentile(&gaps, 0.99),
        "new_stream_first_item_p50_ms": percentile(&fresh, 0.50),
        "new_stream_first_item_p99_ms": percentile(&fresh, 0.99),
        "items_lost_or_twice": lost,
    })
}

async fn presence(url: &str, members: usize, rate: u64, seconds: u64) -> serde_json::Value {
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::with_capacity(members);
    for _ in 0..members {
        let mut ws = connect(url).await;
        ws.send(Message::text(Proto::Envelope.join()))
            .await
            .expect("join");
        let (frames, bytes, stop) = (frames.clone(), bytes.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => return,
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Text(text))) if text.as_str().starts_with(r#"{"type":"$presence_"#) => {
                            frames.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        }));
    }
    // The members' own states and the diffs of their arrival are not the churn's.
    tokio::time::sleep(Duration::from_secs(2)).await;
    frames.store(0, Ordering::Relaxed);
    bytes.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let total = rate * seconds;
    let mut churn = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(
            (start + Duration::from_micros(i * 1_000_000 / rate.max(1))).into(),
        )
        .await;
        let url = url.to_owned();
        churn.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            ws.send(Message::text(Proto::Envelope.join()))
                .await
                .expect("join");
            let stay = async { while let Some(Ok(_)) = ws.next().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(1), stay).await;
            let _ = ws.close(None).await;
        }));
    }
    for task in churn {
        let _ = task.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (frames, bytes) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    );
    stop.notify_waiters();
    for reader in readers {
        reader.abort();
    }
    let per_member = |n: u64| n as f64 / members as f64 / elapsed;
    json!({
        "scenario": "presence",
        "members": members,
        "changes_per_sec": 2.0 * total as f64 / elapsed,
        "frames_per_member_per_sec": per_member(frames),
        "bytes_per_member_per_sec": per_member(bytes),
        "seconds": elapsed,
    })
}

/// Reads frames until one of type `kind`; `None` when the connection ends or 60 s pass.
async fn next_of(ws: &mut Ws, kind: &str) -> Option<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .ok()??;
        if let Ok(Message::Text(text)) = msg {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).ok()?;
            if value["type"] == kind {
                return Some(value);
            }
        }
    }
}

async fn recover(url: &str, clients: usize, missed: u64) -> serde_json::Value {
    let join = json!({"type": "join", "data": bench::GROUP, "id": 1}).to_string();
    let mut probe = connect(url).await;
    probe.send(Message::text(join.clone())).await.expect("join");
    let start_pos = next_of(&mut probe, "$position")
        .await
        .expect("history on the group");
    let mut publisher = connect(url).await;
    let pad = "x".repeat(PAD);
    let (epoch, offset) = if start_pos["data"]["epoch"].is_string() {
        (
            start_pos["data"]["epoch"].clone(),
            start_pos["data"]["offset"].clone(),
        )
    } else {
        // With history in Redis, a group's history starts with its first frame: its position is the start.
        publisher
            .send(Message::text(Proto::Envelope.publish(0, &pad)))
            .await
            .expect("publish");
        let first = next_of(&mut probe, "publish")
            .await
            .expect("the first frame");
        (
            first["pos"]["epoch"].clone(),
            first["pos"]["offset"].clone(),
        )
    };
    drop(probe);
    for t in 0..missed {
        publisher
            .feed(Message::text(Proto::Envelope.publish(t, &pad)))
            .await
            .expect("publish");
    }
    // Answered after every publish before it was handled.
    publisher
        .send(Message::text(
            json!({"type": "whoami", "id": 2}).to_string(),
        ))
        .await
        .expect("whoami");
    next_of(&mut publisher, "$reply")
        .await
        .expect("whoami reply");
    let positions =
        json!({"type": "$positions", "data": {bench::GROUP: {"epoch": epoch, "offset": offset}}})
            .to_string();
    let start = Instant::now();
    let recovered = Arc::new(AtomicU64::new(0));
    let complete = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, join, positions) = (url.to_owned(), join.clone(), positions.clone());
        let (recovered, complete) = (recovered.clone(), complete.clone());
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            ws.feed(Message::text(positions)).await.expect("positions");
            ws.send(Message::text(join)).await.expect("join");
            let Some(position) = next_of(&mut ws, "$position").await else {
                return;
            };
            if position["data"]["recovered"] == true {
                recovered.fetch_add(1, Ordering::Relaxed);
            }
            for _ in 0..missed {
                if next_of(&mut ws, "publish").await.is_none() {
                    return;
                }
            }
            complete.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let secs = start.elapsed().as_secs_f64();
    json!({
        "scenario": "recover",
        "clients": clients,
        "missed": missed,
        "recovered": recovered.load(Ordering::Relaxed),
        "complete": complete.load(Ordering::Relaxed),
        "seconds_to_all": secs,
        "replayed_frames_per_sec": (clients as u64 * missed) as f64 / secs,
    })
}

/// Holds CONNECTIONS idle connections for HOLD seconds; with `offer`, hand-framed ones that offer
/// permessage-deflate (and report how many the server agreed to compress for).
async fn idle(url: &str, connections: usize, hold: u64, offer: bool) -> serde_json::Value {
    let mut open = Vec::with_capacity(connections);
    let mut offered = Vec::new();
    for _ in 0..connections {
        if offer {
            offered.push(Subscriber::connect(url, true).await.expect("connect"));
        } else {
            open.push(connect(url).await);
        }
    }
    let negotiated = offered.iter().filter(|s| s.negotiated).count();
    println!(
        "{}",
        json!({"scenario": "idle", "ready": connections, "negotiated": negotiated})
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    json!({"scenario": "idle", "connections": open.len() + offered.len(), "negotiated": negotiated})
}

async fn storm(url: &str, connections: usize) -> serde_json::Value {
    let start = Instant::now();
    let url = Arc::new(url.to_owned());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (url, next) = (url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < connections as u64 {
                held.push(connect(&url).await);
            }
            held
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.extend(task.await.unwrap_or_default());
    }
    let secs = start.elapsed().as_secs_f64();
    json!({"scenario": "storm", "connections": held.len(), "seconds": secs, "handshakes_per_sec": held.len() as f64 / secs})
}

/// A chat line of about 1 KiB carrying `t`: words drawn from a small vocabulary, different every line, so
/// it compresses as chat text does (2-4x), not as padding does.
fn chat_line(t: u64) -> String {
    const WORDS: [&str; 32] = [
        "the", "deploy", "finished", "and", "latency", "looks", "fine", "on", "our", "side", "can",
        "you", "check", "staging", "before", "lunch", "we", "should", "merge", "this", "branch",
        "today", "thanks", "for", "review", "tests", "are", "green", "again", "after", "retry",
        "maybe",
    ];
    let mut x = t | 1;
    let mut text = String::with_capacity(1100);
    while text.len() < 1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(WORDS[(x % 32) as usize]);
        text.push(if x.is_multiple_of(11) { '.' } else { ' ' });
    }
    format!(r#"{{"type":"publish","data":{{"t":{t},"text":"{text}"}}}}"#)
}

async fn chat(
    url: &str,
    subscribers: usize,
    rate: u64,
    seconds: u64,
    offer: bool,
) -> serde_json::Value {
    let start = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    let mut negotiated = 0;
    let last_delivery_us = Arc::new(AtomicU64::new(0));
    for i in 0..subscribers {
        let mut sub = Subscriber::connect(url, offer).await.expect("connect");
        negotiated += usize::from(sub.negotiated);
        sub.send_text(&Proto::Envelope.join()).await.expect("join");
        // One subscriber in ten inflates and reads its lines, for the latencies; the others count them.
        sub.read = i % 10 == 0;
        let mut stopped = stopped.clone();
        let last = last_delivery_us.clone();
        readers.push(tokio::spawn(async move {
            let (mut latencies, mut delivered) = (Vec::new(), 0u64);
            loop {
                // Cancelling a read half-way is fine here: the socket is not read again.
                let text = tokio::select! {
                    text = sub.next_text() => text,
                    _ = stopped.changed() => break,
                };
                let Ok(Some(text)) = text else { break };
                delivered += 1;
                let now = start.elapsed().as_micros() as u64;
                last.fetch_max(now, Ordering::Relaxed);
                if let Some(sent) = sent_at(&text) {
                    latencies.push(now.saturating_sub(sent));
                }
            }
            (latencies, delivered, sub.wire_bytes)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500 + subscribers as u64 / 10)).await;
    let mut publisher = connect(url).await;
    let publish_start_us = start.elapsed().as_micros() as u64;
    let sent = publish(&mut publisher, rate, seconds, chat_line, start).await;
    tokio::time::sleep(DRAIN_GRACE).await;
    let _ = stop.send(true);
    let (mut lat, mut wire, mut got) = (Vec::new(), 0, 0);
    for reader in readers {
        if let Ok((latencies, delivered, bytes)) = reader.await {
            lat.extend(latencies);
            got += delivered;
            wire += bytes;
        }
    }
    drop(publisher);
    lat.sort_unstable();
    let span = last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(publish_start_us) as f64
        / 1e6;
    let expected = sent * subscribers as u64;
    json!({
        "scenario": "chat", "subscribers": subscribers, "rate": rate, "seconds": seconds, "offer": offer,
        "negotiated": negotiated, "published": sent, "expected": expected, "delivered": got,
        "delivered_pct": if expected > 0 { 100.0 * got as f64 / expected as f64 } else { 0.0 },
        "deliveries_per_sec": if span > 0.0 { got as f64 / span } else { 0.0 },
        "wire_bytes_per_delivery": if got > 0 { wire as f64 / got as f64 } else { 0.0 },
        "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let (mode, url) = match (args.first(), args.get(1)) {
        (Some(mode), Some(url)) => (mode.as_str(), url.as_str()),
        _ => usage(),
    };
    let result = match mode {
        "fanout" => {
            let stalled = args.get(5).is_some_and(|s| s == "1");
            fanout(url, num(2) as usize, num(3), num(4), stalled).await
        }
        "cursors" => {
            let kind = args.get(5).map_or("cursor", String::as_str);
            cursors(url, num(2) as usize, num(3), num(4), kind).await
        }
        "reqrep" => reqrep(url, num(2) as usize, num(3)).await,
        "reqrep-typed" => reqrep_typed(url, num(2) as usize, num(3)).await,
        "ask" => ask(url, num(2)).await,
        "idle" => {
            let offer = args.get(4).is_some_and(|s| s == "1");
            idle(url, num(2) as usize, num(3), offer).await
        }
        "storm" => storm(url, num(2) as usize).await,
        "presence" => presence(url, num(2) as usize, num(3), num(4)).await,
        "recover" => recover(url, num(2) as usize, num(3)).await,
        "chat" => {
            let offer = args.get(5).is_some_and(|s| s == "1");
            chat(url, num(2) as usize, num(3), num(4), offer).await
        }
        "streams" => streams(url, num(2) as usize, num(3), num(4) as usize).await,
        "resume" => resume(url, num(2), num(3) as usize, num(4)).await,
        _ => usage(),
    };
    println!("{result}");
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen fanout|cursors|ask|reqrep|reqrep-typed|idle|storm|presence|recover|chat|streams|resume URL ... (see the module docs)"
    );
    std::process::exit(2)
}
