#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The proxy through a real listener, the real embedder and the embedded store, in front of
//! the mock upstream (the only simulated part), which counts its calls.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::Served;
use deja_core::{
    Counters, Embedder, Entry, EntryId, EntryMeta, EntryStore, ExactKey, PartitionKey, StoreError,
    SystemClock,
};
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

struct Proxy {
    base: String,
    mock: MockUpstream,
    client: reqwest::Client,
    served: Served,
    _dir: Arc<tempfile::TempDir>,
}

impl Proxy {
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::start_with(embedder, mock, dir, tweak).await
    }

    async fn start_with(
        embedder: Arc<dyn Embedder>,
        mock: MockUpstream,
        dir: Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> Proxy {
        Self::start_full(embedder, mock, dir, tweak, |s| s).await
    }

    async fn start_full(
        embedder: Arc<dyn Embedder>,
        mock: MockUpstream,
        dir: Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
        wrap_store: impl FnOnce(Arc<dyn EntryStore>) -> Arc<dyn EntryStore>,
    ) -> Proxy {
        let mut config = common::config(dir.path(), mock.base_url());
        tweak(&mut config);
        let served = Served::start_with(config, embedder, Arc::new(SystemClock), wrap_store).await;
        Proxy {
            base: served.base.clone(),
            mock,
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    /// Stops the server and waits until it released the store.
    async fn stop(mut self) -> (MockUpstream, Arc<tempfile::TempDir>) {
        self.served.stop().await;
        (self.mock, self._dir)
    }

    async fn chat(&self, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut rb = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body);
        if !headers.iter().any(|(k, _)| *k == "authorization") {
            rb = rb.header("authorization", "Bearer sk-test-a");
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    fn chat_calls(&self) -> u64 {
        self.mock.stats().chat_calls
    }
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

fn outcome(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-deja-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn answer(resp: reqwest::Response) -> String {
    let v: Value = resp.json().await.unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the background insert after a miss has landed (stores happen after the
/// response is sent).
async fn settle(p: &Proxy, body: Value) {
    for _ in 0..200 {
        let r = p
            .chat(body.clone(), &[("cache-control", "max-age=3600")])
            .await;
        if outcome(&r) == "hit-exact" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("entry never became visible");
}

#[tokio::test]
async fn exact_hit_makes_no_upstream_call() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p.chat(ask("What is the capital of France?"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "miss");
    let first = answer(r).await;
    assert!(first.contains("capital of France"), "{first}");
    settle(&p, ask("What is the capital of France?")).await;
    let calls = p.chat_calls();
    let r = p
        .chat(ask("  What is the capital   of France?\n"), &[])
        .await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(r.headers().get("x-deja-entry").is_some());
    assert_eq!(answer(r).await, first);
    assert_eq!(p.chat_calls(), calls, "a hit must not call upstream");
    p.stop().await;
}

#[tokio::test]
async fn paraphrase_is_a_semantic_hit() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let first = answer(p.chat(ask("How do I reset my password?"), &[]).await).await;
    settle(&p, ask("How do I reset my password?")).await;
    let calls = p.chat_calls();
    let r = p.chat(ask("how can I reset my password"), &[]).await;
    assert_eq!(outcome(&r), "hit-semantic");
    let sim: f32 = r.headers()["x-deja-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.9..1.0).contains(&sim), "{sim}");
    assert_eq!(answer(r).await, first);
    assert_eq!(p.chat_calls(), calls);
    // A request can raise the threshold above this pair's similarity.
    let r = p
        .chat(
            ask("how can I reset my password"),
            &[("x-deja-min-similarity", "0.9999")],
        )
        .await;
    assert_eq!(outcome(&r), "miss");
    p.stop().await;
}

#[tokio::test]
async fn different_model_system_prompt_or_earlier_turn_misses() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let base = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Name a prime number"}]});
    p.chat(base.clone(), &[]).await;
    settle(&p, base.clone()).await;
    let mut other_model = base.clone();
    other_model["model"] = json!("gpt-4o");
    let mut other_system = base.clone();
    other_system["messages"][0]["content"] = json!("You are verbose.");
    let mut other_turn = base.clone();
    other_turn["messages"][2]["content"] = json!("Hey there");
    let mut other_param = base.clone();
    other_param["temperature"] = json!(0.2);
    for (name, body) in [
        ("model", other_model),
        ("system", other_system),
        ("turn", other_turn),
        ("temperature", other_param),
    ] {
        let r = p.chat(body, &[]).await;
        assert_eq!(outcome(&r), "miss", "{name}");
    }
    // `stream` and `user` do not change the answer.
    let mut with_user = base.clone();
    with_user["user"] = json!("u-42");
    assert_eq!(outcome(&p.chat(with_user, &[]).await), "hit-exact");
    p.stop().await;
}

#[tokio::test]
async fn tenants_never_share_entries() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    p.chat(ask("What is 2+2?"), &[]).await;
    settle(&p, ask("What is 2+2?")).await;
    let r = p
        .chat(
            ask("What is 2+2?"),
            &[("authorization", "Bearer sk-test-b")],
        )
        .await;
    assert_eq!(
        outcome(&r),
        "miss",
        "tenant B must not see tenant A's entry"
    );
    let r = p
        .chat(ask("What is 2+2?"), &[("x-deja-namespace", "team-x")])
        .await;
    assert_eq!(outcome(&r), "miss");
    p.stop().await;
}

#[tokio::test]
async fn upstream_errors_pass_through_and_are_not_cached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    for code in ["500", "429"] {
        let prompt = format!("Tell me a joke [mock:{code}]");
        let r = p.chat(ask(&prompt), &[]).await;
        assert_eq!(r.status().as_str(), code);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let calls = p.chat_calls();
        let r = p.chat(ask(&prompt), &[]).await;
        assert_eq!(r.status().as_str(), code);
        assert_eq!(
            p.chat_calls(),
            calls + 1,
            "an error must not be served from cache"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn streaming_miss_then_replay_and_cut_streams_are_not_cached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let mut body = ask("Stream me a story about a fox");
    body["stream"] = json!(true);
    let r = p.chat(body.clone(), &[]).await;
    assert_eq!(outcome(&r), "miss");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    settle(&p, body.clone()).await;
    let calls = p.chat_calls();
    let r = p.chat(body.clone(), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    let replay = r.text().await.unwrap();
    assert!(replay.contains("fox") && replay.trim_end().ends_with("data: [DONE]"));
    // The streamed entry also answers a non-streamed request.
    let r = p.chat(ask("Stream me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(answer(r).await.contains("story about a fox"));
    assert_eq!(p.chat_calls(), calls);

    // A stream the upstream cuts is delivered as an error and never stored.
    let mut cut = ask("Another story, cut short [mock:cut=2]");
    cut["stream"] = json!(true);
    let r = p.chat(cut.clone(), &[]).await;
    assert!(
        r.text().await.is_err(),
        "the client must see the stream break"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = p.chat_calls();
    let r = p.chat(cut, &[]).await;
    assert_ne!(outcome(&r), "hit-exact");
    let _ = r.text().await;
    assert_eq!(p.chat_calls(), calls + 1);
    p.stop().await;
}

#[tokio::test]
async fn streaming_miss_delivers_first_chunk_before_upstream_finishes() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let mut body = ask("Count slowly from one to ten please");
    body["stream"] = json!(true);
    let started = Instant::now();
    let mut r = p.chat(body, &[("x-mock-chunk-delay-ms", "300")]).await;
    let first = r.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(!first.is_empty());
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.push(c);
    }
    let total = started.elapsed();
    assert!(!rest.is_empty(), "more chunks follow the first");
    assert!(
        first_at + Duration::from_millis(600) < total,
        "first chunk at {first_at:?}, stream done at {total:?}: the stream was buffered"
    );
    p.stop().await;
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_upstream_call() {
    let p = Arc::new(Proxy::start(need_model!(), |_| {}).await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move {
            let r = p
                .chat(
                    ask("Explain coalescing in one line"),
                    &[("x-mock-fault", "slow=400")],
                )
                .await;
            assert_eq!(r.status(), 200);
            answer(r).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(p.chat_calls(), 1);
    let p = Arc::try_unwrap(p).ok().unwrap();
    p.stop().await;
}

#[tokio::test]
async fn entries_survive_a_restart() {
    let embedder = need_model!();
    let p = Proxy::start(embedder.clone(), |_| {}).await;
    let first = answer(
        p.chat(ask("What is the boiling point of water?"), &[])
            .await,
    )
    .await;
    settle(&p, ask("What is the boiling point of water?")).await;
    let (mock, dir) = p.stop().await;
    let p = Proxy::start_with(embedder, mock, dir, |_| {}).await;
    let calls = p.chat_calls();
    let r = p
        .chat(ask("What is the boiling point of water?"), &[])
        .await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(answer(r).await, first);
    let r = p.chat(ask("what's the boiling point of water"), &[]).await;
    assert_eq!(outcome(&r), "hit-semantic", "the index is rebuilt at start");
    assert_eq!(p.chat_calls(), calls);
    p.stop().await;
}

#[tokio::test]
async fn cache_control_no_store_no_cache_and_max_age() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let q = ask("What is the speed of light?");
    p.chat(q.clone(), &[("cache-control", "no-store")]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        outcome(&p.chat(q.clone(), &[]).await),
        "miss",
        "no-store stored nothing"
    );
    settle(&p, q.clone()).await;
    let calls = p.chat_calls();
    let r = p.chat(q.clone(), &[("cache-control", "no-cache")]).await;
    assert_eq!(outcome(&r), "bypass");
    assert_eq!(p.chat_calls(), calls + 1, "no-cache goes upstream");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = p.chat(q.clone(), &[("cache-control", "max-age=1")]).await;
    assert_eq!(
        outcome(&r),
        "miss",
        "an entry older than max-age is not served"
    );
    p.stop().await;
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_4xx() {
    let p = Proxy::start(need_model!(), |c| c.limits.max_body_bytes = 4096).await;
    let url = format!("{}/v1/chat/completions", p.base);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed json", b"{\"model\": ".to_vec(), 400),
        (
            "wrong type",
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#
                .to_vec(),
            400,
        ),
        ("missing messages", br#"{"model":"m"}"#.to_vec(), 400),
        (
            "empty messages",
            br#"{"model":"m","messages":[]}"#.to_vec(),
            400,
        ),
        (
            "invalid utf-8",
            b"{\"model\":\"m\xff\",\"messages\":[]}".to_vec(),
            400,
        ),
        (
            "too large",
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(5000)
            )
            .into_bytes(),
            413,
        ),
    ];
    for (name, body, status) in cases {
        let r = p
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        let v: Value = r.json().await.unwrap();
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {v}"
        );
        assert!(err["type"].is_string(), "{name}: {v}");
        assert!(
            err.get("param").is_some() && err.get("code").is_some(),
            "{name}: {v}"
        );
    }
    assert_eq!(p.chat_calls(), 0, "bad input never reaches the upstream");
    let r = p
        .client
        .post(&url)
        .header("cache-control", "max-age=soon")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    p.stop().await;
}

#[tokio::test]
async fn embeddings_cache_sends_only_misses_upstream() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let url = format!("{}/v1/embeddings", p.base);
    let post = |body: Value| {
        p.client
            .post(&url)
            .header("authorization", "Bearer sk-test-a")
            .json(&body)
            .send()
    };
    let r = post(json!({"model": "e", "input": ["a", "b"]}))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "miss");
    let v1: Value = r.json().await.unwrap();
    assert_eq!(p.mock.stats().embedding_items, 2);
    let r = post(json!({"model": "e", "input": ["b", "c", "a", "c"]}))
        .await
        .unwrap();
    let v2: Value = r.json().await.unwrap();
    let s = p.mock.stats();
    assert_eq!(s.embedding_items, 3, "only 'c' went upstream, once");
    assert_eq!(s.embedding_calls, 2);
    assert_eq!(v2["data"][0]["embedding"], v1["data"][1]["embedding"]);
    assert_eq!(v2["data"][2]["embedding"], v1["data"][0]["embedding"]);
    assert_eq!(v2["data"][1]["embedding"], v2["data"][3]["embedding"]);
    let idx: Vec<u64> = v2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
    let r = post(json!({"model": "e", "input": ["a", "b"]}))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(p.mock.stats().embedding_calls, 2);
    // base64 comes back as little-endian float32 of the same vector.
    let r = post(json!({"model": "e", "input": "a", "encoding_format": "base64"}))
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want: Vec<f32> = v1["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats, want);
    // Another model or dimensions is another entry.
    post(json!({"model": "e2", "input": ["a"]})).await.unwrap();
    post(json!({"model": "e", "input": ["a"], "dimensions": 8}))
        .await
        .unwrap();
    assert_eq!(p.mock.stats().embedding_calls, 4);
    p.stop().await;
}

#[tokio::test]
async fn other_paths_pass_through_and_health_answers() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p
        .client
        .get(format!("{}/v1/models", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(p.mock.stats().other_calls, 1);
    let r = p
        .client
        .get(format!("{}/health", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.stop().await;
}

/// A store that fails every call while `failing` is set, to check that cache faults never
/// fail requests.
struct FlakyStore {
    inner: Arc<dyn EntryStore>,
    failing: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Backend {
                backend: "flaky",
                source: "injected fault".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EntryStore for FlakyStore {
    async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        self.inner.get_exact(key).await
    }
    async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
        self.check()?;
        self.inner.put(entry).await
    }
    async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        self.inner.remove(id).await
    }
    async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_hit(id, at_ms).await
    }
    async fn scan_vectors(
        &self,
        visit: &mut (dyn for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]) + Send),
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.scan_vectors(visit).await
    }
    async fn len(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.len().await
    }
    async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.check()?;
        self.inner.ids_with_tag(tag).await
    }
    async fn scan_meta(
        &self,
        visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.scan_meta(visit).await
    }
    async fn remove_many(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
        self.check()?;
        self.inner.remove_many(ids).await
    }
    async fn add_counters(&self, delta: &Counters) -> Result<(), StoreError> {
        self.check()?;
        self.inner.add_counters(delta).await
    }
    async fn counters(&self) -> Result<Counters, StoreError> {
        self.check()?;
        self.inner.counters().await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.flush().await
    }
}

#[tokio::test]
async fn a_failing_store_bypasses_and_never_fails_a_request() {
    let embedder = need_model!();
    let flaky: Arc<std::sync::Mutex<Option<Arc<FlakyStore>>>> = Arc::default();
    let slot = flaky.clone();
    let p = Proxy::start_full(
        embedder,
        MockUpstream::start().await.unwrap(),
        Arc::new(tempfile::tempdir().unwrap()),
        |_| {},
        move |inner| {
            let s = Arc::new(FlakyStore {
                inner,
                failing: AtomicBool::new(false),
            });
            *slot.lock().unwrap() = Some(s.clone());
            s
        },
    )
    .await;
    let store = flaky.lock().unwrap().clone().unwrap();
    let q = ask("Is the store healthy?");
    p.chat(q.clone(), &[]).await;
    settle(&p, q.clone()).await;
    store.failing.store(true, Ordering::SeqCst);
    for body in [q.clone(), ask("A question never seen before")] {
        let calls = p.chat_calls();
        let r = p.chat(body, &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(outcome(&r), "bypass");
        assert_eq!(r.headers()["x-deja-bypass-reason"], "store-error");
        assert!(answer(r).await.starts_with("deja-mock answer to:"));
        assert_eq!(p.chat_calls(), calls + 1, "a bypass goes upstream");
    }
    let r = p
        .client
        .post(format!("{}/v1/embeddings", p.base))
        .json(&json!({"model": "e", "input": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "bypass");
    // The store recovers, and so does the cache, without a restart.
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(outcome(&p.chat(q, &[]).await), "hit-exact");
    p.stop().await;
}

#[tokio::test]
async fn categories_classify_bypass_and_show_in_headers() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    // A transaction (keyword rule, in any of the four languages) is never cached.
    for text in [
        "Please transfer money to my landlord",
        "Je veux faire un virement de 50 euros",
        "帮我转账一百元",
        "Ik wil geld overmaken naar mijn zus",
    ] {
        let r = p.chat(ask(text), &[]).await;
        assert_eq!(outcome(&r), "bypass", "{text}");
        assert_eq!(r.headers()["x-deja-bypass-reason"], "category", "{text}");
        let calls = p.chat_calls();
        let _ = r.text().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(outcome(&p.chat(ask(text), &[]).await), "bypass");
        assert_eq!(
            p.chat_calls(),
            calls + 1,
            "{text}: never stored, never served"
        );
    }
    // An explicit category applies and is recorded with the entry.
    let q = ask("What are the shipping costs to Belgium?");
    let r = p.chat(q.clone(), &[("x-deja-category", "faq")]).await;
    assert_eq!(outcome(&r), "miss");
    assert_eq!(r.headers()["x-deja-category"], "faq");
    settle(&p, q.clone()).await;
    let r = p.chat(q, &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(r.headers()["x-deja-category"], "faq");
    // An unknown category is a client error.
    let r = p.chat(ask("hi"), &[("x-deja-category", "nope")]).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("faq"),
        "{body}"
    );
    p.stop().await;
}

#[tokio::test]
async fn never_cache_rules_bypass_personal_data_and_time_sensitive_prompts() {
    let p = Proxy::start(need_model!(), |c| {
        c.rules.patterns.push(deja_core::rules::NamedPattern {
            name: "classified".into(),
            regex: "(?i)classified".into(),
            applies_to: deja_core::rules::AppliesTo::Answer,
        });
    })
    .await;
    for (text, reason) in [
        (
            "Write to jane.doe@example.com about the delay",
            "personal-data:email",
        ),
        (
            "Is my card 4111 1111 1111 1111 still valid?",
            "personal-data:payment-card",
        ),
        ("What is the weather today?", "time-sensitive"),
        ("Quelles sont les dernières nouvelles ?", "time-sensitive"),
    ] {
        for _ in 0..2 {
            let calls = p.chat_calls();
            let r = p.chat(ask(text), &[]).await;
            assert_eq!(r.status(), 200, "{text}");
            assert_eq!(outcome(&r), "bypass", "{text}");
            assert_eq!(r.headers()["x-deja-bypass-reason"], reason, "{text}");
            let _ = r.text().await;
            assert_eq!(p.chat_calls(), calls + 1, "{text}: always upstream");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    // An answer that matches an answer rule is served but not stored.
    let q = ask("Tell me about the classified plan");
    let r = p.chat(q.clone(), &[]).await;
    assert_eq!(outcome(&r), "miss");
    let _ = r.text().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = p.chat_calls();
    assert_eq!(outcome(&p.chat(q, &[]).await), "miss");
    assert_eq!(p.chat_calls(), calls + 1);
    p.stop().await;
}

const ADMIN_TOKEN: &str = "admin-test-token";

impl Proxy {
    /// An admin request; `token` is sent as a bearer token when given.
    async fn admin(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let url = format!("{}/admin/{path}", self.base);
        let mut rb = match &body {
            Some(b) => self.client.post(url).json(b),
            None => self.client.get(url),
        };
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        rb.send().await.unwrap()
    }

    /// `POST /admin/invalidate` with the test token; the number removed.
    async fn invalidate(&self, body: Value) -> u64 {
        let r = self
            .admin("invalidate", Some(ADMIN_TOKEN), Some(body))
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["removed"].as_u64().unwrap()
    }
}

fn with_admin(c: &mut Config) {
    c.admin.token = Some(ADMIN_TOKEN.into());
}

async fn assert_openai_error(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v
}

#[tokio::test]
async fn admin_api_is_off_without_a_token_and_needs_the_right_one() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    for path in ["stats", "config", "entries/00000000000000ff", "nope"] {
        assert_openai_error(p.admin(path, Some("anything"), None).await, 404).await;
    }
    assert_openai_error(
        p.admin("invalidate", None, Some(json!({"all": true})))
            .await,
        404,
    )
    .await;
    assert_eq!(
        p.mock.stats().other_calls,
        0,
        "admin paths never reach the upstream"
    );
    p.stop().await;

    let p = Proxy::start(need_model!(), with_admin).await;
    for token in [
        None,
        Some("wrong"),
        Some("admin-test-toke"),
        Some("admin-test-token2"),
    ] {
        let v = assert_openai_error(p.admin("stats", token, None).await, 401).await;
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_openai_error(
            p.admin("invalidate", token, Some(json!({"all": true})))
                .await,
            401,
        )
        .await;
    }
    // Another scheme carrying the right token is refused too.
    let r = p
        .client
        .get(format!("{}/admin/stats", p.base))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        p.admin("stats", Some(ADMIN_TOKEN), None).await.status(),
        200
    );
    assert_openai_error(p.admin("nope", Some(ADMIN_TOKEN), None).await, 404).await;
    assert_eq!(p.mock.stats().other_calls, 0);
    p.stop().await;
}

#[tokio::test]
async fn invalidating_a_tag_removes_exactly_the_tagged_entries() {
    let p = Proxy::start(need_model!(), |c| {
        with_admin(c);
        // Only the default category, so the threshold below applies to every prompt.
        c.categories.clear();
        c.cache.min_similarity = 0.9;
    })
    .await;
    let returns = "What is your return policy for shoes?";
    let asks = [
        (returns, "product:123, policy:returns"),
        ("How long does delivery to Spain take?", "product:123"),
        ("Which payment methods do you accept?", "policy:payments"),
        ("Do you have a store in Amsterdam?", ""),
    ];
    for (text, tags) in asks {
        let r = p.chat(ask(text), &[("x-deja-tags", tags)]).await;
        assert_eq!(outcome(&r), "miss", "{text}");
        settle(&p, ask(text)).await;
    }
    // A paraphrase is served before the invalidation...
    let paraphrase = "what is your return policy for shoes";
    assert_eq!(outcome(&p.chat(ask(paraphrase), &[]).await), "hit-semantic");
    assert_eq!(p.invalidate(json!({"tag": "product:123"})).await, 2);
    // ...and neither semantically nor exactly afterwards.
    assert_eq!(
        outcome(
            &p.chat(ask(paraphrase), &[("cache-control", "no-store")])
                .await
        ),
        "miss"
    );
    for (text, tags) in asks {
        let want = if tags.contains("product:123") {
            "miss"
        } else {
            "hit-exact"
        };
        let r = p.chat(ask(text), &[("cache-control", "no-store")]).await;
        assert_eq!(outcome(&r), want, "{text}");
    }
    assert_eq!(p.invalidate(json!({"tag": "product:123"})).await, 0);
    assert_eq!(p.invalidate(json!({"tag": "policy:payments"})).await, 1);
    // Bad tags are a client error in the OpenAI shape.
    for bad in ["a,,b", &"x".repeat(129)] {
        let r = p.chat(ask("anything"), &[("x-deja-tags", bad)]).await;
        let v = assert_openai_error(r, 400).await;
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("x-deja-tags"),
            "{v}"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn invalidate_by_model_namespace_id_and_all_and_inspect_entries() {
    let p = Proxy::start(need_model!(), with_admin).await;
    let q = "Name three primary colours";
    let mut other_model = ask(q);
    other_model["model"] = json!("gpt-4o");
    let team = [("x-deja-namespace", "team-1")];
    p.chat(ask(q), &[("x-deja-tags", "colours")]).await;
    settle(&p, ask(q)).await;
    p.chat(other_model.clone(), &[]).await;
    settle(&p, other_model.clone()).await;
    p.chat(ask(q), &team).await;
    for _ in 0..200 {
        if outcome(&p.chat(ask(q), &team).await) == "hit-exact" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The entry as JSON: labels recorded, no vector.
    let r = p.chat(ask(q), &[("cache-control", "no-store")]).await;
    assert_eq!(outcome(&r), "hit-exact");
    let id = r.headers()["x-deja-entry"].to_str().unwrap().to_string();
    let r = p
        .admin(&format!("entries/{id}"), Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["prompt"], q);
    assert_eq!(e["model"], "gpt-4o-mini");
    assert_eq!(e["tags"], json!(["colours"]));
    assert!(e["namespace"].as_str().unwrap().starts_with("key:"), "{e}");
    assert!(e["answer"]["body"].as_str().unwrap().contains(q), "{e}");
    assert!(e["usage"]["prompt_tokens"].is_u64());
    assert!(e.get("vector").is_none());
    assert_openai_error(p.admin("entries/zz", Some(ADMIN_TOKEN), None).await, 400).await;

    assert_eq!(p.invalidate(json!({"model": "gpt-4o"})).await, 1);
    assert_eq!(
        outcome(&p.chat(other_model, &[("cache-control", "no-store")]).await),
        "miss"
    );
    assert_eq!(p.invalidate(json!({"namespace": "team-1"})).await, 1);
    assert_eq!(
        outcome(
            &p.chat(ask(q), &[("cache-control", "no-store"), team[0]])
                .await
        ),
        "miss"
    );
    assert_eq!(
        outcome(&p.chat(ask(q), &[("cache-control", "no-store")]).await),
        "hit-exact"
    );
    assert_eq!(p.invalidate(json!({"id": id})).await, 1);
    assert_openai_error(
        p.admin(&format!("entries/{id}"), Some(ADMIN_TOKEN), None)
            .await,
        404,
    )
    .await;
    assert_eq!(outcome(&p.chat(ask(q), &[]).await), "miss");
    settle(&p, ask(q)).await;
    assert_eq!(p.invalidate(json!({"older_than_secs": 3600})).await, 0);
    assert_eq!(p.invalidate(json!({"all": true})).await, 1);
    assert_eq!(
        outcome(&p.chat(ask(q), &[("cache-control", "no-store")]).await),
        "miss"
    );
    for bad in [
        json!({}),
        json!({"tag": "a", "model": "b"}),
        json!({"all": false}),
        json!({"id": "12"}),
    ] {
        let r = p.admin("invalidate", Some(ADMIN_TOKEN), Some(bad)).await;
        assert_openai_error(r, 400).await;
    }
    p.stop().await;
}

#[tokio::test]
async fn admin_stats_and_redacted_config() {
    let p = Proxy::start(need_model!(), |c| {
        with_admin(c);
        c.upstream.api_key = Some("sk-upstream-secret".into());
    })
    .await;
    let q = ask("How many legs does a spider have?");
    p.chat(q.clone(), &[]).await;
    settle(&p, q.clone()).await;
    p.chat(q, &[]).await;
    let r = p.admin("stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["entries"], 1);
    let c = &v["counters"];
    assert!(c["exact_hits"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(c["misses"], 1, "{v}");
    for field in [
        "semantic_hits",
        "bypasses",
        "upstream_calls",
        "prompt_tokens_saved",
        "completion_tokens_saved",
        "embedding_hits",
        "embedding_misses",
        "verification_rejects",
    ] {
        assert!(c[field].is_u64(), "{field}: {v}");
    }
    let rate = v["hit_rate"].as_f64().unwrap();
    assert!(rate > 0.5 && rate < 1.0, "{v}");

    let r = p.admin("config", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-upstream-secret"), "{text}");
    assert!(!text.contains(ADMIN_TOKEN), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["upstream"]["api_key"], "***");
    assert_eq!(v["admin"]["token"], "***");
    assert_eq!(v["upstream"]["base_url"], p.mock.base_url());
    assert!(v["cache"]["min_similarity"].is_number());
    p.stop().await;
}

impl Proxy {
    /// `GET /admin/export` with the test token: the JSON lines.
    async fn export(&self) -> String {
        let r = self.admin("export", Some(ADMIN_TOKEN), None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        r.text().await.unwrap()
    }

    /// `POST /admin/import` with the test token and these JSON lines.
    async fn import(&self, lines: String) -> reqwest::Response {
        self.client
            .post(format!("{}/admin/import", self.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(lines)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn export_then_import_restores_entries_exactly_and_they_are_served() {
    let setup = |c: &mut Config| {
        with_admin(c);
        c.categories.clear();
        c.cache.min_similarity = 0.9;
    };
    let p = Proxy::start(need_model!(), setup).await;
    let returns = "What is your return policy for shoes?";
    let asks = [
        (
            returns,
            vec![("x-deja-tags", "product:123, policy:returns")],
        ),
        (
            "How long does delivery to Spain take?",
            vec![("x-deja-namespace", "team-1")],
        ),
        ("Which payment methods do you accept?", vec![]),
    ];
    for (text, headers) in &asks {
        assert_eq!(outcome(&p.chat(ask(text), headers).await), "miss");
    }
    settle(&p, ask(returns)).await;
    for (text, headers) in &asks {
        for _ in 0..200 {
            let mut h = headers.clone();
            h.push(("cache-control", "max-age=3600"));
            if outcome(&p.chat(ask(text), &h).await) == "hit-exact" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let first = p.export().await;
    assert_eq!(first.lines().count(), 3, "{first}");
    let line: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    for field in ["id", "partition", "exact_key", "vector", "embedder_id"] {
        assert!(
            line[field].as_str().is_some_and(|s| !s.is_empty()),
            "{line}"
        );
    }
    assert!(line["answer"]["body"].is_string(), "{line}");
    p.stop().await;

    let q = Proxy::start(need_model!(), setup).await;
    let r = q.import(first.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"imported": 3}));
    assert_eq!(q.export().await, first, "a second export equals the first");
    let calls = q.chat_calls();
    for (text, headers) in &asks {
        assert_eq!(outcome(&q.chat(ask(text), headers).await), "hit-exact");
    }
    let paraphrase = "what is your return policy for shoes";
    assert_eq!(outcome(&q.chat(ask(paraphrase), &[]).await), "hit-semantic");
    assert_eq!(q.chat_calls(), calls, "hits make no upstream call");
    // Imported tags and namespaces are invalidated like any others.
    assert_eq!(q.invalidate(json!({"tag": "product:123"})).await, 1);
    assert_eq!(q.invalidate(json!({"namespace": "team-1"})).await, 1);
    q.stop().await;
}

#[tokio::test]
async fn import_refuses_a_bad_line_by_number_keeping_the_lines_before() {
    let p = Proxy::start(need_model!(), with_admin).await;
    let q = ask("How many legs does a spider have?");
    p.chat(q.clone(), &[]).await;
    settle(&p, q.clone()).await;
    let good = p.export().await;
    assert_eq!(p.invalidate(json!({"all": true})).await, 1);
    let mut wrong_key: Value = serde_json::from_str(good.trim()).unwrap();
    wrong_key["prompt"] = json!("another prompt");
    let cases = [
        format!("{good}not json\n"),
        format!("{good}\n{wrong_key}\n"),
        format!("{good}{{\"id\": \"00000000000000ff\"}}"),
    ];
    for (body, bad_line) in cases.into_iter().zip([2, 3, 2]) {
        let v = assert_openai_error(p.import(body).await, 400).await;
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("line {bad_line}:")),
            "{message}"
        );
        assert!(
            message.contains("1 entries before it were imported"),
            "{message}"
        );
        // The good first line was stored whole and is served.
        let r = p.chat(q.clone(), &[("cache-control", "no-store")]).await;
        assert_eq!(outcome(&r), "hit-exact");
        assert_eq!(p.invalidate(json!({"all": true})).await, 1);
    }
    assert_openai_error(
        p.client
            .post(format!("{}/admin/import", p.base))
            .body(good)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    p.stop().await;
}

#[tokio::test]
async fn strict_durability_stores_before_the_response_completes() {
    let p = Proxy::start(need_model!(), |c| {
        c.store.durability = deja_server::config::Durability::Strict;
    })
    .await;
    let q = ask("Which planet is the largest?");
    assert_eq!(outcome(&p.chat(q.clone(), &[]).await), "miss");
    // No settling: the answer was durable before the response was sent.
    assert_eq!(outcome(&p.chat(q, &[]).await), "hit-exact");
    let mut s = ask("Stream the names of three rivers");
    s["stream"] = json!(true);
    let r = p.chat(s.clone(), &[]).await;
    assert_eq!(outcome(&r), "miss");
    assert!(r.text().await.unwrap().trim_end().ends_with("data: [DONE]"));
    let r = p.chat(s, &[]).await;
    assert_eq!(
        outcome(&r),
        "hit-exact",
        "stored before the client saw [DONE]"
    );
    let _ = r.text().await;
    p.stop().await;
}
