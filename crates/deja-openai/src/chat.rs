//! `POST /v1/chat/completions`: the request type, its validation, and its cache key.
//!
//! The key is built by destructuring [`ChatRequest`] without `..`, so a field added to the
//! request does not compile until someone decides whether it changes the answer. Fields
//! this crate does not know yet land in `extra` and are part of the key: an unknown
//! parameter is assumed to change the answer.
//!
//! This module does not decide *whether* a request is cached (that is policy, in the
//! server and core); it only says what identifies it.

use deja_core::{normalize_prompt, KeyBuilder, PartitionKey, SemanticMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::WireError;
use crate::json::{canonical, canonical_of, key_extras, key_param, parse_request};

/// A chat completion request with every documented field. Numbers and booleans are typed
/// so that a wrong type is rejected with the field's name; structured parameters are kept
/// as JSON. `null` is treated like an absent field, as OpenAI does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ChatRequest {
    /// Required by [`parse_chat`]. Empty only from [`parse_chat_without_model`] (an API that
    /// names the model in the path), and then not sent on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    /// A string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Deprecated in favour of `tools`, still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<Value>,
    /// Deprecated in favour of `tool_choice`, still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Parameters this version does not know; passed through upstream and part of the key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One conversation message. `content` is a string, an array of content parts, or absent
/// (an assistant message that only calls tools); [`parse_chat`] rejects anything else.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Other message fields (`refusal`, `audio`, `function_call`, ...), kept and keyed.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Parses and validates a chat completion request body.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, WireError> {
    let req = parse_chat_without_model(body)?;
    if req.model.is_empty() {
        return Err(missing_model());
    }
    Ok(req)
}

/// [`parse_chat`] for an API whose path names the model (Azure OpenAI's
/// `/openai/deployments/{deployment}/chat/completions`): the body may leave `model` out,
/// and then it is `""`.
pub fn parse_chat_without_model(body: &[u8]) -> Result<ChatRequest, WireError> {
    let req: ChatRequest = parse_request(body)?;
    if req.messages.is_empty() {
        return Err(WireError::with_param(
            "'messages' must contain at least one message",
            "messages",
        ));
    }
    for (i, message) in req.messages.iter().enumerate() {
        match &message.content {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                if let Some(j) = parts.iter().position(|p| !p.is_object()) {
                    return Err(WireError::with_param(
                        "each content part must be an object",
                        format!("messages[{i}].content[{j}]"),
                    ));
                }
            }
            Some(_) => {
                return Err(WireError::with_param(
                    "message content must be a string or an array of content parts",
                    format!("messages[{i}].content"),
                ));
            }
        }
    }
    Ok(req)
}

/// An absent (or empty) `model`, in the words of the other missing parameters.
pub(crate) fn missing_model() -> WireError {
    WireError::with_param("missing required parameter 'model'", "model")
}

/// Whether the client asked for a streamed (SSE) answer.
pub fn is_stream(req: &ChatRequest) -> bool {
    req.stream == Some(true)
}

/// Whether a streamed answer must end with a usage chunk
/// (`stream_options.include_usage`).
pub fn include_usage(req: &ChatRequest) -> bool {
    req.stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// What identifies a chat request in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatKey {
    /// Everything that changes the answer except the text of the last user message.
    pub partition: PartitionKey,
    /// The text of the last user message, normalised with [`normalize_prompt`].
    pub prompt: String,
    /// `Allowed` only when the conversation ends with a non-empty user message.
    pub semantic: SemanticMode,
    pub model: String,
}

/// Builds the cache key of a request for `tenant`.
pub fn chat_key(req: &ChatRequest, tenant: &str) -> ChatKey {
    let ChatRequest {
        model,
        messages,
        // Sampling and length parameters change the answer.
        temperature,
        top_p,
        n,
        // The transport, not the answer: a streamed and a non-streamed answer are
        // converted into each other on replay.
        stream: _,
        stream_options: _,
        stop,
        max_tokens,
        max_completion_tokens,
        presence_penalty,
        frequency_penalty,
        logit_bias,
        logprobs,
        top_logprobs,
        // Abuse monitoring only; does not change the answer. Tenants are keyed separately.
        user: _,
        seed,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        functions,
        function_call,
        reasoning_effort,
        modalities,
        audio,
        prediction,
        // Storage and bookkeeping on OpenAI's side (stored completions, their tags).
        store: _,
        metadata: _,
        // Which capacity serves the request (latency/price), not what it answers.
        service_tier: _,
        web_search_options,
        verbosity,
        // Hints for OpenAI's prompt cache and abuse detection; the answer is the same.
        prompt_cache_key: _,
        safety_identifier: _,
        extra,
    } = req;

    let mut b = KeyBuilder::new("chat/v1");
    b.str("tenant", tenant);
    b.str("model", model);

    // The last user message carries the prompt. Everything before it is the context the
    // prompt is asked in; everything after it (tool calls and results) makes the request
    // mean something the prompt alone does not say, so it is keyed and semantic matching
    // is off.
    let last_user = messages.iter().rposition(|m| m.role == "user");
    b.opt_str(
        "last_user_position",
        last_user.map(|i| i.to_string()).as_deref(),
    );
    let mut prompt_text = String::new();
    for (i, message) in messages.iter().enumerate() {
        if Some(i) == last_user {
            let (text, rest) = split_prompt(message);
            prompt_text = text;
            b.str("last_user_rest", &canonical(&rest));
        } else {
            b.str("message", &canonical_of(message));
        }
    }

    // Every parameter below can change the answer. Absent and present-with-the-default
    // (`temperature: 1`) are different keys: simple, and never wrong.
    key_param(&mut b, "temperature", temperature);
    key_param(&mut b, "top_p", top_p);
    key_param(&mut b, "n", n);
    key_param(&mut b, "stop", stop);
    key_param(&mut b, "max_tokens", max_tokens);
    key_param(&mut b, "max_completion_tokens", max_completion_tokens);
    key_param(&mut b, "presence_penalty", presence_penalty);
    key_param(&mut b, "frequency_penalty", frequency_penalty);
    key_param(&mut b, "logit_bias", logit_bias);
    key_param(&mut b, "logprobs", logprobs);
    key_param(&mut b, "top_logprobs", top_logprobs);
    key_param(&mut b, "seed", seed);
    key_param(&mut b, "tools", tools);
    key_param(&mut b, "tool_choice", tool_choice);
    key_param(&mut b, "parallel_tool_calls", parallel_tool_calls);
    key_param(&mut b, "response_format", response_format);
    key_param(&mut b, "functions", functions);
    key_param(&mut b, "function_call", function_call);
    key_param(&mut b, "reasoning_effort", reasoning_effort);
    key_param(&mut b, "modalities", modalities);
    key_param(&mut b, "audio", audio);
    key_param(&mut b, "prediction", prediction);
    key_param(&mut b, "web_search_options", web_search_options);
    key_param(&mut b, "verbosity", verbosity);
    // Unknown parameters are assumed to change the answer. The "extra:" prefix keeps them
    // apart from the known labels above; sorted so that field order does not matter.
    key_extras(&mut b, extra);

    let prompt = normalize_prompt(&prompt_text);
    let ends_with_user = last_user.is_some() && last_user == messages.len().checked_sub(1);
    let semantic = if ends_with_user && !prompt.is_empty() {
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

/// Splits the last user message into its text (the prompt) and the rest, which goes into
/// the partition: its other fields (`name`, ...) and its non-text parts (images, audio,
/// files), so two different images never share an entry. Text parts are kept in the rest
/// as `{"type":"text"}` without their text, so the layout of parts is keyed; string
/// content is keyed as one such part, as it means the same as one text part.
fn split_prompt(message: &Message) -> (String, Value) {
    let mut rest = match serde_json::to_value(message) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut texts: Vec<&str> = Vec::new();
    let layout = match &message.content {
        None => Value::Null,
        Some(Value::String(s)) => {
            texts.push(s);
            serde_json::json!([{ "type": "text" }])
        }
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .map(|part| match part_text(part) {
                    Some(text) => {
                        texts.push(text);
                        let mut stripped = part.clone();
                        if let Some(obj) = stripped.as_object_mut() {
                            obj.remove("text");
                        }
                        stripped
                    }
                    None => part.clone(),
                })
                .collect(),
        ),
        Some(other) => other.clone(),
    };
    rest.insert("content".to_string(), layout);
    (texts.join("\n"), Value::Object(rest))
}

fn part_text(part: &Value) -> Option<&str> {
    if part.get("type").and_then(Value::as_str) != Some("text") {
        return None;
    }
    part.get("text").and_then(Value::as_str)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is Rust?"}
            ]
        })
    }

    fn key_of(v: &Value) -> ChatKey {
        let body = serde_json::to_vec(v).unwrap();
        chat_key(&parse_chat(&body).unwrap(), "t1")
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    #[test]
    fn answer_changing_parameters_change_the_partition() {
        let cases: &[(&str, Value)] = &[
            ("temperature", json!(0.2)),
            ("top_p", json!(0.5)),
            ("n", json!(2)),
            ("stop", json!(["\n"])),
            ("max_tokens", json!(10)),
            ("max_completion_tokens", json!(10)),
            ("presence_penalty", json!(0.5)),
            ("frequency_penalty", json!(0.5)),
            ("logit_bias", json!({"50256": -100})),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("seed", json!(42)),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("tool_choice", json!("none")),
            ("parallel_tool_calls", json!(false)),
            ("response_format", json!({"type": "json_object"})),
            ("functions", json!([{"name": "f"}])),
            ("function_call", json!("auto")),
            ("reasoning_effort", json!("low")),
            ("modalities", json!(["text", "audio"])),
            ("audio", json!({"voice": "alloy", "format": "mp3"})),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("web_search_options", json!({})),
            ("verbosity", json!("low")),
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
    fn transport_and_bookkeeping_fields_do_not_change_the_partition() {
        let cases: &[(&str, Value)] = &[
            ("stream", json!(true)),
            ("stream_options", json!({"include_usage": true})),
            ("user", json!("u-123")),
            ("store", json!(true)),
            ("metadata", json!({"k": "v"})),
            ("service_tier", json!("flex")),
            ("prompt_cache_key", json!("abc")),
            ("safety_identifier", json!("hash")),
        ];
        let plain = key_of(&base());
        for (field, value) in cases {
            let k = key_of(&with(field, value.clone()));
            assert_eq!(k, plain, "{field} must not change the key");
        }
    }

    #[test]
    fn context_changes_the_partition() {
        let plain = key_of(&base());
        let other_model = with("model", json!("gpt-4o"));
        let other_system = with(
            "messages",
            json!([
                {"role": "system", "content": "You are verbose."},
                {"role": "user", "content": "What is Rust?"}
            ]),
        );
        let earlier_turn = with(
            "messages",
            json!([
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "What is Rust?"}
            ]),
        );
        let named_user = with(
            "messages",
            json!([
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is Rust?", "name": "bob"}
            ]),
        );
        for (name, v) in [
            ("model", other_model),
            ("system", other_system),
            ("earlier turn", earlier_turn),
            ("user name", named_user),
        ] {
            let k = key_of(&v);
            assert_ne!(k.partition, plain.partition, "{name}");
            assert_eq!(k.prompt, "What is Rust?", "{name}");
        }
        let body = serde_json::to_vec(&base()).unwrap();
        let req = parse_chat(&body).unwrap();
        assert_ne!(chat_key(&req, "a").partition, chat_key(&req, "b").partition);
    }

    #[test]
    fn default_valued_parameters_are_keyed_as_given() {
        // `1` and `1.0` are the same number; present-with-default differs from absent.
        let int = key_of(&with("temperature", json!(1)));
        let float = key_of(&with("temperature", json!(1.0)));
        let null = key_of(&with("temperature", Value::Null));
        assert_eq!(int, float);
        assert_ne!(int.partition, key_of(&base()).partition);
        assert_eq!(null, key_of(&base()), "null means absent");
    }

    #[test]
    fn key_order_in_json_does_not_matter() {
        let a = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":2}}}],"x_a":1,"x_b":2}"#;
        let b = br#"{"x_b":2,"x_a":1,"tools":[{"function":{"parameters":{"b":2,"a":1},"name":"f"},"type":"function"}],"messages":[{"content":"x","role":"user"}],"model":"m"}"#;
        let ka = chat_key(&parse_chat(a).unwrap(), "t");
        let kb = chat_key(&parse_chat(b).unwrap(), "t");
        assert_eq!(ka, kb);
    }

    #[test]
    fn prompt_is_normalised_and_not_in_the_partition() {
        let a = key_of(&with(
            "messages",
            json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "  What   is\n Rust?  "}]),
        ));
        let b = key_of(&base());
        let c = key_of(&with(
            "messages",
            json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Something else entirely"}]),
        ));
        assert_eq!(a, b);
        assert_eq!(b.partition, c.partition);
        assert_ne!(b.prompt, c.prompt);
        assert_eq!(b.semantic, SemanticMode::Allowed);
        assert_eq!(b.model, "gpt-4o-mini");
    }

    #[test]
    fn content_parts() {
        let string = key_of(&with(
            "messages",
            json!([{"role": "user", "content": "describe"}]),
        ));
        let part = key_of(&with(
            "messages",
            json!([{"role": "user", "content": [{"type": "text", "text": "describe"}]}]),
        ));
        assert_eq!(string, part);

        let image = |url: &str| {
            key_of(&with(
                "messages",
                json!([{"role": "user", "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": url}}
                ]}]),
            ))
        };
        let (a, b) = (image("https://x/a.png"), image("https://x/b.png"));
        assert_eq!(a.prompt, "describe");
        assert_eq!(a.prompt, b.prompt);
        assert_ne!(a.partition, b.partition);
        assert_ne!(a.partition, string.partition);

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
        let tool_ending = json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
        ]);
        let other_result = json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "rainy"}
        ]);
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
                json!([{"role": "system", "content": "only a system prompt"}]),
                SemanticMode::ExactOnly,
            ),
            (tool_ending.clone(), SemanticMode::ExactOnly),
            (
                json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "prefill"}]),
                SemanticMode::ExactOnly,
            ),
        ];
        for (messages, want) in cases {
            assert_eq!(
                key_of(&with("messages", messages.clone())).semantic,
                want,
                "{messages}"
            );
        }
        let a = key_of(&with("messages", tool_ending));
        let b = key_of(&with("messages", other_result));
        assert_eq!(a.prompt, b.prompt);
        assert_ne!(
            a.partition, b.partition,
            "messages after the last user message are keyed"
        );
    }

    #[test]
    fn position_of_the_last_user_message_is_keyed() {
        // The same messages with the prompt in a different place must not collide.
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
            (b"", None, "could not parse the JSON body"),
            (
                b"{\"model\":\"m\",\"messages\":[]} trailing",
                None,
                "could not parse",
            ),
            (b"\xff\xfe", None, "not valid UTF-8"),
            (b"[1,2]", None, "must be a JSON object"),
            (
                br#"{"messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
                "missing required parameter 'model'",
            ),
            (
                br#"{"model":"m"}"#,
                Some("messages"),
                "missing required parameter 'messages'",
            ),
            (
                br#"{"model":"m","messages":[]}"#,
                Some("messages"),
                "at least one message",
            ),
            (
                br#"{"model":"m","messages":[{"content":"x"}]}"#,
                Some("messages[0].role"),
                "missing required parameter",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                Some("temperature"),
                "invalid value for 'temperature'",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":-1}"#,
                Some("n"),
                "invalid value for 'n'",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                Some("stream"),
                "invalid value for 'stream'",
            ),
            (
                br#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
                "invalid value for 'model'",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                Some("messages[0].content"),
                "string or an array",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":["x"]}]}"#,
                Some("messages[0].content[0]"),
                "must be an object",
            ),
            (
                br#"{"model":"m","messages":{"role":"user"}}"#,
                Some("messages"),
                "invalid value for 'messages'",
            ),
        ];
        for (body, param, message) in cases {
            let err = parse_chat(body).unwrap_err();
            assert_eq!(
                err.param.as_deref(),
                *param,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
            assert!(
                err.message.contains(message),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn only_the_path_form_may_leave_the_model_out() {
        let body = br#"{"messages":[{"role":"user","content":"x"}]}"#;
        let req = parse_chat_without_model(body).unwrap();
        assert_eq!(req.model, "");
        // Not sent on as `"model": ""`.
        assert!(serde_json::to_value(&req).unwrap().get("model").is_none());
        let empty = br#"{"model":"","messages":[{"role":"user","content":"x"}]}"#;
        for body in [&body[..], &empty[..]] {
            let err = parse_chat(body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("model"));
            assert_eq!(err.message, "missing required parameter 'model'");
        }
        // The rest is checked alike.
        let err = parse_chat_without_model(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
        let named = br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(
            parse_chat_without_model(named).unwrap(),
            parse_chat(named).unwrap()
        );
    }

    #[test]
    fn error_body_snapshot() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#;
        let err = parse_chat(body).unwrap_err();
        assert_eq!(
            String::from_utf8_lossy(&err.to_body()),
            r#"{"error":{"message":"invalid value for 'temperature': invalid type: string \"hot\", expected a number","type":"invalid_request_error","param":"temperature","code":null}}"#
        );
    }

    #[test]
    fn parse_accepts_nulls_and_keeps_unknown_fields() {
        let body = br#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"x"}],"temperature":null,"stream":true,"stream_options":{"include_usage":true},"future":{"a":1}}"#;
        let req = parse_chat(body).unwrap();
        assert_eq!(req.temperature, None);
        assert!(is_stream(&req));
        assert!(include_usage(&req));
        assert_eq!(req.extra.get("future"), Some(&json!({"a": 1})));
        // Round trip: what is forwarded upstream keeps the unknown field.
        let again: Value = serde_json::to_value(&req).unwrap();
        assert_eq!(again["future"], json!({"a": 1}));
        assert_eq!(again["stream"], json!(true));

        let plain =
            parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert!(!is_stream(&plain));
        assert!(!include_usage(&plain));
    }
}
