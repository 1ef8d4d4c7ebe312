//! Every path deja does not cache is forwarded to the upstream unchanged, body streamed
//! both ways: to the OpenAI-compatible upstream, or for Anthropic's other Messages API paths
//! (`/v1/messages/count_tokens`, `/v1/messages/batches/...`) to `[anthropic]`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use crate::error::{AnthropicError, ApiError};
use crate::upstream::{response_headers, Upstream};
use crate::AppState;

pub async fn passthrough(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    forward(&app, app.upstream(), req).await
}

/// `/v1/messages/...` (not `/v1/messages` itself): Anthropic's upstream, and deja's own
/// errors in Anthropic's shape.
pub async fn anthropic_passthrough(
    State(app): State<AppState>,
    req: Request,
) -> Result<Response, AnthropicError> {
    Ok(forward(&app, app.anthropic(), req).await?)
}

async fn forward(app: &AppState, upstream: &Upstream, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = crate::routes::read_body(body, app.config().limits.max_body_bytes).await?;
    app.cache().count(|c| c.upstream_calls += 1);
    let resp = upstream
        .send(parts.method, &path, &parts.headers, body, false)
        .await?;
    let status = resp.status();
    let headers = response_headers(resp.headers());
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    Ok((status, headers, Body::from_stream(stream)).into_response())
}
