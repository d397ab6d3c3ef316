//! `ws-client`, the typed Rust client, against the chat's own server and enums: requests and replies
//! both ways, group messages, `$error` as typed errors, reconnection after a close it retries, and a
//! final close that ends it.

use std::time::Duration;

use chat::protocol::{Answer, Inbound, Outbound, RoomJoined, inbound, outbound};
use ws_client::testing::{TestServer, serve};
use ws_client::{Client, ClientError, Incoming, Member, PresenceChange, State};
use ws_core::close::{self, CloseCode};
use ws_core::error::ErrorCode;
use ws_core::{Error, Server};

use crate::support::{config, eventually};

type ChatClient = Client<Inbound, Outbound>;

async fn chat() -> TestServer {
    serve(chat::builder(config())).await
}

/// The next message, skipping what is not one; an `$error` fails the test.
async fn next_message(client: &ChatClient) -> (Outbound, Option<String>) {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), client.next()).await;
        match next
            .expect("a message within 5 s")
            .expect("the client is open")
        {
            Incoming::Message { message, from } => return (message, from),
            Incoming::Error(e) => panic!("unexpected $error: {e:?}"),
            _ => {}
        }
    }
}

async fn welcome(client: &ChatClient) -> String {
    match next_message(client).await {
        (Outbound::Welcome { client_id, .. }, _) => client_id,
        (other, _) => panic!("expected welcome, got {other:?}"),
    }
}

/// README "A typed Rust client": requests typed by the variant's reply, messages by the outbound enum,
/// the server's requests answered by a typed handler, `$error` as `ClientError::Server`.
#[tokio::test]
async fn requests_messages_and_server_requests_are_typed() {
    let srv = chat().await;
    let ann: ChatClient = srv.client("token=ann").await.expect("ann connects");
    let bob: ChatClient = srv.client("token=bob").await.expect("bob connects");
    let ann_id = welcome(&ann).await;
    let bob_id = welcome(&bob).await;

    let joined: RoomJoined = ann
        .request(inbound::Join { room: "r".into() })
        .await
        .expect("join");
    assert_eq!((joined.room.as_str(), joined.joined), ("r", true));
    bob.request(inbound::Join { room: "r".into() })
        .await
        .expect("join");
    ann.send(Inbound::Chat {
        text: "hi".into(),
        room: Some("r".into()),
    })
    .expect("send");
    match next_message(&bob).await {
        (Outbound::Chat { text, user, room }, from) => {
            assert_eq!(
                (text.as_str(), user.as_str(), room.as_deref()),
                ("hi", "ann", Some("r"))
            );
            assert_eq!(from.as_deref(), Some(ann_id.as_str()));
        }
        other => panic!("expected the chat line, got {other:?}"),
    }
    let me = ann.request(inbound::Whoami).await.expect("whoami");
    assert_eq!(
        (me.user.as_str(), me.groups.as_slice()),
        ("ann", &["r".to_owned()][..])
    );

    // The server asks bob on ann's behalf; bob's typed handler answers.
    bob.handle(|ask: outbound::Ask| async move {
        Ok(Answer {
            answer: format!("{} asked: {}", ask.user, ask.question),
        })
    });
    let answer = ann
        .request(inbound::Ask {
            to: bob_id,
            question: "tea?".into(),
        })
        .await
        .expect("bob answers");
    assert_eq!(answer.answer, "ann asked: tea?");

    // `$error` answering a request, and one answering a send.
    match ann.request(inbound::AdminPurge).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code(), &ErrorCode::Forbidden),
        other => panic!("expected forbidden, got {other:?}"),
    }
    ann.send(Inbound::Chat {
        text: "x".repeat(2001),
        room: None,
    })
    .expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ann.next())
            .await
            .expect("in time")
        {
            Some(Incoming::Error(e)) => {
                assert_eq!(
                    (e.code(), e.message()),
                    (&ErrorCode::InvalidData, "text longer than 2000 characters")
                );
                break;
            }
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
    ann.close();
    bob.close();
}

/// A close the policy retries (1001) brings the client back; a request in flight then fails with
/// `Lost`, and requests after it are answered on the new connection.
#[tokio::test]
async fn a_retried_close_reconnects() {
    let srv = chat().await;
    let ann: ChatClient = srv.client("token=ann").await.expect("connects");
    let first = welcome(&ann).await;
    assert!(
        srv.server
            .disconnect_client(&first, close::GOING_AWAY, "restart")
    );
    eventually("a second connection", || async {
        srv.server.stats().total_connections == 2
    })
    .await;
    let second = welcome(&ann).await;
    assert_ne!(first, second);
    assert_eq!(ann.state(), State::Open);
    let me = ann
        .request(inbound::Whoami)
        .await
        .expect("answered after the reconnection");
    assert_eq!(me.client_id, second);
    ann.close();
}

/// A final close (4xxx, 34xx) ends reconnection: every later call fails at once, naming it.
#[tokio::test]
async fn a_final_close_ends_the_client() {
    let srv = serve(
        Server::builder(config())
            .on_connect(|c| async move { c.close(CloseCode::application(4000), "go away") }),
    )
    .await;
    let client: ChatClient = srv.client("").await.expect("connects once");
    let closed = loop {
        if let State::Closed(close) = client.state() {
            break close;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let close = closed.expect("the server's close");
    assert_eq!((close.code, close.reason.as_str()), (4000, "go away"));
    match client.send(Inbound::Chat {
        text: "hi".into(),
        room: None,
    }) {
        Err(ClientError::Closed(Some(c))) => assert_eq!(c.code, 4000),
        other => panic!("expected Closed, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.server.stats().total_connections, 1, "not reconnected");

    // A handshake refused as the client is: `connect` fails, naming the refusal.
    let refusing =
        serve(Server::builder(config()).auth(|_| async {
            Err::<ws_core::auth::ClientData, _>(Error::unauthorized("bad token"))
        }))
        .await;
    match refusing.client::<Inbound, Outbound>("").await {
        Err(ClientError::Closed(Some(c))) => {
            assert_eq!((c.code, c.reason.as_str()), (3401, "bad token"))
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
}

/// The chat texts `client` gets until `last`, skipping other messages; recoveries are collected.
async fn texts_until(
    client: &ChatClient,
    last: &str,
    recoveries: &mut Vec<Option<bool>>,
) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), client.next()).await;
        match next.expect("a frame within 5 s").expect("open") {
            Incoming::Message {
                message: Outbound::Chat { text, .. },
                ..
            } => {
                let done = text == last;
                texts.push(text);
                if done {
                    return texts;
                }
            }
            Incoming::Recovery { recovered, .. } => recoveries.push(recovered),
            Incoming::Error(e) => panic!("unexpected $error: {e:?}"),
            _ => {}
        }
    }
}

/// README "History and recovery", from the Rust client: a connection cut by the server while its room
/// gets messages; joining again after the reconnection replays what was missed, once each, in order.
#[tokio::test]
async fn a_cut_connection_recovers_what_it_missed() {
    let history = ws_core::history::History::new().max_messages(100);
    let srv = serve(chat::builder(config()).history(history)).await;
    let ann: ChatClient = srv.client("token=ann").await.expect("ann");
    let bob: ChatClient = srv.client("token=bob").await.expect("bob");
    let first = welcome(&ann).await;
    welcome(&bob).await;
    for client in [&ann, &bob] {
        client
            .request(inbound::Join { room: "h".into() })
            .await
            .expect("join");
    }
    let say = |i: u32| Inbound::Chat {
        text: format!("line {i}"),
        room: Some("h".into()),
    };
    for i in 1..=5 {
        bob.send(say(i)).expect("send");
    }
    let mut recoveries = Vec::new();
    let mut texts = texts_until(&ann, "line 5", &mut recoveries).await;

    assert!(
        srv.server
            .disconnect_client(&first, close::GOING_AWAY, "cut")
    );
    for i in 6..=10 {
        bob.send(say(i)).expect("send");
    }
    welcome(&ann).await;
    ann.request(inbound::Join { room: "h".into() })
        .await
        .expect("join again");
    texts.extend(texts_until(&ann, "line 10", &mut recoveries).await);
    let want: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, want, "each line once, in order");
    assert_eq!(
        recoveries,
        [None, Some(true)],
        "a first join, then a recovery"
    );
    ann.close();
    bob.close();
}

/// The next presence change of `client` that `wanted` accepts, skipping everything else.
async fn presence_change(
    client: &ChatClient,
    wanted: impl Fn(&PresenceChange) -> bool,
) -> PresenceChange {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), client.next()).await;
        match next
            .expect("a change within 5 s")
            .expect("the client is open")
        {
            Incoming::Presence(change) if wanted(&change) => return change,
            _ => {}
        }
    }
}

fn listed(change: &[Member], id: &str) -> bool {
    change.iter().any(|m| m.id == id)
}

/// README "A typed Rust client": presence lists kept as the TypeScript SDK keeps them — the state on
/// join, each join and leave told as a change, the meta read as the server's type, and every list emptied
/// when the connection goes (memberships end with it).
#[tokio::test]
async fn presence_lists_follow_joins_leaves_and_a_lost_connection() {
    let srv = chat().await;
    let ann: ChatClient = srv.client("token=ann").await.expect("ann connects");
    let bob: ChatClient = srv.client("token=bob").await.expect("bob connects");
    let ann_id = welcome(&ann).await;
    let bob_id = welcome(&bob).await;
    assert!(ann.presence("r").is_none());

    ann.request(inbound::Join { room: "r".into() })
        .await
        .expect("ann joins");
    bob.request(inbound::Join { room: "r".into() })
        .await
        .expect("bob joins");
    presence_change(&ann, |c| c.group == "r" && listed(&c.joins, &bob_id)).await;
    let list = ann.presence("r").expect("ann's list of r");
    assert_eq!(
        (list.count, list.members.len(), list.counts_only),
        (2, 2, false)
    );
    let bob_shows: chat::protocol::Member = list
        .get(&bob_id)
        .expect("bob listed")
        .meta_as()
        .expect("the chat's meta type");
    assert_eq!(bob_shows.user, "bob");

    bob.request(inbound::Leave { room: "r".into() })
        .await
        .expect("bob leaves");
    let left = presence_change(&ann, |c| listed(&c.leaves, &bob_id)).await;
    assert_eq!((left.group.as_str(), left.count), ("r", 1));
    let list = ann.presence("r").expect("ann's list of r");
    assert_eq!(
        list.members
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [ann_id.as_str()]
    );

    assert!(
        srv.server
            .disconnect_client(&ann_id, close::GOING_AWAY, "cut")
    );
    let emptied = presence_change(&ann, |c| c.group == "r").await;
    assert!(listed(&emptied.leaves, &ann_id) && emptied.count == 0);
    assert!(
        ann.presence("r").is_none(),
        "no list until the group is joined again"
    );
    ann.close();
    bob.close();
}

/// README "A typed Rust client": headers go with every handshake (an authenticator that reads
/// `authorization` lets the client in); without them the refusal is the close 3401, which ends it.
#[tokio::test]
async fn handshake_headers_reach_the_authenticator() {
    let srv = serve(Server::builder(config()).auth(|req| async move {
        match req.header("authorization") {
            Some("Bearer s3cret") => Ok(ws_core::auth::ClientData::new()),
            _ => Err(Error::unauthorized("no bearer token")),
        }
    }))
    .await;
    let with = Client::builder(srv.url(""))
        .header(
            ws_client::http::header::AUTHORIZATION,
            ws_client::http::HeaderValue::from_static("Bearer s3cret"),
        )
        .connect::<Inbound, Outbound>()
        .await
        .expect("the header lets it in");
    assert_eq!(with.state(), State::Open);
    with.close();
    match Client::builder(srv.url(""))
        .connect::<Inbound, Outbound>()
        .await
    {
        Err(ClientError::Closed(Some(close))) => {
            assert_eq!(
                (close.code, close.reason.as_str()),
                (3401, "no bearer token")
            );
        }
        other => panic!("expected the close 3401, got {other:?}"),
    }
}
