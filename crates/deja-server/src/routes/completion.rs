//! What the cached completion routes share: OpenAI's `POST /v1/chat/completions`
//! ([`super::chat`]) and Anthropic's `POST /v1/messages` ([`super::messages`]) answer a
//! parsed and keyed request through [`answer`]: never-cache rules and `Cache-Control`,
//! exact then semantic lookup with concurrent identical misses coalesced, and on a miss the
//! upstream, whose answer is returned as it arrives (a stream chunk by chunk, recorded on
//! the way) and stored only when it is a complete 2xx answer ([`PendingInsert`]), before the
//! response ends with strict durability.
//!
//! What differs between the routes stays in them: parsing, the key, the upstream they call,
//! the conversion of a stored answer into the shape the client asked for, and the error
//! shape. What differs between the wire formats of a stream and a body is
//! [`StreamFormat`].

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deja_core::{Answer, BypassReason, Entry, ExactKey, Lookup, LookupRequest, NewEntry, Usage};
use deja_openai::anthropic::stream as anthropic_stream;
use deja_openai::chat::ChatKey;
use deja_openai::responses::stream as responses_stream;
use deja_openai::sse;
use futures::StreamExt;

use crate::coalesce::{LeaderGuard, SharedError, Waited};
use crate::controls::Controls;
use crate::error::ApiError;
use crate::observe::summary::Endpoint;
use crate::observe::summary::{NearMiss, SemanticServed};
use crate::routes::record::RequestRecord;
use crate::routes::CacheHeader;
use crate::state::AppState;
use crate::upstream::{map_send_error, response_headers, Upstream};

/// The wire format of an answer: how a stream ends, when a recording is whole, where the
/// token usage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// OpenAI `chat.completion` bodies and chunks; a stream ends with `data: [DONE]`.
    OpenAi,
    /// Anthropic `message` bodies and named events; a stream ends with `message_stop`.
    Anthropic,
    /// OpenAI Responses API `response` bodies and named events; a stream ends with
    /// `response.completed` (or `.failed`, `.incomplete`, `error`).
    Responses,
}

impl StreamFormat {
    /// Whether `event` ends the stream.
    fn is_end(self, event: &sse::SseEvent) -> bool {
        match (self, event) {
            (StreamFormat::OpenAi, sse::SseEvent::Done) => true,
            (StreamFormat::OpenAi, sse::SseEvent::Data(_)) => false,
            (StreamFormat::Anthropic, sse::SseEvent::Data(d)) => anthropic_stream::is_stream_end(d),
            (StreamFormat::Anthropic, sse::SseEvent::Done) => false,
            (StreamFormat::Responses, sse::SseEvent::Data(d)) => responses_stream::is_stream_end(d),
            (StreamFormat::Responses, sse::SseEvent::Done) => false,
        }
    }

    /// Whether a recorded stream holds a whole answer.
    fn completed(self, chunks: &[Vec<u8>]) -> bool {
        match self {
            StreamFormat::OpenAi => sse::stream_completed(chunks),
            StreamFormat::Anthropic => anthropic_stream::stream_completed(chunks),
            StreamFormat::Responses => responses_stream::stream_completed(chunks),
        }
    }

    fn usage_from_chunks(self, chunks: &[Vec<u8>]) -> Usage {
        match self {
            StreamFormat::OpenAi => sse::usage_from_chunks(chunks),
            StreamFormat::Anthropic => anthropic_stream::usage_from_events(chunks),
            StreamFormat::Responses => responses_stream::usage_from_events(chunks),
        }
    }

    /// Whether a 2xx body is a whole answer worth storing (not merely JSON: an error
    /// object or an empty `choices` is not), and its usage if so.
    fn stored_body(self, body: &[u8]) -> Option<Usage> {
        match self {
            StreamFormat::OpenAi => sse::body_completed(body).then(|| sse::usage_from_body(body)),
            StreamFormat::Anthropic => anthropic_stream::body_completed(body)
                .then(|| anthropic_stream::usage_from_body(body)),
            StreamFormat::Responses => responses_stream::body_completed(body)
                .then(|| responses_stream::usage_from_body(body)),
        }
    }

    /// The API whose answers this format carries.
    fn api(self) -> crate::answers::Api {
        match self {
            StreamFormat::OpenAi => crate::answers::Api::OpenAi,
            StreamFormat::Anthropic => crate::answers::Api::Anthropic,
            StreamFormat::Responses => crate::answers::Api::Responses,
        }
    }
}

/// Where a route sends its misses.
pub struct Route<'a> {
    /// The metrics label.
    pub endpoint: Endpoint,
    pub upstream: &'a Upstream,
    /// The incoming path with the client's query string, mapped under the upstream's
    /// base URL.
    pub path: &'a str,
    pub format: StreamFormat,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
}

/// A parsed request as the cache sees it.
pub struct Cached {
    pub key: ChatKey,
    /// The tenant label, stored with the entry.
    pub tenant: String,
    pub controls: Controls,
    /// `x-deja-category`, already checked against the configured categories.
    pub category_hint: Option<String>,
    /// `x-deja-tags`, stored with the entry.
    pub tags: Vec<String>,
    /// The body to store with the entry for the staleness job (`None`: not recorded).
    pub request: Option<Vec<u8>>,
}

impl Cached {
    /// A keyed request with what its headers ask of the cache (`x-deja-category`, checked
    /// against the configured categories, and `x-deja-tags`), and its body kept for the
    /// staleness job when the job is on and may re-send it (`recordable`).
    pub fn new(
        app: &AppState,
        headers: &HeaderMap,
        key: ChatKey,
        tenant: String,
        controls: Controls,
        body: &Bytes,
        recordable: bool,
    ) -> Result<Cached, ApiError> {
        Ok(Cached {
            key,
            tenant,
            controls,
            category_hint: category_hint(app, headers)?,
            tags: crate::tags::tags_from_headers(headers)?,
            // Kept so the staleness job can ask again (see `crate::staleness`).
            request: (app.config().staleness.enabled && recordable).then(|| body.to_vec()),
        })
    }
}

/// Answers a request from the cache, or from the upstream and stores the answer. `serve`
/// turns a stored entry into the response the client asked for (headers given); `None`
/// means the entry cannot be served, which bypasses the cache.
pub async fn answer(
    app: &AppState,
    record: &mut RequestRecord<'_>,
    headers: &HeaderMap,
    bytes: Bytes,
    cached: Cached,
    route: Route<'_>,
    serve: impl Fn(Entry, HeaderMap) -> Option<Response>,
) -> Result<Response, ApiError> {
    let Cached {
        key,
        tenant,
        controls,
        category_hint,
        tags,
        request,
    } = cached;
    let exact = ExactKey::new(&key.partition, &key.prompt);
    let mut vector = None;
    let mut rejected = None;
    let mut category = None;
    let mut label = None;
    let mut outcome = CacheHeader::Miss;
    let mut guard = None;
    if let Some(rule) = app.rules().check_prompt(&key.prompt) {
        // Personal data or a time-sensitive question: neither looked up nor stored.
        outcome = CacheHeader::NeverCache(rule.reason());
        app.cache().count(|c| c.bypasses += 1);
    } else if let Some(reason) = controls.bypass {
        outcome = CacheHeader::Bypass(reason);
        app.cache().count(|c| c.bypasses += 1);
    } else if controls.skip_lookup {
        outcome = CacheHeader::Bypass("no-cache");
        app.cache().count(|c| c.bypasses += 1);
    } else {
        let lookup = LookupRequest {
            category: category_hint.as_deref(),
            partition: key.partition,
            prompt: &key.prompt,
            semantic: key.semantic,
            min_similarity: controls.min_similarity,
            max_age_secs: controls.max_age_secs,
        };
        // Each request waits for a leader at most once (see `coalesce`), so waiters never
        // queue behind one another.
        let bound = Duration::from_millis(app.config().cache.coalesce_wait_ms);
        let mut waited = false;
        loop {
            if !waited {
                match app.inflight().wait(&exact, bound).await {
                    Waited::NoLeader => {}
                    Waited::Done | Waited::TimedOut => waited = true,
                    Waited::Failed(e) => {
                        // The leader's upstream error, shared: not stored, not re-asked.
                        record.set(&outcome);
                        return Ok((e.status, e.headers.clone(), e.body.clone()).into_response());
                    }
                }
            }
            let (found, stages) = app.cache().lookup_timed(&lookup).await;
            record.summary.stages = stages;
            let (entry, hit) = match found {
                Lookup::ExactHit(entry) => {
                    after_exact_hit(app, &entry, &route, (headers, &bytes));
                    (entry, CacheHeader::HitExact)
                }
                Lookup::SemanticHit {
                    entry,
                    similarity,
                    audit,
                    aliased,
                } => {
                    record.summary.aliased = aliased;
                    record.summary.semantic_hit = Some(SemanticServed {
                        entry: entry.id,
                        prompt: key.prompt.clone(),
                        ticket: audit.clone(),
                    });
                    if let Some(ticket) = audit {
                        let request = (headers, &bytes);
                        after_budgeted_hit(
                            app,
                            ticket,
                            &entry,
                            &tenant,
                            &key.prompt,
                            &route,
                            request,
                        );
                    }
                    (entry, CacheHeader::HitSemantic(similarity))
                }
                Lookup::Miss {
                    vector: v,
                    nearest,
                    nearest_id,
                    rejected: r,
                    threshold,
                    category: c,
                    label: l,
                } => {
                    vector = v;
                    label = l;
                    rejected = r;
                    category = Some(c);
                    if let (Some(similarity), Some(entry), Some(threshold)) =
                        (nearest, nearest_id, threshold)
                    {
                        record.summary.near_miss = Some(NearMiss {
                            similarity,
                            threshold,
                            entry,
                            prompt: key.prompt.clone(),
                            rejected: r,
                            ticket: label.clone(),
                        });
                    }
                    // Whoever registers first fetches; the others wait above and look
                    // again, unless they have waited already: then they go on their own.
                    match app.inflight().lead(exact) {
                        Some(g) => {
                            guard = Some(g);
                            break;
                        }
                        None if waited => break,
                        None => continue,
                    }
                }
                Lookup::Bypass(reason) => {
                    outcome = CacheHeader::Bypass(reason.as_str());
                    break;
                }
            };
            let usage = entry.usage;
            let hit_headers = hit_headers(&entry, &hit);
            if let Some(resp) = serve(entry, hit_headers) {
                record.served(&hit, usage);
                return Ok(resp);
            }
            outcome = CacheHeader::Bypass("unreadable-entry");
            break;
        }
    }
    // Bypassed lookups are not stored (the backend is failing, or the entry is bad),
    // except `no-cache`, which exists to refresh the entry.
    let store = !controls.skip_store
        && matches!(outcome, CacheHeader::Miss | CacheHeader::Bypass("no-cache"));
    let pending = store.then(|| PendingInsert {
        app: app.clone(),
        key,
        vector,
        category: category.clone().or(category_hint),
        labels: deja_core::EntryLabels {
            namespace: Some(tenant),
            tags,
        },
        request,
        format: route.format,
        guard,
        label,
    });

    record.set(&outcome);
    if let Some(r) = rejected {
        app.metrics().verification_reject(r);
    }
    app.cache().count(|c| c.upstream_calls += 1);
    let started = Instant::now();
    let sent = route
        .upstream
        .send(Method::POST, route.path, headers, bytes, !route.stream)
        .await;
    let elapsed = started.elapsed();
    app.metrics().upstream_call(route.endpoint, elapsed);
    record.summary.upstream = Some(elapsed);
    let upstream = sent?;
    let status = upstream.status();
    let mut resp_headers = response_headers(upstream.headers());
    outcome.write(&mut resp_headers);
    if let Some(c) = category
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        resp_headers.insert(super::X_DEJA_CATEGORY, c);
    }
    if let Some(r) = rejected {
        // A similar prompt was found but refused: say why, to guide tuning.
        resp_headers.insert("x-deja-rejected", HeaderValue::from_static(r.as_str()));
    }

    if !status.is_success() {
        // Upstream errors pass through unchanged and are never stored; requests waiting
        // for this one get the same answer.
        let body = upstream.bytes().await.map_err(map_send_error)?;
        if let Some(g) = pending.as_ref().and_then(|p| p.guard.as_ref()) {
            g.fail(SharedError {
                status,
                headers: resp_headers.clone(),
                body: body.clone(),
            });
        }
        return Ok((status, resp_headers, body).into_response());
    }
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if route.stream && is_sse {
        return Ok(stream_through(upstream, status, resp_headers, pending));
    }
    let body = upstream.bytes().await.map_err(map_send_error)?;
    if let Some(p) = pending {
        // Only a complete answer is stored. Waiters are released once it is stored.
        if !route.stream {
            if let Some(usage) = route.format.stored_body(&body) {
                if p.answer_may_be_stored(&body) {
                    let insert = p.insert(Answer::Body(body.to_vec()), usage);
                    if ack_after_store(app) {
                        // Strict durability: the response is sent once the entry is durable.
                        insert.await;
                    } else {
                        tokio::spawn(crate::request_id::carry(insert));
                    }
                }
            }
        }
    }
    Ok((status, resp_headers, body).into_response())
}

/// After a semantic hit served under an error budget: a sampled share is audited in the
/// background ([`crate::audit`]), and the hit is remembered for a client's verdict
/// ([`crate::feedback`]). On the request path this is a random draw and a short lock; the
/// request is copied for the audit only when it is sampled.
fn after_budgeted_hit(
    app: &AppState,
    ticket: deja_core::LabelTicket,
    entry: &Entry,
    tenant: &str,
    prompt: &str,
    route: &Route<'_>,
    (headers, body): (&HeaderMap, &Bytes),
) {
    let c = &app.config().cache;
    if app.audit_budget().admit(
        app.cache().now_ms(),
        entry.usage,
        c.audit_share,
        c.audit_max_calls_per_day,
        c.audit_max_tokens_per_day,
    ) {
        tokio::spawn(crate::request_id::carry(crate::audit::check(
            app.clone(),
            ticket.clone(),
            prompt.to_string(),
            resend(route, headers, body),
        )));
    }
    if let Some(id) = crate::request_id::current() {
        if let Ok(id) = id.to_str() {
            app.served_hits().record(id, tenant, entry.id, ticket);
        }
    }
}

/// After an exact hit: while the error budget of its category still needs to know how
/// often the answer comparison errs, a sampled share is asked again in the background
/// ([`crate::audit::check_exact`]). Without a budget this is one branch.
fn after_exact_hit(
    app: &AppState,
    entry: &Entry,
    route: &Route<'_>,
    (headers, body): (&HeaderMap, &Bytes),
) {
    let Some(calibration) = app.cache().calibration() else {
        return;
    };
    let c = &app.config().cache;
    // Without the operator's key nothing is re-sent: no draw, nothing counted. The
    // cheapest tests first: this runs on every exact hit under a budget.
    if c.audit_exact_share <= 0.0
        || !route.upstream.has_operator_key()
        || !calibration.wants_judge_check(&entry.category)
        || !app.audit_budget().admit(
            app.cache().now_ms(),
            entry.usage,
            c.audit_exact_share,
            c.audit_max_calls_per_day,
            c.audit_max_tokens_per_day,
        )
    {
        return;
    }
    tokio::spawn(crate::request_id::carry(crate::audit::check_exact(
        app.clone(),
        entry.category.clone(),
        entry.answer.clone(),
        resend(route, headers, body),
    )));
}

/// A copy of the request for an audit to send again where it went.
fn resend(route: &Route<'_>, headers: &HeaderMap, body: &Bytes) -> crate::audit::Resend {
    crate::audit::Resend {
        upstream: route.upstream.clone(),
        api: route.format.api(),
        path: route.path.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    }
}

/// The headers of a response served from `entry`.
fn hit_headers(entry: &Entry, outcome: &CacheHeader) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(HIT_HEADERS);
    outcome.write(&mut headers);
    if let Ok(v) = HeaderValue::from_str(&entry.id.to_string()) {
        headers.insert(super::X_DEJA_ENTRY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&entry.category) {
        headers.insert(super::X_DEJA_CATEGORY, v);
    }
    headers
}

/// The category named by `x-deja-category`, which must be a configured one.
fn category_hint(app: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(super::X_DEJA_CATEGORY) else {
        return Ok(None);
    };
    let policy = app.cache().policy();
    let name = v.to_str().unwrap_or_default().trim();
    if policy.by_name(name).is_none() {
        let known: Vec<&str> = policy.names().collect();
        return Err(ApiError::bad_request(
            format!(
                "x-deja-category {name:?} is not a configured category; use one of: {}",
                known.join(", ")
            ),
            None,
        ));
    }
    Ok(Some(name.to_string()))
}

/// What is needed to store the upstream's answer once it is complete. Holding it keeps
/// the coalescing leadership; dropping it releases waiters.
struct PendingInsert {
    app: AppState,
    key: ChatKey,
    vector: Option<Vec<f32>>,
    category: Option<String>,
    /// The request's tenant label and `x-deja-tags`, stored for invalidation.
    labels: deja_core::EntryLabels,
    /// The request body, recorded while staleness checks are on.
    request: Option<Vec<u8>>,
    format: StreamFormat,
    /// The coalescing leadership, when this request has it: dropped (waiters released)
    /// once the answer is stored or cannot be.
    guard: Option<LeaderGuard>,
    /// With an error budget: the candidates to label with this answer once it is stored.
    label: Option<deja_core::LabelTicket>,
}

impl PendingInsert {
    /// Whether the never-cache rules allow storing this answer (personal data in it, or a
    /// configured answer pattern, keep it out). Checked on the raw bytes, which is
    /// conservative: JSON escaping only hides what it escapes.
    fn answer_may_be_stored(&self, bytes: &[u8]) -> bool {
        match self
            .app
            .rules()
            .check_answer(&String::from_utf8_lossy(bytes))
        {
            None => true,
            Some(rule) => {
                tracing::info!(reason = %rule.reason(), "answer not stored: never-cache rule");
                self.app.cache().count(|c| c.bypasses += 1);
                self.app.metrics().not_stored(&rule.reason());
                false
            }
        }
    }

    async fn insert(self, answer: Answer, usage: Usage) {
        let PendingInsert {
            app,
            key,
            vector,
            category,
            labels,
            request,
            format: _,
            // Kept to the end: the waiters look up again once the entry is stored.
            guard: _guard,
            label,
        } = self;
        let ChatKey {
            partition,
            prompt,
            semantic,
            model,
        } = key;
        let new = NewEntry {
            partition,
            prompt,
            model,
            answer,
            usage,
            semantic,
            vector,
            category,
        };
        match app.cache().insert_recorded(new, labels, request).await {
            Ok(id) => {
                if let Some(ticket) = label {
                    // Off the request path: labelling reads the entry back and may embed
                    // both answers.
                    tokio::spawn(crate::request_id::carry(label_miss(app, ticket, id)));
                }
            }
            Err(e) => {
                app.cache().count(|c| c.bypasses += 1);
                app.metrics().not_stored(BypassReason::StoreError.as_str());
                tracing::warn!(error = %deja_core::ErrorChain(&e), "storing an answer failed; it was served but not cached");
            }
        }
    }
}

/// Compares a miss's fresh answer, as stored in `stored_as`, with its nearest candidates'
/// stored answers and records the label for the error budget
/// ([`deja_core::Cache::label`]). A failure costs the label only (logged).
async fn label_miss(app: AppState, ticket: deja_core::LabelTicket, stored_as: deja_core::EntryId) {
    let stored = match app.cache().store().get(stored_as).await {
        Ok(Some(entry)) => entry,
        // Replaced or removed already: nothing to label it with.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "labelling a miss: reading its answer back failed");
            return;
        }
    };
    let Some(fresh) = crate::answers::comparable_text(&stored.answer) else {
        return;
    };
    match app
        .cache()
        .label(
            &ticket,
            &stored.prompt,
            &fresh,
            Some(stored_as),
            crate::answers::comparable_text,
        )
        .await
    {
        Ok(Some(o)) => app.metrics().budget_label(o.agreed),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "labelling a miss for the error budget failed")
        }
    }
}

/// A stored answer converted into the shape the client asked for, or `None` (logged) when it
/// could not be, which bypasses the cache.
pub fn converted_or_bypass(
    id: deja_core::EntryId,
    converted: Converted<Response>,
) -> Option<Response> {
    match converted {
        Ok(resp) => Some(resp),
        Err(e) => {
            tracing::warn!(entry = %id, error = %e, "stored answer could not be converted; going upstream");
            None
        }
    }
}

/// How an API whose streams are named events (Anthropic's Messages API, OpenAI's Responses
/// API) turns a stored answer into the other shape: its object into the events a stream of
/// it carries, and recorded events back into the object.
pub struct NamedEvents {
    pub to_events: fn(&[u8]) -> Converted<Vec<Vec<u8>>>,
    pub to_object: fn(&[Vec<u8>]) -> Converted<Vec<u8>>,
}

/// A stored answer in another shape, or why it could not be converted.
type Converted<T> = Result<T, deja_openai::WireError>;

impl NamedEvents {
    /// Serves `entry` as a JSON object or, when the client streams, as named events.
    pub fn serve(&self, entry: Entry, headers: HeaderMap, stream: bool) -> Option<Response> {
        let Entry { id, answer, .. } = entry;
        let converted = match (answer, stream) {
            (Answer::Body(b), false) => Ok(json_response(Bytes::from(b), headers)),
            (Answer::Body(b), true) => (self.to_events)(&b)
                .map(|events| sse_response(sse::encode_named_events(&events), headers)),
            (Answer::Chunks(c), true) => Ok(sse_response(sse::encode_named_events(&c), headers)),
            (Answer::Chunks(c), false) => {
                (self.to_object)(&c).map(|body| json_response(Bytes::from(body), headers))
            }
        };
        converted_or_bypass(id, converted)
    }
}

/// A JSON answer served from the cache.
pub fn json_response(body: Bytes, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_headers(body, headers)
}

/// A stream served from the cache, whole.
pub fn sse_response(body: Bytes, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_headers(body, headers)
}

/// Room for a hit's headers, with the content type, cache control and request id added
/// later, so the map is not grown (rehashed) on the hot path.
const HIT_HEADERS: usize = 12;

/// A 200 answer with `headers` as its header map, as it is (no copy into a new map).
fn with_headers(body: Bytes, headers: HeaderMap) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.headers_mut() = headers;
    resp
}

/// How many bytes of a stream may wait for a slow client. The recording goes on at the
/// upstream's pace while the client is behind by less than this, so a client that stops
/// reading does not hold back the requests waiting for this answer (they are released when
/// it is stored). The recording already holds the whole answer, so this at most doubles
/// what a stream takes; about 80,000 tokens of OpenAI chunks. A client further behind slows
/// the upstream down again, and the waiters fall back on `coalesce_wait_ms`.
const CLIENT_BUFFER_BYTES: usize = 16 << 20;

/// A chunk on its way to the client, with its share of [`CLIENT_BUFFER_BYTES`].
type ClientChunk = (
    Result<Bytes, std::io::Error>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// Forwards an upstream SSE stream to the client as it arrives, recording its events, and
/// stores the recording if the stream ended as its format ends and the answer is whole.
fn stream_through(
    upstream: reqwest::Response,
    status: StatusCode,
    headers: HeaderMap,
    pending: Option<PendingInsert>,
) -> Response {
    // Unbounded in chunks, bounded in bytes: a chunk waits for its bytes' permits, which
    // are given back when the client's body takes it (or drops it, gone).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ClientChunk>();
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(CLIENT_BUFFER_BYTES));
    let mut pending = pending;
    let strict = pending.as_ref().is_some_and(|p| ack_after_store(&p.app));
    let format = pending.as_ref().map(|p| p.format);
    let task = async move {
        let mut parser = sse::SseParser::default();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut done = false;
        let mut failed = false;
        let mut stream = upstream.bytes_stream();
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    if let (Some(format), true) = (format, pending.is_some()) {
                        for event in parser.push(&bytes) {
                            done |= format.is_end(&event);
                            if let sse::SseEvent::Data(d) = event {
                                chunks.push(d);
                            }
                        }
                    }
                    if done && strict {
                        // Strict durability: store before the client sees the end.
                        if let Some(p) = pending.take() {
                            store_stream(p, std::mem::take(&mut chunks)).await;
                        }
                    }
                    // A chunk larger than the whole buffer takes all of it. The cast is
                    // exact: the buffer's size fits in a u32.
                    let cost = bytes.len().min(CLIENT_BUFFER_BYTES) as u32;
                    let Ok(permit) = budget.clone().acquire_many_owned(cost).await else {
                        // The semaphore is never closed.
                        return;
                    };
                    if tx.send((Ok(bytes), Some(permit))).is_err() {
                        // The client went away: stop reading; a partial answer is not stored.
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "upstream stream broke off; not caching it");
                    failed = true;
                    let _ = tx.send((
                        Err(std::io::Error::other("upstream stream broke off")),
                        None,
                    ));
                    break;
                }
            }
        }
        drop(tx);
        if let Some(p) = pending {
            if !failed && done {
                store_stream(p, chunks).await;
            }
        }
    };
    // The recording outlives the handler; its log lines keep the request's id.
    tokio::spawn(crate::request_id::carry(task));
    // The permit is dropped as the body hands the chunk on, which frees its bytes.
    let chunks =
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|(chunk, _permit)| chunk);
    (status, headers, Body::from_stream(chunks)).into_response()
}

/// Whether a stored answer must be durable before the client sees the end of the response
/// (`store.durability = "strict"`), so that an acknowledged answer survives a crash.
fn ack_after_store(app: &AppState) -> bool {
    app.config().store.durability == crate::config::Durability::Strict
}

/// Stores a recorded stream if it completed normally and no never-cache rule objects.
async fn store_stream(p: PendingInsert, chunks: Vec<Vec<u8>>) {
    // Joined: personal data can be split across chunks.
    if p.format.completed(&chunks) && p.answer_may_be_stored(&chunks.concat()) {
        let usage = p.format.usage_from_chunks(&chunks);
        p.insert(Answer::Chunks(chunks), usage).await;
    }
}
