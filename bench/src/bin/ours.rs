//! The benchmark protocol on ws-core: `cargo run --release -p bench --bin ours -- [PORT [REDIS_URL]]`.
//!
//! The configuration is `Config::default()` with two changes the load needs: no rate limit (the publisher
//! sends thousands of messages per second) and no connection limit (10 000 subscribers and a publisher
//! are one more than the default 10 000). `data` is relayed as the raw JSON text it arrived as
//! (`Request::data_json`), serialized into one frame that every recipient's queue shares. `cursor` frames
//! are relayed as latest-value frames keyed by their sender, `cursor_plain` as reliable ones. `ask` makes the
//! handler send a request (`question`) to the client named in `data`, or to the asker, and answers with the
//! answer. With a Redis
//! URL the node joins a cluster through the Redis backplane. With `BENCH_HISTORY=FRAMES` in the environment,
//! the group keeps a history of its last FRAMES frames (in Redis, with a URL); with `BENCH_PRESENCE=1` it has
//! presence; with `BENCH_DEFLATE=1`, permessage-deflate on (`Compression::deflate()`, its defaults); with
//! `BENCH_WRITE_DELAY_MS=N`, `write_delay` of N ms.
//! `stream` answers with a typed stream of `chunks` items (`ws_core::stream`), as fast as the reader takes
//! them; `cut` closes the sender's connection with 1001, so its client resumes what it was reading.

use std::time::Duration;

use bench::{BenchInbound, Chunk, bench_inbound};
use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::compression::Compression;
use ws_core::delivery::Delivery;
use ws_core::handler::Request;
use ws_core::protocol::Frame;
use ws_core::stream::Chunks;
use ws_core::{Client, Config, Error, Server, close, on};

#[on(BenchInbound::Stream)]
async fn stream(mut chunks: Chunks<Chunk>, msg: bench_inbound::Stream) -> Result<(), Error> {
    let text = "x".repeat(msg.pad);
    for n in 1..=msg.chunks {
        chunks
            .send(Chunk {
                n,
                text: text.clone(),
            })
            .await?;
    }
    Ok(())
}

#[on(BenchInbound::Cut)]
async fn cut(client: Client) {
    client.close(close::GOING_AWAY, "cut");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut config = Config::default()
        .port(port)
        .message_rate_limit(0)
        .max_connections(0);
    if std::env::var("BENCH_DEFLATE").is_ok_and(|v| v == "1") {
        config = config.compression(Compression::deflate());
    }
    // BENCH_WRITE_DELAY_MS=N: `write_delay` of N ms (a tuned configuration; the default is 0).
    if let Some(ms) = std::env::var("BENCH_WRITE_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.write_delay(std::time::Duration::from_millis(ms));
    }
    let redis = match std::env::args().nth(2) {
        Some(url) => Some(RedisConfig::new(&url).map_err(std::io::Error::other)?),
        None => None,
    };
    let mut builder = Server::builder(config.clone())
        .on("join", |req: Request| async move {
            let group: String = req.decode()?;
            req.client().join(&group).map(drop)
        })
        .on("publish", |req: Request| async move {
            req.server().to(bench::GROUP).send(relayed("publish", &req));
        })
        .on("cursor", |req: Request| async move {
            let sender = Delivery::latest_by("cursor", req.client().id().as_str());
            let frame = relayed("cursor", &req).with_delivery(sender);
            req.server().to(bench::GROUP).send(frame);
        })
        .on("cursor_plain", |req: Request| async move {
            req.server()
                .to(bench::GROUP)
                .send(relayed("cursor_plain", &req));
        })
        .on("whoami", |req: Request| async move {
            Ok::<_, Error>(req.client().id().to_string())
        })
        .on("ask", |req: Request| async move {
            // Asks the client named in `data` (or the asker itself) a question, and answers with its answer.
            let to: Option<String> = req.decode()?;
            let target = match to {
                Some(id) => req
                    .server()
                    .local_client(&id)
                    .ok_or_else(|| Error::not_found(id))?,
                None => req.client().clone(),
            };
            target
                .request_json("question", &req.data_json(), Duration::from_secs(5))
                .await
        })
        .on("echo", |req: Request| async move {
            let data: Box<serde_json::value::RawValue> = req.decode()?;
            Ok::<_, Error>(data)
        })
        .handle(stream)
        .handle(cut);
    if let Some(redis) = redis {
        builder = builder.backplane(move |local| RedisBackplane::start(local, redis));
    }
    // BENCH_PRESENCE=1: the group has presence, each member showing its id's first 8 characters.
    if std::env::var("BENCH_PRESENCE").is_ok_and(|v| v == "1") {
        builder = builder.presence(
            ws_core::presence::Presence::new()
                .meta(|client| serde_json::json!({"id": &client.id().as_str()[..8]})),
        );
    }
    // BENCH_HISTORY=FRAMES: the group keeps its last FRAMES frames (in memory, or in Redis with a URL).
    if let Some(frames) = std::env::var("BENCH_HISTORY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        builder = builder.history(ws_core::history::History::new().max_messages(frames));
    }
    let server = builder.build().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stats = server.clone();
    let app = server.router().route(
        "/stats",
        axum::routing::get(move || async move { axum::Json(stats.stats()) }),
    );
    server.serve_app(listener, app).await
}

/// `{"type": kind, "data": <the request's data as it arrived>}`.
fn relayed(kind: &str, req: &Request) -> Frame {
    Frame::text(format!(r#"{{"type":"{kind}","data":{}}}"#, req.data_json()))
}
