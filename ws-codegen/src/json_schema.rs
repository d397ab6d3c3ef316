//! JSON Schema (draft 2020-12) of whole frames: one document per direction (`oneOf` the frame types,
//! system frames included) and one per message. Frames are described exactly as the server reads and
//! writes them: `type` is a constant, `data` the payload (optional, and then `null`, for unit payloads),
//! `id` an integer below 2^53; keys the server ignores (`from` sent by a client, unknown keys) are allowed.

use serde_json::{Map, Value, json};
use ws_core::protocol::MAX_REQUEST_ID;

use crate::protocol::{DirectionDef, MessageDef};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Which side sends the frames a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

fn request_id() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_REQUEST_ID})
}

/// The envelope of one message type.
pub(crate) fn frame(message: &MessageDef, side: Side) -> Value {
    let mut properties = Map::new();
    properties.insert("type".into(), json!({"const": message.name}));
    properties.insert("data".into(), message.data_schema.clone());
    match side {
        Side::Client => {
            properties.insert("id".into(), request_id());
            properties.insert("target".into(), json!({"type": "string"}));
        }
        Side::Server => {
            properties.insert("from".into(), json!({"type": "string"}));
            properties.insert("target".into(), json!({"type": "string"}));
            properties.insert("pos".into(), position());
            if message.reply_schema.is_some() {
                properties.insert("id".into(), request_id());
            }
        }
    }
    let required: Vec<&str> = if message.unit {
        vec!["type"]
    } else {
        vec!["type", "data"]
    };
    json!({
        "title": message.name,
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

fn error_body() -> Value {
    json!({
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        "required": ["code", "message"],
    })
}

/// Where a frame of a group with history stands in it (`pos` in the envelope).
fn position() -> Value {
    json!({
        "type": "object",
        "properties": {
            "group": {"type": "string"},
            "epoch": {"type": "string"},
            "offset": {"type": "integer", "minimum": 1},
        },
        "required": ["group", "epoch", "offset"],
    })
}

/// A system frame: `type` and the schema of its `data`.
fn system(name: &str, data: Value, id: bool) -> (String, Value) {
    let mut properties = Map::new();
    properties.insert("type".into(), json!({"const": name}));
    properties.insert("data".into(), data);
    if id {
        properties.insert("id".into(), request_id());
    }
    let frame = json!({
        "title": name,
        "type": "object",
        "properties": properties,
        "required": ["type", "data"],
    });
    (name.to_owned(), frame)
}

/// The frames of history and presence (`ws_core::history`, `ws_core::presence`), sent when the server
/// has them.
fn history_and_presence_frames(side: Side) -> Vec<(String, Value)> {
    let count = json!({"type": "integer", "minimum": 0});
    // Member id → the meta the server's presence function gives it.
    let members = json!({"type": "object"});
    match side {
        Side::Client => vec![
            system(
                "$positions",
                json!({
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "epoch": {"type": "string"},
                            "offset": {"type": "integer", "minimum": 0},
                        },
                        "required": ["epoch", "offset"],
                    },
                }),
                true,
            ),
            system(
                "$history",
                json!({
                    "type": "object",
                    "properties": {"group": {"type": "string"}, "since": {"type": "integer", "minimum": 0}},
                    "required": ["group"],
                }),
                true,
            ),
        ],
        Side::Server => vec![
            system(
                "$position",
                json!({
                    "type": "object",
                    "properties": {
                        "group": {"type": "string"},
                        "epoch": {"type": "string"},
                        "offset": {"type": "integer", "minimum": 0},
                        "recovered": {"type": "boolean"},
                        "reason": {"enum": ["expired", "epoch", "unavailable"]},
                    },
                    "required": ["group"],
                }),
                false,
            ),
            system(
                "$presence_state",
                json!({
                    "type": "object",
                    "properties": {"group": {"type": "string"}, "count": count, "members": members},
                    "required": ["group", "count"],
                }),
                false,
            ),
            system(
                "$presence_diff",
                json!({
                    "type": "object",
                    "properties": {
                        "group": {"type": "string"},
                        "count": count,
                        "joins": members,
                        "leaves": members,
                    },
                    "required": ["group", "count"],
                }),
                false,
            ),
        ],
    }
}

/// The frames of sessions (`ws_core::session`): the client's `$refresh` request, the server's `$session`
/// and `$left`.
fn session_frames(side: Side) -> Vec<(String, Value)> {
    match side {
        Side::Client => vec![system(
            "$refresh",
            json!({
                "type": "object",
                "properties": {"token": {"type": "string", "maxLength": 8192}},
                "required": ["token"],
            }),
            true,
        )],
        Side::Server => vec![
            system(
                "$session",
                json!({
                    "type": "object",
                    "properties": {"expires_in_ms": {"type": ["integer", "null"], "minimum": 0}},
                    "required": ["expires_in_ms"],
                }),
                false,
            ),
            system(
                "$left",
                json!({
                    "type": "object",
                    "properties": {
                        "group": {"type": "string"},
                        "reason": {"enum": ["expired", "unauthorized"]},
                    },
                    "required": ["group", "reason"],
                }),
                false,
            ),
        ],
    }
}

/// The frames every server and client may send besides their messages: `$reply` and `$error` (answers to
/// requests either way), `$ping`/`$pong`, and those of history, presence and sessions.
pub(crate) fn system_frames(side: Side) -> Vec<(String, Value)> {
    let reply = json!({
        "title": "$reply",
        "type": "object",
        "properties": {"type": {"const": "$reply"}, "id": request_id(), "data": true},
        "required": ["type", "id", "data"],
    });
    let error = json!({
        "title": "$error",
        "type": "object",
        "properties": {"type": {"const": "$error"}, "id": request_id(), "data": error_body()},
        "required": match side {
            Side::Client => json!(["type", "id", "data"]),
            Side::Server => json!(["type", "data"]),
        },
    });
    let mut frames = vec![("$reply".to_owned(), reply), ("$error".to_owned(), error)];
    match side {
        Side::Client => frames.push((
            "$ping".to_owned(),
            json!({"title": "$ping", "type": "object", "properties": {"type": {"const": "$ping"}}, "required": ["type"]}),
        )),
        Side::Server => frames.push((
            "$pong".to_owned(),
            json!({"title": "$pong", "type": "object", "properties": {"type": {"const": "$pong"}}, "required": ["type"]}),
        )),
    }
    frames.extend(history_and_presence_frames(side));
    frames.extend(session_frames(side));
    frames
}

/// Every frame one side sends, as one document.
pub(crate) fn direction(def: &DirectionDef, side: Side, title: &str, comment: &str) -> Value {
    let mut defs = def.definitions.clone();
    let mut one_of = Vec::new();
    let frames = def
        .messages
        .iter()
        .map(|m| (m.name.to_owned(), frame(m, side)))
        .chain(system_frames(side));
    for (name, frame) in frames {
        let key = format!("frame:{name}");
        one_of.push(json!({"$ref": format!("#/$defs/{key}")}));
        defs.insert(key, frame);
    }
    json!({
        "$schema": DRAFT,
        "$comment": comment,
        "title": title,
        "oneOf": one_of,
        "$defs": defs,
    })
}

/// One message's frame with the definitions it uses, as its own document.
pub(crate) fn message(
    def: &DirectionDef,
    message: &MessageDef,
    side: Side,
    comment: &str,
) -> Value {
    let Value::Object(mut doc) = frame(message, side) else {
        unreachable!("frame() builds an object")
    };
    doc.insert("$schema".into(), json!(DRAFT));
    doc.insert("$comment".into(), json!(comment));
    doc.insert("$defs".into(), Value::Object(def.definitions.clone()));
    // The reply's `data`, when the message is a request: what the compatibility report compares.
    if let Some(reply) = &message.reply_schema {
        doc.insert("x-reply".into(), reply.clone());
    }
    // One item's `data`, when the request is answered with a stream of `$chunk` frames.
    if let Some(item) = &message.item_schema {
        doc.insert("x-stream".into(), item.clone());
    }
    Value::Object(doc)
}
