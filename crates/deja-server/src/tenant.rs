//! Whose entries a request may be served from: its **tenant**, derived from the
//! credential it presents and narrowed, never replaced, by `x-deja-namespace`.
//!
//! | request | tenant label |
//! |---|---|
//! | a credential | `key:<hash>` (BLAKE3 of the credential; the credential is never kept) |
//! | no credential | `anonymous` |
//! | `cache.tenant = "shared"` | `shared` (an explicit opt-in: every client shares one cache) |
//! | any of the above with `x-deja-namespace: N` | the same label with `/ns:N` appended |
//! | `x-deja-namespace: N`, `N` a configured shared namespace, and the request admitted by it | `ns:N` |
//!
//! A credential is read from every place providers put one: `Authorization`, `api-key`
//! (Azure OpenAI), `x-api-key` (Anthropic), `x-goog-api-key` and the query parameter `key`
//! (Google). With several present, all of them make the tenant together, so adding a
//! header never moves a request into someone else's tenant. A hit makes no upstream call,
//! so no key is ever checked by the provider: knowing a namespace's name must not be
//! enough to read it, which is why a namespace only narrows.
//!
//! Sharing entries across credentials is the operator's decision: `[namespaces.NAME]`
//! lists the hashes of the credentials allowed into `NAME` (`deja key-hash` prints one),
//! or a token clients send in `x-deja-namespace-token`. A request naming a shared
//! namespace it is not admitted to is still answered, from its own tenant narrowed by the
//! namespace, as if the namespace were not shared.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Whose entries a request may be served from (`cache.tenant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantMode {
    /// A hash of the client's credentials (never stored in clear), narrowed by the
    /// request header `x-deja-namespace`.
    PerKey,
    /// One cache for every client, whatever its credential: an explicit opt-in.
    /// `x-deja-namespace` still separates.
    Shared,
}

/// Request headers that carry a provider credential, in the order they are hashed.
pub const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "api-key", "x-api-key", "x-goog-api-key"];

/// Query parameters that carry a provider credential (Google's `?key=`).
pub const CREDENTIAL_PARAMS: [&str; 1] = ["key"];

/// The header a client names its namespace in.
pub const NAMESPACE_HEADER: &str = "x-deja-namespace";

/// The header a client sends a shared namespace's token in.
pub const NAMESPACE_TOKEN_HEADER: &str = "x-deja-namespace-token";

/// `[namespaces.NAME]`: a namespace whose entries several credentials share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedNamespace {
    /// The credentials allowed in, each as the BLAKE3 hash of the key (64 hex digits; a
    /// bearer token without its `Bearer ` scheme). `deja key-hash` prints it.
    pub keys: Vec<String>,
    /// A secret a client may send in `x-deja-namespace-token` instead of a listed key (at
    /// least 16 characters). Compared in constant time; never forwarded upstream.
    pub token: Option<String>,
}

/// The least length of a shared namespace's token.
pub const MIN_TOKEN_LEN: usize = 16;

impl SharedNamespace {
    /// Whether a request with these credentials and namespace token may enter.
    fn admits(&self, credentials: &[Credential<'_>], token: Option<&[u8]>) -> bool {
        let by_key = credentials.iter().any(|c| {
            let hash = key_hash(c.secret()).to_hex();
            self.keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case(hash.as_str()))
        });
        // Comparing hashes takes the same time wherever the tokens differ (blake3's `Hash`
        // compares in constant time), so the token cannot be guessed byte by byte.
        let by_token = match (&self.token, token) {
            (Some(want), Some(got)) => blake3::hash(got) == blake3::hash(want.as_bytes()),
            _ => false,
        };
        by_key || by_token
    }

    /// What is wrong with this namespace's configuration, if anything.
    pub fn check(&self) -> Result<(), String> {
        for k in &self.keys {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "key {k:?} is not a key hash; list 64 hex digits as `deja key-hash` prints them"
                ));
            }
        }
        if let Some(t) = &self.token {
            if t.trim().chars().count() < MIN_TOKEN_LEN {
                return Err(format!(
                    "token is shorter than {MIN_TOKEN_LEN} characters; use a long random secret"
                ));
            }
        }
        if self.keys.is_empty() && self.token.is_none() {
            return Err("admits nobody; list keys (hashes) or set a token".into());
        }
        Ok(())
    }
}

/// The hash a shared namespace lists for `key` (the key itself, without a `Bearer `
/// scheme).
pub fn key_hash(key: &[u8]) -> blake3::Hash {
    blake3::hash(key)
}

/// One credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Credential<'a> {
    /// Where it came from (a header name, or `?key`).
    source: &'static str,
    /// As sent (an `Authorization` value keeps its scheme).
    value: &'a [u8],
}

impl Credential<'_> {
    /// The key itself: an `Authorization` value without its `Bearer ` scheme.
    fn secret(&self) -> &[u8] {
        if self.source == "authorization" {
            let v = self.value;
            if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
                return trim_ascii(&v[7..]);
            }
        }
        self.value
    }
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !last.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// Every credential of a request: its credential headers (each value of each, in
/// [`CREDENTIAL_HEADERS`] order) and its credential query parameters.
fn credentials<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Vec<Credential<'a>> {
    let mut out = Vec::new();
    for name in CREDENTIAL_HEADERS {
        for value in headers.get_all(name) {
            out.push(Credential {
                source: name,
                value: value.as_bytes(),
            });
        }
    }
    for (name, value) in query_pairs(query.unwrap_or_default()) {
        if CREDENTIAL_PARAMS.contains(&name) {
            out.push(Credential {
                source: "?key",
                value: value.as_bytes(),
            });
        }
    }
    out
}

/// The `name=value` pairs of a query string, as sent (not percent-decoded: a credential
/// is hashed as it travels, and two spellings of one key are two tenants, never one).
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// The query string of a cached route as it goes into the key: the request's, less its
/// credential parameters (the tenant already covers them). Empty when there is none.
pub fn keyed_query(query: Option<&str>) -> String {
    let pairs: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            !CREDENTIAL_PARAMS.contains(&name)
        })
        .collect();
    pairs.join("&")
}

/// What a cached route keys its partition by: the tenant label and, when the request has
/// one, its query string (less credentials), which may change the answer (Azure's
/// `api-version`). A label never holds a NUL, so the two cannot run into each other; with
/// no query the scope is the label alone, as in earlier versions.
pub fn key_scope<'a>(tenant: &'a str, query: Option<&str>) -> std::borrow::Cow<'a, str> {
    // Most requests have no query string: no allocation on the exact-hit path.
    if query.is_none_or(str::is_empty) {
        return tenant.into();
    }
    let query = keyed_query(query);
    if query.is_empty() {
        tenant.into()
    } else {
        format!("{tenant}\0?{query}").into()
    }
}

/// [`key_scope`] for a request to another API in the same wire format (Azure OpenAI speaks
/// OpenAI's): `api` (the API and, for Azure's deployment routes, the deployment; it holds no
/// NUL) goes between the tenant label and the query. Such a scope has `\0@` right after the
/// label where an OpenAI scope has `\0?` or nothing, so the two never share an entry, even
/// for the same tenant, model and query; and two `api`s never run into the query.
pub fn api_key_scope(tenant: &str, api: &str, query: Option<&str>) -> String {
    format!("{tenant}\0@{api}\0?{}", keyed_query(query))
}

/// The path a cached route sends its misses to: its own, with the client's query string
/// (credential parameters included: the upstream may need them).
pub fn upstream_path<'a>(path: &'a str, query: Option<&str>) -> std::borrow::Cow<'a, str> {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}").into(),
        _ => path.into(),
    }
}

/// How requests are assigned tenants: `cache.tenant` and `[namespaces]`.
#[derive(Debug, Clone, Copy)]
pub struct Tenancy<'a> {
    pub mode: TenantMode,
    pub shared: &'a BTreeMap<String, SharedNamespace>,
}

impl Tenancy<'_> {
    /// The tenant label of a request with these headers and query string.
    pub fn tenant(&self, headers: &HeaderMap, query: Option<&str>) -> Result<String, ApiError> {
        let namespace = namespace(headers)?;
        let credentials = credentials(headers, query);
        if let Some(ns) = namespace {
            if let Some(shared) = self.shared.get(ns) {
                let token = headers.get(NAMESPACE_TOKEN_HEADER).map(|v| v.as_bytes());
                if shared.admits(&credentials, token) {
                    return Ok(format!("ns:{ns}"));
                }
                tracing::debug!(
                    namespace = ns,
                    "request not admitted to the shared namespace; served from its own tenant"
                );
            }
        }
        let principal = match self.mode {
            TenantMode::Shared => "shared".to_string(),
            TenantMode::PerKey => principal(&credentials),
        };
        Ok(match namespace {
            Some(ns) => format!("{principal}/ns:{ns}"),
            None => principal,
        })
    }
}

/// `key:<hash>` of a request's credentials, or `anonymous` without any. One credential is
/// hashed as sent (the labels of earlier versions, so their entries stay reachable);
/// several are hashed together, each with its source.
fn principal(credentials: &[Credential<'_>]) -> String {
    match credentials {
        [] => "anonymous".to_string(),
        // Only a hash of the credential is kept, never the credential itself.
        [one] => format!("key:{}", blake3::hash(one.value).to_hex()),
        many => {
            let mut h = blake3::Hasher::new();
            h.update(b"deja-credentials/v1\0");
            for c in many {
                for part in [c.source.as_bytes(), c.value] {
                    h.update(&(part.len() as u64).to_le_bytes());
                    h.update(part);
                }
            }
            format!("key:{}", h.finalize().to_hex())
        }
    }
}

/// The request's `x-deja-namespace`, checked.
fn namespace(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(NAMESPACE_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "x-deja-namespace must be 1 to 256 visible ASCII characters",
                None,
            )
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

    fn per_key(shared: &BTreeMap<String, SharedNamespace>) -> Tenancy<'_> {
        Tenancy {
            mode: TenantMode::PerKey,
            shared,
        }
    }

    #[test]
    fn a_namespace_narrows_the_credential_never_replaces_it() {
        let none = BTreeMap::new();
        let t = per_key(&none);
        let a = t
            .tenant(&headers(&[("authorization", "Bearer sk-A")]), None)
            .unwrap();
        let a_acme = t
            .tenant(
                &headers(&[
                    ("authorization", "Bearer sk-A"),
                    ("x-deja-namespace", "acme"),
                ]),
                None,
            )
            .unwrap();
        let anon_acme = t
            .tenant(&headers(&[("x-deja-namespace", "acme")]), None)
            .unwrap();
        let bogus_acme = t
            .tenant(
                &headers(&[
                    ("authorization", "Bearer sk-bogus"),
                    ("x-deja-namespace", "acme"),
                ]),
                None,
            )
            .unwrap();
        assert_eq!(a_acme, format!("{a}/ns:acme"));
        assert_eq!(anon_acme, "anonymous/ns:acme");
        assert_ne!(a_acme, bogus_acme);
        assert_ne!(a_acme, anon_acme);
        assert!(!a.contains("sk-A"), "the credential is never kept in clear");
        // The label of one bearer token is the one earlier versions wrote.
        assert_eq!(a, format!("key:{}", blake3::hash(b"Bearer sk-A").to_hex()));
    }

    #[test]
    fn every_credential_header_and_the_key_parameter_make_the_tenant() {
        let none = BTreeMap::new();
        let t = per_key(&none);
        let mut seen = std::collections::HashSet::new();
        for (name, value) in [
            ("api-key", "key-A"),
            ("api-key", "key-B"),
            ("x-api-key", "key-C"),
            ("x-goog-api-key", "key-D"),
            ("authorization", "Bearer key-E"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            let label = t.tenant(&h, None).unwrap();
            assert!(label.starts_with("key:"), "{name}: {label}");
            assert!(seen.insert(label), "{name}={value} shares a tenant");
        }
        let q1 = t
            .tenant(&HeaderMap::new(), Some("key=g-1&alt=sse"))
            .unwrap();
        let q2 = t
            .tenant(&HeaderMap::new(), Some("alt=sse&key=g-2"))
            .unwrap();
        assert!(q1.starts_with("key:") && q2.starts_with("key:"));
        assert_ne!(q1, q2);
        assert_eq!(
            t.tenant(&HeaderMap::new(), Some("alt=sse")).unwrap(),
            "anonymous"
        );
        // Adding a credential moves the request to another tenant, never into the first.
        let both = t
            .tenant(
                &headers(&[("api-key", "key-A"), ("authorization", "Bearer other")]),
                None,
            )
            .unwrap();
        let alone = t.tenant(&headers(&[("api-key", "key-A")]), None).unwrap();
        assert_ne!(both, alone);
    }

    #[test]
    fn shared_mode_is_one_cache_that_namespaces_still_separate() {
        let none = BTreeMap::new();
        let t = Tenancy {
            mode: TenantMode::Shared,
            shared: &none,
        };
        let h = headers(&[("authorization", "Bearer a")]);
        assert_eq!(t.tenant(&h, None).unwrap(), "shared");
        assert_eq!(
            t.tenant(&headers(&[("x-deja-namespace", "x")]), None)
                .unwrap(),
            "shared/ns:x"
        );
    }

    #[test]
    fn a_shared_namespace_admits_listed_keys_and_its_token_only() {
        let mut shared = BTreeMap::new();
        shared.insert(
            "support".to_string(),
            SharedNamespace {
                keys: vec![key_hash(b"sk-A").to_hex().to_string()],
                token: Some("a-long-namespace-token".into()),
            },
        );
        let t = per_key(&shared);
        let ask = |pairs: &[(&'static str, &'static str)]| {
            let mut all = pairs.to_vec();
            all.push(("x-deja-namespace", "support"));
            t.tenant(&headers(&all), None).unwrap()
        };
        assert_eq!(ask(&[("authorization", "Bearer sk-A")]), "ns:support");
        assert_eq!(
            ask(&[("api-key", "sk-A")]),
            "ns:support",
            "the key, wherever sent"
        );
        assert_eq!(
            ask(&[
                ("authorization", "Bearer sk-B"),
                (NAMESPACE_TOKEN_HEADER, "a-long-namespace-token")
            ]),
            "ns:support"
        );
        for outsider in [
            ask(&[]),
            ask(&[("authorization", "Bearer sk-B")]),
            ask(&[(NAMESPACE_TOKEN_HEADER, "a-long-namespace-tokeN")]),
        ] {
            assert_ne!(outsider, "ns:support");
            assert!(outsider.ends_with("/ns:support"), "{outsider}");
        }
    }

    #[test]
    fn shared_namespace_configuration_is_checked() {
        let ok = SharedNamespace {
            keys: vec!["ab".repeat(32)],
            token: None,
        };
        assert!(ok.check().is_ok());
        for bad in [
            SharedNamespace::default(),
            SharedNamespace {
                keys: vec!["sk-plain-key".into()],
                token: None,
            },
            SharedNamespace {
                keys: vec![],
                token: Some("short".into()),
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_namespaces_are_refused() {
        let none = BTreeMap::new();
        let t = per_key(&none);
        for bad in ["", "   ", "a b"] {
            let mut h = HeaderMap::new();
            h.insert(NAMESPACE_HEADER, HeaderValue::from_static(bad));
            assert!(t.tenant(&h, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_query_changes_the_key_scope_but_credentials_do_not() {
        assert_eq!(key_scope("key:x", None), "key:x");
        assert_eq!(key_scope("key:x", Some("")), "key:x");
        assert_eq!(key_scope("key:x", Some("key=secret")), "key:x");
        assert_eq!(
            key_scope("key:x", Some("api-version=1")),
            "key:x\0?api-version=1"
        );
        assert_ne!(
            key_scope("key:x", Some("api-version=1")),
            key_scope("key:x", Some("api-version=2"))
        );
        assert_eq!(
            upstream_path("/v1/chat/completions", None),
            "/v1/chat/completions"
        );
        assert_eq!(
            upstream_path("/v1/chat/completions", Some("api-version=1")),
            "/v1/chat/completions?api-version=1"
        );
    }

    #[test]
    fn another_api_is_keyed_apart_from_openai_and_from_each_other() {
        let openai = key_scope("key:x", Some("api-version=1"));
        let deployment = api_key_scope("key:x", "azure/deployments/d", Some("api-version=1"));
        assert_eq!(deployment, "key:x\0@azure/deployments/d\0?api-version=1");
        assert_ne!(openai, deployment);
        assert_ne!(
            key_scope("key:x", None),
            api_key_scope("key:x", "azure/v1", None)
        );
        assert_ne!(
            deployment,
            api_key_scope("key:x", "azure/deployments/e", Some("api-version=1"))
        );
        assert_ne!(
            deployment,
            api_key_scope("key:x", "azure/deployments/d", Some("api-version=2"))
        );
        // Credentials in the query are the tenant's, not the key's.
        assert_eq!(
            api_key_scope("key:x", "azure/v1", Some("key=s&api-version=1")),
            api_key_scope("key:x", "azure/v1", Some("api-version=1"))
        );
    }

    #[test]
    fn the_keyed_query_leaves_out_credentials() {
        assert_eq!(keyed_query(None), "");
        assert_eq!(
            keyed_query(Some("api-version=2024-10-21")),
            "api-version=2024-10-21"
        );
        assert_eq!(keyed_query(Some("key=secret&alt=sse")), "alt=sse");
    }
}
