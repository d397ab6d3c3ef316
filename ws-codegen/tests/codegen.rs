//! The generated files against the wire: serde's output validates against the JSON Schema, frames the
//! schema rejects are the frames the server rejects (and the other way round), output is deterministic,
//! and `check` finds stale files.

use chat::protocol::{Inbound, Outbound, Purged, RoomJoined, WhoAmI};
use serde_json::{Value, json};
use ws_codegen::Codegen;
use ws_core::message::InboundMessages;
use ws_core::protocol::{MAX_REQUEST_ID, Message};

fn codegen() -> Codegen {
    Codegen::new("ws-core chat")
        .messages::<Inbound>()
        .messages::<Outbound>()
}

fn schema(path: &str) -> jsonschema::Validator {
    let file = codegen()
        .generate()
        .into_iter()
        .find(|f| f.path == path)
        .expect("generated");
    let schema: Value = serde_json::from_str(&file.contents).unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// What the server does with a client frame: `true` when it reaches a handler with its data decoded.
fn server_accepts(frame: &Value) -> bool {
    let Some(kind) = frame.get("type").and_then(Value::as_str) else {
        return false;
    };
    let id_ok = match frame.get("id") {
        None | Some(Value::Null) => true,
        Some(id) => id.as_u64().is_some_and(|id| id <= MAX_REQUEST_ID),
    };
    let target_ok = frame
        .get("target")
        .is_none_or(|t| t.is_string() || t.is_null());
    let data = frame
        .get("data")
        .map_or("null".to_owned(), Value::to_string);
    id_ok && target_ok && Inbound::decode(kind, &data).is_ok()
}

#[test]
fn serde_output_of_every_message_validates() {
    let client = schema("schema/client-to-server.json");
    let samples = [
        Inbound::Chat {
            text: "hi".into(),
            room: None,
        },
        Inbound::Chat {
            text: "hi".into(),
            room: Some("r".into()),
        },
        Inbound::Join { room: "r".into() },
        Inbound::Leave { room: "r".into() },
        Inbound::Dm {
            to: "c".into(),
            text: "t".into(),
        },
        Inbound::Typing { room: None },
        Inbound::Typing {
            room: Some("r".into()),
        },
        Inbound::Whoami,
        Inbound::AdminPurge,
    ];
    for sample in &samples {
        let mut frame = serde_json::to_value(sample).unwrap();
        assert!(client.is_valid(&frame), "{frame}");
        frame["id"] = json!(7);
        assert!(client.is_valid(&frame), "as a request: {frame}");
    }
    let server = schema("schema/server-to-client.json");
    let id = ws_core::ClientId::from("c1".to_owned());
    let outbound = [
        serde_json::to_value(Outbound::Welcome {
            client_id: "c".into(),
            message: "connected".into(),
        })
        .unwrap(),
        ws_core::message::IntoFrame::into_frame(
            Outbound::Chat {
                text: "t".into(),
                user: "u".into(),
                room: None,
            }
            .sent_by(&id),
        )
        .as_text()
        .map(|t| serde_json::from_str(t).unwrap())
        .unwrap(),
        serde_json::to_value(Outbound::Chat {
            text: "t".into(),
            user: "u".into(),
            room: Some("r".into()),
        })
        .unwrap(),
        serde_json::to_value(Outbound::Dm {
            text: "t".into(),
            user: "u".into(),
        })
        .unwrap(),
        serde_json::to_value(Outbound::Typing {
            user: "u".into(),
            room: Some("r".into()),
        })
        .unwrap(),
        json!({"type": "$reply", "id": 1, "data": RoomJoined { room: "r".into(), joined: true }}),
        json!({"type": "$reply", "id": 2, "data": WhoAmI { client_id: "c".into(), user: "u".into(), groups: vec![] }}),
        json!({"type": "$reply", "id": 3, "data": Purged { purged: true }}),
        json!({"type": "$error", "id": 4, "data": {"code": "forbidden", "message": "no"}}),
        json!({"type": "$error", "data": {"code": "invalid_data", "message": "bad"}}),
        json!({"type": "$pong"}),
    ];
    for frame in &outbound {
        assert!(server.is_valid(frame), "{frame}");
    }
    // Each per-message file accepts its own frames.
    for sample in &samples {
        let frame = serde_json::to_value(sample).unwrap();
        let name = frame["type"].as_str().unwrap().replace(':', "_");
        assert!(
            schema(&format!("schema/client-to-server/{name}.json")).is_valid(&frame),
            "{frame}"
        );
    }
}

/// Schema and server agree on every candidate frame: valid ones, and each way of being wrong.
#[test]
fn schema_and_server_agree_on_client_frames() {
    let client = schema("schema/client-to-server.json");
    let frames = [
        json!({"type": "chat", "data": {"text": "hi"}}),
        json!({"type": "chat", "data": {"text": "hi", "room": null}}),
        json!({"type": "chat", "data": {"text": "hi", "extra": 1}}),
        json!({"type": "chat", "data": {"text": "hi"}, "from": "spoofed", "target": "x"}),
        json!({"type": "chat", "data": {"text": 5}}),
        json!({"type": "chat", "data": {}}),
        json!({"type": "chat"}),
        json!({"type": "chat", "data": null}),
        json!({"type": "chat", "data": {"text": "hi"}, "id": -1}),
        json!({"type": "chat", "data": {"text": "hi"}, "id": 1.5}),
        json!({"type": "chat", "data": {"text": "hi"}, "id": MAX_REQUEST_ID}),
        json!({"type": "chat", "data": {"text": "hi"}, "id": MAX_REQUEST_ID + 1}),
        json!({"type": "chat", "data": {"text": "hi"}, "target": 3}),
        json!({"type": "whoami"}),
        json!({"type": "whoami", "data": null}),
        json!({"type": "whoami", "data": {}}),
        json!({"type": "whoami", "data": []}),
        json!({"type": "admin:purge", "id": 3}),
        json!({"type": "join", "data": {"room": "r"}}),
        json!({"type": "join", "data": {"room": ["r"]}}),
        json!({"type": "dm", "data": {"to": "c"}}),
        json!({"type": "nope", "data": {}}),
        json!({"data": {}}),
        json!({"type": 7}),
    ];
    for frame in &frames {
        assert_eq!(
            client.is_valid(frame),
            server_accepts(frame),
            "schema and server disagree on {frame}"
        );
    }
    // The cases that matter most really go both ways.
    assert!(
        client.is_valid(&frames[0])
            && !client.is_valid(&frames[15])
            && !client.is_valid(&frames[6])
    );
}

/// An untyped `Message` built by hand validates when it is one of the protocol's frames.
#[test]
fn untyped_messages_validate_too() {
    let server = schema("schema/server-to-client.json");
    let msg = Message::new("dm", json!({"text": "t", "user": "u"})).with_from("c1");
    assert!(server.is_valid(&serde_json::to_value(&msg).unwrap()));
    let wrong = Message::new("dm", json!({"text": "t"}));
    assert!(!server.is_valid(&serde_json::to_value(&wrong).unwrap()));
}

#[test]
fn output_is_deterministic_and_marked_generated() {
    let first = codegen().generate();
    assert_eq!(first, codegen().generate());
    for file in &first {
        assert!(
            file.contents.contains("Generated by ws-codegen"),
            "{}",
            file.path
        );
        assert!(file.contents.ends_with('\n'), "{}", file.path);
    }
    let paths: Vec<&str> = first.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths[0], "protocol.ts");
    assert!(paths.contains(&"schema/client-to-server/admin_purge.json"));
    assert_eq!(*paths.last().unwrap(), "asyncapi.json");
}

#[test]
fn check_names_stale_and_missing_files() {
    let dir = std::env::temp_dir().join(format!("ws-codegen-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let generator = codegen();
    generator.write(&dir).unwrap();
    assert_eq!(generator.check(&dir), Ok(()));
    std::fs::write(dir.join("protocol.ts"), "// edited by hand\n").unwrap();
    std::fs::remove_file(dir.join("asyncapi.json")).unwrap();
    let stale = generator.check(&dir).unwrap_err();
    assert_eq!(
        stale.0,
        [dir.join("protocol.ts"), dir.join("asyncapi.json")]
    );
    assert!(
        stale
            .to_string()
            .contains("2 generated file(s) are out of date")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typescript_protocol_map_matches_the_enums() {
    let ts = &codegen().generate()[0].contents;
    assert!(
        ts.contains(r#""admin:purge": { data: InboundAdminPurge; reply: Purged };"#),
        "{ts}"
    );
    assert!(ts.contains(r#""chat": { data: InboundChat; reply: never };"#));
    assert!(ts.contains("export type InboundWhoami = null;"));
    assert!(ts.contains("room?: string | null"));
    assert!(ts.contains(r#"export const CLIENT_MESSAGE_TYPES = ["chat", "join", "leave", "dm", "ask", "typing", "whoami", "admin:purge"] as const;"#));
    assert!(ts.contains(
        "  /** Volatile: the server skips it for a client that is behind, instead of queueing it. */\n  \"typing\": { data: OutboundTyping; reply: never };"
    ));
}

#[test]
fn asyncapi_document_lists_every_operation() {
    let file = codegen()
        .generate()
        .into_iter()
        .find(|f| f.path == "asyncapi.json")
        .unwrap();
    let doc: Value = serde_json::from_str(&file.contents).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["socket"]["address"], "/ws");
    let operations = doc["operations"].as_object().unwrap();
    for name in [
        "receive:chat",
        "receive:whoami",
        "receive:admin:purge",
        "send:welcome",
        "send:chat",
        "send:dm",
    ] {
        assert!(operations.contains_key(name), "{name}");
    }
    assert!(operations["receive:whoami"].get("reply").is_some());
    assert!(operations["receive:chat"].get("reply").is_none());
    // Every $ref resolves inside the document.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.trim_start_matches('#');
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

mod policies {
    use serde_json::Value;
    use ws_codegen::Codegen;
    use ws_core::ws_messages;

    #[ws_messages(outbound)]
    pub enum Board {
        Stroke {
            points: Vec<u32>,
        },
        #[ws(volatile)]
        Typing {
            user: String,
        },
        #[ws(latest = "user")]
        Cursor {
            user: String,
            x: u32,
        },
        #[ws(latest)]
        Progress(u32),
    }

    fn file(path: &str) -> String {
        Codegen::new("board")
            .messages::<Board>()
            .generate()
            .into_iter()
            .find(|f| f.path == path)
            .expect("generated")
            .contents
    }

    /// Delivery policies are documented on the protocol map's entries, where editors show them.
    #[test]
    fn protocol_ts_documents_each_policy() {
        let ts = file("protocol.ts");
        let map = &ts[ts.find("export interface ServerMessages").unwrap()..];
        let map = &map[..map.find("}\n\n").unwrap()];
        assert_eq!(
            map.lines().skip(1).collect::<Vec<_>>(),
            [
                r#"  "stroke": { data: BoardStroke; reply: never };"#,
                "  /** Volatile: the server skips it for a client that is behind, instead of queueing it. */",
                r#"  "typing": { data: BoardTyping; reply: never };"#,
                "  /** Latest value wins per `user`: a newer one with the same `user` replaces one still waiting to be sent to a client that is behind. */",
                r#"  "cursor": { data: BoardCursor; reply: never };"#,
                "  /** Latest value wins: a newer one replaces one still waiting to be sent to a client that is behind. */",
                r#"  "progress": { data: BoardProgress; reply: never };"#,
            ]
        );
    }

    /// The AsyncAPI document carries each server message's policy as `x-delivery`.
    #[test]
    fn asyncapi_has_x_delivery() {
        let doc: Value = serde_json::from_str(&file("asyncapi.json")).unwrap();
        let policy = |name: &str| {
            doc["components"]["messages"][format!("server.{name}")]["x-delivery"].clone()
        };
        assert_eq!(policy("stroke"), serde_json::json!({"policy": "reliable"}));
        assert_eq!(policy("typing"), serde_json::json!({"policy": "volatile"}));
        assert_eq!(
            policy("cursor"),
            serde_json::json!({"policy": "latest", "key": "user"})
        );
        assert_eq!(policy("progress"), serde_json::json!({"policy": "latest"}));
    }
}
