//! `protocol.ts`: the TypeScript declarations of every payload and reply type (ts-rs), and the protocol map
//! per direction that `sdk-ts`'s generic client is typed by (rspc's split between a generated map and a
//! hand-written runtime).

use std::fmt::Write as _;
use std::path::Path;

use dprint_plugin_typescript::configuration::{
    ConfigurationBuilder, QuoteProps, QuoteStyle, SemiColons,
};
use dprint_plugin_typescript::{FormatTextOptions, format_text};

use crate::protocol::{DirectionDef, Protocol};

fn message_map(out: &mut String, name: &str, doc: &str, direction: &DirectionDef) {
    let _ = writeln!(out, "/** {doc} */");
    let _ = writeln!(out, "export interface {name} {{");
    for m in &direction.messages {
        let reply = m.reply_ts.as_deref().unwrap_or("never");
        if let Some(doc) = m.delivery_doc() {
            let _ = writeln!(out, "  /** {doc} */");
        }
        // Only a stream names an item, so the map of a protocol without streams stays as it was.
        let item = m
            .item_ts
            .as_deref()
            .map_or(String::new(), |item| format!(" item: {item};"));
        let _ = writeln!(
            out,
            "  {:?}: {{ data: {}; reply: {reply};{item} }};",
            m.name, m.data_ts
        );
    }
    let _ = writeln!(out, "}}\n");
}

/// Formats TypeScript as a person would write it (dprint, the formatter Deno uses): ts-rs emits each
/// declaration on as few lines as it can, doc comments jammed between fields.
pub(crate) fn format(text: String) -> Result<String, String> {
    let config = ConfigurationBuilder::new()
        .line_width(110)
        .indent_width(2)
        .quote_style(QuoteStyle::AlwaysDouble)
        .semi_colons(SemiColons::Prefer)
        .quote_props(QuoteProps::AsNeeded)
        .build();
    let formatted = format_text(FormatTextOptions {
        path: Path::new("protocol.ts"),
        extension: None,
        text: text.clone(),
        config: &config,
        external_formatter: None,
    })
    .map_err(|e| e.to_string())?;
    Ok(formatted.unwrap_or(text))
}

pub(crate) fn render(protocol: &Protocol, header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// {header}\n");
    for decl in protocol.ts_declarations.values() {
        let _ = writeln!(out, "export {decl}\n");
    }
    message_map(
        &mut out,
        "ClientMessages",
        "Messages the client sends, by wire name: `data` is the payload, `reply` what a request of that type is answered with (`never`: not a request), `item` what each `$chunk` of a stream carries (`client.stream`).",
        &protocol.client_to_server,
    );
    message_map(
        &mut out,
        "ServerMessages",
        "Messages the server sends, by wire name: `reply` is what the client answers when the server sends it as a request (`never`: not a request).",
        &protocol.server_to_client,
    );
    out.push_str(
        "/** The whole protocol: the type parameter of `createClient` in `ws-core-client`. */\n",
    );
    out.push_str(
        "export interface Protocol {\n  client: ClientMessages;\n  server: ServerMessages;\n",
    );
    if let Some(meta) = &protocol.presence_meta {
        let _ = writeln!(
            out,
            "  /** What each member of a group with presence shows the others (`client.presence(group)`). */\n  presence: {meta};"
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "/** This protocol's fingerprint: the generated `createClient` sends it on connection (`ws_protocol`), so \
         a server built from other enums can say this client is outdated (ws-core's `version`). */\n\
         export const PROTOCOL_FINGERPRINT = {:?};\n",
        protocol.version.fingerprint()
    );
    out.push_str("/** Wire names of every message, in declaration order. */\n");
    for (constant, direction) in [
        ("CLIENT_MESSAGE_TYPES", &protocol.client_to_server),
        ("SERVER_MESSAGE_TYPES", &protocol.server_to_client),
    ] {
        let names: Vec<String> = direction
            .messages
            .iter()
            .map(|m| format!("{:?}", m.name))
            .collect();
        let _ = writeln!(
            out,
            "export const {constant} = [{}] as const;",
            names.join(", ")
        );
    }
    out
}

/// `client.ts`: the one module frontend code imports. `createClient` is the SDK's, typed by this protocol;
/// the payload and reply types and the SDK's errors and option types come along, so nothing else needs
/// importing. The SDK's names are re-exported one by one: a star export of both modules would drop any
/// name they share.
pub(crate) fn render_client(package: &str, header: &str) -> String {
    format!(
        r#"// {header}

import {{ type ClientOptions, createClient as connect, type WsClient }} from {package:?};
import {{ PROTOCOL_FINGERPRINT, type Protocol }} from "./protocol.js";
import {{ validators }} from "./validate.js";

export type * from "./protocol.js";
export {{ WsClosedError, WsError, WsInvalidError, WsQueueFullError, WsRequestError, WsTimeoutError }} from {package:?};
export {{ validators }} from "./validate.js";
export type {{
  ClientOptions,
  ConnectionState,
  GroupHandle,
  HistoryPage,
  InvalidFrame,
  PresenceChange,
  PresenceView,
  Recovery,
  RequestOptions,
  StreamPosition,
}} from {package:?};

/** A client of this protocol: what {{@link createClient}} returns. */
export type Client = WsClient<Protocol>;

/**
 * Connects to a server of this protocol (`url`, or a function giving the URL of each attempt) and keeps
 * the connection: sends, requests and listeners are typed by the message enums this file was generated from,
 * and frames are checked against them at run time (`validate: false` turns that off; `onInvalid` hears of
 * each frame that does not fit).
 */
export function createClient(url: string | (() => string), options?: ClientOptions): Client {{
  return connect<Protocol>(url, {{ validate: validators, protocol: PROTOCOL_FINGERPRINT, ...options }});
}}
"#
    )
}
