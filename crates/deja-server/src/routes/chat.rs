//! `POST /v1/chat/completions`: exact, then semantic lookup, then the upstream (the flow
//! the completion routes share, in [`super::completion`]). A streamed miss reaches the
//! client chunk by chunk while it is recorded, and is stored only when it completed
//! normally. Hits are served in the shape the client asked for (JSON or SSE), whatever
//! shape they were recorded in.
//!
//! Azure OpenAI's chat routes ([`super::azure`]) are answered here too, through [`answer`]
//! with their [`Via`].

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use deja_core::{Answer, Entry};
use deja_openai::chat::{chat_key, include_usage, is_stream, parse_chat, parse_chat_without_model};
use deja_openai::sse;

use crate::controls::Controls;
use crate::error::ApiError;
use crate::observe::summary::Endpoint;
use crate::routes::completion::{self, json_response, sse_response, Cached, Route, StreamFormat};
use crate::routes::record::RequestRecord;
use crate::routes::via::Via;
use crate::routes::{read_body, wire_error};
use crate::state::AppState;

pub async fn chat_completions(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    answer(&app, Via::OpenAi, &uri, &headers, body).await
}

/// Answers a chat completion request that came in through `api` at `uri` (its path and
/// query string are forwarded as they came).
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
    let mut record = RequestRecord::new(app, Endpoint::Chat);
    let req = match api.path_model() {
        None => parse_chat(&bytes),
        Some(_) => parse_chat_without_model(&bytes),
    }
    .map_err(wire_error)?;
    let controls = Controls::from_headers(headers)?;
    let tenant = app.tenancy().tenant(headers, uri.query())?;
    let scope = api.key_scope(&tenant, uri.query());
    let mut key = chat_key(&req, &scope);
    if let Some(model) = api.path_model() {
        key.model = model.to_string();
    }
    let want = Shape {
        stream: is_stream(&req),
        include_usage: include_usage(&req),
    };
    record.summary.model = Some(key.model.clone());
    record.normalised();
    let recordable = api.recorded_for_staleness();
    let cached = Cached::new(app, headers, key, tenant, controls, &bytes, recordable)?;
    let route = Route {
        endpoint: Endpoint::Chat,
        upstream,
        path: &crate::tenant::upstream_path(uri.path(), uri.query()),
        format: StreamFormat::OpenAi,
        stream: want.stream,
    };
    completion::answer(
        app,
        &mut record,
        headers,
        bytes,
        cached,
        route,
        |entry, h| serve_hit(entry, h, want),
    )
    .await
}

/// The response shape the client asked for.
#[derive(Debug, Clone, Copy)]
struct Shape {
    stream: bool,
    include_usage: bool,
}

/// Answers from a stored entry, taken by value so a JSON body is served without a copy.
fn serve_hit(entry: Entry, headers: HeaderMap, want: Shape) -> Option<Response> {
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
    completion::converted_or_bypass(id, converted)
}
