//! The HTTP clients that talk to the upstreams (the OpenAI-compatible one, Anthropic's for
//! `/v1/messages`, Azure OpenAI's for `/openai/...`), and the header rules for what crosses
//! the proxy in each direction.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::Bytes;

use crate::config::{AnthropicConfig, AzureConfig, UpstreamConfig};
use crate::error::ApiError;

#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base_url: String,
    /// The incoming path prefix `base_url` stands for: `/v1/x` maps to `{base_url}/x`.
    prefix: &'static str,
    api_key: Option<String>,
    credential: Credential,
    timeout: Duration,
}

/// Where the upstream expects its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// `Authorization: Bearer KEY` (OpenAI-compatible APIs).
    Bearer,
    /// `x-api-key: KEY` (Anthropic, whose SDKs may also send a bearer token).
    ApiKey,
    /// `api-key: KEY` (Azure OpenAI, which also takes a bearer token: an Entra ID token, or
    /// the key on its v1 API).
    AzureApiKey,
}

impl Credential {
    /// The client's headers a configured key replaces.
    fn client_headers(self) -> &'static [&'static str] {
        match self {
            Credential::Bearer => &["authorization"],
            Credential::ApiKey => &["authorization", "x-api-key"],
            Credential::AzureApiKey => &["authorization", "api-key"],
        }
    }
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
        Self::build(
            cfg.base_url.trim_end_matches('/').to_string(),
            "/v1",
            cfg.api_key.clone(),
            Credential::Bearer,
            cfg,
        )
    }

    /// The client for Anthropic's API (`[anthropic]`, with `[upstream]`'s timeouts). Its
    /// base URL is taken without `/v1`, as Anthropic's SDKs take it (a trailing `/v1` is
    /// accepted too), so `/v1/messages` maps to `{base_url}/v1/messages`.
    pub fn anthropic(
        cfg: &AnthropicConfig,
        timeouts: &UpstreamConfig,
    ) -> Result<Self, reqwest::Error> {
        let base = cfg.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Self::build(
            format!("{base}/v1"),
            "/v1",
            cfg.api_key.clone(),
            Credential::ApiKey,
            timeouts,
        )
    }

    /// The client for Azure OpenAI (`[azure]`, with `[upstream]`'s timeouts), or `None` while
    /// `azure.base_url` is unset. Its base URL is the resource endpoint, as Azure's SDKs take
    /// it (a trailing `/openai` is accepted too), so `/openai/x` maps to
    /// `{base_url}/openai/x`.
    pub fn azure(
        cfg: &AzureConfig,
        timeouts: &UpstreamConfig,
    ) -> Result<Option<Self>, reqwest::Error> {
        let Some(base) = &cfg.base_url else {
            return Ok(None);
        };
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/openai").unwrap_or(base);
        Self::build(
            format!("{base}/openai"),
            "/openai",
            cfg.api_key.clone(),
            Credential::AzureApiKey,
            timeouts,
        )
        .map(Some)
    }

    fn build(
        base_url: String,
        prefix: &'static str,
        api_key: Option<String>,
        credential: Credential,
        timeouts: &UpstreamConfig,
    ) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(timeouts.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(timeouts.connect_timeout_secs.max(1)))
            .read_timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            base_url,
            prefix,
            api_key,
            credential,
            timeout,
        })
    }

    /// Whether the operator configured a key for this upstream (then it replaces the
    /// client's on every call).
    pub fn has_operator_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// The upstream URL for an incoming path: `/v1/x` maps to `{base_url}/x` (for Azure,
    /// `/openai/x`).
    pub fn url_for(&self, path_and_query: &str) -> String {
        let rest = path_and_query
            .strip_prefix(self.prefix)
            .filter(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
            .unwrap_or(path_and_query);
        format!("{}{}", self.base_url, rest)
    }

    /// Headers to send upstream: the client's, minus hop-by-hop and deja's own, with the
    /// configured key replacing the client's when one is set.
    pub fn request_headers(&self, incoming: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(incoming.len());
        let replaced = match self.api_key {
            Some(_) => self.credential.client_headers(),
            None => &[],
        };
        for (name, value) in incoming {
            if is_hop_or_own(name) || replaced.contains(&name.as_str()) {
                continue;
            }
            if name == "cache-control" {
                // Cache-Control is addressed to deja.
                continue;
            }
            out.append(name.clone(), value.clone());
        }
        if let Some(key) = &self.api_key {
            let (name, value) = match self.credential {
                Credential::Bearer => ("authorization", format!("Bearer {key}")),
                Credential::ApiKey => ("x-api-key", key.clone()),
                Credential::AzureApiKey => ("api-key", key.clone()),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.insert(name, v);
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

    fn anthropic(base_url: &str, api_key: Option<&str>) -> Upstream {
        Upstream::anthropic(
            &AnthropicConfig {
                base_url: base_url.into(),
                api_key: api_key.map(str::to_string),
            },
            &UpstreamConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn anthropic_paths_map_under_v1_with_or_without_it_in_the_base() {
        for base in [
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/v1/",
        ] {
            assert_eq!(
                anthropic(base, None).url_for("/v1/messages"),
                "http://127.0.0.1:9/v1/messages",
                "{base}"
            );
        }
    }

    #[test]
    fn anthropic_key_replaces_the_clients_x_api_key_and_bearer() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("client"));
        h.insert("authorization", HeaderValue::from_static("Bearer client"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        h.insert("anthropic-beta", HeaderValue::from_static("b1"));
        let out = anthropic("http://x", Some("server")).request_headers(&h);
        assert_eq!(out["x-api-key"], "server");
        assert!(out.get("authorization").is_none());
        assert_eq!(out["anthropic-version"], "2023-06-01");
        assert_eq!(out["anthropic-beta"], "b1");
        let out = anthropic("http://x", None).request_headers(&h);
        assert_eq!(out["x-api-key"], "client");
        assert_eq!(out["authorization"], "Bearer client");
    }

    fn azure(base_url: &str, api_key: Option<&str>) -> Upstream {
        Upstream::azure(
            &AzureConfig {
                base_url: Some(base_url.into()),
                api_key: api_key.map(str::to_string),
            },
            &UpstreamConfig::default(),
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn azure_paths_map_under_the_endpoint_with_or_without_openai_in_it() {
        for base in [
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/openai/",
        ] {
            assert_eq!(
                azure(base, None).url_for("/openai/deployments/d/chat/completions?api-version=1"),
                "http://127.0.0.1:9/openai/deployments/d/chat/completions?api-version=1",
                "{base}"
            );
        }
        assert_eq!(
            azure("https://gw.example/team", None).url_for("/openai/v1/embeddings"),
            "https://gw.example/team/openai/v1/embeddings"
        );
        let off = Upstream::azure(&AzureConfig::default(), &UpstreamConfig::default()).unwrap();
        assert!(off.is_none(), "no client without a base URL");
    }

    #[test]
    fn azure_key_replaces_the_clients_api_key_and_bearer() {
        let mut h = HeaderMap::new();
        h.insert("api-key", HeaderValue::from_static("client"));
        h.insert("authorization", HeaderValue::from_static("Bearer client"));
        h.insert("x-ms-client-request-id", HeaderValue::from_static("r1"));
        let out = azure("http://x", Some("server")).request_headers(&h);
        assert_eq!(out["api-key"], "server");
        assert!(out.get("authorization").is_none());
        assert_eq!(out["x-ms-client-request-id"], "r1");
        let out = azure("http://x", None).request_headers(&h);
        assert_eq!(out["api-key"], "client");
        assert_eq!(out["authorization"], "Bearer client");
    }
}
