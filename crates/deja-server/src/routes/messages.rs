//! `POST /v1/messages`: Anthropic's Messages API, cached with the same semantics as chat
//! completions and through the same flow ([`super::completion`]): never-cache rules,
//! `Cache-Control` and the other `x-deja-*` controls, tags and categories, exact then
//! semantic lookup inside the partition (model, system prompt, earlier turns, every
//! answer-changing parameter, `anthropic-version` and `anthropic-beta`; see
//! [`deja_openai::anthropic`]), coalesced misses, strict durability.
//!
//! A miss goes to `[anthropic]`'s upstream with the client's `x-api-key`,
//! `anthropic-version` and `anthropic-beta` (a configured key replaces the client's); a
//! streamed miss reaches the client event by event while it is recorded, and is stored
//! once `message_stop` arrived and the answer is whole. A hit is served in the shape the
//! client asked for: a stored `message` replayed as Anthropic's events, a recorded stream
//! assembled into a `message`. deja's own errors are in Anthropic's shape; the upstream's
//! pass through unchanged and are never stored.
//!
//! The tenant is a hash of the client's `x-api-key` (never the key itself; see
//! [`crate::tenant`]). While the
//! staleness job is on, the request body is recorded with the entry and re-sent to
//! Anthropic with `anthropic.api_key`. Requests are counted in the metrics' `chat`
//! endpoint.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use deja_openai::anthropic::stream::{events_to_message, message_to_events};
use deja_openai::anthropic::{is_stream, messages_key, parse_messages, ApiHeaders};

use crate::controls::Controls;
use crate::error::{AnthropicError, ApiError};
use crate::observe::summary::Endpoint;
use crate::routes::completion::{self, Cached, NamedEvents, Route, StreamFormat};
use crate::routes::record::RequestRecord;
use crate::routes::{read_body, wire_error};
use crate::state::AppState;

const PATH: &str = "/v1/messages";

pub async fn messages(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AnthropicError> {
    let bytes = read_body(body, app.config().limits.max_body_bytes).await?;
    // Counts the request, with its duration, when this function returns.
    let mut record = RequestRecord::new(&app, Endpoint::Messages);
    let req = parse_messages(&bytes).map_err(wire_error)?;
    let controls = Controls::from_headers(&headers)?;
    let tenant = app.tenancy().tenant(&headers, uri.query())?;
    let scope = crate::tenant::key_scope(&tenant, uri.query());
    let key = messages_key(&req, &scope, &api_headers(&headers)?);
    let stream = is_stream(&req);
    record.summary.model = Some(key.model.clone());
    record.normalised();
    let cached = Cached::new(&app, &headers, key, tenant, controls, &bytes, true)?;
    let route = Route {
        endpoint: Endpoint::Messages,
        upstream: app.anthropic(),
        path: &crate::tenant::upstream_path(PATH, uri.query()),
        format: StreamFormat::Anthropic,
        stream,
    };
    let resp = completion::answer(
        &app,
        &mut record,
        &headers,
        bytes,
        cached,
        route,
        |entry, h| EVENTS.serve(entry, h, stream),
    )
    .await?;
    Ok(resp)
}

/// `anthropic-version` and every `anthropic-beta` flag (comma-separated, possibly in
/// several headers): they select API behaviour, so they are part of the key.
fn api_headers(headers: &HeaderMap) -> Result<ApiHeaders, ApiError> {
    let text = |name: &str, value: &axum::http::HeaderValue| {
        value
            .to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::bad_request(format!("{name} header is not valid ASCII"), None))
    };
    let version = match headers.get("anthropic-version") {
        Some(v) => Some(text("anthropic-version", v)?.trim().to_string()),
        None => None,
    };
    let mut beta = Vec::new();
    for value in headers.get_all("anthropic-beta") {
        let value = text("anthropic-beta", value)?;
        beta.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    Ok(ApiHeaders { version, beta })
}

/// How a stored Anthropic answer is served in the other shape.
const EVENTS: NamedEvents = NamedEvents {
    to_events: message_to_events,
    to_object: events_to_message,
};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn api_headers_split_trim_and_reject_non_ascii() {
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-version",
            HeaderValue::from_static(" 2023-06-01 "),
        );
        h.append("anthropic-beta", HeaderValue::from_static("a-1, b-2,"));
        h.append("anthropic-beta", HeaderValue::from_static("c-3"));
        let api = api_headers(&h).unwrap();
        assert_eq!(api.version.as_deref(), Some("2023-06-01"));
        assert_eq!(api.beta, ["a-1", "b-2", "c-3"]);
        assert_eq!(
            api_headers(&HeaderMap::new()).unwrap(),
            ApiHeaders::default()
        );
        let mut bad = HeaderMap::new();
        bad.insert(
            "anthropic-beta",
            HeaderValue::from_bytes("é".as_bytes()).unwrap(),
        );
        assert!(api_headers(&bad).is_err());
    }
}
