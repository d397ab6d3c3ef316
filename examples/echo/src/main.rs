//! Echo server in raw mode: `cargo run -p echo -- [--host 127.0.0.1] [--port 9001]`.
//!
//! Every text and binary frame is sent back unchanged at `/`. Limits are wide open (no rate limit, 64 MiB
//! messages) and permessage-deflate is on, so the WebSocket conformance suite can exercise the protocol
//! layer and the compression extension themselves.

use std::time::Duration;

use ws_core::compression::Compression;
use ws_core::protocol::Frame;
use ws_core::raw::RawMessage;
use ws_core::{Config, Server};

#[tokio::main]
async fn main() {
    let mut config = Config::default()
        .port(9001)
        .path("/")
        .message_rate_limit(0)
        .max_message_size(64 << 20)
        .send_queue_max_bytes(256 << 20)
        .write_timeout(Duration::from_secs(30))
        .compression(Compression::deflate().min_size(0));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--host", Some(v)) => config.host = v,
            ("--port", Some(v)) => config.port = v.parse().unwrap_or_else(|_| usage(&flag)),
            _ => usage(&flag),
        }
    }
    let server = Server::builder(config.clone())
        .raw(|client, msg| async move {
            let _ = match msg {
                RawMessage::Text(text) => client.send(Frame::text(text)),
                RawMessage::Binary(data) => client.send(Frame::binary(data)),
            };
        })
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind {}:{}: {e}", config.host, config.port)));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on http://{addr}");
    let stopper = server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.stop().await;
    });
    if let Err(e) = server.serve_app(listener, server.router()).await {
        fail(&e.to_string());
    }
}

fn usage(flag: &str) -> ! {
    fail(&format!(
        "bad argument {flag:?}; usage: echo [--host HOST] [--port PORT]"
    ))
}

fn fail(message: &str) -> ! {
    eprintln!("echo: {message}");
    std::process::exit(2)
}
