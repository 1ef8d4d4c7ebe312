//! Every path under `/v1/` that deja does not cache is forwarded to the upstream, body
//! streamed both ways: to the OpenAI-compatible upstream, or for Anthropic's other Messages
//! API paths (`/v1/messages/count_tokens`, `/v1/messages/batches/...`) to `[anthropic]`.
//! Likewise every path under `/openai/` that deja does not cache goes to `[azure]`
//! ([`super::azure`]), under the API base `/openai` instead of `/v1`.
//!
//! The configured key (`upstream.api_key`, `anthropic.api_key`, `azure.api_key`) goes with
//! every forwarded request, so a forwarded path must stay inside the upstream's API base
//! (`/v1/x` maps to `{base_url}/x`). [`upstream_path`] decides what is forwarded:
//!
//! - A path outside `/v1/` (`/internal/x`, `/admin/`, `/ADMIN/stats`, `/healthz`,
//!   `/favicon.ico`) is not the upstream's API: deja answers 404 itself and forwards
//!   nothing. That also covers deja's own paths (`/admin*`, `/metrics`, `/health`,
//!   `/dashboard*`) whenever a variant of them misses its route, so the admin token a
//!   client sends them never leaves deja. (A client whose base URL lacks `/v1` gets a 404
//!   naming the fix instead of silently bypassing the cache.)
//! - Dot segments (`.`, `..`) are resolved before forwarding, whether written plainly or
//!   percent-encoded (`%2e%2e`, `.%2E`), and with `\` as a separator as well as `/` (URL
//!   parsers treat both alike in http URLs). A path that climbs above `/v1` at any point
//!   is refused with a 400 (`invalid_request_error`), also when the climb only appears once
//!   `%2f` / `%5c` are decoded, as an upstream or a proxy in front of it might do. Decoding
//!   happens once: `%252e` stays the text `%2e`, forwarded as sent.
//! - The forwarded path therefore holds no dot segments and no `\`, so the HTTP client's
//!   own URL normalisation cannot move it either. The query string is forwarded unchanged.
//!
//! This module is not where requests are cached (`routes/chat.rs`, `routes/messages.rs`,
//! `routes/embeddings.rs`) nor where headers are chosen ([`crate::upstream`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use crate::error::{AnthropicError, ApiError};
use crate::state::AppState;
use crate::upstream::{response_headers, Upstream};

pub async fn passthrough(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    forward(&app, app.upstream(), BASE, req).await
}

/// `/v1/messages/...` (not `/v1/messages` itself): Anthropic's upstream, and deja's own
/// errors in Anthropic's shape.
pub async fn anthropic_passthrough(
    State(app): State<AppState>,
    req: Request,
) -> Result<Response, AnthropicError> {
    Ok(forward(&app, app.anthropic(), BASE, req).await?)
}

/// Forwards `req`, whose path must stay under `base` (see [`upstream_path_under`]), to
/// `upstream`.
pub(crate) async fn forward(
    app: &AppState,
    upstream: &Upstream,
    base: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = upstream_path_under(base, parts.uri.path(), parts.uri.query())?;
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

/// The API base every forwarded path must stay under (Azure's is `/openai`).
const BASE: &str = "/v1";

/// The path (and query) to forward for an incoming `path` and `query`: `/v1/` followed by
/// the path's segments with dot segments resolved; an error for a path outside `/v1/` or
/// one that climbs above it (see the module doc).
pub fn upstream_path(path: &str, query: Option<&str>) -> Result<String, ApiError> {
    upstream_path_under(BASE, path, query)
}

/// [`upstream_path`] under another API base `base` (`/openai`): the same rules.
pub fn upstream_path_under(
    base: &str,
    path: &str,
    query: Option<&str>,
) -> Result<String, ApiError> {
    let Some(rest) = path.strip_prefix(base).filter(|r| r.starts_with('/')) else {
        return Err(ApiError::NotFound {
            message: if base == BASE {
                "no such route: deja serves the API under /v1/ (set the client's base URL to http://HOST:PORT/v1)".into()
            } else {
                format!("no such route: deja forwards only paths under {base}/ here")
            },
        });
    };
    let leaves = || {
        ApiError::bad_request(
            format!("the request path leaves the API base {base} (a `..` segment, possibly percent-encoded, climbs above it)"),
            None,
        )
    };
    // As the URL parser sees it: split on `/` and `\`, a segment is a dot segment when it
    // decodes to `.` or `..`.
    let mut segments: Vec<&str> = Vec::new();
    let mut pieces = rest[1..].split(['/', '\\']).peekable();
    while let Some(segment) = pieces.next() {
        match dot_segment(segment.as_bytes()) {
            Some(dot) => {
                if let Dot::Parent = dot {
                    segments.pop().ok_or_else(leaves)?;
                }
                // A final dot segment names a directory: `/v1/a/b/..` is `/v1/a/`.
                if pieces.peek().is_none() {
                    segments.push("");
                }
            }
            None => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(base);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    // As an upstream that decodes the path once (`%2f` and `%5c` too) would see it.
    let decoded = percent_decode(&out.as_bytes()[base.len()..]);
    let mut depth = 0usize;
    for segment in decoded.split(|b| *b == b'/' || *b == b'\\').skip(1) {
        // Already decoded: compared as they are (`%2e` here is the text `%2e`).
        match segment {
            b"." => {}
            b".." => depth = depth.checked_sub(1).ok_or_else(leaves)?,
            // Empty segments add no depth: some servers merge `//`.
            b"" => {}
            _ => depth += 1,
        }
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

enum Dot {
    Current,
    Parent,
}

/// Whether a raw segment is `.` or `..` once percent-decoded (`%2e`, `%2E`, `.%2e`, ...).
fn dot_segment(segment: &[u8]) -> Option<Dot> {
    match percent_decode(segment).as_slice() {
        b"." => Some(Dot::Current),
        b".." => Some(Dot::Parent),
        _ => None,
    }
}

/// `%XX` decoded once; anything else (a `%` without two hex digits too) kept as it is.
pub(crate) fn percent_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_paths_stay_under_v1() {
        // (incoming path, query, what is forwarded; None: refused with a 400)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("/v1/models", None, Some("/v1/models")),
            (
                "/v1/models",
                Some("limit=2&after=x"),
                Some("/v1/models?limit=2&after=x"),
            ),
            ("/v1/", None, Some("/v1/")),
            (
                "/v1/files/file-1/content",
                None,
                Some("/v1/files/file-1/content"),
            ),
            ("/v1/a/../b", None, Some("/v1/b")),
            ("/v1/a/./b/", None, Some("/v1/a/b/")),
            ("/v1/a/%2E%2e/b", None, Some("/v1/b")),
            ("/v1/a/b/..", None, Some("/v1/a/")),
            ("/v1/a\\..\\b", None, Some("/v1/b")),
            ("/v1//x", None, Some("/v1//x")),
            // Decoded once only: the text `%2e%2e` is an ordinary segment.
            ("/v1/%252e%252e/x", None, Some("/v1/%252e%252e/x")),
            ("/v1/x%2f..", None, Some("/v1/x%2f..")),
            ("/v1/..", None, None),
            ("/v1/../internal/x", None, None),
            ("/v1/%2e%2e/internal/x", None, None),
            ("/v1/%2E%2E/internal/x", None, None),
            ("/v1/.%2e/internal/x", None, None),
            ("/v1/%2e./internal/x", None, None),
            ("/v1/..\\internal", None, None),
            ("/v1/%5c..%5cinternal", None, None),
            ("/v1/%2f..%2f..%2finternal", None, None),
            ("/v1/a%2fb/../../internal", None, None),
            ("/v1/messages/x/../../../X", None, None),
            ("/v1/a/../../v1/models", None, None),
            ("/v1/%2e%2e", Some("x=1"), None),
        ];
        for (path, query, want) in cases {
            let got = upstream_path(path, *query);
            match (got, want) {
                (Ok(got), Some(want)) => assert_eq!(got, *want, "{path}"),
                (Err(ApiError::BadRequest { .. }), None) => {}
                (got, want) => panic!("{path}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn paths_outside_v1_are_not_forwarded() {
        for path in [
            "/",
            "/internal/x",
            "/v1",
            "/v1beta/x",
            "/V1/models",
            "/admin",
            "/admin/",
            "/ADMIN/stats",
            "/Admin/config",
            "/metrics/",
            "/health/",
            "/dashboard/x",
            "/favicon.ico",
        ] {
            match upstream_path(path, None) {
                Err(ApiError::NotFound { .. }) => {}
                got => panic!("{path}: {got:?}"),
            }
        }
    }

    #[test]
    fn azure_paths_stay_under_openai() {
        // (incoming path, what is forwarded; None: refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("/openai/models", Some("/openai/models")),
            (
                "/openai/deployments/d/completions",
                Some("/openai/deployments/d/completions"),
            ),
            ("/openai/v1/../deployments", Some("/openai/deployments")),
            ("/openai/..", None),
            ("/openai/%2e%2e/v1/models", None),
            ("/openai/a%2f..%2f..%2fadmin", None),
            ("/v1/models", None),
        ];
        for (path, want) in cases {
            match (
                upstream_path_under("/openai", path, Some("api-version=1")),
                want,
            ) {
                (Ok(got), Some(want)) => assert_eq!(got, format!("{want}?api-version=1")),
                (Err(_), None) => {}
                (got, want) => panic!("{path}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn percent_decoding_is_lenient_and_single() {
        for (input, want) in [
            ("%2e%2E", ".."),
            ("%252e", "%2e"),
            ("100%", "100%"),
            ("%2", "%2"),
            ("%zz%41", "%zzA"),
        ] {
            assert_eq!(percent_decode(input.as_bytes()), want.as_bytes(), "{input}");
        }
    }
}
