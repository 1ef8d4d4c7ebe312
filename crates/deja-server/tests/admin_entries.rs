#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /admin/entries` (listing, search, paging) and invalidation by tenant, through a
//! real listener in front of the mock upstream. The embedder is the testkit's hash
//! embedder: these tests are about metadata, not similarity.

use std::collections::HashSet;
use std::sync::Arc;

use deja_core::{
    Answer, Cache, EntryLabels, ManualClock, NewEntry, PartitionKey, SemanticMode, Usage,
};
use deja_server::config::Config;
use deja_server::AppState;
use deja_testkit::conformance::{HashEmbedder, INDEX_DIM, INDEX_EMBEDDER};
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const TOKEN: &str = "admin-entries-token";

struct Server {
    base: String,
    cache: Cache,
    mock: MockUpstream,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        let mock = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = mock.base_url();
        config.admin.token = Some(TOKEN.into());
        tweak(&mut config);
        let store = Arc::new(deja_server::open_store(&config).unwrap());
        let index = Arc::new(deja_store_local::HnswIndex::new(
            INDEX_EMBEDDER,
            INDEX_DIM,
            deja_store_local::HnswParams::default(),
        ));
        let cache = Cache::new(
            store,
            index,
            Arc::new(HashEmbedder),
            Arc::new(ManualClock::new(1_000_000)),
            deja_server::cache_options(&config),
        )
        .unwrap();
        let state = AppState::new(config, cache.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(deja_server::serve_on(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            base,
            cache,
            mock,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    async fn get(&self, path_and_query: &str, token: Option<&str>) -> reqwest::Response {
        let mut rb = self
            .client
            .get(format!("{}/admin/{path_and_query}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.unwrap()
    }

    /// A page of `GET /admin/entries?<query>`, which must succeed.
    async fn page(&self, query: &str) -> Value {
        let r = self.get(&format!("entries?{query}"), Some(TOKEN)).await;
        assert_eq!(r.status(), 200, "{query}");
        r.json().await.unwrap()
    }

    /// Every entry `query` lists, page by page (`limit` each); checks that no page is
    /// longer than asked and that ids come in increasing order.
    async fn list_all(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit={limit}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let page = self.page(&q).await;
            let entries = page["entries"].as_array().unwrap();
            assert!(entries.len() <= limit);
            all.extend(entries.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let ids: Vec<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
        all
    }

    async fn invalidate(&self, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/admin/invalidate", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn insert(&self, prompt: &str, model: &str, namespace: &str, tags: &[&str]) {
        self.cache
            .insert_labelled(
                NewEntry {
                    partition: PartitionKey([3; 16]),
                    prompt: prompt.to_string(),
                    model: model.to_string(),
                    answer: Answer::Body(format!("answer to {prompt}").into_bytes()),
                    usage: Usage::default(),
                    semantic: SemanticMode::Allowed,
                    vector: None,
                    category: None,
                },
                EntryLabels {
                    namespace: Some(namespace.to_string()),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                },
            )
            .await
            .unwrap();
    }
}

async fn assert_bad_request(r: reqwest::Response, param: Option<&str>) {
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    if let Some(p) = param {
        assert_eq!(v["error"]["param"], p, "{v}");
    }
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn listing_needs_the_token_and_is_off_without_one() {
    let off = Server::start(|c| c.admin.token = None).await;
    assert_eq!(off.get("entries", Some(TOKEN)).await.status(), 404);
    off.stop().await;
    let s = Server::start(|_| {}).await;
    assert_eq!(s.get("entries", None).await.status(), 401);
    assert_eq!(s.get("entries", Some("wrong")).await.status(), 401);
    assert_eq!(s.get("entries?limit=0", None).await.status(), 401);
    let v = s.page("").await;
    assert_eq!(v, json!({"entries": [], "next_cursor": null}));
    assert_eq!(s.mock.stats().total_calls, 0);
    s.stop().await;
}

/// Pages of 7 while entries keep being inserted between pages: every entry that existed
/// before the first page is listed exactly once, in id order, and nothing twice.
#[tokio::test]
async fn paging_has_no_duplicates_or_gaps_while_entries_are_inserted() {
    let s = Server::start(|_| {}).await;
    for i in 0..150 {
        s.insert(&format!("question number {i}"), "m", "ns:a", &[])
            .await;
    }
    let before: HashSet<String> = ids(&s.list_all("", 1000).await).into_iter().collect();
    assert_eq!(before.len(), 150);

    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=7&cursor={c}"),
            None => "limit=7".to_string(),
        };
        let page = s.page(&q).await;
        seen.extend(ids(page["entries"].as_array().unwrap()));
        // New entries arrive between pages, with random ids before and after the cursor.
        for _ in 0..3 {
            s.insert(&format!("inserted while paging {added}"), "m", "ns:a", &[])
                .await;
            added += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was listed twice");
    assert!(before.is_subset(&unique), "an entry was skipped");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen);
    assert!(added > 60);
    s.stop().await;
}

#[tokio::test]
async fn filters_by_text_tag_model_namespace_and_tenant() {
    let s = Server::start(|_| {}).await;
    s.insert(
        "What is the Capital of France?",
        "gpt-a",
        "ns:geo",
        &["country:fr"],
    )
    .await;
    s.insert("capital of germany", "gpt-b", "ns:geo", &["country:de"])
        .await;
    s.insert(
        "How tall is the Eiffel tower",
        "gpt-a",
        "shared",
        &["country:fr"],
    )
    .await;
    s.insert(&"long prompt ".repeat(40), "gpt-a", "anonymous", &[])
        .await;
    let prompts = |entries: Vec<Value>| -> Vec<String> {
        let mut p: Vec<String> = entries
            .iter()
            .map(|e| e["prompt"].as_str().unwrap().to_string())
            .collect();
        p.sort();
        p
    };
    let cases: &[(&str, &[&str])] = &[
        (
            "q=CAPITAL",
            &["What is the Capital of France?", "capital of germany"],
        ),
        ("q=capital+of+ger", &["capital of germany"]),
        (
            "tag=country%3Afr",
            &[
                "How tall is the Eiffel tower",
                "What is the Capital of France?",
            ],
        ),
        ("model=gpt-b", &["capital of germany"]),
        (
            "namespace=geo",
            &["What is the Capital of France?", "capital of germany"],
        ),
        ("tenant=shared", &["How tall is the Eiffel tower"]),
        (
            "tenant=ns%3Ageo&q=france",
            &["What is the Capital of France?"],
        ),
        (
            "tag=country:fr&model=gpt-a&q=eiffel",
            &["How tall is the Eiffel tower"],
        ),
        ("q=nowhere", &[]),
        ("tag=none", &[]),
    ];
    for (query, want) in cases {
        // Paged by 1 and all at once: the same entries.
        assert_eq!(prompts(s.list_all(query, 1).await), *want, "{query}");
        assert_eq!(prompts(s.list_all(query, 1000).await), *want, "{query}");
    }
    let all = s.list_all("", 10).await;
    assert_eq!(all.len(), 4);
    let long = all.iter().find(|e| e["namespace"] == "anonymous").unwrap();
    assert_eq!(long["prompt"].as_str().unwrap().chars().count(), 200);
    let fr = all
        .iter()
        .find(|e| e["prompt"] == "What is the Capital of France?")
        .unwrap();
    assert_eq!(fr["model"], "gpt-a");
    assert_eq!(fr["tags"], json!(["country:fr"]));
    assert_eq!(fr["category"], "default");
    assert_eq!(fr["hit_count"], 0);
    assert_eq!(fr["created_at_ms"], 1_000_000);
    assert_eq!(fr["streamed"], false);
    let answer_len = "answer to What is the Capital of France?".len();
    assert_eq!(
        fr["size_bytes"].as_u64().unwrap() as usize,
        "What is the Capital of France?".len() + answer_len
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_listing_parameters_are_openai_shaped_400s() {
    let s = Server::start(|_| {}).await;
    let cases: &[(&str, Option<&str>)] = &[
        ("limit=0", Some("limit")),
        ("limit=1001", Some("limit")),
        ("limit=ten", Some("limit")),
        ("cursor=xyz", Some("cursor")),
        ("cursor=", Some("cursor")),
        ("colour=red", Some("colour")),
        ("tag=a&tag=b", Some("tag")),
        ("q=", Some("q")),
        ("namespace=a&tenant=shared", Some("tenant")),
        ("q=%zz", None),
    ];
    for (query, param) in cases {
        assert_bad_request(
            s.get(&format!("entries?{query}"), Some(TOKEN)).await,
            *param,
        )
        .await;
    }
    s.stop().await;
}

/// Embedding items carry their tenant and tags, so invalidation by namespace, tenant or tag
/// reaches them; and per-key tenants can be invalidated by their label.
#[tokio::test]
async fn embedding_items_are_labelled_and_tenants_can_be_invalidated() {
    let s = Server::start(|_| {}).await;
    let embed = |input: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let mut rb = s
            .client
            .post(format!("{}/v1/embeddings", s.base))
            .json(&json!({"model": "text-embedding-3-small", "input": [input]}));
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let r = embed(
        "hello",
        vec![
            ("x-deja-namespace", "team-1"),
            ("x-deja-tags", "doc:1, doc:2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    embed("world", vec![("authorization", "Bearer sk-user-1")])
        .await
        .unwrap();
    embed("again", vec![("authorization", "Bearer sk-user-2")])
        .await
        .unwrap();
    let all = s.list_all("", 10).await;
    assert_eq!(all.len(), 3);
    let hello = all.iter().find(|e| e["prompt"] == "text:hello").unwrap();
    // No credential: the anonymous tenant, narrowed by the namespace.
    assert_eq!(hello["namespace"], "anonymous/ns:team-1");
    assert_eq!(hello["tags"], json!(["doc:1", "doc:2"]));
    let world = all.iter().find(|e| e["prompt"] == "text:world").unwrap();
    let key_label = world["namespace"].as_str().unwrap().to_string();
    assert!(key_label.starts_with("key:"), "{key_label}");

    let removed = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["removed"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        removed(s.invalidate(json!({"tag": "doc:2"})).await).await,
        1
    );
    embed(
        "hello",
        vec![("x-deja-namespace", "team-1"), ("x-deja-tags", "doc:1")],
    )
    .await
    .unwrap();
    assert_eq!(
        removed(s.invalidate(json!({"namespace": "team-1"})).await).await,
        1
    );
    assert_eq!(
        removed(s.invalidate(json!({"tenant": key_label})).await).await,
        1
    );
    let left = s.list_all("", 10).await;
    assert_eq!(ids(&left).len(), 1);
    assert_eq!(left[0]["prompt"], "text:again");
    assert_bad_request(
        s.invalidate(json!({"tenant": "team-1"})).await,
        Some("tenant"),
    )
    .await;
    s.stop().await;
}

/// How long a listing page takes on a large store (`DEJA_LIST_BENCH_N` entries, default
/// 1,000,000): the first page, a page from a cursor in the middle, filtered pages, and a
/// prompt search. Run by hand: `cargo test --release -p deja-server --test admin_entries
/// -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn listing_pages_on_a_large_store() {
    use deja_core::{Entry, EntryId, EntryStore, ExactKey};
    use deja_server::admin::entries::{list, EntryFilter};
    let n: u64 = std::env::var("DEJA_LIST_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = deja_store_local::RedbStore::open(
        &dir.path().join("deja.redb"),
        deja_store_local::StoreDurability::Fast,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let partition = PartitionKey([5; 16]);
    let mut batch = Vec::with_capacity(1024);
    for i in 0..n {
        let prompt = format!("how do I configure feature {i} of product {}", i % 1000);
        batch.push(Entry {
            id: EntryId(rand_id(i)),
            exact_key: ExactKey::new(&partition, &prompt),
            partition,
            prompt,
            model: if i % 10 == 0 { "gpt-big" } else { "gpt-small" }.into(),
            answer: Answer::Body(vec![b'x'; 200]),
            usage: Usage::default(),
            created_at_ms: i,
            last_hit_ms: i,
            hit_count: 0,
            category: "default".into(),
            namespace: "ns:bench".into(),
            tags: vec![format!("product:{}", i % 1000)],
            embedder_id: String::new(),
            vector: Vec::new(),
            request: None,
        });
        if batch.len() == 1024 {
            store.put_many(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.put_many(&batch).await.unwrap();
    store.flush().await.unwrap();
    println!("stored {n} entries in {:.1?}", started.elapsed());
    let time = |what: &str, filter: EntryFilter, after: Option<EntryId>| {
        let store = &store;
        let what = what.to_string();
        async move {
            let t = std::time::Instant::now();
            let page = list(store, &filter, after, 100).await.unwrap();
            println!(
                "{what}: {} entries in {:.1?} (next cursor: {})",
                page.entries.len(),
                t.elapsed(),
                page.next_cursor.is_some()
            );
        }
    };
    time("first page", EntryFilter::default(), None).await;
    time(
        "page from the middle",
        EntryFilter::default(),
        Some(EntryId(u64::MAX / 2)),
    )
    .await;
    time(
        "model filter (10%)",
        EntryFilter {
            model: Some("gpt-big".into()),
            ..EntryFilter::default()
        },
        None,
    )
    .await;
    time(
        "tag filter (0.1%)",
        EntryFilter {
            tag: Some("product:7".into()),
            ..EntryFilter::default()
        },
        None,
    )
    .await;
    time(
        "prompt search (11% match)",
        EntryFilter {
            text: Some("of product 7".into()),
            ..EntryFilter::default()
        },
        None,
    )
    .await;
}

/// A well-spread id per index (a fixed permutation, so runs are comparable).
fn rand_id(i: u64) -> u64 {
    (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
