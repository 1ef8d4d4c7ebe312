//! A deterministic mock of an OpenAI-compatible upstream that counts calls.
//!
//! This is the only simulated part of deja's tests: it stands in for the paid LLM provider so
//! that a test of a cache hit can assert that the upstream saw zero calls. It is a real HTTP
//! server (axum on a tokio listener), so the proxy talks to it exactly as it would talk to a
//! provider, including streaming and broken connections. The same server ships as
//! `deja mock-upstream --listen ADDR` for demos.
//!
//! It is not a model: every answer is a pure function of the request, so two runs of a test
//! see identical bytes (ids depend only on how many chat calls came before; `created` is a
//! fixed timestamp).
//!
//! # Endpoints
//!
//! | Route                        | Counted as                                   |
//! |------------------------------|----------------------------------------------|
//! | `POST /v1/chat/completions`  | `chat_calls`                                 |
//! | `POST /v1/embeddings`        | `embedding_calls`, `embedding_items` += inputs |
//! | `POST /v1/responses`         | `responses_calls` (see [`responses`])        |
//! | `GET /v1/models`             | `other_calls`                                |
//! | `POST /openai/deployments/{deployment}/chat/completions` | `chat_calls` (Azure OpenAI) |
//! | `POST /openai/deployments/{deployment}/embeddings` | `embedding_calls`, `embedding_items` (Azure OpenAI) |
//! | `POST /openai/v1/chat/completions` | `chat_calls` (Azure OpenAI's v1 API)   |
//! | `POST /openai/v1/embeddings` | `embedding_calls`, `embedding_items` (Azure OpenAI's v1 API) |
//! | `POST /openai/v1/responses`  | `responses_calls` (Azure OpenAI's v1 API)    |
//! | anything else                | `other_calls` (404 in the OpenAI error shape) |
//! | `GET /mock/stats`            | not counted; [`MockStats`] as JSON           |
//! | `POST /mock/reset`           | not counted; zeroes the counters             |
//! | `GET /mock/last-authorization` | not counted; `{"authorization": ...}`      |
//! | `GET /mock/requests`         | not counted; [`MockState::requests`] as JSON: `[{"method", "path", "headers"}]` |
//!
//! The Azure OpenAI routes answer as the OpenAI ones do (with `model` = the deployment when
//! the body names none), after Azure's own checks, in Azure's error shape
//! `{"error":{"code","message"}}`: the deployment routes need an `api-version` query
//! parameter (else 404 `Resource not found`, as Azure answers), and every Azure route a
//! credential, `api-key` or `Authorization` (else 401). Refused calls are still counted.
//!
//! Every counted call also bumps `total_calls` and records its `authorization` header.
//! Every request outside `/mock/` is recorded as it arrived ([`MockState::requests`]:
//! method, path and query, headers), so a test can tell where the proxy sent it.
//!
//! # Answers
//!
//! A chat answer is `"deja-mock answer to: <last user message>"`; when the content is an array
//! of parts, the `text` parts are joined with a single space. A test can make the mock
//! change its mind: [`MockState::set_answer`] replaces the answer to one question (for
//! staleness checks), and [`MockState::chat_questions`] lists the questions asked, in order. With `n > 1`, choice `i > 0`
//! appends `" (choice i)"`. Token usage counts whitespace-separated words.
//!
//! An embedding is a normal-ish vector drawn from a PRNG seeded with an FNV-1a hash of the
//! input (string bytes, or the token ids), L2-normalised. Its dimension is `dimensions` when
//! the request gives it, else [`DEFAULT_EMBEDDING_DIMENSIONS`] (16). A shorter vector for the
//! same input is therefore a renormalised prefix of a longer one.
//!
//! # Fault injection
//!
//! A fault is selected by the request header `x-mock-fault` (comma-separated specs, e.g.
//! `slow=100,cut=2`) or by markers inside the last user message (chat) or any input string
//! (embeddings), so tests driving unmodified SDKs can trigger them:
//!
//! | Spec / marker                  | Effect                                                  |
//! |--------------------------------|---------------------------------------------------------|
//! | `500` / `[mock:500]`           | HTTP 500, `server_error` body                           |
//! | `429` / `[mock:429]`           | HTTP 429, rate-limit body, `retry-after: 1`             |
//! | `slow=MS` / `[mock:slow=MS]`   | wait MS ms before answering; when streaming, before each chunk |
//! | `cut=N` / `[mock:cut=N]`       | streaming: send N SSE events, then drop the connection without `finish_reason` or `[DONE]`; otherwise send half the JSON body, then drop |
//!
//! The header `x-mock-chunk-delay-ms: MS` sets a per-chunk delay for streams on its own. An
//! unknown spec is answered with a 400, so a typo in a test fails loudly. Faulted calls are
//! still counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod responses;

/// Embedding dimension used when a request does not ask for one with `dimensions`.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 16;

/// Largest `dimensions` the mock accepts; bigger requests get a 400 instead of a huge body.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 8192;

/// The `created` timestamp on every response: fixed, so responses are byte-for-byte
/// reproducible.
pub const MOCK_CREATED: u64 = 1_700_000_000;

/// Request header selecting faults, e.g. `500`, `429`, `slow=200`, `cut=2`.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// Request header setting a delay before each streamed chunk, in milliseconds.
pub const CHUNK_DELAY_HEADER: &str = "x-mock-chunk-delay-ms";

/// Models listed by `GET /v1/models`.
const MODELS: [&str; 2] = ["deja-mock-chat", "deja-mock-embedding"];

/// A snapshot of the mock's call counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// `POST /v1/chat/completions` calls, faulted ones included.
    pub chat_calls: u64,
    /// `POST /v1/embeddings` calls, faulted ones included.
    pub embedding_calls: u64,
    /// `POST /v1/responses` calls, faulted ones included.
    #[serde(default)]
    pub responses_calls: u64,
    /// Inputs across all embedding calls (one call may embed many inputs).
    pub embedding_items: u64,
    /// Calls to any other path, including `GET /v1/models` and 404s.
    pub other_calls: u64,
    /// All counted calls; `/mock/*` control routes are not counted.
    pub total_calls: u64,
}

/// Shared state of the mock: the call counters and the last `authorization` header.
///
/// Cloning is cheap and clones share the counters, so a test can keep one and hand another
/// to [`router`].
#[derive(Debug, Clone, Default)]
pub struct MockState {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    chat_calls: AtomicU64,
    embedding_calls: AtomicU64,
    responses_calls: AtomicU64,
    embedding_items: AtomicU64,
    other_calls: AtomicU64,
    total_calls: AtomicU64,
    /// The `authorization` header of the most recent counted call (`None` if it had none), so
    /// tests can check which key the proxy forwarded.
    last_authorization: Mutex<Option<String>>,
    /// Answers that replace the default one, by question (last user message).
    answers: Mutex<std::collections::HashMap<String, String>>,
    /// The last user message of every chat call, in order.
    questions: Mutex<Vec<String>>,
    /// Every request outside `/mock/`, in order of arrival.
    requests: Mutex<std::collections::VecDeque<SeenRequest>>,
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: Method,
    /// The request target's path and query, as sent (not normalised).
    pub path_and_query: String,
    pub headers: HeaderMap,
}

/// Which counter a call bumps.
#[derive(Debug, Clone, Copy)]
enum CallKind {
    Chat,
    Embeddings,
    Responses,
    Other,
}

impl MockState {
    /// A fresh state with all counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the counters. Fields are read one by one, so a snapshot taken while
    /// calls are in flight may be off by those calls.
    pub fn stats(&self) -> MockStats {
        let c = &self.inner;
        MockStats {
            chat_calls: c.chat_calls.load(Ordering::SeqCst),
            embedding_calls: c.embedding_calls.load(Ordering::SeqCst),
            responses_calls: c.responses_calls.load(Ordering::SeqCst),
            embedding_items: c.embedding_items.load(Ordering::SeqCst),
            other_calls: c.other_calls.load(Ordering::SeqCst),
            total_calls: c.total_calls.load(Ordering::SeqCst),
        }
    }

    /// Zeroes the counters and forgets the last `authorization` header.
    pub fn reset(&self) {
        let c = &self.inner;
        for counter in [
            &c.chat_calls,
            &c.embedding_calls,
            &c.responses_calls,
            &c.embedding_items,
            &c.other_calls,
            &c.total_calls,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
        *c.last_authorization.lock() = None;
        c.questions.lock().clear();
        c.requests.lock().clear();
    }

    /// The requests received outside `/mock/` since the start or the last reset (the last
    /// [`MAX_RECORDED`]).
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.inner.requests.lock().iter().cloned().collect()
    }

    /// The `authorization` header of the most recent counted call, if it had one.
    pub fn last_authorization(&self) -> Option<String> {
        self.inner.last_authorization.lock().clone()
    }

    /// From now on, answers `question` (a last user message) with `answer` instead of the
    /// default text, as a model would after an update.
    pub fn set_answer(&self, question: &str, answer: &str) {
        self.inner
            .answers
            .lock()
            .insert(question.to_string(), answer.to_string());
    }

    /// The last user message of every chat (and Responses) call so far, in order (reset by
    /// [`MockState::reset`]).
    pub fn chat_questions(&self) -> Vec<String> {
        self.inner.questions.lock().clone()
    }

    /// Counts one call and records its `authorization` header. Returns the call's ordinal
    /// within its kind (1 for the first), used to number completion ids.
    fn record(&self, kind: CallKind, headers: &HeaderMap) -> u64 {
        let c = &self.inner;
        let counter = match kind {
            CallKind::Chat => &c.chat_calls,
            CallKind::Embeddings => &c.embedding_calls,
            CallKind::Responses => &c.responses_calls,
            CallKind::Other => &c.other_calls,
        };
        let ordinal = counter.fetch_add(1, Ordering::SeqCst) + 1;
        c.total_calls.fetch_add(1, Ordering::SeqCst);
        *c.last_authorization.lock() = headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        ordinal
    }

    fn add_embedding_items(&self, items: usize) {
        self.inner
            .embedding_items
            .fetch_add(items as u64, Ordering::SeqCst);
    }
}

/// A running mock upstream on `127.0.0.1` with an OS-chosen port. Dropping it stops accepting
/// connections.
#[derive(Debug)]
pub struct MockUpstream {
    state: MockState,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MockUpstream {
    /// Binds `127.0.0.1:0` and serves in a background tokio task.
    pub async fn start() -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = MockState::new();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                if let Err(error) = serve(listener, state).await {
                    tracing::error!(%error, "mock upstream stopped");
                }
            }
        });
        Ok(MockUpstream { state, addr, task })
    }

    /// The OpenAI-style base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Azure OpenAI resource endpoint, e.g. `http://127.0.0.1:PORT` (an `AzureOpenAI`
    /// client's `azure_endpoint`, deja's `azure.base_url`).
    pub fn azure_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the call counters.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// Zeroes the counters and forgets the last `authorization` header.
    pub fn reset(&self) {
        self.state.reset()
    }

    /// The `authorization` header of the most recent counted call, if it had one.
    pub fn last_authorization(&self) -> Option<String> {
        self.state.last_authorization()
    }

    /// The shared state (counters) behind this server.
    pub fn state(&self) -> &MockState {
        &self.state
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The mock's routes, without a socket (usable with `tower::ServiceExt::oneshot`).
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/models", get(list_models))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_deployment_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_deployment_embeddings),
        )
        .route("/openai/v1/chat/completions", post(azure_v1_chat))
        .route("/openai/v1/embeddings", post(azure_v1_embeddings))
        .route("/openai/v1/responses", post(azure_v1_responses))
        .route("/mock/stats", get(get_stats))
        .route("/mock/reset", post(post_reset))
        .route("/mock/last-authorization", get(get_last_authorization))
        .route("/mock/requests", get(get_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// How many requests [`MockState::requests`] keeps: the most recent.
pub const MAX_RECORDED: usize = 10_000;

/// Records every request outside `/mock/` ([`MockState::requests`]), the last
/// [`MAX_RECORDED`].
async fn record_request(
    State(state): State<MockState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !req.uri().path().starts_with("/mock/") {
        let mut seen = state.inner.requests.lock();
        // Bounded, so a long load or soak run does not grow the mock without end.
        if seen.len() >= MAX_RECORDED {
            seen.pop_front();
        }
        seen.push_back(SeenRequest {
            method: req.method().clone(),
            path_and_query: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string()),
            headers: req.headers().clone(),
        });
    }
    next.run(req).await
}

/// Serves the mock on `listener` until the task is dropped or the listener fails. Its
/// connections send each write at once (`TCP_NODELAY`), as a real API's do: otherwise a
/// streamed chunk waits for the client's delayed acknowledgement (about 40 ms).
pub async fn serve(listener: TcpListener, state: MockState) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state)).await
}

// ---------------------------------------------------------------------------------------------
// Faults

/// How a call should misbehave, gathered from the fault header and prompt markers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Faults {
    fail: Option<FailWith>,
    /// Delay before answering; for streams, before each chunk.
    slow_ms: u64,
    /// Delay before each streamed chunk, from [`CHUNK_DELAY_HEADER`].
    chunk_delay_ms: u64,
    /// Drop the connection after this many SSE events (or half the body when not streaming).
    cut_after: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailWith {
    ServerError,
    RateLimited,
}

impl FailWith {
    fn response(self) -> Response {
        match self {
            FailWith::ServerError => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "mock upstream failure",
                "server_error",
                None,
            ),
            FailWith::RateLimited => {
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "mock upstream rate limit reached",
                    "requests",
                    Some("rate_limit_exceeded"),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

impl Faults {
    /// Gathers faults from the request headers and from `[mock:...]` markers in `texts`.
    /// An unknown spec is an error message meant for a 400 response.
    fn collect<'a>(
        headers: &HeaderMap,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for value in headers.get_all(FAULT_HEADER) {
            let value = value
                .to_str()
                .map_err(|_| format!("{FAULT_HEADER} header is not ASCII"))?;
            for spec in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                faults.apply(spec)?;
            }
        }
        if let Some(value) = headers.get(CHUNK_DELAY_HEADER) {
            faults.chunk_delay_ms = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("{CHUNK_DELAY_HEADER} must be a number of milliseconds"))?;
        }
        for text in texts {
            for spec in markers(text) {
                faults.apply(spec)?;
            }
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
            None if spec == "500" => self.fail = Some(FailWith::ServerError),
            None if spec == "429" => self.fail = Some(FailWith::RateLimited),
            Some(("slow", ms)) => self.slow_ms = number(ms)?,
            Some(("cut", n)) => {
                self.cut_after = Some(usize::try_from(number(n)?).unwrap_or(usize::MAX))
            }
            _ => {
                return Err(format!(
                    "unknown mock fault '{spec}' (valid: 500, 429, slow=MS, cut=N)"
                ))
            }
        }
        Ok(())
    }

    /// The delay before each streamed chunk.
    fn chunk_delay(&self) -> Duration {
        Duration::from_millis(self.slow_ms.max(self.chunk_delay_ms))
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
// Responses

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
fn error_response(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    (status, Json(body)).into_response()
}

fn invalid_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
    )
}

/// One piece of a deliberately paced response body.
enum Step {
    Data(Bytes),
    /// End the body with an error so the server drops the connection mid-response.
    Abort,
}

/// A body that yields `steps` one at a time, waiting `delay` before each (or yielding to the
/// scheduler when there is no delay, so the server flushes every chunk on its own rather than
/// writing one buffer).
fn paced_body(steps: Vec<Step>, delay: Duration) -> Body {
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
                // Give the server a moment to flush what was already sent, so the client sees
                // the first chunks and then an early EOF rather than nothing at all.
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

/// Sends the first half of `body`, then drops the connection.
fn truncated_json(body: &Value) -> Response {
    let bytes = body.to_string().into_bytes();
    let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
    with_content_type(
        paced_body(vec![Step::Data(half), Step::Abort], Duration::ZERO),
        "application/json",
    )
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

// ---------------------------------------------------------------------------------------------
// Chat completions

/// The text of a message's `content`: a string, or the `text` parts of an array joined with a
/// space. Anything else has no text.
fn content_text(content: &Value) -> String {
    parts_text(content, "text")
}

/// `content` as a string, or its parts of type `kind` (their `text`) joined with a space.
fn parts_text(content: &Value, kind: &str) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some(kind))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

async fn chat_completions(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_chat(&state, &headers, &body, "deja-mock-chat").await
}

/// A chat completion; `default_model` is the answer's `model` when the body names none.
async fn answer_chat(
    state: &MockState,
    headers: &HeaderMap,
    body: &Bytes,
    default_model: &str,
) -> Response {
    let ordinal = state.record(CallKind::Chat, headers);
    let request: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return invalid_request("request body is not a JSON object"),
    };
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
        .map(content_text)
        .unwrap_or_default();
    state.inner.questions.lock().push(question.clone());
    let faults = match Faults::collect(headers, [question.as_str()]) {
        Ok(faults) => faults,
        Err(message) => return invalid_request(&message),
    };
    if let Some(fail) = faults.fail {
        sleep_ms(faults.slow_ms).await;
        return fail.response();
    }

    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(default_model);
    let n = request
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 128);
    let answer = match state.inner.answers.lock().get(&question) {
        Some(a) => a.clone(),
        None => format!("deja-mock answer to: {question}"),
    };
    let texts: Vec<String> = (0..n)
        .map(|i| match i {
            0 => answer.clone(),
            _ => format!("{answer} (choice {i})"),
        })
        .collect();
    let prompt_tokens: u64 = messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|c| word_count(&content_text(c)))
        .sum();
    let completion_tokens: u64 = texts.iter().map(|t| word_count(t)).sum();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-mock-{ordinal}");

    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let plan = StreamPlan {
            id: &id,
            model,
            texts: &texts,
            usage: include_usage.then_some(&usage),
        };
        return stream_response(plan.events(), &faults);
    }

    sleep_ms(faults.slow_ms).await;
    let choices: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({
                "index": index,
                "message": { "role": "assistant", "content": text, "refusal": null },
                "logprobs": null,
                "finish_reason": "stop",
            })
        })
        .collect();
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": MOCK_CREATED,
        "model": model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": "fp_deja_mock",
    });
    if faults.cut_after.is_some() {
        return truncated_json(&body);
    }
    Json(body).into_response()
}

/// What a streamed completion sends.
struct StreamPlan<'a> {
    id: &'a str,
    model: &'a str,
    texts: &'a [String],
    /// Present when the request asked for `stream_options.include_usage`.
    usage: Option<&'a Value>,
}

/// The SSE events of a stream, split where a cut may happen.
struct StreamEvents {
    /// Role and content chunks: a cut happens somewhere in here.
    body: Vec<Bytes>,
    /// Finish chunks, the usage chunk and `[DONE]`: never sent by a cut stream.
    tail: Vec<Bytes>,
}

impl StreamPlan<'_> {
    fn chunk(&self, choices: Value, usage: Option<&Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": MOCK_CREATED,
            "model": self.model,
            "system_fingerprint": "fp_deja_mock",
            "choices": choices,
        });
        // OpenAI sends `"usage": null` on every chunk once usage was requested.
        if self.usage.is_some() {
            chunk["usage"] = usage.cloned().unwrap_or(Value::Null);
        }
        sse(&chunk.to_string())
    }

    fn delta(&self, index: usize, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let choice = json!({
            "index": index,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        });
        self.chunk(json!([choice]), None)
    }

    /// Role chunks for every choice, then each choice's answer word by word, then the finish
    /// chunks, the optional usage chunk and `[DONE]`.
    fn events(&self) -> StreamEvents {
        let mut body = Vec::new();
        for index in 0..self.texts.len() {
            body.push(self.delta(index, json!({ "role": "assistant", "content": "" }), None));
        }
        for (index, text) in self.texts.iter().enumerate() {
            for piece in text.split_inclusive(' ') {
                body.push(self.delta(index, json!({ "content": piece }), None));
            }
        }
        let mut tail = Vec::new();
        for index in 0..self.texts.len() {
            tail.push(self.delta(index, json!({}), Some("stop")));
        }
        if let Some(usage) = self.usage {
            tail.push(self.chunk(json!([]), Some(usage)));
        }
        tail.push(sse("[DONE]"));
        StreamEvents { body, tail }
    }
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn stream_response(events: StreamEvents, faults: &Faults) -> Response {
    let steps: Vec<Step> = match faults.cut_after {
        Some(n) => events
            .body
            .into_iter()
            .take(n)
            .map(Step::Data)
            .chain(std::iter::once(Step::Abort))
            .collect(),
        None => events
            .body
            .into_iter()
            .chain(events.tail)
            .map(Step::Data)
            .collect(),
    };
    let mut response =
        with_content_type(paced_body(steps, faults.chunk_delay()), "text/event-stream");
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

// ---------------------------------------------------------------------------------------------
// Embeddings

/// One input to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EmbeddingInput {
    Text(String),
    Tokens(Vec<u64>),
}

impl EmbeddingInput {
    fn seed(&self) -> u64 {
        // Distinct prefixes keep the text "1" and the token list [1] apart.
        match self {
            EmbeddingInput::Text(text) => fnv1a(fnv1a(FNV_OFFSET, b"text:"), text.as_bytes()),
            EmbeddingInput::Tokens(tokens) => tokens
                .iter()
                .fold(fnv1a(FNV_OFFSET, b"tokens:"), |hash, token| {
                    fnv1a(hash, &token.to_le_bytes())
                }),
        }
    }

    fn token_count(&self) -> u64 {
        match self {
            EmbeddingInput::Text(text) => word_count(text),
            EmbeddingInput::Tokens(tokens) => tokens.len() as u64,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            EmbeddingInput::Text(text) => Some(text),
            EmbeddingInput::Tokens(_) => None,
        }
    }
}

/// Parses `input`: a string, an array of strings, an array of token ids, or an array of
/// arrays of token ids.
fn parse_inputs(input: Option<&Value>) -> Result<Vec<EmbeddingInput>, String> {
    fn tokens(items: &[Value]) -> Option<Vec<u64>> {
        items.iter().map(Value::as_u64).collect()
    }
    const SHAPE: &str =
        "'input' must be a string, an array of strings, an array of token ids, or an array of arrays of token ids";
    match input {
        Some(Value::String(text)) => Ok(vec![EmbeddingInput::Text(text.clone())]),
        Some(Value::Array(items)) if items.is_empty() => Err("'input' is empty".to_owned()),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => tokens(items)
            .map(|t| vec![EmbeddingInput::Tokens(t)])
            .ok_or_else(|| SHAPE.to_owned()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Some(EmbeddingInput::Text(text.clone())),
                Value::Array(inner) => tokens(inner).map(EmbeddingInput::Tokens),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| SHAPE.to_owned()),
        Some(_) => Err(SHAPE.to_owned()),
        None => Err("'input' is required".to_owned()),
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// SplitMix64: a tiny, well-mixed PRNG, so the vector depends on every bit of the seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in (0, 1]: never zero, so its logarithm is finite.
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller).
    fn next_normal(&mut self) -> f64 {
        let (u1, u2) = (self.next_unit(), self.next_unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The deterministic, L2-normalised embedding of `input` with `dimensions` components.
fn mock_embedding(input: &EmbeddingInput, dimensions: usize) -> Vec<f32> {
    let mut rng = SplitMix64(input.seed());
    let raw: Vec<f64> = (0..dimensions).map(|_| rng.next_normal()).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    // A norm of zero needs every sample to be exactly zero, which Box–Muller cannot produce
    // from nonzero uniforms, but guard anyway rather than emit NaN.
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    raw.iter().map(|x| (x * scale) as f32).collect()
}

fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn embeddings(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    answer_embeddings(&state, &headers, &body, "deja-mock-embedding").await
}

/// An embeddings answer; `default_model` is the answer's `model` when the body names none.
async fn answer_embeddings(
    state: &MockState,
    headers: &HeaderMap,
    body: &Bytes,
    default_model: &str,
) -> Response {
    state.record(CallKind::Embeddings, headers);
    let request: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return invalid_request("request body is not a JSON object"),
    };
    let inputs = match parse_inputs(request.get("input")) {
        Ok(inputs) => inputs,
        Err(message) => return invalid_request(&message),
    };
    state.add_embedding_items(inputs.len());
    let faults = match Faults::collect(headers, inputs.iter().filter_map(EmbeddingInput::text)) {
        Ok(faults) => faults,
        Err(message) => return invalid_request(&message),
    };
    if let Some(fail) = faults.fail {
        sleep_ms(faults.slow_ms).await;
        return fail.response();
    }

    let dimensions = match request.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_EMBEDDING_DIMENSIONS,
        Some(value) => match value.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_EMBEDDING_DIMENSIONS).contains(&d) => d,
            _ => {
                return invalid_request(&format!(
                    "'dimensions' must be a whole number from 1 to {MAX_EMBEDDING_DIMENSIONS}"
                ))
            }
        },
    };
    let as_base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid_request(&format!(
                "unknown 'encoding_format' '{other}' (valid: float, base64)"
            ))
        }
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(default_model);

    sleep_ms(faults.slow_ms).await;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = mock_embedding(input, dimensions);
            let embedding = if as_base64 {
                json!(base64_f32(&vector))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens: u64 = inputs.iter().map(EmbeddingInput::token_count).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    });
    if faults.cut_after.is_some() {
        return truncated_json(&body);
    }
    Json(body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Azure OpenAI

/// Which of Azure OpenAI's APIs a route is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AzureApi {
    /// `/openai/deployments/{deployment}/...`: `api-version` required.
    Deployment,
    /// `/openai/v1/...`: `api-version` optional.
    V1,
}

/// An error in Azure's shape: `{"error":{"code","message"}}`, the code being the status.
fn azure_error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16().to_string(), "message": message } });
    (status, Json(body)).into_response()
}

/// What Azure answers before looking at the body: a deployment route without
/// `api-version` is not found, and a call without a credential is refused.
fn azure_refusal(api: AzureApi, query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let has_version = query.unwrap_or_default().split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| k == "api-version" && !v.is_empty())
    });
    if api == AzureApi::Deployment && !has_version {
        return Some(azure_error(StatusCode::NOT_FOUND, "Resource not found"));
    }
    let has_credential = ["api-key", "authorization"]
        .iter()
        .any(|name| headers.get(*name).is_some_and(|v| !v.is_empty()));
    if !has_credential {
        return Some(azure_error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ));
    }
    None
}

async fn azure_deployment_chat(
    State(state): State<MockState>,
    Path(deployment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = azure_refusal(AzureApi::Deployment, uri.query(), &headers) {
        state.record(CallKind::Chat, &headers);
        return refused;
    }
    answer_chat(&state, &headers, &body, &deployment).await
}

async fn azure_deployment_embeddings(
    State(state): State<MockState>,
    Path(deployment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = azure_refusal(AzureApi::Deployment, uri.query(), &headers) {
        state.record(CallKind::Embeddings, &headers);
        return refused;
    }
    answer_embeddings(&state, &headers, &body, &deployment).await
}

async fn azure_v1_chat(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = azure_refusal(AzureApi::V1, uri.query(), &headers) {
        state.record(CallKind::Chat, &headers);
        return refused;
    }
    answer_chat(&state, &headers, &body, "deja-mock-chat").await
}

async fn azure_v1_responses(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = azure_refusal(AzureApi::V1, uri.query(), &headers) {
        state.record(CallKind::Responses, &headers);
        return refused;
    }
    responses::responses(State(state), headers, body).await
}

async fn azure_v1_embeddings(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = azure_refusal(AzureApi::V1, uri.query(), &headers) {
        state.record(CallKind::Embeddings, &headers);
        return refused;
    }
    answer_embeddings(&state, &headers, &body, "deja-mock-embedding").await
}

// ---------------------------------------------------------------------------------------------
// Other routes

async fn list_models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    state.record(CallKind::Other, &headers);
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": MOCK_CREATED, "owned_by": "deja-mock" }))
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

async fn not_found(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.record(CallKind::Other, &headers);
    error_response(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {})", uri.path()),
        "invalid_request_error",
        Some("unknown_url"),
    )
}

async fn method_not_allowed(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.record(CallKind::Other, &headers);
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} not allowed on {}", uri.path()),
        "invalid_request_error",
        None,
    )
}

async fn get_stats(State(state): State<MockState>) -> Json<MockStats> {
    Json(state.stats())
}

async fn post_reset(State(state): State<MockState>) -> Json<MockStats> {
    state.reset();
    Json(state.stats())
}

async fn get_last_authorization(State(state): State<MockState>) -> Json<Value> {
    Json(json!({ "authorization": state.last_authorization() }))
}

/// The recorded requests, for tests outside the process (the end-to-end ones): method, path
/// and query as sent, and headers (the last value of each; non-text values lossily).
async fn get_requests(State(state): State<MockState>) -> Json<Value> {
    let requests: Vec<Value> = state
        .requests()
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_string(), Value::String(value))
                })
                .collect();
            json!({ "method": r.method.as_str(), "path": r.path_and_query, "headers": headers })
        })
        .collect();
    Json(Value::Array(requests))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
