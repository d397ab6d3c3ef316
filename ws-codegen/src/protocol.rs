//! The protocol model: every message of both directions with its TypeScript and JSON Schema descriptions,
//! collected from the `WsMessages` impls (nothing is parsed from source).

use std::collections::BTreeMap;

use serde_json::Value;
use ws_core::delivery::DeliveryPolicy;
use ws_core::message::{Direction, Variant, VariantVisitor, WsMessages};
use ws_core::schemars::generate::SchemaSettings;
use ws_core::schemars::transform::RecursiveTransform;
use ws_core::schemars::{JsonSchema, Schema, SchemaGenerator};
use ws_core::ts_rs::{self, TS, TypeVisitor};

/// One message type.
#[derive(Debug, Clone)]
pub struct MessageDef {
    /// The wire name (`type`).
    pub name: &'static str,
    /// TypeScript type of `data`.
    pub data_ts: String,
    /// TypeScript type of the reply, when the message is a request.
    pub reply_ts: Option<String>,
    /// Whether the payload is a unit (no `data`, or `null`).
    pub unit: bool,
    /// JSON Schema of `data`, referring to `$defs` of its direction.
    pub data_schema: Value,
    /// JSON Schema of the reply's `data`, when the message is a request.
    pub reply_schema: Option<Value>,
    /// TypeScript type of one item, when the request is answered with a stream (`#[ws(stream = T)]`).
    pub item_ts: Option<String>,
    /// JSON Schema of one item's `data` (each `$chunk`), when the request is answered with a stream.
    pub item_schema: Option<Value>,
    /// How the server delivers it to a client that is behind (server → client messages).
    pub delivery: DeliveryPolicy,
}

/// The messages of one direction and the definitions their schemas refer to.
#[derive(Debug, Clone, Default)]
pub struct DirectionDef {
    /// Messages in declaration order.
    pub messages: Vec<MessageDef>,
    /// Named JSON Schema definitions (`$defs`).
    pub definitions: serde_json::Map<String, Value>,
}

/// Everything the generators need: both directions and the TypeScript declarations they use.
#[derive(Debug, Clone, Default)]
pub struct Protocol {
    /// Client → server messages.
    pub client_to_server: DirectionDef,
    /// Server → client messages.
    pub server_to_client: DirectionDef,
    /// TypeScript declarations by type name.
    pub ts_declarations: BTreeMap<String, String>,
    /// The TypeScript name of the presence meta type, when the server has presence.
    pub presence_meta: Option<String>,
    /// The message sets' version, whose fingerprint the generated client sends on connection.
    pub version: ws_core::version::ProtocolVersion,
}

pub(crate) fn ts_config() -> ts_rs::Config {
    // Request ids and counters stay below 2^53 on the wire; `number` is what JavaScript reads them as.
    ts_rs::Config::new().with_large_int("number")
}

/// Gives every integer the bounds of its Rust type: schemars writes `format: int32` or `uint64`, which
/// validators do not enforce, and the server answers a value out of range with `invalid_data`.
fn integer_bounds(schema: &mut Schema) {
    let bounds: (Value, Value) = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint32") => (0.into(), u32::MAX.into()),
        Some("int64" | "int") => (i64::MIN.into(), i64::MAX.into()),
        Some("uint64" | "uint") => (0.into(), u64::MAX.into()),
        _ => return,
    };
    schema.insert("minimum".into(), bounds.0);
    schema.insert("maximum".into(), bounds.1);
}

fn schema_generator(direction: Direction) -> SchemaGenerator {
    let settings =
        SchemaSettings::draft2020_12().with_transform(RecursiveTransform(integer_bounds));
    // Client frames are described as the server reads them, server frames as the server writes them.
    let settings = match direction {
        Direction::ClientToServer => settings.for_deserialize(),
        Direction::ServerToClient => settings.for_serialize(),
    };
    settings.into_generator()
}

/// Collects the TypeScript declarations of a type and of every type it depends on.
struct Declarations<'a> {
    cfg: &'a ts_rs::Config,
    out: &'a mut BTreeMap<String, String>,
}

impl Declarations<'_> {
    fn add<T: TS + 'static + ?Sized>(&mut self) {
        if T::output_path().is_none() {
            return;
        }
        let name = T::ident(self.cfg);
        if self.out.contains_key(&name) {
            return;
        }
        self.out.insert(name, T::decl(self.cfg));
        T::visit_dependencies(self);
    }
}

impl TypeVisitor for Declarations<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        self.add::<T>();
    }
}

struct Collector<'a> {
    cfg: ts_rs::Config,
    generator: SchemaGenerator,
    messages: Vec<MessageDef>,
    ts: &'a mut BTreeMap<String, String>,
}

impl Collector<'_> {
    fn ts_of<T: TS + 'static>(&mut self) -> String {
        Declarations {
            cfg: &self.cfg,
            out: self.ts,
        }
        .add::<T>();
        T::name(&self.cfg)
    }

    fn schema_of<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }
}

impl VariantVisitor for Collector<'_> {
    fn visit<P: Variant>(&mut self) {
        let data_ts = self.ts_of::<P>();
        let reply_ts = P::HAS_REPLY.then(|| self.ts_of::<P::Reply>());
        let data_schema = self.schema_of::<P>();
        let reply_schema = P::HAS_REPLY.then(|| self.schema_of::<P::Reply>());
        let item_ts = P::IS_STREAM.then(|| self.ts_of::<P::Item>());
        let item_schema = P::IS_STREAM.then(|| self.schema_of::<P::Item>());
        // A payload that decodes from `null` may be sent without `data`, exactly as the server reads it.
        let unit = serde_json::from_str::<P>("null").is_ok();
        self.messages.push(MessageDef {
            name: P::NAME,
            data_ts,
            reply_ts,
            unit,
            data_schema,
            reply_schema,
            item_ts,
            item_schema,
            delivery: P::DELIVERY,
        });
    }
}

impl MessageDef {
    /// A sentence on the delivery policy for generated docs; `None` for reliable messages.
    pub fn delivery_doc(&self) -> Option<String> {
        match self.delivery {
            DeliveryPolicy::Reliable => None,
            DeliveryPolicy::Volatile => Some(
                "Volatile: the server skips it for a client that is behind, instead of queueing it.".to_owned(),
            ),
            DeliveryPolicy::Latest { key: None } => Some(
                "Latest value wins: a newer one replaces one still waiting to be sent to a client that is behind.".to_owned(),
            ),
            DeliveryPolicy::Latest { key: Some(key) } => Some(format!(
                "Latest value wins per `{key}`: a newer one with the same `{key}` replaces one still waiting to be sent to a client that is behind."
            )),
        }
    }

    /// The `x-delivery` extension of the AsyncAPI document: `{"policy", "key"?}`.
    pub fn delivery_json(&self) -> Value {
        match self.delivery {
            DeliveryPolicy::Latest { key: Some(key) } => {
                serde_json::json!({"policy": "latest", "key": key})
            }
            policy => serde_json::json!({"policy": policy.as_str()}),
        }
    }
}

impl Protocol {
    /// Declares `M` as what each member of a group with presence shows the others.
    pub fn set_presence_meta<M: TS + 'static>(&mut self) {
        let cfg = ts_config();
        Declarations {
            cfg: &cfg,
            out: &mut self.ts_declarations,
        }
        .add::<M>();
        self.presence_meta = Some(M::name(&cfg));
    }

    /// Adds a message set to the direction it declares.
    pub fn add<M: WsMessages>(&mut self) {
        self.version = std::mem::take(&mut self.version).messages::<M>();
        let mut collector = Collector {
            cfg: ts_config(),
            generator: schema_generator(M::DIRECTION),
            messages: Vec::new(),
            ts: &mut self.ts_declarations,
        };
        M::visit_variants(&mut collector);
        let definitions = collector.generator.take_definitions(true);
        let direction = match M::DIRECTION {
            Direction::ClientToServer => &mut self.client_to_server,
            Direction::ServerToClient => &mut self.server_to_client,
        };
        direction.messages.extend(collector.messages);
        direction.definitions.extend(definitions);
    }
}
