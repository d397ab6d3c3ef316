//! `examples/whiteboard` over real sockets: README "The whiteboard" (its message table and bounds).

use serde_json::{Value, json};

use crate::support::{Example, WsClient, refused_status, start_example};

async fn connect(app: &Example, user: &str) -> WsClient {
    WsClient::connect(&format!("ws://{}/ws?token={user}", app.addr)).await
}

fn line(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"x": i % 4000, "y": 10})).collect()
}

/// Join replies with the board's strokes and members; presence follows joins, moves and disconnects;
/// strokes reach the other members with their number; cursors carry the member; bad input gets its error.
#[tokio::test]
async fn boards_relay_strokes_cursors_and_presence_within_their_bounds() {
    let app = start_example("whiteboard", &["--port", "0"]).await;
    let long_name = "x".repeat(33);
    assert_eq!(
        refused_status(format!("ws://{}/ws?token={long_name}", app.addr)).await,
        401
    );

    let mut ann = connect(&app, "ann").await;
    let bad = ann.ask("join", json!({"board": "no spaces"}), 1).await;
    assert_eq!(bad["data"]["code"], "invalid_data", "{bad}");
    let joined = ann.ask("join", json!({"board": "b1"}), 2).await;
    assert_eq!(joined["data"]["strokes"], json!([]));
    assert_eq!(joined["data"]["members"].as_array().unwrap().len(), 1);
    let ann_id = joined["data"]["you"]["id"].clone();

    let mut bob = connect(&app, "bob").await;
    bob.ask("join", json!({"board": "b1"}), 1).await;
    assert_eq!(members_until(&mut ann, 2).await, ["ann", "bob"]);

    let stroke = json!({"color": "#ff0000", "width": 3, "points": line(3)});
    ann.send_json(json!({"type": "stroke", "data": stroke}))
        .await;
    let got = bob.next_of("stroke").await;
    assert_eq!(
        got["data"],
        json!({"id": 1, "user": "ann", "color": "#ff0000", "width": 3, "points": line(3)})
    );

    // Bounds: each answered with an error frame, the connection kept.
    for (bad, what) in [
        (
            json!({"color": "red", "width": 3, "points": line(2)}),
            "color",
        ),
        (
            json!({"color": "#ff0000", "width": 33, "points": line(2)}),
            "width",
        ),
        (
            json!({"color": "#ff0000", "width": 3, "points": line(1001)}),
            "points",
        ),
        (
            json!({"color": "#ff0000", "width": 3, "points": [{"x": 5000, "y": 1}]}),
            "coordinate",
        ),
    ] {
        ann.send_json(json!({"type": "stroke", "data": bad})).await;
        let err = ann.next_of("$error").await;
        assert_eq!(err["data"]["code"], "invalid_data", "{what}: {err}");
    }

    // Cursors carry the member; one out of range is not relayed.
    ann.send_json(json!({"type": "cursor", "data": {"x": -1, "y": 5}}))
        .await;
    ann.send_json(json!({"type": "cursor", "data": {"x": 40, "y": 50}}))
        .await;
    let cursor = bob.next_of("cursor").await;
    assert_eq!(
        (
            &cursor["data"]["id"],
            &cursor["data"]["x"],
            &cursor["data"]["user"]
        ),
        (&ann_id, &json!(40), &json!("ann"))
    );

    // A late joiner gets the strokes; a move to another board and a disconnect update the list.
    let mut cid = connect(&app, "cid").await;
    let joined = cid.ask("join", json!({"board": "b1"}), 1).await;
    assert_eq!(joined["data"]["strokes"].as_array().unwrap().len(), 1);
    assert_eq!(members_until(&mut bob, 3).await, ["ann", "bob", "cid"]);
    cid.ask("join", json!({"board": "b2"}), 2).await;
    assert_eq!(members_until(&mut bob, 2).await, ["ann", "bob"]);
    ann.close().await;
    assert_eq!(members_until(&mut bob, 1).await, ["bob"]);
}

/// The names of the next member list of `n` members (presence is latest-value: a newer list may replace
/// one that was still waiting).
async fn members_until(client: &mut WsClient, n: usize) -> Vec<String> {
    loop {
        let presence = client.next_of("presence").await;
        let members = presence["data"]["members"].as_array().unwrap();
        if members.len() == n {
            return members
                .iter()
                .map(|m| m["user"].as_str().unwrap().to_owned())
                .collect();
        }
    }
}

/// README "The whiteboard": at most 100 boards are kept; when all have members, a new one is refused with
/// `limit_exceeded`, and once one is empty it makes room.
#[tokio::test]
async fn boards_past_the_limit_are_refused_until_one_is_empty() {
    let app = start_example("whiteboard", &["--port", "0"]).await;
    let mut holders = Vec::new();
    for i in 0..100 {
        let mut c = connect(&app, &format!("u{i}")).await;
        let joined = c.ask("join", json!({"board": format!("b{i}")}), 1).await;
        assert_eq!(joined["type"], "$reply", "{joined}");
        holders.push(c);
    }
    let mut late = connect(&app, "late").await;
    let refused = late.ask("join", json!({"board": "one-more"}), 1).await;
    assert_eq!(refused["data"]["code"], "limit_exceeded", "{refused}");
    // An existing board can still be joined.
    let joined = late.ask("join", json!({"board": "b7"}), 2).await;
    assert_eq!(joined["type"], "$reply");

    holders.swap_remove(3).close().await;
    let mut attempt = 3;
    loop {
        let answer = late
            .ask("join", json!({"board": "one-more"}), attempt)
            .await;
        if answer["type"] == "$reply" {
            break;
        }
        // The closed client's board empties once its disconnect is processed.
        assert!(attempt < 100, "{answer}");
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
