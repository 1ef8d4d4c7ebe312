//! `POST /v1/embeddings`: the request type, per-input cache keys, the upstream request for
//! the inputs the cache does not hold, and the response in either encoding.
//!
//! The cache stores one float32 vector per input (text or token array), so a batch whose
//! inputs are partly cached only sends the rest upstream. Vectors are always fetched as
//! floats and encoded the way the client asked on the way out.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use deja_core::{ExactKey, KeyBuilder, PartitionKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::WireError;
use crate::json::{key_extras, parse_request, to_vec};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EmbeddingsRequest {
    /// Required by [`parse_embeddings`]. Empty only from [`parse_embeddings_without_model`]
    /// (an API that names the model in the path), and then not sent on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Parameters this version does not know; passed through upstream and part of the key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The four shapes of `input` the API accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenArrays(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    Float,
    /// Little-endian float32s, base64-encoded.
    Base64,
}

/// One input of a request: what one cached vector is the embedding of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EmbeddingItem {
    Text(String),
    Tokens(Vec<u32>),
}

/// Token counts the upstream reported for the inputs it embedded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

const INPUT_SHAPES: &str =
    "'input' must be a non-empty string, an array of non-empty strings, an array of token integers, or an array of non-empty token arrays";

/// Parses and validates an embeddings request body.
pub fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, WireError> {
    let req = parse_embeddings_without_model(body)?;
    if req.model.is_empty() {
        return Err(crate::chat::missing_model());
    }
    Ok(req)
}

/// [`parse_embeddings`] for an API whose path names the model (Azure OpenAI's
/// `/openai/deployments/{deployment}/embeddings`): the body may leave `model` out, and then
/// it is `""`.
pub fn parse_embeddings_without_model(body: &[u8]) -> Result<EmbeddingsRequest, WireError> {
    let req: EmbeddingsRequest = parse_request(body).map_err(|e| {
        // The untagged enum's own message ("did not match any variant") says nothing useful.
        if e.param.as_deref() == Some("input") && !e.message.starts_with("missing") {
            WireError::with_param(INPUT_SHAPES, "input")
        } else {
            e
        }
    })?;
    let empty = match &req.input {
        EmbeddingInput::Text(s) => s.is_empty(),
        EmbeddingInput::Texts(v) => v.is_empty() || v.iter().any(String::is_empty),
        EmbeddingInput::Tokens(v) => v.is_empty(),
        EmbeddingInput::TokenArrays(v) => v.is_empty() || v.iter().any(Vec::is_empty),
    };
    if empty {
        return Err(WireError::with_param(INPUT_SHAPES, "input"));
    }
    Ok(req)
}

/// The request's inputs, in order.
pub fn items(req: &EmbeddingsRequest) -> Vec<EmbeddingItem> {
    match &req.input {
        EmbeddingInput::Text(s) => vec![EmbeddingItem::Text(s.clone())],
        EmbeddingInput::Texts(v) => v.iter().cloned().map(EmbeddingItem::Text).collect(),
        EmbeddingInput::Tokens(v) => vec![EmbeddingItem::Tokens(v.clone())],
        EmbeddingInput::TokenArrays(v) => v.iter().cloned().map(EmbeddingItem::Tokens).collect(),
    }
}

/// The partition of an embeddings request: everything that changes a vector except the
/// input itself. Each input item is then an exact-match prompt ([`item_prompt`]) inside it.
pub fn partition_key(req: &EmbeddingsRequest, tenant: &str) -> PartitionKey {
    let EmbeddingsRequest {
        model,
        // Replaced by the item: each input is cached on its own.
        input: _,
        // The vector is stored as float32 and encoded as asked on the way out.
        encoding_format: _,
        // Abuse monitoring only; does not change the vector.
        user: _,
        dimensions,
        extra,
    } = req;
    let mut b = KeyBuilder::new("embedding/v1");
    b.str("tenant", tenant);
    b.str("model", model);
    b.opt_str("dimensions", dimensions.map(|d| d.to_string()).as_deref());
    // Unknown parameters are assumed to change the vector.
    key_extras(&mut b, extra);
    b.finish_partition()
}

/// The exact-match prompt of one input item: `text:` and the text as given (not
/// normalised: any change of the text changes its vector), or `tokens:` and the token ids.
/// The prefixes keep a text and a token list from ever sharing an entry.
pub fn item_prompt(item: &EmbeddingItem) -> String {
    match item {
        EmbeddingItem::Text(text) => format!("text:{text}"),
        EmbeddingItem::Tokens(tokens) => {
            let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
            format!("tokens:{}", ids.join(","))
        }
    }
}

/// The cache key of one input: the exact key of its prompt in the request's partition.
pub fn item_key(req: &EmbeddingsRequest, item: &EmbeddingItem, tenant: &str) -> [u8; 16] {
    ExactKey::new(&partition_key(req, tenant), &item_prompt(item)).0
}

/// The request to send upstream for the inputs the cache lacks: the client's request with
/// `input` = those items (always as an array, so response indices are positions in
/// `missing`) and `encoding_format: "float"`. `missing` must come from [`items`] of this
/// request (all texts or all token arrays; the API accepts no mix).
pub fn build_upstream_request(req: &EmbeddingsRequest, missing: &[EmbeddingItem]) -> Vec<u8> {
    let mut body = match serde_json::to_value(req) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let input = missing
        .iter()
        .map(|item| match item {
            EmbeddingItem::Text(text) => Value::from(text.as_str()),
            EmbeddingItem::Tokens(tokens) => Value::from(tokens.clone()),
        })
        .collect();
    body.insert("input".into(), Value::Array(input));
    body.insert("encoding_format".into(), "float".into());
    to_vec(&Value::Object(body))
}

#[derive(Deserialize)]
struct UpstreamResponse {
    data: Vec<UpstreamEmbedding>,
    #[serde(default)]
    usage: Option<UpstreamUsageFields>,
}

#[derive(Deserialize)]
struct UpstreamEmbedding {
    index: usize,
    embedding: UpstreamVector,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UpstreamVector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Deserialize)]
struct UpstreamUsageFields {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// Reads the upstream's answer for `expected` inputs: the vectors ordered by `index`
/// (float arrays or base64 strings), and its usage (zeros when absent).
pub fn parse_upstream_response(
    body: &[u8],
    expected: usize,
) -> Result<(Vec<Vec<f32>>, UpstreamUsage), WireError> {
    let response: UpstreamResponse = serde_json::from_slice(body)
        .map_err(|e| WireError::new(format!("upstream embeddings response is malformed ({e})")))?;
    if response.data.len() != expected {
        return Err(WireError::new(format!(
            "upstream returned {} embeddings for {expected} inputs",
            response.data.len()
        )));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for item in response.data {
        let vector = match item.embedding {
            UpstreamVector::Floats(v) => v,
            UpstreamVector::Base64(s) => BASE64
                .decode(s.as_bytes())
                .ok()
                .and_then(|bytes| le_bytes_to_f32s(&bytes))
                .ok_or_else(|| {
                    WireError::new(format!(
                        "upstream embedding {} is not base64 float32 data",
                        item.index
                    ))
                })?,
        };
        match vectors.get_mut(item.index) {
            Some(slot @ None) => *slot = Some(vector),
            _ => {
                return Err(WireError::new(format!(
                    "upstream embedding index {} is out of range or repeated",
                    item.index
                )))
            }
        }
    }
    // Every slot is filled: `expected` distinct in-range indices were seen.
    let vectors = vectors.into_iter().flatten().collect();
    let usage = response
        .usage
        .map(|u| UpstreamUsage {
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.total_tokens,
        })
        .unwrap_or_default();
    Ok((vectors, usage))
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    object: &'static str,
    data: Vec<ResponseItem<'a>>,
    model: &'a str,
    usage: UpstreamUsage,
}

#[derive(Serialize)]
struct ResponseItem<'a> {
    object: &'static str,
    index: usize,
    embedding: ResponseVector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResponseVector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

/// The response body in OpenAI's shape, vectors encoded as `format` asks.
pub fn build_response(
    model: &str,
    vectors: &[Vec<f32>],
    format: EncodingFormat,
    usage: UpstreamUsage,
) -> Vec<u8> {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| ResponseItem {
            object: "embedding",
            index,
            embedding: match format {
                EncodingFormat::Float => ResponseVector::Floats(v),
                EncodingFormat::Base64 => {
                    ResponseVector::Base64(BASE64.encode(f32s_to_le_bytes(v)))
                }
            },
        })
        .collect();
    to_vec(&ResponseBody {
        object: "list",
        data,
        model,
        usage,
    })
}

/// Compact storage of a vector: little-endian float32s (also the base64 wire encoding).
pub fn f32s_to_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`f32s_to_le_bytes`]; `None` when the length is not a multiple of 4.
pub fn le_bytes_to_f32s(bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> EmbeddingsRequest {
        parse_embeddings(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn input_shapes() {
        let cases = [
            (json!("hi"), vec![EmbeddingItem::Text("hi".into())]),
            (
                json!(["a", "b"]),
                vec![
                    EmbeddingItem::Text("a".into()),
                    EmbeddingItem::Text("b".into()),
                ],
            ),
            (json!([1, 2, 3]), vec![EmbeddingItem::Tokens(vec![1, 2, 3])]),
            (
                json!([[1], [2, 3]]),
                vec![
                    EmbeddingItem::Tokens(vec![1]),
                    EmbeddingItem::Tokens(vec![2, 3]),
                ],
            ),
        ];
        for (input, want) in cases {
            let req = parse(json!({"model": "m", "input": input}));
            assert_eq!(items(&req), want, "{input}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (
                br#"{"model":"m","input":""}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":[]}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":["a",""]}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":[[1],[]]}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":[1,"a"]}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":[-1]}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m","input":5}"#,
                Some("input"),
                "'input' must be",
            ),
            (
                br#"{"model":"m"}"#,
                Some("input"),
                "missing required parameter 'input'",
            ),
            (
                br#"{"input":"x"}"#,
                Some("model"),
                "missing required parameter 'model'",
            ),
            (
                br#"{"model":"m","input":"x","encoding_format":"int8"}"#,
                Some("encoding_format"),
                "unknown variant",
            ),
            (
                br#"{"model":"m","input":"x","dimensions":"8"}"#,
                Some("dimensions"),
                "invalid value",
            ),
            (b"{", None, "could not parse"),
            (b"\xc3\x28", None, "UTF-8"),
        ];
        for (body, param, message) in cases {
            let err = parse_embeddings(body).unwrap_err();
            assert_eq!(
                err.param.as_deref(),
                *param,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
            assert!(
                err.message.contains(message),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn item_keys() {
        let base = parse(json!({"model": "m", "input": ["a", "b"]}));
        let [a, b] = [0, 1].map(|i| item_key(&base, &items(&base)[i], "t"));
        assert_ne!(a, b);
        // Same input in a different batch, with another encoding or user: same key.
        for same in [
            json!({"model": "m", "input": "a"}),
            json!({"model": "m", "input": ["z", "a"], "encoding_format": "base64"}),
            json!({"model": "m", "input": "a", "user": "u", "encoding_format": "float"}),
        ] {
            let req = parse(same.clone());
            let item = EmbeddingItem::Text("a".into());
            assert_eq!(item_key(&req, &item, "t"), a, "{same}");
        }
        // Model, dimensions, unknown fields and tenant change it; tokens are not text.
        let item = EmbeddingItem::Text("a".into());
        for other in [
            json!({"model": "m2", "input": "a"}),
            json!({"model": "m", "input": "a", "dimensions": 256}),
            json!({"model": "m", "input": "a", "future": true}),
        ] {
            let req = parse(other.clone());
            assert_ne!(item_key(&req, &item, "t"), a, "{other}");
        }
        assert_ne!(item_key(&base, &item, "t2"), a);
        assert_ne!(item_key(&base, &EmbeddingItem::Tokens(vec![97]), "t"), a);
    }

    #[test]
    fn only_the_path_form_may_leave_the_model_out() {
        let body = br#"{"input":"x"}"#;
        let req = parse_embeddings_without_model(body).unwrap();
        assert_eq!(req.model, "");
        let sent: Value = serde_json::from_slice(&build_upstream_request(
            &req,
            &[EmbeddingItem::Text("x".into())],
        ))
        .unwrap();
        assert_eq!(sent, json!({"input": ["x"], "encoding_format": "float"}));
        for body in [&body[..], br#"{"model":"","input":"x"}"#] {
            let err = parse_embeddings(body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("model"));
        }
        assert!(parse_embeddings_without_model(br#"{"input":""}"#).is_err());
    }

    #[test]
    fn upstream_request_forces_floats_and_keeps_the_rest() {
        let req = parse(
            json!({"model": "m", "input": ["a", "b", "c"], "encoding_format": "base64",
                               "dimensions": 8, "user": "u", "future": 1}),
        );
        let missing = vec![EmbeddingItem::Text("c".into())];
        let body: Value = serde_json::from_slice(&build_upstream_request(&req, &missing)).unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "input": ["c"], "encoding_format": "float",
                                "dimensions": 8, "user": "u", "future": 1})
        );
        let tokens = parse(json!({"model": "m", "input": [[1, 2], [3]]}));
        let body: Value = serde_json::from_slice(&build_upstream_request(
            &tokens,
            &[EmbeddingItem::Tokens(vec![3])],
        ))
        .unwrap();
        assert_eq!(body["input"], json!([[3]]));
    }

    #[test]
    fn upstream_response_parsing() {
        let b64 = BASE64.encode(f32s_to_le_bytes(&[0.5, -1.0]));
        let body = json!({"object": "list", "model": "m",
            "data": [
                {"object": "embedding", "index": 1, "embedding": b64},
                {"object": "embedding", "index": 0, "embedding": [0.25, 0.75]}
            ],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        let (vectors, usage) =
            parse_upstream_response(&serde_json::to_vec(&body).unwrap(), 2).unwrap();
        assert_eq!(vectors, vec![vec![0.25, 0.75], vec![0.5, -1.0]]);
        assert_eq!(
            usage,
            UpstreamUsage {
                prompt_tokens: 4,
                total_tokens: 4
            }
        );

        let bad: &[(Value, usize)] = &[
            (json!({"data": [{"index": 0, "embedding": [1.0]}]}), 2),
            (
                json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}),
                2,
            ),
            (json!({"data": [{"index": 5, "embedding": [1.0]}]}), 1),
            (json!({"data": [{"index": 0, "embedding": "!!"}]}), 1),
            (json!({"data": [{"index": 0, "embedding": "AAA="}]}), 1),
            (json!({"error": {"message": "x"}}), 1),
        ];
        for (body, expected) in bad {
            assert!(
                parse_upstream_response(&serde_json::to_vec(body).unwrap(), *expected).is_err(),
                "{body}"
            );
        }
        let no_usage = json!({"data": [{"index": 0, "embedding": [1.0]}]});
        let (_, usage) =
            parse_upstream_response(&serde_json::to_vec(&no_usage).unwrap(), 1).unwrap();
        assert_eq!(usage, UpstreamUsage::default());
    }

    #[test]
    fn response_in_both_encodings() {
        let vectors = vec![vec![0.1f32, -2.5, 3.0], vec![1e-7, 0.0, f32::MAX]];
        let usage = UpstreamUsage {
            prompt_tokens: 3,
            total_tokens: 3,
        };
        let float = build_response("m", &vectors, EncodingFormat::Float, usage);
        assert!(String::from_utf8_lossy(&float).starts_with(
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2.5,3.0]}"#
        ));
        let base64 = build_response("m", &vectors, EncodingFormat::Base64, usage);
        for body in [float, base64] {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["model"], "m");
            assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
            let (back, _) = parse_upstream_response(&body, 2).unwrap();
            assert_eq!(back, vectors);
        }
    }

    #[test]
    fn le_bytes_round_trip() {
        let values = [0.0f32, -0.0, 1.5, f32::MIN_POSITIVE, f32::INFINITY, 123.456];
        let bytes = f32s_to_le_bytes(&values);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..12], &1.5f32.to_le_bytes());
        let back = le_bytes_to_f32s(&bytes).unwrap();
        assert_eq!(
            back.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(le_bytes_to_f32s(&[1, 2, 3]), None);
        assert_eq!(le_bytes_to_f32s(&[]), Some(vec![]));
    }
}
