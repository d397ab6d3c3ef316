//! The connection pipeline (README "Handlers and the socket"): the socket is read while a handler runs,
//! one client's handlers run one at a time in arrival order, and frames waiting for their handler are
//! bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws_core::handler::Request;
use ws_core::protocol::Message;
use ws_core::{Config, Error, Server, ServerBuilder};

use crate::support::{TestServer, WAIT, WsClient, config, spawn, start_example};

/// A server whose `hold` handler waits until the test adds a permit to `gate`, and whose `echo` handler
/// answers with its data; `order` records the data of every handled frame.
fn gated(config: Config) -> (ServerBuilder, Arc<Semaphore>, Arc<Mutex<Vec<Value>>>) {
    let gate = Arc::new(Semaphore::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let builder = Server::builder(config)
        .on("hold", {
            let (gate, order) = (gate.clone(), order.clone());
            move |msg: Message| {
                let (gate, order) = (gate.clone(), order.clone());
                async move {
                    gate.acquire().await.expect("gate open").forget();
                    order.lock().unwrap().push(msg.data.clone());
                    Ok::<_, Error>(msg.data)
                }
            }
        })
        .on("echo", {
            let order = order.clone();
            move |msg: Message| {
                let order = order.clone();
                async move {
                    order.lock().unwrap().push(msg.data.clone());
                    Ok::<_, Error>(msg.data)
                }
            }
        });
    (builder, gate, order)
}

/// A `gated` server with `config`, and a client whose `hold` request (data 0, id 1) is running.
async fn holding(config: Config) -> (TestServer, WsClient, Arc<Semaphore>, Arc<Mutex<Vec<Value>>>) {
    let (builder, gate, order) = gated(config);
    let srv = spawn(builder).await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "hold", "data": 0, "id": 1}))
        .await;
    (srv, client, gate, order)
}

/// A handler's request to its own client is answered: the client's `$reply` is read while the handler
/// waits for it (chat's `ask` addressed to oneself).
#[tokio::test]
async fn a_handler_request_to_its_own_client_is_answered() {
    let chat = start_example("chat", &["--port", "0"]).await;
    let (mut ann, ann_id) = chat.join("ann").await;
    ann.send_json(json!({"type": "ask", "data": {"to": ann_id, "question": "tea?"}, "id": 1}))
        .await;
    let asked = ann.recv().await;
    assert_eq!(asked["type"], "ask", "{asked}");
    assert_eq!(asked["data"], json!({"question": "tea?", "user": "ann"}));
    ann.send_json(json!({"type": "$reply", "id": asked["id"], "data": {"answer": "yes"}}))
        .await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "$reply", "id": 1, "data": {"answer": "yes"}}),
        "answered, not timed out"
    );
}

/// `$ping` is answered while the client's handler is still running.
#[tokio::test]
async fn ping_is_answered_while_a_handler_runs() {
    let (builder, gate, _) = gated(config());
    let srv = spawn(builder).await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "hold", "data": "slow", "id": 1}))
        .await;
    client.send_json(json!({"type": "$ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "$pong"}));
    gate.add_permits(1);
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": "slow"})
    );
}

/// A handler that runs for longer than `pong_timeout` keeps its connection: the client's pongs are read
/// meanwhile.
#[tokio::test]
async fn a_handler_longer_than_pong_timeout_keeps_its_connection() {
    let srv = spawn(
        Server::builder(
            config()
                .ping_interval(Duration::from_millis(50))
                .pong_timeout(Duration::from_millis(200)),
        )
        .on("slow", |_req: Request| async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok::<_, Error>("done")
        }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "slow", "id": 1})).await;
    // `recv` keeps reading, so the client library answers every ping while the handler sleeps.
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": "done"})
    );
    assert_eq!(srv.server.stats().pong_timeouts, 0);
    client.send_json(json!({"type": "slow", "id": 2})).await;
    assert_eq!(client.recv().await["id"], 2, "still connected");
}

/// 100 requests sent without waiting are handled one at a time and answered in the order they were sent,
/// even when earlier handlers take longer than later ones.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let srv = spawn(Server::builder(config()).on("work", {
        let handled = handled.clone();
        move |msg: Message| {
            let handled = handled.clone();
            async move {
                let n = msg.data.as_u64().unwrap_or_default();
                // Every third handler is slow: a pipeline that overlapped handlers would reorder them.
                if n.is_multiple_of(3) {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                handled.lock().unwrap().push(n);
                Ok::<_, Error>(n)
            }
        }
    }))
    .await;
    let mut client = srv.connect().await;
    for n in 1..=100u64 {
        client
            .ws
            .feed(WsMessage::text(
                json!({"type": "work", "data": n, "id": n}).to_string(),
            ))
            .await
            .unwrap();
    }
    client.ws.flush().await.unwrap();
    for n in 1..=100u64 {
        assert_eq!(
            client.recv().await,
            json!({"type": "$reply", "id": n, "data": n})
        );
    }
    assert_eq!(*handled.lock().unwrap(), (1..=100).collect::<Vec<_>>());
}

/// Past `inbound_queue_capacity` waiting frames, a frame is refused with `$error` `overloaded` (with the
/// request's `id`, or none), the connection stays, and the frames accepted before are all handled in order.
#[tokio::test]
async fn frames_past_the_waiting_bound_are_refused_with_overloaded() {
    let (srv, mut client, gate, order) = holding(config().inbound_queue_capacity(3)).await;
    for n in 1..=3 {
        client
            .send_json(json!({"type": "echo", "data": n, "id": n + 1}))
            .await;
    }
    client
        .send_json(json!({"type": "echo", "data": 4, "id": 5}))
        .await;
    let refused = client.recv().await;
    assert_eq!(refused["type"], "$error", "{refused}");
    assert_eq!(refused["id"], 5);
    assert_eq!(refused["data"]["code"], "overloaded");
    client.send_json(json!({"type": "echo", "data": 5})).await;
    let refused = client.recv().await;
    assert_eq!(refused["data"]["code"], "overloaded", "{refused}");
    assert_eq!(
        refused.get("id"),
        None,
        "a frame without id gets an error without id"
    );
    assert_eq!(srv.server.stats().overloaded, 2);

    gate.add_permits(1);
    for id in 1..=4 {
        assert_eq!(client.recv().await["id"], id);
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    client
        .send_json(json!({"type": "echo", "data": 6, "id": 6}))
        .await;
    assert_eq!(client.recv().await["data"], 6, "the connection stayed");
}

/// The waiting frames are bounded in bytes too (`inbound_queue_max_bytes`); one frame larger than the
/// bound still fits when nothing else waits.
#[tokio::test]
async fn the_waiting_bound_counts_bytes() {
    let (_srv, mut client, gate, _) = holding(config().inbound_queue_max_bytes(1024)).await;
    let big = "x".repeat(2000);
    client
        .send_json(json!({"type": "echo", "data": big, "id": 2}))
        .await;
    client
        .send_json(json!({"type": "echo", "data": "small", "id": 3}))
        .await;
    let refused = client.recv().await;
    assert_eq!(
        (refused["id"].clone(), refused["data"]["code"].clone()),
        (json!(3), json!("overloaded"))
    );
    gate.add_permits(1);
    assert_eq!(client.recv().await["id"], 1);
    assert_eq!(client.recv().await["data"], json!(big));
}

/// In raw mode there is no envelope to answer with: a frame past the waiting bound closes with 1008.
#[tokio::test]
async fn raw_mode_past_the_waiting_bound_closes_1008() {
    let gate = Arc::new(Semaphore::new(0));
    let srv = spawn(Server::builder(config().inbound_queue_capacity(1)).raw({
        let gate = gate.clone();
        move |_client, _msg| {
            let gate = gate.clone();
            async move { gate.acquire().await.expect("gate open").forget() }
        }
    }))
    .await;
    let mut client = srv.connect().await;
    for text in ["running", "waiting", "refused"] {
        client.send_text(text).await;
    }
    let closed = tokio::time::timeout(WAIT, client.recv_close())
        .await
        .unwrap();
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1008, "too many messages waiting")
    );
    assert_eq!(srv.server.stats().overloaded, 1);
    gate.add_permits(2);
}

/// `on_connect` runs while the socket is read: a `$ping` is answered before the hook ends, and the first
/// handler runs after it.
#[tokio::test]
async fn on_connect_runs_first_while_the_socket_is_read() {
    let gate = Arc::new(Semaphore::new(0));
    let srv = spawn(
        Server::builder(config())
            .on_connect({
                let gate = gate.clone();
                move |client| {
                    let gate = gate.clone();
                    async move {
                        gate.acquire().await.expect("gate open").forget();
                        client.set_metadata("greeted", true).unwrap();
                    }
                }
            })
            .on("greeted", |req: Request| async move {
                Ok::<_, Error>(req.client().get_metadata("greeted"))
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "greeted", "id": 1})).await;
    client.send_json(json!({"type": "$ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "$pong"}));
    gate.add_permits(1);
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": true})
    );
}
