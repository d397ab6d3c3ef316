//! The chat demo.
//!
//! ```text
//! cargo run -p chat -- [--host 127.0.0.1] [--port 6001] [--redis URL | --redis-cluster URL,URL,...]
//!                      [--redis-wait REPLICAS] [--rate-limit N] [--burst N]
//!                      [--max-connections N] [--max-connections-per-ip N] [--max-message-size BYTES]
//!                      [--allowed-origin O]... [--allowed-host NAME]... [--history FRAMES]
//!                      [--compression on|off] [--token-ttl SECS [--token-secret SECRET]]
//!                      [--session-grace SECS] [--assistant-words N] [--assistant-delay-ms MS]
//! ```
//!
//! permessage-deflate is on (`--compression off` turns it off): browsers offer it on every socket, and a
//! room's message is compressed once for all its members.
//!
//! `--history FRAMES` keeps each room's last FRAMES messages: a client that comes back after a lost
//! connection and joins the room again gets what it missed. In memory on one process; with `--redis`, in
//! Redis, where a client recovers on any chat process, also after the one it was on died.
//!
//! The socket accepts requests addressed to `localhost`, `127.0.0.1`, `::1` and the `--host` address;
//! `--allowed-host` replaces that list (serving on `0.0.0.0`, name the addresses clients use).
//!
//! With `--redis redis://HOST:PORT/`, every chat process using that Redis serves one chat: rooms,
//! everyone-chat and direct messages reach clients on all of them. `--redis-cluster` takes the URLs of
//! some nodes of a Redis Cluster instead; `--redis-wait REPLICAS` delivers a room's message with history
//! once that many replicas have it (waiting at most a second), so it survives a failover.
//!
//! `--token-ttl SECS` makes tokens expire: the socket then wants a token from `GET /token?name=NAME` (an
//! HS256 JWT lasting SECS, signed with `--token-secret`, random by default; give chat processes sharing a
//! Redis the same one), the pages refresh it in-band before it expires, and a socket that lets it expire
//! is closed with 4001 (`--session-grace SECS` after the expiry, 10 by default). Without it, the token is
//! the user name itself.
//!
//! The assistant (`assistant` in the protocol) answers a prompt word by word, as a stream: N words (60
//! by default), MS milliseconds apart (60 by default) — a stand-in for a model's tokens, the same for the
//! same prompt.
//!
//! Routes: `/` the page, `/ws?token=TOKEN` the socket, `/token?name=NAME` a token (without
//! `--token-ttl`, the name), `POST /admin/disconnect?user=NAME` with `Authorization: Bearer <admin's token>`
//! (revokes NAME on every chat process: its sockets close with 4003, and its tokens issued so far are
//! refused), `POST /admin/cut?user=NAME` likewise (closes NAME's sockets on this process with 1001, as a
//! restarting server would: its pages reconnect and resume what they were reading), `/stats` JSON counters, `/metrics` the Prometheus metrics (OpenMetrics text), `/health`. The
//! first line on stdout is `listening on http://HOST:PORT` (port 0 picks a free port).

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chat::tokens::Tokens;
use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::compression::Compression;
use ws_core::{Config, Error, Server};

const PAGE: &str = include_str!("../static/index.html");
/// The page's script: `web/app.ts` with the SDK and the generated protocol, bundled (see `sdk-ts`).
const APP: &str = include_str!("../static/app.js");
/// The same chat written with React (`web/react/app.tsx`, bundled with React by `npm run build:page`).
const REACT_PAGE: &str = include_str!("../static/react.html");
const REACT_APP: &str = include_str!("../static/react.js");
/// The pages' common stylesheet.
const STYLE: &str = include_str!("../static/chat.css");

/// A static file of the pages, UTF-8 text of `kind`.
fn asset(kind: &str, body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))],
        body,
    )
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let Args {
        config,
        redis,
        history,
        tokens,
        assistant,
    } = parse_args(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("chat: {message}");
        eprintln!(
            "usage: chat [--host HOST] [--port PORT] [--redis URL | --redis-cluster URL,...] \
             [--redis-wait REPLICAS] [--rate-limit N] [--burst N] \
             [--max-connections N] [--max-message-size BYTES] [--allowed-origin ORIGIN]... \
             [--token-ttl SECS [--token-secret SECRET]] [--session-grace SECS] \
             [--assistant-words N] [--assistant-delay-ms MS]"
        );
        std::process::exit(2)
    });
    let mut builder = match &tokens {
        Some(tokens) => chat::builder_with_tokens(config.clone(), tokens.clone()),
        None => chat::builder(config.clone()),
    }
    .with_state(assistant);
    if let Some(frames) = history {
        builder = builder.history(ws_core::history::History::new().max_messages(frames));
    }
    if let Some(redis) = redis {
        builder = builder.backplane(move |local| RedisBackplane::start(local, redis));
    }
    let server = builder.build().unwrap_or_else(|e| fail(&e.to_string()));
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind {}:{}: {e}", config.host, config.port)));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on http://{addr}");

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/app.js", get(|| async { asset("text/javascript", APP) }))
        .route("/react", get(|| async { Html(REACT_PAGE) }))
        .route("/chat.css", get(|| async { asset("text/css", STYLE) }))
        .route(
            "/react.js",
            get(|| async { asset("text/javascript", REACT_APP) }),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/token", get(token).with_state(tokens.clone()))
        .route(
            "/admin/disconnect",
            post(disconnect).with_state((server.clone(), tokens.clone())),
        )
        .route("/admin/cut", post(cut).with_state((server.clone(), tokens)))
        .route(
            "/stats",
            get({
                let server = server.clone();
                move || async move { axum::Json(server.stats()) }
            }),
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
        .merge(server.router());

    let stopper = server.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("chat: shutting down");
        stopper.stop().await;
    });
    if let Err(e) = server.serve_app(listener, app).await {
        fail(&e.to_string());
    }
}

/// A query's parameters, decoded.
fn parameters(query: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /token?name=NAME`: a token for NAME; without `--token-ttl`, the name itself.
async fn token(State(tokens): State<Option<Tokens>>, RawQuery(query): RawQuery) -> Response {
    let query = parameters(query);
    let name = query.get("name").map_or("", String::as_str);
    let issued = match tokens {
        Some(tokens) => tokens.issue(name),
        // The name is the token; the socket's authenticator checks it.
        None => Ok(name.to_owned()),
    };
    match issued {
        Ok(token) => token.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /admin/disconnect?user=NAME` with the admin's token as a bearer token: revokes NAME on every
/// node for as long as a token lasts (an hour without `--token-ttl`). Answers `{"closed": N}`, the
/// sockets closed on this node.
async fn disconnect(
    State((server, tokens)): State<(Server, Option<Tokens>)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let user = match admin_target(tokens.as_ref(), query, &headers) {
        Ok(user) => user,
        Err(refused) => return refused.into_response(),
    };
    let lasting = tokens.map_or(Duration::from_secs(3600), |t| t.ttl());
    let closed = server.revoke_user(&user, lasting);
    axum::Json(serde_json::json!({ "closed": closed })).into_response()
}

/// `POST /admin/cut?user=NAME` with the admin's token: closes NAME's sockets on this node with 1001, which
/// its pages reconnect after. Answers `{"closed": N}`.
async fn cut(
    State((server, tokens)): State<(Server, Option<Tokens>)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let user = match admin_target(tokens.as_ref(), query, &headers) {
        Ok(user) => user,
        Err(refused) => return refused.into_response(),
    };
    let closed = server.disconnect_user(&user, ws_core::close::GOING_AWAY, "cut by the admin");
    axum::Json(serde_json::json!({ "closed": closed })).into_response()
}

/// The `?user=` of an admin request that carries the admin's token as a bearer token.
fn admin_target(
    tokens: Option<&Tokens>,
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<String, Error> {
    let query = parameters(query);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let admin = match (tokens, bearer) {
        (Some(tokens), Some(token)) => tokens
            .check(token)
            .is_ok_and(|data| data.user_name() == Some("admin")),
        (None, Some(token)) => token == "admin",
        (_, None) => false,
    };
    if !admin {
        return Err(Error::forbidden("the admin's token is required"));
    }
    query
        .get("user")
        .filter(|u| !u.is_empty())
        .cloned()
        .ok_or_else(|| Error::invalid_data("?user= is required"))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(&format!("cannot listen for SIGTERM: {e}")));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A count or size flag, which must fit this machine's `usize`.
fn size(flag: &str, n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| format!("{flag}: {n} is too large"))
}

/// What the command line asks for.
struct Args {
    config: Config,
    redis: Option<RedisConfig>,
    history: Option<usize>,
    tokens: Option<Tokens>,
    /// How the assistant answers.
    assistant: chat::AssistantPace,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = Config::default()
        .port(6001)
        .compression(Compression::deflate());
    let mut redis = None;
    let mut redis_wait = None;
    let mut history = None;
    let mut allowed_hosts = Vec::new();
    let mut token_ttl = None;
    let mut token_secret = None;
    let mut assistant = chat::AssistantPace::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        let rate = |v: &str| {
            u32::try_from(number(v)?).map_err(|_| format!("{flag}: {v} is above {}", u32::MAX))
        };
        match flag.as_str() {
            "--host" => config.host = value,
            "--port" => {
                config.port = value
                    .parse()
                    .map_err(|_| format!("{flag}: bad port {value:?}"))?
            }
            "--rate-limit" => config.message_rate_limit = rate(&value)?,
            "--burst" => config.message_burst_size = rate(&value)?,
            "--max-connections" => config.max_connections = size(&flag, number(&value)?)?,
            "--max-message-size" => config.max_message_size = size(&flag, number(&value)?)?,
            "--max-connections-per-ip" => {
                config.max_connections_per_ip = size(&flag, number(&value)?)?
            }
            "--allowed-origin" => config.allowed_origins.push(value),
            "--allowed-host" => allowed_hosts.push(value),
            "--redis" => redis = Some(RedisConfig::new(&value).map_err(|e| e.to_string())?),
            "--redis-cluster" => {
                let cluster = RedisConfig::cluster(value.split(','));
                redis = Some(cluster.map_err(|e| e.to_string())?)
            }
            "--redis-wait" => redis_wait = Some(size(&flag, number(&value)?)?),
            "--history" => history = Some(size(&flag, number(&value)?)?).filter(|&n| n > 0),
            "--token-ttl" => token_ttl = Some(Duration::from_secs(number(&value)?)),
            "--session-grace" => config.session_grace = Duration::from_secs(number(&value)?),
            "--token-secret" => token_secret = Some(value),
            "--assistant-words" => {
                assistant.words = u32::try_from(number(&value)?)
                    .map_err(|_| format!("{flag}: {value} is too large"))?
            }
            "--assistant-delay-ms" => assistant.delay = Duration::from_millis(number(&value)?),
            "--compression" => {
                config.compression = match value.as_str() {
                    "on" => Compression::deflate(),
                    "off" => Compression::off(),
                    _ => return Err(format!("{flag}: {value:?} is neither on nor off")),
                }
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    if allowed_hosts.is_empty() {
        // The names of this machine, so a page on another name that resolves here (DNS rebinding) is
        // refused, and the address it serves on when that is a specific one.
        allowed_hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let bound_to_all = config
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !bound_to_all {
            allowed_hosts.push(config.host.clone());
        }
    }
    config.allowed_hosts = allowed_hosts;
    config.validate().map_err(|e| e.to_string())?;
    if let Some(replicas) = redis_wait {
        let Some(with_redis) = redis else {
            return Err("--redis-wait needs --redis or --redis-cluster".to_owned());
        };
        redis = Some(with_redis.wait_for_replicas(replicas, Duration::from_secs(1)));
    }
    let tokens = match token_ttl {
        Some(ttl) => {
            let secret = token_secret.unwrap_or_else(|| {
                let bytes: [u8; 32] = rand::random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            });
            Some(Tokens::new(secret.as_bytes(), ttl).map_err(|e| e.to_string())?)
        }
        None if token_secret.is_some() => return Err("--token-secret needs --token-ttl".to_owned()),
        None => None,
    };
    Ok(Args {
        config,
        redis,
        history,
        tokens,
        assistant,
    })
}

fn fail(message: &str) -> ! {
    eprintln!("chat: {message}");
    std::process::exit(1)
}
