//! The benchmark protocol on ws-core: `cargo run --release -p bench --bin ours -- [PORT [REDIS_URL]]`.
//!
//! `data` is relayed as the raw JSON text it arrived as (`Request::data_json`), serialized into one frame
//! that every recipient's queue shares. With a Redis URL the node joins a cluster through the Redis
//! backplane.

use ws_core::{Config, Error, Frame, RedisBackplane, RedisConfig, Request, Server};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let config = Config {
        port,
        message_rate_limit: 0,
        max_connections: 0,
        ..Config::default()
    };
    let redis = match std::env::args().nth(2) {
        Some(url) => Some(RedisConfig::new(&url).map_err(std::io::Error::other)?),
        None => None,
    };
    let mut builder = Server::builder(config.clone())
        .on_request("join", |req: Request| async move {
            let group: String = req.decode()?;
            req.client().join(&group).map(drop)
        })
        .on_request("publish", |req: Request| async move {
            let frame = Frame::text(format!(
                r#"{{"type":"publish","data":{}}}"#,
                req.data_json()
            ));
            req.server().broadcast_to_group(bench::GROUP, frame);
        })
        .on_request("echo", |req: Request| async move {
            let data: Box<serde_json::value::RawValue> = req.decode()?;
            Ok::<_, Error>(data)
        });
    if let Some(redis) = redis {
        builder = builder.backplane(move |local| RedisBackplane::start(local, redis));
    }
    let server = builder.build().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    server.serve_app(listener, server.router()).await
}
