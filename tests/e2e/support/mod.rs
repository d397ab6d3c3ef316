//! Helpers: a server on 127.0.0.1:0, a tungstenite client that asserts on frames and close codes, example
//! binaries started as child processes, and a bounded `eventually`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_core::Client;
use ws_core::{Server, ServerBuilder};

pub(crate) mod deflate;
pub(crate) mod redis;

/// How long any single expectation may wait before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A server on a free loopback port (`ws_client::testing::serve`, which stops it when dropped), with the
/// raw-frame helpers of this suite.
pub(crate) struct TestServer {
    pub(crate) server: Server,
    pub(crate) addr: SocketAddr,
    _serving: ws_client::testing::TestServer,
}

impl TestServer {
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub(crate) async fn connect(&self) -> WsClient {
        WsClient::connect(&self.url(&self.server.config().path.clone())).await
    }
}

/// Serves `builder` on 127.0.0.1 with a free port.
pub(crate) async fn spawn(builder: ServerBuilder) -> TestServer {
    let serving = ws_client::testing::serve(builder).await;
    TestServer {
        server: serving.server.clone(),
        addr: serving.addr,
        _serving: serving,
    }
}

pub(crate) fn config() -> ws_core::Config {
    ws_core::Config::default().port(0)
}

pub(crate) struct WsClient {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Skip `$presence_state` and `$presence_diff` frames (a client of an example with presence, in a test
    /// about something else).
    pub(crate) skip_presence: bool,
}

fn is_presence(msg: &WsMessage) -> bool {
    matches!(msg, WsMessage::Text(t) if t.as_str().starts_with(r#"{"type":"$presence_"#))
}

/// What the client saw when the connection ended.
#[derive(Debug, PartialEq)]
pub(crate) struct Closed {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl WsClient {
    pub(crate) async fn connect(url: &str) -> Self {
        Self::try_connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    pub(crate) async fn try_connect(url: &str) -> Result<Self, tungstenite::Error> {
        Self::try_connect_request(url.into_client_request()?).await
    }

    pub(crate) async fn try_connect_request(
        req: tungstenite::handshake::client::Request,
    ) -> Result<Self, tungstenite::Error> {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("handshake timed out")?;
        Ok(Self {
            ws,
            skip_presence: false,
        })
    }

    pub(crate) async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws.send(WsMessage::text(text)).await.expect("send");
    }

    /// The next data frame, skipping control frames.
    pub(crate) async fn next_frame(&mut self) -> WsMessage {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame within the wait")
                .expect("stream ended")
                .expect("read error");
            match msg {
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other if self.skip_presence && is_presence(&other) => continue,
                other => return other,
            }
        }
    }

    /// Sends request `id` of type `kind` and returns its answer (`$reply` or `$error`), skipping the
    /// frames before it.
    pub(crate) async fn ask(&mut self, kind: &str, data: Value, id: u64) -> Value {
        self.send_json(json!({"type": kind, "data": data, "id": id}))
            .await;
        self.answer(id).await
    }

    /// The answer to request `id`, skipping the frames before it.
    pub(crate) async fn answer(&mut self, id: u64) -> Value {
        self.answer_collecting(id, |_| {}).await
    }

    /// The answer to request `id`, handing each frame that comes before it to `before`.
    pub(crate) async fn answer_collecting(
        &mut self,
        id: u64,
        mut before: impl FnMut(Value),
    ) -> Value {
        loop {
            let frame = self.recv().await;
            let is_answer =
                frame["id"] == id && (frame["type"] == "$reply" || frame["type"] == "$error");
            if is_answer {
                return frame;
            }
            before(frame);
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The next text frame as JSON.
    pub(crate) async fn recv(&mut self) -> Value {
        match self.next_frame().await {
            WsMessage::Text(t) => serde_json::from_str(t.as_str()).expect("frame is JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Reads until the server's close frame and returns its code and reason (data frames before it are
    /// skipped), then keeps reading so the WebSocket layer sends its reply and the handshake completes.
    pub(crate) async fn recv_close(&mut self) -> Closed {
        let closed = loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no close within the wait");
            match msg {
                Some(Ok(WsMessage::Close(Some(CloseFrame { code, reason })))) => {
                    break Closed {
                        code: code.into(),
                        reason: reason.to_string(),
                    };
                }
                Some(Ok(WsMessage::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("read error before the close frame: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        };
        let end = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        assert!(
            end.is_ok(),
            "the server did not end the connection after the close handshake"
        );
        closed
    }

    /// Asserts that no data frame arrives within `quiet`.
    pub(crate) async fn expect_silence(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(msg))) if self.skip_presence && is_presence(&msg) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Completes the close handshake from the client side.
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

/// Waits until `check` returns true, polling; fails the test after [`WAIT`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a client can connect to `url` again (a slot was freed), then closes it.
pub(crate) async fn eventually_connects(what: &str, url: &str) {
    eventually(what, || async {
        match WsClient::try_connect(url).await {
            Ok(client) => {
                client.close().await;
                true
            }
            Err(_) => false,
        }
    })
    .await;
}

/// The HTTP status of a connection attempt that was refused before the upgrade.
pub(crate) async fn refused_status(req: impl IntoClientRequest) -> u16 {
    match WsClient::try_connect_request(req.into_client_request().expect("request")).await {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

/// A plain HTTP/1.1 request; returns the status and the body (read by `Content-Length`).
pub(crate) async fn http(addr: SocketAddr, request_head: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tcp = BufReader::new(tcp);
    tcp.get_mut()
        .write_all(request_head.as_bytes())
        .await
        .expect("write");
    tokio::time::timeout(WAIT, async move {
        let mut status_line = String::new();
        tcp.read_line(&mut status_line).await.expect("status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {status_line:?}"));
        let mut length = 0;
        loop {
            let mut line = String::new();
            tcp.read_line(&mut line).await.expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        tcp.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("UTF-8 body"))
    })
    .await
    .expect("response in time")
}

pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A running example binary, killed when dropped.
pub(crate) struct Example {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

pub(crate) fn example_path(name: &str) -> PathBuf {
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo build -p chat -p echo`; scripts/test does)",
        path.display()
    );
    path
}

/// Starts `examples/<name>` with `args` and waits for its `listening on http://HOST:PORT` line.
pub(crate) async fn start_example(name: &str, args: &[&str]) -> Example {
    let mut child = Command::new(example_path(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn example");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("listen line in time")
        .expect("read stdout")
        .expect("a first line");
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .expect("HOST:PORT");
    Example { child, addr }
}

impl Example {
    /// A client that skips presence frames (the chat has presence on every room; `chat.rs` tests it on
    /// its own).
    pub(crate) async fn connect(&self, token: &str) -> WsClient {
        let mut client = WsClient::connect(&format!("ws://{}/ws?token={token}", self.addr)).await;
        client.skip_presence = true;
        client
    }

    /// Connects and consumes the welcome frame; returns the client and its id.
    pub(crate) async fn join(&self, token: &str) -> (WsClient, String) {
        let mut client = self.connect(token).await;
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome");
        let id = welcome["data"]["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned();
        (client, id)
    }
}

/// `join`, `leave` and `to_group` (mode `others`: `client.to(g)`; `except`: `server.to(g).except(id)` for
/// the id or each id of an array;
/// otherwise `server.to(g)`), with untyped handlers.
pub(crate) fn group_server() -> ws_core::ServerBuilder {
    ws_core::Server::builder(config())
        .on(
            "join",
            |c: Client, m: ws_core::protocol::Message| async move {
                c.join(m.data.as_str().unwrap_or_default())
            },
        )
        .on(
            "leave",
            |c: Client, m: ws_core::protocol::Message| async move {
                Ok::<_, ws_core::Error>(c.leave(m.data.as_str().unwrap_or_default()))
            },
        )
        .on(
            "to_group",
            |c: Client, m: ws_core::protocol::Message| async move {
                let group = m.data["group"].as_str().unwrap_or_default().to_owned();
                let out = ws_core::protocol::Message::new("room", m.data["text"].clone())
                    .with_from(c.id().as_str());
                let server = c.server();
                match m.data["mode"].as_str() {
                    Some("others") => c.to(&group).send(&out),
                    Some("except") => {
                        let except = match &m.data["except"] {
                            serde_json::Value::Array(ids) => ids.clone(),
                            id => vec![id.clone()],
                        };
                        let ids = except.iter().filter_map(|id| id.as_str());
                        ids.map(ws_core::ClientId::from)
                            .fold(server.to(&group), |to, id| to.except(&id))
                            .send(&out)
                    }
                    _ => server.to(&group).send(&out),
                }
            },
        )
}

/// Joins `group` as a request and expects `true` (a new membership).
pub(crate) async fn join(client: &mut WsClient, group: &str) {
    client
        .send_json(json!({"type": "join", "data": group, "id": 1}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": true})
    );
}
