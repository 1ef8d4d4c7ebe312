//! Every path deja does not cache is forwarded to the upstream unchanged, body streamed
//! both ways.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use crate::error::ApiError;
use crate::upstream::response_headers;
use crate::AppState;

pub async fn passthrough(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = crate::routes::read_body(body, app.config().limits.max_body_bytes).await?;
    app.cache().count(|c| c.upstream_calls += 1);
    let resp = app
        .upstream()
        .send(parts.method, &path, &parts.headers, body, false)
        .await?;
    let status = resp.status();
    let headers = response_headers(resp.headers());
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    Ok((status, headers, Body::from_stream(stream)).into_response())
}
