//! A private `redis-server` on 127.0.0.1 for one test: no persistence (or an append-only file written on
//! every command, in a directory of its own), killed when dropped, restartable on the same port to test
//! what nodes do when Redis goes away and comes back; a private Redis Cluster of six; and the nodes the
//! backplane tests run on them.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::protocol::{Frame, Message};
use ws_core::{Client, Server, ServerBuilder};

use super::{TestServer, WAIT, WsClient, eventually, group_server};

pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Where the append-only file is kept, for a durable server.
    durable: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that writes every command to its append-only file before answering
    /// (`appendfsync always`): killed and restarted, it has everything it acknowledged.
    pub(crate) async fn start_durable() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let durable = durable.then(|| {
            let dir = std::env::temp_dir().join(format!("ws-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory for the append-only file");
            dir
        });
        let mut server = Self {
            port,
            child: None,
            durable,
        };
        server.restart().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub(crate) async fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()]);
        match &self.durable {
            Some(dir) => command
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(dir),
            None => command.args(["--save", "", "--appendonly", "no"]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (scripts/test installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the server (SIGKILL: connected nodes see their sockets reset, nothing more is written).
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

impl RedisServer {
    /// How many nodes listen to `channel` (`PUBSUB NUMSUB`).
    pub(crate) async fn subscribers(&self, channel: &str) -> u64 {
        let reply = self
            .command(&[b"PUBSUB", b"NUMSUB", channel.as_bytes()])
            .await;
        let reply = String::from_utf8_lossy(&reply);
        let count = reply.rsplit(':').next().unwrap_or_default().trim();
        count
            .parse()
            .unwrap_or_else(|_| panic!("NUMSUB answered {reply:?}"))
    }

    /// Sends one command as any Redis client could (a peer, or whoever reaches Redis) and returns the raw
    /// reply (RESP), read until it stops coming.
    pub(crate) async fn command(&self, args: &[&[u8]]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut command = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            command.extend_from_slice(arg);
            command.extend_from_slice(b"\r\n");
        }
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to redis-server");
        tcp.write_all(&command).await.expect("write");
        let mut reply = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut reply))
            .await
            .expect("redis answers")
            .expect("read");
        let mut reply = reply[..n].to_vec();
        let mut more = vec![0u8; 64 * 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut more)).await
        {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&more[..n]);
        }
        reply
    }

    /// Publishes `payload` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, payload: &[u8]) {
        let reply = self
            .command(&[b"PUBLISH", channel.as_bytes(), payload])
            .await;
        assert_eq!(reply.first(), Some(&b':'), "PUBLISH answered {reply:?}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.durable {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A private Redis Cluster on 127.0.0.1: three masters with a replica each, made by
/// `redis-cli --cluster create`, every process killed when dropped.
pub(crate) struct RedisCluster {
    dir: std::path::PathBuf,
    nodes: Vec<ClusterNode>,
    /// The ports of the nodes stopped (SIGSTOP), which answer nothing.
    stopped: std::sync::Mutex<Vec<u16>>,
}

struct ClusterNode {
    port: u16,
    child: Option<Child>,
}

/// A port free for a node and for its cluster bus (the port + 10 000).
fn cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Starts six nodes, joins them into a cluster and waits until every node says it is ok.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start), with `cluster-require-full-coverage no`: while a slot has no master, the
    /// masters go on serving theirs.
    pub(crate) async fn start_with_partial_coverage() -> Self {
        Self::start_with(&["--cluster-require-full-coverage", "no"]).await
    }

    async fn start_with(settings: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ws-redis-cluster-{}-{}",
            std::process::id(),
            cluster_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(start_node(&dir, settings).await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .await
            .expect("redis-cli on PATH");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self {
            dir,
            nodes,
            stopped: std::sync::Mutex::default(),
        };
        cluster.wait_until_ok().await;
        cluster
    }

    /// The URLs of every node.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect()
    }

    /// A server of a node still running, to send commands to.
    fn any(&self) -> u16 {
        let stopped = self.stopped.lock().expect("not poisoned").clone();
        self.nodes
            .iter()
            .find(|n| n.child.is_some() && !stopped.contains(&n.port))
            .expect("a running node")
            .port
    }

    /// Sends one command to the node on `port` and returns its reply.
    async fn command_on(port: u16, args: &[&[u8]]) -> Vec<u8> {
        let server = RedisServer {
            port,
            child: None,
            durable: None,
        };
        server.command(args).await
    }

    /// Waits until every running node says `cluster_state:ok` and agrees on the masters of all slots.
    pub(crate) async fn wait_until_ok(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = true;
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let info = Self::command_on(node.port, &[b"CLUSTER", b"INFO"]).await;
                ok &= String::from_utf8_lossy(&info).contains("cluster_state:ok");
                // A replica takes over with what it has: at the start, each has synchronized with its master.
                let replication = Self::command_on(node.port, &[b"INFO", b"replication"]).await;
                let replication = String::from_utf8_lossy(&replication);
                ok &= !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
            }
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster did not become ok"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port of the master that serves `key`'s slot now.
    pub(crate) async fn master_of(&self, key: &str) -> u16 {
        self.serving(key).await.expect("a master serves the slot")
    }

    /// The port of the master that serves `key`'s slot now, if one does.
    pub(crate) async fn serving(&self, key: &str) -> Option<u16> {
        let slot = self.slot_of(key).await;
        self.masters()
            .await
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|range| range.contains(&slot)))
            .map(|(port, _)| port)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    async fn slot_of(&self, key: &str) -> u16 {
        let reply = Self::command_on(self.any(), &[b"CLUSTER", b"KEYSLOT", key.as_bytes()]).await;
        u16::try_from(Self::integer(&reply)).expect("a slot number")
    }

    /// Moves the slot of `key` from its master to another one, keys and all (`CLUSTER SETSLOT`
    /// IMPORTING/MIGRATING, `MIGRATE`, then `SETSLOT NODE` on every master), as `redis-cli --cluster
    /// reshard` does; returns the new master's port.
    pub(crate) async fn migrate_slot_of(&self, key: &str) -> u16 {
        let slot = self.slot_of(key).await;
        let source = self.master_of(key).await;
        let masters: Vec<u16> = self
            .masters()
            .await
            .into_iter()
            .map(|(port, _)| port)
            .collect();
        let target = *masters
            .iter()
            .find(|p| **p != source)
            .expect("another master");
        let id = |port| async move {
            let reply = Self::command_on(port, &[b"CLUSTER", b"MYID"]).await;
            Self::bulk_strings(&reply).remove(0)
        };
        let (source_id, target_id) = (id(source).await, id(target).await);
        let slot = slot.to_string();
        let setslot = |state: &'static str, node: String| {
            vec![
                b"CLUSTER".to_vec(),
                b"SETSLOT".to_vec(),
                slot.clone().into_bytes(),
                state.as_bytes().to_vec(),
                node.into_bytes(),
            ]
        };
        let send = |port, args: Vec<Vec<u8>>| async move {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let reply = Self::command_on(port, &args).await;
            assert!(
                reply.starts_with(b"+OK"),
                "{:?}",
                String::from_utf8_lossy(&reply)
            );
        };
        send(target, setslot("IMPORTING", source_id.clone())).await;
        send(source, setslot("MIGRATING", target_id.clone())).await;
        loop {
            let listed = Self::command_on(
                source,
                &[b"CLUSTER", b"GETKEYSINSLOT", slot.as_bytes(), b"100"],
            )
            .await;
            let keys = Self::bulk_strings(&listed);
            if keys.is_empty() {
                break;
            }
            let port = target.to_string();
            let mut args: Vec<&[u8]> = vec![b"MIGRATE", b"127.0.0.1", port.as_bytes(), b"", b"0"];
            args.extend([b"5000".as_slice(), b"KEYS"]);
            args.extend(keys.iter().map(String::as_bytes));
            let moved = Self::command_on(source, &args).await;
            assert!(
                moved.starts_with(b"+"),
                "{:?}",
                String::from_utf8_lossy(&moved)
            );
        }
        for master in masters {
            send(master, setslot("NODE", target_id.clone())).await;
        }
        target
    }

    /// The masters that are up (`CLUSTER NODES`): each one's port and the slot ranges it serves.
    async fn masters(&self) -> Vec<(u16, Vec<std::ops::RangeInclusive<u16>>)> {
        let nodes = Self::command_on(self.any(), &[b"CLUSTER", b"NODES"]).await;
        String::from_utf8_lossy(&nodes)
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if fields.len() < 8 || !fields[2].contains("master") || fields[2].contains("fail") {
                    return None;
                }
                let port = fields[1].split([':', '@']).nth(1)?.parse().ok()?;
                let ranges = fields[8..]
                    .iter()
                    .filter_map(|range| {
                        let mut ends = range.split('-').map(str::parse::<u16>);
                        let first = ends.next()?.ok()?;
                        let last = ends.next().map_or(Some(first), Result::ok)?;
                        Some(first..=last)
                    })
                    .collect();
                Some((port, ranges))
            })
            .collect()
    }

    /// The number in an integer reply (`:N`).
    fn integer(reply: &[u8]) -> u64 {
        let text = String::from_utf8_lossy(reply);
        text.trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("not an integer reply: {text:?}"))
    }

    /// The strings of a bulk string reply, or of an array of them.
    fn bulk_strings(reply: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(reply);
        let mut lines = text.split("\r\n");
        let mut strings = Vec::new();
        while let Some(line) = lines.next() {
            if line.starts_with('$') && line != "$-1" {
                strings.push(lines.next().unwrap_or_default().to_owned());
            }
        }
        strings
    }

    /// The port of a replica of the master on `master` (`CLUSTER NODES`).
    pub(crate) async fn replica_of(&self, master: u16) -> u16 {
        let nodes = Self::command_on(self.any(), &[b"CLUSTER", b"NODES"]).await;
        let nodes = String::from_utf8_lossy(&nodes);
        let port_of = |address: &str| address.split([':', '@']).nth(1)?.parse::<u16>().ok();
        let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
        let master_id = lines
            .iter()
            .find(|f| f.len() > 2 && port_of(f[1]) == Some(master))
            .map(|f| f[0])
            .expect("the master is in CLUSTER NODES");
        lines
            .iter()
            .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == master_id)
            .and_then(|f| port_of(f[1]))
            .expect("the master has a replica")
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the node on `port`: a stopped replica keeps its link to its
    /// master open and acknowledges nothing.
    pub(crate) async fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref())
            .and_then(Child::id)
            .expect("a running node");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("kill on PATH");
        assert!(sent.success(), "kill -{signal} {pid}");
        let mut stopped = self.stopped.lock().expect("not poisoned");
        stopped.retain(|p| *p != port);
        if signal == "STOP" {
            stopped.push(port);
        }
    }

    /// Kills (SIGKILL) the master serving `key`, then waits until its replica has taken its place.
    pub(crate) async fn kill_master_of(&mut self, key: &str) -> u16 {
        let port = self.kill_master(key).await;
        self.wait_for_failover(key, port).await;
        port
    }

    /// Kills (SIGKILL) the master serving `key` and returns its port at once.
    pub(crate) async fn kill_master(&mut self, key: &str) -> u16 {
        let port = self.master_of(key).await;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the master is one of the cluster's nodes");
        if let Some(mut child) = node.child.take() {
            child.kill().await.expect("kill redis-server");
        }
        port
    }

    /// Waits until a replica serves `key` in place of the master on `port`, and the cluster is whole.
    pub(crate) async fn wait_for_failover(&self, key: &str, port: u16) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.serving(key).await.is_none_or(|p| p == port) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no replica took over from the killed master"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_until_ok().await;
    }
}

/// Starts one node of a cluster in `dir` on a free port and waits until it listens. A port found free may
/// be taken by another test before the node binds it: the node then exits at once, and starts again on
/// another port.
async fn start_node(dir: &std::path::Path, settings: &[&str]) -> ClusterNode {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let port = cluster_port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            // A replica may always take over: it is never far behind here, and a test must not wait for
            // the data age Redis would otherwise require.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--save", "", "--appendonly", "no"])
            .args(settings)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (scripts/test installs Debian's redis-server)");
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return ClusterNode {
                    port,
                    child: Some(child),
                };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fast heartbeats so tests see joins, departures and reconnections within a fraction of a second.
pub(crate) fn fast(url: &str) -> RedisConfig {
    quick(RedisConfig::new(url).expect("url"))
}

/// [`fast`] for a cluster.
pub(crate) fn fast_cluster(cluster: &RedisCluster) -> RedisConfig {
    quick(RedisConfig::cluster(cluster.urls()).expect("urls"))
}

fn quick(config: RedisConfig) -> RedisConfig {
    config
        .heartbeat_interval(Duration::from_millis(50))
        .node_timeout(Duration::from_secs(1))
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
}

/// The group protocol of `groups.rs`, plus `everyone` (broadcast) and `dm`, on a Redis backplane.
pub(crate) fn node(redis: &RedisConfig) -> ServerBuilder {
    let redis = redis.clone();
    group_server()
        .on_connect(|c| async move {
            let _ = c.send(Frame::envelope("welcome", c.id().as_str()));
        })
        .on("everyone", |c: Client, m: Message| async move {
            c.server()
                .all()
                .send(Message::new("all", m.data).with_from(c.id().as_str()));
        })
        .on("dm", |c: Client, m: Message| async move {
            let out = Message::new("dm", m.data["text"].clone()).with_from(c.id().as_str());
            c.server()
                .send_to_client(m.data["to"].as_str().unwrap_or_default(), &out)
        })
        .backplane(move |local| RedisBackplane::start(local, redis))
}

/// A client of `srv` and its id (from the welcome frame).
pub(crate) async fn client(srv: &TestServer) -> (WsClient, String) {
    let mut client = srv.connect().await;
    let welcome = client.recv().await;
    let id = welcome["data"].as_str().expect("welcome id").to_owned();
    (client, id)
}

/// Waits until every server is linked and sees `others` other nodes.
pub(crate) async fn linked(servers: &[&Server], others: u64) {
    eventually("nodes linked through redis", || async {
        servers.iter().all(|s| {
            s.stats()
                .backplane
                .is_some_and(|b| b.connected && b.nodes == others)
        })
    })
    .await;
}

pub(crate) fn ids(list: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

pub(crate) fn member_ids(srv: &TestServer, group: &str) -> Vec<String> {
    srv.server
        .group_members(group)
        .iter()
        .map(ToString::to_string)
        .collect()
}
