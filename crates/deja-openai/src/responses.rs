//! OpenAI's Responses API (`POST /v1/responses`): the request type, its validation and its
//! cache key. [`stream`] converts between a streamed answer (Responses' named events,
//! `response.created` … `response.completed`) and a non-streamed one (a `response`
//! object), so an entry recorded one way can be served the other way.
//!
//! The key is built like the chat completions key ([`crate::chat`]): by destructuring
//! [`ResponsesRequest`] without `..`, so a field added to the request does not compile
//! until someone decides whether it changes the answer; unknown fields land in `extra` and
//! are keyed. The prompt is the text of the last user message of `input` (a string `input`
//! is that message); `instructions`, every input item before it, its non-text parts, the
//! items after it and every answer-changing parameter form the partition.
//!
//! Two kinds of request are matched exactly only: those that continue state the provider
//! keeps and the cache cannot see (`previous_response_id`, `conversation`), and those whose
//! input does not end with a user message (a function call's output, an assistant
//! prefill). `store` is keyed (absent means `true`, as in the API), so a client that asked
//! for a stored response is served the id of a response the provider stored. Keys live in
//! their own domain: a Responses request never matches a chat completions one.
//!
//! Like the rest of this crate, this module does no I/O and does not decide whether a
//! request is cached (`background` is the server's call, see [`is_background`]).

pub mod stream;

use deja_core::{normalize_prompt, KeyBuilder, SemanticMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatKey;
use crate::error::WireError;
use crate::json::{canonical, key_extras, key_param, parse_request};

/// A Responses API request with every documented field. Numbers and booleans are typed so
/// a wrong type is rejected with the field's name; structured parameters are kept as JSON.
/// `null` is treated like an absent field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResponsesRequest {
    /// Optional in the API when a stored `prompt` template names the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A string (one user message) or an array of input items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// A system (developer) message: a string, or an array of input items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_management: Option<Value>,
    /// A conversation id, or `{"id": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// A reference to a stored prompt template and its variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_retention: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Output format (`text.format`: text, JSON schema) and `text.verbosity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Parameters this version does not know; passed through upstream and part of the key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The roles a message input item may have.
const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];

/// Parses and validates a Responses API request body.
pub fn parse_responses(body: &[u8]) -> Result<ResponsesRequest, WireError> {
    let req: ResponsesRequest = parse_request(body)?;
    if req.model.as_deref() == Some("") {
        return Err(WireError::with_param("'model' must not be empty", "model"));
    }
    if req.model.is_none() && req.prompt.is_none() {
        return Err(WireError::with_param(
            "missing required parameter 'model'",
            "model",
        ));
    }
    match &req.input {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_item(item, &format!("input[{i}]"))?;
            }
        }
        Some(_) => {
            return Err(WireError::with_param(
                "'input' must be a string or an array of input items",
                "input",
            ))
        }
    }
    match &req.instructions {
        None | Some(Value::String(_)) | Some(Value::Array(_)) => {}
        Some(_) => {
            return Err(WireError::with_param(
                "'instructions' must be a string",
                "instructions",
            ))
        }
    }
    if let Some(id) = &req.previous_response_id {
        if id.is_empty() {
            return Err(WireError::with_param(
                "'previous_response_id' must not be empty",
                "previous_response_id",
            ));
        }
    }
    Ok(req)
}

/// An input item is an object; a message (an item with a `role`) has one of [`ROLES`] and
/// content that is a string or an array of parts, each an object with a string `type`.
fn check_item(item: &Value, param: &str) -> Result<(), WireError> {
    let Some(obj) = item.as_object() else {
        return Err(WireError::with_param(
            "each input item must be an object",
            param,
        ));
    };
    let Some(role) = obj.get("role") else {
        if obj.get("type").and_then(Value::as_str).is_none() {
            return Err(WireError::with_param(
                "an input item needs a 'role' (a message) or a string 'type'",
                param,
            ));
        }
        return Ok(());
    };
    match role.as_str() {
        Some(r) if ROLES.contains(&r) => {}
        _ => {
            return Err(WireError::with_param(
                format!(
                "unexpected role {role}; use \"user\", \"assistant\", \"system\" or \"developer\""
            ),
                format!("{param}.role"),
            ))
        }
    }
    match obj.get("content") {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if part.get("type").and_then(Value::as_str).is_none() {
                    return Err(WireError::with_param(
                        "each content part must be an object with a string 'type'",
                        format!("{param}.content[{j}]"),
                    ));
                }
            }
            Ok(())
        }
        _ => Err(WireError::with_param(
            "a message's 'content' must be a string or an array of content parts",
            format!("{param}.content"),
        )),
    }
}

/// Whether the client asked for a streamed (SSE) answer.
pub fn is_stream(req: &ResponsesRequest) -> bool {
    req.stream == Some(true)
}

/// Whether the client asked for a background response, which the provider answers with a
/// queued response to poll: not an answer a cache can hold.
pub fn is_background(req: &ResponsesRequest) -> bool {
    req.background == Some(true)
}

/// Builds the cache key of a request for `tenant`.
pub fn responses_key(req: &ResponsesRequest, tenant: &str) -> ChatKey {
    let ResponsesRequest {
        model,
        input,
        instructions,
        // Not cached at all (the server passes it through); keyed all the same, so a
        // background request never shares a key with a foreground one.
        background,
        background_options,
        context_management,
        conversation,
        include,
        max_output_tokens,
        max_tool_calls,
        // Bookkeeping on OpenAI's side; does not change the answer.
        metadata: _,
        moderation,
        parallel_tool_calls,
        previous_response_id,
        prompt,
        // Hints for OpenAI's prompt cache (where it may reuse work), not what is answered.
        prompt_cache_key: _,
        prompt_cache_retention: _,
        // Its options come back as diagnostics in the body: part of the answer.
        prompt_cache_options,
        reasoning,
        // Abuse detection; does not change the answer. Tenants are keyed separately.
        safety_identifier: _,
        user: _,
        // Which capacity serves the request (latency/price), not what it answers.
        service_tier: _,
        store,
        // The transport, not the answer: streamed and non-streamed answers are converted
        // into each other on replay.
        stream: _,
        stream_options: _,
        temperature,
        text,
        tool_choice,
        tools,
        top_logprobs,
        top_p,
        truncation,
        extra,
    } = req;

    let mut b = KeyBuilder::new("responses/v1");
    b.str("tenant", tenant);
    b.opt_str("model", model.as_deref());
    key_param(&mut b, "instructions", instructions);

    // A string input is one user message: keyed like `[{"role":"user","content":"..."}]`,
    // so the two spellings share entries.
    let items: Vec<Value> = match input {
        Some(Value::String(s)) => vec![serde_json::json!({ "role": "user", "content": s })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    b.str(
        "input",
        match input {
            None => "none",
            Some(_) => "items",
        },
    );
    // As for chat: the last user message carries the prompt, everything before it is the
    // context, everything after it is keyed and turns semantic matching off.
    let last_user = items.iter().rposition(is_user_message);
    b.opt_str(
        "last_user_position",
        last_user.map(|i| i.to_string()).as_deref(),
    );
    let mut prompt_text = String::new();
    for (i, item) in items.iter().enumerate() {
        if Some(i) == last_user {
            let (text, rest) = split_prompt(item);
            prompt_text = text;
            b.str("last_user_rest", &canonical(&rest));
        } else {
            b.str("item", &canonical(item));
        }
    }

    key_param(&mut b, "background", background);
    key_param(&mut b, "background_options", background_options);
    key_param(&mut b, "context_management", context_management);
    key_param(&mut b, "conversation", conversation);
    key_param(&mut b, "include", include);
    key_param(&mut b, "max_output_tokens", max_output_tokens);
    key_param(&mut b, "max_tool_calls", max_tool_calls);
    key_param(&mut b, "moderation", moderation);
    key_param(&mut b, "parallel_tool_calls", parallel_tool_calls);
    key_param(&mut b, "previous_response_id", previous_response_id);
    key_param(&mut b, "prompt", prompt);
    key_param(&mut b, "prompt_cache_options", prompt_cache_options);
    key_param(&mut b, "reasoning", reasoning);
    // Absent means stored, as in the API.
    key_param(&mut b, "store", &Some(store.unwrap_or(true)));
    key_param(&mut b, "temperature", temperature);
    key_param(&mut b, "text", text);
    key_param(&mut b, "tool_choice", tool_choice);
    key_param(&mut b, "tools", tools);
    key_param(&mut b, "top_logprobs", top_logprobs);
    key_param(&mut b, "top_p", top_p);
    key_param(&mut b, "truncation", truncation);
    // Unknown parameters are assumed to change the answer; sorted so that field order does
    // not matter.
    key_extras(&mut b, extra);

    let prompt_norm = normalize_prompt(&prompt_text);
    let ends_with_user = last_user.is_some() && last_user == items.len().checked_sub(1);
    // State the provider keeps (an earlier response, a conversation) is part of what the
    // prompt means, and the cache cannot see it: the same words may ask something else.
    let provider_state = previous_response_id.is_some() || conversation.is_some();
    let semantic = if ends_with_user && !prompt_norm.is_empty() && !provider_state {
        SemanticMode::Allowed
    } else {
        SemanticMode::ExactOnly
    };
    ChatKey {
        partition: b.finish_partition(),
        prompt: prompt_norm,
        semantic,
        model: model.clone().unwrap_or_default(),
    }
}

/// A message item from the user: `role: "user"` and, when it says, `type: "message"`.
fn is_user_message(item: &Value) -> bool {
    item.get("role").and_then(Value::as_str) == Some("user")
        && item
            .get("type")
            .is_none_or(|t| t.as_str() == Some("message"))
}

/// Splits the last user message into its text (the prompt) and what goes into the
/// partition: its other fields and the layout of its parts — non-text parts whole (two
/// different images never share an entry), text parts without their text. A string content
/// is keyed as one `input_text` part, as it means the same; `type: "message"` is implied.
fn split_prompt(item: &Value) -> (String, Value) {
    let mut rest = item.as_object().cloned().unwrap_or_default();
    rest.remove("type");
    let mut texts: Vec<&str> = Vec::new();
    let layout = match item.get("content") {
        Some(Value::String(s)) => {
            texts.push(s);
            serde_json::json!([{ "type": "input_text" }])
        }
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .map(|part| {
                    let text = (part.get("type").and_then(Value::as_str) == Some("input_text"))
                        .then(|| part.get("text").and_then(Value::as_str))
                        .flatten();
                    match text {
                        Some(text) => {
                            texts.push(text);
                            let mut stripped = part.clone();
                            if let Some(obj) = stripped.as_object_mut() {
                                obj.remove("text");
                            }
                            stripped
                        }
                        None => part.clone(),
                    }
                })
                .collect(),
        ),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    rest.insert("content".into(), layout);
    (texts.join("\n"), Value::Object(rest))
}

#[cfg(test)]
mod tests;
