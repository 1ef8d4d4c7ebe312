#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `POST /v1/responses` (OpenAI's Responses API) through a real listener, the real
//! embedder and the embedded store, in front of the mock upstream, which counts its calls.

#[macro_use]
mod common;

use std::sync::Arc;

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_server::staleness::StalenessJob;
use deja_server::AppState;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const KEY_A: &str = "sk-test-a";

struct Proxy {
    base: String,
    app: AppState,
    mock: MockUpstream,
    client: reqwest::Client,
    served: Served,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), mock.base_url());
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            app: served.state.clone(),
            mock,
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }

    /// `POST /v1/responses` with `Authorization: Bearer KEY_A` unless `headers` sets it.
    async fn send(&self, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut rb = self
            .client
            .post(format!("{}/v1/responses", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if !headers.iter().any(|(k, _)| *k == "authorization") {
            rb = rb.bearer_auth(KEY_A);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    fn calls(&self) -> u64 {
        self.mock.stats().responses_calls
    }
}

fn ask(text: &str) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "instructions": "You are a helpful assistant.",
        "input": text
    })
}

fn streamed(text: &str) -> Value {
    let mut body = ask(text);
    body["stream"] = json!(true);
    body
}

fn outcome(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-deja-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn is_sse(resp: &reqwest::Response) -> bool {
    resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream")
}

/// The text of a response's output messages.
fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// The `(event name, data)` pairs of a Responses SSE body; every event has both lines,
/// the name repeats the data's type, and the events are numbered from 0.
fn events(text: &str) -> Vec<(String, Value)> {
    let events: Vec<(String, Value)> = text
        .split_terminator("\n\n")
        .map(|block| {
            let (name, data) = block.split_once('\n').expect("event and data lines");
            let name = name
                .strip_prefix("event: ")
                .expect("an event line")
                .to_string();
            let data: Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("a data line")).unwrap();
            assert_eq!(data["type"], name.as_str(), "the name repeats the type");
            (name, data)
        })
        .collect();
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64, "{data}");
    }
    events
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn miss_then_exact_hit_with_no_upstream_call() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p.send(ask("What is the capital of France?"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "miss");
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["object"], "response");
    assert_eq!(
        output_text(&first),
        "deja-mock answer to: What is the capital of France?"
    );
    assert_eq!(
        p.mock.last_authorization().as_deref(),
        Some("Bearer sk-test-a")
    );
    assert_eq!(p.calls(), 1);

    // The same question in the other spelling of `input`, whitespace aside: an exact hit.
    let mut same = ask("x");
    same["input"] = json!([{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "  What is the capital   of France?\n"}
    ]}]);
    let r = p.send(same, &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("x-deja-entry").is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        first,
        "the stored response"
    );
    assert_eq!(p.calls(), 1, "a hit must not call upstream");

    let text = p.served.scrape().await;
    for line in [
        "deja_requests_total{endpoint=\"responses\",outcome=\"miss\"} 1",
        "deja_requests_total{endpoint=\"responses\",outcome=\"hit_exact\"} 1",
        "deja_upstream_calls_total{endpoint=\"responses\"} 1",
        "deja_requests_total{endpoint=\"chat\",outcome=\"miss\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    p.stop().await;
}

#[tokio::test]
async fn paraphrase_is_a_semantic_hit_but_not_across_provider_state() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let first: Value = p
        .send(ask("How do I reset my password?"), &[])
        .await
        .json()
        .await
        .unwrap();
    let r = p.send(ask("how can I reset my password"), &[]).await;
    assert_eq!(outcome(&r), "hit-semantic");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    assert_eq!(p.calls(), 1);

    // After an earlier response the provider keeps, the same words may mean something
    // else: exact matching only.
    let mut follow = ask("How do I reset my password?");
    follow["previous_response_id"] = first["id"].clone();
    assert_eq!(outcome(&p.send(follow.clone(), &[]).await), "miss");
    let mut paraphrase = ask("how can I reset my password");
    paraphrase["previous_response_id"] = first["id"].clone();
    assert_eq!(outcome(&p.send(paraphrase, &[]).await), "miss");
    assert_eq!(outcome(&p.send(follow, &[]).await), "hit-exact");
    assert_eq!(p.calls(), 3);

    // Chat completions never share entries with the Responses API, same tenant and words.
    let r = p
        .client
        .post(format!("{}/v1/chat/completions", p.base))
        .bearer_auth(KEY_A)
        .json(&json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How do I reset my password?"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(&r), "miss");
    assert_eq!(p.mock.stats().chat_calls, 1);
    p.stop().await;
}

#[tokio::test]
async fn streamed_miss_is_recorded_then_replayed_as_events_and_as_json() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p.send(streamed("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "miss");
    assert!(is_sse(&r));
    let recorded = events(&r.text().await.unwrap());
    assert_eq!(recorded.first().unwrap().0, "response.created");
    assert_eq!(recorded.last().unwrap().0, "response.completed");
    let text = streamed_text(&recorded);
    assert_eq!(text, "deja-mock answer to: Tell me a story about a fox");
    assert_eq!(p.calls(), 1);

    // Replayed as the same events.
    let r = p.send(streamed("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(is_sse(&r));
    assert_eq!(events(&r.text().await.unwrap()), recorded);

    // And as the response it completed with, for a client that does not stream.
    let r = p.send(ask("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(r.headers()["content-type"], "application/json");
    let response: Value = r.json().await.unwrap();
    assert_eq!(response, recorded.last().unwrap().1["response"]);
    assert_eq!(output_text(&response), text);
    assert_eq!(p.calls(), 1);
    p.stop().await;
}

#[tokio::test]
async fn a_stored_response_is_replayed_as_events() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let stored: Value = p
        .send(ask("Name three primary colours"), &[])
        .await
        .json()
        .await
        .unwrap();
    let r = p.send(streamed("Name three primary colours"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(is_sse(&r));
    let replayed = events(&r.text().await.unwrap());
    let names: Vec<&str> = replayed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(streamed_text(&replayed), output_text(&stored));
    assert_eq!(replayed.last().unwrap().1["response"], stored);
    assert_eq!(replayed[0].1["response"]["status"], "in_progress");
    assert_eq!(p.calls(), 1);
    p.stop().await;
}

#[tokio::test]
async fn answer_changing_parameters_miss_bookkeeping_does_not() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let base = ask("Explain recursion in one sentence");
    assert_eq!(outcome(&p.send(base.clone(), &[]).await), "miss");
    let mut calls = 1;
    for (field, value) in [
        ("temperature", json!(0.1)),
        ("max_output_tokens", json!(20)),
        ("instructions", json!("Answer in French.")),
        ("store", json!(false)),
        ("text", json!({"format": {"type": "json_object"}})),
        (
            "tools",
            json!([{"type": "function", "name": "f", "parameters": {}}]),
        ),
        ("reasoning", json!({"effort": "high"})),
    ] {
        let mut body = base.clone();
        body[field] = value;
        assert_eq!(outcome(&p.send(body, &[]).await), "miss", "{field}");
        calls += 1;
    }
    for (field, value) in [
        ("metadata", json!({"trace": "1"})),
        ("user", json!("u-1")),
        ("safety_identifier", json!("s-1")),
        ("prompt_cache_key", json!("k")),
        ("service_tier", json!("flex")),
        ("store", json!(true)),
    ] {
        let mut body = base.clone();
        body[field] = value;
        assert_eq!(outcome(&p.send(body, &[]).await), "hit-exact", "{field}");
    }
    assert_eq!(p.calls(), calls);
    // Another credential is another tenant.
    let r = p
        .send(base.clone(), &[("authorization", "Bearer sk-test-b")])
        .await;
    assert_eq!(outcome(&r), "miss");
    p.stop().await;
}

#[tokio::test]
async fn background_requests_pass_through_uncached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let mut body = ask("Write a long report on tides");
    body["background"] = json!(true);
    for _ in 0..2 {
        let r = p.send(body.clone(), &[]).await;
        assert_eq!(outcome(&r), "bypass");
        assert_eq!(r.headers()["x-deja-bypass-reason"], "background");
        let queued: Value = r.json().await.unwrap();
        assert_eq!(queued["status"], "queued");
    }
    assert_eq!(p.calls(), 2);
    let metrics = p.served.scrape().await;
    let line = "deja_bypass_total{reason=\"background\"} 2";
    assert!(
        metrics.lines().any(|l| l == line),
        "{line} not in:\n{metrics}"
    );
    // Nothing was stored: the foreground request is a miss.
    assert_eq!(
        outcome(&p.send(ask("Write a long report on tides"), &[]).await),
        "miss"
    );
    // Polling the queued response passes through.
    let r = p
        .client
        .get(format!("{}/v1/responses/resp_mock_1", p.base))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "the mock has no retrieval; the path reached it"
    );
    assert!(p
        .mock
        .state()
        .requests()
        .iter()
        .any(|s| s.path_and_query == "/v1/responses/resp_mock_1"));
    p.stop().await;
}

#[tokio::test]
async fn errors_and_broken_streams_are_not_cached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    // deja's own errors are in OpenAI's shape, naming the parameter.
    let r = p.send(json!({"model": "m", "input": 3}), &[]).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["param"], "input");
    assert_eq!(p.calls(), 0);

    // An upstream error passes through and is not stored.
    let failing = ask("Why is the sky blue? [mock:500]");
    assert_eq!(p.send(failing.clone(), &[]).await.status(), 500);
    assert_eq!(p.send(failing, &[]).await.status(), 500);
    assert_eq!(p.calls(), 2);

    // A stream cut short is not stored.
    let cut = streamed("Tell me a long story [mock:cut=5]");
    let r = p.send(cut.clone(), &[]).await;
    assert_eq!(outcome(&r), "miss");
    let _ = r.text().await;
    let r = p.send(cut, &[]).await;
    assert_eq!(outcome(&r), "miss");
    let _ = r.text().await;
    assert_eq!(p.calls(), 4);
    p.stop().await;
}

#[tokio::test]
async fn controls_tags_and_never_cache_rules_apply() {
    let p = Proxy::start(need_model!(), |c| {
        c.admin.token = Some("admin-t-0123456789".into())
    })
    .await;
    let body = ask("Explain photosynthesis briefly");
    let r = p.send(body.clone(), &[("cache-control", "no-store")]).await;
    assert_eq!(outcome(&r), "miss");
    assert_eq!(
        outcome(&p.send(body.clone(), &[("x-deja-tags", "bio")]).await),
        "miss"
    );
    assert_eq!(outcome(&p.send(body.clone(), &[]).await), "hit-exact");
    let r = p
        .send(ask("Email me at jane.doe@example.com please"), &[])
        .await;
    assert_eq!(outcome(&r), "bypass");
    assert_eq!(r.headers()["x-deja-bypass-reason"], "personal-data:email");
    let removed: Value = p
        .client
        .post(format!("{}/admin/invalidate", p.base))
        .bearer_auth("admin-t-0123456789")
        .json(&json!({"tag": "bio"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["removed"], 1);
    assert_eq!(outcome(&p.send(body, &[]).await), "miss");
    p.stop().await;
}

#[tokio::test]
async fn staleness_job_re_asks_at_v1_responses() {
    let p = Proxy::start(need_model!(), |c| {
        c.upstream.api_key = Some("sk-server".into());
        c.staleness.enabled = true;
        c.staleness.interval_secs = 24 * 3600;
        c.staleness.min_age_secs = 0;
    })
    .await;
    let mountain = ask("What is the tallest mountain on Earth?");
    assert_eq!(outcome(&p.send(mountain.clone(), &[]).await), "miss");
    let r = p.send(streamed("Name the largest ocean"), &[]).await;
    r.text().await.unwrap();
    assert_eq!(p.calls(), 2);

    let job = StalenessJob::new(p.app.clone());
    let report = job.run_pass().await;
    assert_eq!(
        (report.checked, report.unchanged, report.failed),
        (2, 2, 0),
        "{report:?}"
    );
    assert_eq!(p.calls(), 4);
    assert_eq!(
        p.mock.last_authorization().as_deref(),
        Some("Bearer sk-server")
    );

    p.mock.state().set_answer(
        "What is the tallest mountain on Earth?",
        "Bananas are rich in potassium and best eaten ripe.",
    );
    let report = job.run_pass().await;
    assert_eq!(
        (report.checked, report.changed, report.removed),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(outcome(&p.send(mountain, &[]).await), "miss");
    assert_eq!(
        outcome(&p.send(ask("Name the largest ocean"), &[]).await),
        "hit-exact"
    );
    p.stop().await;
}
