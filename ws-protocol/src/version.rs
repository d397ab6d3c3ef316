//! Protocol versions: a fingerprint of the wire contract, so a server can tell a client built for
//! another version of its messages.
//!
//! # Guarantees
//!
//! - **One name for one contract.** [`ProtocolVersion::fingerprint`] is 16 hex digits computed from every
//!   message of the sets given (wire name, direction, whether it is a request, and the JSON Schema of its
//!   payload, reply and stream item, nested types included), independent of the order the sets are given in and of how
//!   the build orders JSON keys. ws-codegen writes the same fingerprint into the generated SDK
//!   (`PROTOCOL_FINGERPRINT`), which sends it as the `ws_protocol` query parameter of every connection.
//! - **An outdated client is told, once, first.** With `ServerBuilder::protocol_version`, a ws-core
//!   server tells a client that sends another fingerprint, before any other frame, `$error`
//!   `{code: "protocol_mismatch", message}` without `id`, and keeps it connected; with
//!   [`ProtocolVersion::close_others`] it then closes it with 3409 (`ws_core::close::PROTOCOL_MISMATCH`),
//!   which the SDKs do not reconnect after. A client that sends none (a tool, another library) is served
//!   as before.
//!
//! ```
//! use ws_protocol::version::ProtocolVersion;
//! use ws_protocol::ws_messages;
//!
//! #[ws_messages]
//! pub enum Inbound {
//!     Join { room: String },
//! }
//!
//! #[ws_messages(outbound)]
//! pub enum Outbound {
//!     Joined { room: String },
//! }
//!
//! fn main() {
//!     let version = ProtocolVersion::new().messages::<Inbound>().messages::<Outbound>();
//!     assert_eq!(version.fingerprint().len(), 16);
//!     // Independent of the order the sets are given in.
//!     let reversed = ProtocolVersion::new().messages::<Outbound>().messages::<Inbound>();
//!     assert_eq!(version.fingerprint(), reversed.fingerprint());
//! }
//! ```

use std::fmt::Write as _;

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

use crate::message::{Direction, Variant, VariantVisitor, WsMessages, variant_hash};

/// The query parameter a client names its protocol's fingerprint with.
pub const QUERY_PARAMETER: &str = "ws_protocol";

/// The wire contract a server speaks: the fingerprint of its message sets, and what it does with a
/// client built for another (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct ProtocolVersion {
    /// One line per message: direction, name, request or not, payload and reply schemas.
    messages: Vec<String>,
    /// Definitions of nested types, by direction and name.
    definitions: Vec<String>,
    close_others: bool,
}

impl ProtocolVersion {
    /// No messages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a message set (an enum declared with `#[ws_messages]`).
    #[must_use]
    pub fn messages<M: WsMessages>(mut self) -> Self {
        let mut visitor = Describe {
            direction: match M::DIRECTION {
                Direction::ClientToServer => "client",
                Direction::ServerToClient => "server",
            },
            generator: SchemaGenerator::default(),
            lines: Vec::new(),
        };
        M::visit_variants(&mut visitor);
        let direction = visitor.direction;
        for (name, schema) in visitor.generator.take_definitions(true) {
            self.definitions
                .push(format!("{direction} {name} {}", canonical(&schema)));
        }
        self.messages.extend(visitor.lines);
        self
    }

    /// Closes a client that names another fingerprint, after telling it why, instead of serving it.
    #[must_use]
    pub fn close_others(mut self) -> Self {
        self.close_others = true;
        self
    }

    /// Whether a server closes a client that names another fingerprint ([`close_others`](Self::close_others)).
    pub fn closes_others(&self) -> bool {
        self.close_others
    }

    /// The fingerprint: 16 hex digits.
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<&str> = self
            .messages
            .iter()
            .chain(&self.definitions)
            .map(String::as_str)
            .collect();
        lines.sort_unstable();
        lines.dedup();
        format!("{:016x}", variant_hash(&lines.join("\n")))
    }
}

struct Describe {
    direction: &'static str,
    generator: SchemaGenerator,
    lines: Vec<String>,
}

impl Describe {
    fn schema<T: JsonSchema>(&mut self) -> String {
        canonical(&self.generator.subschema_for::<T>().to_value())
    }
}

impl VariantVisitor for Describe {
    fn visit<P: Variant>(&mut self) {
        let data = self.schema::<P>();
        let reply = if P::HAS_REPLY {
            self.schema::<P::Reply>()
        } else {
            String::new()
        };
        let mut line = format!(
            "{} {} {} {data} {reply}",
            self.direction,
            P::NAME,
            P::HAS_REPLY
        );
        // Only streams add to the line, so the fingerprint of a protocol without one stays as it was.
        if P::IS_STREAM {
            line.push_str(" stream ");
            line.push_str(&self.schema::<P::Item>());
        }
        self.lines.push(line);
    }
}

/// JSON text with every object's keys sorted: the same for the same value, however the build orders maps.
fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(key.clone()));
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let value: Value = serde_json::from_str(r#"{"b":[{"y":1,"x":2}],"a":null}"#).unwrap();
        assert_eq!(canonical(&value), r#"{"a":null,"b":[{"x":2,"y":1}]}"#);
    }
}
