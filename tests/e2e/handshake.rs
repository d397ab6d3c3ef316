//! Refusals before the upgrade (docs/protocol.md "Before the upgrade"): each is an HTTP status, and none
//! takes a client slot.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ws_core::auth::ClientData;
use ws_core::protocol::Frame;
use ws_core::{Error, Server};

use crate::support::{WsClient, config, http, refused_status, spawn};

/// docs/protocol.md "Answers to bad input", "not a WebSocket upgrade": 426 with the upgrade headers, no client slot used.
#[tokio::test]
async fn plain_http_request_gets_426_and_uses_no_slot() {
    let srv = spawn(Server::builder(config().max_connections(1))).await;
    let (status, body) = http(
        srv.addr,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 426);
    assert_eq!(body, "this endpoint speaks WebSocket only");
    assert_eq!(srv.server.stats().rejected_connections, 1);
    // The one slot is still free.
    let client = srv.connect().await;
    assert_eq!(srv.server.stats().connected_clients, 1);
    client.close().await;
}

/// docs/protocol.md "Answers to bad input", "not a WebSocket upgrade": a wrong version is 426, a malformed key is 400.
#[tokio::test]
async fn bad_version_gets_426_and_bad_key_gets_400() {
    let srv = spawn(Server::builder(config())).await;
    let head = |version: &str, key: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {key}\r\n\r\n",
            srv.addr
        )
    };
    assert_eq!(
        http(srv.addr, &head("8", "dGhlIHNhbXBsZSBub25jZQ=="))
            .await
            .0,
        426
    );
    assert_eq!(http(srv.addr, &head("13", "short")).await.0, 400);
    // 24 characters are not enough: the key must be 16 bytes in base64.
    for bad in [
        "************************",
        "dGhlIHNhbXBsZSBub25jZQ=x",
        "dGhlIHNhbXBsZSBub25jZR==",
        "dGhlIHNhbXBsZSBub25j====",
    ] {
        assert_eq!(http(srv.addr, &head("13", bad)).await.0, 400, "{bad}");
    }
    assert_eq!(
        http(srv.addr, &head("13", "dGhlIHNhbXBsZSBub25jZQ=="))
            .await
            .0,
        101
    );
    assert_eq!(srv.server.stats().rejected_connections, 6);
}

fn with_origin(
    url: &str,
    origin: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    req
}

/// docs/protocol.md "Answers to bad input", "`Origin` not allowed": 403 by default for a foreign origin; same origin and no origin pass.
#[tokio::test]
async fn foreign_origin_gets_403_by_default() {
    let srv = spawn(Server::builder(config())).await;
    let url = srv.url("/ws");
    assert_eq!(
        refused_status(with_origin(&url, "http://evil.test")).await,
        403
    );
    let same = format!("http://{}", srv.addr);
    WsClient::try_connect_request(with_origin(&url, &same))
        .await
        .expect("same origin")
        .close()
        .await;
    WsClient::connect(&url).await.close().await;
    assert_eq!(srv.server.stats().rejected_connections, 1);
}

/// docs/protocol.md "Answers to bad input", "`Origin` not allowed": an allow-list admits only its entries; `*` admits any origin.
#[tokio::test]
async fn origin_allow_list_and_wildcard() {
    let listed = spawn(Server::builder(
        config().allowed_origins(["https://app.test"]),
    ))
    .await;
    let url = listed.url("/ws");
    assert_eq!(
        refused_status(with_origin(&url, "https://other.test")).await,
        403
    );
    WsClient::try_connect_request(with_origin(&url, "https://app.test"))
        .await
        .expect("listed")
        .close()
        .await;

    let any = spawn(Server::builder(config().allowed_origins(["*"]))).await;
    WsClient::try_connect_request(with_origin(&any.url("/ws"), "https://whatever.test"))
        .await
        .expect("wildcard")
        .close()
        .await;
}

/// docs/protocol.md "Answers to bad input", "authenticator error": the status the error chooses (401 for
/// `unauthorized`, 403 for `forbidden`, any `IntoResponse` as it is), with its message; no slot used;
/// success attaches data.
#[tokio::test]
async fn auth_error_chooses_its_status_and_success_attaches_data() {
    let srv = spawn(
        Server::builder(config().max_connections(1))
            .auth(|req| async move {
                match req.query("token").as_deref() {
                    Some("good") => Ok(ClientData::new().metadata("user", "ann")),
                    Some("banned") => Err(Error::forbidden("banned").into_response()),
                    Some("busy") => {
                        Err((StatusCode::TOO_MANY_REQUESTS, "slow down").into_response())
                    }
                    _ => Err(Error::unauthorized("bad token").into_response()),
                }
            })
            .on_connect(|c| async move {
                let user = c.get_metadata("user").unwrap();
                let _ = c.send(Frame::envelope("hello", &user));
            }),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(refused_status(srv.url("/ws?token=bad")).await, 401);
    }
    let (status, body) = http(
        srv.addr,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (401, "bad token"));
    assert_eq!(refused_status(srv.url("/ws?token=banned")).await, 403);
    assert_eq!(refused_status(srv.url("/ws?token=busy")).await, 429);
    let mut client = WsClient::connect(&srv.url("/ws?token=good")).await;
    assert_eq!(
        client.recv().await,
        serde_json::json!({"type": "hello", "data": "ann"})
    );
    assert_eq!(srv.server.stats().rejected_connections, 6);
    client.close().await;
}

/// docs/protocol.md "Answers to bad input", "`max_connections` reached": 503 before the upgrade; the slot frees when a client leaves.
#[tokio::test]
async fn max_connections_gets_503() {
    let srv = spawn(Server::builder(config().max_connections(2))).await;
    let a = srv.connect().await;
    let b = srv.connect().await;
    assert_eq!(refused_status(srv.url("/ws")).await, 503);
    a.close().await;
    crate::support::eventually("slot released", || async {
        srv.server.stats().connected_clients == 1
    })
    .await;
    crate::support::eventually_connects("a new client fits", &srv.url("/ws")).await;
    b.close().await;
}

/// `handle_connection` works as an axum handler on any route, next to other routes.
#[tokio::test]
async fn handle_connection_mounts_on_any_route() {
    use axum::routing::get;
    let server = Server::builder(config()).build().unwrap();
    let app = axum::Router::new()
        .route("/custom/socket", get(ws_core::handle_connection))
        .with_state(server.clone())
        .route("/plain", get(|| async { "plain" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_app(listener, app).await });
    let client = WsClient::connect(&format!("ws://{addr}/custom/socket")).await;
    assert_eq!(
        crate::support::http_get(addr, "/plain").await,
        (200, "plain".to_owned())
    );
    assert_eq!(server.stats().connected_clients, 1);
    client.close().await;
}

/// `serve()` binds `host:port` from the config and serves the router at `path`.
#[tokio::test]
async fn serve_binds_configured_address() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let server = Server::builder(config().port(port).path("/live"))
        .build()
        .unwrap();
    let serving = server.clone();
    let task = tokio::spawn(async move { serving.serve().await });
    let url = format!("ws://127.0.0.1:{port}/live");
    crate::support::eventually("server up", || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    WsClient::connect(&url).await.close().await;
    server.stop().await;
    task.await.unwrap().unwrap();
}

/// The head of a browser's WebSocket request from a page on `host` to `host`.
fn ws_request(host: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: http://{host}\r\n\r\n"
    )
}

/// docs/protocol.md "Answers to bad input", "`Host` not allowed": with `allowed_hosts` set, a page on
/// another name that resolves to the server (DNS rebinding) is same-origin but gets 403; a listed name
/// with any port passes.
#[tokio::test]
async fn host_outside_allowed_hosts_gets_403() {
    let srv = spawn(Server::builder(
        config().allowed_hosts(["127.0.0.1", "localhost"]),
    ))
    .await;
    let port = srv.addr.port();
    let (status, body) = http(srv.addr, &ws_request(&format!("rebind.test:{port}"))).await;
    assert_eq!((status, body.as_str()), (403, "host not allowed"));
    let (status, _) = http(srv.addr, &ws_request(&format!("localhost:{port}"))).await;
    assert_eq!(status, 101);
    let (status, _) = http(srv.addr, &ws_request(&srv.addr.to_string())).await;
    assert_eq!(status, 101);

    // Without the list, the same-origin default lets the rebinding page in.
    let open = spawn(Server::builder(config())).await;
    let (status, _) = http(open.addr, &ws_request("rebind.test:80")).await;
    assert_eq!(status, 101);
}

/// docs/protocol.md "Answers to bad input", "`max_connections_per_ip` reached": 429 for that address
/// only while it holds its connections; the slot frees when one leaves.
#[tokio::test]
async fn connections_per_ip_gets_429() {
    let srv = spawn(
        Server::builder(config().max_connections_per_ip(2)).auth(|req| async move {
            // The authenticator sees the peer address too.
            let ip = req.peer_addr().expect("peer address behind serve_app").ip();
            Ok::<_, Error>(ClientData::new().metadata("ip", ip.to_string()))
        }),
    )
    .await;
    let a = srv.connect().await;
    let b = srv.connect().await;
    assert_eq!(refused_status(srv.url("/ws")).await, 429);
    assert_eq!(
        srv.server.local_clients()[0].get_metadata("ip"),
        Some(serde_json::json!("127.0.0.1"))
    );
    a.close().await;
    crate::support::eventually_connects("a new client from the address fits", &srv.url("/ws"))
        .await;
    b.close().await;
}

/// docs/protocol.md "Answers to bad input", "`max_handshakes` reached": connections that never finish
/// their request hold at most `max_handshakes`; the next one is answered 503 before its request is read,
/// and a slot frees as soon as one of them goes away.
#[tokio::test]
async fn idle_http_connections_past_max_handshakes_get_503() {
    use tokio::io::AsyncReadExt;
    let srv = spawn(Server::builder(config().max_handshakes(3))).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(srv.addr).await.unwrap());
    }
    crate::support::eventually("three handshakes in progress", || async {
        use tokio::io::AsyncWriteExt;
        let mut probe = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        // A whole request sent at once still gets its answer, not a reset.
        let head = format!("GET /ws HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr);
        probe.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            probe.read_to_string(&mut answer),
        )
        .await;
        read.is_ok() && answer.starts_with("HTTP/1.1 503")
    })
    .await;
    assert!(srv.server.stats().rejected_connections >= 1);
    drop(idle.pop());
    crate::support::eventually_connects("a WebSocket client fits again", &srv.url("/ws")).await;
}

/// docs/protocol.md "Answers to bad input", "authenticator too slow": an authenticator still running
/// after `handshake_timeout` gets the request answered 503, and the server serves others meanwhile.
#[tokio::test]
async fn authenticator_past_handshake_timeout_gets_503() {
    let srv = spawn(
        Server::builder(config().handshake_timeout(std::time::Duration::from_millis(300))).auth(
            |req| async move {
                if req.query("token").as_deref() == Some("hang") {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Error>(ClientData::new())
            },
        ),
    )
    .await;
    let hanging = tokio::spawn({
        let url = srv.url("/ws?token=hang");
        async move { refused_status(url).await }
    });
    let ok = WsClient::connect(&srv.url("/ws?token=ok")).await;
    assert_eq!(hanging.await.unwrap(), 503);
    ok.close().await;
}

/// docs/protocol.md "Answers to bad input", "metadata past `max_metadata_bytes`": an authenticator whose
/// metadata exceeds the bound gets the request answered 500 (the server's own mistake, not the
/// client's), and no slot is used.
#[tokio::test]
async fn authenticator_metadata_past_its_bound_gets_500() {
    let srv = spawn(
        Server::builder(config().max_metadata_bytes(100)).auth(|req| async move {
            let user = req.query("token").unwrap_or_default();
            Ok::<_, Error>(ClientData::new().metadata("user", user))
        }),
    )
    .await;
    assert_eq!(
        refused_status(srv.url(&format!("/ws?token={}", "u".repeat(200)))).await,
        500
    );
    let ok = WsClient::connect(&srv.url("/ws?token=ann")).await;
    assert_eq!(srv.server.stats().connected_clients, 1);
    ok.close().await;
}

/// docs/protocol.md "Refusals a browser can read": with `ws_refusal=close` a refusal is a close frame with
/// 3000 + the status and the refusal's text, after the upgrade; no client is registered, no slot taken.
#[tokio::test]
async fn a_refusal_asked_for_in_band_is_a_close_frame_with_3000_plus_the_status() {
    let srv = spawn(
        Server::builder(config().max_connections(1))
            .auth(|req| async move {
                match req.query("token").as_deref() {
                    Some("good") => Ok(ClientData::new()),
                    Some("banned") => Err(Error::forbidden("banned").into_response()),
                    Some("long") => Err(Error::unauthorized("é".repeat(100)).into_response()),
                    _ => Err(Error::unauthorized("bad token").into_response()),
                }
            })
            .on_connect(|c| async move {
                let _ = c.send(Frame::envelope("hello", &"welcome"));
            }),
    )
    .await;
    let cases = [
        ("bad", 3401, "bad token".to_owned()),
        ("banned", 3403, "banned".to_owned()),
        // A close frame holds 123 bytes of reason: cut at a character boundary.
        ("long", 3401, "é".repeat(61)),
    ];
    for (token, code, reason) in cases {
        let mut refused =
            WsClient::connect(&srv.url(&format!("/ws?ws_refusal=close&token={token}"))).await;
        let closed = refused.recv_close().await;
        assert_eq!(
            (closed.code, closed.reason),
            (code, reason),
            "token {token}"
        );
    }
    assert_eq!(srv.server.stats().connected_clients, 0);
    assert_eq!(srv.server.stats().rejected_connections, 3);

    // The one slot is free; once taken, the next client hears 3503 with the reason.
    let mut client = WsClient::connect(&srv.url("/ws?ws_refusal=close&token=good")).await;
    assert_eq!(
        client.recv().await,
        serde_json::json!({"type": "hello", "data": "welcome"})
    );
    let mut full = WsClient::connect(&srv.url("/ws?ws_refusal=close&token=good")).await;
    let closed = full.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (3503, "too many connections")
    );
    // Without the parameter, the same refusal is the plain HTTP status.
    assert_eq!(refused_status(srv.url("/ws?token=bad")).await, 401);
    assert_eq!(refused_status(srv.url("/ws?token=good")).await, 503);
    client.close().await;
}

/// docs/protocol.md "Refusals a browser can read": what cannot be upgraded is answered over HTTP even when
/// the close is asked for.
#[tokio::test]
async fn a_request_that_cannot_be_upgraded_is_refused_over_http_even_in_band() {
    let srv = spawn(Server::builder(config())).await;
    let (status, _) = http(
        srv.addr,
        &format!(
            "GET /ws?ws_refusal=close HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = http(
        srv.addr,
        &format!(
            "GET /ws?ws_refusal=close HTTP/1.1\r\nHost: {}\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 426);
}
