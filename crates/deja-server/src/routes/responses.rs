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
use deja_openai::responses::stream::{events_to_response, response_to_events};
use deja_openai::responses::{is_background, is_stream, parse_responses, responses_key};

use crate::controls::Controls;
use crate::error::ApiError;
use crate::observe::summary::Endpoint;
use crate::routes::completion::{self, Cached, NamedEvents, Route, StreamFormat};
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
    record.summary.model = Some(key.model.clone());
    record.normalised();
    let recordable = api.recorded_for_staleness();
    let cached = Cached::new(app, headers, key, tenant, controls, &bytes, recordable)?;
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
        |entry, h| EVENTS.serve(entry, h, stream),
    )
    .await
}

/// How a stored Responses API answer is served in the other shape.
const EVENTS: NamedEvents = NamedEvents {
    to_events: response_to_events,
    to_object: events_to_response,
};
