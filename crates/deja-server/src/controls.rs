//! What a request asks of the cache through its headers: `Cache-Control`
//! (`no-cache`, `no-store`, `max-age=N`), `x-deja-min-similarity`, and the tenant it
//! belongs to (`x-deja-namespace`, else a hash of its bearer token, or for Anthropic's API
//! of its `x-api-key`).

use axum::http::HeaderMap;

use crate::config::TenantMode;
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

/// The tenant a request belongs to. Entries are never served across tenants.
pub fn tenant(headers: &HeaderMap, mode: TenantMode) -> Result<String, ApiError> {
    tenant_by(headers, mode, &["authorization"])
}

/// The tenant of a request to Anthropic's API: as [`tenant`], from its `x-api-key`, or its
/// `Authorization` when it has none (Anthropic's SDKs send a bearer token when given one).
pub fn anthropic_tenant(headers: &HeaderMap, mode: TenantMode) -> Result<String, ApiError> {
    tenant_by(headers, mode, &["x-api-key", "authorization"])
}

/// The tenant from `x-deja-namespace`, else from the first of `credentials` present.
fn tenant_by(
    headers: &HeaderMap,
    mode: TenantMode,
    credentials: &[&str],
) -> Result<String, ApiError> {
    if let Some(ns) = headers.get("x-deja-namespace") {
        let ns = ns
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "x-deja-namespace must be 1 to 256 visible ASCII characters",
                    None,
                )
            })?;
        return Ok(format!("ns:{ns}"));
    }
    Ok(match mode {
        TenantMode::Shared => "shared".to_string(),
        TenantMode::PerKey => match credentials.iter().find_map(|name| headers.get(*name)) {
            // Only a hash of the credential is kept, never the credential itself.
            Some(v) => format!("key:{}", blake3::hash(v.as_bytes()).to_hex()),
            None => "anonymous".to_string(),
        },
    })
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

    #[test]
    fn tenants() {
        let a = tenant(
            &headers(&[("authorization", "Bearer a")]),
            TenantMode::PerKey,
        )
        .unwrap();
        let b = tenant(
            &headers(&[("authorization", "Bearer b")]),
            TenantMode::PerKey,
        )
        .unwrap();
        assert_ne!(a, b);
        assert!(
            !a.contains("Bearer"),
            "the credential is never kept in clear"
        );
        let shared = tenant(
            &headers(&[("authorization", "Bearer a")]),
            TenantMode::Shared,
        )
        .unwrap();
        assert_eq!(shared, "shared");
        let ns = tenant(
            &headers(&[
                ("authorization", "Bearer a"),
                ("x-deja-namespace", "team-1"),
            ]),
            TenantMode::PerKey,
        )
        .unwrap();
        assert_eq!(ns, "ns:team-1");
    }

    #[test]
    fn anthropic_tenants_hash_the_api_key() {
        let mode = TenantMode::PerKey;
        let a = anthropic_tenant(&headers(&[("x-api-key", "sk-ant-a")]), mode).unwrap();
        let b = anthropic_tenant(&headers(&[("x-api-key", "sk-ant-b")]), mode).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("key:") && !a.contains("sk-ant"), "{a}");
        let both = headers(&[("x-api-key", "sk-ant-a"), ("authorization", "Bearer z")]);
        assert_eq!(anthropic_tenant(&both, mode).unwrap(), a, "x-api-key first");
        let bearer = anthropic_tenant(&headers(&[("authorization", "Bearer z")]), mode).unwrap();
        assert_eq!(
            bearer,
            tenant(&headers(&[("authorization", "Bearer z")]), mode).unwrap()
        );
        assert_eq!(
            anthropic_tenant(&HeaderMap::new(), mode).unwrap(),
            "anonymous"
        );
        let ns = headers(&[("x-api-key", "sk-ant-a"), ("x-deja-namespace", "team")]);
        assert_eq!(anthropic_tenant(&ns, mode).unwrap(), "ns:team");
        assert_eq!(
            anthropic_tenant(&headers(&[("x-api-key", "k")]), TenantMode::Shared).unwrap(),
            "shared"
        );
    }
}
