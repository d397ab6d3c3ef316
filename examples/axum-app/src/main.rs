//! The axum application with ws-core mounted on `/ws`.
//!
//! ```text
//! cargo run -p axum-app -- [--host 127.0.0.1] [--port 6100] [--token-ttl SECONDS] [--user NAME:PASSWORD]...
//! ```
//!
//! Users default to `ann:ann-secret` and `bob:bob-secret`; tokens live an hour by default. Tokens are
//! signed with the key in `AXUM_APP_SECRET` (at least 32 bytes), or a random key made at start (tokens
//! then die with the process). Logs go to stderr, filtered by `RUST_LOG` (`RUST_LOG=debug` shows every
//! request, connection and message). The first line on stdout is `listening on http://HOST:PORT`.

use std::collections::HashMap;
use std::time::Duration;

use axum_app::{Settings, app};
use ws_core::Config;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let settings = parse_args(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("axum-app: {message}");
        eprintln!(
            "usage: axum-app [--host HOST] [--port PORT] [--token-ttl SECONDS] [--user NAME:PASSWORD]..."
        );
        std::process::exit(2)
    });
    let (host, port) = (settings.ws.host.clone(), settings.ws.port);
    let (router, state) = app(settings).unwrap_or_else(|e| fail(&e.to_string()));
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind {host}:{port}: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on http://{addr}");

    let server = state.server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("axum-app: shutting down");
        server.stop().await;
    });
    if let Err(e) = state.server.serve_app(listener, router).await {
        fail(&e.to_string());
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut ws = Config::default().port(6100);
    let mut token_ttl = Duration::from_secs(3600);
    let mut users = HashMap::new();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => ws.host = value,
            "--port" => {
                ws.port = value
                    .parse()
                    .map_err(|_| format!("{flag}: bad port {value:?}"))?;
            }
            "--token-ttl" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("{flag}: {value:?} is not a number of seconds"))?;
                token_ttl = Duration::from_secs(secs);
            }
            "--user" => {
                let (name, password) = value
                    .split_once(':')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or_else(|| format!("{flag}: expected NAME:PASSWORD, got {value:?}"))?;
                users.insert(name.to_owned(), password.to_owned());
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    if users.is_empty() {
        users.insert("ann".to_owned(), "ann-secret".to_owned());
        users.insert("bob".to_owned(), "bob-secret".to_owned());
    }
    let secret = match std::env::var("AXUM_APP_SECRET") {
        Ok(secret) if secret.len() >= 32 => secret.into_bytes(),
        Ok(_) => return Err("AXUM_APP_SECRET must be at least 32 bytes".to_owned()),
        Err(_) => rand::random::<[u8; 32]>().to_vec(),
    };
    ws.validate().map_err(|e| e.to_string())?;
    Ok(Settings {
        users,
        secret,
        token_ttl,
        ws,
    })
}

fn fail(message: &str) -> ! {
    eprintln!("axum-app: {message}");
    std::process::exit(1)
}
