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
//! `cluster-history-wait` waits for one replica before delivering (`RedisConfig::wait_for_replicas`);
//! `cluster-history-wait-stopped` does so with the replica of one master stopped (SIGSTOP) for the run;
//! `cluster-history-wait-killed` kills that master (SIGKILL) halfway through the sends, and reports what
//! the failover cost: when the first frame sent after the kill to a group of its shard arrived, how many
//! of those frames arrived, and the latencies of each kind of traffic before and after the kill.
//!
//! Beside the group sends, a direct message (`Server::send_to_client`) to a member on another node for
//! every fourth send. Latencies are also given apart: direct messages, the groups on the shard of group
//! `g0` (whose replica `-stopped` stops), and the groups on the other shards.

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
    eprintln!(
        "usage: groups one-node|redis|cluster[-history[-wait[-stopped|-killed]]] SECONDS RATE [URL[,URL...]]"
    );
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
        if mode.contains("-wait") {
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
            let _ = c.send(Message::new("joined", json!(c.id().as_str())));
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
    // Each delivery: what it was (a direct message, `None`, or a send to group `Some(n)`), when it was sent
    // (µs since `origin`) and its latency.
    type Delivery = (Option<usize>, u64, u64);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Delivery>::new()));
    // Each member: its node and its id.
    let mut homes_and_ids = Vec::new();
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
            // The reply, with the member's id: the join is done on this node.
            while let Some(Ok(frame)) = socket.next().await {
                let joined = frame
                    .to_text()
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                    .filter(|v| v["type"] == "joined");
                if let Some(joined) = joined {
                    let id = joined["data"].as_str().unwrap_or_default().to_owned();
                    homes_and_ids.push((home, id));
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
                        let group = value["data"]["g"].as_u64().map(|g| g as usize);
                        latencies
                            .lock()
                            .unwrap()
                            .push((group, sent, now.saturating_sub(sent)));
                        delivered.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
    }
    // Joins have reached the other nodes' replicas, and their subscriptions are made.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The shard of group `g0`, and, with `-stopped`, its replica stopped for the run.
    let shard = match urls.first() {
        Some(url) if mode.starts_with("cluster") => Shard::of(url, GROUPS).await,
        _ => Shard::default(),
    };
    let stopped = match (&shard.replica_pid, mode.ends_with("-stopped")) {
        (Some(pid), true) => signal(*pid, "STOP").await.then_some(*pid),
        _ => None,
    };

    let before: Vec<_> = servers.iter().map(|s| s.stats().backplane).collect();
    let cpu_before = redis_cpu_ms(&urls).await;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let mut expected = 0u64;
    // With `-killed`: when g0's master was killed (µs since `origin`), and the shard's frames sent after.
    let mut killed_at = None;
    let mut shard_sent_after_kill = 0u64;
    for n in 0..total {
        ticker.tick().await;
        if n == total / 2
            && mode.ends_with("-killed")
            && let Some(pid) = shard.master_pid
            && signal(pid, "KILL").await
        {
            killed_at = Some(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        let group = (n as usize) % GROUPS;
        let sender = if nodes == 1 { 0 } else { (group + 2) % nodes };
        let t = u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        servers[sender].to(&format!("g{group}")).send(Message::new(
            "m",
            json!({"t": t, "g": group, "pad": "x".repeat(200)}),
        ));
        expected += if group.is_multiple_of(2) { 2 } else { 1 };
        if killed_at.is_some() && shard.groups.contains(&group) {
            shard_sent_after_kill += if group.is_multiple_of(2) { 2 } else { 1 };
        }
        if n % 4 == 0 {
            let (home, id) = &homes_and_ids[(n as usize / 4) % homes_and_ids.len()];
            let from = (home + 1) % nodes;
            let direct = Message::new("m", json!({"t": t, "pad": "x".repeat(200)}));
            if servers[from].send_to_client(id, direct).is_ok() {
                expected += 1;
            }
        }
    }
    let sent_for = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
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
    if let Some(pid) = stopped {
        signal(pid, "CONT").await;
    }
    let latencies = latencies.lock().unwrap().clone();
    let picked = |pick: &dyn Fn(Option<usize>, u64) -> bool| {
        let mut picked: Vec<u64> = latencies
            .iter()
            .filter(|(what, sent, _)| pick(*what, *sent))
            .map(|(_, _, l)| *l)
            .collect();
        picked.sort_unstable();
        picked
    };
    let of = |pick: &dyn Fn(Option<usize>) -> bool| picked(&|what, _| pick(what));
    let on_g0_shard = |what: Option<usize>| what.is_some_and(|g| shard.groups.contains(&g));
    // Around the kill: each kind of traffic sent before it and after it.
    let failover = killed_at.map(|kill| {
        let before = |what: &dyn Fn(Option<usize>) -> bool| {
            quantile(&picked(&|w, sent| what(w) && sent < kill), 0.99)
        };
        let after = |what: &dyn Fn(Option<usize>) -> bool| {
            quantile(&picked(&|w, sent| what(w) && sent >= kill), 0.99)
        };
        let shard_after: Vec<_> = latencies
            .iter()
            .filter(|(what, sent, _)| on_g0_shard(*what) && *sent >= kill)
            .collect();
        let first_after_ms = shard_after
            .iter()
            .map(|(_, sent, latency)| sent + latency)
            .min()
            .map(|arrived| (arrived - kill) as f64 / 1000.0);
        json!({
            "killed_at_s": kill as f64 / 1e6,
            "g0_shard_sent_after_kill": shard_sent_after_kill,
            "g0_shard_delivered_after_kill": shard_after.len(),
            "g0_shard_first_delivery_after_kill_ms": first_after_ms,
            "direct_p99_us_before_after": [before(&|w| w.is_none()), after(&|w| w.is_none())],
            "other_shards_p99_us_before_after": [
                before(&|w| w.is_some() && !on_g0_shard(w)),
                after(&|w| w.is_some() && !on_g0_shard(w)),
            ],
            "g0_shard_p99_us_before_after": [before(&on_g0_shard), after(&on_g0_shard)],
        })
    });
    let all = of(&|_| true);
    let direct = of(&|what| what.is_none());
    let on_shard = of(&|what| what.is_some_and(|g| shard.groups.contains(&g)));
    let elsewhere = of(&|what| what.is_some_and(|g| !shard.groups.contains(&g)));
    let at = |q: f64| quantile(&all, q);
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
            "direct_p99_us": quantile(&direct, 0.99),
            "other_shards_p99_us": quantile(&elsewhere, 0.99),
            "g0_shard_p99_us": quantile(&on_shard, 0.99),
            "g0_shard_groups": shard.groups.len(),
            "replica_stopped": stopped.is_some(),
            "failover_first_delivery_ms": failover
                .as_ref()
                .and_then(|f| f["g0_shard_first_delivery_after_kill_ms"].as_f64()),
            "failover": failover,
            "unreplicated": after.iter().flatten().map(|b| b.unreplicated).sum::<u64>(),
            "backplane_dropped": after.iter().flatten().map(|b| b.dropped + b.received_dropped).sum::<u64>(),
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

fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// The shard of group `g0` on a Redis Cluster: the groups whose keys are on its master, and the process
/// ids of that master and of a replica of it.
#[derive(Default)]
struct Shard {
    groups: Vec<usize>,
    master_pid: Option<u32>,
    replica_pid: Option<u32>,
}

impl Shard {
    async fn of(url: &str, groups: usize) -> Self {
        let Some(addr) = url
            .strip_prefix("redis://")
            .map(|a| a.trim_end_matches('/'))
        else {
            return Self::default();
        };
        let nodes = command(addr, &["CLUSTER", "NODES"]).await;
        let slot_of = |group: usize| {
            let addr = addr.to_owned();
            async move {
                let reply = command(&addr, &["CLUSTER", "KEYSLOT", &format!("g:g{group}")]).await;
                reply
                    .trim()
                    .trim_start_matches(':')
                    .parse::<u16>()
                    .unwrap_or(0)
            }
        };
        // Each master's id and its slot ranges.
        let lines: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.trim_end().split(' ').collect())
            .collect();
        let masters: Vec<(&str, Vec<(u16, u16)>)> = lines
            .iter()
            .filter(|f| f.len() > 8 && f[2].contains("master"))
            .map(|f| {
                let ranges = f[8..]
                    .iter()
                    .filter_map(|r| {
                        let mut ends = r.split('-').map(|e| e.parse::<u16>().ok());
                        let first = ends.next()??;
                        Some((first, ends.next().flatten().unwrap_or(first)))
                    })
                    .collect();
                (f[0], ranges)
            })
            .collect();
        let master_of = |slot: u16| {
            masters
                .iter()
                .find(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
                .map(|(id, _)| *id)
        };
        let target = master_of(slot_of(0).await);
        let mut on_shard = Vec::new();
        for group in 0..groups {
            if master_of(slot_of(group).await) == target {
                on_shard.push(group);
            }
        }
        let replica = lines
            .iter()
            .find(|f| f.len() > 3 && f[2].contains("slave") && Some(f[3]) == target)
            .and_then(|f| f[1].split('@').next());
        let master = lines
            .iter()
            .find(|f| f.len() > 1 && Some(f[0]) == target)
            .and_then(|f| f[1].split('@').next());
        Self {
            groups: on_shard,
            master_pid: pid_of(master).await,
            replica_pid: pid_of(replica).await,
        }
    }
}

/// The process id of the Redis at `addr`.
async fn pid_of(addr: Option<&str>) -> Option<u32> {
    info_section(addr?, "server")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to process `pid`; whether it was sent.
async fn signal(pid: u32, signal: &str) -> bool {
    tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// One command to the Redis at `addr`, and its raw reply (up to 64 KiB).
async fn command(addr: &str, args: &[&str]) -> String {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while reply.len() < 64 * 1024 && !complete(&reply) {
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Whether `reply` holds a whole integer, simple string, error or bulk string reply.
fn complete(reply: &[u8]) -> bool {
    let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match reply.first() {
        Some(b'$') => std::str::from_utf8(&reply[1..end])
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| n < 0 || reply.len() >= end + 2 + n as usize + 2),
        Some(_) => true,
        None => false,
    }
}
