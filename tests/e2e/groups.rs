//! Groups (README "Sending"; `ws_core::recipients` module docs): membership, sending to a group, and
//! consistency under join/leave/disconnect races.

use std::time::Duration;

use serde_json::json;
use ws_core::protocol::Frame;

use crate::support::{TestServer, WsClient, eventually, group_server, join, spawn};

/// Three clients that know their ids (sent by `on_connect`).
async fn trio() -> (TestServer, Vec<WsClient>, Vec<String>) {
    let srv = spawn(group_server().on_connect(|c| async move {
        let _ = c.send(Frame::envelope("welcome", c.id().as_str()));
    }))
    .await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut client = srv.connect().await;
        let welcome = client.recv().await;
        ids.push(welcome["data"].as_str().unwrap().to_owned());
        clients.push(client);
    }
    (srv, clients, ids)
}

/// join_group adds once, leave_group removes once, unknown clients are `not_found`.
#[tokio::test]
async fn join_group_and_leave_group() {
    let (srv, _clients, ids) = trio().await;
    let server = &srv.server;
    assert!(server.join_group(&ids[0], "g").unwrap());
    assert!(
        !server.join_group(&ids[0], "g").unwrap(),
        "second join reports no change"
    );
    assert_eq!(
        server
            .join_group("no-such-client", "g")
            .unwrap_err()
            .code()
            .as_str(),
        "not_found"
    );
    assert_eq!(server.group_members("g").len(), 1);
    assert!(server.leave_group(&ids[0], "g"));
    assert!(
        !server.leave_group(&ids[0], "g"),
        "second leave reports no change"
    );
    assert!(!server.leave_group("no-such-client", "g"));
    assert!(server.groups().is_empty());
}

/// `Client::leave_all` removes a client from every group, returns them sorted, and runs on disconnect.
#[tokio::test]
async fn leave_all_and_on_disconnect() {
    let (srv, mut clients, ids) = trio().await;
    let server = &srv.server;
    for g in ["c", "a", "b"] {
        join(&mut clients[0], g).await;
    }
    join(&mut clients[1], "a").await;
    let first = server.local_client(&ids[0]).unwrap();
    assert_eq!(first.leave_all(), ["a", "b", "c"]);
    assert_eq!(server.groups(), ["a"]);
    assert!(first.leave_all().is_empty());
    let b = clients.remove(1);
    b.close().await;
    eventually("b's groups left on disconnect", || async {
        server.group_count() == 0
    })
    .await;
}

/// `server.to(g).send` reaches every member, the sender included, and no outsider.
#[tokio::test]
async fn to_group_reaches_members_only() {
    let (_srv, mut c, ids) = trio().await;
    join(&mut c[0], "ab").await;
    join(&mut c[1], "ab").await;
    c[0].send_json(json!({"type": "to_group", "data": {"group": "ab", "text": "hi ab"}}))
        .await;
    let expected = json!({"type": "room", "data": "hi ab", "from": ids[0]});
    assert_eq!(c[0].recv().await, expected);
    assert_eq!(c[1].recv().await, expected);
    c[2].expect_silence(Duration::from_millis(150)).await;
}

/// `server.to(g).except(id)` leaves that one member out, whoever sends; a sender outside the group
/// gets nothing.
#[tokio::test]
async fn to_group_except_leaves_one_member_out() {
    let (_srv, mut c, ids) = trio().await;
    join(&mut c[1], "g").await;
    join(&mut c[2], "g").await;
    c[0].send_json(json!({"type": "to_group", "data": {"group": "g", "text": "not for 2", "mode": "except", "except": ids[2]}}))
        .await;
    assert_eq!(c[1].recv().await["data"], "not for 2");
    c[2].expect_silence(Duration::from_millis(150)).await;
    c[0].expect_silence(Duration::from_millis(50)).await;
}

/// `client.to(g)` reaches the other members and skips the sender.
#[tokio::test]
async fn client_to_group_skips_the_sender() {
    let (_srv, mut c, _ids) = trio().await;
    for client in c.iter_mut() {
        join(client, "all").await;
    }
    c[0].send_json(
        json!({"type": "to_group", "data": {"group": "all", "text": "others", "mode": "others"}}),
    )
    .await;
    assert_eq!(c[1].recv().await["data"], "others");
    assert_eq!(c[2].recv().await["data"], "others");
    c[0].expect_silence(Duration::from_millis(150)).await;
}

/// `group_members` gives sorted ids (every node), `local_group_members` handles (this node).
#[tokio::test]
async fn group_members_and_local_group_members() {
    let (srv, mut c, ids) = trio().await;
    join(&mut c[2], "g").await;
    join(&mut c[0], "g").await;
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    let got: Vec<String> = srv
        .server
        .group_members("g")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, expected);
    let mut members: Vec<String> = srv
        .server
        .local_group_members("g")
        .iter()
        .map(|m| m.id().to_string())
        .collect();
    members.sort();
    assert_eq!(members, expected);
    assert!(srv.server.local_group_members("none").is_empty());
}

/// groups lists names with members, sorted; group_count counts them; emptied groups disappear.
#[tokio::test]
async fn groups_and_group_count() {
    let (srv, mut c, ids) = trio().await;
    assert_eq!(srv.server.group_count(), 0);
    join(&mut c[0], "zeta").await;
    join(&mut c[1], "alpha").await;
    join(&mut c[2], "alpha").await;
    assert_eq!(srv.server.groups(), ["alpha", "zeta"]);
    assert_eq!(srv.server.group_count(), 2);
    srv.server.leave_group(&ids[0], "zeta");
    assert_eq!(srv.server.groups(), ["alpha"]);
    assert_eq!(srv.server.group_count(), 1);
}

/// is_group_empty: true for unknown and emptied groups, false with a member.
#[tokio::test]
async fn is_group_empty() {
    let (srv, mut c, ids) = trio().await;
    assert!(srv.server.is_group_empty("g"));
    join(&mut c[1], "g").await;
    assert!(!srv.server.is_group_empty("g"));
    srv.server.leave_group(&ids[1], "g");
    assert!(srv.server.is_group_empty("g"));
}

/// client.is_in_group and client.groups reflect membership.
#[tokio::test]
async fn client_is_in_group() {
    let (srv, mut c, ids) = trio().await;
    join(&mut c[0], "b").await;
    join(&mut c[0], "a").await;
    let client = srv.server.local_client(&ids[0]).unwrap();
    assert!(client.is_in_group("a") && client.is_in_group("b") && !client.is_in_group("c"));
    assert_eq!(client.groups(), ["a", "b"]);
    c[0].send_json(json!({"type": "leave", "data": "a", "id": 2}))
        .await;
    assert_eq!(c[0].recv().await["data"], true);
    assert!(!client.is_in_group("a"));
}

/// Hundreds of clients join, leave and disconnect concurrently (some without a close handshake) while
/// the server joins them to more groups from outside; afterwards no group holds a disconnected client.
#[tokio::test]
async fn join_leave_disconnect_race_leaves_no_ghosts() {
    const CLIENTS: usize = 300;
    let srv = spawn(group_server()).await;
    let server = srv.server.clone();
    let url = srv.url("/ws");
    // An outside task keeps joining every client it can see to "outside" groups while they come and go.
    let joiner = {
        let server = server.clone();
        tokio::spawn(async move {
            for round in 0..400 {
                for client in server.local_clients() {
                    let _ =
                        server.join_group(client.id().as_str(), &format!("outside-{}", round % 7));
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = WsClient::connect(&url).await;
            for g in 0..6 {
                let group = format!("g{}", (n + g) % 10);
                client
                    .send_json(json!({"type": "join", "data": group}))
                    .await;
                if g % 2 == 1 {
                    client
                        .send_json(json!({"type": "leave", "data": group}))
                        .await;
                }
            }
            if n % 2 == 0 {
                // Abrupt: drop the TCP connection with frames possibly still being handled.
                drop(client);
            } else {
                client
                    .send_json(json!({"type": "join", "data": "last", "id": 1}))
                    .await;
                client.close().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    joiner.await.unwrap();
    eventually("every client disconnected", || async {
        server.stats().connected_clients == 0
    })
    .await;
    eventually("every group empty", || async { server.group_count() == 0 }).await;
    assert!(server.groups().is_empty());
    assert!(server.local_clients().is_empty());
    assert_eq!(server.stats().total_connections, CLIENTS as u64);
}
