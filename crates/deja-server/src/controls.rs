//! What a request asks of the cache through its headers: `Cache-Control`
//! (`no-cache`, `no-store`, `max-age=N`) and `x-deja-min-similarity`. The tenant it
//! belongs to is [`crate::tenant`]'s.

use axum::http::HeaderMap;

use crate::error::ApiError;

/// Per-request cache controls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Controls {
    /// `no-cache`: do not serve from the cache; fetch and refresh the entry.
    pub skip_lookup: bool,
    /// `no-store`: do not store the answer.
    pub skip_store: bool,
    /// `max-age=N`: accept only entries younger than N seconds.
    pub max_age_secs: Option<u64>,
    /// `x-deja-min-similarity`: raises (never lowers) the semantic threshold.
    pub min_similarity: Option<f32>,
    /// Not from a header: set by a route for a request whose answer the cache cannot hold
    /// (a Responses API background response). Neither looked up nor stored; the reason is
    /// the response's `x-deja-bypass-reason`.
    pub bypass: Option<&'static str>,
}

impl Controls {
    pub fn from_headers(headers: &HeaderMap) -> Result<Controls, ApiError> {
        let mut c = Controls::default();
        for value in headers.get_all("cache-control") {
            let value = value.to_str().map_err(|_| {
                ApiError::bad_request("Cache-Control header is not valid ASCII", None)
            })?;
            for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-cache" => c.skip_lookup = true,
                    "no-store" => c.skip_store = true,
                    "max-age" => {
                        // Any run of digits is valid; beyond 2^31 (or past u64) it means
                        // 2^31 seconds, as RFC 9111 §1.2.2 has HTTP caches read it.
                        const CAP_SECS: u64 = 1 << 31;
                        let secs = arg
                            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                            .map(|a| a.parse::<u64>().map_or(CAP_SECS, |s| s.min(CAP_SECS)))
                            .ok_or_else(|| {
                                ApiError::bad_request(
                                    format!("Cache-Control max-age must be whole seconds, got {directive:?}"),
                                    None,
                                )
                            })?;
                        c.max_age_secs = Some(secs);
                    }
                    // Other directives (private, must-revalidate, ...) do not apply to a
                    // request and are ignored, as HTTP caches do.
                    _ => {}
                }
            }
        }
        if let Some(v) = headers.get("x-deja-min-similarity") {
            let s = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<f32>().ok())
                .filter(|s| (0.0..=1.0).contains(s))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "x-deja-min-similarity must be a number between 0 and 1",
                        None,
                    )
                })?;
            c.min_similarity = Some(s);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cache_control_table() {
        let cases: &[(&str, Controls)] = &[
            ("", Controls::default()),
            (
                "no-cache",
                Controls {
                    skip_lookup: true,
                    ..Default::default()
                },
            ),
            (
                "no-store",
                Controls {
                    skip_store: true,
                    ..Default::default()
                },
            ),
            (
                "max-age=60",
                Controls {
                    max_age_secs: Some(60),
                    ..Default::default()
                },
            ),
            (
                "No-Cache, no-store, max-age=\"5\"",
                Controls {
                    skip_lookup: true,
                    skip_store: true,
                    max_age_secs: Some(5),
                    ..Default::default()
                },
            ),
            ("private", Controls::default()),
        ];
        for (value, want) in cases {
            let h = if value.is_empty() {
                HeaderMap::new()
            } else {
                let mut h = HeaderMap::new();
                h.insert("cache-control", HeaderValue::from_str(value).unwrap());
                h
            };
            assert_eq!(Controls::from_headers(&h).unwrap(), *want, "{value}");
        }
        assert!(Controls::from_headers(&headers(&[("cache-control", "max-age=soon")])).is_err());
    }

    #[test]
    fn min_similarity_header_is_validated() {
        let ok = Controls::from_headers(&headers(&[("x-deja-min-similarity", "0.99")])).unwrap();
        assert_eq!(ok.min_similarity, Some(0.99));
        for bad in ["high", "1.5", "-0.1"] {
            let mut h = HeaderMap::new();
            h.insert("x-deja-min-similarity", HeaderValue::from_str(bad).unwrap());
            assert!(Controls::from_headers(&h).is_err(), "{bad}");
        }
    }
}
