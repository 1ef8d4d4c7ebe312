//! Anthropic's Messages API (`POST /v1/messages`): the request type, its validation, its
//! cache key, and the error body Anthropic clients read. [`stream`] converts between a
//! streamed answer (Anthropic's named SSE events) and a non-streamed one (a `message`
//! object), so an entry recorded one way can be served the other way.
//!
//! The key is built like the chat completions key ([`crate::chat`]): by destructuring
//! [`MessagesRequest`] without `..`, so a field added to the request does not compile until
//! someone decides whether it changes the answer, and unknown fields land in `extra` and
//! are keyed. The prompt is the text of the last user message; the system prompt, earlier
//! turns, the non-text blocks of the last user message and every answer-changing parameter
//! (`max_tokens`, `temperature`, `top_p`, `top_k`, `stop_sequences`, `tools`,
//! `tool_choice`, `thinking`, ...) and the `anthropic-version` / `anthropic-beta` headers
//! form the partition. Keys live in their own domain, so an Anthropic request never
//! matches an OpenAI one.
//!
//! Like the rest of this crate, this module does no I/O and does not decide whether a
//! request is cached.

pub mod stream;

use deja_core::{normalize_prompt, KeyBuilder, SemanticMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatKey;
use crate::error::WireError;
use crate::json::{canonical, canonical_of, key_extras, key_param, parse_request};

/// A Messages API request with every documented field. Numbers and booleans are typed so a
/// wrong type is rejected with the field's name; structured parameters are kept as JSON.
/// `null` is treated like an absent field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<Message>,
    /// Required by the API; deja requires it too, so a request it forwards is valid.
    pub max_tokens: u32,
    /// A string or an array of text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// A container id (string) or container parameters (object), for code execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_management: Option<Value>,
    /// Top-level prompt-caching marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_profile_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// Parameters this version does not know; passed through upstream and part of the key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One conversation turn: `content` is a string or an array of content blocks
/// (`text`, `image`, `document`, `tool_use`, `tool_result`, `thinking`, ...).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub role: String,
    pub content: Value,
    /// Other message fields, kept and keyed.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Parses and validates a Messages API request body.
pub fn parse_messages(body: &[u8]) -> Result<MessagesRequest, WireError> {
    let req: MessagesRequest = parse_request(body)?;
    if req.max_tokens == 0 {
        return Err(WireError::with_param(
            "'max_tokens' must be at least 1",
            "max_tokens",
        ));
    }
    if req.messages.is_empty() {
        return Err(WireError::with_param(
            "'messages' must contain at least one message",
            "messages",
        ));
    }
    for (i, message) in req.messages.iter().enumerate() {
        match message.role.as_str() {
            "user" | "assistant" => {}
            "system" => {
                return Err(WireError::with_param(
                    "unexpected role \"system\"; the Messages API takes the system prompt in the top-level 'system' parameter",
                    format!("messages[{i}].role"),
                ))
            }
            other => {
                return Err(WireError::with_param(
                    format!("unexpected role {other:?}; use \"user\" or \"assistant\""),
                    format!("messages[{i}].role"),
                ))
            }
        }
        check_blocks(&message.content, &format!("messages[{i}].content"))?;
    }
    if let Some(system) = &req.system {
        check_blocks(system, "system")?;
    }
    Ok(req)
}

/// Content is a string or an array of blocks, each an object with a string `type`.
fn check_blocks(content: &Value, param: &str) -> Result<(), WireError> {
    match content {
        Value::String(_) => Ok(()),
        Value::Array(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                if block.get("type").and_then(Value::as_str).is_none() {
                    return Err(WireError::with_param(
                        "each content block must be an object with a string 'type'",
                        format!("{param}[{j}]"),
                    ));
                }
            }
            Ok(())
        }
        _ => Err(WireError::with_param(
            format!("'{param}' must be a string or an array of content blocks"),
            param,
        )),
    }
}

/// Whether the client asked for a streamed (SSE) answer.
pub fn is_stream(req: &MessagesRequest) -> bool {
    req.stream == Some(true)
}

/// The request headers that select API behaviour and so can change the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiHeaders {
    /// `anthropic-version`.
    pub version: Option<String>,
    /// `anthropic-beta`: every value, comma-separated lists split, trimmed.
    pub beta: Vec<String>,
}

/// Builds the cache key of a request for `tenant`.
pub fn messages_key(req: &MessagesRequest, tenant: &str, api: &ApiHeaders) -> ChatKey {
    let MessagesRequest {
        model,
        messages,
        max_tokens,
        system,
        // `user_id` for abuse detection: does not change the answer. Tenants are keyed
        // separately.
        metadata: _,
        stop_sequences,
        // The transport, not the answer: streamed and non-streamed answers are converted
        // into each other on replay.
        stream: _,
        temperature,
        top_p,
        top_k,
        tools,
        tool_choice,
        thinking,
        // Which capacity serves the request (latency/price), not what it answers.
        service_tier: _,
        container,
        mcp_servers,
        output_config,
        context_management,
        // Anthropic's own prompt cache: where it may reuse work, not what is answered.
        cache_control: _,
        // Diagnostics come back in the body, so they are part of the answer.
        diagnostics,
        // Where and how fast the same model runs, and whom it is billed to.
        inference_geo: _,
        speed: _,
        user_profile_id: _,
        workspace_id: _,
        extra,
    } = req;

    let mut b = KeyBuilder::new("anthropic-messages/v1");
    b.str("tenant", tenant);
    b.str("model", model);
    b.opt_str("anthropic-version", api.version.as_deref());
    let mut beta = api.beta.clone();
    beta.sort();
    beta.dedup();
    b.str("anthropic-beta", &beta.join(","));
    b.opt_str(
        "system",
        system
            .as_ref()
            .map(|s| canonical(&without_cache_control(s)))
            .as_deref(),
    );

    // As for chat: the last user message carries the prompt, everything before it is the
    // context, everything after it (an assistant prefill) is keyed and turns semantic
    // matching off.
    let last_user = messages.iter().rposition(|m| m.role == "user");
    b.opt_str(
        "last_user_position",
        last_user.map(|i| i.to_string()).as_deref(),
    );
    let mut prompt_text = String::new();
    let mut has_tool_result = false;
    for (i, message) in messages.iter().enumerate() {
        if Some(i) == last_user {
            let split = split_prompt(message);
            prompt_text = split.text;
            has_tool_result = split.has_tool_result;
            b.str("last_user_rest", &canonical(&split.rest));
        } else {
            let mut m = message.clone();
            m.content = without_cache_control(&m.content);
            b.str("message", &canonical_of(&m));
        }
    }

    key_param(&mut b, "max_tokens", &Some(max_tokens));
    key_param(&mut b, "stop_sequences", stop_sequences);
    key_param(&mut b, "temperature", temperature);
    key_param(&mut b, "top_p", top_p);
    key_param(&mut b, "top_k", top_k);
    b.opt_str(
        "tools",
        tools
            .as_ref()
            .map(|t| canonical(&without_cache_control(t)))
            .as_deref(),
    );
    key_param(&mut b, "tool_choice", tool_choice);
    key_param(&mut b, "thinking", thinking);
    key_param(&mut b, "container", container);
    key_param(&mut b, "mcp_servers", mcp_servers);
    key_param(&mut b, "output_config", output_config);
    key_param(&mut b, "context_management", context_management);
    key_param(&mut b, "diagnostics", diagnostics);
    // Unknown parameters are assumed to change the answer; sorted so that field order does
    // not matter.
    key_extras(&mut b, extra);

    let prompt = normalize_prompt(&prompt_text);
    let ends_with_user = last_user.is_some() && last_user == messages.len().checked_sub(1);
    // A turn that returns tool results is matched exactly only, as in chat: its meaning is
    // in the results (keyed in the partition), not in the text beside them.
    let semantic = if ends_with_user && !prompt.is_empty() && !has_tool_result {
        SemanticMode::Allowed
    } else {
        SemanticMode::ExactOnly
    };
    ChatKey {
        partition: b.finish_partition(),
        prompt,
        semantic,
        model: model.clone(),
    }
}

/// The blocks of an array without their `cache_control` markers, which tell Anthropic
/// where it may reuse work and do not change the answer. Only the blocks' own field is
/// removed (not a field of that name deeper inside, such as a tool schema's property).
fn without_cache_control(value: &Value) -> Value {
    match value {
        Value::Array(blocks) => Value::Array(
            blocks
                .iter()
                .map(|block| match block {
                    Value::Object(map) => {
                        let mut map = map.clone();
                        map.remove("cache_control");
                        Value::Object(map)
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The last user message split into its prompt text and what goes into the partition.
struct PromptSplit {
    text: String,
    /// Other message fields and the block layout: non-text blocks whole (two different
    /// images never share an entry), text blocks without their text; a string content is
    /// keyed as one text block, as it means the same.
    rest: Value,
    has_tool_result: bool,
}

fn split_prompt(message: &Message) -> PromptSplit {
    let mut rest: Map<String, Value> = message.extra.clone();
    rest.insert("role".into(), Value::String(message.role.clone()));
    let mut texts: Vec<&str> = Vec::new();
    let mut has_tool_result = false;
    let layout = match &message.content {
        Value::String(s) => {
            texts.push(s);
            serde_json::json!([{ "type": "text" }])
        }
        Value::Array(blocks) => Value::Array(
            blocks
                .iter()
                .map(|block| {
                    let kind = block.get("type").and_then(Value::as_str);
                    match kind {
                        Some("text") => texts.extend(block.get("text").and_then(Value::as_str)),
                        Some("tool_result") => has_tool_result = true,
                        _ => {}
                    }
                    let mut stripped = block.as_object().cloned().unwrap_or_default();
                    stripped.remove("cache_control");
                    if kind == Some("text") {
                        stripped.remove("text");
                    }
                    Value::Object(stripped)
                })
                .collect(),
        ),
        other => other.clone(),
    };
    rest.insert("content".into(), layout);
    PromptSplit {
        text: texts.join("\n"),
        rest: Value::Object(rest),
        has_tool_result,
    }
}

/// Field order is fixed by the structs, whatever map type `serde_json` was built with.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":..,"message":..}}`, the error body Anthropic's API and
/// SDKs use. `kind` is one of Anthropic's error types (`invalid_request_error`,
/// `authentication_error`, `not_found_error`, `request_too_large`, `api_error`, ...).
pub fn error_body(kind: &str, message: &str) -> Vec<u8> {
    crate::json::to_vec(&ErrorBody {
        kind: "error",
        error: ErrorFields { kind, message },
    })
}

/// Anthropic's error type for an HTTP status deja itself answers with.
pub fn error_kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        // 400, and (Anthropic's documentation: "We may also use this error type for other
        // 4XX status codes not listed below") 405, 408, ...
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "What is Rust?"}]
        })
    }

    fn key_with(v: &Value, api: &ApiHeaders) -> ChatKey {
        let body = serde_json::to_vec(v).unwrap();
        messages_key(&parse_messages(&body).unwrap(), "t1", api)
    }

    fn key_of(v: &Value) -> ChatKey {
        key_with(v, &ApiHeaders::default())
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    #[test]
    fn answer_changing_parameters_change_the_partition() {
        let cases: &[(&str, Value)] = &[
            ("max_tokens", json!(1024)),
            ("system", json!("You are verbose.")),
            ("system", Value::Null),
            ("stop_sequences", json!(["\n\nHuman:"])),
            ("temperature", json!(0.2)),
            ("top_p", json!(0.5)),
            ("top_k", json!(5)),
            (
                "tools",
                json!([{"name": "get_weather", "input_schema": {"type": "object"}}]),
            ),
            ("tool_choice", json!({"type": "any"})),
            (
                "thinking",
                json!({"type": "enabled", "budget_tokens": 2048}),
            ),
            ("container", json!("container_1")),
            ("mcp_servers", json!([{"type": "url", "url": "https://x"}])),
            (
                "output_config",
                json!({"format": {"type": "json_schema", "schema": {}}}),
            ),
            ("context_management", json!({"edits": []})),
            ("diagnostics", json!({"previous_message_id": "msg_1"})),
            ("some_future_parameter", json!(1)),
        ];
        let plain = key_of(&base());
        for (field, value) in cases {
            let k = key_of(&with(field, value.clone()));
            assert_ne!(
                k.partition, plain.partition,
                "{field} must change the partition"
            );
            assert_eq!(k.prompt, plain.prompt, "{field}");
        }
    }

    #[test]
    fn transport_and_bookkeeping_fields_do_not_change_the_key() {
        let cases: &[(&str, Value)] = &[
            ("stream", json!(true)),
            ("metadata", json!({"user_id": "u-1"})),
            ("service_tier", json!("standard_only")),
            ("cache_control", json!({"type": "ephemeral"})),
            ("inference_geo", json!("eu")),
            ("speed", json!("fast")),
            ("user_profile_id", json!("p-1")),
            ("workspace_id", json!("wrkspc_1")),
        ];
        let plain = key_of(&base());
        for (field, value) in cases {
            assert_eq!(key_of(&with(field, value.clone())), plain, "{field}");
        }
        // Prompt-caching markers on blocks do not change the key either.
        let marked = with(
            "system",
            json!([{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]),
        );
        let unmarked = with(
            "system",
            json!([{"type": "text", "text": "You are terse."}]),
        );
        assert_eq!(key_of(&marked), key_of(&unmarked));
        let marked_prompt = with(
            "messages",
            json!([{"role": "user", "content": [{"type": "text", "text": "What is Rust?", "cache_control": {"type": "ephemeral"}}]}]),
        );
        assert_eq!(key_of(&marked_prompt).partition, plain.partition);
        assert_eq!(key_of(&marked_prompt).prompt, plain.prompt);
    }

    #[test]
    fn api_headers_model_tenant_and_earlier_turns_change_the_partition() {
        let plain = key_of(&base());
        let version = ApiHeaders {
            version: Some("2023-06-01".into()),
            beta: vec![],
        };
        let beta = ApiHeaders {
            version: None,
            beta: vec!["b".into(), "a".into()],
        };
        let beta_reordered = ApiHeaders {
            version: None,
            beta: vec!["a".into(), "b".into(), "a".into()],
        };
        assert_ne!(key_with(&base(), &version).partition, plain.partition);
        assert_ne!(key_with(&base(), &beta).partition, plain.partition);
        assert_eq!(
            key_with(&base(), &beta).partition,
            key_with(&base(), &beta_reordered).partition,
            "the order of beta flags does not matter"
        );
        assert_ne!(
            key_of(&with("model", json!("claude-opus-4"))).partition,
            plain.partition
        );
        let earlier = with(
            "messages",
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "What is Rust?"}
            ]),
        );
        let k = key_of(&earlier);
        assert_ne!(k.partition, plain.partition);
        assert_eq!(k.prompt, "What is Rust?");
        let body = serde_json::to_vec(&base()).unwrap();
        let req = parse_messages(&body).unwrap();
        let api = ApiHeaders::default();
        assert_ne!(
            messages_key(&req, "a", &api).partition,
            messages_key(&req, "b", &api).partition
        );
    }

    #[test]
    fn anthropic_and_openai_keys_never_collide() {
        let openai = crate::chat::parse_chat(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}]}"#,
        )
        .unwrap();
        let anthropic = parse_messages(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}]}"#,
        )
        .unwrap();
        assert_ne!(
            crate::chat::chat_key(&openai, "t").partition,
            messages_key(&anthropic, "t", &ApiHeaders::default()).partition
        );
    }

    #[test]
    fn prompt_text_blocks_and_other_blocks() {
        let string = key_of(&base());
        let block = key_of(&with(
            "messages",
            json!([{"role": "user", "content": [{"type": "text", "text": "What is Rust?"}]}]),
        ));
        assert_eq!(string, block, "a string is one text block");
        let spaced = key_of(&with(
            "messages",
            json!([{"role": "user", "content": "  What   is\n Rust? "}]),
        ));
        assert_eq!(spaced, string, "the prompt is normalised");

        let image = |data: &str| {
            key_of(&with(
                "messages",
                json!([{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                    {"type": "text", "text": "describe"}
                ]}]),
            ))
        };
        let (a, b) = (image("AAAA"), image("BBBB"));
        assert_eq!(a.prompt, "describe");
        assert_eq!(a.prompt, b.prompt);
        assert_ne!(a.partition, b.partition, "different images never share");
        assert_eq!(a.semantic, SemanticMode::Allowed);

        let two = key_of(&with(
            "messages",
            json!([{"role": "user", "content": [
                {"type": "text", "text": "hello"},
                {"type": "text", "text": "world"}
            ]}]),
        ));
        assert_eq!(two.prompt, "hello world");
    }

    #[test]
    fn semantic_mode() {
        let tool_turn = |result: &str| {
            json!([
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": result},
                    {"type": "text", "text": "and tomorrow?"}
                ]}
            ])
        };
        let cases = [
            (
                json!([{"role": "user", "content": "hi"}]),
                SemanticMode::Allowed,
            ),
            (
                json!([{"role": "user", "content": "   "}]),
                SemanticMode::ExactOnly,
            ),
            (
                json!([{"role": "user", "content": []}]),
                SemanticMode::ExactOnly,
            ),
            (
                json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "prefill"}]),
                SemanticMode::ExactOnly,
            ),
            (tool_turn("sunny"), SemanticMode::ExactOnly),
        ];
        for (messages, want) in cases {
            assert_eq!(
                key_of(&with("messages", messages.clone())).semantic,
                want,
                "{messages}"
            );
        }
        let sunny = key_of(&with("messages", tool_turn("sunny")));
        let rainy = key_of(&with("messages", tool_turn("rainy")));
        assert_eq!(sunny.prompt, "and tomorrow?");
        assert_ne!(sunny.partition, rainy.partition, "tool results are keyed");
    }

    #[test]
    fn position_of_the_last_user_message_is_keyed() {
        let a = key_of(&with(
            "messages",
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
        ));
        let b = key_of(&with(
            "messages",
            json!([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]),
        ));
        assert_ne!(a.partition, b.partition);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (b"{not json", None, "could not parse the JSON body"),
            (b"[1]", None, "must be a JSON object"),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                Some("max_tokens"),
                "missing required parameter 'max_tokens'",
            ),
            (
                br#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
                "missing required parameter 'model'",
            ),
            (
                br#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#,
                Some("max_tokens"),
                "at least 1",
            ),
            (
                br#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#,
                Some("max_tokens"),
                "invalid value for 'max_tokens'",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[]}"#,
                Some("messages"),
                "at least one message",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
                Some("messages[0].role"),
                "top-level 'system'",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"robot","content":"x"}]}"#,
                Some("messages[0].role"),
                "unexpected role \"robot\"",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"user"}]}"#,
                Some("messages[0].content"),
                "missing required parameter",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":7}]}"#,
                Some("messages[0].content"),
                "string or an array",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
                Some("messages[0].content[0]"),
                "string 'type'",
            ),
            (
                br#"{"model":"m","max_tokens":5,"system":5,"messages":[{"role":"user","content":"x"}]}"#,
                Some("system"),
                "string or an array",
            ),
            (
                br#"{"model":"m","max_tokens":5,"temperature":"hot","messages":[{"role":"user","content":"x"}]}"#,
                Some("temperature"),
                "invalid value for 'temperature'",
            ),
            (
                br#"{"model":"m","max_tokens":5,"stop_sequences":"x","messages":[{"role":"user","content":"x"}]}"#,
                Some("stop_sequences"),
                "invalid value for 'stop_sequences'",
            ),
        ];
        for (body, param, message) in cases {
            let err = parse_messages(body).unwrap_err();
            let text = String::from_utf8_lossy(body);
            assert_eq!(err.param.as_deref(), *param, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn parse_keeps_unknown_fields_for_the_upstream() {
        let body = br#"{"model":"m","max_tokens":5,"temperature":null,"stream":true,"messages":[{"role":"user","content":"x"}],"future":{"a":1}}"#;
        let req = parse_messages(body).unwrap();
        assert!(is_stream(&req));
        assert_eq!(req.temperature, None);
        assert_eq!(req.extra.get("future"), Some(&json!({"a": 1})));
        let plain = parse_messages(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert!(!is_stream(&plain));
    }

    #[test]
    fn error_body_snapshot() {
        assert_eq!(
            String::from_utf8_lossy(&error_body("invalid_request_error", "say \"hi\"")),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"say \"hi\""}}"#
        );
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (405, "invalid_request_error"),
            (408, "invalid_request_error"),
            (502, "api_error"),
            (504, "api_error"),
            (500, "api_error"),
        ] {
            assert_eq!(error_kind(status), kind, "{status}");
        }
    }
}
