//! The HTTP client that talks to the OpenAI-compatible upstream, and the header rules for
//! what crosses the proxy in each direction.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::Bytes;

use crate::config::UpstreamConfig;
use crate::error::ApiError;

#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and headers the proxy sets itself.
fn is_hop_or_own(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "accept-encoding"
            | "content-encoding"
    ) || name.as_str().starts_with("x-deja-")
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)))
            .read_timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            api_key: cfg.api_key.clone(),
            timeout,
        })
    }

    /// The upstream URL for an incoming path: `/v1/x` maps to `{base_url}/x`.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let rest = path_and_query
            .strip_prefix("/v1")
            .filter(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
            .unwrap_or(path_and_query);
        format!("{}{}", self.base_url, rest)
    }

    /// Headers to send upstream: the client's, minus hop-by-hop and deja's own, with the
    /// configured key replacing the client's when one is set.
    pub fn request_headers(&self, incoming: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(incoming.len());
        for (name, value) in incoming {
            if is_hop_or_own(name) || (self.api_key.is_some() && name == "authorization") {
                continue;
            }
            if name == "cache-control" {
                // Cache-Control is addressed to deja.
                continue;
            }
            out.append(name.clone(), value.clone());
        }
        if let Some(key) = &self.api_key {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {key}")) {
                out.insert("authorization", v);
            }
        }
        out
    }

    /// Sends a request; `whole_timeout` bounds the whole exchange for non-streamed calls
    /// (streams are bounded by the read timeout between chunks instead).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        whole_timeout: bool,
    ) -> Result<reqwest::Response, ApiError> {
        let mut rb = self
            .client
            .request(method, self.url_for(path_and_query))
            .headers(self.request_headers(headers))
            .body(body);
        if whole_timeout {
            rb = rb.timeout(self.timeout);
        }
        rb.send().await.map_err(map_send_error)
    }
}

pub fn map_send_error(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::UpstreamTimeout
    } else {
        ApiError::UpstreamUnavailable {
            detail: deja_core::ErrorChain(&e).to_string(),
        }
    }
}

/// Response headers to pass back to the client.
pub fn response_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if !is_hop_or_own(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(api_key: Option<&str>) -> Upstream {
        Upstream::new(&UpstreamConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: api_key.map(str::to_string),
            ..UpstreamConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn paths_map_under_the_base_url() {
        let u = upstream(None);
        for (path, want) in [
            (
                "/v1/chat/completions",
                "http://127.0.0.1:9/v1/chat/completions",
            ),
            ("/v1/models?x=1", "http://127.0.0.1:9/v1/models?x=1"),
            ("/v1", "http://127.0.0.1:9/v1"),
            ("/v1beta/x", "http://127.0.0.1:9/v1/v1beta/x"),
            ("/other", "http://127.0.0.1:9/v1/other"),
        ] {
            assert_eq!(u.url_for(path), want, "{path}");
        }
    }

    #[test]
    fn configured_key_replaces_the_clients_and_own_headers_stay_home() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer client"));
        h.insert("x-deja-namespace", HeaderValue::from_static("a"));
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        h.insert("openai-organization", HeaderValue::from_static("org"));
        let out = upstream(Some("server")).request_headers(&h);
        assert_eq!(out["authorization"], "Bearer server");
        assert!(out.get("x-deja-namespace").is_none());
        assert!(out.get("cache-control").is_none());
        assert_eq!(out["openai-organization"], "org");
        let out = upstream(None).request_headers(&h);
        assert_eq!(out["authorization"], "Bearer client");
    }
}
