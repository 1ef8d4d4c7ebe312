#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Embedding items shared through a real Memcached server by two replicas that each keep
//! their own embedded store: what one replica paid for, the other serves; an invalidation
//! on either reaches the shared items; Memcached going away fails no request.

#[macro_use]
mod common;

use std::sync::Arc;

use common::Served;
use deja_core::Embedder;
use deja_server::shared_embeddings::{SharedEmbeddings, SharedItem};
use deja_testkit::memcached_server::MemcachedServer;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "shared-embeddings-token";

/// A replica with its own data directory, sharing embedding items at `memcached`.
struct Replica {
    served: Served,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Replica {
    async fn start(
        embedder: Arc<dyn Embedder>,
        upstream: &MockUpstream,
        memcached: &str,
    ) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), upstream.base_url());
        config.admin.token = Some(ADMIN_TOKEN.into());
        config.store.shared_embeddings = Some(memcached.to_string());
        config.validate().unwrap();
        Replica {
            served: Served::start(config, embedder).await,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `POST /v1/embeddings`: the `x-deja-cache` outcome, `x-deja-embedding-hits` and the
    /// vectors.
    async fn embed(&self, input: &[&str]) -> (String, String, Vec<Value>) {
        let r = self
            .client
            .post(format!("{}/v1/embeddings", self.served.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({"model": "text-embedding-3-small", "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{input:?}");
        let h = |n: &str| r.headers()[n].to_str().unwrap().to_string();
        let (outcome, hits) = (h("x-deja-cache"), h("x-deja-embedding-hits"));
        let body: Value = r.json().await.unwrap();
        let vectors = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["embedding"].clone())
            .collect();
        (outcome, hits, vectors)
    }

    async fn invalidate(&self, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/admin/invalidate", self.served.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `deja_shared_embeddings_total{result=…}`.
    async fn shared_metric(&self, result: &str) -> u64 {
        let text = self.served.scrape().await;
        let series = format!("deja_shared_embeddings_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }
}

#[tokio::test]
async fn replicas_share_embedding_items_and_invalidations_through_memcached() {
    let embedder = need_model!();
    let Some(mut memcached) = MemcachedServer::start_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start().await.unwrap();
    let a = Replica::start(embedder.clone(), &upstream, &memcached.url()).await;
    let b = Replica::start(embedder, &upstream, &memcached.url()).await;
    let items = || upstream.stats().embedding_items;

    // A pays for alpha and beta; B pays only for gamma.
    let (o, _, from_a) = a.embed(&["alpha", "beta"]).await;
    assert_eq!(o, "miss");
    assert_eq!(items(), 2);
    let (o, hits, from_b) = b.embed(&["alpha", "beta", "gamma"]).await;
    assert_eq!((o.as_str(), hits.as_str()), ("miss", "2/3"));
    assert_eq!(items(), 3, "only gamma went upstream");
    assert_eq!(from_b[..2], from_a[..], "the vectors A was given");
    assert_eq!(b.shared_metric("hit").await, 2);
    assert_eq!(b.shared_metric("miss").await, 1);
    // Now both have everything: B from its store and Memcached, A from Memcached.
    assert_eq!(b.embed(&["alpha", "beta", "gamma"]).await.0, "hit-exact");
    let (o, _, gamma) = a.embed(&["gamma"]).await;
    assert_eq!(o, "hit-exact");
    assert_eq!(gamma[0], from_b[2]);
    assert_eq!(items(), 3);

    // An invalidation on A reaches what B would read from Memcached: alpha, which B never
    // stored itself, goes upstream again. (What B stored itself is B's to invalidate.)
    let r = a
        .invalidate(json!({"model": "text-embedding-3-small"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.embed(&["alpha"]).await.0, "miss");
    assert_eq!(items(), 4);
    // And what is written after it is shared again.
    assert_eq!(a.embed(&["alpha"]).await.0, "hit-exact");
    assert_eq!(items(), 4);

    // Memcached goes away: requests are answered (from the upstream), errors are counted.
    memcached.kill();
    let (o, _, _) = a.embed(&["delta"]).await;
    assert_eq!(o, "miss");
    assert_eq!(items(), 5);
    assert!(a.shared_metric("error").await >= 1);
    // An invalidation that cannot reach the shared items says so, so it can be retried.
    let r = a.invalidate(json!({"tag": "nothing-has-it"})).await;
    assert_eq!(r.status(), 503);
    let why: Value = r.json().await.unwrap();
    assert!(
        why["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be invalidated"),
        "{why}"
    );

    // It comes back empty (its generation lost): nothing old is served, sharing resumes.
    memcached.restart().unwrap();
    assert_eq!(b.embed(&["delta"]).await.0, "miss");
    assert_eq!(items(), 6);
    assert_eq!(b.embed(&["epsilon"]).await.0, "miss");
    assert_eq!(a.embed(&["epsilon"]).await.0, "hit-exact");
    assert_eq!(items(), 7);

    let (mut a, mut b) = (a, b);
    a.served.stop().await;
    b.served.stop().await;
}

/// The generation rules on their own: a value is served only in the generation it was
/// written in, and a lost generation never comes back as an old one.
#[tokio::test]
async fn values_are_served_only_in_their_generation() {
    let Some(mut memcached) = MemcachedServer::start_or_skip() else {
        return;
    };
    let addr = memcached
        .url()
        .trim_start_matches("memcached://")
        .to_string();
    let shared = SharedEmbeddings::new(addr, "t", std::time::Duration::from_secs(2), 60);
    let key = deja_core::ExactKey([7; 16]);
    let item = SharedItem {
        vector: vec![0.5, -0.25],
        prompt_tokens: 3,
    };
    // The first read starts a generation; nothing is served before it.
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![None]);
    shared.put(&[(key, item.clone())]).await.unwrap();
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![Some(item.clone())]);
    shared.invalidate().await.unwrap();
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![None]);
    shared.put(&[(key, item.clone())]).await.unwrap();
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![Some(item.clone())]);
    // The generation key evicted: the value stays in Memcached but is not served.
    assert!(memcached
        .command("delete t:emb:gen")
        .unwrap()
        .starts_with("DELETED"));
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![None]);
    assert_eq!(shared.get(&[key]).await.unwrap(), vec![None]);
    // Down: an error, not a hang.
    memcached.kill();
    assert!(shared.get(&[key]).await.is_err());
}

/// Latency of the shared tier's lookup against a real local Memcached: one `get` of the
/// generation and 1 or 16 items, one at a time.
///
/// `cargo test --release -p deja-server --test shared_embeddings shared_tier_latency -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn shared_tier_latency() {
    let Some(memcached) = MemcachedServer::start_or_skip() else {
        return;
    };
    let addr = memcached
        .url()
        .trim_start_matches("memcached://")
        .to_string();
    let shared = SharedEmbeddings::new(addr, "p", std::time::Duration::from_secs(2), 600);
    let keys: Vec<deja_core::ExactKey> = (0..16u8).map(|i| deja_core::ExactKey([i; 16])).collect();
    let item = SharedItem {
        vector: vec![0.1; 1536],
        prompt_tokens: 8,
    };
    shared.get(&keys[..1]).await.unwrap();
    let items: Vec<_> = keys.iter().map(|k| (*k, item.clone())).collect();
    shared.put(&items).await.unwrap();
    for n in [1usize, 16] {
        let mut lat = Vec::new();
        for _ in 0..5_000 {
            let t = std::time::Instant::now();
            let got = shared.get(&keys[..n]).await.unwrap();
            lat.push(t.elapsed());
            assert!(got.iter().all(Option::is_some));
        }
        lat.sort();
        eprintln!(
            "get of {n} items of 1536 floats: p50 {:?}, p99 {:?}",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
    }
}
