//! HTTP routes and what they share: reading a bounded body, mapping wire errors, and the
//! `x-deja-*` response headers.

pub mod azure;
pub mod chat;
pub mod completion;
pub mod embeddings;
pub mod messages;
pub mod passthrough;
pub mod record;
pub mod responses;
pub mod via;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::error::ApiError;

/// Reads a request body up to `limit` bytes (a 408 when the body stalls past
/// `limits.body_read_timeout_secs`, see [`crate::conn`]).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge { limit }),
        Err(e) => Err(match timed_out(&*e) {
            Some(t) => ApiError::BodyTimeout {
                secs: t.0.as_secs(),
            },
            None => ApiError::bad_request(format!("could not read the request body: {e}"), None),
        }),
    }
}

/// The body timeout somewhere in an error's chain of causes.
fn timed_out<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::conn::BodyTimedOut> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<crate::conn::BodyTimedOut>() {
            return Some(t);
        }
        cause = c.source();
    }
    None
}

pub fn wire_error(e: deja_openai::error::WireError) -> ApiError {
    ApiError::BadRequest {
        message: e.message,
        param: e.param,
    }
}

/// The `x-deja-cache` outcome of a request, and its companion headers.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheHeader {
    HitExact,
    HitSemantic(f32),
    Miss,
    /// Not looked up or not storable, with the reason (`x-deja-bypass-reason`).
    Bypass(&'static str),
    /// A never-cache rule matched (`personal-data:email`, `time-sensitive`, `rule:NAME`).
    NeverCache(String),
}

/// The names of the headers every answer carries, parsed once.
const X_DEJA_CACHE: HeaderName = HeaderName::from_static("x-deja-cache");
const X_DEJA_SIMILARITY: HeaderName = HeaderName::from_static("x-deja-similarity");
pub(crate) const X_DEJA_ENTRY: HeaderName = HeaderName::from_static("x-deja-entry");
pub(crate) const X_DEJA_CATEGORY: HeaderName = HeaderName::from_static("x-deja-category");

impl CacheHeader {
    pub fn write(&self, headers: &mut HeaderMap) {
        let value = match self {
            CacheHeader::HitExact => "hit-exact",
            CacheHeader::HitSemantic(_) => "hit-semantic",
            CacheHeader::Miss => "miss",
            CacheHeader::Bypass(_) | CacheHeader::NeverCache(_) => "bypass",
        };
        headers.insert(X_DEJA_CACHE, HeaderValue::from_static(value));
        match self {
            CacheHeader::HitExact => {
                headers.insert(X_DEJA_SIMILARITY, HeaderValue::from_static("1.0000"));
            }
            CacheHeader::HitSemantic(s) => {
                if let Ok(v) = HeaderValue::from_str(&format!("{s:.4}")) {
                    headers.insert(X_DEJA_SIMILARITY, v);
                }
            }
            CacheHeader::Bypass(reason) => {
                headers.insert("x-deja-bypass-reason", HeaderValue::from_static(reason));
            }
            CacheHeader::NeverCache(reason) => {
                if let Ok(v) = HeaderValue::from_str(reason) {
                    headers.insert("x-deja-bypass-reason", v);
                }
            }
            CacheHeader::Miss => {}
        }
    }
}
