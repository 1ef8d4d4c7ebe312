#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Azure OpenAI's routes (`/openai/deployments/{deployment}/...`, `/openai/v1/...`, and the
//! passthrough of other `/openai/` paths) through a real listener, the real embedder and
//! the embedded store, in front of the mock upstream serving Azure's paths, which counts
//! its calls and records what arrived. A second mock stands in for the OpenAI upstream, to
//! show what goes where.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const KEY_A: &str = "azure-key-a";
const VERSION: &str = "api-version=2024-10-21";
const ADMIN: &str = "admin-token-0123456789";

struct Proxy {
    base: String,
    azure: MockUpstream,
    openai: MockUpstream,
    client: reqwest::Client,
    served: Served,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy with `[azure]` pointing at the Azure mock, unless `tweak` says otherwise.
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let azure = MockUpstream::start().await.unwrap();
        let openai = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), openai.base_url());
        config.azure.base_url = Some(azure.azure_endpoint());
        config.admin.token = Some(ADMIN.into());
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            azure,
            openai,
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }

    /// `POST path_and_query` with `body` and `api-key: KEY_A` unless `headers` has a
    /// credential.
    async fn post(&self, path_and_query: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut rb = self
            .client
            .post(format!("{}{path_and_query}", self.base))
            .json(body);
        if !headers
            .iter()
            .any(|(k, _)| *k == "api-key" || *k == "authorization")
        {
            rb = rb.header("api-key", KEY_A);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (outcome, entry, content_type) = (
            header("x-deja-cache"),
            header("x-deja-entry"),
            header("content-type"),
        );
        let text = r.text().await.unwrap();
        Reply {
            status,
            outcome,
            entry,
            content_type,
            text,
        }
    }

    /// Posts until the answer stored after a miss is served exactly (stores may land after
    /// the response); bounded, so a store that never happens fails the test.
    async fn settle(&self, path_and_query: &str, body: &Value, headers: &[(&str, &str)]) {
        for _ in 0..200 {
            if self.post(path_and_query, body, headers).await.outcome == "hit-exact" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("entry never became visible");
    }

    fn azure_chat_calls(&self) -> u64 {
        self.azure.stats().chat_calls
    }

    /// `GET /admin/...` with the admin token.
    async fn admin(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}/admin/{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

struct Reply {
    status: u16,
    outcome: String,
    entry: String,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }

    fn answer(&self) -> String {
        self.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// `/openai/deployments/{deployment}/chat/completions?api-version=...`.
fn deployment_chat(deployment: &str) -> String {
    format!("/openai/deployments/{deployment}/chat/completions?{VERSION}")
}

/// A chat body without `model`, as the deployment routes take it.
fn ask(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn ask_model(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn deployment_chat_is_cached_exactly_and_semantically() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let path = deployment_chat("support-gpt");
    let r = p
        .post(&path, &ask("How do I reset my password?"), &[])
        .await;
    assert_eq!((r.status, r.outcome.as_str()), (200, "miss"));
    assert_eq!(r.json()["model"], "support-gpt", "the deployment names it");
    let first = r.answer();
    assert!(first.contains("reset my password"), "{first}");
    // Forwarded as it came: the path, the query, the client's key, no `model` added.
    let seen = p.azure.state().requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, path);
    assert_eq!(seen[0].headers["api-key"], KEY_A);
    p.settle(&path, &ask("How do I reset my password?"), &[])
        .await;

    let calls = p.azure_chat_calls();
    let r = p
        .post(&path, &ask("  How do I reset my   password?"), &[])
        .await;
    assert_eq!(r.outcome, "hit-exact");
    assert_eq!(r.answer(), first);
    let r = p
        .post(&path, &ask("how can I reset my password"), &[])
        .await;
    assert_eq!(r.outcome, "hit-semantic");
    assert_eq!(r.answer(), first);
    assert_eq!(p.azure_chat_calls(), calls, "a hit must not call upstream");
    // The entry is stored, and counted, under the deployment's name.
    let entry = p.admin(&format!("entries/{}", r.entry)).await;
    assert_eq!(entry["model"], "support-gpt");
    assert_eq!(p.openai.stats().total_calls, 0, "nothing goes to OpenAI");
    p.stop().await;
}

#[tokio::test]
async fn streamed_miss_then_non_streamed_hit() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let path = deployment_chat("gpt-4o");
    let mut body = ask("Stream me a story about a fox");
    body["stream"] = json!(true);
    let r = p.post(&path, &body, &[]).await;
    assert_eq!(r.outcome, "miss");
    assert!(r.content_type.starts_with("text/event-stream"));
    assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);
    assert!(r.text.contains(r#""model":"gpt-4o""#), "{}", r.text);
    p.settle(&path, &body, &[]).await;
    let calls = p.azure_chat_calls();
    let r = p
        .post(&path, &ask("Stream me a story about a fox"), &[])
        .await;
    assert_eq!(r.outcome, "hit-exact");
    assert!(r.answer().contains("story about a fox"));
    assert_eq!(p.azure_chat_calls(), calls);
    p.stop().await;
}

#[tokio::test]
async fn api_version_is_forwarded_and_keyed() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let question = ask("What is the tallest mountain in Europe?");
    let older = "/openai/deployments/d/chat/completions?api-version=2024-06-01";
    let newer = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
    assert_eq!(p.post(older, &question, &[]).await.outcome, "miss");
    p.settle(older, &question, &[]).await;
    let r = p.post(newer, &question, &[]).await;
    assert_eq!(r.outcome, "miss", "another api-version is another request");
    let mut seen: Vec<String> = p
        .azure
        .state()
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    seen.dedup();
    assert_eq!(seen, [older, newer]);
    p.settle(newer, &question, &[]).await;
    assert_eq!(p.azure_chat_calls(), 2);
    p.stop().await;
}

#[tokio::test]
async fn deployments_and_body_models_are_keyed_apart() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let question = "Name three primary colours";
    let a = deployment_chat("deployment-a");
    assert_eq!(p.post(&a, &ask(question), &[]).await.outcome, "miss");
    p.settle(&a, &ask(question), &[]).await;
    let b = deployment_chat("deployment-b");
    let r = p.post(&b, &ask(question), &[]).await;
    assert_eq!(r.outcome, "miss", "another deployment is another model");
    assert_eq!(r.json()["model"], "deployment-b");
    // A model in the body too is keyed as well.
    let r = p.post(&a, &ask_model("gpt-4o", question), &[]).await;
    assert_eq!(r.outcome, "miss");
    p.settle(&a, &ask_model("gpt-4o", question), &[]).await;
    let r = p.post(&a, &ask_model("gpt-4o-mini", question), &[]).await;
    assert_eq!(r.outcome, "miss");
    assert_eq!(p.azure_chat_calls(), 4);
    p.stop().await;
}

#[tokio::test]
async fn azure_and_openai_never_share_entries() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let bearer = [("authorization", "Bearer shared-key")];
    let body = ask_model("gpt-4o", "What is the speed of light?");
    let openai = "/v1/chat/completions";
    assert_eq!(p.post(openai, &body, &bearer).await.outcome, "miss");
    p.settle(openai, &body, &bearer).await;
    // The same key, model, body and (empty) query on Azure's v1 API: not OpenAI's entry.
    let v1 = "/openai/v1/chat/completions";
    let r = p.post(v1, &body, &bearer).await;
    assert_eq!(r.outcome, "miss");
    p.settle(v1, &body, &bearer).await;
    // Nor the deployment route's, under the same name.
    let d = "/openai/deployments/gpt-4o/chat/completions?api-version=1";
    assert_eq!(p.post(d, &body, &bearer).await.outcome, "miss");
    assert_eq!(p.openai.stats().chat_calls, 1);
    assert_eq!(p.azure_chat_calls(), 2);
    let seen = p.azure.state().requests();
    assert_eq!(seen[0].path_and_query, v1);
    assert_eq!(seen[0].headers["authorization"], "Bearer shared-key");
    p.stop().await;
}

#[tokio::test]
async fn tenants_by_api_key_are_kept_apart() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let path = deployment_chat("d");
    let body = ask("Summarise our refund policy");
    assert_eq!(p.post(&path, &body, &[]).await.outcome, "miss");
    p.settle(&path, &body, &[]).await;
    let other = [("api-key", "azure-key-b")];
    let r = p.post(&path, &body, &other).await;
    assert_eq!(r.outcome, "miss", "another key is another tenant");
    p.settle(&path, &body, &other).await;
    assert_eq!(p.post(&path, &body, &[]).await.outcome, "hit-exact");
    assert_eq!(p.azure_chat_calls(), 2);
    p.stop().await;
}

#[tokio::test]
async fn the_configured_key_replaces_the_clients_and_is_never_shown() {
    let p = Proxy::start(need_model!(), |c| {
        c.azure.api_key = Some("operator-key".into());
    })
    .await;
    let client = [
        ("api-key", "client-key"),
        ("authorization", "Bearer client-token"),
    ];
    let r = p
        .post(&deployment_chat("d"), &ask("What is 2+2?"), &client)
        .await;
    assert_eq!(r.status, 200);
    let r = p
        .post(
            "/openai/v1/embeddings",
            &json!({"model": "e", "input": "x"}),
            &client,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = p
        .client
        .get(format!("{}/openai/models?{VERSION}", p.base))
        .header("api-key", "client-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the mock serves no such path");
    let seen = p.azure.state().requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.headers["api-key"], "operator-key", "{}", r.path_and_query);
        assert!(r.headers.get("authorization").is_none());
    }
    let config = p.admin("config").await;
    assert_eq!(config["azure"]["api_key"], "***");
    assert_eq!(config["azure"]["base_url"], p.azure.azure_endpoint());
    p.stop().await;
}

#[tokio::test]
async fn without_a_base_url_the_azure_routes_say_what_to_configure() {
    let p = Proxy::start(need_model!(), |c| c.azure.base_url = None).await;
    for path in [
        deployment_chat("d"),
        format!("/openai/deployments/d/embeddings?{VERSION}"),
        "/openai/v1/chat/completions".into(),
        "/openai/v1/embeddings".into(),
        "/openai/v1/responses".into(),
        format!("/openai/models?{VERSION}"),
    ] {
        let r = p.post(&path, &ask_model("m", "hello"), &[]).await;
        assert_eq!(r.status, 404, "{path}");
        let error = &r.json()["error"];
        assert_eq!(error["code"], "not_configured", "{path}");
        assert_eq!(error["type"], "invalid_request_error");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("[azure]") && message.contains("DEJA_AZURE_BASE_URL"),
            "{message}"
        );
    }
    assert_eq!(p.openai.stats().total_calls, 0, "never sent to OpenAI");
    assert_eq!(p.azure.stats().total_calls, 0);
    p.stop().await;
}

#[tokio::test]
async fn embeddings_are_cached_per_item() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let path = format!("/openai/deployments/emb/embeddings?{VERSION}");
    let r = p.post(&path, &json!({"input": ["a", "b"]}), &[]).await;
    assert_eq!((r.status, r.outcome.as_str()), (200, "miss"));
    let v1 = r.json();
    assert_eq!(v1["model"], "emb");
    let seen = p.azure.state().requests();
    assert_eq!(seen[0].path_and_query, path);
    let r = p.post(&path, &json!({"input": ["b", "c", "a"]}), &[]).await;
    let v2 = r.json();
    let s = p.azure.stats();
    assert_eq!(s.embedding_items, 3, "only 'c' went upstream");
    assert_eq!(s.embedding_calls, 2);
    assert_eq!(v2["data"][0]["embedding"], v1["data"][1]["embedding"]);
    assert_eq!(v2["data"][2]["embedding"], v1["data"][0]["embedding"]);
    let r = p.post(&path, &json!({"input": ["a", "b"]}), &[]).await;
    assert_eq!(r.outcome, "hit-exact");
    // Another deployment, the v1 API and OpenAI each have their own items.
    let other = format!("/openai/deployments/emb-2/embeddings?{VERSION}");
    assert_eq!(
        p.post(&other, &json!({"input": "a"}), &[]).await.outcome,
        "miss"
    );
    let v1_api = "/openai/v1/embeddings";
    let named = json!({"model": "emb", "input": "a"});
    assert_eq!(p.post(v1_api, &named, &[]).await.outcome, "miss");
    assert_eq!(p.post(v1_api, &named, &[]).await.outcome, "hit-exact");
    let openai = p.post("/v1/embeddings", &named, &[]).await;
    assert_eq!(openai.outcome, "miss");
    assert_eq!(p.azure.stats().embedding_calls, 4);
    assert_eq!(p.openai.stats().embedding_calls, 1);
    p.stop().await;
}

#[tokio::test]
async fn azures_own_errors_pass_through_and_are_not_cached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    // No api-version: Azure's 404, unchanged, and asked again next time.
    let path = "/openai/deployments/d/chat/completions";
    for _ in 0..2 {
        let r = p.post(path, &ask("Hello there"), &[]).await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            json!({"error": {"code": "404", "message": "Resource not found"}})
        );
    }
    assert_eq!(p.azure_chat_calls(), 2);
    // A deployment or a path that would move out of place is refused before anything is
    // sent (plain and percent-encoded dot segments the client's URL parser resolves itself).
    let r = p
        .post(
            &format!("/openai/deployments/a%2fb/chat/completions?{VERSION}"),
            &ask("x"),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = p.post("/openai/a%2f..%2f..%2fadmin", &ask("x"), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(p.azure.stats().total_calls, 2);
    p.stop().await;
}

/// The Responses API through Azure's v1 API: cached like OpenAI's `/v1/responses`, sent to
/// `[azure]`, and keyed apart from OpenAI's entries for the same body and key.
#[tokio::test]
async fn responses_through_the_v1_api_are_cached_and_kept_apart() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let path = "/openai/v1/responses";
    let body = json!({"model": "gpt-4o", "input": "How do I reset my password?"});
    let first = p.post(path, &body, &[]).await;
    assert_eq!((first.status, first.outcome.as_str()), (200, "miss"));
    assert_eq!(first.json()["object"], "response");
    let hit = p.post(path, &body, &[]).await;
    assert_eq!(hit.outcome, "hit-exact");
    assert_eq!(hit.json(), first.json());
    let paraphrase = json!({"model": "gpt-4o", "input": "how can I reset my password"});
    assert_eq!(p.post(path, &paraphrase, &[]).await.outcome, "hit-semantic");
    assert_eq!(p.azure.stats().responses_calls, 1);
    let seen = p.azure.state().requests();
    assert_eq!(seen[0].path_and_query, path);
    assert_eq!(seen[0].headers["api-key"], KEY_A);
    // OpenAI's route with the same key and body: its own entry, its own upstream.
    let openai = p
        .post(
            "/v1/responses",
            &body,
            &[("authorization", &format!("Bearer {KEY_A}"))],
        )
        .await;
    assert_eq!(openai.outcome, "miss");
    assert_eq!(p.openai.stats().responses_calls, 1);
    assert_eq!(p.azure.stats().responses_calls, 1);
    p.stop().await;
}
