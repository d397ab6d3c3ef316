//! `validate.ts`: run-time checks of every message's `data` and every reply, compiled from the same JSON
//! Schema as `schema/*.json` into calls of the SDK's check functions (`ws-core-client`'s `object`, `str`,
//! `some`, ...). Nothing interprets a schema at run time, and a keyword the generator cannot check is an
//! error, not a check silently skipped.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::protocol::{DirectionDef, Protocol};

/// Keywords that describe and do not constrain.
const ANNOTATIONS: &[&str] = &[
    "$comment",
    "$schema",
    "default",
    "deprecated",
    "description",
    "examples",
    "format",
    "readOnly",
    "title",
    "writeOnly",
];

/// The SDK's check functions the generated file may call.
const HELPERS: &[&str] = &[
    "all", "any", "array", "bool", "literal", "never", "nul", "num", "object", "ref", "some", "str",
];

/// The `validate.ts` of `protocol`, importing the SDK from `package`; `Err` names a schema keyword
/// or construct that has no check.
pub(crate) fn render(protocol: &Protocol, package: &str, header: &str) -> Result<String, String> {
    let mut out = String::new();
    for (var, direction) in [
        ("c", &protocol.client_to_server),
        ("s", &protocol.server_to_client),
    ] {
        if direction.definitions.is_empty() {
            continue;
        }
        let side = if var == "c" {
            "client → server"
        } else {
            "server → client"
        };
        writeln!(
            out,
            "/** Definitions of {side} types. */\nconst {var}: Record<string, Check> = {{}};"
        )
        .unwrap_or_default();
        for (name, schema) in &direction.definitions {
            let check = expr(schema, var).map_err(|e| format!("type {name}: {e}"))?;
            writeln!(out, "{var}[{name:?}] = {check};").unwrap_or_default();
        }
    }
    let server = messages(&protocol.server_to_client, "s", Part::Data)?;
    let server_replies = messages(&protocol.client_to_server, "c", Part::Reply)?;
    let client = messages(&protocol.client_to_server, "c", Part::Data)?;
    let client_replies = messages(&protocol.server_to_client, "s", Part::Reply)?;
    let server_items = messages(&protocol.client_to_server, "c", Part::Item)?;
    // Only a protocol with streams gets the table, so the others' files stay as they were.
    let items = if server_items == "{  }" {
        String::new()
    } else {
        format!("  serverItems: {server_items},\n")
    };
    write!(
        out,
        "\n/** The checks of this protocol's frames: pass them as `validate` to `createClient` (the generated \
         `client.ts` does). */\nexport const validators: Validators = {{\n  server: {server},\n  serverReplies: \
         {server_replies},\n{items}  client: {client},\n  clientReplies: {client_replies},\n}};\n"
    )
    .unwrap_or_default();
    // Only what is called: a project compiled with `noUnusedLocals` takes the file as it is.
    let used: Vec<&str> = HELPERS
        .iter()
        .copied()
        .filter(|helper| calls(&out, helper))
        .collect();
    Ok(format!(
        "// {header}\n\nimport {{ {}, type Check, type Validators }} from {package:?};\n\n{out}",
        used.join(", ")
    ))
}

/// Whether `text` names `helper` as a whole word (a call, or a check passed as it is).
fn calls(text: &str, helper: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '.';
    text.match_indices(helper).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + helper.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(|c| word(c) || c == ':' || c == '[')
    })
}

/// What of a message a table of checks is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Data,
    Reply,
    /// Each item of the stream answering it.
    Item,
}

/// `{ "type": check, ... }` for the messages of one direction: their `data`, their replies, or the items
/// of the streams that answer them.
fn messages(direction: &DirectionDef, var: &str, part: Part) -> Result<String, String> {
    let mut entries = Vec::new();
    for message in &direction.messages {
        let schema = match part {
            Part::Data => &message.data_schema,
            Part::Reply => match &message.reply_schema {
                Some(schema) => schema,
                None => continue,
            },
            Part::Item => match &message.item_schema {
                Some(schema) => schema,
                None => continue,
            },
        };
        let check = expr(schema, var).map_err(|e| format!("message {:?}: {e}", message.name))?;
        // A unit payload may be left out, which the frame gives as `null`.
        let check = if part == Part::Data && message.unit {
            format!("some([nul, {check}], false)")
        } else {
            check
        };
        entries.push(format!("{:?}: {check}", message.name));
    }
    Ok(format!("{{ {} }}", entries.join(", ")))
}

fn number(schema: &Map<String, Value>, key: &str) -> Result<String, String> {
    match schema.get(key) {
        None => Ok("undefined".to_owned()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!("`{key}` is not a number: {other}")),
    }
}

/// `f(args)`, without the trailing arguments that say nothing (`undefined`, and an empty prefix).
fn call(f: &str, mut args: Vec<String>) -> String {
    while args
        .last()
        .is_some_and(|a| a == "undefined" || (a == "[]" && f == "array"))
    {
        args.pop();
    }
    format!("{f}({})", args.join(", "))
}

fn list(checks: Vec<String>) -> String {
    format!("[{}]", checks.join(", "))
}

/// The check of `schema`; `defs` is the variable holding its direction's definitions.
fn expr(schema: &Value, defs: &str) -> Result<String, String> {
    let schema = match schema {
        Value::Bool(true) => return Ok("any".to_owned()),
        Value::Bool(false) => return Ok("never".to_owned()),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "a schema must be an object or a boolean, not {other}"
            ));
        }
    };
    let mut checks = Vec::new();
    for (key, value) in schema {
        match key.as_str() {
            "$ref" => {
                let name = value
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .ok_or_else(|| format!("unsupported $ref {value}"))?;
                checks.push(format!("ref({defs}, {name:?})"));
            }
            "enum" => {
                let values = value.as_array().ok_or("`enum` is not an array")?;
                checks.push(format!("literal({})", Value::Array(values.clone())));
            }
            "const" => checks.push(format!("literal([{value}])")),
            "type" => checks.push(typed(schema, value, defs)?),
            "allOf" | "anyOf" | "oneOf" => {
                let parts = value
                    .as_array()
                    .ok_or_else(|| format!("`{key}` is not an array"))?;
                let parts = parts
                    .iter()
                    .map(|part| expr(part, defs))
                    .collect::<Result<Vec<_>, _>>()?;
                checks.push(match key.as_str() {
                    "allOf" => format!("all({})", list(parts)),
                    "anyOf" => format!("some({}, false)", list(parts)),
                    _ => format!("some({}, true)", list(parts)),
                });
            }
            // Read with `type`.
            "properties"
            | "required"
            | "additionalProperties"
            | "items"
            | "prefixItems"
            | "minItems"
            | "maxItems"
            | "minimum"
            | "maximum"
            | "minLength"
            | "maxLength" => {
                if !schema.contains_key("type") {
                    return Err(format!("`{key}` without `type`"));
                }
            }
            "$defs" => {}
            key if ANNOTATIONS.contains(&key) => {}
            key => return Err(format!("the keyword `{key}` has no check")),
        }
    }
    Ok(match checks.len() {
        0 => "any".to_owned(),
        1 => checks.remove(0),
        _ => format!("all({})", list(checks)),
    })
}

/// The check of `type` (one name or several), with the keywords that constrain values of that type.
fn typed(schema: &Map<String, Value>, types: &Value, defs: &str) -> Result<String, String> {
    let names: Vec<&str> = match types {
        Value::String(name) => vec![name],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        other => return Err(format!("`type` is neither a name nor a list: {other}")),
    };
    let mut checks = Vec::new();
    for name in names {
        checks.push(match name {
            "null" => "nul".to_owned(),
            "boolean" => "bool".to_owned(),
            "integer" | "number" => call(
                "num",
                vec![
                    (name == "integer").to_string(),
                    number(schema, "minimum")?,
                    number(schema, "maximum")?,
                ],
            ),
            "string" => call(
                "str",
                vec![number(schema, "minLength")?, number(schema, "maxLength")?],
            ),
            "array" => {
                let items = match schema.get("items") {
                    Some(items) => expr(items, defs)?,
                    None => "undefined".to_owned(),
                };
                let prefix = match schema.get("prefixItems") {
                    Some(Value::Array(parts)) => list(
                        parts
                            .iter()
                            .map(|part| expr(part, defs))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    Some(other) => return Err(format!("`prefixItems` is not an array: {other}")),
                    None => "[]".to_owned(),
                };
                call(
                    "array",
                    vec![
                        items,
                        prefix,
                        number(schema, "minItems")?,
                        number(schema, "maxItems")?,
                    ],
                )
            }
            "object" => {
                let mut properties = Vec::new();
                if let Some(props) = schema.get("properties") {
                    let props = props.as_object().ok_or("`properties` is not an object")?;
                    for (key, value) in props {
                        properties.push(format!("{key:?}: {}", expr(value, defs)?));
                    }
                }
                let required: Vec<Value> = match schema.get("required") {
                    Some(Value::Array(keys)) => keys.clone(),
                    Some(other) => return Err(format!("`required` is not an array: {other}")),
                    None => Vec::new(),
                };
                let rest = match schema.get("additionalProperties") {
                    None | Some(Value::Bool(true)) => String::new(),
                    Some(Value::Bool(false)) => ", false".to_owned(),
                    Some(other) => format!(", {}", expr(other, defs)?),
                };
                format!(
                    "object({{ {} }}, {}{rest})",
                    properties.join(", "),
                    Value::Array(required)
                )
            }
            other => return Err(format!("unknown type {other:?}")),
        });
    }
    Ok(match checks.len() {
        1 => checks.remove(0),
        _ => format!("some({}, false)", list(checks)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_keyword_without_a_check_is_an_error_not_a_check_skipped() {
        let err = expr(&json!({"type": "string", "pattern": "^a"}), "c").unwrap_err();
        assert!(err.contains("`pattern`"), "{err}");
        let err = expr(&json!({"$ref": "other.json"}), "c").unwrap_err();
        assert!(err.contains("$ref"), "{err}");
    }

    #[test]
    fn schemas_become_calls_of_the_sdk_checks() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": ["integer", "null"], "minimum": 0, "maximum": 9, "format": "uint8"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "kind": {"enum": ["a", "b"]},
                "pair": {"type": "array", "prefixItems": [{"type": "boolean"}, {"$ref": "#/$defs/P"}]},
            },
            "required": ["n"],
            "additionalProperties": false,
        });
        assert_eq!(
            expr(&schema, "s").unwrap(),
            "object({ \"kind\": literal([\"a\",\"b\"]), \"n\": some([num(true, 0, 9), nul], false), \
             \"pair\": array(undefined, [bool, ref(s, \"P\")]), \"tags\": array(str(), [], undefined, 3) }, [\"n\"], false)"
        );
        assert_eq!(expr(&json!(true), "s").unwrap(), "any");
        assert_eq!(expr(&json!({"const": 1}), "s").unwrap(), "literal([1])");
    }
}
