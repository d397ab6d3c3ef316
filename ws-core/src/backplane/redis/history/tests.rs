//! Recovery's rules over an in-memory copy of what Redis keeps: the frames a member is given, in order
//! and once, when frames arrive out of order, twice, or from a new history, when a client comes back
//! with a position, and when it asks for the kept frames. The end-to-end tests run the same rules
//! against a real Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::group::GroupRegistry;
use crate::member::Limits;
use crate::registry::ClientRegistry;
use crate::send_queue::Bounds;
use crate::stats::Stats;

/// What Redis keeps, in memory: per group, its epoch and its frames in offset order.
#[derive(Default)]
struct MemoryStreams {
    groups: HashMap<String, (String, Vec<Entry>)>,
    /// Whether a group without history may get one.
    room: bool,
    /// The reads made, so a test can tell a recovery served from the node's recent copy.
    reads: usize,
    /// At most this many frames per read, as `XRANGE ... COUNT` gives.
    count: usize,
}

impl MemoryStreams {
    fn new(count: usize) -> Self {
        Self {
            room: true,
            count,
            ..Self::default()
        }
    }

    /// Keeps `text` as frame `offset` of `group`'s history `epoch`, sent at `sent_ms`.
    fn keep(&mut self, group: &str, epoch: &str, offset: u64, sent_ms: u64, text: &str) -> Entry {
        let entry = entry(epoch, offset, sent_ms, text);
        let (kept_epoch, frames) = self.groups.entry(group.to_owned()).or_default();
        if kept_epoch != epoch {
            epoch.clone_into(kept_epoch);
            frames.clear();
        }
        frames.push(entry.clone());
        entry
    }
}

impl Streams for MemoryStreams {
    async fn head(&mut self, group: &str) -> Result<Option<(String, u64)>, RedisError> {
        Ok(self
            .groups
            .get(group)
            .map(|(epoch, frames)| (epoch.clone(), frames.last().map_or(0, |e| e.offset))))
    }

    async fn has_room(&mut self, _group: &str) -> Result<bool, RedisError> {
        Ok(self.room)
    }

    async fn read(
        &mut self,
        group: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Entry>, RedisError> {
        self.reads += 1;
        let Some((_, frames)) = self.groups.get(group) else {
            return Ok(Vec::new());
        };
        Ok(frames
            .iter()
            .filter(|e| e.offset >= from && to.is_none_or(|to| e.offset <= to))
            .take(self.count)
            .cloned()
            .collect())
    }
}

fn entry(epoch: &str, offset: u64, sent_ms: u64, text: &str) -> Entry {
    Entry {
        epoch: epoch.to_owned(),
        offset,
        except: Vec::new(),
        sent_ms: Some(sent_ms),
        frame: Frame::envelope("chat", &json!({ "text": text })),
    }
}

/// One node's history bookkeeping and memory backplane, with history kept for every group.
struct Node {
    state: HistoryState,
    local: MemoryBackplane,
    clients: Arc<ClientRegistry>,
    _commands: mpsc::Receiver<Command>,
}

fn node(history: History) -> Node {
    let (commands, receiver) = mpsc::channel(16);
    let keys = RedisConfig::new("redis://127.0.0.1:1").expect("a valid URL");
    let state = HistoryState::new("n".to_owned(), keys, commands);
    state.kept.set(history).expect("set once");
    let clients = Arc::new(ClientRegistry::default());
    let groups = Arc::new(GroupRegistry::new(16, 64));
    let fanout = crate::metrics::latency_histogram();
    let policy = Arc::new(crate::session::policy::Policy {
        revocations: crate::session::Revocations::new(16),
        authorize: None,
    });
    let local = MemoryBackplane::new(clients.clone(), groups, fanout, policy);
    Node {
        state,
        local,
        clients,
        _commands: receiver,
    }
}

impl Node {
    /// A member of `group` on this node.
    fn member(&self, group: &str) -> Member {
        let limits = Limits {
            queue: Bounds {
                max_bytes: 1 << 20,
                max_lag: Duration::from_secs(10),
                volatile_bytes: 1 << 20,
            },
            max_pending_requests: 8,
            max_metadata_bytes: 1024,
        };
        let stats = Arc::new(Stats::default());
        let member = self
            .clients
            .insert_new(|id| Member::new(id, limits, stats, None));
        self.local.join(group, &member).expect("joins");
        member
    }

    /// Runs a joining client's recovery as the subscriber does.
    async fn recover(
        &self,
        streams: &mut MemoryStreams,
        client: &Member,
        group: &str,
        wanted: Option<Position>,
    ) {
        let command = Command::Recover {
            client: client.clone(),
            group: group.to_owned(),
            wanted,
            joined_at: position_here(&self.state, group),
            joined_ms: unix_millis(),
        };
        run(&self.state, &self.local, streams, command, async |_| Ok(()))
            .await
            .expect("no Redis error");
    }

    /// Applies a frame received from the group's channel.
    async fn receive(&self, streams: &mut MemoryStreams, group: &str, entry: &Entry) {
        apply_entry(&self.state, &self.local, streams, group, entry.clone())
            .await
            .expect("no Redis error");
    }
}

/// The frames queued for `member`, as JSON.
fn received(member: &Member) -> Vec<Value> {
    std::iter::from_fn(|| member.queue().try_recv())
        .map(|message| serde_json::from_str(message.to_text().expect("text")).expect("JSON"))
        .collect()
}

/// The `(epoch, offset)` written in each chat frame, and the text it carries.
fn chats(frames: &[Value]) -> Vec<(String, u64, String)> {
    frames
        .iter()
        .filter(|f| f["type"] == "chat")
        .map(|f| {
            let pos = &f["pos"];
            (
                pos["epoch"].as_str().unwrap_or_default().to_owned(),
                pos["offset"].as_u64().unwrap_or_default(),
                f["data"]["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn chat(epoch: &str, offset: u64, text: &str) -> (String, u64, String) {
    (epoch.to_owned(), offset, text.to_owned())
}

fn position(epoch: &str, offset: u64) -> Position {
    Position {
        epoch: epoch.to_owned(),
        offset,
    }
}

#[tokio::test]
async fn a_client_back_with_its_position_gets_what_it_missed_after_the_position_frame() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    for (offset, text) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        streams.keep("room", "e1", offset, now, text);
    }
    let client = node.member("room");
    node.recover(&mut streams, &client, "room", Some(position("e1", 2)))
        .await;
    let frames = received(&client);
    assert_eq!(
        frames[0],
        json!({"type": "$position", "data": {"group": "room", "epoch": "e1", "offset": 4, "recovered": true}})
    );
    assert_eq!(
        chats(&frames[1..]),
        [chat("e1", 3, "c"), chat("e1", 4, "d")]
    );
}

#[tokio::test]
async fn a_position_in_another_history_is_not_recovered_and_nothing_is_replayed() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    streams.keep("room", "e2", 1, unix_millis(), "new");
    let client = node.member("room");
    node.recover(&mut streams, &client, "room", Some(position("e1", 7)))
        .await;
    let frames = received(&client);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["data"]["recovered"], false);
    assert_eq!(frames[0]["data"]["reason"], "epoch");
    assert_eq!(frames[0]["data"]["epoch"], "e2");
}

#[tokio::test]
async fn frames_past_the_history_age_are_not_replayed() {
    let node = node(History::new().max_age(Duration::from_secs(60)));
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    streams.keep("room", "e1", 1, now - 120_000, "old");
    streams.keep("room", "e1", 2, now - 90_000, "old too");
    streams.keep("room", "e1", 3, now, "fresh");
    let client = node.member("room");
    node.recover(&mut streams, &client, "room", Some(position("e1", 0)))
        .await;
    let frames = received(&client);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["data"]["recovered"], false);
    assert_eq!(frames[0]["data"]["reason"], "expired");
}

#[tokio::test]
async fn a_group_without_room_for_history_tells_the_client_it_is_unavailable() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    streams.room = false;
    let client = node.member("room");
    node.recover(&mut streams, &client, "room", Some(position("e1", 3)))
        .await;
    assert_eq!(
        received(&client),
        [
            json!({"type": "$position", "data": {"group": "room", "recovered": false, "reason": "unavailable"}})
        ]
    );
}

#[tokio::test]
async fn a_gap_in_the_received_frames_is_read_back_and_delivered_in_order_once() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    let first = streams.keep("room", "e1", 1, now, "a");
    let member = node.member("room");
    node.recover(&mut streams, &member, "room", None).await;
    received(&member);
    let second = streams.keep("room", "e1", 2, now, "b");
    let third = streams.keep("room", "e1", 3, now, "c");
    let fourth = streams.keep("room", "e1", 4, now, "d");
    // Frames 2 and 3 were lost on the way; 4 arrives, then 3 late, then 1 again.
    node.receive(&mut streams, "room", &fourth).await;
    node.receive(&mut streams, "room", &third).await;
    node.receive(&mut streams, "room", &first).await;
    assert_eq!(
        chats(&received(&member)),
        [chat("e1", 2, "b"), chat("e1", 3, "c"), chat("e1", 4, "d")]
    );
    node.receive(&mut streams, "room", &second).await;
    assert!(
        received(&member).is_empty(),
        "frame 2 was delivered already"
    );
}

#[tokio::test]
async fn a_new_history_is_delivered_from_its_first_frame() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    for offset in 1..=5 {
        streams.keep("room", "e1", offset, now, "old");
    }
    let member = node.member("room");
    node.recover(&mut streams, &member, "room", None).await;
    received(&member);
    streams.keep("room", "e2", 1, now, "x");
    let second = streams.keep("room", "e2", 2, now, "y");
    node.receive(&mut streams, "room", &second).await;
    assert_eq!(
        chats(&received(&member)),
        [chat("e2", 1, "x"), chat("e2", 2, "y")]
    );
}

#[tokio::test]
async fn a_rewound_history_goes_on_from_the_frame_that_took_a_delivered_number() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    let member = node.member("room");
    streams.keep("room", "e1", 1, now, "a");
    node.recover(&mut streams, &member, "room", None).await;
    received(&member);
    let second = entry("e1", 2, now, "b");
    node.receive(&mut streams, "room", &second).await;
    // Redis lost frame 2 in a failover and numbered another frame 2.
    let other = entry("e1", 2, now + 1, "b'");
    node.receive(&mut streams, "room", &other).await;
    node.receive(&mut streams, "room", &other).await;
    assert_eq!(
        chats(&received(&member)),
        [chat("e1", 2, "b"), chat("e1", 2, "b'")]
    );
}

#[tokio::test]
async fn a_second_client_recovers_from_the_nodes_recent_frames_without_reading_redis() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let now = unix_millis();
    streams.keep("room", "e1", 1, now, "a");
    let first = node.member("room");
    node.recover(&mut streams, &first, "room", None).await;
    for (offset, text) in [(2, "b"), (3, "c")] {
        let e = streams.keep("room", "e1", offset, now, text);
        node.receive(&mut streams, "room", &e).await;
    }
    let reads = streams.reads;
    let second = node.member("room");
    node.recover(&mut streams, &second, "room", Some(position("e1", 1)))
        .await;
    assert_eq!(streams.reads, reads, "served from the recent frames");
    let frames = received(&second);
    assert_eq!(frames[0]["data"]["recovered"], true);
    assert_eq!(
        chats(&frames[1..]),
        [chat("e1", 2, "b"), chat("e1", 3, "c")]
    );
}

#[tokio::test]
async fn a_history_request_gets_the_kept_frames_after_since_and_whether_they_are_complete() {
    let node = node(History::new().max_messages(2));
    let mut streams = MemoryStreams::new(2);
    let now = unix_millis();
    for (offset, text) in [(1, "a"), (2, "b"), (3, "c")] {
        streams.keep("room", "e1", offset, now, text);
    }
    let client = node.member("room");
    for since in [0, 1] {
        let command = Command::Fetch {
            client: client.clone(),
            id: 7,
            group: "room".to_owned(),
            since,
        };
        run(
            &node.state,
            &node.local,
            &mut streams,
            command,
            async |_| Ok(()),
        )
        .await
        .expect("no Redis error");
    }
    let replies = received(&client);
    let texts = |reply: &Value| -> Vec<Value> {
        reply["data"]["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|f| f["data"]["text"].clone())
            .collect()
    };
    // At most the history's frames per group in one answer: here 2, so from 0 it stops at frame 2.
    assert_eq!(replies[0]["type"], "$reply");
    assert_eq!(replies[0]["id"], 7);
    assert_eq!(texts(&replies[0]), [json!("a"), json!("b")]);
    assert_eq!(replies[1]["data"]["offset"], 3);
    assert_eq!(replies[1]["data"]["complete"], true);
    assert_eq!(texts(&replies[1]), [json!("b"), json!("c")]);
}

#[tokio::test]
async fn a_history_request_for_a_group_without_history_is_not_found() {
    let node = node(History::new());
    let mut streams = MemoryStreams::new(100);
    let client = node.member("room");
    let command = Command::Fetch {
        client: client.clone(),
        id: 9,
        group: "room".to_owned(),
        since: 0,
    };
    run(
        &node.state,
        &node.local,
        &mut streams,
        command,
        async |_| Ok(()),
    )
    .await
    .expect("no Redis error");
    let replies = received(&client);
    assert_eq!(replies[0]["type"], "$error");
    assert_eq!(replies[0]["id"], 9);
    assert_eq!(replies[0]["data"]["code"], "not_found");
}
