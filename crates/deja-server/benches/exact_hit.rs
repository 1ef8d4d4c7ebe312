#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right
//! The proxy's exact-hit path in process, without sockets: what the server does between
//! a request's head arriving and its response being ready (body read, JSON parse, key,
//! never-cache rules, classification, store read, response and its headers, the request's
//! records). `bench/load/run.sh` measures the same through real HTTP.
//!
//! `cargo bench -p deja-server --bench exact_hit`

use std::sync::Arc;

use axum::body::Body;
use criterion::{criterion_group, criterion_main, Criterion};
use deja_core::{Cache, SystemClock};
use deja_server::config::Config;
use deja_server::AppState;
use deja_testkit::conformance::HashEmbedder;
use deja_testkit::mock_upstream::MockUpstream;
use http_body_util::BodyExt;
use tower::ServiceExt;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the return policy for items bought online?"}],"temperature":0}"#;

fn request() -> http::Request<Body> {
    http::Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(Body::from(BODY))
        .expect("a valid request")
}

fn exact_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_upstream, app) = rt.block_on(async {
        let upstream = MockUpstream::start().await.expect("the mock upstream");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = upstream.base_url();
        let store = Arc::new(deja_server::open_store(&config).expect("the store"));
        let embedder = Arc::new(HashEmbedder);
        let index = Arc::new(deja_store_local::HnswIndex::new(
            deja_core::Embedder::id(embedder.as_ref()),
            deja_core::Embedder::dim(embedder.as_ref()),
            deja_store_local::HnswParams::default(),
        ));
        let cache = Cache::new(
            store,
            index,
            embedder,
            Arc::new(SystemClock),
            deja_server::cache_options(&config),
        )
        .expect("the cache");
        let app = deja_server::router(AppState::new(config, cache).expect("the state"));
        // The first request is a miss and stores the answer.
        let first = app.clone().oneshot(request()).await.expect("a response");
        assert_eq!(first.status(), 200);
        first.into_body().collect().await.expect("the body");
        (upstream, app)
    });
    let hit = rt
        .block_on(app.clone().oneshot(request()))
        .expect("a response");
    assert_eq!(hit.headers()["x-deja-cache"], "hit-exact");

    c.bench_function("exact hit, in process", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = app.clone().oneshot(request()).await.expect("a response");
                r.into_body().collect().await.expect("the body").to_bytes()
            })
        })
    });
}

criterion_group!(benches, exact_hit);
criterion_main!(benches);
