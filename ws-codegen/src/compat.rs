//! The compatibility report: which differences between the committed schema files and the ones the enums
//! generate now break clients already deployed, and which do not.
//!
//! A deployed client speaks the committed protocol to a server built from the new enums, so:
//!
//! - what it **sends** (client → server messages, and its answers to server requests) must still be
//!   accepted: every value the old schema allows must fit the new one;
//! - what it **receives** (server → client messages, and replies to its requests) must still fit what it
//!   checks: every value the new schema allows must fit the old one.
//!
//! Each difference is worded from the deployed client's side, by the direction its value travels:
//!
//! | change | what the client sends (client → server data, its answers to server requests) | what it receives (server → client data, replies to its requests) |
//! |---|---|---|
//! | message added | compatible: deployed clients do not send it | compatible: deployed clients ignore it |
//! | message removed | **breaking**: deployed clients still send it | **breaking**: deployed clients wait for it in vain |
//! | optional field added | compatible: deployed clients do not send it | compatible: deployed clients ignore it |
//! | required field added | **breaking**: deployed clients do not send it | compatible: deployed clients ignore it |
//! | optional field removed | compatible: what deployed clients send is ignored | compatible: it was optional for deployed clients |
//! | required field removed | compatible: what deployed clients send is ignored | **breaking**: deployed clients require it |
//! | field made optional (`Option`) | compatible | **breaking**: deployed clients do not accept null |
//! | field made required | **breaking** | compatible |
//! | type, bound or enum narrowed | **breaking** | compatible |
//! | type, bound or enum widened | compatible | **breaking** |
//! | a message becomes a request | compatible | compatible |
//! | a request becomes a plain message | **breaking** | **breaking** |
//!
//! The comparison is structural over the JSON Schema the generator writes (types, required and optional
//! properties, bounds, enums, items, alternatives); a property only one side declares is taken as never
//! sent by the side that does not declare it. Anything it cannot judge is reported as breaking.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

/// One difference between the committed protocol and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Whether clients built from the committed files break against a server built from the new enums.
    pub breaking: bool,
    /// What changed, in words: `client → server \`join\`: data.room is required now`.
    pub text: String,
}

/// Which way the values compared travel, seen from the deployed client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The client sends them: what it sent must still be accepted.
    Sends,
    /// The client receives them: what the server sends now must still pass its checks.
    Receives,
}

/// Why a value the sending side may produce is not one the receiving side allows, at `path`.
#[derive(Debug, Clone, PartialEq)]
enum Gap {
    /// The receiving side requires a property the sending side may leave out (`declared`: it declares the
    /// property, as optional) or does not send at all.
    Required { declared: bool },
    /// The sending side may send this value; the receiving side does not allow it.
    Value(Value),
    /// The sending side may send this JSON type.
    Type(String),
    /// The receiving side's lower bound (`key`), which the sending side may go below.
    AtLeast(f64, String),
    /// The receiving side's upper bound (`key`), which the sending side may go above.
    AtMost(f64, String),
    /// The receiving side allows only these values; the sending side does not say.
    LimitedTo(Value),
    /// The receiving side checks a type; the sending side does not say.
    Typed,
    /// The receiving side does not allow this property at all.
    NotAllowed,
}

impl Gap {
    fn words(&self, path: &str, side: Side) -> String {
        match (self, side) {
            (Self::Required { .. }, Side::Sends) => format!("{path} is required now"),
            (Self::Required { declared: true }, Side::Receives) => {
                format!("{path} may be left out now: deployed clients require it")
            }
            (Self::Required { declared: false }, Side::Receives) => {
                format!("{path} is not sent any more: deployed clients require it")
            }
            (Self::Value(value), Side::Sends) => format!("{path} may not be {value} any more"),
            (Self::Value(value), Side::Receives) => {
                format!("{path} may be {value} now: deployed clients do not accept it")
            }
            (Self::Type(t), Side::Sends) => format!("{path} may not be {} any more", article(t)),
            (Self::Type(t), Side::Receives) => {
                format!(
                    "{path} may be {} now: deployed clients do not accept it",
                    article(t)
                )
            }
            (Self::AtLeast(min, key), Side::Sends) => {
                format!("{path} must be at least {min} now ({key})")
            }
            (Self::AtLeast(min, key), Side::Receives) => format!(
                "{path} may be below {min} now: deployed clients accept at least {min} ({key})"
            ),
            (Self::AtMost(max, key), Side::Sends) => {
                format!("{path} must be at most {max} now ({key})")
            }
            (Self::AtMost(max, key), Side::Receives) => format!(
                "{path} may be above {max} now: deployed clients accept at most {max} ({key})"
            ),
            (Self::LimitedTo(values), Side::Sends) => format!("{path} is limited to {values} now"),
            (Self::LimitedTo(values), Side::Receives) => {
                format!("{path} may be any value now: deployed clients accept only {values}")
            }
            (Self::Typed, Side::Sends) => format!("{path} has a type now"),
            (Self::Typed, Side::Receives) => {
                format!("{path} may be of any type now: deployed clients check its type")
            }
            (Self::NotAllowed, Side::Sends) => format!("{path} is not allowed any more"),
            (Self::NotAllowed, Side::Receives) => {
                format!("{path} may be sent now: deployed clients do not allow it")
            }
        }
    }
}

/// One message's schemas and the definitions they use.
struct Message {
    data: Value,
    reply: Option<Value>,
    defs: Map<String, Value>,
}

/// The messages of one direction, from its per-message schema files (`schema/<direction>/*.json`).
fn messages(sdk: &Path, direction: &str) -> std::io::Result<BTreeMap<String, Message>> {
    let mut out = BTreeMap::new();
    let dir = sdk.join("schema").join(direction);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(err) => return Err(err),
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path())?;
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(name) = doc.get("title").and_then(Value::as_str) else {
            continue;
        };
        let data = doc
            .get("properties")
            .and_then(|p| p.get("data"))
            .cloned()
            .unwrap_or(Value::Bool(true));
        let defs = match doc.get("$defs") {
            Some(Value::Object(defs)) => defs.clone(),
            _ => Map::new(),
        };
        out.insert(
            name.to_owned(),
            Message {
                data,
                reply: doc.get("x-reply").cloned(),
                defs,
            },
        );
    }
    Ok(out)
}

/// The changes from the SDK in `committed` to the one in `generated` (each a directory holding `schema/`),
/// breaking ones first.
///
/// # Errors
///
/// When a schema directory exists but cannot be read.
pub fn compatibility(committed: &Path, generated: &Path) -> std::io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    for direction in [Direction::ClientToServer, Direction::ServerToClient] {
        let old = messages(committed, direction.dir())?;
        let new = messages(generated, direction.dir())?;
        changes.extend(compare(direction, &old, &new));
    }
    changes.sort_by_key(|change| !change.breaking);
    Ok(changes)
}

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn dir(self) -> &'static str {
        match self {
            Self::ClientToServer => "client-to-server",
            Self::ServerToClient => "server-to-client",
        }
    }

    fn arrow(self) -> &'static str {
        match self {
            Self::ClientToServer => "client → server",
            Self::ServerToClient => "server → client",
        }
    }

    /// The side the deployed client is on for a message's data, and for its reply (which goes back).
    fn sides(self) -> (Side, Side) {
        match self {
            Self::ClientToServer => (Side::Sends, Side::Receives),
            Self::ServerToClient => (Side::Receives, Side::Sends),
        }
    }
}

/// The changes to the messages of one direction.
fn compare(
    direction: Direction,
    old: &BTreeMap<String, Message>,
    new: &BTreeMap<String, Message>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let (data_side, reply_side) = direction.sides();
    for (name, before) in old {
        let label = format!("{} `{name}`", direction.arrow());
        let Some(after) = new.get(name) else {
            changes.push(breaking(
                &label,
                match direction {
                    Direction::ClientToServer => {
                        "removed: deployed clients still send it (unknown_type)"
                    }
                    Direction::ServerToClient => {
                        "removed: deployed clients wait for it in vain (what shows it never updates)"
                    }
                },
            ));
            continue;
        };
        let old_data = (&before.data, &before.defs);
        let new_data = (&after.data, &after.defs);
        changes.extend(value_changes(&label, data_side, old_data, new_data, "data"));
        match (&before.reply, &after.reply) {
            (Some(old_reply), Some(new_reply)) => changes.extend(value_changes(
                &label,
                reply_side,
                (old_reply, &before.defs),
                (new_reply, &after.defs),
                "reply",
            )),
            (Some(_), None) => changes.push(breaking(&label, "is not a request any more")),
            (None, Some(_)) => changes.push(compatible(&label, "is a request now")),
            (None, None) => {}
        }
    }
    for name in new.keys().filter(|name| !old.contains_key(*name)) {
        let label = format!("{} `{name}`", direction.arrow());
        changes.push(compatible(
            &label,
            match direction {
                Direction::ClientToServer => "new: deployed clients do not send it",
                Direction::ServerToClient => {
                    "new: deployed clients ignore it (and report it to onInvalid)"
                }
            },
        ));
    }
    changes
}

type Schema<'a> = (&'a Value, &'a Map<String, Value>);

/// The changes of one value (a message's data or its reply) that the client is on `side` of: what no
/// longer fits, as breaking, then the properties added and removed that do not break, as compatible.
fn value_changes(
    label: &str,
    side: Side,
    old: Schema<'_>,
    new: Schema<'_>,
    path: &str,
) -> Vec<Change> {
    // What the client sends must still be accepted; what it receives must still fit its checks.
    let (from, to) = match side {
        Side::Sends => (old, new),
        Side::Receives => (new, old),
    };
    let mut changes: Vec<Change> = subset(from.0, from.1, to.0, to.1, path)
        .into_iter()
        .map(|(at, gap)| breaking(label, &gap.words(&at, side)))
        .collect();
    for (at, field) in fields(old, new, path) {
        let reason = match (field, side) {
            (Field::Added { required: true }, Side::Sends) => continue,
            (Field::Added { .. }, Side::Sends) => {
                "is new and optional: deployed clients do not send it"
            }
            (Field::Added { .. }, Side::Receives) => "is new: deployed clients ignore it",
            (Field::Removed { .. }, Side::Sends) => {
                "is not read any more: what deployed clients send is ignored"
            }
            (Field::Removed { required: true }, Side::Receives) => continue,
            (Field::Removed { .. }, Side::Receives) => {
                "is not sent any more: it was optional for deployed clients"
            }
        };
        changes.push(compatible(label, &format!("{at} {reason}")));
    }
    changes
}

/// A property one side declares and the other does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Only the new schema declares it; `required` there or not.
    Added { required: bool },
    /// Only the old schema declares it; `required` there or not.
    Removed { required: bool },
}

/// The properties added and removed between `old` and `new`, objects and array items followed, by path.
fn fields(old: Schema<'_>, new: Schema<'_>, path: &str) -> Vec<(String, Field)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk_fields(old, new, path, &mut seen, &mut out);
    out
}

fn walk_fields(
    old: Schema<'_>,
    new: Schema<'_>,
    path: &str,
    seen: &mut HashSet<(String, String)>,
    out: &mut Vec<(String, Field)>,
) {
    if let (Some(a), Some(b)) = (
        old.0.get("$ref").and_then(Value::as_str),
        new.0.get("$ref").and_then(Value::as_str),
    ) && !seen.insert((a.to_owned(), b.to_owned()))
    {
        return;
    }
    let (o, n) = (resolve(old.0, old.1), resolve(new.0, new.1));
    let props = |s: &Value| s.get("properties").and_then(Value::as_object).cloned();
    let required = |s: &Value, key: &str| {
        s.get("required")
            .and_then(Value::as_array)
            .is_some_and(|keys| keys.iter().any(|k| k == key))
    };
    if let (Some(op), Some(np)) = (props(o), props(n)) {
        for (key, value) in &np {
            let at = format!("{path}.{key}");
            match op.get(key) {
                Some(before) => walk_fields((before, old.1), (value, new.1), &at, seen, out),
                None => out.push((
                    at,
                    Field::Added {
                        required: required(n, key),
                    },
                )),
            }
        }
        for key in op.keys().filter(|key| !np.contains_key(*key)) {
            out.push((
                format!("{path}.{key}"),
                Field::Removed {
                    required: required(o, key),
                },
            ));
        }
    }
    if let (Some(oi), Some(ni)) = (o.get("items"), n.get("items")) {
        walk_fields((oi, old.1), (ni, new.1), &format!("{path}[]"), seen, out);
    }
}

fn breaking(label: &str, reason: &str) -> Change {
    Change {
        breaking: true,
        text: format!("{label}: {reason}"),
    }
}

fn compatible(label: &str, reason: &str) -> Change {
    Change {
        breaking: false,
        text: format!("{label}: {reason}"),
    }
}

/// The schema `schema` stands for, its `$ref` followed in `defs`.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let mut current = schema;
    for _ in 0..32 {
        let Some(name) = current
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match defs.get(name) {
            Some(target) => current = target,
            None => break,
        }
    }
    current
}

/// Why some value `a` allows is not allowed by `b` (empty: every one is): each gap with its path.
fn subset(
    a: &Value,
    a_defs: &Map<String, Value>,
    b: &Value,
    b_defs: &Map<String, Value>,
    path: &str,
) -> Vec<(String, Gap)> {
    let mut seen = HashSet::new();
    Compare {
        a_defs,
        b_defs,
        seen: &mut seen,
    }
    .subset(a, b, path)
}

struct Compare<'a, 's> {
    a_defs: &'a Map<String, Value>,
    b_defs: &'a Map<String, Value>,
    /// Pairs of definitions being compared: a recursive type is compared once.
    seen: &'s mut HashSet<(String, String)>,
}

fn alternatives(schema: &Value) -> Option<&Vec<Value>> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
}

/// The JSON types a schema allows; `None` when it does not say (any type).
fn types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn values(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.iter().collect());
    }
    schema.get("const").map(|value| vec![value])
}

fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

impl Compare<'_, '_> {
    fn subset(&mut self, a: &Value, b: &Value, path: &str) -> Vec<(String, Gap)> {
        let ref_pair = (
            a.get("$ref").and_then(Value::as_str).map(str::to_owned),
            b.get("$ref").and_then(Value::as_str).map(str::to_owned),
        );
        if let (Some(ra), Some(rb)) = ref_pair
            && !self.seen.insert((ra, rb))
        {
            return Vec::new();
        }
        let (a, b) = (resolve(a, self.a_defs), resolve(b, self.b_defs));
        if b == &Value::Bool(true)
            || b.as_object().is_some_and(Map::is_empty)
            || a == &Value::Bool(false)
        {
            return Vec::new();
        }
        if let Some(parts) = alternatives(a) {
            return parts
                .iter()
                .flat_map(|part| self.subset(part, b, path))
                .collect();
        }
        if let Some(parts) = alternatives(b) {
            let mut reasons = Vec::new();
            for part in parts {
                let found = self.subset(a, part, path);
                if found.is_empty() {
                    return Vec::new();
                }
                reasons = found;
            }
            return reasons;
        }
        let mut reasons = Vec::new();
        if let Some(allowed) = values(b) {
            match values(a) {
                Some(given) => {
                    for value in given.into_iter().filter(|v| !allowed.contains(v)) {
                        reasons.push((path.to_owned(), Gap::Value(value.clone())));
                    }
                }
                None => reasons.push((
                    path.to_owned(),
                    Gap::LimitedTo(Value::Array(allowed.into_iter().cloned().collect())),
                )),
            }
            return reasons;
        }
        let (Some(a_types), Some(b_types)) = (types(a), types(b)) else {
            if types(b).is_some() {
                reasons.push((path.to_owned(), Gap::Typed));
            }
            return reasons;
        };
        for t in &a_types {
            let fits = b_types.contains(t) || (*t == "integer" && b_types.contains(&"number"));
            if !fits {
                reasons.push((path.to_owned(), Gap::Type((*t).to_owned())));
            }
        }
        if a_types.iter().any(|t| *t == "integer" || *t == "number") {
            self.bounds(a, b, path, "minimum", "maximum", &mut reasons);
        }
        if a_types.contains(&"string") {
            self.bounds(a, b, path, "minLength", "maxLength", &mut reasons);
        }
        if a_types.contains(&"array") && b_types.contains(&"array") {
            self.bounds(a, b, path, "minItems", "maxItems", &mut reasons);
            let any = Value::Bool(true);
            let (ai, bi) = (
                a.get("items").unwrap_or(&any),
                b.get("items").unwrap_or(&any),
            );
            reasons.extend(self.subset(ai, bi, &format!("{path}[]")));
        }
        if a_types.contains(&"object") && b_types.contains(&"object") {
            self.object(a, b, path, &mut reasons);
        }
        reasons
    }

    fn bounds(
        &self,
        a: &Value,
        b: &Value,
        path: &str,
        min: &str,
        max: &str,
        reasons: &mut Vec<(String, Gap)>,
    ) {
        if let Some(b_min) = number(b, min)
            && number(a, min).is_none_or(|a_min| a_min < b_min)
        {
            reasons.push((path.to_owned(), Gap::AtLeast(b_min, min.to_owned())));
        }
        if let Some(b_max) = number(b, max)
            && number(a, max).is_none_or(|a_max| a_max > b_max)
        {
            reasons.push((path.to_owned(), Gap::AtMost(b_max, max.to_owned())));
        }
    }

    fn object(&mut self, a: &Value, b: &Value, path: &str, reasons: &mut Vec<(String, Gap)>) {
        let props = |s: &Value| {
            s.get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let required = |s: &Value| -> Vec<String> {
            s.get("required")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (a_props, b_props) = (props(a), props(b));
        let a_required = required(a);
        for key in required(b) {
            if !a_required.contains(&key) {
                let declared = a_props.contains_key(&key);
                reasons.push((format!("{path}.{key}"), Gap::Required { declared }));
            }
        }
        let closed = b.get("additionalProperties");
        for (key, a_prop) in &a_props {
            let at = format!("{path}.{key}");
            match (b_props.get(key), closed) {
                (Some(b_prop), _) => reasons.extend(self.subset(a_prop, b_prop, &at)),
                (None, Some(Value::Bool(false))) => reasons.push((at, Gap::NotAllowed)),
                (None, Some(rest)) => reasons.extend(self.subset(a_prop, rest, &at)),
                (None, None) => {}
            }
        }
    }
}

fn article(t: &str) -> String {
    match t {
        "null" => "null".to_owned(),
        "integer" | "object" | "array" => format!("an {t}"),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reasons(a: Value, b: Value) -> Vec<String> {
        subset(&a, &Map::new(), &b, &Map::new(), "data")
            .into_iter()
            .map(|(path, gap)| gap.words(&path, Side::Sends))
            .collect()
    }

    #[test]
    fn what_narrows_a_type_is_found_with_its_path() {
        let note = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
        assert!(reasons(note.clone(), note.clone()).is_empty());
        let with_tag = json!({"type": "object", "properties": {"text": {"type": "string"}, "tag": {"type": "string"}}, "required": ["text", "tag"]});
        assert_eq!(
            reasons(note.clone(), with_tag.clone()),
            ["data.tag is required now"]
        );
        assert!(
            reasons(with_tag, note.clone()).is_empty(),
            "a property dropped from `required` widens"
        );
        let nullable = json!({"type": "object", "properties": {"text": {"type": ["string", "null"]}}, "required": ["text"]});
        assert!(reasons(note.clone(), nullable.clone()).is_empty());
        assert_eq!(
            reasons(nullable, note),
            ["data.text may not be null any more"]
        );
        assert_eq!(
            reasons(
                json!({"type": "integer", "minimum": 0, "maximum": 255}),
                json!({"type": "integer", "minimum": 0, "maximum": 100})
            ),
            ["data must be at most 100 now (maximum)"]
        );
        assert!(reasons(json!({"type": "integer"}), json!({"type": "number"})).is_empty());
        assert_eq!(
            reasons(json!({"enum": ["a", "b"]}), json!({"enum": ["a"]})),
            ["data may not be \"b\" any more"]
        );
        let points = |t: &str| json!({"type": "array", "items": {"type": "object", "properties": {"x": {"type": t}}}});
        assert_eq!(
            reasons(points("number"), points("integer")),
            ["data[].x may not be a number any more"]
        );
        let either = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert!(reasons(json!({"type": "null"}), either.clone()).is_empty());
        assert_eq!(
            reasons(either, json!({"type": "string"})),
            ["data may not be null any more"]
        );
    }

    /// A message whose data is an object with these properties (`?` after a name: optional).
    fn message(props: &[(&str, Value)], reply: Option<Value>) -> Message {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, schema) in props {
            match name.strip_suffix('?') {
                Some(name) => {
                    properties.insert(name.to_owned(), schema.clone());
                }
                None => {
                    properties.insert((*name).to_owned(), schema.clone());
                    required.push(Value::from(*name));
                }
            }
        }
        Message {
            data: json!({"type": "object", "properties": properties, "required": required}),
            reply,
            defs: Map::new(),
        }
    }

    /// The report for message `m` changed from `before` to `after`, sent client → server and
    /// server → client: each line as `breaking: …` or `compatible: …`.
    fn both_ways(before: Option<Message>, after: Option<Message>) -> [Vec<String>; 2] {
        let set = |m: Option<Message>| m.into_iter().map(|m| ("m".to_owned(), m)).collect();
        let (old, new): (BTreeMap<_, _>, BTreeMap<_, _>) = (set(before), set(after));
        [Direction::ClientToServer, Direction::ServerToClient].map(|direction| {
            compare(direction, &old, &new)
                .into_iter()
                .map(|c| {
                    let kind = if c.breaking { "breaking" } else { "compatible" };
                    let text = c
                        .text
                        .split_once(": ")
                        .map_or(c.text.clone(), |(_, t)| t.to_owned());
                    format!("{kind}: {text}")
                })
                .collect()
        })
    }

    fn string() -> Value {
        json!({"type": "string"})
    }

    #[test]
    fn rule_message_added() {
        let [sent, received] = both_ways(None, Some(message(&[], None)));
        assert_eq!(sent, ["compatible: new: deployed clients do not send it"]);
        assert_eq!(
            received,
            ["compatible: new: deployed clients ignore it (and report it to onInvalid)"]
        );
    }

    #[test]
    fn rule_message_removed() {
        let [sent, received] = both_ways(Some(message(&[], None)), None);
        assert_eq!(
            sent,
            ["breaking: removed: deployed clients still send it (unknown_type)"]
        );
        assert_eq!(
            received,
            [
                "breaking: removed: deployed clients wait for it in vain (what shows it never updates)"
            ]
        );
    }

    #[test]
    fn rule_optional_field_added() {
        let before = message(&[("text", string())], None);
        let after = message(&[("text", string()), ("tag?", string())], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(
            sent,
            ["compatible: data.tag is new and optional: deployed clients do not send it"]
        );
        assert_eq!(
            received,
            ["compatible: data.tag is new: deployed clients ignore it"]
        );
    }

    #[test]
    fn rule_required_field_added() {
        let before = message(&[("text", string())], None);
        let after = message(&[("text", string()), ("tag", string())], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(sent, ["breaking: data.tag is required now"]);
        assert_eq!(
            received,
            ["compatible: data.tag is new: deployed clients ignore it"]
        );
    }

    #[test]
    fn rule_optional_field_removed() {
        let before = message(&[("text", string()), ("tag?", string())], None);
        let after = message(&[("text", string())], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(
            sent,
            ["compatible: data.tag is not read any more: what deployed clients send is ignored"]
        );
        assert_eq!(
            received,
            ["compatible: data.tag is not sent any more: it was optional for deployed clients"]
        );
    }

    #[test]
    fn rule_required_field_removed() {
        let before = message(&[("text", string()), ("user", string())], None);
        let after = message(&[("text", string())], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(
            sent,
            ["compatible: data.user is not read any more: what deployed clients send is ignored"]
        );
        assert_eq!(
            received,
            ["breaking: data.user is not sent any more: deployed clients require it"]
        );
    }

    #[test]
    fn rule_field_made_optional() {
        let before = message(&[("text", string())], None);
        let after = message(&[("text?", json!({"type": ["string", "null"]}))], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(
            received,
            [
                "breaking: data.text may be left out now: deployed clients require it",
                "breaking: data.text may be null now: deployed clients do not accept it",
            ]
        );
    }

    #[test]
    fn rule_field_made_required() {
        let before = message(&[("text?", string())], None);
        let after = message(&[("text", string())], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(sent, ["breaking: data.text is required now"]);
        assert!(received.is_empty(), "{received:?}");
    }

    #[test]
    fn rule_narrowed() {
        let before = message(&[("n", json!({"type": "integer", "maximum": 255}))], None);
        let after = message(&[("n", json!({"type": "integer", "maximum": 100}))], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(sent, ["breaking: data.n must be at most 100 now (maximum)"]);
        assert!(received.is_empty(), "{received:?}");
    }

    #[test]
    fn rule_widened() {
        let before = message(&[("kind", json!({"enum": ["a"]}))], None);
        let after = message(&[("kind", json!({"enum": ["a", "b"]}))], None);
        let [sent, received] = both_ways(Some(before), Some(after));
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(
            received,
            ["breaking: data.kind may be \"b\" now: deployed clients do not accept it"]
        );
    }

    #[test]
    fn rule_becomes_a_request() {
        let reply = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
        let [sent, received] = both_ways(Some(message(&[], None)), Some(message(&[], Some(reply))));
        assert_eq!(sent, ["compatible: is a request now"]);
        assert_eq!(received, ["compatible: is a request now"]);
    }

    #[test]
    fn rule_stops_being_a_request() {
        let reply = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
        let [sent, received] = both_ways(Some(message(&[], Some(reply))), Some(message(&[], None)));
        assert_eq!(sent, ["breaking: is not a request any more"]);
        assert_eq!(received, ["breaking: is not a request any more"]);
    }

    /// A reply travels back: a field removed from the reply to a client's request breaks the deployed
    /// client that reads it; one removed from a client's answer to a server request does not.
    #[test]
    fn replies_are_judged_from_the_side_they_reach() {
        let reply = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
        let before = message(
            &[],
            Some(reply(
                json!({"room": string(), "groups": string()}),
                json!(["room", "groups"]),
            )),
        );
        let after = message(&[], Some(reply(json!({"room": string()}), json!(["room"]))));
        let [sent, received] = both_ways(Some(before), Some(after));
        assert_eq!(
            sent,
            ["breaking: reply.groups is not sent any more: deployed clients require it"]
        );
        assert_eq!(
            received,
            [
                "compatible: reply.groups is not read any more: what deployed clients send is ignored"
            ]
        );
    }
}
