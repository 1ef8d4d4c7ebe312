//! A deterministic mock of Anthropic's Messages API that counts calls.
//!
//! It stands in for Anthropic the way [`crate::mock_upstream`] stands in for OpenAI: a
//! real HTTP server, so the proxy talks to it as it would to the provider (named SSE
//! events, broken connections, errors in Anthropic's shape), and a test of a cache hit
//! can assert that it saw zero calls. The same server ships as
//! `deja mock-upstream --anthropic` for demos and the SDK end-to-end test.
//!
//! It checks what the real API checks first: an `x-api-key` (or bearer) credential (else
//! 401 `authentication_error`), an `anthropic-version` header, and a body with `model`,
//! `max_tokens` and `messages` (else 400 `invalid_request_error`).
//!
//! # Endpoints
//!
//! | Route                          | Counted as                                     |
//! |--------------------------------|------------------------------------------------|
//! | `POST /v1/messages`            | `message_calls`                                |
//! | anything else                  | `other_calls` (404 in Anthropic's error shape) |
//! | `GET /mock/stats`              | not counted; [`MockAnthropicStats`] as JSON    |
//! | `POST /mock/reset`             | not counted; zeroes the counters               |
//! | `GET /mock/last-headers`       | not counted; the last call's `x-api-key`, `authorization`, `anthropic-version`, `anthropic-beta` |
//!
//! # Answers
//!
//! The answer is one text block, `"deja-mock answer to: <last user message>"` (its text
//! blocks joined with a space; [`MockAnthropicState::set_answer`] replaces it for one
//! question, as a model update would), cut to `max_tokens` words (then `stop_reason` is
//! `max_tokens`, else `end_turn`). With `thinking: {"type": "enabled"}` a thinking block
//! with a signature comes first. With the marker `[mock:tool]` in the question and
//! `tools` in the request, a `tool_use` block calls the first tool with
//! `{"question": <question>}` and `stop_reason` is `tool_use`. Usage counts
//! whitespace-separated words (`input_tokens`: system prompt and every message's text).
//! Ids depend only on how many calls came before.
//!
//! A stream sends what Anthropic sends: `message_start`, then per block
//! `content_block_start`, a `ping` after the first one, one delta per word (or the tool
//! input as `input_json_delta` in two pieces, thinking as `thinking_delta` then
//! `signature_delta`), `content_block_stop`; then `message_delta` (stop reason, output
//! tokens) and `message_stop`.
//!
//! # Fault injection
//!
//! The request header `x-mock-fault` (comma-separated) or `[mock:SPEC]` markers in the
//! question:
//!
//! | Spec          | Effect                                                              |
//! |---------------|---------------------------------------------------------------------|
//! | `500`         | HTTP 500, `api_error`                                               |
//! | `429`         | HTTP 429, `rate_limit_error`, `retry-after: 1`                      |
//! | `529`         | HTTP 529, `overloaded_error`                                        |
//! | `slow=MS`     | wait MS ms before answering; when streaming, before each event      |
//! | `cut=N`       | streaming: N events, then the connection drops; otherwise half the body, then it drops |
//! | `error-event` | streaming: an `error` event (`overloaded_error`) after the first text delta, and the stream ends there, as the real API does when it fails mid-stream |
//! | `tool`        | the `tool_use` answer above (not a fault, but selected the same way) |
//!
//! An unknown spec is a 400, so a typo in a test fails loudly. Faulted calls are counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Request header selecting faults, as for the OpenAI mock.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// A snapshot of the mock's call counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockAnthropicStats {
    /// `POST /v1/messages` calls, faulted and rejected ones included.
    pub message_calls: u64,
    /// Calls to any other path (404s).
    pub other_calls: u64,
    /// All counted calls; `/mock/*` control routes are not counted.
    pub total_calls: u64,
}

/// The credential and API headers of the last counted call, for tests of what the proxy
/// forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastHeaders {
    #[serde(rename = "x-api-key")]
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    #[serde(rename = "anthropic-version")]
    pub version: Option<String>,
    #[serde(rename = "anthropic-beta")]
    pub beta: Option<String>,
}

/// Shared state: counters and the last call's headers. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MockAnthropicState {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    message_calls: AtomicU64,
    other_calls: AtomicU64,
    total_calls: AtomicU64,
    last_headers: Mutex<LastHeaders>,
    /// Answers that replace the default one, by question (last user message).
    answers: Mutex<std::collections::HashMap<String, String>>,
}

impl MockAnthropicState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the counters (fields read one by one).
    pub fn stats(&self) -> MockAnthropicStats {
        let c = &self.inner;
        MockAnthropicStats {
            message_calls: c.message_calls.load(Ordering::SeqCst),
            other_calls: c.other_calls.load(Ordering::SeqCst),
            total_calls: c.total_calls.load(Ordering::SeqCst),
        }
    }

    /// Zeroes the counters and forgets the last headers.
    pub fn reset(&self) {
        let c = &self.inner;
        for counter in [&c.message_calls, &c.other_calls, &c.total_calls] {
            counter.store(0, Ordering::SeqCst);
        }
        *c.last_headers.lock() = LastHeaders::default();
    }

    /// From now on, answers `question` (a last user message's text) with `answer`.
    pub fn set_answer(&self, question: &str, answer: &str) {
        self.inner
            .answers
            .lock()
            .insert(question.to_string(), answer.to_string());
    }

    /// The credential and API headers of the most recent counted call.
    pub fn last_headers(&self) -> LastHeaders {
        self.inner.last_headers.lock().clone()
    }

    /// Counts a call and keeps its headers; returns its ordinal among message calls (1 for
    /// the first), used to number ids.
    fn record(&self, message: bool, headers: &HeaderMap) -> u64 {
        let c = &self.inner;
        let counter = if message {
            &c.message_calls
        } else {
            &c.other_calls
        };
        let ordinal = counter.fetch_add(1, Ordering::SeqCst) + 1;
        c.total_calls.fetch_add(1, Ordering::SeqCst);
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        *c.last_headers.lock() = LastHeaders {
            api_key: get("x-api-key"),
            authorization: get("authorization"),
            version: get("anthropic-version"),
            beta: get("anthropic-beta"),
        };
        ordinal
    }
}

/// A running mock on `127.0.0.1` with an OS-chosen port; dropping it stops the server.
#[derive(Debug)]
pub struct MockAnthropic {
    state: MockAnthropicState,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MockAnthropic {
    /// Binds `127.0.0.1:0` and serves in a background tokio task.
    pub async fn start() -> std::io::Result<MockAnthropic> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = MockAnthropicState::new();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                if let Err(error) = serve(listener, state).await {
                    tracing::error!(%error, "mock Anthropic upstream stopped");
                }
            }
        });
        Ok(MockAnthropic { state, addr, task })
    }

    /// The base URL as Anthropic's SDKs take it, without `/v1`: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> MockAnthropicStats {
        self.state.stats()
    }

    pub fn reset(&self) {
        self.state.reset()
    }

    pub fn last_headers(&self) -> LastHeaders {
        self.state.last_headers()
    }

    pub fn state(&self) -> &MockAnthropicState {
        &self.state
    }
}

impl Drop for MockAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The mock's routes, without a socket.
pub fn router(state: MockAnthropicState) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/mock/stats", get(get_stats))
        .route("/mock/reset", post(post_reset))
        .route("/mock/last-headers", get(get_last_headers))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the mock on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: TcpListener, state: MockAnthropicState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

async fn get_stats(State(state): State<MockAnthropicState>) -> Json<MockAnthropicStats> {
    Json(state.stats())
}

async fn post_reset(State(state): State<MockAnthropicState>) -> Json<MockAnthropicStats> {
    state.reset();
    Json(state.stats())
}

async fn get_last_headers(State(state): State<MockAnthropicState>) -> Json<LastHeaders> {
    Json(state.last_headers())
}

async fn not_found(State(state): State<MockAnthropicState>, headers: HeaderMap) -> Response {
    state.record(false, &headers);
    error(StatusCode::NOT_FOUND, "not_found_error", "Not found")
}

/// An error in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Faults {
    /// The status to fail with: 500, 429 or 529.
    fail: Option<u16>,
    slow_ms: u64,
    cut_after: Option<usize>,
    error_event: bool,
    tool: bool,
}

impl Faults {
    fn collect(headers: &HeaderMap, question: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for value in headers.get_all(FAULT_HEADER) {
            let value = value
                .to_str()
                .map_err(|_| format!("{FAULT_HEADER} header is not ASCII"))?;
            for spec in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                faults.apply(spec)?;
            }
        }
        for spec in markers(question) {
            faults.apply(spec)?;
        }
        Ok(faults)
    }

    fn apply(&mut self, spec: &str) -> Result<(), String> {
        let number = |value: &str| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("mock fault '{spec}' needs a whole number"))
        };
        match spec.split_once('=') {
            None if matches!(spec, "500" | "429" | "529") => {
                self.fail = spec.parse().ok();
            }
            None if spec == "error-event" => self.error_event = true,
            None if spec == "tool" => self.tool = true,
            Some(("slow", ms)) => self.slow_ms = number(ms)?,
            Some(("cut", n)) => {
                self.cut_after = Some(usize::try_from(number(n)?).unwrap_or(usize::MAX))
            }
            _ => {
                return Err(format!(
                    "unknown mock fault '{spec}' (valid: 500, 429, 529, slow=MS, cut=N, error-event, tool)"
                ))
            }
        }
        Ok(())
    }

    fn failure(&self) -> Option<Response> {
        Some(match self.fail? {
            429 => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "mock rate limit reached",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            529 => error(
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "overloaded_error",
                "Overloaded",
            ),
            _ => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "mock upstream failure",
            ),
        })
    }
}

/// The specs inside `[mock:SPEC]` markers in `text`, in order.
fn markers(text: &str) -> impl Iterator<Item = &str> {
    const OPEN: &str = "[mock:";
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(OPEN)? + OPEN.len();
        let len = rest[start..].find(']')?;
        let spec = rest[start..start + len].trim();
        rest = &rest[start + len + 1..];
        Some(spec)
    })
}

// ---------------------------------------------------------------------------------------------
// Messages

/// The text of a `content` or `system` value: a string, or its text blocks joined with a
/// space.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The content blocks of an answer, its stop reason and its output tokens.
struct Answer {
    blocks: Vec<Value>,
    stop_reason: &'static str,
    output_tokens: u64,
}

fn answer_for(
    request: &Value,
    question: &str,
    answer: Option<String>,
    faults: &Faults,
    ordinal: u64,
) -> Answer {
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let mut blocks = Vec::new();
    let mut output_tokens = 0;
    if request.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled") {
        let thinking = format!("The user asks: {question}");
        output_tokens += words(&thinking);
        blocks.push(json!({
            "type": "thinking",
            "thinking": thinking,
            "signature": format!("mock-signature-{ordinal}"),
        }));
    }
    let full = answer.unwrap_or_else(|| format!("deja-mock answer to: {question}"));
    let all: Vec<&str> = full.split_whitespace().collect();
    let kept = usize::try_from(max_tokens)
        .unwrap_or(usize::MAX)
        .min(all.len());
    let text = all[..kept].join(" ");
    output_tokens += kept as u64;
    blocks.push(json!({"type": "text", "text": text}));
    let mut stop_reason = if kept < all.len() {
        "max_tokens"
    } else {
        "end_turn"
    };
    let first_tool = request
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str);
    if let (true, Some(name), "end_turn") = (faults.tool, first_tool, stop_reason) {
        blocks.push(json!({
            "type": "tool_use",
            "id": format!("toolu_mock_{ordinal}"),
            "name": name,
            "input": {"question": question},
        }));
        output_tokens += 1;
        stop_reason = "tool_use";
    }
    Answer {
        blocks,
        stop_reason,
        output_tokens,
    }
}

async fn messages(
    State(state): State<MockAnthropicState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ordinal = state.record(true, &headers);
    if headers.get("x-api-key").is_none() && headers.get("authorization").is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        );
    }
    if headers.get("anthropic-version").is_none() {
        return invalid("anthropic-version: header is required");
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return invalid("request body is not a JSON object"),
    };
    for field in ["model", "max_tokens", "messages"] {
        if request.get(field).is_none() {
            return invalid(&format!("{field}: Field required"));
        }
    }
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let question = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(text_of)
        .unwrap_or_default();
    let faults = match Faults::collect(&headers, &question) {
        Ok(f) => f,
        Err(message) => return invalid(&message),
    };
    if let Some(failure) = faults.failure() {
        sleep_ms(faults.slow_ms).await;
        return failure;
    }
    let input_tokens = request.get("system").map(text_of).map_or(0, |s| words(&s))
        + messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(|c| words(&text_of(c)))
            .sum::<u64>();
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-claude");
    let replaced = state.inner.answers.lock().get(&question).cloned();
    let answer = answer_for(&request, &question, replaced, &faults, ordinal);
    let id = format!("msg_mock_{ordinal}");
    let message = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": answer.blocks,
        "stop_reason": answer.stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": answer.output_tokens},
    });
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        return stream(&message, &faults);
    }
    sleep_ms(faults.slow_ms).await;
    if faults.cut_after.is_some() {
        let bytes = message.to_string().into_bytes();
        let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
        return with_content_type(
            paced(vec![Step::Data(half), Step::Abort], Duration::ZERO),
            "application/json",
        );
    }
    Json(message).into_response()
}

fn event(data: &Value) -> Bytes {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The events of a stream of `message`, as Anthropic sends them.
fn events(message: &Value, faults: &Faults) -> Vec<Bytes> {
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut out = vec![event(&json!({"type": "message_start", "message": start}))];
    let blocks = message["content"].as_array().cloned().unwrap_or_default();
    for (index, block) in blocks.iter().enumerate() {
        let delta = |delta: Value| {
            event(&json!({"type": "content_block_delta", "index": index, "delta": delta}))
        };
        let mut first = block.clone();
        let mut deltas = Vec::new();
        match block["type"].as_str() {
            Some("text") => {
                first["text"] = json!("");
                let text = block["text"].as_str().unwrap_or_default();
                for piece in text.split_inclusive(' ') {
                    deltas.push(delta(json!({"type": "text_delta", "text": piece})));
                    if faults.error_event {
                        deltas.push(event(&json!({"type": "error", "error": {
                            "type": "overloaded_error", "message": "Overloaded"}})));
                        // The real API ends the stream after an error event.
                        out.push(event(&json!({"type": "content_block_start", "index": index, "content_block": first})));
                        out.extend(deltas);
                        return out;
                    }
                }
            }
            Some("thinking") => {
                first["thinking"] = json!("");
                first["signature"] = json!("");
                deltas.push(delta(
                    json!({"type": "thinking_delta", "thinking": block["thinking"]}),
                ));
                deltas.push(delta(
                    json!({"type": "signature_delta", "signature": block["signature"]}),
                ));
            }
            _ => {
                first["input"] = json!({});
                let input = block["input"].to_string();
                let (a, b) = input.split_at(input.len() / 2);
                for part in [a, b] {
                    deltas.push(delta(
                        json!({"type": "input_json_delta", "partial_json": part}),
                    ));
                }
            }
        }
        out.push(event(
            &json!({"type": "content_block_start", "index": index, "content_block": first}),
        ));
        if index == 0 {
            out.push(event(&json!({"type": "ping"})));
        }
        out.extend(deltas);
        out.push(event(
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(event(&json!({
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    })));
    out.push(event(&json!({"type": "message_stop"})));
    out
}

fn stream(message: &Value, faults: &Faults) -> Response {
    let events = events(message, faults);
    let steps: Vec<Step> = match faults.cut_after {
        Some(n) => events
            .into_iter()
            .take(n)
            .map(Step::Data)
            .chain(std::iter::once(Step::Abort))
            .collect(),
        None => events.into_iter().map(Step::Data).collect(),
    };
    let mut response = with_content_type(
        paced(steps, Duration::from_millis(faults.slow_ms)),
        "text/event-stream",
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

enum Step {
    Data(Bytes),
    /// End the body with an error, so the connection drops mid-response.
    Abort,
}

/// A body yielding `steps` one at a time, `delay` before each (or a yield to the scheduler,
/// so every event is flushed on its own).
fn paced(steps: Vec<Step>, delay: Duration) -> Body {
    let stream = futures::stream::unfold(steps.into_iter(), move |mut steps| async move {
        let step = steps.next()?;
        if delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(delay).await;
        }
        let item = match step {
            Step::Data(bytes) => Ok(bytes),
            Step::Abort => {
                // Let what was sent be flushed first, so the client sees a partial body.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "mock upstream cut the response",
                ))
            }
        };
        Some((item, steps))
    });
    Body::from_stream(stream)
}

fn with_content_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(
        state: &MockAnthropicState,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(Method::POST).uri("/v1/messages");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router(state.clone())
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await;
        let text = body
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_else(|e| format!("<cut: {e}>"));
        (status, headers, text)
    }

    const AUTH: [(&str, &str); 2] = [
        ("x-api-key", "sk-ant-test"),
        ("anthropic-version", "2023-06-01"),
    ];

    fn ask(question: &str) -> Value {
        json!({"model": "claude-test", "max_tokens": 100, "system": "be brief",
               "messages": [{"role": "user", "content": question}]})
    }

    /// The `(event name, data)` pairs of an SSE body.
    fn parse_events(text: &str) -> Vec<(String, Value)> {
        text.split_terminator("\n\n")
            .map(|block| {
                let (name, data) = block.split_once('\n').unwrap();
                (
                    name.strip_prefix("event: ").unwrap().to_string(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_in_anthropics_message_shape_and_counts() {
        let state = MockAnthropicState::new();
        let (status, headers, body) = call(&state, &AUTH, ask("What is Rust?")).await;
        assert_eq!(status, 200);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            message,
            json!({
                "id": "msg_mock_1", "type": "message", "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": "deja-mock answer to: What is Rust?"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 6}
            })
        );
        assert_eq!(state.stats().message_calls, 1);
        assert_eq!(
            state.last_headers(),
            LastHeaders {
                api_key: Some("sk-ant-test".into()),
                authorization: None,
                version: Some("2023-06-01".into()),
                beta: None,
            }
        );
    }

    #[tokio::test]
    async fn set_answer_changes_one_questions_answer() {
        let state = MockAnthropicState::new();
        state.set_answer("What is Rust?", "A language.");
        let (_, _, body) = call(&state, &AUTH, ask("What is Rust?")).await;
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["content"][0]["text"], "A language.");
        let (_, _, body) = call(&state, &AUTH, ask("What is Go?")).await;
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            message["content"][0]["text"],
            "deja-mock answer to: What is Go?"
        );
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_answer() {
        let state = MockAnthropicState::new();
        let mut body = ask("What is Rust?");
        body["max_tokens"] = json!(2);
        let (_, _, body) = call(&state, &AUTH, body).await;
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["content"][0]["text"], "deja-mock answer");
        assert_eq!(message["stop_reason"], "max_tokens");
        assert_eq!(message["usage"]["output_tokens"], 2);
    }

    #[tokio::test]
    async fn stream_sends_anthropics_events_in_order() {
        let state = MockAnthropicState::new();
        let mut body = ask("Hi there");
        body["stream"] = json!(true);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        body["tools"] = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
        body["messages"][0]["content"] = json!("Hi there [mock:tool]");
        let (status, headers, text) = call(&state, &AUTH, body).await;
        assert_eq!(status, 200);
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
        let events = parse_events(&text);
        for (name, data) in &events {
            assert_eq!(
                data["type"],
                name.as_str(),
                "the event name repeats the type"
            );
        }
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        assert_eq!(events[0].1["message"]["content"], json!([]));
        let deltas: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| &d["delta"])
            .collect();
        assert_eq!(deltas[0]["type"], "thinking_delta");
        assert_eq!(deltas[1]["type"], "signature_delta");
        let text: String = deltas
            .iter()
            .filter_map(|d| d.get("text").and_then(Value::as_str))
            .collect();
        assert_eq!(text, "deja-mock answer to: Hi there [mock:tool]");
        let json_text: String = deltas
            .iter()
            .filter_map(|d| d.get("partial_json").and_then(Value::as_str))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json_text).unwrap(),
            json!({"question": "Hi there [mock:tool]"})
        );
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }

    #[tokio::test]
    async fn errors_in_anthropics_shape() {
        let state = MockAnthropicState::new();
        let (status, _, body) =
            call(&state, &[("anthropic-version", "2023-06-01")], ask("x")).await;
        assert_eq!(status, 401);
        assert!(body.contains("authentication_error"), "{body}");
        let (status, _, body) = call(&state, &[("x-api-key", "k")], ask("x")).await;
        assert_eq!(status, 400);
        assert!(body.contains("anthropic-version"), "{body}");
        let (status, _, body) = call(&state, &AUTH, json!({"model": "m", "messages": []})).await;
        assert_eq!(status, 400);
        assert!(body.contains("max_tokens: Field required"), "{body}");
        for (marker, code, kind) in [
            ("[mock:500]", 500, "api_error"),
            ("[mock:429]", 429, "rate_limit_error"),
            ("[mock:529]", 529, "overloaded_error"),
        ] {
            let (status, headers, body) = call(&state, &AUTH, ask(&format!("q {marker}"))).await;
            assert_eq!(status.as_u16(), code, "{marker}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], kind);
            assert_eq!(code == 429, headers.get(header::RETRY_AFTER).is_some());
        }
        let (status, _, body) = call(&state, &AUTH, ask("q [mock:typo]")).await;
        assert_eq!(status, 400);
        assert!(body.contains("unknown mock fault"), "{body}");
        assert_eq!(state.stats().message_calls, 7, "faulted calls are counted");
    }

    #[tokio::test]
    async fn error_event_and_cut_end_a_stream_early() {
        let state = MockAnthropicState::new();
        let mut body = ask("tell me [mock:error-event]");
        body["stream"] = json!(true);
        let (_, _, text) = call(&state, &AUTH, body).await;
        let events = parse_events(&text);
        assert_eq!(events.last().unwrap().0, "error");
        assert!(!text.contains("message_stop"));

        let mut body = ask("tell me [mock:cut=3]");
        body["stream"] = json!(true);
        let (_, _, text) = call(&state, &AUTH, body).await;
        assert!(text.starts_with("<cut"), "{text}");
        let (_, _, text) = call(&state, &AUTH, ask("tell me [mock:cut=1]")).await;
        assert!(text.starts_with("<cut"), "{text}");
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_reset_zeroes() {
        let state = MockAnthropicState::new();
        let resp = router(state.clone())
            .oneshot(Request::get("/v1/models").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(state.stats().other_calls, 1);
        state.reset();
        assert_eq!(state.stats(), MockAnthropicStats::default());
    }
}
