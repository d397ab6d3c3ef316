//! Soak under churn: clients connect, join and leave rooms, publish to them, send requests, answer the
//! server's requests, and disconnect — cleanly, abruptly (a TCP reset) or half-open (silent, until the
//! server's ping timeout drops them) — against one node, or two nodes on Redis with Redis restarted once
//! mid-run. `scripts/soak [SECONDS]` runs both; alone:
//!
//! ```text
//! cargo run --release -p bench --bin soak -- [--seconds 300] [--nodes 1|2] [--clients 200]
//! ```
//!
//! A warm-up of a fifth of the run (at most 60 s; with Redis, restarted once) ends with every client gone;
//! each node's RSS and task count then are the baseline. After the run, when every client is gone again, the check is: RSS within
//! 10 % of the baseline, the same number of tasks, no group and no client left on any node, the frames the
//! nodes wrote equal to the frames the clients read, and the frames the clients sent equal to the frames
//! the nodes read (unless clients were dropped as slow consumers, which the nodes stop reading; such drops
//! are counted and printed). Before it disconnects, a client leaves its rooms and waits for the answers to
//! all its requests, so no frame is in flight to a socket that goes away: the counts must match exactly.
//! Exits 1 if a check fails.
//!
//! The nodes are this binary in `--serve` mode: ws-core with `Config::default()` except pings every 2 s and
//! a 4 s pong timeout (so half-open clients leave within the run), and a `/soak` route with its RSS, tasks,
//! clients and groups.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::handler::Request;
use ws_core::{Config, Error, Server};

const ROOMS: u32 = 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    if args.first().map(String::as_str) == Some("--serve") {
        runtime.block_on(serve(args.get(1).cloned()));
        return;
    }
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let plan = Plan {
        seconds: flag("--seconds", 300),
        nodes: flag("--nodes", 1),
        clients: flag("--clients", 200),
    };
    if !runtime.block_on(run(plan)) {
        std::process::exit(1);
    }
}

/// One node: the soak protocol and `/soak`.
async fn serve(redis: Option<String>) {
    let config = Config::default()
        .port(0)
        .ping_interval(Duration::from_secs(2))
        .pong_timeout(Duration::from_secs(4));
    let mut builder = Server::builder(config)
        .on("join", |req: Request| async move {
            let room: String = req.decode()?;
            req.client().join(&room)
        })
        .on("leave", |req: Request| async move {
            let room: String = req.decode()?;
            Ok::<_, Error>(req.client().leave(&room))
        })
        .on("publish", |req: Request| async move {
            let room: String = req.decode()?;
            let frame = ws_core::protocol::Frame::envelope("room", &room);
            req.server().to(&room).except(req.client().id()).send(frame);
            Ok::<_, Error>(true)
        })
        .on("echo", |req: Request| async move { req.decode::<Value>() })
        .on("ask_back", |req: Request| async move {
            let client = req.client().clone();
            client
                .request_json("ask", &json!("?"), Duration::from_secs(5))
                .await
                .map(|answer: Value| answer)
        });
    if let Some(url) = redis {
        let redis = RedisConfig::new(&url)
            .expect("a redis URL")
            .heartbeat_interval(Duration::from_millis(200))
            .node_timeout(Duration::from_secs(2));
        builder = builder.backplane(move |local| RedisBackplane::start(local, redis));
    }
    let server = builder.build().expect("a valid config");
    let probe = server.clone();
    let app = server
        .router()
        .route(
            "/stats",
            axum::routing::get({
                let server = server.clone();
                move || async move { axum::Json(server.stats()) }
            }),
        )
        .route(
            "/soak",
            axum::routing::get(move || async move {
                axum::Json(json!({
                    "rss_kib": rss_kib(),
                    "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
                    "local_clients": probe.local_clients().len(),
                    "groups": probe.groups().len(),
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    server.serve_app(listener, app).await.expect("serve");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    seconds: u64,
    nodes: u64,
    clients: u64,
}

/// What the clients did, added up.
#[derive(Default)]
struct Counts {
    sessions: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    clean: AtomicU64,
    reset: AtomicU64,
    half_open: AtomicU64,
    failed_connects: AtomicU64,
}

struct Node {
    _child: Child,
    addr: String,
}

async fn start_node(redis: Option<&str>) -> Node {
    let mut command = Command::new(std::env::current_exe().expect("this binary"));
    command.arg("--serve");
    if let Some(url) = redis {
        command.arg(url);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start a node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next_line().await.expect("a line").expect("a line");
    let addr = first
        .strip_prefix("listening on http://")
        .expect("listening line")
        .to_owned();
    Node {
        _child: child,
        addr,
    }
}

async fn start_redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// After `after`, kills Redis (when there is one) and starts it again, empty, on the same port.
async fn restart_redis(redis: Option<&mut Child>, port: u16, after: Duration) {
    let Some(child) = redis else {
        return;
    };
    tokio::time::sleep(after).await;
    let _ = child.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    *child = start_redis(port).await;
    println!("soak: redis restarted");
}

async fn get_json(addr: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.expect("read");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).expect("JSON")
}

/// Waits until no node has a client or a group (bounded), and returns each node's `/soak`.
async fn settled(nodes: &[Node]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut probes = Vec::new();
        for node in nodes {
            probes.push(get_json(&node.addr, "/soak").await);
        }
        let idle = probes
            .iter()
            .all(|p| p["local_clients"] == 0 && p["groups"] == 0);
        if idle || Instant::now() > deadline {
            // Tasks and memory of the last connections are released just after they leave the registry.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut probes = Vec::new();
            for node in nodes {
                probes.push(get_json(&node.addr, "/soak").await);
            }
            return probes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn churn(nodes: &[Node], clients: u64, until: Instant, counts: &Arc<Counts>) {
    let addrs: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.addr.clone()).collect());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (addrs, counts) = (addrs.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let addr = {
                    let mut rng = rand::rng();
                    addrs[rng.random_range(0..addrs.len())].clone()
                };
                session(&addr, until, &counts).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One client's life: random actions for up to 5 s, then leave every room, wait for every answer, and go
/// away in one of three ways.
async fn session(addr: &str, until: Instant, counts: &Counts) {
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    else {
        counts.failed_connects.fetch_add(1, Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    counts.sessions.fetch_add(1, Relaxed);
    let lifetime = Duration::from_millis(rand::rng().random_range(500..5000));
    let end = (Instant::now() + lifetime).min(until);
    let mut client = Session {
        ws: &mut ws,
        counts,
        next_id: 1,
        waiting: 0,
        rooms: Vec::new(),
        answers: Vec::new(),
        gone: false,
    };
    while Instant::now() < end && !client.gone {
        let pause = Duration::from_millis(rand::rng().random_range(20..100));
        client.read_for(pause).await;
        client.act().await;
    }
    for room in std::mem::take(&mut client.rooms) {
        client.request("leave", json!(room.to_string())).await;
    }
    let drain_until = Instant::now() + Duration::from_secs(10);
    while client.waiting > 0 && !client.gone && Instant::now() < drain_until {
        client.read_for(Duration::from_millis(200)).await;
    }
    let way = rand::rng().random_range(0..4);
    match way {
        0 | 1 => {
            counts.clean.fetch_add(1, Relaxed);
            let _ = ws.close(None).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(msg)) = ws.next().await {
                    if matches!(msg, WsMessage::Text(_)) {
                        counts.received.fetch_add(1, Relaxed);
                    }
                }
            })
            .await;
        }
        2 => {
            counts.reset.fetch_add(1, Relaxed);
            if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                let _ = tcp.set_zero_linger();
            }
            drop(ws);
        }
        _ => {
            // Silent: neither read nor write nor close until the server has given up on the socket.
            counts.half_open.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(8)).await;
                drop(ws);
            });
        }
    }
}

struct Session<'a> {
    ws: &'a mut Ws,
    counts: &'a Counts,
    next_id: u64,
    waiting: u64,
    rooms: Vec<u32>,
    /// Answers to the server's questions, sent once reading stops (a send is not cut off by a timeout).
    answers: Vec<Value>,
    /// The server closed the connection.
    gone: bool,
}

impl Session<'_> {
    async fn send(&mut self, frame: Value) {
        if self
            .ws
            .send(WsMessage::text(frame.to_string()))
            .await
            .is_ok()
        {
            self.counts.sent.fetch_add(1, Relaxed);
        }
    }

    async fn request(&mut self, kind: &str, data: Value) {
        let id = self.next_id;
        self.next_id += 1;
        self.waiting += 1;
        self.send(json!({"type": kind, "data": data, "id": id}))
            .await;
    }

    async fn act(&mut self) {
        let (choice, room) = {
            let mut rng = rand::rng();
            (rng.random_range(0..10), rng.random_range(0..ROOMS))
        };
        match choice {
            0..=1 if !self.rooms.contains(&room) && self.rooms.len() < 5 => {
                self.rooms.push(room);
                self.request("join", json!(room.to_string())).await;
            }
            2 if !self.rooms.is_empty() => {
                let room = self.rooms.swap_remove(0);
                self.request("leave", json!(room.to_string())).await;
            }
            3..=6 => self.request("publish", json!(room.to_string())).await,
            7..=8 => self.request("echo", json!({"n": room})).await,
            _ => self.request("ask_back", Value::Null).await,
        }
    }

    /// Reads every frame that arrives within `period`: counts it, settles a request, or notes the answer
    /// to the server's question; then sends those answers.
    async fn read_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(WsMessage::Text(text)))) => {
                    self.counts.received.fetch_add(1, Relaxed);
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    match frame["type"].as_str() {
                        Some("$reply" | "$error") => self.waiting = self.waiting.saturating_sub(1),
                        Some("ask") => {
                            self.answers
                                .push(json!({"type": "$reply", "id": frame["id"], "data": "!"}));
                        }
                        _ => {}
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => {
                    self.gone = true;
                    break;
                }
            }
        }
        for answer in std::mem::take(&mut self.answers) {
            self.send(answer).await;
        }
    }
}

async fn run(plan: Plan) -> bool {
    let mut redis = None;
    let mut redis_port = 0;
    let nodes = if plan.nodes >= 2 {
        redis_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        redis = Some(start_redis(redis_port).await);
        let url = format!("redis://127.0.0.1:{redis_port}/");
        vec![start_node(Some(&url)).await, start_node(Some(&url)).await]
    } else {
        vec![start_node(None).await]
    };
    let counts = Arc::new(Counts::default());
    let warm_up = Duration::from_secs((plan.seconds / 5).clamp(5, 60));
    println!(
        "soak: {} node(s), {} clients, warm-up {} s, run {} s",
        nodes.len(),
        plan.clients,
        warm_up.as_secs(),
        plan.seconds
    );
    // The warm-up goes through everything the run does, a Redis restart included: the buffers that fill
    // while Redis is away stay with the allocator afterwards, and belong in the baseline.
    let warm_up_until = Instant::now() + warm_up;
    tokio::join!(
        churn(&nodes, plan.clients, warm_up_until, &counts),
        restart_redis(redis.as_mut(), redis_port, warm_up / 2)
    );
    let baseline = settled(&nodes).await;

    let run_until = Instant::now() + Duration::from_secs(plan.seconds);
    tokio::join!(
        churn(&nodes, plan.clients, run_until, &counts),
        restart_redis(
            redis.as_mut(),
            redis_port,
            Duration::from_secs(plan.seconds / 2)
        )
    );
    let end = settled(&nodes).await;

    let mut stats = Vec::new();
    for node in &nodes {
        stats.push(get_json(&node.addr, "/stats").await);
    }
    let sum = |field: &str| {
        stats
            .iter()
            .map(|s| s[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let (written, read) = (sum("messages_sent"), counts.received.load(Relaxed));
    let (sent, server_read) = (counts.sent.load(Relaxed), sum("messages_received"));
    let drops = sum("slow_consumer_drops");

    let mut ok = true;
    for (i, (before, after)) in baseline.iter().zip(&end).enumerate() {
        let rss = (
            before["rss_kib"].as_u64().unwrap_or(0),
            after["rss_kib"].as_u64().unwrap_or(0),
        );
        let tasks = (
            before["tasks"].as_u64().unwrap_or(0),
            after["tasks"].as_u64().unwrap_or(0),
        );
        let rss_ok = rss.1 as f64 <= rss.0 as f64 * 1.10;
        let tasks_ok = tasks.0 == tasks.1;
        let empty = after["local_clients"] == 0 && after["groups"] == 0;
        println!(
            "node {i}: RSS {} KiB -> {} KiB ({:+.1} %) {}; tasks {} -> {} {}; clients {}, groups {} {}",
            rss.0,
            rss.1,
            (rss.1 as f64 / rss.0.max(1) as f64 - 1.0) * 100.0,
            if rss_ok { "ok" } else { "FAILED" },
            tasks.0,
            tasks.1,
            if tasks_ok { "ok" } else { "FAILED" },
            after["local_clients"],
            after["groups"],
            if empty { "ok" } else { "FAILED" },
        );
        ok &= rss_ok && tasks_ok && empty;
    }
    // Every frame a node wrote was read. A client dropped as a slow consumer (on a loaded machine) loses
    // what was still queued for it, which was never written, and the node stops reading it, so what it
    // sent after that is not read: inbound is exact only without drops.
    let accounted = written == read && (sent == server_read || drops > 0 && sent > server_read);
    println!(
        "sessions {}: clean {}, reset {}, half-open {}; failed connects {}",
        counts.sessions.load(Relaxed),
        counts.clean.load(Relaxed),
        counts.reset.load(Relaxed),
        counts.half_open.load(Relaxed),
        counts.failed_connects.load(Relaxed),
    );
    println!(
        "frames: nodes wrote {written}, clients read {read}; clients sent {sent}, nodes read {server_read}; clients dropped as slow consumers {drops} {}",
        if accounted { "ok" } else { "FAILED" }
    );
    if let Some(b) = stats.iter().filter_map(|s| s.get("backplane")).next() {
        println!("backplane (node 0): {b}");
    }
    ok && accounted
}
