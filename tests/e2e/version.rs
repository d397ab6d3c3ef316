//! Protocol versions (the `ws_core::version` module docs): a client that names another fingerprint in
//! `ws_protocol` is told first with `$error` `protocol_mismatch` and served, or closed with 3409; the
//! chat binary's fingerprint is the one its generated SDK sends.

use serde_json::json;
use ws_core::version::ProtocolVersion;
use ws_core::{Server, ws_messages};

use crate::support::{WsClient, config, spawn, start_example};

#[ws_messages]
pub enum Inbound {
    Say { text: String },
}

#[ws_messages(outbound)]
pub enum Outbound {
    Said { text: String },
}

fn version() -> ProtocolVersion {
    ProtocolVersion::new()
        .messages::<Outbound>()
        .messages::<Inbound>()
}

/// A ping's answer: what comes after the frames the server sent on its own.
async fn pong(client: &mut WsClient) -> serde_json::Value {
    client.send_json(json!({"type": "$ping", "id": 1})).await;
    client.recv().await
}

#[tokio::test]
async fn an_outdated_client_is_told_first_and_served() {
    let ours = version().fingerprint();
    assert_eq!(ours.len(), 16);
    assert_eq!(
        ProtocolVersion::new()
            .messages::<Inbound>()
            .messages::<Outbound>()
            .fingerprint(),
        ours,
        "the order of the sets does not matter"
    );
    assert_ne!(
        ProtocolVersion::new().messages::<Inbound>().fingerprint(),
        ours
    );
    let srv = spawn(Server::builder(config()).protocol_version(version())).await;
    let pong_frame = json!({"type": "$pong", "id": 1});

    for query in ["", &format!("?ws_protocol={ours}"), "?token=x"] {
        let mut current = WsClient::connect(&srv.url(&format!("/ws{query}"))).await;
        assert_eq!(pong(&mut current).await, pong_frame, "for {query:?}");
    }

    let mut outdated =
        WsClient::connect(&srv.url("/ws?token=x&ws_protocol=0123456789abcdef")).await;
    let told = outdated.recv().await;
    assert_eq!(told["type"], "$error");
    assert_eq!(told["data"]["code"], "protocol_mismatch");
    assert!(told.get("id").is_none());
    let message = told["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("0123456789abcdef") && message.contains(&ours),
        "{message}"
    );
    assert_eq!(pong(&mut outdated).await, pong_frame, "still served");
}

#[tokio::test]
async fn a_server_that_closes_others_closes_with_3409() {
    let srv = spawn(Server::builder(config()).protocol_version(version().close_others())).await;
    let mut outdated = WsClient::connect(&srv.url("/ws?ws_protocol=other")).await;
    assert_eq!(outdated.recv().await["data"]["code"], "protocol_mismatch");
    let closed = outdated.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (3409, "protocol mismatch")
    );
    let ours = version().fingerprint();
    let mut current = WsClient::connect(&srv.url(&format!("/ws?ws_protocol={ours}"))).await;
    assert_eq!(pong(&mut current).await, json!({"type": "$pong", "id": 1}));
}

/// The chat's server and its generated SDK agree: the fingerprint in `examples/chat/sdk/protocol.ts` gets
/// the welcome, any other gets `protocol_mismatch` first.
#[tokio::test]
async fn the_chat_and_its_generated_client_name_one_fingerprint() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdk = std::fs::read_to_string(root.join("examples/chat/sdk/protocol.ts")).unwrap();
    let generated = sdk
        .lines()
        .find_map(|line| line.strip_prefix("export const PROTOCOL_FINGERPRINT = \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .expect("PROTOCOL_FINGERPRINT in protocol.ts");
    let chat = start_example("chat", &["--port", "0"]).await;
    let url =
        |fingerprint: &str| format!("ws://{}/ws?token=ann&ws_protocol={fingerprint}", chat.addr);
    let mut current = WsClient::connect(&url(generated)).await;
    assert_eq!(current.recv().await["type"], "welcome");
    let mut outdated = WsClient::connect(&url("ffffffffffffffff")).await;
    assert_eq!(outdated.recv().await["data"]["code"], "protocol_mismatch");
    assert_eq!(outdated.recv().await["type"], "welcome");
}
