//! `examples/axum-app` over HTTP and WebSocket: README "The axum application" (its route table, the token
//! expiry close code 4001).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{WsClient, http, http_get, refused_status, start_example};

/// A request with a JSON body and an optional bearer token; the status and the body.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    http(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let body = json!({"user": user, "password": password}).to_string();
    let (status, answer) = send(addr, "POST", "/login", None, &body).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["user"], user);
    answer["token"].as_str().expect("a token").to_owned()
}

/// Login, REST routes behind a bearer token, the socket behind the same token (header, cookie or query),
/// REST and socket handlers sharing the application's notes, its layers' answers, and one metrics page.
#[tokio::test]
async fn rest_and_websocket_share_the_login_and_the_state() {
    let app = start_example("axum-app", &["--port", "0"]).await;
    let addr = app.addr;
    assert_eq!(http_get(addr, "/health").await, (200, "ok".to_owned()));

    let wrong = json!({"user": "ann", "password": "nope"}).to_string();
    assert_eq!(send(addr, "POST", "/login", None, &wrong).await.0, 401);
    let ann = login(addr, "ann", "ann-secret").await;
    let bob = login(addr, "bob", "bob-secret").await;

    assert_eq!(send(addr, "GET", "/api/notes", None, "").await.0, 401);
    assert_eq!(
        send(addr, "GET", "/api/notes", Some("not.a.token"), "")
            .await
            .0,
        401
    );
    let (status, me) = send(addr, "GET", "/api/me", Some(&ann), "").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&me).unwrap()["user"], "ann");

    let ws = format!("ws://{addr}/ws");
    assert_eq!(refused_status(ws.as_str()).await, 401);
    assert_eq!(refused_status(format!("{ws}?token=forged")).await, 401);
    let mut by_query = WsClient::connect(&format!("{ws}?token={ann}")).await;
    let mut by_header = ws.as_str().into_client_request().unwrap();
    by_header.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {bob}")).unwrap(),
    );
    let mut by_header = WsClient::try_connect_request(by_header).await.unwrap();
    let mut by_cookie = ws.as_str().into_client_request().unwrap();
    by_cookie.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("theme=dark; token={bob}")).unwrap(),
    );
    let mut by_cookie = WsClient::try_connect_request(by_cookie).await.unwrap();

    // The 101 is sent before the server has registered the socket; an answered request shows it has.
    for (id, client) in [&mut by_query, &mut by_header, &mut by_cookie]
        .into_iter()
        .enumerate()
    {
        let listed = client.ask("list_notes", Value::Null, 100 + id as u64).await;
        assert_eq!(listed["data"], json!([]));
    }

    // A note added over REST reaches every socket.
    let body = json!({"text": "from REST"}).to_string();
    let (status, note) = send(addr, "POST", "/api/notes", Some(&ann), &body).await;
    assert_eq!(status, 201, "{note}");
    let note: Value = serde_json::from_str(&note).unwrap();
    assert_eq!(note, json!({"id": 1, "author": "ann", "text": "from REST"}));
    for client in [&mut by_query, &mut by_header, &mut by_cookie] {
        assert_eq!(
            client.recv().await,
            json!({"type": "note_added", "data": note})
        );
    }

    // A note added over a socket is in the application's state for REST, with the socket's user.
    let reply = by_header
        .ask("add_note", json!({"text": "from a socket"}), 1)
        .await;
    let second = json!({"id": 2, "author": "bob", "text": "from a socket"});
    assert_eq!(reply, json!({"type": "$reply", "id": 1, "data": second}));
    assert_eq!(
        by_query.recv().await,
        json!({"type": "note_added", "data": second})
    );
    let (status, list) = send(addr, "GET", "/api/notes", Some(&bob), "").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap(),
        json!([note, second])
    );
    let listed = by_query.ask("list_notes", Value::Null, 2).await;
    assert_eq!(listed["data"], json!([note, second]));

    // Bad notes, a body past the limit.
    let empty = by_query.ask("add_note", json!({"text": ""}), 3).await;
    assert_eq!(
        (&empty["type"], &empty["data"]["code"]),
        (&json!("$error"), &json!("invalid_data"))
    );
    let body = json!({"text": ""}).to_string();
    assert_eq!(
        send(addr, "POST", "/api/notes", Some(&ann), &body).await.0,
        400
    );
    let big = json!({"text": "x".repeat(20 * 1024)}).to_string();
    assert_eq!(
        send(addr, "POST", "/api/notes", Some(&ann), &big).await.0,
        413
    );

    // One page: the application's metric and ws-core's.
    let (status, page) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let page = openmetrics_parser::openmetrics::parse_openmetrics(&page)
        .unwrap_or_else(|e| panic!("{e:?}\n{page}"));
    let logins = &page.families["app_logins"];
    let ok = logins
        .get_sample_by_label_values(&["ok".to_owned()])
        .expect("ok logins");
    let refused = logins
        .get_sample_by_label_values(&["refused".to_owned()])
        .expect("refused logins");
    let count = |v: &openmetrics_parser::OpenMetricsValue| match v {
        openmetrics_parser::OpenMetricsValue::Counter(c) => c.value.as_f64(),
        other => panic!("not a counter: {other:?}"),
    };
    assert_eq!((count(&ok.value), count(&refused.value)), (2.0, 1.0));
    assert!(page.families.contains_key("ws_connected_clients"));
    assert!(page.families.contains_key("ws_handler_duration_seconds"));
}

/// A socket still open when its token expires is closed with 4001 "token expired"; `$refresh` with a
/// newer token of the same user moves the expiry, another user's is refused; an expired token gets 401.
#[tokio::test]
async fn an_expired_token_closes_its_socket_with_4001() {
    // Expiry is in whole seconds: a 3 s token expires between 2 and 3 s after it was issued, after the
    // refresh below.
    let app = start_example("axum-app", &["--port", "0", "--token-ttl", "3"]).await;
    let addr = app.addr;
    let first = login(addr, "ann", "ann-secret").await;
    let ws = format!("ws://{addr}/ws?token={first}");
    let mut kept = WsClient::connect(&ws).await;
    let mut refreshed = WsClient::connect(&ws).await;

    // A second later, a newer token expires at least a second later than the first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = login(addr, "ann", "ann-secret").await;
    let bob = login(addr, "bob", "bob-secret").await;
    let refused = refreshed.ask("$refresh", json!({"token": bob}), 1).await;
    assert_eq!(refused["data"]["code"], "forbidden", "{refused}");
    let reply = refreshed.ask("$refresh", json!({"token": newer}), 2).await;
    let left = reply["data"]["expires_in_ms"]
        .as_u64()
        .expect("expires_in_ms");
    assert!(left > 1000, "{reply}");

    let closed = kept.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4001, "token expired")
    );
    // The refreshed socket outlives the first token.
    let listed = refreshed.ask("list_notes", Value::Null, 3).await;
    assert_eq!(listed["type"], "$reply");
    assert_eq!(refused_status(ws.as_str()).await, 401);
    assert_eq!(send(addr, "GET", "/api/me", Some(&first), "").await.0, 401);

    let closed = refreshed.recv_close().await;
    assert_eq!(closed.code, 4001);
}
