//! The whiteboard demo.
//!
//! ```text
//! cargo run -p whiteboard -- [--host 127.0.0.1] [--port 6200]
//! ```
//!
//! Routes: `/` the page, `/ws?token=NAME` the socket, `/metrics`, `/health`. The first line on stdout is
//! `listening on http://HOST:PORT` (port 0 picks a free port). Logs go to stderr, filtered by `RUST_LOG`.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use ws_core::Config;

const PAGE: &str = include_str!("../static/index.html");
/// The page's script: `web/app.ts` with the SDK and the generated protocol, bundled (see `sdk-ts`).
const APP: &str = include_str!("../static/app.js");

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let config = parse_args(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("whiteboard: {message}");
        eprintln!("usage: whiteboard [--host HOST] [--port PORT]");
        std::process::exit(2)
    });
    let server = whiteboard::build(config.clone()).unwrap_or_else(|e| fail(&e.to_string()));
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind {}:{}: {e}", config.host, config.port)));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on http://{addr}");

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP) }),
        )
        .route(
            "/metrics",
            get({
                let server = server.clone();
                move || async move {
                    (
                        [(header::CONTENT_TYPE, ws_core::metrics::CONTENT_TYPE)],
                        server.metrics_text(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .merge(server.router());

    let stopper = server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("whiteboard: shutting down");
        stopper.stop().await;
    });
    if let Err(e) = server.serve_app(listener, app).await {
        fail(&e.to_string());
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config::default().port(6200);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => config.host = value,
            "--port" => {
                config.port = value
                    .parse()
                    .map_err(|_| format!("{flag}: bad port {value:?}"))?;
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn fail(message: &str) -> ! {
    eprintln!("whiteboard: {message}");
    std::process::exit(1)
}
