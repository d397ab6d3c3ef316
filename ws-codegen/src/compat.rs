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
//! A message the server no longer accepts breaks deployed clients; a new server message does not (they
//! ignore it, and report it to `onInvalid`), nor does a new client message or a removed server one. The
//! comparison is structural over the JSON Schema the generator writes (types, required and optional
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
    for (direction, arrow, client_sends) in [
        ("client-to-server", "client → server", true),
        ("server-to-client", "server → client", false),
    ] {
        let old = messages(committed, direction)?;
        let new = messages(generated, direction)?;
        for (name, before) in &old {
            let label = format!("{arrow} `{name}`");
            let Some(after) = new.get(name) else {
                changes.push(if client_sends {
                    breaking(
                        &label,
                        "removed: deployed clients still send it (unknown_type)",
                    )
                } else {
                    compatible(&label, "removed: deployed clients wait for it in vain")
                });
                continue;
            };
            // What the client sends must still be accepted; what it receives must still fit its checks.
            let (from, to) = if client_sends {
                (before, after)
            } else {
                (after, before)
            };
            for reason in subset(&from.data, &from.defs, &to.data, &to.defs, "data") {
                changes.push(breaking(&label, &reason));
            }
            match (&before.reply, &after.reply) {
                (Some(old_reply), Some(new_reply)) => {
                    // The reply goes the other way.
                    let (from, from_defs, to, to_defs) = if client_sends {
                        (new_reply, &after.defs, old_reply, &before.defs)
                    } else {
                        (old_reply, &before.defs, new_reply, &after.defs)
                    };
                    for reason in subset(from, from_defs, to, to_defs, "reply") {
                        changes.push(breaking(&label, &reason));
                    }
                }
                (Some(_), None) => changes.push(breaking(&label, "is not a request any more")),
                (None, Some(_)) => changes.push(compatible(&label, "is a request now")),
                (None, None) => {}
            }
        }
        for name in new.keys().filter(|name| !old.contains_key(*name)) {
            let label = format!("{arrow} `{name}`");
            changes.push(compatible(
                &label,
                if client_sends {
                    "new: deployed clients do not send it"
                } else {
                    "new: deployed clients ignore it (and report it to onInvalid)"
                },
            ));
        }
    }
    changes.sort_by_key(|change| !change.breaking);
    Ok(changes)
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

/// Why some value `a` allows is not allowed by `b` (empty: every one is), at `path`.
fn subset(
    a: &Value,
    a_defs: &Map<String, Value>,
    b: &Value,
    b_defs: &Map<String, Value>,
    path: &str,
) -> Vec<String> {
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
    fn subset(&mut self, a: &Value, b: &Value, path: &str) -> Vec<String> {
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
                        reasons.push(format!("{path} may not be {value} any more"));
                    }
                }
                None => reasons.push(format!(
                    "{path} is limited to {} now",
                    Value::Array(allowed.into_iter().cloned().collect())
                )),
            }
            return reasons;
        }
        let (Some(a_types), Some(b_types)) = (types(a), types(b)) else {
            if types(b).is_some() {
                reasons.push(format!("{path} has a type now"));
            }
            return reasons;
        };
        for t in &a_types {
            let fits = b_types.contains(t) || (*t == "integer" && b_types.contains(&"number"));
            if !fits {
                reasons.push(format!("{path} may not be {} any more", article(t)));
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
        reasons: &mut Vec<String>,
    ) {
        if let Some(b_min) = number(b, min)
            && number(a, min).is_none_or(|a_min| a_min < b_min)
        {
            reasons.push(format!("{path} must be at least {b_min} now ({min})"));
        }
        if let Some(b_max) = number(b, max)
            && number(a, max).is_none_or(|a_max| a_max > b_max)
        {
            reasons.push(format!("{path} must be at most {b_max} now ({max})"));
        }
    }

    fn object(&mut self, a: &Value, b: &Value, path: &str, reasons: &mut Vec<String>) {
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
                reasons.push(format!("{path}.{key} is required now"));
            }
        }
        let closed = b.get("additionalProperties");
        for (key, a_prop) in &a_props {
            let at = format!("{path}.{key}");
            match (b_props.get(key), closed) {
                (Some(b_prop), _) => reasons.extend(self.subset(a_prop, b_prop, &at)),
                (None, Some(Value::Bool(false))) => {
                    reasons.push(format!("{at} is not allowed any more"))
                }
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
}
