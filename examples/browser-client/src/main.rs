//! The server of the browser example: `browser-client-server [--port N] [--static DIR]`.
//!
//! Serves the page (`DIR/index.html`, and what `wasm-bindgen` wrote into `DIR/pkg`) and the WebSocket at
//! `/ws`, with handlers for the enums the page is compiled with. `?token=NAME` names the user; an empty
//! token is refused (401, which the page's client is told in-band as 3401).

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use browser_client::{Confirmed, Inbound, Joined, Outbound, inbound, outbound};
use ws_core::auth::ClientData;
use ws_core::extract::Extension;
use ws_core::stream::Chunks;
use ws_core::version::ProtocolVersion;
use ws_core::{Client, Config, Error, Server, close, on};

/// Who a connection is, from its token.
#[derive(Clone)]
struct User(String);

#[on(Inbound::Join)]
async fn join(client: Client, msg: inbound::Join) -> Result<Joined, Error> {
    client.join(&msg.room)?;
    Ok(Joined {
        room: msg.room,
        id: client.id().to_string(),
    })
}

#[on(Inbound::Shout)]
async fn shout(client: Client, Extension(User(user)): Extension<User>, msg: inbound::Shout) {
    let shouted = Outbound::Shouted {
        text: msg.text,
        user,
    };
    client.server().to(&msg.room).send(shouted);
}

#[on(Inbound::AskMe)]
async fn ask_me(client: Client, msg: inbound::AskMe) -> Result<Confirmed, Error> {
    let question = outbound::Confirm {
        question: msg.question,
    };
    client.request(question, Duration::from_secs(5)).await
}

#[on(Inbound::Secret)]
async fn secret() -> Result<String, Error> {
    Err(Error::forbidden("not for you"))
}

#[on(Inbound::Count)]
async fn count(mut numbers: Chunks<u32>, msg: inbound::Count) -> Result<(), Error> {
    for n in 1..=msg.to {
        numbers.send(n).await?;
        tokio::time::sleep(Duration::from_millis(msg.delay_ms)).await;
    }
    Ok(())
}

#[on(Inbound::Kick)]
async fn kick(client: Client) {
    client.close(close::GOING_AWAY, "restarting");
}

#[tokio::main]
async fn main() {
    let mut port = 0;
    let mut dir = PathBuf::from("static");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--port", Some(v)) => {
                port = v.parse().unwrap_or_else(|_| fail("--port takes a number"))
            }
            ("--static", Some(v)) => dir = PathBuf::from(v),
            _ => fail("usage: browser-client-server [--port N] [--static DIR]"),
        }
    }
    let version = ProtocolVersion::new()
        .messages::<Inbound>()
        .messages::<Outbound>()
        .close_others();
    let server = Server::builder(Config::default().port(port))
        .auth(|req| async move {
            let user = req.query("token").filter(|t| !t.is_empty());
            let user = user.ok_or_else(|| Error::unauthorized("missing token"))?;
            Ok::<_, Error>(ClientData::new().extension(User(user.clone())).user(user))
        })
        .protocol_version(version)
        .handle(join)
        .handle(shout)
        .handle(ask_me)
        .handle(secret)
        .handle(kick)
        .handle(count)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let page = dir.join("index.html");
    let pkg = dir.join("pkg");
    let app = server
        .router()
        .route("/", get(move || file(page.clone())))
        .route(
            "/pkg/{name}",
            get(move |Path(name): Path<String>| packaged(pkg.clone(), name)),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind 127.0.0.1:{port}: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on http://{addr}");
    if let Err(e) = server.serve_app(listener, app).await {
        fail(&e.to_string());
    }
}

/// A file of `wasm-bindgen`'s output; only plain names, so nothing outside `pkg` is served.
async fn packaged(pkg: PathBuf, name: String) -> axum::response::Response {
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    file(pkg.join(name)).await
}

async fn file(path: PathBuf) -> axum::response::Response {
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    };
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("browser-client-server: {message}");
    std::process::exit(2);
}
