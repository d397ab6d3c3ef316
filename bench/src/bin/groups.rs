//! Group traffic across nodes: `cargo run --release -p bench --bin groups -- MODE SECONDS RATE [REDIS...]`.
//!
//! Four ws-core nodes in this process (one with `MODE` `one-node`), 200 groups, each with a member on one
//! node and, for every other group, a second member on the next node (on one node, both there): 300
//! members, each a WebSocket client.
//! For `SECONDS`, `RATE` group sends per second, each made on a node with no member of the group (on one
//! node, on that node), carrying the time it was made. Prints one JSON line: per node, the backplane
//! messages and bytes received per second and the groups subscribed; the deliveries, and their latency
//! from the send to the client reading it (p50, p99); and Redis's CPU time over the run (`INFO cpu` of
//! each master), per 1 000 group sends and per shard.
//!
//! `MODE`: `one-node`; `redis URL` (one Redis); `cluster URL,URL,...` (a Redis Cluster, sharded pub/sub);
//! `history` suffixes (`redis-history`, `cluster-history`) keep the groups' history in Redis, and
//! `cluster-history-wait` waits for one replica before delivering (`RedisConfig::wait_for_replicas`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::protocol::Message;
use ws_core::{Client, Config, Server};

const GROUPS: usize = 200;

fn usage() -> ! {
    eprintln!("usage: groups one-node|redis|cluster[-history[-wait]] SECONDS RATE [URL[,URL...]]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(seconds), Some(rate)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let seconds: u64 = seconds.parse().unwrap_or_else(|_| usage());
    let rate: u64 = rate.parse().unwrap_or_else(|_| usage());
    let urls: Vec<String> = args
        .get(3)
        .map(|u| u.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let nodes = if mode == "one-node" { 1 } else { 4 };
    let redis = match mode.split('-').next() {
        Some("one") => None,
        Some("redis") => Some(RedisConfig::new(&urls[0]).map_err(std::io::Error::other)?),
        Some("cluster") => Some(RedisConfig::cluster(&urls).map_err(std::io::Error::other)?),
        _ => usage(),
    };
    let redis = redis.map(|r| {
        if mode.ends_with("-wait") {
            r.wait_for_replicas(1, Duration::from_secs(1))
        } else {
            r
        }
    });
    let history = mode.contains("history");

    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..nodes {
        let config = Config::default()
            .port(0)
            .message_rate_limit(0)
            .max_connections(0);
        let mut builder = Server::builder(config).on("join", |c: Client, m: Message| async move {
            let _ = c.join(m.data.as_str().unwrap_or_default());
            let _ = c.send(Message::new("joined", m.data));
        });
        if history {
            builder = builder.history(ws_core::history::History::new().max_messages(100));
        }
        if let Some(redis) = redis.clone() {
            builder = builder.backplane(move |local| RedisBackplane::start(local, redis));
        }
        let server = builder.build().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        tokio::spawn({
            let server = server.clone();
            async move { server.serve_app(listener, server.router()).await }
        });
        servers.push(server);
    }
    if redis.is_some() {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !servers.iter().all(|s| {
            s.stats()
                .backplane
                .is_some_and(|b| b.connected && b.nodes == (nodes - 1) as u64)
        }) {
            assert!(Instant::now() < deadline, "the nodes did not link up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let origin = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut members = 0;
    let mut readers = Vec::new();
    for group in 0..GROUPS {
        let homes = if group.is_multiple_of(2) {
            vec![group % nodes, (group + 1) % nodes]
        } else {
            vec![group % nodes]
        };
        for home in homes {
            // Group `group`'s member on node `home`.
            let url = format!("ws://{}/ws", addrs[home]);
            let (mut socket, _) = tokio_tungstenite::connect_async(&url)
                .await
                .map_err(std::io::Error::other)?;
            let join = json!({"type": "join", "data": format!("g{group}")}).to_string();
            socket
                .send(WsMessage::text(join))
                .await
                .map_err(std::io::Error::other)?;
            // The reply: the join is done on this node.
            while let Some(Ok(frame)) = socket.next().await {
                if frame.to_text().is_ok_and(|t| t.contains("joined")) {
                    break;
                }
            }
            members += 1;
            let (latencies, delivered) = (latencies.clone(), delivered.clone());
            readers.push(tokio::spawn(async move {
                while let Some(Ok(frame)) = socket.next().await {
                    let Ok(text) = frame.to_text() else { continue };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
                        continue;
                    };
                    if let Some(sent) = value["data"]["t"].as_u64() {
                        let now = u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX);
                        latencies.lock().unwrap().push(now.saturating_sub(sent));
                        delivered.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
    }
    // Joins have reached the other nodes' replicas, and their subscriptions are made.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before: Vec<_> = servers.iter().map(|s| s.stats().backplane).collect();
    let cpu_before = redis_cpu_ms(&urls).await;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let mut expected = 0u64;
    for n in 0..total {
        ticker.tick().await;
        let group = (n as usize) % GROUPS;
        let sender = if nodes == 1 { 0 } else { (group + 2) % nodes };
        let t = u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        servers[sender]
            .to(&format!("g{group}"))
            .send(Message::new("m", json!({"t": t, "pad": "x".repeat(200)})));
        expected += if group.is_multiple_of(2) { 2 } else { 1 };
    }
    let sent_for = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = redis_cpu_ms(&urls).await;
    let after: Vec<_> = servers.iter().map(|s| s.stats().backplane).collect();

    let per_node: Vec<_> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => json!({
                "received_per_s": (a.received - b.received) as f64 / elapsed,
                "received_bytes_per_s": (a.received_bytes - b.received_bytes) as f64 / elapsed,
                "subscribed_groups": a.subscribed_groups,
            }),
            _ => json!(null),
        })
        .collect();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let shards = cpu_before.len().max(1);
    let cpu_ms: f64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).sum();
    println!(
        "{}",
        json!({
            "scenario": "groups",
            "mode": mode,
            "nodes": nodes,
            "groups": GROUPS,
            "members": members,
            "sends": total,
            "send_seconds": sent_for.as_secs_f64(),
            "expected": expected,
            "delivered": delivered.load(Relaxed),
            "p50_us": at(0.50),
            "p99_us": at(0.99),
            "per_node": per_node,
            "redis_cpu_ms": cpu_ms,
            "shards": shards,
            "redis_cpu_ms_per_1000_sends_per_shard": cpu_ms / (total as f64 / 1000.0) / shards as f64,
        })
    );
    for reader in readers {
        reader.abort();
    }
    Ok(())
}

/// CPU time (user + system, ms) of each master among `urls` (`INFO cpu`, `INFO replication`).
async fn redis_cpu_ms(urls: &[String]) -> Vec<f64> {
    let mut times = Vec::new();
    for url in urls {
        let Some(addr) = url
            .strip_prefix("redis://")
            .map(|a| a.trim_end_matches('/'))
        else {
            continue;
        };
        let info = info_section(addr, "replication").await;
        if !info.contains("role:master") {
            continue;
        }
        let cpu = info_cpu(&info_section(addr, "cpu").await);
        times.push(cpu);
    }
    times
}

async fn info_section(addr: &str, section: &str) -> String {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let command = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    if tcp.write_all(command.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut reply = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut reply))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

fn info_cpu(info: &str) -> f64 {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("used_cpu_user:") + field("used_cpu_sys:")) * 1000.0
}
