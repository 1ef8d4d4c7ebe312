//! Anthropic's streamed answers: named server-sent events (`message_start`,
//! `content_block_start`, `content_block_delta`, `content_block_stop`, `message_delta`,
//! `message_stop`, `ping`, `error`) whose JSON data repeats the event name in its `type`
//! field. A recording keeps the data payloads only (as [`deja_core::Answer::Chunks`]), since
//! the name can be read back from `type`; [`encode_events`] writes both again on replay.
//!
//! The conversions serve an entry in the shape the client asked for: [`message_to_events`]
//! turns a non-streamed `message` into the events a stream of it carries (text, thinking
//! and signature, tool input as `input_json_delta`, citations), and [`events_to_message`]
//! reassembles a `message` from recorded events, the way Anthropic's SDKs accumulate a
//! stream. [`stream_completed`] says whether a recording holds a whole answer.
//!
//! The incremental parser is the OpenAI one ([`crate::sse::SseParser`]): it keeps `data`
//! and ignores the `event` line, which the `type` field repeats.

use bytes::Bytes;
use deja_core::Usage;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use crate::error::WireError;
use crate::json::{input_output_usage, parse_object, to_vec};

fn event_type(map: &Map<String, Value>) -> &str {
    map.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// Whether an event's data is `message_stop`, the end of an Anthropic stream. Cheap for
/// every other event: only data naming `message_stop` is parsed.
pub fn is_stream_end(data: &[u8]) -> bool {
    const NAME: &[u8] = b"message_stop";
    data.windows(NAME.len()).any(|w| w == NAME)
        && parse_object(data, "event").is_ok_and(|m| event_type(&m) == "message_stop")
}

/// A whole stream as Anthropic sends it: each payload as `event: <type>` and its `data`
/// ([`crate::sse::encode_named_events`]).
pub fn encode_events(events: &[Vec<u8>]) -> Bytes {
    crate::sse::encode_named_events(events)
}

/// Converts a non-streamed `message` body into the events a stream of the same answer
/// carries: `message_start` (the message with empty content, no stop reason, no output
/// tokens yet), a `ping`, per content block a start, its deltas and a stop, then
/// `message_delta` (stop reason, the whole usage) and `message_stop`.
pub fn message_to_events(body: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let message = parse_object(body, "message")?;
    if event_type(&message) != "message" {
        return Err(WireError::new("answer is not a 'message' object"));
    }
    let blocks = match message.get("content") {
        Some(Value::Array(blocks)) => blocks.as_slice(),
        _ => return Err(WireError::new("message has no 'content' array")),
    };
    let usage = message.get("usage").cloned().unwrap_or_else(|| json!({}));

    let mut start = message.clone();
    start.insert("content".into(), json!([]));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    start.remove("stop_details");
    let mut start_usage = usage.as_object().cloned().unwrap_or_default();
    start_usage.insert("output_tokens".into(), json!(0));
    start.insert("usage".into(), Value::Object(start_usage));

    let mut out = vec![
        to_vec(&json!({"type": "message_start", "message": start})),
        to_vec(&json!({"type": "ping"})),
    ];
    for (index, block) in blocks.iter().enumerate() {
        let Value::Object(block) = block else {
            return Err(WireError::new("a content block is not an object"));
        };
        let delta = |delta: Value| {
            to_vec(&json!({"type": "content_block_delta", "index": index, "delta": delta}))
        };
        let mut first = block.clone();
        let mut deltas = Vec::new();
        match event_type(block) {
            "text" => {
                first.insert("text".into(), json!(""));
                first.remove("citations");
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        deltas.push(delta(json!({"type": "text_delta", "text": text})));
                    }
                }
                if let Some(Value::Array(citations)) = block.get("citations") {
                    for citation in citations {
                        deltas.push(delta(
                            json!({"type": "citations_delta", "citation": citation}),
                        ));
                    }
                }
            }
            "thinking" => {
                first.insert("thinking".into(), json!(""));
                first.insert("signature".into(), json!(""));
                if let Some(thinking) = block.get("thinking").and_then(Value::as_str) {
                    deltas.push(delta(
                        json!({"type": "thinking_delta", "thinking": thinking}),
                    ));
                }
                if let Some(signature) = block.get("signature").and_then(Value::as_str) {
                    deltas.push(delta(
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
            }
            // Tool calls (`tool_use`, `server_tool_use`, `mcp_tool_use`): the input is
            // streamed as JSON text.
            _ if block.contains_key("input") => {
                first.insert("input".into(), json!({}));
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                if input != json!({}) {
                    let partial_json = String::from_utf8_lossy(&to_vec(&input)).into_owned();
                    deltas.push(delta(
                        json!({"type": "input_json_delta", "partial_json": partial_json}),
                    ));
                }
            }
            // Anything else (`redacted_thinking`, tool results, ...) arrives whole in its
            // start event.
            _ => {}
        }
        out.push(to_vec(&json!({
            "type": "content_block_start",
            "index": index,
            "content_block": first,
        })));
        out.extend(deltas);
        out.push(to_vec(
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }

    let mut stop = Map::new();
    for field in ["stop_reason", "stop_sequence"] {
        stop.insert(
            field.into(),
            message.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    if let Some(details) = message.get("stop_details").filter(|d| !d.is_null()) {
        stop.insert("stop_details".into(), details.clone());
    }
    out.push(to_vec(
        &json!({"type": "message_delta", "delta": stop, "usage": usage}),
    ));
    out.push(to_vec(&json!({"type": "message_stop"})));
    Ok(out)
}

/// Parses recorded events, failing on an `error` event or anything that is not an object.
fn parse_events(events: &[Vec<u8>]) -> Result<Vec<Map<String, Value>>, WireError> {
    events
        .iter()
        .map(|data| {
            let map = parse_object(data, "stream event")?;
            if event_type(&map) == "error" {
                return Err(WireError::new("stream contains an error event"));
            }
            Ok(map)
        })
        .collect()
}

/// Merges a delta into a content block: strings are appended (`text`, `thinking`,
/// `signature` starts empty), arrays extended, anything else set. Used for every delta
/// type but the two that need their own rule (tool input JSON and citations), so a new
/// text-like delta is reassembled without a change here.
fn merge_delta(block: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (key, value) in delta {
        if key == "type" {
            continue;
        }
        match (block.get_mut(key), value) {
            (Some(Value::String(acc)), Value::String(s)) => acc.push_str(s),
            (Some(Value::Array(acc)), Value::Array(items)) => acc.extend(items.iter().cloned()),
            _ => {
                block.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Reassembles a non-streamed `message` body from recorded events, as Anthropic's SDKs
/// do: the message of `message_start`, each content block from its start event and
/// deltas (tool input parsed from its JSON text), the stop reason and usage of
/// `message_delta` (its usage figures are totals and replace the start's).
pub fn events_to_message(events: &[Vec<u8>]) -> Result<Vec<u8>, WireError> {
    let parsed = parse_events(events)?;
    let mut message: Option<Map<String, Value>> = None;
    let mut blocks: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
    let mut input_json: BTreeMap<u64, String> = BTreeMap::new();
    for event in &parsed {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event_type(event) {
            "message_start" => match event.get("message") {
                Some(Value::Object(m)) => message = Some(m.clone()),
                _ => return Err(WireError::new("message_start has no message")),
            },
            "content_block_start" => match event.get("content_block") {
                Some(Value::Object(b)) => {
                    blocks.insert(index, b.clone());
                }
                _ => return Err(WireError::new("content_block_start has no content_block")),
            },
            "content_block_delta" => {
                let Some(Value::Object(delta)) = event.get("delta") else {
                    return Err(WireError::new("content_block_delta has no delta"));
                };
                let block = blocks.get_mut(&index).ok_or_else(|| {
                    WireError::new(format!("delta for content block {index} before its start"))
                })?;
                match event_type(delta) {
                    "input_json_delta" => {
                        let part = delta.get("partial_json").and_then(Value::as_str);
                        input_json
                            .entry(index)
                            .or_default()
                            .push_str(part.unwrap_or_default());
                    }
                    "citations_delta" => {
                        let citation = delta.get("citation").cloned().unwrap_or(Value::Null);
                        match block.get_mut("citations") {
                            Some(Value::Array(list)) => list.push(citation),
                            _ => {
                                block.insert("citations".into(), Value::Array(vec![citation]));
                            }
                        }
                    }
                    _ => merge_delta(block, delta),
                }
            }
            "message_delta" => {
                let Some(m) = message.as_mut() else {
                    return Err(WireError::new("message_delta before message_start"));
                };
                if let Some(Value::Object(delta)) = event.get("delta") {
                    for (key, value) in delta {
                        m.insert(key.clone(), value.clone());
                    }
                }
                if let Some(Value::Object(usage)) = event.get("usage") {
                    let total = m
                        .entry("usage")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(total) = total {
                        for (key, value) in usage.iter().filter(|(_, v)| !v.is_null()) {
                            total.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            // content_block_stop, message_stop, ping and event types this version does not
            // know carry nothing to assemble.
            _ => {}
        }
    }
    let Some(mut message) = message else {
        return Err(WireError::new("stream has no message_start event"));
    };
    for (index, json_text) in input_json {
        if json_text.trim().is_empty() {
            continue;
        }
        let input: Value = serde_json::from_str(&json_text).map_err(|e| {
            WireError::new(format!(
                "tool input of content block {index} is not valid JSON ({e})"
            ))
        })?;
        if let Some(block) = blocks.get_mut(&index) {
            block.insert("input".into(), input);
        }
    }
    message.insert(
        "content".into(),
        Value::Array(blocks.into_values().map(Value::Object).collect()),
    );
    Ok(to_vec(&Value::Object(message)))
}

/// Whether a recorded stream holds a whole answer: no error event, a `message_start`, every
/// content block that started also stopped, a `message_delta` with a stop reason, and
/// `message_stop` as the last event (pings aside).
pub fn stream_completed(events: &[Vec<u8>]) -> bool {
    let Ok(parsed) = parse_events(events) else {
        return false;
    };
    let mut started = false;
    let mut open: BTreeMap<u64, bool> = BTreeMap::new();
    let mut stop_reason = false;
    let mut last = "";
    for event in &parsed {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let kind = event_type(event);
        match kind {
            "message_start" => started = true,
            "content_block_start" => {
                open.insert(index, true);
            }
            "content_block_stop" => {
                open.insert(index, false);
            }
            "message_delta" => {
                stop_reason |= event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .is_some_and(|r| !r.is_null());
            }
            _ => {}
        }
        if kind != "ping" {
            last = kind;
        }
    }
    started && stop_reason && last == "message_stop" && !open.values().any(|&o| o)
}

/// Whether a non-streamed 2xx body is a whole answer worth storing: a `message` object
/// with a `content` array and a stop reason (not an `error`, not a message cut short
/// without one).
pub fn body_completed(body: &[u8]) -> bool {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.get("type").and_then(Value::as_str) == Some("message")
        && v.get("content").is_some_and(Value::is_array)
        && v.get("stop_reason").is_some_and(|r| !r.is_null())
}

/// The answer's text, to compare two answers: text blocks as they are, tool calls as their
/// name and input JSON, one block per line; thinking (which may differ while the answer does
/// not) and other blocks are left out.
pub fn message_text(body: &[u8]) -> Result<String, WireError> {
    let message = parse_object(body, "message")?;
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Err(WireError::new("message has no 'content' array"));
    };
    let texts: Vec<String> = blocks
        .iter()
        .filter_map(|block| match block.get("type").and_then(Value::as_str) {
            Some("text") => block
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ if block.get("input").is_some() => Some(format!(
                "{} {}",
                block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                block.get("input").map(Value::to_string).unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    Ok(texts.join("\n"))
}

/// Token usage of a non-streamed `message` (`input_tokens`, `output_tokens`); zeros when
/// absent or unreadable.
pub fn usage_from_body(body: &[u8]) -> Usage {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    input_output_usage(value.as_ref().and_then(|v| v.get("usage")))
}

/// Token usage of a streamed answer: `message_start`'s, with the totals of the last
/// `message_delta` replacing it field by field; zeros when absent.
pub fn usage_from_events(events: &[Vec<u8>]) -> Usage {
    let mut usage = Map::new();
    for data in events {
        let Ok(event) = parse_object(data, "event") else {
            continue;
        };
        let part = match event_type(&event) {
            "message_start" => event.get("message").and_then(|m| m.get("usage")),
            "message_delta" => event.get("usage"),
            _ => None,
        };
        if let Some(Value::Object(part)) = part {
            for (key, value) in part.iter().filter(|(_, v)| !v.is_null()) {
                usage.insert(key.clone(), value.clone());
            }
        }
    }
    input_output_usage(Some(&Value::Object(usage)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sse::{SseEvent, SseParser};

    /// A stream as Anthropic's API sends it (from its documentation, shortened).
    const RECORDED: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn record(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut parser = SseParser::new();
        // Split at an awkward size: events arrive in pieces.
        let events: Vec<SseEvent> = stream.chunks(7).flat_map(|c| parser.push(c)).collect();
        assert!(parser.finish());
        events
            .into_iter()
            .map(|e| match e {
                SseEvent::Data(d) => d,
                SseEvent::Done => panic!("Anthropic streams have no [DONE]"),
            })
            .collect()
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn body_completed_needs_a_message_with_a_stop_reason() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"#,
                true,
            ),
            (
                r#"{"type":"message","content":[],"stop_reason":null}"#,
                false,
            ),
            (
                r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
                false,
            ),
            (r#"{"type":"message","stop_reason":"end_turn"}"#, false),
            ("{}", false),
        ];
        for (body, want) in cases {
            assert_eq!(body_completed(body.as_bytes()), *want, "{body}");
        }
    }

    #[test]
    fn recorded_stream_reassembles_into_a_message() {
        let events = record(RECORDED.as_bytes());
        assert!(stream_completed(&events));
        assert!(is_stream_end(events.last().unwrap()));
        assert!(!is_stream_end(&events[0]));
        let message = json_of(&events_to_message(&events).unwrap());
        assert_eq!(
            message,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [
                    {"type": "text", "text": "Hello!"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"location": "San Francisco"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 25, "output_tokens": 89}
            })
        );
        assert_eq!(
            usage_from_events(&events),
            Usage {
                prompt_tokens: 25,
                completion_tokens: 89
            }
        );
    }

    fn message_with_every_block() -> Value {
        json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Paris is the capital.",
                 "citations": [{"type": "char_location", "cited_text": "Paris", "document_index": 0,
                                "start_char_index": 0, "end_char_index": 5}]},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "Paris", "n": [1, 2]}},
                {"type": "tool_use", "id": "toolu_3", "name": "noargs", "input": {}}
            ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 0}
        })
    }

    #[test]
    fn message_round_trips_through_events() {
        let message = message_with_every_block();
        let events = message_to_events(&to_vec(&message)).unwrap();
        assert!(stream_completed(&events));
        let types: Vec<String> = events
            .iter()
            .map(|e| json_of(e)["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types.first().map(String::as_str), Some("message_start"));
        assert_eq!(types[1], "ping");
        assert_eq!(
            types[types.len() - 2..],
            ["message_delta".to_string(), "message_stop".to_string()]
        );
        let start = json_of(&events[0]);
        assert_eq!(start["message"]["content"], json!([]));
        assert_eq!(start["message"]["stop_reason"], Value::Null);
        assert_eq!(start["message"]["usage"]["output_tokens"], 0);
        assert_eq!(start["message"]["usage"]["input_tokens"], 12);
        assert_eq!(json_of(&events_to_message(&events).unwrap()), message);
        assert_eq!(
            usage_from_body(&to_vec(&message)),
            Usage {
                prompt_tokens: 12,
                completion_tokens: 34
            }
        );
        assert_eq!(
            usage_from_events(&events),
            usage_from_body(&to_vec(&message))
        );
    }

    #[test]
    fn encoded_events_parse_back_with_their_names() {
        let message = message_with_every_block();
        let events = message_to_events(&to_vec(&message)).unwrap();
        let encoded = encode_events(&events);
        let text = std::str::from_utf8(&encoded).unwrap();
        for (block, data) in text.split_terminator("\n\n").zip(&events) {
            let (name_line, data_line) = block.split_once('\n').unwrap();
            let name = name_line.strip_prefix("event: ").unwrap();
            assert_eq!(json_of(data)["type"], name);
            assert_eq!(
                data_line.strip_prefix("data: ").unwrap().as_bytes(),
                &data[..]
            );
        }
        assert_eq!(record(&encoded), events);
        // A recorded stream replays as the same events it was recorded from.
        let recorded = record(RECORDED.as_bytes());
        assert_eq!(record(&encode_events(&recorded)), recorded);
        assert!(std::str::from_utf8(&encode_events(&recorded))
            .unwrap()
            .starts_with("event: message_start\ndata: {"));
    }

    #[test]
    fn incomplete_or_failed_streams_are_not_complete() {
        let events = record(RECORDED.as_bytes());
        let n = events.len();
        let without_stop = events[..n - 1].to_vec();
        let without_delta: Vec<Vec<u8>> = events
            .iter()
            .filter(|e| json_of(e)["type"] != "message_delta")
            .cloned()
            .collect();
        let unclosed_block: Vec<Vec<u8>> = events
            .iter()
            .filter(|e| json_of(e)["type"] != "content_block_stop")
            .cloned()
            .collect();
        let mut with_error = events[..4].to_vec();
        with_error.push(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .to_vec(),
        );
        with_error.extend_from_slice(&events[4..]);
        let mut garbage = events.clone();
        garbage.insert(2, b"not json".to_vec());
        for (name, case) in [
            ("no message_stop", without_stop),
            ("no message_delta", without_delta),
            ("unclosed block", unclosed_block),
            ("error event", with_error.clone()),
            ("garbage", garbage),
            ("empty", Vec::new()),
        ] {
            assert!(!stream_completed(&case), "{name}");
        }
        assert!(events_to_message(&with_error)
            .unwrap_err()
            .message
            .contains("error event"));
        assert!(events_to_message(&[]).is_err());
    }

    #[test]
    fn conversion_errors_are_clear() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "not valid JSON"),
            (b"[]", "not a JSON object"),
            (br#"{"type":"error"}"#, "not a 'message'"),
            (br#"{"type":"message"}"#, "no 'content' array"),
            (br#"{"type":"message","content":[1]}"#, "not an object"),
        ];
        for (body, want) in cases {
            let err = message_to_events(body).unwrap_err();
            assert!(err.message.contains(want), "{err}");
        }
        let bad_input = vec![
            br#"{"type":"message_start","message":{"type":"message","content":[]}}"#.to_vec(),
            br#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","input":{}}}"#.to_vec(),
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#.to_vec(),
        ];
        assert!(events_to_message(&bad_input)
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        let orphan = vec![
            br#"{"type":"message_start","message":{"type":"message","content":[]}}"#.to_vec(),
            br#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"#
                .to_vec(),
        ];
        assert!(events_to_message(&orphan)
            .unwrap_err()
            .message
            .contains("before its start"));
    }

    #[test]
    fn message_text_keeps_text_and_tool_calls() {
        let message = message_with_every_block();
        assert_eq!(
            message_text(&to_vec(&message)).unwrap(),
            "Paris is the capital.\nlookup {\"n\":[1,2],\"q\":\"Paris\"}\nnoargs {}"
        );
        assert!(message_text(b"{}").is_err());
        assert!(message_text(b"nope").is_err());
    }

    #[test]
    fn usage_defaults_to_zero() {
        assert_eq!(usage_from_body(b"{}"), Usage::default());
        assert_eq!(usage_from_body(b"not json"), Usage::default());
        assert_eq!(usage_from_events(&[b"x".to_vec()]), Usage::default());
    }
}
