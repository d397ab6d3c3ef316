//! A server on `127.0.0.1:0` and typed clients of it, for tests.

use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use ws_core::{Server, ServerBuilder};
use ws_protocol::message::{InboundMessages, WsMessages};

use crate::{Client, ClientError};

/// A server serving on a free loopback port until dropped.
#[derive(Debug)]
pub struct TestServer {
    /// The server, for its stats and operations.
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds `builder` and serves it on `127.0.0.1` with a free port.
///
/// # Panics
///
/// When the configuration does not build or no port can be bound: a test cannot go on.
pub async fn serve(builder: ServerBuilder) -> TestServer {
    let server = builder.build().expect("the server's configuration builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    let serving = server.clone();
    let task = tokio::spawn(async move {
        let _ = serving.serve_app(listener, serving.router()).await;
    });
    TestServer { server, addr, task }
}

impl TestServer {
    /// The URL of the server's WebSocket path, with `query` (`"token=ann"`, or empty).
    pub fn url(&self, query: &str) -> String {
        let path = &self.server.config().path;
        if query.is_empty() {
            format!("ws://{}{path}", self.addr)
        } else {
            format!("ws://{}{path}?{query}", self.addr)
        }
    }

    /// A typed client, connected, with the query `query`.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub async fn client<I, O>(&self, query: &str) -> Result<Client<I, O>, ClientError>
    where
        I: InboundMessages,
        O: WsMessages + DeserializeOwned,
    {
        Client::connect(self.url(query)).await
    }
}
