//! The typed layer over a real socket (README "Typed messages"): `#[ws_messages]` envelopes, `#[on]` handlers and their arguments,
//! typed replies, typed sends.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use ws_core::auth::ClientData;
use ws_core::extract::{Extension, RequestId, State};
use ws_core::message::{InboundMessages, OutboundMessages, Variant, WsMessages};
use ws_core::{Client, ClientId, Error, Server, on, payload, ws_messages};

use crate::support::{config, spawn};

/// Counts how `data` reached it: `borrowed` when deserialized straight from the frame's text, `copied`
/// when it went through an intermediate owned form (such as a `serde_json::Value`).
#[derive(Debug, Clone, Serialize, ws_core::ts_rs::TS, ws_core::schemars::JsonSchema)]
#[ts(crate = "ws_core::ts_rs")]
#[schemars(crate = "ws_core::schemars")]
pub(crate) struct Probe(String);

static BORROWED: AtomicUsize = AtomicUsize::new(0);
static COPIED: AtomicUsize = AtomicUsize::new(0);

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Probe, E> {
                BORROWED.fetch_add(1, Ordering::SeqCst);
                Ok(Probe(v.to_owned()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Probe, E> {
                COPIED.fetch_add(1, Ordering::SeqCst);
                Ok(Probe(v.to_owned()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[payload]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    x: i32,
    y: i32,
}

#[ws_messages]
#[derive(Debug, Clone)]
pub(crate) enum Inbound {
    Probe {
        probe: Probe,
    },
    #[ws(reply = i64)]
    Add {
        a: i64,
        b: i64,
    },
    #[ws(reply = Point)]
    Move(Point),
    #[ws(reply = String)]
    WhoAmI,
    #[ws(rename = "admin:stats", reply = u64)]
    AdminStats,
    Shout {
        text: String,
    },
}

#[ws_messages(outbound, rename_all = "kebab-case")]
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    ProbeSeen { borrowed: usize },
    Shouted { text: String },
    Moved(Point),
    Tick,
}

#[derive(Clone)]
pub(crate) struct Multiplier(i64);

#[derive(Clone)]
pub(crate) struct User(String);

// Shares its name with a field of `Inbound::Probe`: handlers stay functions, and derives that bind field
// names still compile next to them.
#[on(Inbound::Probe)]
async fn probe(client: Client, _msg: inbound::Probe) -> Result<(), Error> {
    client.send(Outbound::ProbeSeen {
        borrowed: BORROWED.load(Ordering::SeqCst),
    })?;
    Ok(())
}

// Extractors first, the payload last; state from the builder.
#[on(Inbound::Add)]
async fn add(State(Multiplier(m)): State<Multiplier>, _client: Client, msg: inbound::Add) -> i64 {
    (msg.a + msg.b) * m
}

#[on(Inbound::Move)]
async fn move_point(server: Server, id: ClientId, msg: inbound::Move) -> Result<Point, Error> {
    let moved = Point {
        x: msg.0.x + 1,
        y: msg.0.y + 1,
    };
    server
        .all()
        .send(Outbound::Moved(moved.clone()).sent_by(&id));
    Ok(moved)
}

#[on(Inbound::WhoAmI)]
async fn who(Extension(User(name)): Extension<User>, request: RequestId) -> String {
    format!("{name} asked {:?}", request.0)
}

#[on(Inbound::AdminStats)]
async fn admin_stats(State(missing): State<std::time::Duration>) -> u64 {
    missing.as_secs()
}

#[on(Inbound::Shout)]
async fn shout(client: Client, msg: inbound::Shout) {
    client.server().all().send(Outbound::Shouted {
        text: msg.text.to_uppercase(),
    });
}

async fn typed_server() -> crate::support::TestServer {
    spawn(
        Server::builder(config())
            .auth(|_| async { Ok::<_, Error>(ClientData::new().extension(User("ann".into()))) })
            .with_state(Multiplier(10))
            .handle(probe)
            .handle(add)
            .handle(move_point)
            .handle(who)
            .handle(admin_stats)
            .handle(shout),
    )
    .await
}

/// Typed dispatch decodes `data` once, straight from the frame's text: the payload sees borrowed strings,
/// which a round trip through `serde_json::Value` (or any owned intermediate) could not give it.
#[tokio::test]
async fn typed_dispatch_decodes_once_from_the_frame() {
    let srv = typed_server().await;
    let mut client = srv.connect().await;
    let (borrowed, copied) = (
        BORROWED.load(Ordering::SeqCst),
        COPIED.load(Ordering::SeqCst),
    );
    client
        .send_json(json!({"type": "probe", "data": {"probe": "abc"}}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "probe-seen", "data": {"borrowed": borrowed + 1}})
    );
    assert_eq!(
        BORROWED.load(Ordering::SeqCst),
        borrowed + 1,
        "decoded exactly once"
    );
    assert_eq!(
        COPIED.load(Ordering::SeqCst),
        copied,
        "never through an owned intermediate"
    );
}

/// Replies have the variant's reply type; arguments come in any order; state and client extensions are
/// extracted; `RequestId` carries the id.
#[tokio::test]
async fn typed_replies_and_extractors() {
    let srv = typed_server().await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "add", "data": {"a": 2, "b": 3}, "id": 1}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": 50})
    );
    client.send_json(json!({"type": "who_am_i", "id": 2})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 2, "data": "ann asked Some(2)"})
    );
    // A unit variant takes no data, or null.
    client
        .send_json(json!({"type": "who_am_i", "data": null, "id": 3}))
        .await;
    assert_eq!(client.recv().await["id"], 3);
    // A missing state is an internal error for the request (detail stays on the server).
    client
        .send_json(json!({"type": "admin:stats", "id": 4}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 4, "data": {"code": "internal", "message": "internal error"}})
    );
}

/// A newtype variant's payload is the inner type on the wire; typed broadcasts with `sent_by` carry
/// `from`; `rename_all` sets the outbound wire names.
#[tokio::test]
async fn newtype_variants_and_typed_sends() {
    let srv = typed_server().await;
    let mut a = srv.connect().await;
    let mut b = srv.connect().await;
    a.send_json(json!({"type": "move", "data": {"x": 1, "y": 2}, "id": 7}))
        .await;
    let moved = a.recv().await;
    let from = moved["from"].as_str().unwrap().to_owned();
    assert_eq!(
        moved,
        json!({"type": "moved", "data": {"x": 2, "y": 3}, "from": from})
    );
    assert_eq!(b.recv().await, moved);
    assert_eq!(
        a.recv().await,
        json!({"type": "$reply", "id": 7, "data": {"x": 2, "y": 3}})
    );
    b.send_json(json!({"type": "shout", "data": {"text": "hey"}}))
        .await;
    for client in [&mut a, &mut b] {
        assert_eq!(
            client.recv().await,
            json!({"type": "shouted", "data": {"text": "HEY"}})
        );
    }
}

/// README "Typed messages": an untyped handler (`.on("type", ..)`) takes the typed handlers' extractors, with the
/// `Message` or the whole `Request` last, and answers through the same replies: its `data` decoded into a
/// type of the handler's own, an error for data that does not fit it, a missing state as `internal`.
#[tokio::test]
async fn untyped_handlers_take_the_same_extractors() {
    #[derive(serde::Deserialize)]
    struct Pair {
        a: i64,
        b: i64,
    }
    let srv = spawn(
        Server::builder(config())
            .auth(|_| async { Ok::<_, Error>(ClientData::new().extension(User("ann".into()))) })
            .with_state(Multiplier(10))
            .on(
                "times",
                |State(Multiplier(m)): State<Multiplier>, req: ws_core::handler::Request| async move {
                    let pair: Pair = req.decode()?;
                    Ok::<_, Error>((pair.a + pair.b) * m)
                },
            )
            .on(
                "who",
                |Extension(User(name)): Extension<User>,
                 id: RequestId,
                 msg: ws_core::protocol::Message| async move {
                    Ok::<_, Error>(json!({"name": name, "id": id.0, "data": msg.data}))
                },
            )
            .on("stats", |State(d): State<std::time::Duration>| async move {
                Ok::<_, Error>(d.as_secs())
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "times", "data": {"a": 2, "b": 3}, "id": 1}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 1, "data": 50})
    );
    client
        .send_json(json!({"type": "who", "data": [1], "id": 2}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$reply", "id": 2, "data": {"name": "ann", "id": 2, "data": [1]}})
    );
    client
        .send_json(json!({"type": "times", "data": {"a": "x"}, "id": 3}))
        .await;
    let err = client.recv().await;
    assert_eq!(
        (&err["id"], &err["data"]["code"]),
        (&json!(3), &json!("invalid_data"))
    );
    client.send_json(json!({"type": "stats", "id": 4})).await;
    assert_eq!(
        client.recv().await,
        json!({"type": "$error", "id": 4, "data": {"code": "internal", "message": "internal error"}})
    );
}

/// Data that does not fit the variant's payload type gets `$error` `invalid_data`, request or not, and the
/// connection stays.
#[tokio::test]
async fn typed_invalid_data() {
    let srv = typed_server().await;
    let mut client = srv.connect().await;
    for (bad, id) in [
        (json!({"type": "add", "data": {"a": 1}}), None),
        (
            json!({"type": "add", "data": {"a": "1", "b": 2}, "id": 5}),
            Some(5),
        ),
        (json!({"type": "who_am_i", "data": {}, "id": 6}), Some(6)),
        (json!({"type": "move", "id": 8}), Some(8)),
    ] {
        client.send_json(bad.clone()).await;
        let err = client.recv().await;
        assert_eq!(err["type"], "$error", "for {bad}");
        assert_eq!(err["data"]["code"], "invalid_data", "for {bad}");
        assert_eq!(err["id"].as_u64(), id, "for {bad}");
    }
    client
        .send_json(json!({"type": "add", "data": {"a": 1, "b": 1}, "id": 9}))
        .await;
    assert_eq!(client.recv().await["data"], 20);
}

/// The generated traits: wire names, decode by name in one pass, payload conversions.
#[test]
fn generated_message_set() {
    assert_eq!(
        Inbound::NAMES,
        ["probe", "add", "move", "who_am_i", "admin:stats", "shout"]
    );
    assert_eq!(Outbound::NAMES, ["probe-seen", "shouted", "moved", "tick"]);
    assert_eq!(<inbound::AdminStats as Variant>::NAME, "admin:stats");
    let decoded = Inbound::decode("add", r#"{"a":1,"b":2}"#).unwrap();
    assert_eq!(decoded.name(), "add");
    assert!(matches!(decoded, Inbound::Add { a: 1, b: 2 }));
    assert_eq!(
        Inbound::decode("nope", "null").unwrap_err().code().as_str(),
        "unknown_type"
    );
    assert_eq!(
        Inbound::decode("add", "{}").unwrap_err().code().as_str(),
        "invalid_data"
    );
    let payload = inbound::Add::try_from(decoded).unwrap();
    assert_eq!((payload.a, payload.b), (1, 2));
    let back: Inbound = payload.into();
    assert!(matches!(back, Inbound::Add { .. }));
    assert_eq!(
        serde_json::to_value(Outbound::Tick).unwrap(),
        json!({"type": "tick"})
    );
    let shouted: Outbound = outbound::Shouted { text: "x".into() }.into();
    assert_eq!(
        serde_json::to_value(&shouted).unwrap(),
        json!({"type": "shouted", "data": {"text": "x"}})
    );
    let _ = std::any::type_name::<outbound::ProbeSeen>();
    fn is_outbound<T: OutboundMessages>() {}
    is_outbound::<Outbound>();
}

/// A typed handler and an untyped one for the same wire name is a programming error: the builder panics.
#[test]
#[should_panic(expected = "a handler for message type \"shout\" is already registered")]
fn typed_and_untyped_handler_for_one_type_panics() {
    let _ = Server::builder(config())
        .handle(shout)
        .on("shout", |_: Client, _: ws_core::protocol::Message| async {});
}
