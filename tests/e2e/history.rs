//! History and recovery (README "History and recovery"; `ws_core::history` module docs): positions in the
//! envelope, recovery on a new connection in order and without duplicates, the gap answers, the bounds.

use std::time::Duration;

use serde_json::{Value, json};
use ws_core::backplane::{Backplane, RedisBackplane, RedisConfig};
use ws_core::config::ConfigError;
use ws_core::history::History;
use ws_core::protocol::Message;
use ws_core::{Client, Config, Server, ServerBuilder};

use crate::support::redis::{RedisCluster, RedisServer, fast_cluster};
use crate::support::{TestServer, WsClient, spawn};

/// `join {group}` (a request), `say {group, n}`, relayed to the group but the sender, and `shout {group,
/// n}`, relayed to the whole group (the sender too), both as `said`.
fn history_server(history: History) -> ServerBuilder {
    Server::builder(Config::default().port(0).message_rate_limit(0))
        .history(history)
        .on("join", |client: Client, msg: Message| async move {
            let group = msg.data["group"].as_str().unwrap_or_default().to_owned();
            client.join(&group).map(|_| ())
        })
        .on("say", |client: Client, msg: Message| async move {
            let group = msg.data["group"].as_str().unwrap_or_default().to_owned();
            client
                .to(&group)
                .send(Message::new("said", msg.data["n"].clone()));
        })
        .on("shout", |client: Client, msg: Message| async move {
            let group = msg.data["group"].as_str().unwrap_or_default().to_owned();
            client
                .server()
                .to(&group)
                .send(Message::new("said", msg.data["n"].clone()));
        })
}

/// Joins `group` (a request) and returns the `$position` frame that came before the reply (`null` for
/// a group without history).
async fn join(client: &mut WsClient, group: &str) -> Value {
    join_replayed(client, group).await.0
}

/// [`join`], with the `data` of the `said` frames replayed before the reply.
async fn join_replayed(client: &mut WsClient, group: &str) -> (Value, Vec<u64>) {
    client
        .send_json(json!({"type": "join", "data": {"group": group}, "id": 1}))
        .await;
    let mut position = Value::Null;
    let mut replayed = Vec::new();
    client
        .answer_collecting(1, |frame| match frame["type"].as_str() {
            Some("$position") => position = frame,
            Some("said") => replayed.push(frame["data"].as_u64().unwrap()),
            _ => {}
        })
        .await;
    (position, replayed)
}

async fn say(client: &mut WsClient, group: &str, n: u64) {
    client
        .send_json(json!({"type": "say", "data": {"group": group, "n": n}}))
        .await;
}

/// The `data` of the next `count` frames of type `said`, and the position of the last.
async fn said(client: &mut WsClient, count: usize) -> (Vec<u64>, Value) {
    let mut values = Vec::new();
    let mut last = Value::Null;
    while values.len() < count {
        let frame = client.recv().await;
        if frame["type"] == "said" {
            values.push(frame["data"].as_u64().unwrap());
            last = frame["pos"].clone();
        }
    }
    (values, last)
}

/// Sends frame `expected`'s last number to the room and checks that `client`, after `replayed`, gets it
/// live: the missed frames in order, once, then the live one with its position.
async fn missed_then_live(
    sender: &mut WsClient,
    client: &mut WsClient,
    mut replayed: Vec<u64>,
    expected: std::ops::RangeInclusive<u64>,
) {
    let n = *expected.end();
    say(sender, "room", n).await;
    let (live, last) = said(client, 1).await;
    replayed.extend(live);
    assert_eq!(
        replayed,
        expected.collect::<Vec<u64>>(),
        "missed frames, then the live one"
    );
    assert_eq!(last["offset"], n);
}

async fn connect(srv: &TestServer) -> WsClient {
    srv.connect().await
}

/// A frame to a group with history carries its position; a client whose connection was cut while 1 000
/// frames were sent comes back with its position, joins, and gets `recovered: true` and every frame, in
/// order, once — then live frames after them.
#[tokio::test]
async fn a_client_that_comes_back_gets_what_it_missed_in_order() {
    let srv = spawn(history_server(
        History::new().groups(|g| g.starts_with("room")),
    ))
    .await;
    let mut sender = connect(&srv).await;
    join(&mut sender, "room").await;
    let mut reader = connect(&srv).await;
    let first = join(&mut reader, "room").await;
    assert_eq!(first["data"]["offset"], 0);
    assert!(first["data"].get("recovered").is_none(), "{first}");

    say(&mut sender, "room", 1).await;
    let (values, pos) = said(&mut reader, 1).await;
    assert_eq!(values, [1]);
    assert_eq!((&pos["group"], &pos["offset"]), (&json!("room"), &json!(1)));
    let epoch = pos["epoch"].clone();

    reader.close().await;
    for n in 2..=1001 {
        say(&mut sender, "room", n).await;
    }
    // Wait until the server has handled them: a request after them is answered after them.
    join(&mut sender, "room-sync").await;

    let (mut back, position, values) = come_back(&srv, "room", &epoch, 1, 1000).await;
    assert_eq!(
        position["data"],
        json!({"group": "room", "epoch": epoch, "offset": 1001, "recovered": true})
    );
    missed_then_live(&mut sender, &mut back, values, 2..=1002).await;
}

/// Recovery is refused with a reason when it cannot be complete: frames pushed out by `max_messages`
/// ("expired"), or an epoch the group's history does not have ("epoch"). Nothing is replayed then.
#[tokio::test]
async fn an_incomplete_recovery_says_why_and_replays_nothing() {
    let srv = spawn(history_server(History::new().max_messages(3))).await;
    let mut sender = connect(&srv).await;
    let start = join(&mut sender, "g").await;
    let epoch = start["data"]["epoch"].clone();
    for n in 1..=5 {
        say(&mut sender, "g", n).await;
    }
    join(&mut sender, "sync").await;

    let mut late = connect(&srv).await;
    late.send_json(json!({"type": "$positions", "data": {"g": {"epoch": epoch, "offset": 1}}}))
        .await;
    let (position, replayed) = join_replayed(&mut late, "g").await;
    assert_eq!(
        position["data"],
        json!({"group": "g", "epoch": epoch, "offset": 5, "recovered": false, "reason": "expired"})
    );
    assert!(replayed.is_empty());
    // Within the kept frames (3, 4, 5), recovery works.
    let mut close = connect(&srv).await;
    close
        .send_json(json!({"type": "$positions", "data": {"g": {"epoch": epoch, "offset": 2}, "other": {"epoch": "x", "offset": 1}}}))
        .await;
    let (position, replayed) = join_replayed(&mut close, "g").await;
    assert_eq!(position["data"]["recovered"], true);
    assert_eq!(replayed, [3, 4, 5]);

    let mut stranger = connect(&srv).await;
    stranger
        .send_json(
            json!({"type": "$positions", "data": {"g": {"epoch": "0000", "offset": 4}}, "id": 9}),
        )
        .await;
    assert_eq!(
        stranger.recv().await,
        json!({"type": "$reply", "id": 9, "data": null})
    );
    let position = join(&mut stranger, "g").await;
    assert_eq!(
        (&position["data"]["recovered"], &position["data"]["reason"]),
        (&json!(false), &json!("epoch"))
    );
    say(&mut sender, "g", 6).await;
    let next = stranger.recv().await;
    assert_eq!(
        (&next["type"], &next["data"]),
        (&json!("said"), &json!(6)),
        "nothing replayed before the live frame"
    );
}

/// Past `max_groups`, a new group gets no history while the others have frames: its frames carry no
/// position and a join is told `unavailable`. Groups without history are untouched. A backplane that
/// cannot keep history is refused with it.
#[tokio::test]
async fn history_is_bounded_in_groups_and_needs_a_backplane_that_keeps_it() {
    let srv = spawn(history_server(
        History::new().max_groups(1).groups(|g| g != "plain"),
    ))
    .await;
    let mut a = connect(&srv).await;
    join(&mut a, "first").await;
    say(&mut a, "first", 1).await;
    let mut b = connect(&srv).await;
    b.send_json(json!({"type": "$positions", "data": {"second": {"epoch": "e", "offset": 1}}}))
        .await;
    let position = join(&mut b, "second").await;
    assert_eq!(
        position["data"],
        json!({"group": "second", "recovered": false, "reason": "unavailable"})
    );
    join(&mut a, "second").await;
    say(&mut b, "second", 2).await;
    let frame = a.recv().await;
    assert_eq!(frame["data"], 2);
    assert!(frame.get("pos").is_none(), "{frame}");

    assert_eq!(
        join(&mut a, "plain").await,
        Value::Null,
        "no $position for a group without history"
    );

    let both = history_server(History::new())
        .backplane(crate::custom_backplane::Linked::solo)
        .build();
    assert_eq!(both.err(), Some(ConfigError::HistoryUnsupported));
}

/// A member reads a group's kept frames on demand with `$history` (all of them, or after an offset);
/// `complete` says whether some were pushed out. A non-member is refused, a group without history is
/// `not_found`, and a request without `id` gets nothing.
#[tokio::test]
async fn members_fetch_history_on_demand() {
    let srv = spawn(history_server(
        History::new().max_messages(4).groups(|g| g != "plain"),
    ))
    .await;
    let mut member = connect(&srv).await;
    join(&mut member, "g").await;
    let mut sender = connect(&srv).await;
    join(&mut sender, "g").await;
    for n in 1..=6 {
        say(&mut sender, "g", n).await;
    }
    said(&mut member, 6).await;

    let ask = |data: Value, id: u64| json!({"type": "$history", "id": id, "data": data});
    member.send_json(ask(json!({"group": "g"}), 5)).await;
    let all = member.recv().await;
    assert_eq!(
        (&all["type"], &all["id"]),
        (&json!("$reply"), &json!(5)),
        "{all}"
    );
    let data = &all["data"];
    assert_eq!(
        (&data["offset"], &data["complete"]),
        (&json!(6), &json!(false))
    );
    let kept: Vec<Value> = data["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["data"].clone())
        .collect();
    assert_eq!(kept, [json!(3), json!(4), json!(5), json!(6)]);
    assert_eq!(data["frames"][0]["pos"]["offset"], 3);

    member
        .send_json(ask(json!({"group": "g", "since": 4}), 6))
        .await;
    let after = member.recv().await;
    assert_eq!(after["data"]["complete"], true);
    assert_eq!(after["data"]["frames"].as_array().unwrap().len(), 2);

    let mut outsider = connect(&srv).await;
    outsider.send_json(ask(json!({"group": "g"}), 7)).await;
    assert_eq!(outsider.recv().await["data"]["code"], "forbidden");
    outsider.send_json(ask(json!({"group": "plain"}), 8)).await;
    assert_eq!(outsider.recv().await["data"]["code"], "not_found");
    outsider.send_json(ask(json!({"nope": 1}), 9)).await;
    assert_eq!(outsider.recv().await["data"]["code"], "invalid_data");
    outsider
        .send_json(json!({"type": "$history", "data": {"group": "g"}}))
        .await;
    outsider.expect_silence(Duration::from_millis(200)).await;
}

/// A node of a cluster on `redis`, with history on the groups named `room…`, and quick heartbeats and
/// reconnects so outages are noticed and healed within the test's patience.
fn node(redis: &str) -> ServerBuilder {
    node_with(redis, History::new().groups(|g| g.starts_with("room")))
}

/// [`node`] with other history settings.
fn node_with(redis: &str, history: History) -> ServerBuilder {
    let redis = quick(redis);
    history_server(history).backplane(move |local| RedisBackplane::start(local, redis))
}

/// The backplane settings of [`node`].
fn quick(redis: &str) -> RedisConfig {
    RedisConfig::new(redis)
        .unwrap()
        .heartbeat_interval(Duration::from_millis(100))
        .node_timeout(Duration::from_secs(1))
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
}

/// Joins `group` and returns `$position` once both it and the join's reply arrived (on a cluster it comes
/// from the node's subscriber and may follow the reply), with the `said` frames replayed after it so far.
async fn join_and_position(client: &mut WsClient, group: &str) -> (Value, Vec<u64>) {
    let (mut position, mut replayed) = join_replayed(client, group).await;
    while position.is_null() {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("$position") => position = frame,
            Some("said") => replayed.push(frame["data"].as_u64().unwrap()),
            _ => {}
        }
    }
    (position, replayed)
}

/// A client of `srv` that joined `group` and got its position.
async fn member_of(srv: &TestServer, group: &str) -> WsClient {
    let mut client = connect(srv).await;
    join_and_position(&mut client, group).await;
    client
}

/// Comes back on `srv` with the position `(epoch, offset)` in `group`, and returns the `$position`
/// answer and the `count` frames that follow it.
async fn come_back(
    srv: &TestServer,
    group: &str,
    epoch: &Value,
    offset: u64,
    count: usize,
) -> (WsClient, Value, Vec<u64>) {
    let mut client = connect(srv).await;
    client
        .send_json(
            json!({"type": "$positions", "data": {group: {"epoch": epoch, "offset": offset}}}),
        )
        .await;
    let (position, mut values) = join_and_position(&mut client, group).await;
    let (rest, _) = said(&mut client, count.saturating_sub(values.len())).await;
    values.extend(rest);
    (client, position, values)
}

/// Three nodes on one Redis: a group's frames get one numbering whichever node sends them, every node
/// delivers them with the same position, and a client cut while 1 000 frames were sent comes back on
/// another node and gets all of them, in order, once, with `recovered: true` (from the frames that node
/// delivered last), then the live ones. A fourth node, started afterwards, recovers a client from the
/// group's stream. A member reads the kept frames from any node.
#[tokio::test]
async fn nodes_number_a_group_once_and_a_client_recovers_on_any_node() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let (a, b, c) = (
        spawn(node(&url)).await,
        spawn(node(&url)).await,
        spawn(node(&url)).await,
    );
    let mut reader = connect(&a).await;
    let (first, _) = join_and_position(&mut reader, "room").await;
    assert_eq!(
        first["data"],
        json!({"group": "room"}),
        "no frame yet: no epoch"
    );
    let mut sender = member_of(&b, "room").await;
    let mut watcher = member_of(&c, "room").await;

    say(&mut sender, "room", 1).await;
    let (values, pos) = said(&mut reader, 1).await;
    assert_eq!(values, [1]);
    let (_, seen_elsewhere) = said(&mut watcher, 1).await;
    assert_eq!(pos, seen_elsewhere, "one position on every node");
    assert_eq!((&pos["group"], &pos["offset"]), (&json!("room"), &json!(1)));
    let epoch = pos["epoch"].clone();

    reader.close().await;
    for n in 2..=1001 {
        say(&mut sender, "room", n).await;
    }
    let (values, last) = said(&mut watcher, 1000).await;
    assert_eq!(values, (2..=1001).collect::<Vec<u64>>());
    assert_eq!(last["offset"], 1001);

    let d = spawn(node(&url)).await;
    let (_, position, values) = come_back(&d, "room", &epoch, 500, 501).await;
    assert_eq!(position["data"]["recovered"], true, "{position}");
    assert_eq!(
        values,
        (501..=1001).collect::<Vec<u64>>(),
        "from the stream"
    );

    let (mut back, position, values) = come_back(&c, "room", &epoch, 1, 1000).await;
    assert_eq!(
        position["data"],
        json!({"group": "room", "epoch": epoch, "offset": 1001, "recovered": true})
    );
    missed_then_live(&mut sender, &mut back, values, 2..=1002).await;

    back.send_json(json!({"type": "$history", "id": 7, "data": {"group": "room", "since": 999}}))
        .await;
    let answer = loop {
        let frame = back.recv().await;
        if frame["id"] == 7 {
            break frame;
        }
    };
    let data = &answer["data"];
    assert_eq!(
        (&data["epoch"], &data["offset"], &data["complete"]),
        (&epoch, &json!(1002), &json!(true)),
        "{answer}"
    );
    let fetched: Vec<&Value> = data["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["data"])
        .collect();
    assert_eq!(fetched, [&json!(1000), &json!(1001), &json!(1002)]);

    // Redis keeps `max_messages` (1 000) of the 1 002, for at most `max_age` (5 minutes).
    let stream = b"ws:v3:{g:room}:stream".as_slice();
    assert_eq!(redis.command(&[b"XLEN", stream]).await, b":1000\r\n");
    let ttl = redis.command(&[b"PTTL", stream]).await;
    let ttl: u64 = std::str::from_utf8(&ttl[1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((290_000..=300_000).contains(&ttl), "{ttl} ms");
}

/// Redis killed and restarted (with its append-only file) while a client is away and 1 000 frames are
/// sent, 500 of them during the outage: those wait on their node and are numbered when Redis is back; a
/// member on another node that stayed connected gets every frame once, in order; the client that was away
/// recovers all 1 000 in the same epoch.
#[tokio::test]
async fn delivery_and_recovery_survive_a_redis_restart() {
    let mut redis = RedisServer::start_durable().await;
    let url = redis.url();
    let (a, b) = (spawn(node(&url)).await, spawn(node(&url)).await);
    let mut sender = member_of(&b, "room").await;
    let mut watcher = member_of(&a, "room").await;
    let mut reader = member_of(&a, "room").await;

    for n in 1..=100 {
        say(&mut sender, "room", n).await;
    }
    let (_, pos) = said(&mut reader, 100).await;
    let epoch = pos["epoch"].clone();
    reader.close().await;
    for n in 101..=600 {
        say(&mut sender, "room", n).await;
    }
    let (values, _) = said(&mut watcher, 600).await;
    assert_eq!(values, (1..=600).collect::<Vec<u64>>());

    redis.kill().await;
    for n in 601..=1100 {
        say(&mut sender, "room", n).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart().await;
    let (values, last) = said(&mut watcher, 500).await;
    assert_eq!(
        values,
        (601..=1100).collect::<Vec<u64>>(),
        "each frame once, in order"
    );
    assert_eq!((&last["epoch"], &last["offset"]), (&epoch, &json!(1100)));

    let (_, position, values) = come_back(&b, "room", &epoch, 100, 1000).await;
    assert_eq!(
        position["data"],
        json!({"group": "room", "epoch": epoch, "offset": 1100, "recovered": true})
    );
    assert_eq!(values, (101..=1100).collect::<Vec<u64>>());
    watcher.expect_silence(Duration::from_millis(300)).await;
}

/// On Redis, `max_groups` holds for the whole cluster: with room for one, a second group's frames (sent from
/// another node) carry no position and a join with a position is told `unavailable`; once the first has
/// been idle for `max_age`, the second gets history.
#[tokio::test]
async fn history_in_redis_is_bounded_in_groups_across_the_cluster() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let one_group = || {
        History::new()
            .max_groups(1)
            .max_age(Duration::from_millis(500))
    };
    let (a, b) = (
        spawn(node_with(&url, one_group())).await,
        spawn(node_with(&url, one_group())).await,
    );
    let mut member = member_of(&a, "first").await;
    join_and_position(&mut member, "second").await;
    let mut sender = member_of(&b, "first").await;
    join_and_position(&mut sender, "second").await;

    say(&mut sender, "first", 1).await;
    let frame = member.recv().await;
    assert_eq!(
        (&frame["data"], &frame["pos"]["offset"]),
        (&json!(1), &json!(1)),
        "{frame}"
    );
    say(&mut sender, "second", 2).await;
    let frame = member.recv().await;
    assert_eq!(frame["data"], 2);
    assert!(
        frame.get("pos").is_none(),
        "no room for a second history: {frame}"
    );

    let mut late = connect(&a).await;
    late.send_json(json!({"type": "$positions", "data": {"second": {"epoch": "e", "offset": 1}}}))
        .await;
    let (position, _) = join_and_position(&mut late, "second").await;
    assert_eq!(
        position["data"],
        json!({"group": "second", "recovered": false, "reason": "unavailable"})
    );

    // The first group idle past `max_age`: its place is free.
    tokio::time::sleep(Duration::from_millis(700)).await;
    say(&mut sender, "second", 3).await;
    let frame = member.recv().await;
    assert_eq!(
        (&frame["data"], &frame["pos"]["offset"]),
        (&json!(3), &json!(1)),
        "{frame}"
    );
}

/// A client that joins a group with history and sends to it the moment the join is answered gets its
/// own frames back (README "History and recovery": frames sent after a join arrive live after the
/// replay), even while the node's subscriber is busy answering a large `$history` — it used to drop them
/// for a group no member there had joined yet, and then tell the client a position past them.
#[tokio::test]
async fn a_sender_gets_its_own_frames_right_after_its_join_while_the_subscriber_is_busy() {
    let redis = RedisServer::start().await;
    let node = spawn(node_with(&redis.url(), History::new().max_messages(2_000))).await;
    let mut reader = member_of(&node, "big").await;
    let mut loader = member_of(&node, "big").await;
    for n in 1..=2_000 {
        say(&mut loader, "big", n).await;
    }
    said(&mut reader, 2_000).await;
    for round in 0..10 {
        reader
            .send_json(json!({"type": "$history", "data": {"group": "big"}, "id": 9}))
            .await;
        let group = format!("joined-{round}");
        let mut sender = connect(&node).await;
        sender
            .send_json(json!({"type": "join", "data": {"group": group}, "id": 1}))
            .await;
        sender.answer(1).await;
        for n in 1..=3 {
            sender
                .send_json(json!({"type": "shout", "data": {"group": group, "n": n}}))
                .await;
        }
        let (got, last) = said(&mut sender, 3).await;
        assert_eq!(got, [1, 2, 3], "round {round}");
        assert_eq!(last["offset"], 3, "round {round}");
        reader.answer(9).await;
    }
}

/// A client away while Redis restarted empty comes back to a node that still has members of its group,
/// with its position in the old history: it is told the history restarted (`reason: "epoch"`), as on a
/// node without members, not recovered from the node's memory of a history that is gone.
#[tokio::test]
async fn a_history_lost_by_redis_is_told_as_a_new_epoch_on_a_node_with_members() {
    let mut redis = RedisServer::start().await;
    let node = spawn(node(&redis.url())).await;
    let mut member = member_of(&node, "room").await;
    let mut away = member_of(&node, "room").await;
    say(&mut member, "room", 1).await;
    let (_, pos) = said(&mut away, 1).await;
    let epoch = pos["epoch"].clone();
    drop(away);
    redis.kill().await;
    redis.restart().await;
    // Until the node has its connections back, a recovery is answered `unavailable`.
    for _ in 0..100 {
        let mut back = connect(&node).await;
        back.send_json(
            json!({"type": "$positions", "data": {"room": {"epoch": epoch, "offset": 1}}}),
        )
        .await;
        let (position, replayed) = join_and_position(&mut back, "room").await;
        if position["data"]["reason"] == "unavailable" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(
            position["data"],
            json!({"group": "room", "recovered": false, "reason": "epoch"}),
            "{position}"
        );
        assert!(replayed.is_empty());
        return;
    }
    panic!("the node never got its Redis connections back");
}

/// Frames sent to a group with history from both nodes during the first second after Redis restarted (with
/// its append-only file) reach every member on either node once each, in one order (offsets rising), in the
/// same epoch as before.
#[tokio::test]
async fn frames_sent_right_after_a_redis_restart_reach_every_member_once() {
    let mut redis = RedisServer::start_durable().await;
    let url = redis.url();
    let (a, b) = (spawn(node(&url)).await, spawn(node(&url)).await);
    let mut members = Vec::new();
    for srv in [&a, &b] {
        let mut member = connect(srv).await;
        join_and_position(&mut member, "room").await;
        members.push(member);
    }
    let mut senders = Vec::new();
    for srv in [&a, &b] {
        let mut sender = connect(srv).await;
        join_and_position(&mut sender, "room").await;
        senders.push(sender);
    }
    senders[0]
        .send_json(json!({"type": "shout", "data": {"group": "room", "n": 0}}))
        .await;
    let mut epoch = Value::Null;
    for member in &mut members {
        let (_, pos) = said(member, 1).await;
        epoch = pos["epoch"].clone();
    }

    redis.kill().await;
    redis.restart().await;
    for n in 1..=20u64 {
        let sender = &mut senders[usize::from(n % 2 == 0)];
        sender
            .send_json(json!({"type": "shout", "data": {"group": "room", "n": n}}))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for member in &mut members {
        let mut values = Vec::new();
        let mut offsets = Vec::new();
        while values.len() < 20 {
            let frame = member.recv().await;
            if frame["type"] == "said" {
                values.push(frame["data"].as_u64().unwrap());
                assert_eq!(frame["pos"]["epoch"], epoch, "{frame}");
                offsets.push(frame["pos"]["offset"].as_u64().unwrap());
            }
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=20).collect::<Vec<u64>>(),
            "each once: {values:?}"
        );
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        member.expect_silence(Duration::from_millis(300)).await;
    }
}

/// A node whose backplane connected before the server set its history up (as happens when another
/// thread runs the backplane's tasks first, on a loaded host) numbers and delivers its frames to a group
/// with history like any other: members on both nodes get each once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_backplane_connected_before_its_history_was_set_up_delivers_its_frames() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let config = quick(&url);
    let late =
        history_server(History::new().groups(|g| g.starts_with("room"))).backplane(move |local| {
            let backplane = RedisBackplane::start(local, config);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !backplane.stats().is_some_and(|s| s.connected) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the backplane connects"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            backplane
        });
    let (a, b) = (spawn(node(&url)).await, spawn(late).await);
    let mut reader = member_of(&a, "room").await;
    let mut watcher = member_of(&b, "room").await;
    let mut sender = member_of(&b, "room").await;
    for n in 1..=3 {
        say(&mut sender, "room", n).await;
    }
    for member in [&mut reader, &mut watcher] {
        let (values, last) = said(member, 3).await;
        assert_eq!(values, [1, 2, 3]);
        assert_eq!(last["offset"], 3, "numbered in Redis");
    }
}

/// With `wait_for_replicas` on a Redis that has no replica (README "Failover"), each frame waits out its
/// timeout, is delivered anyway with its position, and is counted in `unreplicated`, once per frame.
#[tokio::test]
async fn frames_delivered_before_a_replica_had_them_are_counted() {
    let redis = RedisServer::start().await;
    let config = RedisConfig::new(&redis.url())
        .unwrap()
        .heartbeat_interval(Duration::from_millis(100))
        .wait_for_replicas(1, Duration::from_millis(20));
    let srv = spawn(
        history_server(History::new()).backplane(move |local| RedisBackplane::start(local, config)),
    )
    .await;
    let mut client = member_of(&srv, "room").await;
    for n in 0..3 {
        client
            .send_json(json!({"type": "shout", "data": {"group": "room", "n": n}}))
            .await;
    }
    let (values, last) = said(&mut client, 3).await;
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(last["offset"], 3, "{last}");
    let unreplicated = || srv.server.stats().backplane.unwrap().unreplicated;
    assert_eq!(unreplicated(), 3);
}

/// Two nodes on a Redis without replicas, waiting up to 3 s for one (README "Failover"): a frame of a
/// group with history waits alone. A frame to a group without history, sent after it, reaches a member
/// on the other node first; a client that joins the group on the other node meanwhile is placed before
/// the waiting frame (offset 0, nothing replayed) and gets it live, once, when its wait has ended.
#[tokio::test]
async fn a_frame_waiting_for_replicas_holds_up_no_other_traffic_and_reaches_no_one_early() {
    let redis = RedisServer::start().await;
    let waiting = |redis: &str| {
        let config = RedisConfig::new(redis)
            .unwrap()
            .heartbeat_interval(Duration::from_millis(100))
            .wait_for_replicas(1, Duration::from_secs(3));
        history_server(History::new().groups(|g| g.starts_with("room")))
            .backplane(move |local| RedisBackplane::start(local, config))
    };
    let a = spawn(waiting(&redis.url())).await;
    let b = spawn(waiting(&redis.url())).await;
    let mut sender = connect(&a).await;
    let mut member = connect(&b).await;
    for client in [&mut sender, &mut member] {
        join_and_position(client, "room").await;
        assert!(join(client, "plain").await.is_null(), "no history there");
    }
    // Both nodes see both members before anything is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sender
        .send_json(json!({"type": "shout", "data": {"group": "room", "n": 1}}))
        .await;
    sender
        .send_json(json!({"type": "shout", "data": {"group": "plain", "n": 2}}))
        .await;
    let first = member.next_of("said").await;
    assert_eq!(
        first["data"], 2,
        "the frame without history came first: {first}"
    );
    assert!(first["pos"].is_null(), "{first}");

    let mut late = connect(&b).await;
    let (position, replayed) = join_and_position(&mut late, "room").await;
    assert_eq!(position["data"]["offset"], 0, "{position}");
    assert!(replayed.is_empty(), "{replayed:?}");

    for client in [&mut member, &mut late] {
        let frame = client.next_of("said").await;
        assert_eq!(frame["data"], 1);
        assert_eq!(frame["pos"]["offset"], 1, "{frame}");
        assert_eq!(frame["pos"]["epoch"], position["data"]["epoch"], "{frame}");
        client.expect_silence(Duration::from_millis(300)).await;
    }
    let unreplicated = a.server.stats().backplane.unwrap().unreplicated;
    assert_eq!(unreplicated, 1);
}

/// A node that reconnects while a frame waits for its replicas reads the group's history back only up to
/// its last frame published (README "Failover"): two nodes on a Redis without replicas, waiting up to 3 s
/// for one; node A sends a frame, then every subscriber connection is cut (`CLIENT KILL TYPE pubsub`).
/// Node B reconnects and reads from the stream what it missed while the frame, kept already, still
/// waits: its member gets the frame once, when the wait has ended, not from that read.
#[tokio::test]
async fn a_node_catching_up_reads_no_frame_still_waiting_for_its_replicas() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(3);
    let waiting = |redis: &str| {
        let config = quick(redis).wait_for_replicas(1, timeout);
        history_server(History::new().groups(|g| g.starts_with("room")))
            .backplane(move |local| RedisBackplane::start(local, config))
    };
    let a = spawn(waiting(&redis.url())).await;
    let b = spawn(waiting(&redis.url())).await;
    let mut sender = member_of(&a, "room").await;
    let mut member = member_of(&b, "room").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reconnects = || b.server.stats().backplane.unwrap().reconnects;
    let before = reconnects();
    let sent = std::time::Instant::now();
    sender
        .send_json(json!({"type": "shout", "data": {"group": "room", "n": 1}}))
        .await;
    // The frame is kept at once, then waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = redis
        .command(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"])
        .await;
    assert_ne!(killed, b":0\r\n", "no subscriber connection was cut");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while reconnects() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "node B did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (values, pos) = said(&mut member, 1).await;
    let waited = sent.elapsed();
    assert_eq!(values, [1]);
    assert_eq!(pos["offset"], 1, "{pos}");
    assert!(
        waited >= timeout - Duration::from_millis(200),
        "the frame reached the member {waited:?} after it was sent, before its wait ended"
    );
    member.expect_silence(Duration::from_millis(300)).await;
}

/// After a wait that ran out (README "Failover"), a node asks the master for its replicas before the
/// next wait: while it has fewer than asked for, frames are published at once, sooner than one wait's
/// timeout, and counted in `unreplicated`.
#[tokio::test]
async fn while_the_master_lacks_replicas_frames_do_not_wait_out_the_timeout() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(3);
    let config = RedisConfig::new(&redis.url())
        .unwrap()
        .heartbeat_interval(Duration::from_millis(100))
        .wait_for_replicas(1, timeout);
    let srv = spawn(
        history_server(History::new()).backplane(move |local| RedisBackplane::start(local, config)),
    )
    .await;
    let mut client = member_of(&srv, "room").await;
    // The first frame waits out the timeout and shows the master short of replicas.
    client
        .send_json(json!({"type": "shout", "data": {"group": "room", "n": 0}}))
        .await;
    said(&mut client, 1).await;
    for n in 1..=4 {
        let sent = std::time::Instant::now();
        client
            .send_json(json!({"type": "shout", "data": {"group": "room", "n": n}}))
            .await;
        let (values, pos) = said(&mut client, 1).await;
        assert_eq!(values, [n]);
        assert_eq!(pos["offset"], n + 1, "{pos}");
        assert!(
            sent.elapsed() < timeout,
            "frame {n} waited {:?}, as long as a wait",
            sent.elapsed()
        );
    }
    let unreplicated = srv.server.stats().backplane.unwrap().unreplicated;
    assert_eq!(unreplicated, 5);
}

/// A group with history whose master is not the one on `port`.
async fn group_off(cluster: &RedisCluster, port: u16) -> String {
    for n in 0..64 {
        let group = format!("room-{n}");
        if cluster.master_of(&format!("{{g:{group}}}")).await != port {
            return group;
        }
    }
    panic!("no group on another shard");
}

/// A master killed on a Redis Cluster whose other masters go on serving (`cluster-require-full-coverage
/// no`, README "Failover"): what a node missed is read back in the background, so while the cluster
/// elects a replica, a group with history on another shard keeps reaching its member on that node. Node
/// A sends to such a group every 10 ms, through the kill and the election; the member on node B gets
/// every frame, in order, and each one sent until a quarter of a second before the replica was seen
/// serving reached it before that (read back in line, they waited for the election).
#[tokio::test]
async fn a_shard_electing_a_master_holds_up_no_other_groups_frames() {
    let mut cluster = RedisCluster::start_with_partial_coverage().await;
    let dying = "room-dying";
    let dying_key = format!("{{g:{dying}}}");
    let dying_master = cluster.master_of(&dying_key).await;
    let healthy = group_off(&cluster, dying_master).await;
    let node = || {
        let config = fast_cluster(&cluster);
        history_server(History::new().groups(|g| g.starts_with("room")))
            .backplane(move |local| RedisBackplane::start(local, config))
    };
    let (a, b) = (spawn(node()).await, spawn(node()).await);
    let mut sender = connect(&a).await;
    let mut member = connect(&b).await;
    for client in [&mut sender, &mut member] {
        join_and_position(client, dying).await;
        join_and_position(client, &healthy).await;
    }
    let to = healthy.clone();
    let sending = tokio::spawn(async move {
        let mut sent = Vec::new();
        for n in 1..=400u64 {
            sender
                .send_json(json!({"type": "say", "data": {"group": to, "n": n}}))
                .await;
            sent.push(std::time::Instant::now());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = cluster.kill_master(&dying_key).await;
    // When a replica was first seen serving the dead master's slots.
    let cluster = std::sync::Arc::new(cluster);
    let watched = cluster.clone();
    let watching = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while watched
            .serving(&dying_key)
            .await
            .is_none_or(|p| p == killed)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no replica took over"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::time::Instant::now()
    });
    let (mut values, mut received) = (Vec::new(), Vec::new());
    while values.len() < 400 {
        let frame = member.recv().await;
        if frame["type"] == "said" {
            values.push(frame["data"].as_u64().unwrap());
            received.push(std::time::Instant::now());
        }
    }
    let sent = sending.await.expect("every frame sent");
    assert_eq!(
        values,
        (1..=400).collect::<Vec<u64>>(),
        "each frame once, in order"
    );
    let replaced = watching.await.expect("a replica took over");
    let late: Vec<u64> = values
        .iter()
        .zip(&received)
        .filter(|(n, at)| {
            let sent_at = sent[usize::try_from(**n).unwrap() - 1];
            sent_at + Duration::from_millis(250) < replaced && **at > replaced
        })
        .map(|(n, _)| *n)
        .collect();
    assert!(
        late.is_empty(),
        "frames held until the other shard had a master again: {late:?}"
    );
}

/// Two nodes on a Redis Cluster of three masters with a replica each, waiting up to 2 s for one replica
/// (README "Failover"), with the replica of one group's master stopped (SIGSTOP): that group's frame
/// waits out its timeout, while a frame to a group on another shard and one to a group without history,
/// both sent after it, reach a member on the other node first. Once the stopped replica has been silent
/// for more than two seconds it no longer counts: the group's next frame is published at once, sooner
/// than a wait's timeout, and counted in `unreplicated` (its master still lists the replica as
/// connected).
#[tokio::test]
async fn a_stopped_replica_holds_up_only_its_own_shards_frames() {
    let cluster = RedisCluster::start().await;
    let slow_master = cluster.master_of("{g:room-slow}").await;
    let healthy = group_off(&cluster, slow_master).await;
    let replica = cluster.replica_of(slow_master).await;
    let timeout = Duration::from_secs(2);
    let node = || {
        let config = fast_cluster(&cluster).wait_for_replicas(1, timeout);
        history_server(History::new().groups(|g| g.starts_with("room")))
            .backplane(move |local| RedisBackplane::start(local, config))
    };
    let a = spawn(node()).await;
    let b = spawn(node()).await;
    let mut sender = connect(&a).await;
    let mut member = connect(&b).await;
    for client in [&mut sender, &mut member] {
        join_and_position(client, "room-slow").await;
        join_and_position(client, &healthy).await;
        assert!(join(client, "plain").await.is_null(), "no history there");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.signal(replica, "STOP").await;
    for (group, n) in [("room-slow", 1), (healthy.as_str(), 2), ("plain", 3)] {
        sender
            .send_json(json!({"type": "shout", "data": {"group": group, "n": n}}))
            .await;
    }
    let (values, _) = said(&mut member, 3).await;
    assert_eq!(values.len(), 3);
    assert_eq!(
        values[2], 1,
        "the stopped replica's shard came last: {values:?}"
    );
    // The replica was stopped just over `timeout` ago: a little longer and it has been silent for three
    // whole seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = std::time::Instant::now();
    sender
        .send_json(json!({"type": "shout", "data": {"group": "room-slow", "n": 4}}))
        .await;
    let (values, pos) = said(&mut member, 1).await;
    let waited = sent.elapsed();
    cluster.signal(replica, "CONT").await;
    assert_eq!(values, [4]);
    assert_eq!(pos["offset"], 2, "{pos}");
    assert!(
        waited < timeout,
        "the frame waited {waited:?} for a replica silent for seconds"
    );
    let unreplicated = a.server.stats().backplane.unwrap().unreplicated;
    assert_eq!(unreplicated, 2);
}
