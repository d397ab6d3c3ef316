//! What nodes say to each other: one JSON header line, then, for deliveries, the frame's text as it is.
//!
//! The frame is not embedded in the JSON header because that would escape every quote of it on the way out
//! and unescape it on the way in; after the newline it travels byte for byte and becomes the frame the
//! receiving node's clients get.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::client::id::ClientId;
use crate::delivery::{Delivery, LatestKey};
use crate::protocol::Frame;
use crate::stream::StreamOrder;

/// The version of everything below, part of every channel and key name and of every header: nodes of
/// different versions on one Redis do not see each other, and a packet of another version is ignored.
pub(crate) const WIRE_VERSION: u32 = 3;

/// One operation, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Op {
    /// Deliver the body to every client but those in `except`.
    Broadcast {
        #[serde(with = "except")]
        except: Vec<String>,
    },
    /// Deliver the body to every member of a group but those in `except`.
    Group {
        group: String,
        #[serde(with = "except")]
        except: Vec<String>,
    },
    /// Deliver the body to the members of a group with history but those in `except`. The history script adds
    /// `epoch` and `offset`, the frame's position, to the header the node wrote, keeps the packet in the
    /// group's stream and publishes it.
    History {
        group: String,
        #[serde(with = "except")]
        except: Vec<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        epoch: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        offset: u64,
    },
    /// Deliver the body to one client (published on its node's channel).
    Direct { to: String },
    /// Asks the node holding `id` (on its channel) to add it to a group.
    JoinRequest { group: String, id: String },
    /// Asks the node holding `id` (on its channel) to remove it from a group.
    LeaveRequest { group: String, id: String },
    /// Close connections on every node: one client, or every client of a user; with `revoked_until_ms`
    /// (Unix milliseconds; 0: none), also refuse that user's credentials issued before `revoked_at_ms`.
    Disconnect {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        code: u16,
        reason: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        revoked_at_ms: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        revoked_until_ms: u64,
    },
    /// A stream order (`ws_core::stream::StreamOrder`): `kind` `resume`, `answered` or `cancel`, about
    /// the stream `reader` (a client of the publishing node for `resume` and `cancel`) reads with request
    /// `id`. Nodes of this wire version that came before streams ignore the packet.
    Stream {
        kind: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        key: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        after: u64,
        reader: String,
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// A membership change of the publishing node.
    Change(Change),
    /// The publishing node is alive; `seq` is its latest membership change.
    Heartbeat,
    /// The publishing node is leaving.
    Bye,
}

/// The clients a delivery leaves out, as the header carries them: `null` for none, a string for one (what
/// every node of this wire version reads), an array for more.
mod except {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(ids: &[String], s: S) -> Result<S::Ok, S::Error> {
        match ids {
            [] => s.serialize_none(),
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Ids {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<Ids>::deserialize(d)? {
            None => Vec::new(),
            Some(Ids::One(id)) => vec![id],
            Some(Ids::Many(ids)) => ids,
        })
    }
}

/// The ids a delivery leaves out, for its header.
pub(super) fn except_ids(except: &[ClientId]) -> Vec<String> {
    except.iter().map(ToString::to_string).collect()
}

/// The ids a header leaves out, for this node's delivery.
pub(super) fn client_ids(except: &[String]) -> Vec<ClientId> {
    except.iter().cloned().map(ClientId::from).collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A membership change; applying one twice has the effect of applying it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(super) enum Change {
    Connect {
        id: String,
        /// The client's presence meta, when the server has presence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<serde_json::Value>,
    },
    Disconnect {
        id: String,
    },
    Join {
        group: String,
        id: String,
    },
    Leave {
        group: String,
        id: String,
    },
}

impl Change {
    /// The client the change is about.
    pub(super) fn id(&self) -> &str {
        match self {
            Self::Connect { id, .. }
            | Self::Disconnect { id }
            | Self::Join { id, .. }
            | Self::Leave { id, .. } => id,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header<'a> {
    v: u32,
    #[serde(borrow)]
    node: Cow<'a, str>,
    seq: u64,
    /// The body is a binary frame (raw mode) rather than text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    binary: bool,
    /// The body is a volatile frame.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    volatile: bool,
    /// The body is a latest-value frame with this key.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    latest: Option<Cow<'a, str>>,
    /// When the publishing node queued the delivery, in milliseconds since the Unix epoch by its clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(flatten)]
    op: Op,
}

/// A decoded packet.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Packet {
    pub(super) node: String,
    pub(super) seq: u64,
    pub(super) op: Op,
    /// When the publishing node queued a delivery (Unix milliseconds, its clock).
    pub(super) sent_ms: Option<u64>,
    binary: bool,
    delivery: Delivery,
    body: Bytes,
}

impl Packet {
    /// The frame a delivery carries; `None` for a text body that is not UTF-8.
    pub(super) fn frame(&self) -> Option<Frame> {
        let frame = if self.binary {
            Some(Frame::binary(self.body.clone()))
        } else {
            Frame::text_from_bytes(self.body.clone())
        };
        frame.map(|f| f.with_delivery(self.delivery.clone()))
    }
}

/// Header line, newline, the frame's payload (none for operations that deliver nothing).
/// The header's fields other than `op`'s and `latest`'s value, at their longest, with the newline:
/// `{"v":4294967295,"node":"<32 hex>","seq":18446744073709551615,"binary":true,"volatile":true,"latest":,`
/// `"ts":18446744073709551615,}`.
const HEADER_MAX: usize = 160;

/// The longest a packet of `op` carrying `frame` can be, as [`encode`] writes it.
pub(super) fn packet_len(op: &Op, frame: Option<&Frame>) -> usize {
    let body = frame.map_or(0, |f| match &f.message {
        Message::Text(text) => text.len(),
        Message::Binary(data) => data.len(),
        _ => 0,
    });
    let latest = match frame.map(Frame::delivery) {
        Some(Delivery::Latest(key)) => crate::protocol::json_len(key.text()),
        _ => 0,
    };
    HEADER_MAX + crate::protocol::json_len(op) + latest + body
}

/// The longest a packet of a membership change can be.
pub(super) fn change_len(change: &Change) -> usize {
    // `Op::Change` writes the change's fields after `"op":"change"`.
    HEADER_MAX + r#"{"op":"change"}"#.len() + crate::protocol::json_len(change)
}

/// `sent_ms` is when a delivery was queued (Unix milliseconds), for the receiving node's lag histogram.
pub(super) fn encode(
    node: &str,
    seq: u64,
    op: Op,
    frame: Option<&Frame>,
    sent_ms: Option<u64>,
) -> Vec<u8> {
    let (body, binary) = match frame.map(|f| &f.message) {
        Some(Message::Text(text)) => (text.as_bytes(), false),
        Some(Message::Binary(data)) => (&data[..], true),
        _ => (&[][..], false),
    };
    let delivery = frame.map(Frame::delivery);
    let header = Header {
        v: WIRE_VERSION,
        node: Cow::Borrowed(node),
        seq,
        binary,
        volatile: delivery == Some(&Delivery::Volatile),
        latest: match delivery {
            Some(Delivery::Latest(key)) => Some(Cow::Borrowed(key.text())),
            _ => None,
        },
        ts: sent_ms,
        op,
    };
    // A struct of strings and integers always serializes.
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.reserve_exact(1 + body.len());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The packet of a frame for a group with history, split where the history script inserts the position:
/// the header without its closing brace, and the rest (`}`, the newline, the frame's payload).
pub(super) fn encode_history(
    node: &str,
    seq: u64,
    group: &str,
    except: Vec<String>,
    frame: &Frame,
    sent_ms: u64,
) -> (Vec<u8>, Vec<u8>) {
    let op = Op::History {
        group: group.to_owned(),
        except,
        epoch: String::new(),
        offset: 0,
    };
    let mut head = encode(node, seq, op, Some(frame), Some(sent_ms));
    // The header is a JSON object on the first line: its last byte before the newline is its brace.
    let split = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let tail = head.split_off(split.saturating_sub(1));
    (head, tail)
}

/// `None` for anything that is not a packet (another program publishing on the channel).
pub(super) fn decode(payload: &[u8]) -> Option<Packet> {
    let split = payload.iter().position(|&b| b == b'\n')?;
    let header: Header<'_> = serde_json::from_slice(&payload[..split]).ok()?;
    if header.v != WIRE_VERSION {
        return None;
    }
    Some(Packet {
        node: header.node.into_owned(),
        seq: header.seq,
        op: header.op,
        sent_ms: header.ts,
        binary: header.binary,
        delivery: match (header.volatile, header.latest) {
            (_, Some(key)) => Delivery::Latest(LatestKey::from_text(key.into_owned())),
            (true, None) => Delivery::Volatile,
            (false, None) => Delivery::Reliable,
        },
        body: Bytes::copy_from_slice(&payload[split + 1..]),
    })
}

/// A node's membership, as read from its key: enough for another node to rebuild its replica.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Membership {
    pub(super) seq: u64,
    pub(super) clients: Vec<String>,
    pub(super) groups: BTreeMap<String, Vec<String>>,
    /// Presence meta (JSON text) of the clients that have one.
    pub(super) meta: BTreeMap<String, String>,
}

/// The hash field holding the number of the latest change the key reflects.
pub(super) const SEQ_FIELD: &str = "$seq";

/// The value stored for one client: its groups as a JSON array, or `{"groups": [...], "meta": ...}` for a
/// client with presence meta (JSON text).
pub(super) fn client_field(groups: &[String], meta: Option<&str>) -> Vec<u8> {
    // A list of strings always serializes.
    let groups = serde_json::to_vec(groups).unwrap_or_default();
    let Some(meta) = meta else {
        return groups;
    };
    let mut field = Vec::with_capacity(groups.len() + meta.len() + 20);
    field.extend_from_slice(b"{\"groups\":");
    field.extend_from_slice(&groups);
    field.extend_from_slice(b",\"meta\":");
    field.extend_from_slice(meta.as_bytes());
    field.push(b'}');
    field
}

#[derive(Deserialize)]
struct ClientEntry {
    groups: Vec<String>,
    meta: Box<serde_json::value::RawValue>,
}

/// A membership from the fields of a node's key (`HGETALL`); `None` for a key that does not exist (no
/// fields) or has no number. Fields that do not parse are skipped.
pub(super) fn membership_from_fields(fields: Vec<(String, Vec<u8>)>) -> Option<Membership> {
    let mut membership = Membership::default();
    let mut seq = None;
    for (field, value) in fields {
        if field == SEQ_FIELD {
            seq = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse().ok());
            continue;
        }
        let groups = match serde_json::from_slice::<Vec<String>>(&value) {
            Ok(groups) => groups,
            Err(_) => match serde_json::from_slice::<ClientEntry>(&value) {
                Ok(entry) => {
                    membership
                        .meta
                        .insert(field.clone(), entry.meta.get().to_owned());
                    entry.groups
                }
                Err(_) => continue,
            },
        };
        for group in groups {
            membership
                .groups
                .entry(group)
                .or_default()
                .push(field.clone());
        }
        membership.clients.push(field);
    }
    membership.seq = seq?;
    Some(membership)
}

/// A duration in whole milliseconds, as the wire and the scripts count time.
pub(super) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Now, in milliseconds since the Unix epoch (0 on a clock set before it): the `ts` of a packet.
/// `at` in Unix milliseconds (0 before the epoch).
pub(super) fn system_millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ms` Unix milliseconds as a time.
pub(super) fn from_millis(ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

pub(super) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A stream order as published.
pub(super) fn stream_op(order: &StreamOrder) -> Op {
    let (kind, key, after, reader, id, user) = match order {
        StreamOrder::Resume {
            key,
            after,
            reader,
            id,
            user,
        } => ("resume", key.clone(), *after, reader, *id, user.clone()),
        StreamOrder::Answered { reader, id } => ("answered", String::new(), 0, reader, *id, None),
        StreamOrder::Cancel { reader, id } => ("cancel", String::new(), 0, reader, *id, None),
    };
    Op::Stream {
        kind: kind.to_owned(),
        key,
        after,
        reader: reader.to_string(),
        id,
        user,
    }
}

/// The stream order a published one stands for; `None` for a kind this node does not know.
pub(super) fn stream_order(
    kind: &str,
    key: String,
    after: u64,
    reader: String,
    id: u64,
    user: Option<String>,
) -> Option<StreamOrder> {
    let reader = ClientId::from(reader);
    match kind {
        "resume" => Some(StreamOrder::Resume {
            key,
            after,
            reader,
            id,
            user,
        }),
        "answered" => Some(StreamOrder::Answered { reader, id }),
        "cancel" => Some(StreamOrder::Cancel { reader, id }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_is_read_back_from_its_fields() {
        let field = |k: &str, v: &[u8]| (k.to_owned(), v.to_vec());
        let fields = vec![
            field("c1", &client_field(&["g".into(), "h".into()], None)),
            field(SEQ_FIELD, b"7"),
            field("c2", b"[]"),
            field("c3", b"not json"),
            field(
                "c4",
                &client_field(&["g".into()], Some(r#"{"name":"a\"b"}"#)),
            ),
        ];
        let membership = membership_from_fields(fields).unwrap();
        assert_eq!(membership.seq, 7);
        assert_eq!(membership.clients, ["c1", "c2", "c4"]);
        assert_eq!(membership.groups["g"], ["c1", "c4"]);
        assert_eq!(membership.meta["c4"], r#"{"name":"a\"b"}"#);
        assert_eq!(membership.meta.len(), 1);
        assert_eq!(membership.groups["h"], ["c1"]);
        assert_eq!(membership_from_fields(Vec::new()), None);
        assert_eq!(membership_from_fields(vec![field("c1", b"[]")]), None);
    }

    #[test]
    fn queued_sizes_bound_the_encoded_packets() {
        let node = "f".repeat(32);
        let long = "g\n\"".repeat(500);
        let frame = Frame::envelope("t", &"x".repeat(300)).with_delivery(Delivery::latest(&long));
        let op = Op::Group {
            group: long.clone(),
            except: vec![long.clone()],
        };
        let encoded = encode(&node, u64::MAX, op.clone(), Some(&frame), Some(u64::MAX)).len();
        assert!(packet_len(&op, Some(&frame)) >= encoded);
        assert!(packet_len(&op, Some(&frame)) < encoded + 64);
        let change = Change::Join {
            group: long.clone(),
            id: long,
        };
        let encoded = encode(&node, u64::MAX, Op::Change(change.clone()), None, None).len();
        assert!(change_len(&change) >= encoded);
        assert!(change_len(&change) < encoded + 128);
    }

    #[test]
    fn packets_round_trip_with_the_body_untouched() {
        let ops = [
            Op::Broadcast { except: Vec::new() },
            Op::Group {
                group: "room\n\"1\"".into(),
                except: vec!["abc".into()],
            },
            Op::Direct { to: "abc".into() },
            Op::JoinRequest {
                group: "g".into(),
                id: "abc".into(),
            },
            Op::Change(Change::Join {
                group: "g".into(),
                id: "abc".into(),
            }),
            Op::History {
                group: "g".into(),
                except: Vec::new(),
                epoch: "e1".into(),
                offset: 9,
            },
            Op::Heartbeat,
            Op::Bye,
        ];
        let text = Frame::text(r#"{"type":"chat","data":{"text":"a\nb \"q\""}}"#);
        let cursor = Frame::text(r#"{"type":"cursor","data":{"user":"ann"}}"#)
            .with_delivery(Delivery::latest_by("cursor", "ann"));
        let typing = Frame::text(r#"{"type":"typing"}"#).with_delivery(Delivery::Volatile);
        for frame in [&cursor, &typing] {
            let packet = decode(&encode(
                "n",
                1,
                Op::Broadcast { except: Vec::new() },
                Some(frame),
                None,
            ))
            .unwrap();
            assert_eq!(
                packet.frame().as_ref(),
                Some(frame),
                "the delivery policy crosses nodes"
            );
        }
        for op in ops {
            let bytes = encode("node1", 7, op.clone(), Some(&text), Some(1_700_000_000_123));
            let packet = decode(&bytes).unwrap();
            assert_eq!(packet.node, "node1");
            assert_eq!(packet.seq, 7);
            assert_eq!(packet.sent_ms, Some(1_700_000_000_123));
            assert_eq!(packet.op, op);
            assert_eq!(packet.frame(), Some(text.clone()));
        }
        let binary = Frame::binary(vec![0u8, 10, 255]);
        let packet = decode(&encode(
            "n",
            0,
            Op::Broadcast { except: Vec::new() },
            Some(&binary),
            None,
        ))
        .unwrap();
        assert_eq!(packet.frame(), Some(binary));
        let packet = decode(&encode("n", 3, Op::Heartbeat, None, None)).unwrap();
        assert_eq!((packet.seq, packet.op), (3, Op::Heartbeat));
    }

    #[test]
    fn the_clients_left_out_are_null_one_string_or_an_array() {
        let header = |except: Vec<String>| {
            let op = Op::Group {
                group: "g".into(),
                except,
            };
            let bytes = encode("n", 1, op.clone(), None, None);
            assert_eq!(decode(&bytes).unwrap().op, op);
            let line = bytes.split(|&b| b == b'\n').next().unwrap().to_vec();
            let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
            value["except"].clone()
        };
        assert_eq!(header(Vec::new()), serde_json::Value::Null);
        assert_eq!(header(vec!["a".into()]), serde_json::json!("a"));
        assert_eq!(
            header(vec!["a".into(), "b".into()]),
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn the_history_script_completes_the_header_with_the_position() {
        let frame = Frame::text(r#"{"type":"chat","data":"}\n"}"#);
        let (head, tail) = encode_history("n", 4, "room", vec!["c".into()], &frame, 1);
        // What the script does, with the epoch and offset it assigns.
        let mut packet = head;
        packet.extend_from_slice(br#","epoch":"e7","offset":12"#);
        packet.extend_from_slice(&tail);
        let packet = decode(&packet).unwrap();
        assert_eq!(
            packet.op,
            Op::History {
                group: "room".into(),
                except: vec!["c".into()],
                epoch: "e7".into(),
                offset: 12
            }
        );
        assert_eq!(packet.frame(), Some(frame));
    }

    #[test]
    fn foreign_payloads_are_ignored() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"{\"node\":1}\nbody"), None);
        assert_eq!(
            decode(b"{\"v\":3,\"node\":\"n\",\"seq\":1,\"op\":\"nope\"}\n"),
            None
        );
        let heartbeat = encode("n", 1, Op::Heartbeat, None, None);
        assert!(heartbeat.starts_with(b"{\"v\":3,"));
        assert!(decode(&heartbeat).is_some());
        // Another wire version, or none: ignored.
        assert_eq!(
            decode(b"{\"v\":2,\"node\":\"n\",\"seq\":1,\"op\":\"heartbeat\"}\n"),
            None
        );
        assert_eq!(
            decode(b"{\"node\":\"n\",\"seq\":1,\"op\":\"heartbeat\"}\n"),
            None
        );
    }
}
