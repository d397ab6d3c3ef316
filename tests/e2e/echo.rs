//! Raw mode (README "Handlers and the socket"; `ws_core::raw` module docs): the echo example, and raw
//! servers behind the same gates as envelope servers.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws_core::auth::ClientData;
use ws_core::protocol::Frame;
use ws_core::raw::RawMessage;
use ws_core::{Error, Server};

use crate::support::{WsClient, config, refused_status, spawn, start_example};

/// The echo example returns text and binary frames unchanged at `/`.
#[tokio::test]
async fn echo_example_echoes_text_and_binary() {
    let echo = start_example("echo", &["--port", "0"]).await;
    let mut client = WsClient::connect(&format!("ws://{}/", echo.addr)).await;
    client.send_text("not an envelope").await;
    assert_eq!(
        client.next_frame().await,
        WsMessage::text("not an envelope")
    );
    client
        .ws
        .send(WsMessage::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        client.next_frame().await,
        WsMessage::binary(vec![0u8, 159, 146, 150])
    );
    let big = "z".repeat(2 << 20);
    client.send_text(&big).await;
    assert_eq!(client.next_frame().await, WsMessage::text(big));
    client.close().await;
}

/// Raw mode keeps the origin, auth, connection-limit and size gates.
#[tokio::test]
async fn raw_mode_is_behind_the_same_gates() {
    let srv = spawn(
        Server::builder(config().max_connections(1).max_message_size(1024))
            .auth(|req| async move {
                req.query("token")
                    .map(|_| ClientData::new())
                    .ok_or_else(|| Error::unauthorized("token"))
            })
            .raw(|client, msg| async move {
                if let RawMessage::Text(t) = msg {
                    let _ = client.send(Frame::text(t.to_uppercase()));
                }
            }),
    )
    .await;
    assert_eq!(refused_status(srv.url("/ws")).await, 401);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        srv.url("/ws?token=1"),
    )
    .unwrap();
    req.headers_mut()
        .insert("Origin", "http://elsewhere.test".parse().unwrap());
    assert_eq!(refused_status(req).await, 403);
    let mut client = WsClient::connect(&srv.url("/ws?token=1")).await;
    assert_eq!(refused_status(srv.url("/ws?token=2")).await, 503);
    client.send_text("{\"not\": \"routed\"}").await;
    assert_eq!(
        client.next_frame().await,
        WsMessage::text("{\"NOT\": \"ROUTED\"}")
    );
    client.send_text(&"q".repeat(2000)).await;
    assert_eq!(client.recv_close().await.code, 1009);
}
