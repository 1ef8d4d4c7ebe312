//! `HttpEmbedder` against a tiny OpenAI-compatible server on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use deja_core::{EmbedError, Embedder};
use deja_embed::{HttpEmbedder, HttpEmbedderConfig};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// What the fake upstream saw, and how it answers.
#[derive(Default)]
struct Upstream {
    auth: Mutex<Vec<Option<String>>>,
    bodies: Mutex<Vec<Value>>,
    /// Length of the vectors it returns.
    dim: usize,
}

/// Answers each input `i` with the unnormalised vector `[i + 1, 2, 0, ...]`, listed in
/// reverse order so the client must sort by `index`.
async fn embeddings(
    State(up): State<Arc<Upstream>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    up.auth.lock().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default().to_owned()),
    );
    up.bodies.lock().push(body.clone());
    let inputs = body["input"].as_array().ok_or(StatusCode::BAD_REQUEST)?;
    if inputs.iter().any(|i| i == "fail") {
        return Err(StatusCode::TOO_MANY_REQUESTS);
    }
    let data: Vec<Value> = (0..inputs.len())
        .rev()
        .map(|i| {
            let mut v = vec![0.0f32; up.dim];
            v[0] = i as f32 + 1.0;
            v[1] = 2.0;
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": body["model"]}),
    ))
}

async fn serve(dim: usize) -> (String, Arc<Upstream>) {
    let up = Arc::new(Upstream {
        dim,
        ..Default::default()
    });
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(Arc::clone(&up));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), up)
}

fn config(base_url: String, api_key: Option<&str>, dim: usize) -> HttpEmbedderConfig {
    HttpEmbedderConfig {
        base_url,
        api_key: api_key.map(str::to_owned),
        model: "text-embedding-3-small".into(),
        dimensions: None,
        dim,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn batches_orders_by_index_normalises_and_authenticates() {
    let (url, up) = serve(4).await;
    let e = HttpEmbedder::new(config(url, Some("sk-test"), 4)).unwrap();
    assert_eq!(e.id(), "openai:text-embedding-3-small");
    assert_eq!(e.dim(), 4);
    let texts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let vectors = e.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 3);
    for (i, v) in vectors.iter().enumerate() {
        let x = i as f32 + 1.0;
        let norm = (x * x + 4.0).sqrt();
        let want = [x / norm, 2.0 / norm, 0.0, 0.0];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "vector {i}: {v:?}, want {want:?}");
        }
    }
    // One upstream call for the whole batch, with the key and the model.
    assert_eq!(*up.auth.lock(), vec![Some("Bearer sk-test".to_owned())]);
    let body = up.bodies.lock()[0].clone();
    assert_eq!(body["input"], json!(["a", "b", "c"]));
    assert_eq!(body["model"], "text-embedding-3-small");
    assert!(body.get("dimensions").is_none());
}

#[tokio::test]
async fn no_key_sends_no_authorization_header() {
    let (url, up) = serve(4).await;
    let e = HttpEmbedder::new(config(url, None, 4)).unwrap();
    e.embed(&["x".to_owned()]).await.unwrap();
    assert_eq!(*up.auth.lock(), vec![None]);
}

#[tokio::test]
async fn wrong_dimension_is_a_shape_error() {
    let (url, _up) = serve(8).await;
    let e = HttpEmbedder::new(config(url, None, 4)).unwrap();
    let err = e.embed(&["x".to_owned()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Shape {
                want: 1,
                got: 1,
                dim: 8
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn upstream_error_status_names_the_url() {
    let (url, _up) = serve(4).await;
    let e = HttpEmbedder::new(config(url.clone(), None, 4)).unwrap();
    let err = e.embed(&["fail".to_owned()]).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EmbedError::Upstream { .. }), "{err:?}");
    assert!(msg.contains(&format!("{url}/embeddings")), "{msg}");
    assert!(format!("{err:?}").contains("429"), "{err:?}");
}

#[test]
fn dimensions_must_agree_with_dim() {
    let mut cfg = config("http://127.0.0.1:1/v1".into(), None, 1536);
    cfg.dimensions = Some(256);
    assert!(HttpEmbedder::new(cfg).is_err());
}
