//! The generated files against the wire: serde's output validates against the JSON Schema, frames the
//! schema rejects are the frames the server's own decoder rejects (and the other way round), for every
//! integer width too; output is deterministic and formatted, and `check` finds stale files.

#[path = "codegen/command.rs"]
mod command;

use chat::protocol::{Inbound, Outbound, Purged, RoomJoined, WhoAmI};
use serde_json::{Value, json};
use ws_codegen::{Codegen, CodegenError};
use ws_core::message::InboundMessages;
use ws_core::protocol::{Envelope, MAX_REQUEST_ID, Message};

fn codegen() -> Codegen {
    Codegen::new("ws-core chat")
        .messages::<Inbound>()
        .messages::<Outbound>()
}

fn schema(path: &str) -> jsonschema::Validator {
    schema_of(&codegen(), path)
}

fn schema_of(codegen: &Codegen, path: &str) -> jsonschema::Validator {
    let file = codegen
        .generate()
        .unwrap()
        .into_iter()
        .find(|f| f.path == path)
        .expect("generated");
    let schema: Value = serde_json::from_str(&file.contents).unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// What the server does with a client frame of message set `M`: `true` when its envelope passes the
/// server's decoder and its `data` decodes into the payload of its `type`, as before a handler runs.
fn server_accepts<M: InboundMessages>(frame: &Value) -> bool {
    Envelope::parse(&frame.to_string())
        .is_some_and(|envelope| M::decode(envelope.kind(), envelope.data_json()).is_ok())
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
        json!({"type": "$session", "data": {"expires_in_ms": 60_000}}),
        json!({"type": "$left", "data": {"group": "r", "reason": "expired"}}),
        json!({"type": "$reply", "id": 5, "data": {"expires_in_ms": null}}),
    ];
    for frame in &outbound {
        assert!(server.is_valid(frame), "{frame}");
    }
    // Sessions' request: a token, at most 8 KiB.
    let client = schema("schema/client-to-server.json");
    let refresh = |token: &str| json!({"type": "$refresh", "id": 6, "data": {"token": token}});
    assert!(client.is_valid(&refresh("t")));
    assert!(!client.is_valid(&refresh(&"t".repeat(8193))));
    assert!(!client.is_valid(&json!({"type": "$refresh", "id": 6, "data": {}})));
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
            server_accepts::<Inbound>(frame),
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
    let first = codegen().generate().unwrap();
    assert_eq!(first, codegen().generate().unwrap());
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
    assert!(generator.check(&dir).is_ok());
    assert!(matches!(
        generator.run(&dir, true),
        Ok(ws_codegen::Outcome::UpToDate(_))
    ));
    std::fs::write(dir.join("protocol.ts"), "// edited by hand\n").unwrap();
    std::fs::remove_file(dir.join("asyncapi.json")).unwrap();
    let Err(CodegenError::Stale(stale)) = generator.run(&dir, true) else {
        panic!("stale files are an error, not an exit");
    };
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
    let ts = &codegen().generate().unwrap()[0].contents;
    assert!(
        ts.contains(r#""admin:purge": { data: InboundAdminPurge; reply: Purged };"#),
        "{ts}"
    );
    assert!(ts.contains("  chat: { data: InboundChat; reply: never };"));
    assert!(ts.contains("export type InboundWhoami = null;"));
    assert!(ts.contains("room?: string | null"));
    assert!(ts.contains("export const CLIENT_MESSAGE_TYPES = [\n  \"chat\",\n  \"join\",\n  \"leave\",\n  \"dm\",\n  \"ask\",\n  \"typing\",\n  \"whoami\",\n  \"admin:purge\",\n  \"assistant\",\n] as const;"), "{ts}");
    // A stream names its item; the other messages' entries stay as they were.
    assert!(
        ts.contains("  assistant: { data: InboundAssistant; reply: never; item: Word };"),
        "{ts}"
    );
    assert!(ts.contains(
        "  /** Volatile: the server skips it for a client that is behind, instead of queueing it. */\n  typing: { data: OutboundTyping; reply: never };"
    ));
}

#[test]
fn asyncapi_document_lists_every_operation() {
    let file = codegen()
        .generate()
        .unwrap()
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
            .unwrap()
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
                "  stroke: { data: BoardStroke; reply: never };",
                "  /** Volatile: the server skips it for a client that is behind, instead of queueing it. */",
                "  typing: { data: BoardTyping; reply: never };",
                "  /** Latest value wins per `user`: a newer one with the same `user` replaces one still waiting to be sent to a client that is behind. */",
                "  cursor: { data: BoardCursor; reply: never };",
                "  /** Latest value wins: a newer one replaces one still waiting to be sent to a client that is behind. */",
                "  progress: { data: BoardProgress; reply: never };",
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

/// Integers: the schema gives each field its Rust type's range, and accepts exactly what the server's
/// decoder accepts at and past every bound, with the shapes serde accepts around them.
mod integers {
    use serde_json::{Value, json};
    use ws_codegen::Codegen;
    use ws_core::ws_messages;

    use super::{schema_of, server_accepts};

    #[ws_messages]
    pub enum Numbers {
        U8 { v: u8 },
        U16 { v: u16 },
        U32 { v: u32 },
        U64 { v: u64 },
        Usize { v: usize },
        I8 { v: i8 },
        I16 { v: i16 },
        I32 { v: i32 },
        I64 { v: i64 },
        Isize { v: isize },
        Maybe { v: Option<u32> },
        List { v: Vec<u16> },
        Newtype(u32),
    }

    fn bounds(kind: &str) -> (i128, i128) {
        match kind {
            "u8" => (0, u8::MAX.into()),
            "u16" => (0, u16::MAX.into()),
            "u32" | "maybe" | "newtype" => (0, u32::MAX.into()),
            "u64" | "usize" => (0, u64::MAX.into()),
            "i8" => (i8::MIN.into(), i8::MAX.into()),
            "i16" => (i16::MIN.into(), i16::MAX.into()),
            "i32" => (i32::MIN.into(), i32::MAX.into()),
            "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
            "list" => (0, u16::MAX.into()),
            other => panic!("no bounds for {other}"),
        }
    }

    fn data(kind: &str, n: Value) -> Value {
        match kind {
            "newtype" => n,
            "list" => json!({"v": [1, n]}),
            _ => json!({"v": n}),
        }
    }

    #[test]
    fn schema_and_decoder_agree_at_every_bound() {
        let codegen = Codegen::new("numbers").messages::<Numbers>();
        let client = schema_of(&codegen, "schema/client-to-server.json");
        let kinds = [
            "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "maybe",
            "list", "newtype",
        ];
        let mut checked = 0;
        for kind in kinds {
            let (min, max) = bounds(kind);
            let mut values: Vec<Value> = [min - 1, min, max, max + 1]
                .into_iter()
                .filter_map(|n| {
                    // JSON numbers past i64/u64 are written as serde_json cannot hold them.
                    u64::try_from(n)
                        .ok()
                        .map(Value::from)
                        .or_else(|| i64::try_from(n).ok().map(Value::from))
                })
                .collect();
            values.extend([json!(1.5), json!("7"), json!(null), json!(true)]);
            for n in values {
                let frame = json!({"type": kind, "data": data(kind, n)});
                assert_eq!(
                    client.is_valid(&frame),
                    server_accepts::<Numbers>(&frame),
                    "schema and server disagree on {frame}"
                );
                checked += 1;
            }
        }
        assert!(checked > 80, "{checked}");
        // The bound that used to slip through: 2^32 for a u32.
        let over = json!({"type": "u32", "data": {"v": 4_294_967_296_u64}});
        assert!(!client.is_valid(&over) && !server_accepts::<Numbers>(&over));
        let maybe_null = json!({"type": "maybe", "data": {"v": null}});
        assert!(client.is_valid(&maybe_null) && server_accepts::<Numbers>(&maybe_null));
    }
}

/// The generated TypeScript reads as if written by hand: one field per line, doc comments above their
/// field, two-space indents (the whole file is reviewed as a snapshot).
#[test]
fn protocol_ts_is_formatted() {
    let ts = codegen().generate().unwrap().remove(0).contents;
    assert!(ts.contains(
        "export type Answer = {\n  /**\n   * The answer.\n   */\n  answer: string;\n};\n"
    ));
    insta::assert_snapshot!(ts);
}
