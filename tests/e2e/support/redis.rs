//! A private `redis-server` on 127.0.0.1 for one test: no persistence (or an append-only file written on
//! every command, in a directory of its own), killed when dropped, restartable on the same port to test
//! what nodes do when Redis goes away and comes back.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::WAIT;

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
        let mut more = [0u8; 64 * 1024];
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
