//! Presence (README "Presence"; `ws_core::presence` module docs): a state on join, batched diffs, counts
//! only for big groups, groups without presence untouched — on one node, and on three nodes sharing Redis,
//! through a killed node and a Redis outage.

use std::time::Duration;

use serde_json::{Value, json};
use ws_core::auth::{AuthRequest, ClientData};
use ws_core::backplane::{RedisBackplane, RedisConfig};
use ws_core::presence::Presence;
use ws_core::protocol::Message;
use ws_core::{Client, Config, Error, Server, ServerBuilder};

use crate::support::redis::RedisServer;
use crate::support::{TestServer, WsClient, eventually, spawn};

/// Members join with `join {group}` (a request); the token is the user name, shown as the meta.
fn presence_server(presence: Presence) -> ServerBuilder {
    Server::builder(Config::default().port(0))
        .auth(|req: AuthRequest| async move {
            let user = req.query("token").unwrap_or_default();
            Ok::<_, Error>(ClientData::new().metadata("user", user))
        })
        .presence(presence.meta(
            |client: &Client| json!({"name": client.get_metadata("user").unwrap_or(Value::Null)}),
        ))
        .on("join", |client: Client, msg: Message| async move {
            let group = msg.data["group"].as_str().unwrap_or_default().to_owned();
            client.join(&group).map(|_| ())
        })
        .on("leave", |client: Client, msg: Message| async move {
            client.leave(msg.data["group"].as_str().unwrap_or_default());
        })
}

fn rooms() -> Presence {
    Presence::new()
        .groups(|g| g.starts_with("room:"))
        .tick(Duration::from_millis(50))
}

async fn connect(srv: &TestServer, user: &str) -> WsClient {
    WsClient::connect(&format!("ws://{}/ws?token={user}", srv.addr)).await
}

async fn join(client: &mut WsClient, group: &str) {
    client
        .send_json(json!({"type": "join", "data": {"group": group}, "id": 1}))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply["type"], "$reply", "{reply}");
}

/// The next presence frame (state or diff), skipping others.
async fn presence(client: &mut WsClient) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("$presence"))
        {
            return frame;
        }
    }
}

/// The member names in a members/joins/leaves map, sorted.
fn names(map: &Value) -> Vec<String> {
    let mut names: Vec<String> = map
        .as_object()
        .unwrap_or_else(|| panic!("a map: {map}"))
        .values()
        .map(|meta| meta["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A newcomer gets the state with the members' meta; the others get diffs; joins within one tick arrive
/// in one diff; a group without presence gets nothing; a disconnect is a leave.
#[tokio::test]
async fn members_get_a_state_then_batched_diffs() {
    let srv = spawn(presence_server(rooms().tick(Duration::from_millis(300)))).await;
    let mut ann = connect(&srv, "ann").await;
    join(&mut ann, "room:a").await;
    let state = presence(&mut ann).await;
    assert_eq!(state["type"], "$presence_state");
    assert_eq!(
        (&state["data"]["group"], &state["data"]["count"]),
        (&json!("room:a"), &json!(1))
    );
    assert_eq!(names(&state["data"]["members"]), ["ann"]);

    let mut bob = connect(&srv, "bob").await;
    join(&mut bob, "room:a").await;
    let state = presence(&mut bob).await;
    assert_eq!(names(&state["data"]["members"]), ["ann", "bob"]);
    let diff = presence(&mut ann).await;
    assert_eq!(diff["type"], "$presence_diff");
    assert_eq!(names(&diff["data"]["joins"]), ["bob"]);
    assert_eq!(names(&diff["data"]["leaves"]), Vec::<String>::new());

    // Twenty joins sent at once: every one is in ann's diffs, in at most two frames (one tick boundary).
    let mut crowd = Vec::new();
    for i in 0..20 {
        let mut c = connect(&srv, &format!("c{i:02}")).await;
        c.send_json(json!({"type": "join", "data": {"group": "room:a"}}))
            .await;
        crowd.push(c);
    }
    let mut joined = Vec::new();
    let mut frames = 0;
    while joined.len() < 20 {
        let diff = presence(&mut ann).await;
        frames += 1;
        joined.extend(names(&diff["data"]["joins"]));
    }
    assert!(frames <= 2, "20 joins in {frames} frames");
    assert_eq!(diff_count(&mut bob, 22).await, 22);

    // A group without presence: joining it sends nothing about it.
    join(&mut bob, "lobby").await;
    let mut cid = connect(&srv, "cid").await;
    join(&mut cid, "lobby").await;
    cid.expect_silence(Duration::from_millis(700)).await;

    drop(crowd);
    bob.close().await;
    let mut left = Vec::new();
    while left.len() < 21 {
        let diff = presence(&mut ann).await;
        left.extend(names(&diff["data"]["leaves"]));
    }
    assert!(left.contains(&"bob".to_owned()));
}

/// Reads presence frames until one says the group has `count` members; returns that count.
async fn diff_count(client: &mut WsClient, count: u64) -> u64 {
    loop {
        let frame = presence(client).await;
        if frame["data"]["count"] == count {
            return count;
        }
    }
}

/// Above `counts_only_above`, frames carry the count and no members; below it again, the members are back
/// (as joins).
#[tokio::test]
async fn big_groups_get_counts_only() {
    let srv = spawn(presence_server(rooms().counts_only_above(3))).await;
    let mut ann = connect(&srv, "ann").await;
    join(&mut ann, "room:big").await;
    presence(&mut ann).await;
    let mut others = Vec::new();
    for name in ["b", "c", "d"] {
        let mut c = connect(&srv, name).await;
        join(&mut c, "room:big").await;
        others.push(c);
    }
    let big = loop {
        let frame = presence(&mut ann).await;
        if frame["data"]["count"] == 4 {
            break frame;
        }
    };
    assert_eq!(big["data"], json!({"group": "room:big", "count": 4}));
    let late = presence(&mut others[2]).await;
    assert_eq!(late["type"], "$presence_state");
    assert_eq!(late["data"], json!({"group": "room:big", "count": 4}));

    others.pop().unwrap().close().await;
    let small = loop {
        let frame = presence(&mut ann).await;
        if frame["data"]["count"] == 3 {
            break frame;
        }
    };
    assert_eq!(names(&small["data"]["joins"]), ["ann", "b", "c"]);
}

/// Three nodes sharing Redis: every node's members see the same list; a killed node's members leave within
/// its `node_timeout`; after Redis is down and back, with members gone on both sides meanwhile, no ghost
/// is left on any node.
#[tokio::test]
async fn three_nodes_agree_through_a_killed_node_and_a_redis_outage() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let cluster = |url: &str| {
        RedisConfig::new(url)
            .expect("url")
            .heartbeat_interval(Duration::from_millis(50))
            .node_timeout(Duration::from_secs(1))
            .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
    };
    let node = |url: &str| {
        let config = cluster(url);
        presence_server(rooms()).backplane(move |local| RedisBackplane::start(local, config))
    };
    let one = spawn(node(&url)).await;
    let two = spawn(node(&url)).await;
    let three = spawn(node(&url)).await;
    eventually("three nodes linked", || async {
        [&one, &two, &three].iter().all(|n| {
            n.server
                .stats()
                .backplane
                .is_some_and(|b| b.nodes == 2 && b.connected)
        })
    })
    .await;

    let mut ann = Watcher::new(connect(&one, "ann").await);
    let mut bob = Watcher::new(connect(&two, "bob").await);
    let mut cid = Watcher::new(connect(&three, "cid").await);
    let mut dee = connect(&three, "dee").await;
    for c in [&mut ann.client, &mut bob.client, &mut cid.client, &mut dee] {
        join(c, "room:x").await;
    }
    for w in [&mut ann, &mut bob, &mut cid] {
        w.until(&["ann", "bob", "cid", "dee"]).await;
    }

    // Node three dies without a word: its members leave everyone's list within node_timeout.
    let started = std::time::Instant::now();
    drop(cid);
    drop(dee);
    three.server.stop().await;
    drop(three);
    ann.until(&["ann", "bob"]).await;
    bob.until(&["ann", "bob"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Redis goes away; meanwhile members come and go on both sides.
    let mut eve = connect(&two, "eve").await;
    join(&mut eve, "room:x").await;
    let mut gus = connect(&one, "gus").await;
    join(&mut gus, "room:x").await;
    ann.until(&["ann", "bob", "eve", "gus"]).await;
    bob.until(&["ann", "bob", "eve", "gus"]).await;
    redis.kill().await;
    let mut fay = connect(&one, "fay").await;
    join(&mut fay, "room:x").await;
    eve.close().await;
    gus.close().await;
    // Each side sees its own changes at once; the other side's after the link is back.
    redis.restart().await;
    eventually("linked again", || async {
        [&one, &two].iter().all(|n| {
            n.server
                .stats()
                .backplane
                .is_some_and(|b| b.nodes == 1 && b.connected)
        })
    })
    .await;
    ann.until(&["ann", "bob", "fay"]).await;
    bob.until(&["ann", "bob", "fay"]).await;
    assert_eq!(
        one.server.group_members("room:x").len(),
        two.server.group_members("room:x").len()
    );
}

/// A client and the member list its presence frames describe.
struct Watcher {
    client: WsClient,
    members: serde_json::Map<String, Value>,
}

impl Watcher {
    fn new(client: WsClient) -> Self {
        Self {
            client,
            members: serde_json::Map::new(),
        }
    }

    /// Applies presence frames until the list is `expected` (names, sorted) and the server's count agrees.
    async fn until(&mut self, expected: &[&str]) {
        let n = expected.len();
        loop {
            let frame = presence(&mut self.client).await;
            let data = &frame["data"];
            if frame["type"] == "$presence_state" {
                self.members = data["members"].as_object().cloned().unwrap_or_default();
            } else {
                for (id, meta) in data["joins"].as_object().into_iter().flatten() {
                    self.members.insert(id.clone(), meta.clone());
                }
                for (id, _) in data["leaves"].as_object().into_iter().flatten() {
                    self.members.remove(id);
                }
            }
            if data["count"] == n && names(&Value::Object(self.members.clone())) == expected {
                return;
            }
        }
    }
}
