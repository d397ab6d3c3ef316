//! Dispatch (README "Handlers and the socket"; docs/protocol.md "Error codes"): replies, errors, panics,
//! middleware, hooks, ordering and concurrency.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Barrier, mpsc};
use ws_core::Client;
use ws_core::handler::{Next, Request};
use ws_core::protocol::Frame;
use ws_core::protocol::Message;
use ws_core::{Error, Server};

use crate::support::{config, eventually, spawn};

/// docs/protocol.md "Wire format": request/reply: every request gets exactly one answer with its id.
#[tokio::test]
async fn requests_get_exactly_one_reply() {
    let srv = spawn(
        Server::builder(config())
            .on("double", |_: Client, msg: Message| async move {
                Ok::<_, Error>(msg.data.as_i64().unwrap_or(0) * 2)
            })
            .on("nothing", |_: Client, _: Message| async {}),
    )
    .await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "double", "data": 21, "id": 1}))
        .await;
    client.send_json(json!({"type": "nothing", "id": 2})).await;
    client
        .send_json(json!({"type": "double", "data": 1, "id": 9007199254740991u64}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": 42})
    );
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 2, "data": null})
    );
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 9007199254740991u64, "data": 2})
    );
    client.expect_silence(Duration::from_millis(200)).await;
}

/// docs/protocol.md "Answers to bad input", "handler returns an error": `on_error` runs, a request gets `$error`, a plain frame gets nothing,
/// and the connection stays.
#[tokio::test]
async fn handler_error_reaches_on_error_and_request() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let srv = spawn(
        Server::builder(config())
            .on("fail", |_: Client, _: Message| async {
                Err::<(), _>(Error::forbidden("not you"))
            })
            .on("io", |_: Client, _: Message| async {
                let parsed: u32 = "x".parse()?;
                Ok::<_, ws_core::error::BoxError>(parsed)
            })
            .on("ok", |_: Client, _: Message| async {
                Ok::<_, Error>("fine")
            })
            .on_error(move |client, err| {
                seen.lock()
                    .unwrap()
                    .push((client.id().to_string(), err.to_string()))
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "fail"})).await;
    client.send_json(json!({"type": "fail", "id": 1})).await;
    client.send_json(json!({"type": "io", "id": 2})).await;
    client.send_json(json!({"type": "ok", "id": 3})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 1, "data": {"code": "forbidden", "message": "not you"}})
    );
    // Internal errors keep their detail on the server.
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 2, "data": {"code": "internal", "message": "internal error"}})
    );
    assert_eq!(client.recv().await["data"], "fine");
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 3);
    assert!(errors[0].1.starts_with("forbidden: not you"));
    assert!(errors[2].1.contains("invalid digit"), "{errors:?}");
    assert_eq!(srv.server.stats().handler_errors, 3);
}

/// docs/protocol.md "Answers to bad input", "handler panics": that client gets `$error` for its request and close 1011, `on_error` runs, and the
/// server and the other clients go on.
#[tokio::test]
async fn handler_panic_closes_1011_and_others_go_on() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let srv = spawn(
        Server::builder(config())
            .on("boom", |_: Client, _: Message| async {
                if true {
                    panic!("kaboom");
                }
            })
            .on("echo", |client: Client, msg: Message| async move {
                let _ = client.send(&msg);
            })
            .on_error(move |_, err| {
                seen.lock()
                    .unwrap()
                    .push(err.detail().unwrap_or_default().to_owned())
            }),
    )
    .await;
    let mut victim = srv.connect().await;
    let mut bystander = srv.connect().await;
    victim.send_json(json!({"type": "boom", "id": 4})).await;
    assert_eq!(
        victim.recv().await,
        json!({"type": "$error", "id": 4, "data": {"code": "internal", "message": "internal error"}})
    );
    let closed = victim.recv_close().await;
    assert_eq!(closed.code, 1011);
    assert_eq!(errors.lock().unwrap().as_slice(), ["panic: kaboom"]);
    assert_eq!(srv.server.stats().handler_panics, 1);
    bystander
        .send_json(json!({"type": "echo", "data": "ok"}))
        .await;
    assert_eq!(bystander.recv().await["data"], "ok");
    let mut newcomer = srv.connect().await;
    newcomer
        .send_json(json!({"type": "echo", "data": "new"}))
        .await;
    assert_eq!(newcomer.recv().await["data"], "new");
}

/// Middleware runs in registration order around the handler and can answer by itself.
#[tokio::test]
async fn middleware_runs_in_registration_order() {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let (t1, t2, t3) = (trace.clone(), trace.clone(), trace.clone());
    let srv = spawn(
        Server::builder(config())
            .use_middleware(move |req: Request, next: Next| {
                let t = t1.clone();
                async move {
                    t.lock().unwrap().push(format!("first>{}", req.kind()));
                    let out = next.run(req).await;
                    t.lock().unwrap().push("first<".to_owned());
                    out
                }
            })
            .use_middleware(move |req: Request, next: Next| {
                let t = t2.clone();
                async move {
                    t.lock().unwrap().push("second>".to_owned());
                    if req.kind() == "secret" {
                        return Err(Error::forbidden("blocked by middleware"));
                    }
                    next.run(req).await
                }
            })
            .on("work", move |_: Client, _: Message| {
                let t = t3.clone();
                async move {
                    t.lock().unwrap().push("handler".to_owned());
                    Ok::<_, Error>("done")
                }
            })
            .on("secret", |_: Client, _: Message| async {
                Ok::<_, Error>("leaked")
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client.send_json(json!({"type": "work", "id": 1})).await;
    assert_eq!(client.recv().await["data"], "done");
    assert_eq!(
        *trace.lock().unwrap(),
        ["first>work", "second>", "handler", "first<"]
    );
    client.send_json(json!({"type": "secret", "id": 2})).await;
    assert_eq!(client.recv().await["data"]["code"], "forbidden");
}

/// `on_connect` runs before the first frame is read and its send arrives first; `on_disconnect` runs
/// while the client's groups are still readable, then the groups are left automatically.
#[tokio::test]
async fn lifecycle_hooks() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let srv = spawn(
        Server::builder(config())
            .on_connect(|c| async move {
                let _ = c.send(Frame::envelope("welcome", c.id().as_str()));
            })
            .on("join", |c: Client, m: Message| async move {
                c.join(m.data.as_str().unwrap_or_default())
            })
            .on_disconnect(move |c| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((c.is_connected(), c.groups(), c.is_in_group("r1")));
                }
            }),
    )
    .await;
    let mut client = srv.connect().await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome");
    client
        .send_json(json!({"type": "join", "data": "r1", "id": 1}))
        .await;
    client
        .send_json(json!({"type": "join", "data": "r2", "id": 2}))
        .await;
    client.recv().await;
    client.recv().await;
    client.close().await;
    let seen = tokio::time::timeout(crate::support::WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, (false, vec!["r1".to_owned(), "r2".to_owned()], true));
    eventually("groups left", || async { srv.server.group_count() == 0 }).await;
}

/// One client's frames are handled one at a time in arrival order, even when handlers take different
/// times.
#[tokio::test]
async fn per_client_frames_are_handled_in_order() {
    let srv = spawn(
        Server::builder(config()).on("step", |c: Client, m: Message| async move {
            let n = m.data.as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis((n * 7) % 5)).await;
            let _ = c.send(Frame::envelope("done", &n));
        }),
    )
    .await;
    let mut client = srv.connect().await;
    for n in 0..50 {
        client.send_json(json!({"type": "step", "data": n})).await;
    }
    for n in 0..50 {
        assert_eq!(client.recv().await["data"], n);
    }
}

/// Handlers of different clients run concurrently: two handlers that wait for each other finish.
#[tokio::test]
async fn handlers_of_different_clients_run_concurrently() {
    let barrier = Arc::new(Barrier::new(2));
    let srv = spawn(
        Server::builder(config()).on("meet", move |c: Client, _: Message| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                let _ = c.send(Frame::envelope("met", &true));
            }
        }),
    )
    .await;
    let mut a = srv.connect().await;
    let mut b = srv.connect().await;
    a.send_json(json!({"type": "meet"})).await;
    b.send_json(json!({"type": "meet"})).await;
    assert_eq!(a.recv().await["type"], "met");
    assert_eq!(b.recv().await["type"], "met");
}
