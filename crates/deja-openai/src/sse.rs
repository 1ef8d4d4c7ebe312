//! Server-sent events for streamed chat completions: an incremental parser for recording
//! an upstream stream, the encoder for replaying one, and the conversions between a
//! streamed answer (`chat.completion.chunk` payloads) and a non-streamed one
//! (`chat.completion`), so an entry recorded one way can be served the other way.
//!
//! The parser follows the SSE specification's line rules; it keeps only `data` (the
//! OpenAI API puts everything there) and ignores `event`, `id`, `retry` and comments.

use bytes::Bytes;
use deja_core::Usage;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::error::WireError;
use crate::json::{parse_object, to_vec, usage_named};

/// The event that ends an OpenAI stream.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// The event's data: its `data:` lines' values joined by `\n`.
    Data(Vec<u8>),
    /// `data: [DONE]`, the end of an OpenAI stream.
    Done,
}

/// Incremental SSE parser: feed it bytes as they arrive, in chunks split anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// Data lines of the event being read, joined by `\n`.
    data: Vec<u8>,
    /// Whether the current event has a `data` field (an empty one still dispatches).
    has_data: bool,
    /// The previous chunk ended in `\r`; a `\n` at the start of this one belongs to it.
    skip_lf: bool,
    /// Whether the first bytes were seen (a leading byte-order mark is dropped).
    started: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes` and returns the events they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.started && !bytes.is_empty() {
            // A BOM may itself be split; buffer until three bytes are known.
            self.line.extend_from_slice(bytes);
            if self.line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.line) {
                return events;
            }
            self.started = true;
            let mut buffered = std::mem::take(&mut self.line);
            if buffered.starts_with(b"\xEF\xBB\xBF") {
                buffered.drain(..3);
            }
            return self.push_started(&buffered);
        }
        if bytes.is_empty() {
            return events;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        self.scan(bytes, &mut events);
        events
    }

    fn push_started(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.scan(bytes, &mut events);
        events
    }

    fn scan(&mut self, mut bytes: &[u8], events: &mut Vec<SseEvent>) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..i]);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, events);
            let crlf = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if crlf {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let data = std::mem::take(&mut self.data);
                self.has_data = false;
                if data.trim_ascii() == b"[DONE]" {
                    events.push(SseEvent::Done);
                } else {
                    events.push(SseEvent::Data(data));
                }
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }

    /// Ends the input. True when it ended on an event boundary: no partial line and no
    /// undispatched event (which the specification says to discard).
    pub fn finish(self) -> bool {
        self.line.is_empty() && !self.has_data
    }
}

/// One event carrying `chunk` as its data. A payload with line breaks becomes several
/// `data:` lines, which the parser joins back with `\n`.
pub fn encode_event(chunk: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(chunk.len() + 8);
    let mut rest = chunk;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end.unwrap_or(rest.len())]);
        out.push(b'\n');
        match end {
            None => break,
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// A whole stream: every chunk as an event, then `data: [DONE]`.
pub fn encode_chunks(chunks: &[Vec<u8>]) -> Bytes {
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len() + 8).sum::<usize>() + 16);
    for chunk in chunks {
        out.extend_from_slice(&encode_event(chunk));
    }
    out.extend_from_slice(DONE_EVENT);
    Bytes::from(out)
}

/// A whole stream of named events, as Anthropic's Messages API and OpenAI's Responses API
/// send them: each payload as `event: <type>` (its own `type` field) and its `data`. No
/// `[DONE]`: those streams end with an event of their own.
pub fn encode_named_events(events: &[Vec<u8>]) -> Bytes {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + 40).sum());
    for data in events {
        if let Ok(map) = parse_object(data, "event") {
            let name = map.get("type").and_then(Value::as_str).unwrap_or_default();
            // A name with a line break would end the field early; such data is sent bare.
            if !name.is_empty() && !name.contains(['\n', '\r']) {
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
            }
        }
        out.extend_from_slice(&encode_event(data));
    }
    Bytes::from(out)
}

/// Top-level fields copied between a completion and its chunks (`id`, `created`, `model`,
/// `system_fingerprint`, `service_tier`, and any the API adds).
fn envelope(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "object" | "choices" | "usage"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Converts a non-streamed `chat.completion` body into the `chat.completion.chunk`
/// payloads a stream of the same answer would carry. Per choice: a role chunk, the
/// content, the refusal, one chunk per tool call, one with any other message fields
/// (annotations, audio, ...), and the finish chunk. With `include_usage`, every chunk has
/// `"usage": null` and a last chunk with no choices carries the usage.
pub fn completion_to_chunks(body: &[u8], include_usage: bool) -> Result<Vec<Vec<u8>>, WireError> {
    let completion = parse_object(body, "completion")?;
    let base = envelope(&completion);
    let choices = match completion.get("choices") {
        Some(Value::Array(choices)) => choices.as_slice(),
        _ => return Err(WireError::new("completion has no 'choices' array")),
    };
    let chunk = |choice: Value| -> Vec<u8> {
        let mut map = base.clone();
        map.insert("object".into(), "chat.completion.chunk".into());
        map.insert("choices".into(), Value::Array(vec![choice]));
        if include_usage {
            map.insert("usage".into(), Value::Null);
        }
        to_vec(&Value::Object(map))
    };

    let mut out = Vec::new();
    for (position, choice) in choices.iter().enumerate() {
        let index = choice
            .get("index")
            .cloned()
            .unwrap_or_else(|| Value::from(position));
        let message = choice.get("message").and_then(Value::as_object);
        let empty = Map::new();
        let message = message.unwrap_or(&empty);
        let mut logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        let delta = |delta: Value, logprobs: Value, finish_reason: Value| {
            serde_json::json!({
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            })
        };

        let role = message.get("role").cloned().unwrap_or("assistant".into());
        let content = message.get("content").and_then(Value::as_str);
        let mut first = Map::new();
        first.insert("role".into(), role);
        if content.is_some() {
            first.insert("content".into(), "".into());
        }
        first.insert("refusal".into(), Value::Null);
        out.push(chunk(delta(Value::Object(first), Value::Null, Value::Null)));

        if let Some(content) = content.filter(|c| !c.is_empty()) {
            let lp = std::mem::take(&mut logprobs);
            out.push(chunk(delta(
                serde_json::json!({ "content": content }),
                lp,
                Value::Null,
            )));
        }
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            out.push(chunk(delta(
                serde_json::json!({ "refusal": refusal }),
                Value::Null,
                Value::Null,
            )));
        }
        if let Some(Value::Array(calls)) = message.get("tool_calls") {
            for (i, call) in calls.iter().enumerate() {
                let mut call = call.as_object().cloned().unwrap_or_default();
                call.insert("index".into(), Value::from(i));
                out.push(chunk(delta(
                    serde_json::json!({ "tool_calls": [call] }),
                    Value::Null,
                    Value::Null,
                )));
            }
        }
        let others: Map<String, Value> = message
            .iter()
            .filter(|(k, v)| {
                !v.is_null() && !matches!(k.as_str(), "role" | "content" | "refusal" | "tool_calls")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !others.is_empty() {
            out.push(chunk(delta(
                Value::Object(others),
                Value::Null,
                Value::Null,
            )));
        }
        let finish_reason = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        out.push(chunk(delta(
            Value::Object(Map::new()),
            logprobs,
            finish_reason,
        )));
    }

    if include_usage {
        if let Some(usage) = completion.get("usage").filter(|u| !u.is_null()) {
            let mut map = base.clone();
            map.insert("object".into(), "chat.completion.chunk".into());
            map.insert("choices".into(), Value::Array(Vec::new()));
            map.insert("usage".into(), usage.clone());
            out.push(to_vec(&Value::Object(map)));
        }
    }
    Ok(out)
}

/// One choice being reassembled from deltas.
#[derive(Default)]
struct ChoiceAcc {
    message: Map<String, Value>,
    tool_calls: BTreeMap<u64, Map<String, Value>>,
    logprobs: Option<Value>,
    finish_reason: Option<Value>,
}

/// Merges a delta into what was accumulated: strings are appended (content, refusal,
/// tool-call arguments, audio data and transcript) except identifiers, which are set;
/// objects merge recursively; arrays are appended (logprobs, annotations); `null` means
/// "nothing in this chunk" and is skipped.
fn merge(into: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (key, value) in delta {
        if value.is_null() {
            continue;
        }
        let replace = matches!(key.as_str(), "id" | "type" | "name" | "role" | "index");
        match (into.get_mut(key), value) {
            (Some(Value::String(acc)), Value::String(s)) if !replace => acc.push_str(s),
            (Some(Value::Object(acc)), Value::Object(obj)) => merge(acc, obj),
            (Some(Value::Array(acc)), Value::Array(items)) => acc.extend(items.iter().cloned()),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Parses recorded chunks, failing on an error payload or anything that is not a chunk.
fn parse_chunks(chunks: &[Vec<u8>]) -> Result<Vec<Map<String, Value>>, WireError> {
    chunks
        .iter()
        .map(|c| {
            let map = parse_object(c, "stream chunk")?;
            if map.get("error").is_some_and(|e| !e.is_null()) {
                return Err(WireError::new("stream contains an error payload"));
            }
            Ok(map)
        })
        .collect()
}

/// Reassembles a `chat.completion` body from `chat.completion.chunk` payloads: content
/// and refusal concatenated per choice, tool calls merged by index, logprobs appended,
/// the finish reason, and usage from the usage chunk if there is one.
pub fn chunks_to_completion(chunks: &[Vec<u8>]) -> Result<Vec<u8>, WireError> {
    let parsed = parse_chunks(chunks)?;
    let mut out = match parsed.first() {
        Some(first) => envelope(first),
        None => return Err(WireError::new("stream has no chunks")),
    };
    let mut choices: BTreeMap<u64, ChoiceAcc> = BTreeMap::new();
    let mut usage = None;
    for chunk in &parsed {
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let Some(Value::Array(list)) = chunk.get("choices") else {
            continue;
        };
        for choice in list {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let acc = choices.entry(index).or_default();
            if let Some(Value::Object(delta)) = choice.get("delta") {
                let mut delta = delta.clone();
                if let Some(Value::Array(calls)) = delta.remove("tool_calls") {
                    for (position, call) in calls.iter().enumerate() {
                        let Value::Object(call) = call else { continue };
                        let i = call
                            .get("index")
                            .and_then(Value::as_u64)
                            .unwrap_or(position as u64);
                        merge(acc.tool_calls.entry(i).or_default(), call);
                    }
                }
                merge(&mut acc.message, &delta);
            }
            match (choice.get("logprobs"), &mut acc.logprobs) {
                (None | Some(Value::Null), _) => {}
                (Some(Value::Object(lp)), Some(Value::Object(acc_lp))) => merge(acc_lp, lp),
                (Some(lp), slot) => *slot = Some(lp.clone()),
            }
            if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                acc.finish_reason = Some(reason.clone());
            }
        }
    }

    let choices: Vec<Value> = choices
        .into_iter()
        .map(|(index, acc)| {
            let ChoiceAcc {
                mut message,
                tool_calls,
                logprobs,
                finish_reason,
            } = acc;
            message.entry("role").or_insert("assistant".into());
            message.entry("content").or_insert(Value::Null);
            message.entry("refusal").or_insert(Value::Null);
            if !tool_calls.is_empty() {
                let calls = tool_calls
                    .into_values()
                    .map(|mut call| {
                        call.remove("index");
                        Value::Object(call)
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::Array(calls));
            }
            serde_json::json!({
                "index": index,
                "message": message,
                "logprobs": logprobs.unwrap_or(Value::Null),
                "finish_reason": finish_reason.unwrap_or(Value::Null),
            })
        })
        .collect();
    out.insert("object".into(), "chat.completion".into());
    out.insert("choices".into(), Value::Array(choices));
    if let Some(usage) = usage {
        out.insert("usage".into(), usage);
    }
    Ok(to_vec(&Value::Object(out)))
}

/// Whether a recorded stream holds a whole answer: every chunk is a chunk (no error
/// payload), at least one choice appeared, and every choice that appeared got a finish
/// reason. The server additionally requires `[DONE]`.
pub fn stream_completed(chunks: &[Vec<u8>]) -> bool {
    let Ok(parsed) = parse_chunks(chunks) else {
        return false;
    };
    let mut finished: BTreeMap<u64, bool> = BTreeMap::new();
    for chunk in &parsed {
        let Some(Value::Array(list)) = chunk.get("choices") else {
            continue;
        };
        for choice in list {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let done = choice.get("finish_reason").is_some_and(|r| !r.is_null());
            *finished.entry(index).or_default() |= done;
        }
    }
    !finished.is_empty() && finished.values().all(|&done| done)
}

/// Whether a non-streamed 2xx body is a whole answer worth storing: a JSON object with
/// no `error`, a non-empty `choices` array, and a finish reason for every choice. (A body
/// that is merely JSON, `{"error": …}` or `{"choices": []}` from a misbehaving upstream or
/// gateway, is not.)
pub fn body_completed(body: &[u8]) -> bool {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return false;
    }
    match v.get("choices") {
        Some(Value::Array(choices)) if !choices.is_empty() => choices.iter().all(|c| {
            c.get("finish_reason").is_some_and(|r| !r.is_null())
                && c.get("message").is_some_and(Value::is_object)
        }),
        _ => false,
    }
}

fn usage_of(value: Option<&Value>) -> Usage {
    usage_named(value, "prompt_tokens", "completion_tokens")
}

/// Token usage of a non-streamed answer; zeros when absent or unreadable.
pub fn usage_from_body(body: &[u8]) -> Usage {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    usage_of(value.as_ref().and_then(|v| v.get("usage")))
}

/// Token usage of a streamed answer (its usage chunk); zeros when absent.
pub fn usage_from_chunks(chunks: &[Vec<u8>]) -> Usage {
    chunks
        .iter()
        .rev()
        .filter_map(|c| serde_json::from_slice::<Value>(c).ok())
        .find_map(|v| v.get("usage").filter(|u| u.is_object()).cloned())
        .map(|u| usage_of(Some(&u)))
        .unwrap_or_default()
}

/// Adapts a recorded stream to what the replaying client asked for. `stream_options` is
/// not part of the cache key (it does not change the answer), so a recording may carry a
/// usage chunk the client did not ask for, or lack one it did: without `include_usage`
/// the usage-only chunk and the `"usage": null` fields are dropped; with it, a missing
/// usage chunk is added from `usage` (what was recorded with the entry).
pub fn replay_chunks(chunks: &[Vec<u8>], include_usage: bool, usage: Usage) -> Vec<Vec<u8>> {
    let is_usage_chunk = |map: &Map<String, Value>| {
        matches!(map.get("choices"), Some(Value::Array(c)) if c.is_empty())
            && map.get("usage").is_some_and(|u| !u.is_null())
    };
    let mut out = Vec::with_capacity(chunks.len() + 1);
    let mut saw_usage = false;
    let mut first: Option<Map<String, Value>> = None;
    for chunk in chunks {
        let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(chunk) else {
            out.push(chunk.clone());
            continue;
        };
        if first.is_none() {
            first = Some(envelope(&map));
        }
        if is_usage_chunk(&map) {
            saw_usage = true;
            if include_usage {
                out.push(chunk.clone());
            }
            continue;
        }
        match (include_usage, map.get("usage")) {
            (false, Some(Value::Null)) => {
                map.remove("usage");
                out.push(to_vec(&Value::Object(map)));
            }
            (true, None) => {
                map.insert("usage".into(), Value::Null);
                out.push(to_vec(&Value::Object(map)));
            }
            _ => out.push(chunk.clone()),
        }
    }
    if include_usage && !saw_usage {
        let mut map = first.unwrap_or_default();
        map.insert("object".into(), "chat.completion.chunk".into());
        map.insert("choices".into(), Value::Array(Vec::new()));
        map.insert(
            "usage".into(),
            serde_json::json!({
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            }),
        );
        out.push(to_vec(&Value::Object(map)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_all(input: &[u8], split: usize) -> (Vec<SseEvent>, bool) {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for piece in input.chunks(split.max(1)) {
            events.extend(p.push(piece));
        }
        (events, p.finish())
    }

    fn data(s: &str) -> SseEvent {
        SseEvent::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn parser_table() {
        let cases: Vec<(&[u8], Vec<SseEvent>, bool)> = vec![
            (
                b"data: {\"a\":1}\n\ndata: [DONE]\n\n",
                vec![data("{\"a\":1}"), SseEvent::Done],
                true,
            ),
            (
                b"data: x\r\n\r\ndata: y\r\rdata:z\n\n",
                vec![data("x"), data("y"), data("z")],
                true,
            ),
            (
                b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: a\ndata: b\n\n",
                vec![data("a\nb")],
                true,
            ),
            (b"\xEF\xBB\xBFdata: bom\n\n", vec![data("bom")], true),
            (b"data:  two spaces\n\n", vec![data(" two spaces")], true),
            (b"data\n\n", vec![data("")], true),
            (b"\n\n\n", vec![], true),
            (b"data: a\n\ndata: partial", vec![data("a")], false),
            (b"data: a\n\ndata: b\n", vec![data("a")], false),
            (
                b"data: a\n\ndata: b\r\n\r",
                vec![data("a"), data("b")],
                true,
            ),
        ];
        for (input, want, clean) in cases {
            for split in 1..=input.len().max(1) {
                let (events, finished) = parse_all(input, split);
                assert_eq!(
                    events,
                    want,
                    "{:?} split {split}",
                    String::from_utf8_lossy(input)
                );
                assert_eq!(
                    finished,
                    clean,
                    "{:?} split {split}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn encode_and_parse_round_trip() {
        let chunks = vec![
            br#"{"a":1}"#.to_vec(),
            b"{\n  \"pretty\": true\n}".to_vec(),
            b"".to_vec(),
        ];
        let encoded = encode_chunks(&chunks);
        assert!(encoded.ends_with(DONE_EVENT));
        assert_eq!(&encode_event(br#"{"a":1}"#)[..], b"data: {\"a\":1}\n\n");
        for split in 1..=encoded.len() {
            let (events, clean) = parse_all(&encoded, split);
            assert!(clean);
            let mut want: Vec<SseEvent> = chunks.iter().cloned().map(SseEvent::Data).collect();
            want.push(SseEvent::Done);
            assert_eq!(events, want, "split {split}");
        }
    }

    fn text_completion() -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "service_tier": "default",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there!", "refusal": null, "annotations": []},
                "logprobs": null, "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
                      "prompt_tokens_details": {"cached_tokens": 0}}
        })
    }

    fn n2_completion() -> Value {
        json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1700000001, "model": "m",
            "system_fingerprint": null,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A", "refusal": null},
                 "logprobs": {"content": [{"token": "A", "logprob": -0.1, "bytes": [65], "top_logprobs": []}], "refusal": null},
                 "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": "", "refusal": null},
                 "logprobs": null, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        })
    }

    fn tool_completion() -> Value {
        json!({
            "id": "chatcmpl-3", "object": "chat.completion", "created": 1700000002, "model": "m",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                ]},
                "logprobs": null, "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        })
    }

    fn refusal_completion() -> Value {
        json!({
            "id": "chatcmpl-4", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })
    }

    #[test]
    fn completion_chunks_completion_round_trip() {
        for original in [
            text_completion(),
            n2_completion(),
            tool_completion(),
            refusal_completion(),
        ] {
            let body = serde_json::to_vec(&original).unwrap();
            let chunks = completion_to_chunks(&body, true).unwrap();
            assert!(stream_completed(&chunks), "{original}");
            for c in &chunks {
                let v: Value = serde_json::from_slice(c).unwrap();
                assert_eq!(v["object"], "chat.completion.chunk");
                assert_eq!(v["id"], original["id"]);
                assert_eq!(v["model"], original["model"]);
                assert!(
                    v.get("usage").is_some(),
                    "include_usage puts usage on every chunk"
                );
            }
            let back: Value =
                serde_json::from_slice(&chunks_to_completion(&chunks).unwrap()).unwrap();
            assert_eq!(back, original);
            assert_eq!(usage_from_chunks(&chunks), usage_from_body(&body));
        }
    }

    #[test]
    fn chunks_without_usage() {
        let body = serde_json::to_vec(&text_completion()).unwrap();
        let chunks = completion_to_chunks(&body, false).unwrap();
        for c in &chunks {
            let v: Value = serde_json::from_slice(c).unwrap();
            assert!(v.get("usage").is_none());
        }
        assert_eq!(usage_from_chunks(&chunks), Usage::default());
        let back: Value = serde_json::from_slice(&chunks_to_completion(&chunks).unwrap()).unwrap();
        let mut want = text_completion();
        want.as_object_mut().unwrap().remove("usage");
        assert_eq!(back, want);
    }

    #[test]
    fn upstream_style_stream_is_reassembled() {
        // Deltas as OpenAI sends them: tool-call arguments in pieces, choices interleaved.
        let chunks: Vec<Vec<u8>> = [
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]},"logprobs":null,"finish_reason":null}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"logprobs":null,"finish_reason":null}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"lo"},"logprobs":null,"finish_reason":null}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{},"logprobs":null,"finish_reason":"stop"}]}),
        ]
        .iter()
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect();
        assert!(stream_completed(&chunks));
        assert!(!stream_completed(&chunks[..6]), "choice 1 never finished");
        let back: Value = serde_json::from_slice(&chunks_to_completion(&chunks).unwrap()).unwrap();
        assert_eq!(back["object"], "chat.completion");
        assert_eq!(
            back["choices"][0]["message"]["tool_calls"],
            json!([
                {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}
            ])
        );
        assert_eq!(back["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(back["choices"][1]["message"]["content"], "Hello");
        assert_eq!(back["choices"][1]["message"]["role"], "assistant");
        assert!(back.get("usage").is_none());
    }

    #[test]
    fn body_completed_table() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
                true,
            ),
            (
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]},"finish_reason":"tool_calls"}]}"#,
                true,
            ),
            (r#"{"choices":[]}"#, false),
            (r#"{"error":{"message":"overloaded"}}"#, false),
            (
                r#"{"error":{"message":"x"},"choices":[{"message":{},"finish_reason":"stop"}]}"#,
                false,
            ),
            (
                r#"{"choices":[{"index":0,"message":{"content":"cut"},"finish_reason":null}]}"#,
                false,
            ),
            (r#"{"choices":[{"index":0,"finish_reason":"stop"}]}"#, false),
            (r#"[1,2]"#, false),
            ("not json", false),
        ];
        for (body, want) in cases {
            assert_eq!(body_completed(body.as_bytes()), *want, "{body}");
        }
    }

    #[test]
    fn stream_completed_table() {
        let finished = br#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_vec();
        let open =
            br#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#.to_vec();
        let usage = br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#.to_vec();
        let error = br#"{"error":{"message":"overloaded"}}"#.to_vec();
        let cases: Vec<(Vec<Vec<u8>>, bool)> = vec![
            (vec![open.clone(), finished.clone()], true),
            (vec![open.clone(), finished.clone(), usage.clone()], true),
            (vec![open.clone()], false),
            (vec![], false),
            (vec![usage.clone()], false),
            (vec![open.clone(), finished.clone(), error], false),
            (vec![open, b"not json".to_vec(), finished], false),
        ];
        for (chunks, want) in cases {
            assert_eq!(stream_completed(&chunks), want, "{chunks:?}");
        }
        assert_eq!(
            usage_from_chunks(&[usage]),
            Usage {
                prompt_tokens: 1,
                completion_tokens: 2
            }
        );
    }

    #[test]
    fn conversion_errors() {
        assert!(completion_to_chunks(b"nope", false).is_err());
        assert!(completion_to_chunks(b"[]", false).is_err());
        assert!(completion_to_chunks(b"{}", false).is_err());
        assert!(chunks_to_completion(&[]).is_err());
        assert!(chunks_to_completion(&[b"{\"error\":{}}".to_vec()]).is_err());
        assert_eq!(usage_from_body(b"garbage"), Usage::default());
        assert_eq!(usage_from_body(b"{}"), Usage::default());
    }

    #[test]
    fn replay_adds_or_drops_the_usage_chunk_as_asked() {
        let usage = Usage {
            prompt_tokens: 2,
            completion_tokens: 3,
        };
        let with: Vec<Vec<u8>> = vec![
            br#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}"#.to_vec(),
            br#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#.to_vec(),
        ];
        let dropped = replay_chunks(&with, false, usage);
        assert_eq!(dropped.len(), 1);
        let v: Value = serde_json::from_slice(&dropped[0]).unwrap();
        assert!(v.get("usage").is_none());
        assert_eq!(replay_chunks(&with, true, usage), with);
        let added = replay_chunks(&dropped, true, usage);
        assert_eq!(added.len(), 2);
        assert_eq!(usage_from_chunks(&added), usage);
        let v: Value = serde_json::from_slice(&added[0]).unwrap();
        assert!(v["usage"].is_null());
    }
}
