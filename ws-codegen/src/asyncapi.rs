//! An AsyncAPI 3.0 document of the protocol, from the server's point of view: it receives client frames
//! and sends server frames on one channel (the WebSocket endpoint). Requests carry their reply.

use serde_json::{Map, Value, json};

use crate::json_schema::{self, Side};
use crate::protocol::{DirectionDef, Protocol};

fn message_key(side: Side, name: &str) -> String {
    let prefix = match side {
        Side::Client => "client",
        Side::Server => "server",
    };
    format!("{prefix}.{name}")
}

fn add_direction(
    def: &DirectionDef,
    side: Side,
    channel_messages: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
    components: &mut Map<String, Value>,
) {
    let (action, answer_side) = match side {
        Side::Client => ("receive", Side::Server),
        Side::Server => ("send", Side::Client),
    };
    for message in &def.messages {
        let key = message_key(side, message.name);
        let mut component =
            json!({"name": message.name, "payload": json_schema::frame(message, side)});
        if side == Side::Server {
            component["x-delivery"] = message.delivery_json();
        }
        components.insert(key.clone(), component);
        channel_messages.insert(
            key.clone(),
            json!({"$ref": format!("#/components/messages/{key}")}),
        );
        let mut operation = json!({
            "action": action,
            "channel": {"$ref": "#/channels/socket"},
            "messages": [{"$ref": format!("#/channels/socket/messages/{key}")}],
        });
        if message.reply_schema.is_some() {
            let reply_key = message_key(answer_side, "$reply");
            operation["reply"] = json!({
                "channel": {"$ref": "#/channels/socket"},
                "messages": [{"$ref": format!("#/channels/socket/messages/{reply_key}")}],
            });
        }
        // A stream request is answered by `$stream`, `$chunk` frames carrying this item, then `$end`.
        if let Some(item) = &message.item_schema {
            operation["x-stream"] = json!({"item": item, "frames": ["$stream", "$chunk", "$end"]});
        }
        operations.insert(format!("{action}:{}", message.name), operation);
    }
}

pub(crate) fn render(protocol: &Protocol, title: &str, path: &str, comment: &str) -> Value {
    let mut channel_messages = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    add_direction(
        &protocol.client_to_server,
        Side::Client,
        &mut channel_messages,
        &mut operations,
        &mut messages,
    );
    add_direction(
        &protocol.server_to_client,
        Side::Server,
        &mut channel_messages,
        &mut operations,
        &mut messages,
    );
    let mut schemas = protocol.client_to_server.definitions.clone();
    schemas.extend(protocol.server_to_client.definitions.clone());
    for side in [Side::Client, Side::Server] {
        for (name, frame) in json_schema::system_frames(side) {
            let key = message_key(side, &name);
            let payload =
                json!({"$ref": format!("#/components/schemas/{}", system_key(side, &name))});
            messages.insert(key.clone(), json!({"name": name, "payload": payload}));
            channel_messages.insert(
                key.clone(),
                json!({"$ref": format!("#/components/messages/{key}")}),
            );
            schemas.insert(system_key(side, &name), frame);
        }
    }
    let mut doc = json!({
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": env!("CARGO_PKG_VERSION"), "description": comment},
        "channels": {
            "socket": {
                "address": path,
                "description": "One WebSocket connection; every text frame is one JSON envelope.",
                "messages": channel_messages,
            }
        },
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    });
    relocate_refs(&mut doc);
    doc
}

/// Payload schemas refer to `#/$defs/...`; in this document the definitions live in `components/schemas`.
fn relocate_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(name) = target.strip_prefix("#/$defs/")
            {
                *target = format!("#/components/schemas/{name}");
            }
            map.values_mut().for_each(relocate_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(relocate_refs),
        _ => {}
    }
}

fn system_key(side: Side, name: &str) -> String {
    message_key(side, name).replace('$', "")
}
