//! `POST /v1/responses`: OpenAI's Responses API, cached with the same semantics as chat
//! completions and through the same flow ([`super::completion`]): never-cache rules,
//! `Cache-Control` and the other `x-deja-*` controls, tags and categories, exact then
//! semantic lookup inside the partition (model, instructions, earlier input items, every
//! answer-changing parameter; see [`deja_openai::responses`]), coalesced misses, strict
//! durability.
//!
//! What deja does with the fields that involve state on the provider's side:
//! - `previous_response_id`, `conversation`: keyed, and the request is matched exactly only
//!   (the cache cannot see what the earlier turns said).
//! - `background: true`: not cached. The provider answers with a queued response the
//!   client polls (`GET /v1/responses/{id}`, passed through); the request goes upstream as
//!   it came and the response says `x-deja-cache: bypass`, `x-deja-bypass-reason:
//!   background`.
//! - `store`: keyed (absent means `true`), so a client that asked the provider to store its
//!   response is served the id of a stored one, which `previous_response_id` can continue.
//!
//! Only a response whose `status` is `completed` is stored; a streamed miss reaches the
//! client event by event while it is recorded and is stored once `response.completed`
//! arrived. A hit is served in the shape the client asked for: a stored response replayed
//! as Responses' named events, a recorded stream as the response it completed with. Misses
//! go to `[upstream]` with the same credential rules as chat completions; through Azure
//! OpenAI's v1 API (`/openai/v1/responses`, [`super::azure`]) to `[azure]`, keyed apart.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use deja_core::{Answer, Entry};
use deja_openai::responses::stream::{events_to_response, response_to_events};
use deja_openai::responses::{is_background, is_stream, parse_responses, responses_key};
use deja_openai::sse::encode_named_events;

use crate::controls::Controls;
use crate::error::ApiError;
use crate::observe::summary::Endpoint;
use crate::routes::completion::{
    self, category_hint, json_response, sse_response, Cached, Route, StreamFormat,
};
use crate::routes::record::RequestRecord;
use crate::routes::via::Via;
use crate::routes::{read_body, wire_error};
use crate::state::AppState;

pub async fn responses(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    answer(&app, Via::OpenAi, &uri, &headers, body).await
}

/// Answers a Responses API request that came in through `api` at `uri` (its path and query
/// string are forwarded as they came): OpenAI's `/v1/responses`, or Azure OpenAI's v1 API
/// (`/openai/v1/responses`, [`super::azure`]).
pub async fn answer(
    app: &AppState,
    api: Via<'_>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let upstream = api.upstream(app)?;
    let bytes = read_body(body, app.config().limits.max_body_bytes).await?;
    // Counts the request, with its duration, when this function returns.
    let mut record = RequestRecord::new(app, Endpoint::Responses);
    let req = parse_responses(&bytes).map_err(wire_error)?;
    let mut controls = Controls::from_headers(headers)?;
    if is_background(&req) {
        controls.bypass = Some("background");
    }
    let tenant = app.tenancy().tenant(headers, uri.query())?;
    let scope = api.key_scope(&tenant, uri.query());
    let key = responses_key(&req, &scope);
    let stream = is_stream(&req);
    let category_hint = category_hint(app, headers)?;
    let tags = crate::tags::tags_from_headers(headers)?;
    record.summary.model = Some(key.model.clone());
    record.normalised();
    let cached = Cached {
        key,
        tenant,
        controls,
        category_hint,
        tags,
        // Kept so the staleness job can ask again (see `crate::staleness`).
        request: (app.config().staleness.enabled && api.recorded_for_staleness())
            .then(|| bytes.to_vec()),
    };
    let route = Route {
        endpoint: Endpoint::Responses,
        upstream,
        path: &crate::tenant::upstream_path(uri.path(), uri.query()),
        format: StreamFormat::Responses,
        stream,
    };
    completion::answer(
        app,
        &mut record,
        headers,
        bytes,
        cached,
        route,
        |entry, h| serve_hit(entry, h, stream),
    )
    .await
}

/// Answers from a stored entry in the shape the client asked for; `None` (logged) when the
/// stored answer cannot be converted, which bypasses the cache.
fn serve_hit(entry: Entry, headers: HeaderMap, stream: bool) -> Option<Response> {
    let Entry { id, answer, .. } = entry;
    let converted = match (answer, stream) {
        (Answer::Body(b), false) => Ok(json_response(Bytes::from(b), headers)),
        (Answer::Body(b), true) => {
            response_to_events(&b).map(|events| sse_response(encode_named_events(&events), headers))
        }
        (Answer::Chunks(c), true) => Ok(sse_response(encode_named_events(&c), headers)),
        (Answer::Chunks(c), false) => {
            events_to_response(&c).map(|body| json_response(Bytes::from(body), headers))
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
