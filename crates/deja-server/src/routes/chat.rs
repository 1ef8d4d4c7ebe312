//! `POST /v1/chat/completions`: exact, then semantic lookup, then the upstream. A streamed
//! miss reaches the client chunk by chunk while it is recorded, and is stored only when it
//! completed normally. Hits are served in the shape the client asked for (JSON or SSE),
//! whatever shape they were recorded in.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deja_core::{Answer, BypassReason, Entry, ExactKey, Lookup, LookupRequest, NewEntry};
use deja_openai::chat::{chat_key, include_usage, is_stream, parse_chat, ChatKey};
use deja_openai::sse;
use futures::StreamExt;
use tracing::Instrument;

use crate::coalesce::LeaderGuard;
use crate::controls::{tenant, Controls};
use crate::error::ApiError;
use crate::metrics::Endpoint;
use crate::observe::{NearMiss, RequestRecord};
use crate::routes::{read_body, wire_error, CacheHeader};
use crate::upstream::{map_send_error, response_headers};
use crate::AppState;

const PATH: &str = "/v1/chat/completions";

pub async fn chat_completions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config().limits.max_body_bytes).await?;
    // Counts the request, with its duration, when this function returns.
    let mut record = RequestRecord::new(&app, Endpoint::Chat);
    let req = parse_chat(&bytes).map_err(wire_error)?;
    let controls = Controls::from_headers(&headers)?;
    let tenant = tenant(&headers, app.config().cache.tenant)?;
    let key = chat_key(&req, &tenant);
    let want = Shape {
        stream: is_stream(&req),
        include_usage: include_usage(&req),
    };
    let exact = ExactKey::new(&key.partition, &key.prompt);
    let category_hint = category_hint(&app, &headers)?;
    let tags = crate::admin::tags_from_headers(&headers)?;
    record.summary.model = Some(key.model.clone());
    record.normalised();

    let mut vector = None;
    let mut rejected = None;
    let mut category = None;
    let mut outcome = CacheHeader::Miss;
    let mut guard = None;
    if let Some(rule) = app.rules().check_prompt(&key.prompt) {
        // Personal data or a time-sensitive question: neither looked up nor stored.
        outcome = CacheHeader::NeverCache(rule.reason());
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
        loop {
            app.inflight().wait(&exact).await;
            let (found, stages) = app.cache().lookup_timed(&lookup).await;
            record.summary.stages = stages;
            match found {
                Lookup::ExactHit(entry) => {
                    let usage = entry.usage;
                    if let Some(resp) = serve_hit(entry, &CacheHeader::HitExact, want) {
                        record.served(&CacheHeader::HitExact, usage);
                        return Ok(resp);
                    }
                    outcome = CacheHeader::Bypass("unreadable-entry");
                    break;
                }
                Lookup::SemanticHit { entry, similarity } => {
                    let usage = entry.usage;
                    let hit = CacheHeader::HitSemantic(similarity);
                    if let Some(resp) = serve_hit(entry, &hit, want) {
                        record.served(&hit, usage);
                        return Ok(resp);
                    }
                    outcome = CacheHeader::Bypass("unreadable-entry");
                    break;
                }
                Lookup::Miss {
                    vector: v,
                    nearest,
                    nearest_id,
                    rejected: r,
                    threshold,
                    category: c,
                } => {
                    vector = v;
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
                        });
                    }
                }
                Lookup::Bypass(reason) => {
                    outcome = CacheHeader::Bypass(reason.as_str());
                    break;
                }
            }
            // Whoever registers first fetches; the others wait above and look again.
            if let Some(g) = app.inflight().lead(exact) {
                guard = Some(g);
                break;
            }
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
        // Kept so the staleness job can ask again (see `crate::staleness`).
        request: app.config().staleness.enabled.then(|| bytes.to_vec()),
        _guard: guard,
    });

    record.set(&outcome);
    if let Some(r) = rejected {
        app.metrics().verification_reject(r);
    }
    app.cache().count(|c| c.upstream_calls += 1);
    let started = Instant::now();
    let sent = app
        .upstream()
        .send(Method::POST, PATH, &headers, bytes, !want.stream)
        .await;
    let elapsed = started.elapsed();
    app.metrics().upstream_call(Endpoint::Chat, elapsed);
    record.summary.upstream = Some(elapsed);
    let upstream = sent?;
    let status = upstream.status();
    let mut resp_headers = response_headers(upstream.headers());
    outcome.write(&mut resp_headers);
    if let Some(c) = category
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        resp_headers.insert("x-deja-category", c);
    }
    if let Some(r) = rejected {
        // A similar prompt was found but refused: say why, to guide tuning.
        resp_headers.insert("x-deja-rejected", HeaderValue::from_static(r.as_str()));
    }

    if !status.is_success() {
        // Upstream errors pass through unchanged and are never stored.
        let body = upstream.bytes().await.map_err(map_send_error)?;
        return Ok((status, resp_headers, body).into_response());
    }
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if want.stream && is_sse {
        return Ok(stream_through(upstream, status, resp_headers, pending));
    }
    let body = upstream.bytes().await.map_err(map_send_error)?;
    if let Some(p) = pending {
        // Only a complete JSON answer is stored. Waiters are released once it is stored.
        if !want.stream
            && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok()
            && p.answer_may_be_stored(&body)
        {
            let usage = deja_openai::sse::usage_from_body(&body);
            let insert = p.insert(Answer::Body(body.to_vec()), usage);
            if ack_after_store(&app) {
                // Strict durability: the response is sent once the entry is durable.
                insert.await;
            } else {
                tokio::spawn(insert.in_current_span());
            }
        }
    }
    Ok((status, resp_headers, body).into_response())
}

/// The category named by `x-deja-category`, which must be a configured one.
fn category_hint(app: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("x-deja-category") else {
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

/// The response shape the client asked for.
#[derive(Debug, Clone, Copy)]
struct Shape {
    stream: bool,
    include_usage: bool,
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
    _guard: Option<LeaderGuard>,
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

    async fn insert(self, answer: Answer, usage: deja_core::Usage) {
        let PendingInsert {
            app,
            key,
            vector,
            category,
            labels,
            request,
            _guard,
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
        if let Err(e) = app.cache().insert_recorded(new, labels, request).await {
            app.cache().count(|c| c.bypasses += 1);
            app.metrics().not_stored(BypassReason::StoreError.as_str());
            tracing::warn!(error = %deja_core::ErrorChain(&e), "storing an answer failed; it was served but not cached");
        }
    }
}

/// Answers from a stored entry, taken by value so a JSON body is served without a copy.
fn serve_hit(entry: Entry, outcome: &CacheHeader, want: Shape) -> Option<Response> {
    let mut headers = HeaderMap::new();
    outcome.write(&mut headers);
    if let Ok(v) = HeaderValue::from_str(&entry.id.to_string()) {
        headers.insert("x-deja-entry", v);
    }
    if let Ok(v) = HeaderValue::from_str(&entry.category) {
        headers.insert("x-deja-category", v);
    }
    let Entry {
        id, answer, usage, ..
    } = entry;
    let converted = match (answer, want.stream) {
        (Answer::Body(b), false) => Ok(json_response(Bytes::from(b), headers)),
        (Answer::Body(b), true) => sse::completion_to_chunks(&b, want.include_usage)
            .map(|chunks| sse_response(sse::encode_chunks(&chunks), headers)),
        (Answer::Chunks(c), true) => Ok(sse_response(
            sse::encode_chunks(&sse::replay_chunks(&c, want.include_usage, usage)),
            headers,
        )),
        (Answer::Chunks(c), false) => {
            sse::chunks_to_completion(&c).map(|body| json_response(Bytes::from(body), headers))
        }
    };
    match converted {
        Ok(resp) => Some(resp),
        Err(e) => {
            tracing::warn!(entry = %id, error = %e, "stored answer could not be converted; going upstream");
            None
        }
    }
}

fn json_response(body: Bytes, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}

fn sse_response(body: Bytes, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, body).into_response()
}

/// Forwards an upstream SSE stream to the client as it arrives, recording its events, and
/// stores the recording if the stream ended with `[DONE]` and every choice finished.
fn stream_through(
    upstream: reqwest::Response,
    status: StatusCode,
    headers: HeaderMap,
    pending: Option<PendingInsert>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    let mut pending = pending;
    let strict = pending.as_ref().is_some_and(|p| ack_after_store(&p.app));
    let task = async move {
        let mut parser = sse::SseParser::default();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut done = false;
        let mut failed = false;
        let mut stream = upstream.bytes_stream();
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    if pending.is_some() {
                        for event in parser.push(&bytes) {
                            match event {
                                sse::SseEvent::Data(d) => chunks.push(d),
                                sse::SseEvent::Done => done = true,
                            }
                        }
                    }
                    if done && strict {
                        // Strict durability: store before the client sees `[DONE]`.
                        if let Some(p) = pending.take() {
                            store_stream(p, std::mem::take(&mut chunks)).await;
                        }
                    }
                    if tx.send(Ok(bytes)).await.is_err() {
                        // The client went away: stop reading; a partial answer is not stored.
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "upstream stream broke off; not caching it");
                    failed = true;
                    let _ = tx
                        .send(Err(std::io::Error::other("upstream stream broke off")))
                        .await;
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
    tokio::spawn(task.in_current_span());
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (status, headers, body).into_response()
}

/// Whether a stored answer must be durable before the client sees the end of the response
/// (`store.durability = "strict"`), so that an acknowledged answer survives a crash.
fn ack_after_store(app: &AppState) -> bool {
    app.config().store.durability == crate::config::Durability::Strict
}

/// Stores a recorded stream if it completed normally and no never-cache rule objects.
async fn store_stream(p: PendingInsert, chunks: Vec<Vec<u8>>) {
    // Joined: personal data can be split across chunks.
    if sse::stream_completed(&chunks) && p.answer_may_be_stored(&chunks.concat()) {
        let usage = sse::usage_from_chunks(&chunks);
        p.insert(Answer::Chunks(chunks), usage).await;
    }
}
