//! A request id on every request: taken from the client's `x-request-id` when it sends a
//! usable one, otherwise made here. It is returned in `x-deja-request-id` (the upstream's
//! own `x-request-id`, when it sends one, passes through untouched) and every log line
//! written while the request is handled carries it, through a `request` span.
//!
//! Work a request spawns (storing its answer, recording a stream) is instrumented with
//! the same span by the routes, so its log lines carry the id too.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The response header with the id.
pub const RESPONSE_HEADER: &str = "x-deja-request-id";

/// The request header a client may set to choose the id.
const REQUEST_HEADER: &str = "x-request-id";

/// Longest client-chosen id accepted; longer ones are replaced, not truncated.
const MAX_LEN: usize = 128;

/// The middleware: see the module docs.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable(v))
        .map(str::to_string)
        .unwrap_or_else(new_id);
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(RESPONSE_HEADER, v);
    }
    resp
}

/// Whether a client's id can be used as it is: non-empty, bounded, and made of visible
/// ASCII without quotes or backslashes, so it cannot forge log fields or headers.
fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A new id: 16 random hex digits.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_used_only_when_safe() {
        assert!(usable("req-123_ABC.x"));
        assert!(usable(&"a".repeat(MAX_LEN)));
        for bad in ["", "has space", "quote\"d", "back\\slash", "new\nline", "é"] {
            assert!(!usable(bad), "{bad:?}");
        }
        assert!(!usable(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn new_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
