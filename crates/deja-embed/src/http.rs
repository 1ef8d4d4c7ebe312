//! [`HttpEmbedder`]: embeddings from an OpenAI-compatible `POST {base_url}/embeddings`.
//!
//! All texts of a call go upstream in one request; results are put back in input order by
//! their `index` field and L2-normalised (some compatible servers do not normalise).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use deja_core::{EmbedError, Embedder};
use serde::{Deserialize, Serialize};

use crate::l2_normalize;

/// Settings of an [`HttpEmbedder`].
#[derive(Debug, Clone)]
pub struct HttpEmbedderConfig {
    /// API root ending in `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Embedding model name, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Sent as the `dimensions` request field when set (models that can shorten vectors).
    pub dimensions: Option<usize>,
    /// Length of the vectors the upstream returns (e.g. 1536); any other length is an error.
    pub dim: usize,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// Embeds through an OpenAI-compatible embeddings API.
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    id: String,
    url: String,
    api_key: Option<String>,
    model: String,
    dimensions: Option<usize>,
    dim: usize,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct Request<'a> {
    input: &'a [String],
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vector,
}

/// Servers answer with floats; some send base64 little-endian f32 even when floats were
/// asked for.
#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

impl HttpEmbedder {
    pub fn new(config: HttpEmbedderConfig) -> Result<HttpEmbedder, EmbedError> {
        let id = format!("openai:{}", config.model);
        let invalid = |reason: String| EmbedError::ModelInvalid {
            path: id.clone(),
            reason,
        };
        if config.dim == 0 {
            return Err(invalid("dim must be at least 1".into()));
        }
        if let Some(d) = config.dimensions.filter(|&d| d != config.dim) {
            return Err(invalid(format!(
                "dimensions = {d} is requested but dim = {} is expected",
                config.dim
            )));
        }
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&url).map_err(|e| invalid(format!("bad base_url: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| invalid(format!("http client: {e}")))?;
        Ok(HttpEmbedder {
            id,
            url,
            api_key: config.api_key,
            model: config.model,
            dimensions: config.dimensions,
            dim: config.dim,
            client,
        })
    }

    fn upstream(&self, reason: impl Into<String>) -> EmbedError {
        EmbedError::Upstream {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// A remote model's vocabulary is not known here: no difference is taken for a typo.
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    /// A remote model's vocabulary is not known here: nothing is reported unseen.
    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = self.client.post(&self.url).json(&Request {
            input: texts,
            model: &self.model,
            dimensions: self.dimensions,
            encoding_format: "float",
        });
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| self.upstream(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let snippet: String = body.chars().take(300).collect();
            return Err(self.upstream(format!("status {status}: {snippet}")));
        }
        let body: Response = resp
            .json()
            .await
            .map_err(|e| self.upstream(format!("bad response body: {e}")))?;

        let mut slots: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        let got = body.data.len();
        for item in body.data {
            let mut v = match item.embedding {
                Vector::Floats(v) => v,
                Vector::Base64(s) => decode_base64(&s).ok_or_else(|| {
                    self.upstream(format!("embedding {} is not valid base64 f32", item.index))
                })?,
            };
            if v.len() != self.dim {
                return Err(EmbedError::Shape {
                    want: texts.len(),
                    got,
                    dim: v.len(),
                });
            }
            l2_normalize(&mut v);
            match slots.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(v),
                _ => {
                    return Err(self.upstream(format!(
                        "embedding index {} is out of range or repeated",
                        item.index
                    )))
                }
            }
        }
        slots
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(EmbedError::Shape {
                want: texts.len(),
                got,
                dim: self.dim,
            })
    }
}

fn decode_base64(s: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}
