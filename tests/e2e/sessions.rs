//! Sessions (`ws_core::session`, docs/guide/sessions.md): a credential's expiry, then `session_grace`,
//! then close 4001; `$refresh` answered in order with the connection's other frames; a refresh's bad
//! input; disconnection and revocation, on one node and across two nodes on Redis; joins checked, and
//! memberships that end.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use ws_core::auth::{AuthRequest, ClientData};
use ws_core::extract::Extension;
use ws_core::protocol::Message;
use ws_core::session::{MAX_TOKEN_BYTES, Membership, REVOKED, TOKEN_EXPIRED};
use ws_core::{Client, Error, Server, ServerBuilder};

use crate::support::redis::{RedisServer, fast, linked, node};
use crate::support::{TestServer, WsClient, config, eventually, refused_status, spawn};

/// A token: `user/lasting_ms/issued_unix_ms`, what a JWT's `sub`, `exp` and `iat` say.
fn token(user: &str, lasting: Duration) -> String {
    token_issued(user, lasting, SystemTime::now())
}

fn token_issued(user: &str, lasting: Duration, issued: SystemTime) -> String {
    let issued = issued.duration_since(UNIX_EPOCH).expect("after 1970");
    format!("{user}/{}/{}", lasting.as_millis(), issued.as_millis())
}

/// The connection's token, as a typed extension: what later handlers see of a refresh.
#[derive(Clone)]
struct Token(String);

/// The application's check of a token, shared by the authenticator and the refresh hook.
fn check(token: &str) -> Result<ClientData, Error> {
    let parts: Vec<&str> = token.split('/').collect();
    let [user, lasting, issued] = parts[..] else {
        return Err(Error::unauthorized("bad token"));
    };
    let number = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| Error::unauthorized("bad token"))
    };
    let issued = UNIX_EPOCH + Duration::from_millis(number(issued)?);
    Ok(ClientData::new()
        .user(user)
        .issued_at(issued)
        .expires_at(issued + Duration::from_millis(number(lasting)?))
        .extension(Token(token.to_owned())))
}

async fn authenticate(req: AuthRequest) -> Result<ClientData, Error> {
    check(&req.query("token").unwrap_or_default())
}

/// Sessions on `builder`: the authenticator, the refresh hook, `join` and `whoami` (the user and the token
/// the handler sees).
fn with_sessions(builder: ServerBuilder) -> ServerBuilder {
    builder
        .auth(authenticate)
        .on_refresh(|_: Client, token: String| async move { check(&token) })
        .on(
            "whoami",
            |c: Client, token: Extension<Token>, _: Message| async move {
                Ok::<_, Error>(json!({"user": c.user(), "token": token.0.0}))
            },
        )
}

fn server(grace: Duration) -> ServerBuilder {
    with_sessions(Server::builder(config().session_grace(grace)))
        .on("join", |c: Client, m: Message| async move {
            c.join(m.data.as_str().unwrap_or_default())
        })
}

async fn connect(srv: &TestServer, token: &str) -> WsClient {
    WsClient::connect(&srv.url(&format!("/ws?token={token}"))).await
}

/// The `expires_in_ms` of the `$session` frame that comes first.
async fn session_frame(client: &mut WsClient) -> u64 {
    let frame = client.recv().await;
    assert_eq!(frame["type"], "$session", "{frame}");
    frame["data"]["expires_in_ms"]
        .as_u64()
        .expect("expires_in_ms")
}

/// The id of `user`'s connection on `server`.
fn id_of(server: &Server, user: &str) -> ws_core::ClientId {
    let clients = server.local_clients();
    let client = clients.iter().find(|c| c.user() == Some(user)).expect(user);
    client.id().clone()
}

fn refresh(token: &str, id: u64) -> Value {
    json!({"type": "$refresh", "data": {"token": token}, "id": id})
}

/// ws_core::session "Expiry": `$session` first, the connection served through the grace, then 4001.
#[tokio::test]
async fn past_its_expiry_and_the_grace_a_connection_is_closed_with_4001() {
    let srv = spawn(server(Duration::from_millis(400))).await;
    let started = Instant::now();
    let mut client = connect(&srv, &token("ann", Duration::from_millis(400))).await;
    let left = session_frame(&mut client).await;
    assert!(left > 0 && left <= 400, "expires_in_ms {left}");
    // Past the expiry, within the grace: still served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = client.ask("whoami", Value::Null, 1).await;
    assert_eq!(answer["data"]["user"], "ann", "{answer}");
    let closed = client.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4001, "token expired")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(780),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(srv.server.stats().sessions_expired, 1);
    assert_eq!(u16::from(TOKEN_EXPIRED), 4001);
}

/// ws_core::session "Refresh in-band": a refresh just before the expiry keeps the connection and its
/// rooms; the frame after it is handled with the new extensions; without another refresh it ends.
#[tokio::test]
async fn a_refresh_in_the_last_moment_keeps_the_connection_and_its_rooms() {
    let srv = spawn(server(Duration::from_millis(100))).await;
    let first = token("ann", Duration::from_millis(600));
    let mut client = connect(&srv, &first).await;
    session_frame(&mut client).await;
    assert_eq!(client.ask("join", json!("room"), 1).await["data"], true);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = token("ann", Duration::from_millis(1500));
    // Sent back to back: the request after `$refresh` sees the new token.
    client.send_json(refresh(&second, 2)).await;
    client.send_json(json!({"type": "whoami", "id": 3})).await;
    let answer = client.answer(2).await;
    let left = answer["data"]["expires_in_ms"]
        .as_u64()
        .expect("expires_in_ms");
    assert!(left > 1000 && left <= 1500, "{answer}");
    assert_eq!(client.answer(3).await["data"]["token"], second);
    // Well past the first token's expiry and grace: connected, and still in its room.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = client.ask("whoami", Value::Null, 4).await;
    assert_eq!(answer["data"]["user"], "ann");
    assert_eq!(srv.server.group_members("room").len(), 1);
    assert_eq!(srv.server.stats().sessions_refreshed, 1);
    // The second token runs out in turn.
    let closed = client.recv_close().await;
    assert_eq!(closed.code, 4001);
}

/// ws_core::session "Refresh in-band": two refreshes in a row are answered in order, and the last one
/// holds; a refresh that fails changes nothing.
#[tokio::test]
async fn refreshes_are_answered_in_order_and_a_failed_one_changes_nothing() {
    let srv = spawn(server(Duration::from_millis(100))).await;
    let mut client = connect(&srv, &token("ann", Duration::from_secs(60))).await;
    session_frame(&mut client).await;
    client
        .send_json(refresh(&token("ann", Duration::from_secs(120)), 1))
        .await;
    client
        .send_json(refresh(&token("ann", Duration::from_millis(700)), 2))
        .await;
    let first = client.answer(1).await["data"]["expires_in_ms"]
        .as_u64()
        .expect("first");
    let second = client.answer(2).await["data"]["expires_in_ms"]
        .as_u64()
        .expect("second");
    assert!(first > 60_000 && second <= 700, "{first} then {second}");
    // A bad token: `unauthorized`, and the 700 ms expiry still runs.
    let answer = client.ask("$refresh", json!({"token": "garbage"}), 3).await;
    assert_eq!(answer["data"]["code"], "unauthorized", "{answer}");
    assert_eq!(client.recv_close().await.code, 4001);
}

/// docs/protocol.md "Answers to bad input": each bad `$refresh` gets its `$error`, and the connection
/// stays.
#[tokio::test]
async fn a_bad_refresh_gets_its_error_and_the_connection_stays() {
    let srv = spawn(server(Duration::from_secs(1))).await;
    let mut client = connect(&srv, &token("ann", Duration::from_secs(60))).await;
    session_frame(&mut client).await;
    let cases = [
        (
            json!({"token": token("bob", Duration::from_secs(60))}),
            "forbidden",
            "the token names another user",
        ),
        (
            json!({"token": token("ann", Duration::ZERO)}),
            "unauthorized",
            "token expired",
        ),
        (
            json!({"token": "x".repeat(MAX_TOKEN_BYTES + 1)}),
            "invalid_data",
            "token longer than 8192 bytes",
        ),
    ];
    for (id, (data, code, message)) in (1..).zip(cases) {
        let answer = client.ask("$refresh", data, id).await;
        assert_eq!(answer["data"]["code"], code, "{answer}");
        assert_eq!(answer["data"]["message"], message, "{answer}");
    }
    let answer = client.ask("$refresh", json!({"nothing": 1}), 9).await;
    assert_eq!(answer["data"]["code"], "invalid_data", "{answer}");
    let answer = client.ask("whoami", Value::Null, 10).await;
    assert_eq!(answer["data"]["user"], "ann");
    assert_eq!(srv.server.stats().sessions_refreshed, 0);

    // A server without a refresh hook does not know `$refresh`.
    let plain = spawn(Server::builder(config())).await;
    let mut client = plain.connect().await;
    let answer = client.ask("$refresh", json!({"token": "t"}), 1).await;
    assert_eq!(answer["data"]["code"], "unknown_type", "{answer}");
}

/// ws_core::session: a credential already expired is refused before the upgrade (401, or 3401 asked
/// for in-band).
#[tokio::test]
async fn an_expired_credential_is_refused_at_the_handshake() {
    let srv = spawn(server(Duration::from_secs(1))).await;
    let expired = token_issued(
        "ann",
        Duration::from_secs(1),
        SystemTime::now() - Duration::from_secs(5),
    );
    assert_eq!(
        refused_status(srv.url(&format!("/ws?token={expired}"))).await,
        401
    );
    let mut client =
        WsClient::connect(&srv.url(&format!("/ws?ws_refusal=close&token={expired}"))).await;
    let closed = client.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (3401, "token expired")
    );
}

/// ws_core::session "Disconnection and revocation": on one node, by client and by user; a revoked
/// user's old token is refused, a token issued after the revocation is not.
#[tokio::test]
async fn disconnections_and_revocations_on_one_node() {
    let srv = spawn(server(Duration::from_secs(1))).await;
    let old = token("ann", Duration::from_secs(60));
    let mut ann1 = connect(&srv, &old).await;
    let mut ann2 = connect(&srv, &old).await;
    let mut bob = connect(&srv, &token("bob", Duration::from_secs(60))).await;
    for client in [&mut ann1, &mut ann2, &mut bob] {
        session_frame(client).await;
    }
    let bob_id = id_of(&srv.server, "bob");
    assert!(
        srv.server
            .disconnect_client(&bob_id, ws_core::close::NORMAL, "bye")
    );
    let closed = bob.recv_close().await;
    assert_eq!((closed.code, closed.reason.as_str()), (1000, "bye"));

    // Tokens are issued with millisecond precision: the revocation must come after the old one's.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(srv.server.revoke_user("ann", Duration::from_secs(60)), 2);
    for client in [&mut ann1, &mut ann2] {
        let closed = client.recv_close().await;
        assert_eq!((closed.code, closed.reason.as_str()), (4003, "revoked"));
    }
    assert_eq!(u16::from(REVOKED), 4003);
    assert_eq!(
        refused_status(srv.url(&format!("/ws?token={old}"))).await,
        401
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut fresh = connect(&srv, &token("ann", Duration::from_secs(60))).await;
    session_frame(&mut fresh).await;
    // Nor can a connection refresh to the old token.
    let answer = fresh.ask("$refresh", json!({"token": old}), 1).await;
    assert_eq!(answer["data"]["message"], "token revoked", "{answer}");
    fresh.close().await;
}

/// ws_core::session "Disconnection and revocation": `disconnect_user` and `revoke_user` reach the user's
/// clients on both nodes within a heartbeat, and the revoked token is refused by both.
#[tokio::test]
async fn a_revocation_reaches_every_node() {
    let redis = RedisServer::start().await;
    let config = fast(&redis.url());
    let a = spawn(with_sessions(node(&config))).await;
    let b = spawn(with_sessions(node(&config))).await;
    linked(&[&a.server, &b.server], 1).await;
    let old = token("ann", Duration::from_secs(60));
    let mut on_a = connect(&a, &old).await;
    let mut on_b = connect(&b, &old).await;
    let mut bob_on_b = connect(&b, &token("bob", Duration::from_secs(60))).await;
    for client in [&mut on_a, &mut on_b, &mut bob_on_b] {
        session_frame(client).await;
        assert_eq!(client.recv().await["type"], "welcome");
    }
    // From node a, ann is closed on both nodes; bob on b is not.
    assert_eq!(
        a.server
            .disconnect_user("ann", ws_core::close::NORMAL, "logged out"),
        1
    );
    for client in [&mut on_a, &mut on_b] {
        let closed = client.recv_close().await;
        assert_eq!((closed.code, closed.reason.as_str()), (1000, "logged out"));
    }
    let answer = bob_on_b.ask("whoami", Value::Null, 1).await;
    assert_eq!(answer["data"]["user"], "bob");

    let mut on_a = connect(&a, &old).await;
    let mut on_b = connect(&b, &old).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    a.server.revoke_user("ann", Duration::from_secs(60));
    for client in [&mut on_a, &mut on_b] {
        let closed = client.recv_close().await;
        assert_eq!(closed.code, 4003);
    }
    for srv in [&a, &b] {
        eventually("the revoked token refused", || async {
            matches!(
                WsClient::try_connect(&srv.url(&format!("/ws?token={old}"))).await,
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status() == 401
            )
        })
        .await;
    }
    // A client of another node is closed by id too.
    let bob_id = id_of(&b.server, "bob");
    assert!(
        !a.server
            .disconnect_client(&bob_id, ws_core::close::NORMAL, "by id")
    );
    assert_eq!(bob_on_b.recv_close().await.reason, "by id");
}

/// The groups a token grants, as `room` (for good) or `room:ms` (for that long): `a:400,b`.
#[derive(Clone)]
struct Grants(Vec<(String, Option<Duration>)>);

fn grants(spec: &str) -> Grants {
    let grant = |item: &str| match item.split_once(':') {
        Some((room, ms)) => (room.to_owned(), ms.parse().ok().map(Duration::from_millis)),
        None => (item.to_owned(), None),
    };
    Grants(
        spec.split(',')
            .filter(|s| !s.is_empty())
            .map(grant)
            .collect(),
    )
}

/// Joins checked against the token's grants: `?grants=` at the handshake, the token of a `$refresh`.
fn checked_joins() -> ServerBuilder {
    Server::builder(config())
        .auth(|req: AuthRequest| async move {
            let spec = req.query("grants").unwrap_or_default();
            Ok::<_, Error>(ClientData::new().user("ann").extension(grants(&spec)))
        })
        .on_refresh(|_: Client, token: String| async move {
            Ok(ClientData::new().extension(grants(&token)))
        })
        .authorize_join(|member: &ws_core::member::Member, group: &str| {
            let Grants(grants) = member.extension::<Grants>().unwrap_or(Grants(Vec::new()));
            match grants.iter().find(|(room, _)| room == group) {
                Some((_, Some(lasting))) => Ok(Membership::until(SystemTime::now() + *lasting)),
                Some((_, None)) => Ok(Membership::granted()),
                None => Err(Error::forbidden(format!("not granted: {group}"))),
            }
        })
        .on("join", |c: Client, m: Message| async move {
            c.join(m.data.as_str().unwrap_or_default())
        })
}

/// ws_core::session "Per-group authorization": the check refuses a join, grants one for good and one
/// that ends; the ended one is left and the client told.
#[tokio::test]
async fn a_join_check_refuses_grants_and_ends_memberships() {
    let srv = spawn(checked_joins()).await;
    let mut client = WsClient::connect(&srv.url("/ws?grants=a:400,b")).await;
    let refused = client.ask("join", json!("c"), 1).await;
    assert_eq!(
        refused["data"],
        json!({"code": "forbidden", "message": "not granted: c"})
    );
    assert_eq!(client.ask("join", json!("a"), 2).await["data"], true);
    assert_eq!(client.ask("join", json!("b"), 3).await["data"], true);
    // The server's own join goes through the check too.
    let id = srv.server.local_clients()[0].id().clone();
    assert!(srv.server.join_group(&id, "c").is_err());
    assert_eq!(
        client.recv().await,
        json!({"type": "$left", "data": {"group": "a", "reason": "expired"}})
    );
    assert!(srv.server.group_members("a").is_empty());
    assert_eq!(srv.server.group_members("b"), [id]);
}

/// ws_core::session "Per-group authorization": a refresh checks every group again with the new token:
/// one it no longer grants is left at once, one it grants for a while ends then.
#[tokio::test]
async fn a_refresh_checks_every_group_again() {
    let srv = spawn(checked_joins()).await;
    let mut client = WsClient::connect(&srv.url("/ws?grants=a,b")).await;
    assert_eq!(client.ask("join", json!("a"), 1).await["data"], true);
    assert_eq!(client.ask("join", json!("b"), 2).await["data"], true);
    client.send_json(refresh("b:300", 3)).await;
    let mut left = Vec::new();
    let answer = client.answer_collecting(3, |frame| left.push(frame)).await;
    assert_eq!(answer["type"], "$reply", "{answer}");
    assert_eq!(
        left,
        [json!({"type": "$left", "data": {"group": "a", "reason": "unauthorized"}})]
    );
    assert_eq!(
        client.recv().await,
        json!({"type": "$left", "data": {"group": "b", "reason": "expired"}})
    );
    assert!(srv.server.groups().is_empty());
}

/// docs/protocol.md "Answers to bad input": `$refresh` takes a rate-limit token like any frame; a flood
/// is closed with 1008 and its hook stops being run.
#[tokio::test]
async fn a_refresh_flood_is_rate_limited_like_any_frame() {
    let srv = spawn(with_sessions(Server::builder(
        config().message_rate_limit(5).message_burst_size(5),
    )))
    .await;
    let mut client = connect(&srv, &token("ann", Duration::from_secs(60))).await;
    session_frame(&mut client).await;
    for id in 1..=50 {
        client
            .send_json(refresh(&token("ann", Duration::from_secs(60)), id))
            .await;
    }
    let closed = client.recv_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1008, "rate limit exceeded")
    );
    // The burst's refreshes run; the rest were never read.
    eventually("the admitted refreshes ran", || async {
        srv.server.stats().sessions_refreshed >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refreshed = srv.server.stats().sessions_refreshed;
    assert!(refreshed <= 6, "{refreshed} refreshes ran");
}
