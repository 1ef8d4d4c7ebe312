#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `POST /v1/messages` (Anthropic's Messages API) through a real listener, the real
//! embedder and the embedded store, in front of the mock Anthropic upstream, which counts
//! its calls. The OpenAI mock stands beside it to show nothing goes there.

#[macro_use]
mod common;

use std::sync::Arc;

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_server::staleness::StalenessJob;
use deja_server::AppState;
use deja_testkit::mock_anthropic::MockAnthropic;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const KEY_A: &str = "sk-ant-test-a";

struct Proxy {
    base: String,
    app: AppState,
    anthropic: MockAnthropic,
    openai: MockUpstream,
    client: reqwest::Client,
    served: Served,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let anthropic = MockAnthropic::start().await.unwrap();
        let openai = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), openai.base_url());
        config.anthropic.base_url = anthropic.base_url();
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            app: served.state.clone(),
            anthropic,
            openai,
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
        assert_eq!(
            self.openai.stats().total_calls,
            0,
            "nothing of Anthropic's goes to the OpenAI upstream"
        );
    }

    /// `POST /v1/messages` with `x-api-key: KEY_A` and `anthropic-version` unless
    /// `headers` sets them.
    async fn send(&self, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        self.send_raw(body.to_string(), headers).await
    }

    async fn send_raw(&self, body: String, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut rb = self
            .client
            .post(format!("{}/v1/messages", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in [("x-api-key", KEY_A), ("anthropic-version", "2023-06-01")] {
            if !headers.iter().any(|(k, _)| *k == name) {
                rb = rb.header(name, value);
            }
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    fn calls(&self) -> u64 {
        self.anthropic.stats().message_calls
    }
}

fn ask(text: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": text}]
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

/// The text of a `message` body's text blocks.
fn message_text(message: &Value) -> String {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap())
        .collect()
}

/// The `(event name, data)` pairs of an Anthropic SSE body; every event has both lines.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|block| {
            let (name, data) = block.split_once('\n').expect("event and data lines");
            let name = name
                .strip_prefix("event: ")
                .expect("an event line")
                .to_string();
            let data: Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("a data line")).unwrap();
            assert_eq!(
                data["type"],
                name.as_str(),
                "the name repeats the data's type"
            );
            (name, data)
        })
        .collect()
}

/// The text a stream's `text_delta`s carry.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect()
}

fn is_sse(resp: &reqwest::Response) -> bool {
    resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream")
}

async fn assert_anthropic_error(resp: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn miss_then_exact_hit_with_no_upstream_call() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p
        .send(
            ask("What is the capital of France?"),
            &[("anthropic-beta", "some-beta-2025")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "miss");
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["type"], "message");
    assert_eq!(
        message_text(&first),
        "deja-mock answer to: What is the capital of France?"
    );
    // The client's credential and API headers reached Anthropic.
    let seen = p.anthropic.last_headers();
    assert_eq!(seen.api_key.as_deref(), Some(KEY_A));
    assert_eq!(seen.version.as_deref(), Some("2023-06-01"));
    assert_eq!(seen.beta.as_deref(), Some("some-beta-2025"));
    assert_eq!(p.calls(), 1);

    // Strict durability: the entry is stored before the response ends, so the very next
    // request is a hit.
    let r = p
        .send(
            ask("  What is the capital   of France?\n"),
            &[("anthropic-beta", "some-beta-2025")],
        )
        .await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(r.headers()["x-deja-similarity"], "1.0000");
    assert!(r.headers().get("x-deja-entry").is_some());
    assert_eq!(r.headers()["x-deja-category"], "default");
    assert_eq!(r.headers()["content-type"], "application/json");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first, "the stored message, byte for byte");
    assert_eq!(p.calls(), 1, "a hit must not call upstream");

    // `/metrics` counts them under their own endpoint, not chat's.
    let text = p.served.scrape().await;
    for line in [
        "deja_requests_total{endpoint=\"messages\",outcome=\"miss\"} 1",
        "deja_requests_total{endpoint=\"messages\",outcome=\"hit_exact\"} 1",
        "deja_upstream_calls_total{endpoint=\"messages\"} 1",
        "deja_requests_total{endpoint=\"chat\",outcome=\"miss\"} 0",
        "deja_upstream_calls_total{endpoint=\"chat\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    p.stop().await;
}

#[tokio::test]
async fn paraphrase_is_a_semantic_hit() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let first: Value = p
        .send(ask("How do I reset my password?"), &[])
        .await
        .json()
        .await
        .unwrap();
    let r = p.send(ask("how can I reset my password"), &[]).await;
    assert_eq!(outcome(&r), "hit-semantic");
    let similarity: f32 = r.headers()["x-deja-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.9..1.0).contains(&similarity), "{similarity}");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    assert_eq!(p.calls(), 1);
    // A request can raise the threshold above this pair's similarity.
    let r = p
        .send(
            ask("how can I reset my password"),
            &[("x-deja-min-similarity", "0.9999")],
        )
        .await;
    assert_eq!(outcome(&r), "miss");
    assert_eq!(p.calls(), 2);
    p.stop().await;
}

#[tokio::test]
async fn streamed_miss_is_recorded_then_replayed_as_sse_and_as_json() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let r = p.send(streamed("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "miss");
    assert!(is_sse(&r));
    let recorded = events(&r.text().await.unwrap());
    let names: Vec<&str> = recorded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"ping"));
    let text = streamed_text(&recorded);
    assert_eq!(text, "deja-mock answer to: Tell me a story about a fox");
    assert_eq!(p.calls(), 1);

    // Replayed as the same events (strict durability: stored before `message_stop` went
    // out, so no wait is needed).
    let r = p.send(streamed("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(is_sse(&r));
    assert_eq!(events(&r.text().await.unwrap()), recorded);

    // And assembled into a message for a client that does not stream.
    let r = p.send(ask("Tell me a story about a fox"), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert_eq!(r.headers()["content-type"], "application/json");
    let message: Value = r.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message_text(&message), text);
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["id"], recorded[0].1["message"]["id"]);
    let delta = &recorded[recorded.len() - 2].1;
    assert_eq!(
        message["usage"]["output_tokens"],
        delta["usage"]["output_tokens"]
    );
    assert_eq!(
        message["usage"]["input_tokens"],
        recorded[0].1["message"]["usage"]["input_tokens"]
    );
    assert_eq!(p.calls(), 1);
    p.stop().await;
}

#[tokio::test]
async fn json_answer_with_thinking_and_a_tool_call_is_replayed_as_sse() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let mut body = ask("Look up the weather in Paris [mock:tool]");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let r = p.send(body.clone(), &[]).await;
    assert_eq!(outcome(&r), "miss");
    let message: Value = r.json().await.unwrap();
    let kinds: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);

    body["stream"] = json!(true);
    let r = p.send(body, &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(is_sse(&r));
    let replay = events(&r.text().await.unwrap());
    assert_eq!(p.calls(), 1);
    // Assemble the stream the way Anthropic's SDKs do, and get the stored message back.
    let mut assembled = replay[0].1["message"].clone();
    let mut json_text = String::new();
    for (name, data) in &replay[1..] {
        let index = data["index"].as_u64().unwrap_or(0) as usize;
        match name.as_str() {
            "content_block_start" => assembled["content"]
                .as_array_mut()
                .unwrap()
                .push(data["content_block"].clone()),
            "content_block_delta" => {
                let block = &mut assembled["content"][index];
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        block["text"] = json!(format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        ))
                    }
                    "thinking_delta" => {
                        block["thinking"] = json!(format!(
                            "{}{}",
                            block["thinking"].as_str().unwrap(),
                            delta["thinking"].as_str().unwrap()
                        ))
                    }
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => {
                        json_text.push_str(delta["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "message_delta" => {
                assembled["stop_reason"] = data["delta"]["stop_reason"].clone();
                assembled["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                assembled["usage"] = data["usage"].clone();
            }
            _ => {}
        }
    }
    assembled["content"][2]["input"] = serde_json::from_str(&json_text).unwrap();
    assert_eq!(assembled, message);
    p.stop().await;
}

#[tokio::test]
async fn answer_changing_parameters_and_headers_miss_bookkeeping_does_not() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let base = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Name a prime number"}
        ]
    });
    assert_eq!(outcome(&p.send(base.clone(), &[]).await), "miss");
    let changed = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let mut other_turn = base.clone();
    other_turn["messages"][1]["content"] = json!("Hey there");
    for (name, body, headers) in [
        ("max_tokens", changed("max_tokens", json!(1024)), vec![]),
        (
            "system",
            changed("system", json!("You are verbose.")),
            vec![],
        ),
        ("model", changed("model", json!("claude-opus-4-1")), vec![]),
        ("temperature", changed("temperature", json!(0.2)), vec![]),
        ("top_k", changed("top_k", json!(5)), vec![]),
        (
            "stop_sequences",
            changed("stop_sequences", json!(["END"])),
            vec![],
        ),
        (
            "thinking",
            changed(
                "thinking",
                json!({"type": "enabled", "budget_tokens": 2048}),
            ),
            vec![],
        ),
        ("earlier turn", other_turn, vec![]),
        (
            "anthropic-beta",
            base.clone(),
            vec![("anthropic-beta", "x-2025")],
        ),
        (
            "anthropic-version",
            base.clone(),
            vec![("anthropic-version", "2024-01-01")],
        ),
        ("tenant", base.clone(), vec![("x-api-key", "sk-ant-other")]),
        (
            "namespace",
            base.clone(),
            vec![("x-deja-namespace", "team-x")],
        ),
    ] {
        let r = p.send(body, &headers).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(outcome(&r), "miss", "{name}");
    }
    // `stream` and `metadata` do not change the answer.
    let mut with_metadata = changed("metadata", json!({"user_id": "u-42"}));
    with_metadata["service_tier"] = json!("standard_only");
    assert_eq!(outcome(&p.send(with_metadata, &[]).await), "hit-exact");
    let calls = p.calls();
    let r = p.send(changed("stream", json!(true)), &[]).await;
    assert_eq!(outcome(&r), "hit-exact");
    assert!(is_sse(&r));
    assert_eq!(p.calls(), calls);
    p.stop().await;
}

#[tokio::test]
async fn upstream_errors_pass_through_and_broken_streams_are_not_cached() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    for (code, kind, upstream_message) in [
        ("500", "api_error", "mock upstream failure"),
        ("429", "rate_limit_error", "mock rate limit reached"),
        ("529", "overloaded_error", "Overloaded"),
    ] {
        let prompt = format!("Tell me a joke [mock:{code}]");
        for _ in 0..2 {
            let calls = p.calls();
            let r = p.send(ask(&prompt), &[]).await;
            assert_eq!(outcome(&r), "miss");
            assert_eq!(r.status().as_str(), code);
            let message = assert_anthropic_error(r, code.parse().unwrap(), kind).await;
            assert_eq!(message, upstream_message, "the upstream's own body");
            assert_eq!(
                p.calls(),
                calls + 1,
                "an error is never served from the cache"
            );
        }
    }
    // A stream that ends in an error event, or that the upstream cuts, reaches the client
    // as it was and is never stored.
    for prompt in [
        "A story that fails [mock:error-event]",
        "A story cut short [mock:cut=4]",
    ] {
        let r = p.send(streamed(prompt), &[]).await;
        assert_eq!(outcome(&r), "miss");
        let body = r.text().await;
        if prompt.contains("cut") {
            assert!(body.is_err(), "the client sees the stream break");
        } else {
            assert!(body.unwrap().contains("event: error"));
        }
        let calls = p.calls();
        let r = p.send(streamed(prompt), &[]).await;
        assert_eq!(outcome(&r), "miss", "{prompt}");
        let _ = r.text().await;
        assert_eq!(p.calls(), calls + 1, "{prompt}");
    }
    p.stop().await;
}

#[tokio::test]
async fn bad_requests_get_anthropic_shaped_errors() {
    let p = Proxy::start(need_model!(), |c| c.limits.max_body_bytes = 4096).await;
    /// Body, extra headers, status, Anthropic error type, a word of the message.
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        ("{not json".into(), vec![], 400, "invalid_request_error", "could not parse"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}).to_string(),
            vec![],
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})
                .to_string(),
            vec![],
            400,
            "invalid_request_error",
            "top-level 'system'",
        ),
        (
            ask("x").to_string(),
            vec![("x-deja-min-similarity", "high")],
            400,
            "invalid_request_error",
            "x-deja-min-similarity",
        ),
        (
            ask("x").to_string(),
            vec![("x-deja-category", "nope")],
            400,
            "invalid_request_error",
            "x-deja-category",
        ),
        (
            ask(&"long ".repeat(2000)).to_string(),
            vec![],
            413,
            "request_too_large",
            "4096 bytes",
        ),
    ];
    for (body, headers, status, kind, needle) in cases {
        let r = p.send_raw(body, &headers).await;
        let message = assert_anthropic_error(r, status, kind).await;
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(p.calls(), 0, "a bad request never reaches the upstream");
    p.stop().await;
}

#[tokio::test]
async fn configured_key_replaces_the_clients_and_tenants_stay_apart() {
    let p = Proxy::start(need_model!(), |c| {
        c.anthropic.api_key = Some("sk-ant-server".into())
    })
    .await;
    let r = p.send(ask("What is 2+2?"), &[]).await;
    assert_eq!(outcome(&r), "miss");
    let seen = p.anthropic.last_headers();
    assert_eq!(seen.api_key.as_deref(), Some("sk-ant-server"));
    assert_eq!(seen.version.as_deref(), Some("2023-06-01"));
    // Each client key is still its own tenant.
    let r = p
        .send(ask("What is 2+2?"), &[("x-api-key", "sk-ant-test-b")])
        .await;
    assert_eq!(
        outcome(&r),
        "miss",
        "tenant B must not see tenant A's entry"
    );
    assert_eq!(
        outcome(&p.send(ask("What is 2+2?"), &[]).await),
        "hit-exact"
    );
    // Anthropic's other message paths pass through to Anthropic (the mock has no
    // count_tokens, so its 404 comes back unchanged).
    let r = p
        .client
        .post(format!("{}/v1/messages/count_tokens", p.base))
        .header("x-api-key", KEY_A)
        .json(&ask("count me"))
        .send()
        .await
        .unwrap();
    assert_anthropic_error(r, 404, "not_found_error").await;
    assert_eq!(p.anthropic.stats().other_calls, 1);
    p.stop().await;
}

#[tokio::test]
async fn controls_tags_and_coalescing_work_as_for_chat() {
    let p = Proxy::start(need_model!(), |c| {
        c.admin.token = Some("admin-t-0123456789".into())
    })
    .await;
    let body = ask("Explain photosynthesis briefly");
    // no-store: served, not stored; no-cache: fetched and stored again.
    let r = p.send(body.clone(), &[("cache-control", "no-store")]).await;
    assert_eq!(outcome(&r), "miss");
    assert_eq!(outcome(&p.send(body.clone(), &[]).await), "miss");
    let r = p.send(body.clone(), &[("cache-control", "no-cache")]).await;
    assert_eq!(outcome(&r), "bypass");
    assert_eq!(r.headers()["x-deja-bypass-reason"], "no-cache");
    assert_eq!(outcome(&p.send(body.clone(), &[]).await), "hit-exact");
    // Never-cache rules apply to the prompt.
    let r = p
        .send(ask("Email me at jane.doe@example.com please"), &[])
        .await;
    assert_eq!(outcome(&r), "bypass");
    assert_eq!(r.headers()["x-deja-bypass-reason"], "personal-data:email");

    // Concurrent identical misses make one upstream call.
    let calls = p.calls();
    let slow = ask("Summarise the plot of Hamlet [mock:slow=300]");
    let tasks: Vec<_> = (0..4)
        .map(|_| p.send(slow.clone(), &[("x-deja-tags", "play:hamlet")]))
        .collect();
    let results = futures::future::join_all(tasks).await;
    let mut outcomes: Vec<String> = results.iter().map(outcome).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["hit-exact", "hit-exact", "hit-exact", "miss"]);
    assert_eq!(p.calls(), calls + 1);
    // The entry carries its tag: invalidating the tag removes it.
    let removed: Value = p
        .client
        .post(format!("{}/admin/invalidate", p.base))
        .bearer_auth("admin-t-0123456789")
        .json(&json!({"tag": "play:hamlet"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["removed"], 1);
    assert_eq!(outcome(&p.send(slow, &[]).await), "miss");
    p.stop().await;
}

/// The staleness job with its timer out of the way (passes are run by the test) and no
/// minimum age.
fn with_staleness(c: &mut Config) {
    c.upstream.api_key = Some("sk-openai-server".into());
    c.staleness.enabled = true;
    c.staleness.interval_secs = 24 * 3600;
    c.staleness.min_age_secs = 0;
}

#[tokio::test]
async fn staleness_job_re_asks_anthropic_and_removes_a_changed_answer() {
    let p = Proxy::start(need_model!(), |c| {
        with_staleness(c);
        c.anthropic.api_key = Some("sk-ant-server".into());
    })
    .await;
    let mountain = ask("What is the tallest mountain on Earth?");
    assert_eq!(outcome(&p.send(mountain.clone(), &[]).await), "miss");
    let r = p.send(streamed("Name the largest ocean"), &[]).await;
    assert_eq!(outcome(&r), "miss");
    r.text().await.unwrap();
    assert_eq!(p.calls(), 2);

    // Both entries (one JSON, one recorded stream) are re-asked, with deja's key and an
    // API version, and found unchanged.
    let job = StalenessJob::new(p.app.clone());
    let report = job.run_pass().await;
    assert_eq!(
        (
            report.checked,
            report.unchanged,
            report.failed,
            report.skipped
        ),
        (2, 2, 0, 0),
        "{report:?}"
    );
    assert_eq!(p.calls(), 4);
    let seen = p.anthropic.last_headers();
    assert_eq!(seen.api_key.as_deref(), Some("sk-ant-server"));
    assert_eq!(seen.version.as_deref(), Some("2023-06-01"));

    // The model changes its mind about one question: that entry goes, the other stays.
    p.anthropic.state().set_answer(
        "What is the tallest mountain on Earth?",
        "Bananas are rich in potassium and best eaten ripe.",
    );
    let report = job.run_pass().await;
    assert_eq!(
        (report.checked, report.changed, report.removed),
        (2, 1, 1),
        "{report:?}"
    );
    let r = p.send(mountain, &[]).await;
    assert_eq!(outcome(&r), "miss");
    let fresh: Value = r.json().await.unwrap();
    assert_eq!(
        message_text(&fresh),
        "Bananas are rich in potassium and best eaten ripe."
    );
    assert_eq!(
        outcome(&p.send(ask("Name the largest ocean"), &[]).await),
        "hit-exact"
    );
    p.stop().await;
}

#[tokio::test]
async fn staleness_job_skips_anthropic_entries_without_deja_s_own_key() {
    let p = Proxy::start(need_model!(), with_staleness).await;
    assert_eq!(outcome(&p.send(ask("What is a fjord?"), &[]).await), "miss");
    let report = StalenessJob::new(p.app.clone()).run_pass().await;
    assert_eq!(
        (report.checked, report.failed, report.skipped),
        (0, 0, 1),
        "{report:?}"
    );
    assert_eq!(p.calls(), 1, "no call without a credential");
    p.stop().await;
}
