//! JSON helpers shared by the endpoint modules: request parsing that names the offending
//! field, canonical encoding for cache keys, and infallible serialisation of our own types.

use deja_core::{KeyBuilder, Usage};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;
use serde_json::{Map, Value};

use crate::error::WireError;

/// Parses a request body, turning every failure into a [`WireError`] that says what was
/// wrong and, for type errors, which field (`temperature`, `messages[0].content`).
pub(crate) fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        WireError::new(format!(
            "request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    // Parsed without tracking the path first (most bodies are valid, and tracking costs
    // about as much as parsing); a body that fails is parsed again to say where.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| syntax_error(&e))?;
    Ok(value)
}

fn syntax_error(e: &serde_json::Error) -> WireError {
    WireError::new(format!(
        "could not parse the JSON body of the request ({e}); the body must be one JSON object"
    ))
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> WireError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !matches!(inner.classify(), Category::Data) {
        return syntax_error(&inner);
    }
    let message = without_position(&inner.to_string());
    let at_root = path.is_empty() || path == ".";
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let param = if at_root {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return WireError::with_param(format!("missing required parameter '{param}'"), param);
    }
    if at_root {
        if message.starts_with("invalid type") {
            return WireError::new("the request body must be a JSON object");
        }
        return WireError::new(format!("invalid request body: {message}"));
    }
    WireError::with_param(format!("invalid value for '{path}': {message}"), path)
}

/// serde_json appends " at line L column C" to data errors; the client needs the field
/// name, which the path already gives, not a position in a body it did not format. Rust
/// type names are replaced by what they mean to a client.
fn without_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    };
    let mut out = message.to_string();
    for (rust, json) in [
        ("expected f64", "expected a number"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
    ] {
        if let Some(head) = out.strip_suffix(rust) {
            out = format!("{head}{json}");
        }
    }
    out
}

/// A canonical encoding of a JSON value for hashing: object keys sorted, no whitespace,
/// numbers as serde_json prints them. It does not depend on the map type serde_json was
/// built with (`preserve_order` keeps insertion order, which would make `{"a":1,"b":2}`
/// and `{"b":2,"a":1}` different keys).
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_canonical(value, &mut out);
    // serde_json writes UTF-8, and so does everything else here.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Writing to a Vec cannot fail, and a scalar always serialises.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's default map is already sorted; only an insertion-ordered one
            // (`preserve_order`) needs sorting, which costs an allocation.
            let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
            let mut write = |i: usize, key: &String, item: &Value| {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                write_canonical(item, out);
            };
            if sorted {
                for (i, (key, item)) in map.iter().enumerate() {
                    write(i, key, item);
                }
            } else {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    write(i, key, item);
                }
            }
            out.push(b'}');
        }
    }
}

/// [`canonical`] of anything serde can turn into a `Value`.
pub(crate) fn canonical_of<T: Serialize>(value: &T) -> String {
    canonical(&serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Keys an optional request parameter: absent and present (even with the default value)
/// are different keys, which is simple and never wrong.
pub(crate) fn key_param<T: Serialize>(b: &mut KeyBuilder, label: &str, value: &Option<T>) {
    b.opt_str(label, value.as_ref().map(canonical_of).as_deref());
}

/// Keys the parameters a request type does not know (its `extra` map): each is assumed to
/// change the answer. The `extra:` prefix keeps them apart from the known labels; sorted,
/// so field order does not matter.
pub(crate) fn key_extras(b: &mut KeyBuilder, extra: &Map<String, Value>) {
    let mut extras: Vec<_> = extra.iter().collect();
    extras.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in extras {
        b.str(&format!("extra:{name}"), &canonical(value));
    }
}

/// A JSON object, or an error naming `what` was expected to be one (an answer, an event).
pub(crate) fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(WireError::new(format!("{what} is not a JSON object"))),
        Err(e) => Err(WireError::new(format!("{what} is not valid JSON ({e})"))),
    }
}

/// Token usage in the shape Anthropic's messages and OpenAI's Responses API report it
/// (`input_tokens`, `output_tokens`); zeros for what is absent.
pub(crate) fn input_output_usage(usage: Option<&Value>) -> Usage {
    usage_named(usage, "input_tokens", "output_tokens")
}

/// Token usage from a `usage` object whose prompt and completion counts have these names
/// (chat's `prompt_tokens` and `completion_tokens`, for one); zeros for what is absent.
pub(crate) fn usage_named(usage: Option<&Value>, prompt: &str, completion: &str) -> Usage {
    let field = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        prompt_tokens: field(prompt),
        completion_tokens: field(completion),
    }
}

/// Serialises our own types and `Value`s. This cannot fail: every map key is a string and
/// no type here has a fallible `Serialize` impl (non-finite floats become `null`).
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The encoding keys were made with before it stopped allocating per value: cache keys
    /// must not change between versions.
    fn reference_canonical(value: &Value) -> String {
        match value {
            Value::Array(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(reference_canonical)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let parts: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| {
                        format!("{}:{}", Value::String(k.clone()), reference_canonical(v))
                    })
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            scalar => scalar.to_string(),
        }
    }

    #[test]
    fn canonical_is_the_reference_encoding() {
        let v: Value = serde_json::from_str(
            r#"{"z":[1.5,-0,1e300,null,true,"q\"uo\\te\n",{"é":"ü","a b":[]}],
                "\u0001ctl":{"y":{},"x":[[]]},"A":"中文 😀","a":12345678901234567890}"#,
        )
        .unwrap_or_default();
        assert!(v.is_object());
        assert_eq!(canonical(&v), reference_canonical(&v));
    }

    #[test]
    fn canonical_sorts_keys_recursively() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"s"}}"#)
            .unwrap_or_default();
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }

    #[test]
    fn position_is_stripped_and_types_named_for_clients() {
        let cases = [
            (
                "invalid type: string \"x\", expected f64 at line 1 column 20",
                "invalid type: string \"x\", expected a number",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer `-1`, expected a non-negative integer",
            ),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(without_position(input), want);
        }
    }
}
