//! Load generator for the benchmark protocol (see `bench/src/lib.rs`). One process, many connections,
//! every loop bounded in count and time. Prints one JSON object per run.
//!
//! ```text
//! loadgen fanout  URL[,URL...] SUBSCRIBERS RATE SECONDS    # RATE 0: as fast as the publisher can send
//! loadgen reqrep  URL CLIENTS SECONDS
//! loadgen idle    URL CONNECTIONS HOLD_SECONDS
//! loadgen storm   URL CONNECTIONS
//! ```
//!
//! Fan-out with several URLs spreads the subscribers over them in turn (nodes of one cluster) and publishes
//! on the first. A URL whose path starts with `/socket.io/` is spoken to in Socket.IO v5 over Engine.IO v4
//! (`40` to open the default namespace, events as `42["name",data]`, acknowledgements as `43<id>[data]`),
//! the protocol of socket.io and socketioxide; any other in the JSON envelope.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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

async fn fanout(urls: &str, subscribers: usize, rate: u64, seconds: u64) -> serde_json::Value {
    let urls: Vec<&str> = urls.split(',').collect();
    let url = urls[0];
    let proto = Proto::of(url);
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let last_delivery_us = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    // Microseconds since `start` at which subscribers stop reading; 0 while publishing.
    let stop_us = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut joined = 0;
    for i in 0..subscribers {
        let mut ws = connect(urls[i % urls.len()]).await;
        ws.send(Message::text(proto.join())).await.expect("join");
        joined += 1;
        let (delivered, latencies, last, stop_us) = (
            delivered.clone(),
            latencies.clone(),
            last_delivery_us.clone(),
            stop_us.clone(),
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
                    Ok(_) => break,
                    Err(_) if stop != 0 => break,
                    Err(_) => continue,
                };
                // {"type":"publish","data":{"t":<micros since start>,...}}
                let sent = match &msg {
                    Message::Text(text) => text
                        .as_str()
                        .split("\"t\":")
                        .nth(1)
                        .and_then(|r| r.split([',', '}']).next())
                        .and_then(|t| t.trim().parse::<u64>().ok()),
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
    // Let every join land before publishing.
    tokio::time::sleep(Duration::from_millis(500 + subscribers as u64 / 10)).await;
    let mut publisher = connect(url).await;
    let pad = "x".repeat(PAD);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent: u64 = 0;
    let publish_start_us = start.elapsed().as_micros() as u64;
    // Fixed rates send a burst every 10 ms, or one message per period below 100 msg/s.
    let (tick, per_tick) = if rate >= 100 {
        (Duration::from_millis(10), rate / 100)
    } else {
        (Duration::from_secs_f64(1.0 / rate.max(1) as f64), 1)
    };
    let mut next_tick = Instant::now();
    while Instant::now() < deadline {
        let burst = if rate == 0 { 64 } else { per_tick };
        let publish = async {
            for _ in 0..burst {
                let t = start.elapsed().as_micros() as u64;
                publisher
                    .feed(Message::text(proto.publish(t, &pad)))
                    .await?;
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
    let stop = start.elapsed() + DRAIN_GRACE;
    stop_us.store(stop.as_micros() as u64, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.await;
    }
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
    let start = Instant::now();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap_or_default());
    }
    let secs = start.elapsed().as_secs_f64().max(seconds as f64);
    lat.sort_unstable();
    json!({
        "scenario": "reqrep", "clients": clients, "seconds": seconds, "replies": lat.len(),
        "replies_per_sec": lat.len() as f64 / secs,
        "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99),
    })
}

async fn idle(url: &str, connections: usize, hold: u64) -> serde_json::Value {
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        open.push(connect(url).await);
    }
    println!("{}", json!({"scenario": "idle", "ready": connections}));
    tokio::time::sleep(Duration::from_secs(hold)).await;
    json!({"scenario": "idle", "connections": open.len()})
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
        "fanout" => fanout(url, num(2) as usize, num(3), num(4)).await,
        "reqrep" => reqrep(url, num(2) as usize, num(3)).await,
        "idle" => idle(url, num(2) as usize, num(3)).await,
        "storm" => storm(url, num(2) as usize).await,
        _ => usage(),
    };
    println!("{result}");
}

fn usage() -> ! {
    eprintln!("usage: loadgen fanout|reqrep|idle|storm URL ... (see the module docs)");
    std::process::exit(2)
}
