//! The Responses API's streamed answers: named server-sent events (`response.created`,
//! `response.in_progress`, `response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta`, …, `response.completed`) whose JSON data repeats the event
//! name in its `type` field and numbers itself with `sequence_number`. A recording keeps
//! the data payloads only (as [`deja_core::Answer::Chunks`]); the name is read back from
//! `type` on replay ([`crate::sse::encode_named_events`]).
//!
//! The conversions serve an entry in the shape the client asked for:
//! [`response_to_events`] turns a stored `response` object into the events a stream of it
//! carries (message text and refusals as deltas, annotations, function call arguments,
//! reasoning summaries, every other output item whole), and [`events_to_response`] takes
//! the response a recorded stream ended with: `response.completed` carries it whole.
//! [`stream_completed`] and [`body_completed`] say whether an answer is whole enough to
//! store: only a response whose `status` is `completed`.

use deja_core::Usage;
use serde_json::{json, Map, Value};

use crate::error::WireError;
use crate::json::{input_output_usage, parse_object, to_vec};

fn kind(map: &Map<String, Value>) -> &str {
    map.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// The events that end a Responses stream: the response finished (completed, failed or
/// incomplete) or the stream failed.
const END_EVENTS: [&str; 4] = [
    "response.completed",
    "response.failed",
    "response.incomplete",
    "error",
];

/// Whether an event's data ends a Responses stream. Cheap for the deltas: only data naming
/// one of the end events is parsed.
pub fn is_stream_end(data: &[u8]) -> bool {
    let named = |name: &str| data.windows(name.len()).any(|w| w == name.as_bytes());
    END_EVENTS.iter().any(|e| named(e))
        && parse_object(data, "event").is_ok_and(|m| END_EVENTS.contains(&kind(&m)))
}

/// Numbers events as they are written.
struct Events {
    out: Vec<Vec<u8>>,
}

impl Events {
    fn push(&mut self, kind: &str, mut fields: Value) {
        if let Value::Object(map) = &mut fields {
            map.insert("type".into(), Value::String(kind.into()));
            map.insert("sequence_number".into(), json!(self.out.len()));
        }
        self.out.push(to_vec(&fields));
    }
}

/// Converts a stored `response` object into the events a stream of the same answer
/// carries: `response.created` and `response.in_progress` (the response in progress, no
/// output, no usage yet), per output item its `added` event, its content as deltas and its
/// `done` event, then `response.completed` with the response as stored.
pub fn response_to_events(body: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let response = parse_object(body, "response")?;
    if response.get("object").and_then(Value::as_str) != Some("response") {
        return Err(WireError::new("answer is not a 'response' object"));
    }
    let Some(Value::Array(output)) = response.get("output") else {
        return Err(WireError::new("response has no 'output' array"));
    };
    let mut started = response.clone();
    started.insert("status".into(), json!("in_progress"));
    started.insert("output".into(), json!([]));
    started.insert("usage".into(), Value::Null);
    if started.contains_key("completed_at") {
        started.insert("completed_at".into(), Value::Null);
    }
    let mut events = Events { out: Vec::new() };
    events.push("response.created", json!({ "response": started }));
    events.push("response.in_progress", json!({ "response": started }));
    for (index, item) in output.iter().enumerate() {
        item_events(&mut events, index, item);
    }
    events.push("response.completed", json!({ "response": response }));
    Ok(events.out)
}

/// One output item's events, as OpenAI streams them.
fn item_events(events: &mut Events, output_index: usize, item: &Value) {
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let mut added = item.clone();
    let in_progress = added.get("status").is_some();
    if let (Some(map), true) = (added.as_object_mut(), in_progress) {
        map.insert("status".into(), json!("in_progress"));
    }
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let parts = item
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            added["content"] = json!([]);
            events.push(
                "response.output_item.added",
                json!({ "output_index": output_index, "item": added }),
            );
            for (content_index, part) in parts.iter().enumerate() {
                part_events(events, &id, output_index, content_index, part);
            }
        }
        Some("function_call") => {
            let arguments = item.get("arguments").cloned().unwrap_or(json!(""));
            added["arguments"] = json!("");
            events.push(
                "response.output_item.added",
                json!({ "output_index": output_index, "item": added }),
            );
            events.push(
                "response.function_call_arguments.delta",
                json!({ "item_id": id, "output_index": output_index, "delta": arguments }),
            );
            events.push(
                "response.function_call_arguments.done",
                json!({
                    "item_id": id,
                    "output_index": output_index,
                    "name": item.get("name"),
                    "arguments": arguments,
                }),
            );
        }
        Some("reasoning") => {
            let summary = item
                .get("summary")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            added["summary"] = json!([]);
            events.push(
                "response.output_item.added",
                json!({ "output_index": output_index, "item": added }),
            );
            for (summary_index, part) in summary.iter().enumerate() {
                let text = part.get("text").cloned().unwrap_or(json!(""));
                let at = json!({
                    "item_id": id,
                    "output_index": output_index,
                    "summary_index": summary_index,
                });
                let with = |extra: Value| merged(&at, extra);
                events.push(
                    "response.reasoning_summary_part.added",
                    with(json!({ "part": { "type": "summary_text", "text": "" } })),
                );
                events.push(
                    "response.reasoning_summary_text.delta",
                    with(json!({ "delta": text })),
                );
                events.push(
                    "response.reasoning_summary_text.done",
                    with(json!({ "text": text })),
                );
                events.push(
                    "response.reasoning_summary_part.done",
                    with(json!({ "part": part })),
                );
            }
        }
        // Tool calls of built-in tools and anything newer: whole in `added`, no deltas a
        // client would have to know.
        _ => events.push(
            "response.output_item.added",
            json!({ "output_index": output_index, "item": item }),
        ),
    }
    events.push(
        "response.output_item.done",
        json!({ "output_index": output_index, "item": item }),
    );
}

/// One content part of a message: text and refusals as a delta, then done.
fn part_events(
    events: &mut Events,
    item_id: &Value,
    output_index: usize,
    content_index: usize,
    part: &Value,
) {
    let at = json!({
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
    });
    let with = |extra: Value| merged(&at, extra);
    match part.get("type").and_then(Value::as_str) {
        Some("output_text") => {
            let text = part.get("text").cloned().unwrap_or(json!(""));
            let mut empty = part.clone();
            empty["text"] = json!("");
            if empty.get("annotations").is_some() {
                empty["annotations"] = json!([]);
            }
            if empty.get("logprobs").is_some() {
                empty["logprobs"] = json!([]);
            }
            let logprobs = part.get("logprobs").cloned().unwrap_or(json!([]));
            events.push(
                "response.content_part.added",
                with(json!({ "part": empty })),
            );
            events.push(
                "response.output_text.delta",
                with(json!({ "delta": text, "logprobs": logprobs })),
            );
            let annotations = part
                .get("annotations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (annotation_index, annotation) in annotations.into_iter().enumerate() {
                events.push(
                    "response.output_text.annotation.added",
                    with(json!({ "annotation_index": annotation_index, "annotation": annotation })),
                );
            }
            events.push(
                "response.output_text.done",
                with(json!({ "text": text, "logprobs": logprobs })),
            );
        }
        Some("refusal") => {
            let refusal = part.get("refusal").cloned().unwrap_or(json!(""));
            events.push(
                "response.content_part.added",
                with(json!({ "part": { "type": "refusal", "refusal": "" } })),
            );
            events.push("response.refusal.delta", with(json!({ "delta": refusal })));
            events.push("response.refusal.done", with(json!({ "refusal": refusal })));
        }
        _ => events.push("response.content_part.added", with(json!({ "part": part }))),
    }
    events.push("response.content_part.done", with(json!({ "part": part })));
}

/// `base`'s fields with `extra`'s added.
fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// The response a recorded stream ended with: `response.completed` carries it whole (the
/// same object a non-streamed call returns).
pub fn events_to_response(events: &[Vec<u8>]) -> Result<Vec<u8>, WireError> {
    for data in events.iter().rev() {
        let event = parse_object(data, "event")?;
        if kind(&event) == "response.completed" {
            return match event.get("response") {
                Some(r @ Value::Object(_)) => Ok(to_vec(r)),
                _ => Err(WireError::new("'response.completed' carries no response")),
            };
        }
    }
    Err(WireError::new(
        "the stream has no 'response.completed' event",
    ))
}

/// Whether a response object is a whole answer: `object: "response"`, `status:
/// "completed"`, an `output` array and no error.
fn completed(response: &Map<String, Value>) -> bool {
    response.get("object").and_then(Value::as_str) == Some("response")
        && response.get("status").and_then(Value::as_str) == Some("completed")
        && response.get("output").is_some_and(Value::is_array)
        && response.get("error").is_none_or(Value::is_null)
}

/// Whether a recorded stream holds a whole answer: its last event is `response.completed`
/// with a completed response (a failed, incomplete or cut stream is not stored).
pub fn stream_completed(events: &[Vec<u8>]) -> bool {
    let Some(last) = events.last() else {
        return false;
    };
    let Ok(event) = parse_object(last, "event") else {
        return false;
    };
    kind(&event) == "response.completed"
        && matches!(event.get("response"), Some(Value::Object(r)) if completed(r))
}

/// Whether a non-streamed 2xx body is a whole answer worth storing (not a queued
/// background response, not one cut short by `max_output_tokens`).
pub fn body_completed(body: &[u8]) -> bool {
    matches!(serde_json::from_slice::<Value>(body), Ok(Value::Object(r)) if completed(&r))
}

/// Token usage of a response object (`usage.input_tokens`, `usage.output_tokens`); zeros
/// when absent or unreadable.
pub fn usage_from_body(body: &[u8]) -> Usage {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    input_output_usage(value.as_ref().and_then(|r| r.get("usage")))
}

/// Token usage of a recorded stream: its `response.completed`'s; zeros when absent.
pub fn usage_from_events(events: &[Vec<u8>]) -> Usage {
    match events_to_response(events) {
        Ok(body) => usage_from_body(&body),
        Err(_) => Usage::default(),
    }
}

/// The answer's text, to compare two answers: message text (or refusal) as it is, function
/// calls as their name and arguments (parsed when JSON; without call ids, which differ on
/// every call), other items without their ids; one item per line. Reasoning is left out:
/// it may differ while the answer does not.
pub fn response_text(body: &[u8]) -> Result<String, WireError> {
    let response = parse_object(body, "response")?;
    let Some(Value::Array(output)) = response.get("output") else {
        return Err(WireError::new("response has no 'output' array"));
    };
    let texts: Vec<String> = output
        .iter()
        .filter_map(|item| match item.get("type").and_then(Value::as_str) {
            Some("message") => Some(
                item.get("content")
                    .and_then(Value::as_array)
                    .map(|parts| {
                        parts
                            .iter()
                            .filter_map(|p| {
                                p.get("text")
                                    .or_else(|| p.get("refusal"))
                                    .and_then(Value::as_str)
                            })
                            .collect::<Vec<_>>()
                            .join("")
                    })
                    .unwrap_or_default(),
            ),
            Some("reasoning") => None,
            Some("function_call") => {
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) => {
                        serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                    }
                    Some(v) => v.clone(),
                    None => Value::Null,
                };
                Some(json!({ "name": item.get("name"), "arguments": arguments }).to_string())
            }
            _ => {
                let mut item = item.clone();
                if let Some(map) = item.as_object_mut() {
                    map.remove("id");
                    map.remove("call_id");
                }
                Some(item.to_string())
            }
        })
        .collect();
    Ok(texts.join("\n"))
}

#[cfg(test)]
mod tests;
