#![allow(clippy::unwrap_used, clippy::expect_used)]
//! deja replicas on one Redis, built the way `deja serve --store redis://…` builds them
//! (`build_state`: config → Redis store, real embedder, index loaded from Redis), each on
//! a real listener in front of the mock upstream, which counts its calls. Redis is a real
//! server started on 127.0.0.1 by deja-testkit and stopped (or killed) by its PID.

mod common;

use std::time::Duration;

use common::{sample, PARCEL, PARCEL_ANSWER};
use deja_server::config::{Config, IndexKind, StoreKind};
use deja_testkit::mock_upstream::MockUpstream;
use deja_testkit::redis_server::{RedisCluster, RedisServer};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "test-admin-token";

/// Whether the real model is installed; prints "skipped" (or panics under
/// `DEJA_REQUIRE_MODEL=1`) when it is not.
fn model_available() -> bool {
    let dir = deja_embed::default_model_dir();
    if dir.join("model.safetensors").is_file() {
        return true;
    }
    if std::env::var("DEJA_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!("DEJA_REQUIRE_MODEL=1 but no model at {}", dir.display());
    }
    eprintln!("skipped: no model at {}", dir.display());
    false
}

struct Replica {
    base: String,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Whether its index was loaded from a snapshot in its data dir (else rebuilt).
    from_snapshot: bool,
    dir: Option<tempfile::TempDir>,
}

impl Replica {
    async fn start(redis_url: &str, prefix: &str, upstream: &MockUpstream) -> Replica {
        Self::start_with(redis_url, prefix, upstream, IndexKind::Local).await
    }

    async fn start_with(
        redis_url: &str,
        prefix: &str,
        upstream: &MockUpstream,
        index: IndexKind,
    ) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(redis_url, prefix, upstream, index, dir).await
    }

    /// A replica over the data dir `dir` (where its index snapshot is kept).
    async fn start_in(
        redis_url: &str,
        prefix: &str,
        upstream: &MockUpstream,
        index: IndexKind,
        dir: tempfile::TempDir,
    ) -> Replica {
        Self::start_configured(redis_url, prefix, upstream, index, dir, |_| {}).await
    }

    /// As [`Replica::start_in`], with `change` applied to the configuration.
    async fn start_configured(
        redis_url: &str,
        prefix: &str,
        upstream: &MockUpstream,
        index: IndexKind,
        dir: tempfile::TempDir,
        change: impl FnOnce(&mut Config),
    ) -> Replica {
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = upstream.base_url();
        config.store.select("--store", redis_url).unwrap();
        assert_eq!(config.store.kind, StoreKind::Redis);
        config.store.key_prefix = prefix.to_string();
        config.store.index = index;
        config.store.response_timeout_ms = 500;
        config.admin.token = Some(ADMIN_TOKEN.into());
        change(&mut config);
        let state = deja_server::build_state(config).await.unwrap();
        let from_snapshot = state.index_snapshot().is_some_and(|s| s.was_loaded());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(deja_server::serve_on(listener, state, async {
            let _ = rx.await;
        }));
        Replica {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            from_snapshot,
            dir: Some(dir),
        }
    }

    /// Stops cleanly (which writes the index snapshot) and returns the data dir.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.dir.take().unwrap()
    }

    async fn chat(&self, text: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .header("x-deja-tags", "replicas")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap()
    }

    /// A request whose answer is not stored (`cache-control: no-store`); still looked up.
    async fn chat_no_store(&self, text: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .header("cache-control", "no-store")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap()
    }

    async fn admin(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin/{path}", self.base);
        let rb = match body {
            Some(b) => self.client.post(url).json(&b),
            None => self.client.get(url),
        };
        let r = rb.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "admin {path}");
        r.json().await.unwrap()
    }

    /// Waits until the insert after a miss (done after the response) is visible here.
    async fn settle(&self, text: &str) {
        for _ in 0..300 {
            if outcome(&self.chat(text).await) == "hit-exact" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("entry for {text:?} never became visible");
    }
}

fn outcome(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-deja-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A key prefix no other test uses (tests share nothing, but keep keys apart anyway).
fn prefix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("replicas-{}-{n}", std::process::id())
}

/// A miss on A is an exact hit on B at once (the store is shared), a semantic hit on B
/// within a second (B's index follows the events stream) and on a replica started
/// afterwards (its index is loaded from Redis); an invalidation on A is honoured by B and
/// C, exactly and semantically.
async fn replicas_share_entries(url: &str, index: IndexKind) {
    let upstream = MockUpstream::start().await.unwrap();
    let prefix = prefix();
    let a = Replica::start_with(url, &prefix, &upstream, index).await;
    let b = Replica::start_with(url, &prefix, &upstream, index).await;
    let question = "How do I reset my password?";
    let paraphrase = "how can I reset my password";
    let r = a.chat(question).await;
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "miss");
    a.settle(question).await;
    let calls = upstream.stats().chat_calls;
    let r = b.chat(question).await;
    assert_eq!(outcome(&r), "hit-exact", "A's answer is served by B");
    assert_eq!(
        upstream.stats().chat_calls,
        calls,
        "a hit calls no upstream"
    );

    // B started before A stored the entry: only the events stream brings the vector.
    let started = std::time::Instant::now();
    let mut semantic = false;
    while started.elapsed() < Duration::from_secs(1) {
        // no-store: a miss here must not store the paraphrase itself.
        if outcome(&b.chat_no_store(paraphrase).await) == "hit-semantic" {
            semantic = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(semantic, "A's vector did not reach B's index within 1 s");
    eprintln!(
        "semantic hit on B {:?} after A's entry was visible",
        started.elapsed()
    );
    assert_eq!(upstream.stats().chat_calls, calls);

    let c = Replica::start_with(url, &prefix, &upstream, index).await;
    let r = c.chat_no_store(paraphrase).await;
    assert_eq!(
        outcome(&r),
        "hit-semantic",
        "C loaded A's vector from Redis"
    );
    assert_eq!(upstream.stats().chat_calls, calls);

    let removed = a
        .admin("invalidate", Some(json!({"tag": "replicas"})))
        .await;
    assert_eq!(removed["removed"], 1, "{removed}");
    for (name, r) in [("B", &b), ("C", &c)] {
        assert_eq!(
            outcome(&r.chat_no_store(question).await),
            "miss",
            "{name} honours A's invalidation (exact)"
        );
        assert_eq!(
            outcome(&r.chat_no_store(paraphrase).await),
            "miss",
            "{name} honours A's invalidation (semantic)"
        );
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// A replica stopped cleanly keeps its index with the events stream's position; started
/// again it loads that index and catches up from the stream (another replica's insert
/// and invalidation made meanwhile), instead of reading every entry again. Once the stream
/// no longer holds every event after the snapshot, the index is rebuilt instead.
#[tokio::test]
async fn a_restarted_replica_catches_up_from_its_snapshot() {
    if !model_available() {
        return;
    }
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let url = server.url();
    let upstream = MockUpstream::start().await.unwrap();
    let prefix = prefix();
    let a = Replica::start(&url, &prefix, &upstream).await;
    assert!(!a.from_snapshot);
    let france = "What is the capital of France?";
    assert_eq!(outcome(&a.chat(france).await), "miss");
    a.settle(france).await;
    let dir = a.stop().await;
    for f in ["index.snapshot", "index.snapshot.position.json"] {
        assert!(dir.path().join(f).is_file(), "{f} not written at stop");
    }

    // While A is down, B removes A's entry and stores another.
    let b = Replica::start(&url, &prefix, &upstream).await;
    let removed = b.admin("invalidate", Some(json!({"all": true}))).await;
    assert_eq!(removed["removed"], 1, "{removed}");
    let bread = "How do I bake sourdough bread?";
    assert_eq!(outcome(&b.chat(bread).await), "miss");
    b.settle(bread).await;

    let a = Replica::start_in(&url, &prefix, &upstream, IndexKind::Local, dir).await;
    assert!(a.from_snapshot, "A rebuilt its index instead of loading it");
    let calls = upstream.stats().chat_calls;
    // B's vector came from the stream (the snapshot predates it).
    assert_eq!(
        outcome(&a.chat_no_store("how to bake sourdough bread").await),
        "hit-semantic"
    );
    assert_eq!(upstream.stats().chat_calls, calls);
    // A's own entry, removed by B, is gone from A's index too.
    for q in [france, "what's the capital city of France"] {
        assert_eq!(outcome(&a.chat_no_store(q).await), "miss", "{q}");
    }
    let dir = a.stop().await;

    // The stream is trimmed past the snapshot (then written again): A must rebuild.
    server
        .command(&format!("XTRIM {prefix}:events MAXLEN 0"))
        .unwrap();
    let tea = "How do I brew green tea?";
    assert_eq!(outcome(&b.chat(tea).await), "miss");
    b.settle(tea).await;
    let a = Replica::start_in(&url, &prefix, &upstream, IndexKind::Local, dir).await;
    assert!(
        !a.from_snapshot,
        "A used a snapshot the stream no longer covers"
    );
    assert_eq!(
        outcome(&a.chat_no_store("how can I bake sourdough bread").await),
        "hit-semantic",
        "the rebuilt index holds the entries in Redis"
    );
    a.stop().await;
    b.stop().await;
}

/// The error budget's labels of two replicas add up in Redis: A and B each label too few
/// misses to certify a threshold (δ = 40% needs nine agreeing labels; they label four and
/// five), a replica started after them has all of them and serves a paraphrase. (Were each replica's whole state
/// saved over the other's, the third would start from one half.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_add_up_their_error_budget_labels() {
    if !model_available() {
        return;
    }
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let url = server.url();
    let upstream = MockUpstream::start().await.unwrap();
    for q in PARCEL {
        upstream.state().set_answer(q, PARCEL_ANSWER);
    }
    let prefix = prefix();
    let start = || async {
        let dir = tempfile::tempdir().unwrap();
        Replica::start_configured(&url, &prefix, &upstream, IndexKind::Local, dir, |c| {
            c.cache.max_false_hit_rate = Some(0.4);
        })
        .await
    };
    let labels = |r: &Replica| {
        let (client, base) = (r.client.clone(), r.base.clone());
        async move {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            sample(&text, "deja_budget_labels_total{agreed=\"true\"}").unwrap_or(0.0)
        }
    };
    let (a, b) = (start().await, start().await);
    // Each asks in turn, so every miss after the first has the one before as its
    // candidate (stored in Redis, followed by the other's index) and is labelled.
    let mut want = [0.0, 0.0];
    for (i, q) in PARCEL[..10].iter().enumerate() {
        let (r, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert_eq!(outcome(&r.chat(q).await), "miss", "{q}: served uncertified");
        r.settle(q).await;
        other.settle(q).await;
        if i > 0 {
            want[i % 2] += 1.0;
        }
        let mut got = 0.0;
        for _ in 0..300 {
            got = labels(r).await;
            if got >= want[i % 2] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(got, want[i % 2], "{q}: not labelled");
    }
    assert_eq!(want, [4.0, 5.0]);
    // Neither alone serves: each has four or five of the nine labels it needs.
    for r in [&a, &b] {
        assert_eq!(outcome(&r.chat_no_store(PARCEL[10]).await), "miss");
    }
    // A clean stop adds the labels still pending to Redis.
    a.stop().await;
    b.stop().await;
    let c = start().await;
    let calls = upstream.stats().chat_calls;
    assert_eq!(
        outcome(&c.chat_no_store(PARCEL[10]).await),
        "hit-semantic",
        "the labels of A and B did not add up"
    );
    assert_eq!(upstream.stats().chat_calls, calls);
    c.stop().await;
}

#[tokio::test]
async fn replicas_share_one_redis() {
    if !model_available() {
        return;
    }
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    replicas_share_entries(&server.url(), IndexKind::Local).await;
}

#[tokio::test]
async fn replicas_share_one_redis_cluster() {
    if !model_available() {
        return;
    }
    let Some(cluster) = RedisCluster::start_or_skip() else {
        return;
    };
    replicas_share_entries(&cluster.url(), IndexKind::Local).await;
}

/// The same on Redis Stack with the shared query-engine index (`--index redis-search`):
/// no replica loads or follows vectors; they all search the one index in Redis.
#[tokio::test]
async fn replicas_share_one_redis_stack_search_index() {
    if !model_available() {
        return;
    }
    let Some(server) = RedisServer::stack_or_skip() else {
        return;
    };
    replicas_share_entries(&server.url(), IndexKind::RedisSearch).await;
}

/// Redis killed during load: every request is still answered (bypassing the cache), the
/// bypasses are counted, and once Redis is back the cache works again without a restart.
#[tokio::test]
async fn redis_killed_during_load_fails_no_request_and_recovers() {
    if !model_available() {
        return;
    }
    let Some(mut server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let upstream = MockUpstream::start().await.unwrap();
    let replica = Replica::start(&server.url(), &prefix(), &upstream).await;
    replica.chat("What is the capital of France?").await;
    replica.settle("What is the capital of France?").await;

    // Load: 8 clients, each asking a cached and a fresh question in turn, while Redis is
    // killed after the first round.
    let replica = std::sync::Arc::new(replica);
    let rounds = 6;
    let mut statuses = Vec::new();
    for round in 0..rounds {
        if round == 1 {
            server.kill();
        }
        let mut tasks = Vec::new();
        for client in 0..8 {
            let r = replica.clone();
            tasks.push(tokio::spawn(async move {
                let cached = r.chat("What is the capital of France?").await.status();
                let fresh = r
                    .chat(&format!("Question {client} of round {round}?"))
                    .await
                    .status();
                [cached, fresh]
            }));
        }
        for t in tasks {
            statuses.extend(t.await.unwrap());
        }
    }
    let failed = statuses.iter().filter(|s| !s.is_success()).count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", statuses.len());

    // The stats pages answer with what the process knows, and say the store is away.
    let stats = replica.admin("stats", None).await;
    assert!(
        stats["entries"].is_null() && stats["counters"].is_null(),
        "{stats}"
    );
    let why = stats["store_error"].as_str().unwrap_or_default();
    assert!(why.contains("counting entries"), "{stats}");
    assert!(
        stats["ledger"]["totals"]["requests"].as_u64().unwrap() >= 96,
        "{stats}"
    );
    let dash = replica.admin("dashboard.json", None).await;
    assert!(dash["store"]["error"].is_string(), "{dash}");
    assert!(dash["store"]["counters"].is_null(), "{dash}");
    assert_eq!(dash["top_entries"], json!([]), "{dash}");

    // Redis returns (empty: the test server keeps no data on disk); the same replica
    // stores and serves again.
    server.restart().unwrap();
    let question = "Which payment methods do you accept?";
    let mut recovered = false;
    for _ in 0..300 {
        let r = replica.chat(question).await;
        assert!(r.status().is_success());
        if outcome(&r) == "hit-exact" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        recovered,
        "the cache never served a hit after Redis returned"
    );
    // The bypasses while Redis was away are counted (kept in memory until a flush to
    // Redis succeeds).
    let stats = replica.admin("stats", None).await;
    let bypasses = stats["counters"]["bypasses"].as_u64().unwrap();
    assert!(bypasses >= 8, "bypasses are counted: {stats}");
    std::sync::Arc::try_unwrap(replica)
        .ok()
        .expect("no request in flight")
        .stop()
        .await;
}
