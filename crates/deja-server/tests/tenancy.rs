#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks on the tenant boundary and on what gets stored, through the real server, the
//! real embedder and the embedded store: each would be served from someone else's entries,
//! or store what is not an answer, on a proxy that got it wrong. The upstream is the mock
//! (which counts calls), or a recording upstream where a test needs to see what arrived.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::IntoResponse;
use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_server::tenant::{key_hash, SharedNamespace};
use deja_testkit::mock_upstream::MockUpstream;
use parking_lot::Mutex;
use serde_json::{json, Value};

struct Proxy {
    base: String,
    client: reqwest::Client,
    served: Served,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(
        embedder: Arc<dyn Embedder>,
        upstream: String,
        tweak: impl FnOnce(&mut Config),
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), upstream);
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    /// Asks `text` at `path_and_query` with exactly these headers (no default credential).
    async fn ask_at(&self, path_and_query: &str, text: &str, headers: &[(&str, &str)]) -> Asked {
        let mut rb = self
            .client
            .post(format!("{}{path_and_query}", self.base))
            .json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}),
            );
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let outcome = resp
            .headers()
            .get("x-deja-cache")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Asked {
            status,
            outcome,
            body,
        }
    }

    async fn ask(&self, text: &str, headers: &[(&str, &str)]) -> Asked {
        self.ask_at("/v1/chat/completions", text, headers).await
    }

    /// Asks until the answer stored after a miss is served exactly (stores land after the
    /// response); bounded, so a store that never happens fails the test.
    async fn settle(&self, text: &str, headers: &[(&str, &str)]) {
        self.settle_at("/v1/chat/completions", text, headers).await
    }

    async fn settle_at(&self, path_and_query: &str, text: &str, headers: &[(&str, &str)]) {
        for _ in 0..200 {
            if self.ask_at(path_and_query, text, headers).await.outcome == "hit-exact" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{text:?} was never stored");
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }
}

#[derive(Debug)]
struct Asked {
    status: u16,
    outcome: String,
    body: Value,
}

/// An upstream that records every request's method, path and query, and answers each with
/// the body its test set (a 200).
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    body: Arc<Mutex<Value>>,
    base: String,
}

impl Recorder {
    async fn start(body: Value) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(Mutex::new(body));
        let (s, b) = (seen.clone(), body.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (s, b) = (s.clone(), b.clone());
            async move {
                s.lock().push(format!("{} {}", req.method(), req.uri()));
                axum::Json(b.lock().clone()).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { seen, body, base }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().clone()
    }
}

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

/// Finding 1: `x-deja-namespace` used to replace the tenant, so anyone naming a namespace
/// read its entries with a bogus key or none, exactly or by paraphrase.
#[tokio::test]
async fn naming_a_namespace_does_not_reach_another_credentials_entries() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    let p = Proxy::start(embedder, mock.base_url(), |_| {}).await;
    let owner = [
        ("authorization", "Bearer sk-A"),
        ("x-deja-namespace", "acme"),
    ];
    let question = "How do I export my invoices as PDF?";
    assert_eq!(p.ask(question, &owner).await.outcome, "miss");
    p.settle(question, &owner).await;
    let calls = mock.stats().chat_calls;

    // The attackers store nothing (`no-store`), so any hit could only be acme's entry.
    let ns = ("x-deja-namespace", "acme");
    let no_store = ("cache-control", "no-store");
    for (who, headers) in [
        ("no key", vec![ns, no_store]),
        (
            "a bogus key",
            vec![("authorization", "Bearer sk-bogus"), ns, no_store],
        ),
    ] {
        for text in [question, "How can I export my invoices as PDF?"] {
            let got = p.ask(text, &headers).await;
            assert_eq!(got.status, 200, "{who}: {got:?}");
            assert!(
                !got.outcome.starts_with("hit"),
                "{who} read acme's entry for {text:?}: {got:?}"
            );
        }
    }
    // Each of those went upstream; the owner is still served.
    assert_eq!(mock.stats().chat_calls, calls + 4);
    assert_eq!(p.ask(question, &owner).await.outcome, "hit-exact");
    // The namespace narrows the owner's own tenant: the same key without it is apart too.
    let same_key_no_ns = p.ask(question, &[("authorization", "Bearer sk-A")]).await;
    assert_eq!(same_key_no_ns.outcome, "miss");
    p.stop().await;
}

/// Finding 3: Azure-style `api-key` (and `x-api-key`, `x-goog-api-key` on OpenAI routes)
/// was not read, so every such client shared the `anonymous` tenant.
#[tokio::test]
async fn every_credential_header_separates_tenants() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    let p = Proxy::start(embedder, mock.base_url(), |_| {}).await;
    let question = "What is the boiling point of water at sea level?";
    for (i, header) in ["api-key", "x-api-key", "x-goog-api-key"]
        .into_iter()
        .enumerate()
    {
        let (a, b) = (format!("{header}-A"), format!("{header}-B"));
        p.settle(question, &[(header, &a)]).await;
        let other = p.ask(question, &[(header, &b)]).await;
        assert_eq!(other.outcome, "miss", "{header}: key B read key A's entry");
        if i == 0 {
            let anonymous = p.ask(question, &[]).await;
            assert_eq!(anonymous.outcome, "miss", "no key read {header}'s entry");
        }
    }
    // Google's `?key=` is a credential too.
    let q = "/v1/chat/completions?key=g-A";
    p.settle_at(q, question, &[]).await;
    let other = p
        .ask_at("/v1/chat/completions?key=g-B", question, &[])
        .await;
    assert_eq!(other.outcome, "miss", "?key=g-B read ?key=g-A's entry");
    p.stop().await;
}

/// A configured shared namespace admits the keys it lists (by hash) or its token; anyone
/// else naming it stays in their own tenant.
#[tokio::test]
async fn a_shared_namespace_admits_only_its_keys_and_token() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    let p = Proxy::start(embedder, mock.base_url(), |c| {
        c.namespaces.insert(
            "support".into(),
            SharedNamespace {
                keys: ["sk-A", "sk-B"]
                    .iter()
                    .map(|k| key_hash(k.as_bytes()).to_hex().to_string())
                    .collect(),
                token: Some("namespace-token-0123456789".into()),
            },
        );
    })
    .await;
    let ns = ("x-deja-namespace", "support");
    let question = "How do I reset my router to factory settings?";
    p.settle(question, &[("authorization", "Bearer sk-A"), ns])
        .await;
    // A listed key, sent as Azure sends it, shares the entry.
    assert_eq!(
        p.ask(question, &[("api-key", "sk-B"), ns]).await.outcome,
        "hit-exact"
    );
    // An unlisted key, or none, does not (and stores nothing, so a hit could only be the
    // shared entry).
    let no_store = ("cache-control", "no-store");
    for outsider in [
        vec![("authorization", "Bearer sk-C"), ns, no_store],
        vec![ns, no_store],
    ] {
        let got = p.ask(question, &outsider).await;
        assert_eq!(got.outcome, "miss", "{outsider:?}: {got:?}");
    }
    // The namespace's token admits; a near-miss of it does not.
    let wrong = p
        .ask(
            question,
            &[
                ns,
                no_store,
                ("x-deja-namespace-token", "namespace-token-0123456780"),
            ],
        )
        .await;
    assert_eq!(wrong.outcome, "miss");
    let right = p
        .ask(
            question,
            &[ns, ("x-deja-namespace-token", "namespace-token-0123456789")],
        )
        .await;
    assert_eq!(right.outcome, "hit-exact");
    p.stop().await;
}

/// Finding 11: `x-deja-category: default` made a prompt the `transactional` category
/// refuses cacheable.
#[tokio::test]
async fn a_category_hint_cannot_make_a_refused_prompt_cacheable() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    let p = Proxy::start(embedder, mock.base_url(), |_| {}).await;
    let key = ("authorization", "Bearer sk-A");
    let transfer = "Please transfer money to my savings account";
    for hint in ["default", "chitchat"] {
        if !p.served.state.cache().policy().names().any(|n| n == hint) {
            continue;
        }
        for _ in 0..2 {
            let got = p.ask(transfer, &[key, ("x-deja-category", hint)]).await;
            assert_eq!(got.outcome, "bypass", "hint {hint}: {got:?}");
        }
    }
    assert_eq!(p.ask(transfer, &[key]).await.outcome, "bypass");
    p.stop().await;
}

/// Finding 12: the query string of a cached route was neither forwarded nor keyed, which
/// broke Azure's `?api-version=`.
#[tokio::test]
async fn the_query_string_is_forwarded_and_keyed() {
    let embedder = need_model!();
    let up = Recorder::start(completion("Paris.")).await;
    let p = Proxy::start(embedder, up.base.clone(), |_| {}).await;
    let key = [("api-key", "azure-key")];
    let question = "What is the capital of France?";
    let v1 = "/v1/chat/completions?api-version=2024-10-21";
    assert_eq!(p.ask_at(v1, question, &key).await.outcome, "miss");
    assert_eq!(
        up.seen(),
        vec!["POST /v1/chat/completions?api-version=2024-10-21".to_string()]
    );
    p.settle_at(v1, question, &key).await;
    let v2 = p
        .ask_at(
            "/v1/chat/completions?api-version=2025-01-01",
            question,
            &key,
        )
        .await;
    assert_eq!(v2.outcome, "miss", "another api-version is another request");
    assert_eq!(
        up.seen().last().unwrap(),
        "POST /v1/chat/completions?api-version=2025-01-01"
    );
    let none = p.ask(question, &key).await;
    assert_eq!(none.outcome, "miss");
    p.stop().await;
}

/// Finding 8: a 2xx body only had to be JSON to be stored, so `{"error": …}` and
/// `{"choices": []}` were cached with no expiry.
#[tokio::test]
async fn a_2xx_that_is_not_a_whole_answer_is_not_stored() {
    let embedder = need_model!();
    let up =
        Recorder::start(json!({"error": {"message": "overloaded", "type": "server_error"}})).await;
    let p = Proxy::start(embedder, up.base.clone(), |_| {}).await;
    let key = [("authorization", "Bearer sk-A")];
    for (i, body) in [
        json!({"error": {"message": "overloaded", "type": "server_error"}}),
        json!({"id": "x", "object": "chat.completion", "choices": []}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "cut"}, "finish_reason": null}]}),
    ]
    .into_iter()
    .enumerate()
    {
        *up.body.lock() = body.clone();
        let question = format!("Question number {i} about the weather in Lyon");
        for _ in 0..3 {
            let got = p.ask(&question, &key).await;
            assert_eq!(got.outcome, "miss", "{body}: {got:?}");
            assert_eq!(got.body, body, "passed through unchanged");
        }
    }
    assert_eq!(up.seen().len(), 9, "every one of them went upstream");
    // A whole answer is stored as before.
    *up.body.lock() = completion("Mild.");
    p.settle("Is Lyon mild in spring?", &key).await;
    assert_eq!(up.seen().len(), 10);
    p.stop().await;
}
