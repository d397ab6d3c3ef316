//! Groups: every operation of the original API, and consistency under join/leave/disconnect races.

use std::time::Duration;

use serde_json::json;
use ws_core::{Message, Server};

use crate::support::{WsClient, config, eventually, spawn};

fn group_server() -> ws_core::ServerBuilder {
    Server::builder(config())
        .on("join", |c, m: Message| async move {
            c.join(m.data.as_str().unwrap_or_default())
        })
        .on("leave", |c, m: Message| async move {
            Ok::<_, ws_core::Error>(c.leave(m.data.as_str().unwrap_or_default()))
        })
        .on("to_group", |c, m: Message| async move {
            let group = m.data["group"].as_str().unwrap_or_default().to_owned();
            let out = Message::new("room", m.data["text"].clone()).with_from(c.id().as_str());
            match m.data["mode"].as_str() {
                Some("others") => c
                    .server()
                    .send_to_others_in_group(&group, c.id().as_str(), &out),
                Some("send") => c.server().send_to_group(&group, &out),
                _ => c.server().broadcast_to_group(&group, &out),
            }
        })
}

async fn joined(client: &mut WsClient, group: &str, id: u64) {
    client
        .send_json(json!({"type": "join", "data": group, "id": id}))
        .await;
    assert_eq!(client.recv().await["type"], "$reply");
}

/// join/leave/leave_all, membership queries, and the three group sends.
#[tokio::test]
async fn group_operations() {
    let srv = spawn(group_server()).await;
    let server = &srv.server;
    let mut a = srv.connect().await;
    let mut b = srv.connect().await;
    let mut c = srv.connect().await;
    let ids: Vec<String> = {
        let mut by_order = Vec::new();
        for client in [&mut a, &mut b, &mut c] {
            client
                .send_json(json!({"type": "join", "data": "all", "id": 1}))
                .await;
            client.recv().await;
            by_order.push(server.group_member_ids("all"));
        }
        // Each join adds exactly the new member.
        assert_eq!(by_order.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 3]);
        let first = by_order[0][0].to_string();
        let second = by_order[1]
            .iter()
            .find(|id| id.as_str() != first)
            .unwrap()
            .to_string();
        let third = by_order[2]
            .iter()
            .find(|id| id.as_str() != first && id.as_str() != second)
            .unwrap()
            .to_string();
        vec![first, second, third]
    };
    joined(&mut a, "ab", 2).await;
    joined(&mut b, "ab", 2).await;
    assert!(server.join_group(&ids[2], "solo").unwrap());
    assert!(
        !server.join_group(&ids[2], "solo").unwrap(),
        "second join reports no change"
    );
    assert_eq!(
        server
            .join_group("no-such-client", "x")
            .unwrap_err()
            .code()
            .as_str(),
        "not_found"
    );

    assert_eq!(server.groups(), ["ab", "all", "solo"]);
    assert_eq!(server.group_count(), 3);
    assert!(!server.is_group_empty("ab"));
    assert!(server.is_group_empty("nobody-here"));
    let mut ab: Vec<String> = server
        .group_member_ids("ab")
        .iter()
        .map(|i| i.to_string())
        .collect();
    ab.sort();
    let mut expected = vec![ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(ab, expected);
    assert_eq!(server.group_members("ab").len(), 2);
    let client_c = server.get_client(&ids[2]).unwrap();
    assert!(client_c.is_in_group("solo") && !client_c.is_in_group("ab"));

    // broadcast_to_group reaches every member, the sender included; outsiders get nothing.
    a.send_json(json!({"type": "to_group", "data": {"group": "ab", "text": "hi ab"}}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type": "room", "data": "hi ab", "from": ids[0]})
    );
    assert_eq!(b.recv().await["data"], "hi ab");
    c.expect_silence(Duration::from_millis(150)).await;
    // send_to_group is the same operation.
    b.send_json(
        json!({"type": "to_group", "data": {"group": "ab", "text": "again", "mode": "send"}}),
    )
    .await;
    assert_eq!(a.recv().await["data"], "again");
    assert_eq!(b.recv().await["data"], "again");
    // send_to_others_in_group skips the sender.
    a.send_json(
        json!({"type": "to_group", "data": {"group": "all", "text": "others", "mode": "others"}}),
    )
    .await;
    assert_eq!(b.recv().await["data"], "others");
    assert_eq!(c.recv().await["data"], "others");
    a.expect_silence(Duration::from_millis(150)).await;

    // leave, then leave_all.
    b.send_json(json!({"type": "leave", "data": "ab", "id": 3}))
        .await;
    assert_eq!(b.recv().await["data"], true);
    assert!(
        !server.leave_group(&ids[1], "ab"),
        "second leave reports no change"
    );
    assert_eq!(server.group_member_ids("ab").len(), 1);
    assert_eq!(server.leave_all_groups(&ids[0]), ["ab", "all"]);
    assert_eq!(
        server.groups(),
        ["all", "solo"],
        "an emptied group disappears"
    );
    assert_eq!(
        server.get_client(&ids[0]).unwrap().groups(),
        Vec::<String>::new()
    );

    // Disconnecting leaves all groups automatically.
    c.close().await;
    eventually("c's groups are gone", || async {
        server.groups() == ["all"]
    })
    .await;
    a.close().await;
    b.close().await;
    eventually("no groups", || async { server.group_count() == 0 }).await;
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
                for client in server.clients() {
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
    assert!(server.clients().is_empty());
    assert_eq!(server.stats().total_connections, CLIENTS as u64);
}
