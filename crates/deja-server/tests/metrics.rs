#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /metrics` after a scripted sequence of requests through a real listener, the
//! embedded store and the mock upstream: exact counter values, histograms that agree with
//! the counters, and the exposition checked by `promtool check metrics`.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-test-token";

struct Proxy {
    base: String,
    mock: MockUpstream,
    client: reqwest::Client,
    served: Served,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy with strict durability, so a miss is stored before its response is sent
    /// and the next request sees it without waiting.
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), mock.base_url());
        config.store.durability = deja_server::config::Durability::Strict;
        config.admin.token = Some(ADMIN_TOKEN.into());
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            mock,
            client: reqwest::Client::new(),
            served,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }

    /// A chat request; returns the `x-deja-cache` outcome, the response headers and body.
    async fn chat(&self, text: &str, headers: &[(&str, &str)]) -> (String, Value, Value) {
        let mut rb = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}),
            );
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "{text}");
        let hdrs = headers_json(&r);
        let outcome = hdrs["x-deja-cache"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (outcome, hdrs, r.json().await.unwrap())
    }

    /// A streamed chat request; the `x-deja-cache` outcome and the SSE text.
    async fn chat_stream(&self, text: &str) -> (String, String) {
        let r = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({
                "model": "gpt-4o-mini",
                "stream": true,
                "messages": [{"role": "user", "content": text}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{text}");
        let outcome = r.headers()["x-deja-cache"].to_str().unwrap().to_string();
        (outcome, r.text().await.unwrap())
    }

    async fn embeddings(&self, input: &[&str]) -> (String, Value) {
        let r = self
            .client
            .post(format!("{}/v1/embeddings", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({"model": "text-embedding-3-small", "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let outcome = r.headers()["x-deja-cache"].to_str().unwrap().to_string();
        (outcome, r.json().await.unwrap())
    }

    /// Scrapes `/metrics` without credentials; the raw text.
    async fn scrape(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        r.text().await.unwrap()
    }
}

fn headers_json(r: &reqwest::Response) -> Value {
    r.headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The samples of an exposition, by `name{labels}` as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The value of one sample; a missing sample fails the test.
fn get(s: &HashMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("{series} not in the scrape"))
}

/// The sum over the samples of `name` (any labels).
fn total(s: &HashMap<String, f64>, name: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn a_repeated_paraphrase_is_served_through_its_alias() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let embeds = |s: &HashMap<String, f64>| {
        get(
            s,
            "deja_stage_duration_seconds_count{endpoint=\"chat\",stage=\"embed\"}",
        )
    };
    assert_eq!(p.chat("How do I reset my password?", &[]).await.0, "miss");
    let (o, first, _) = p.chat("how can I reset my password", &[]).await;
    assert_eq!(o, "hit-semantic");
    let before = samples(&p.scrape().await);
    assert_eq!(get(&before, "deja_aliases"), 1.0);
    assert_eq!(get(&before, "deja_alias_hits_total"), 0.0);
    // The repeat: the same answer at the same similarity, without an embedding.
    let (o, again, _) = p.chat("how can I reset my password", &[]).await;
    assert_eq!(o, "hit-semantic");
    assert_eq!(again["x-deja-similarity"], first["x-deja-similarity"]);
    let after = samples(&p.scrape().await);
    assert_eq!(get(&after, "deja_alias_hits_total"), 1.0);
    assert_eq!(embeds(&after), embeds(&before));
    // A client asking for a similarity above the hit's is decided anew: a miss.
    let (o, _, _) = p
        .chat(
            "how can I reset my password",
            &[("x-deja-min-similarity", "0.9999")],
        )
        .await;
    assert_eq!(o, "miss");
}

#[tokio::test]
async fn scripted_requests_show_up_as_exact_counts() {
    let p = Proxy::start(need_model!(), |c| {
        c.rules.patterns.push(deja_core::rules::NamedPattern {
            name: "classified".into(),
            regex: "(?i)classified".into(),
            applies_to: deja_core::rules::AppliesTo::Answer,
        });
    })
    .await;
    let before = samples(&p.scrape().await);
    assert_eq!(total(&before, "deja_requests_total"), 0.0);
    assert_eq!(get(&before, "deja_entries"), 0.0);

    // A miss, its exact repeat, and a paraphrase.
    let (o, _, miss_body) = p.chat("How do I reset my password?", &[]).await;
    assert_eq!(o, "miss");
    let usage = &miss_body["usage"];
    let (prompt_tokens, completion_tokens) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt_tokens > 0 && completion_tokens > 0, "{usage}");
    assert_eq!(
        p.chat("How do I reset my password?", &[]).await.0,
        "hit-exact"
    );
    assert_eq!(
        p.chat("how can I reset my password", &[]).await.0,
        "hit-semantic"
    );
    // The same entry served as a stream.
    let (o, text) = p.chat_stream("How do I reset my password?").await;
    assert_eq!(o, "hit-exact");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // An answer that matches an answer rule: served (a miss), not stored.
    assert_eq!(
        p.chat("Tell me about the classified plan", &[]).await.0,
        "miss"
    );
    // Two bypasses with different reasons (the second is still stored: it refreshes).
    let (o, h, _) = p.chat("What is the weather today?", &[]).await;
    assert_eq!(
        (o.as_str(), &h["x-deja-bypass-reason"]),
        ("bypass", &json!("time-sensitive"))
    );
    let (o, h, _) = p
        .chat(
            "Name three primary colours",
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(
        (o.as_str(), &h["x-deja-bypass-reason"]),
        ("bypass", &json!("no-cache"))
    );
    // A near-duplicate that verification refuses: a miss with a reject reason.
    assert_eq!(p.chat("How do I enable dark mode?", &[]).await.0, "miss");
    let (o, h, _) = p.chat("How do I disable dark mode?", &[]).await;
    assert_eq!(o, "miss");
    let reject = h["x-deja-rejected"]
        .as_str()
        .unwrap_or_else(|| panic!("no x-deja-rejected in {h}"))
        .to_string();
    // Embeddings: two items sent upstream, then both served from the cache.
    let (o, emb) = p.embeddings(&["alpha beta", "gamma delta epsilon"]).await;
    assert_eq!(o, "miss");
    let emb_tokens = emb["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(
        p.embeddings(&["alpha beta", "gamma delta epsilon"]).await.0,
        "hit-exact"
    );

    let file = p._dir.path().join("deja.redb");
    let size_before = std::fs::metadata(&file).unwrap().len() as f64;
    let s = samples(&p.scrape().await);
    let size_after = std::fs::metadata(&file).unwrap().len() as f64;
    let chat =
        |outcome: &str| format!("deja_requests_total{{endpoint=\"chat\",outcome=\"{outcome}\"}}");
    let emb_req = |outcome: &str| {
        format!("deja_requests_total{{endpoint=\"embeddings\",outcome=\"{outcome}\"}}")
    };
    for (series, want) in [
        (chat("miss"), 4.0),
        (chat("hit_exact"), 2.0),
        (chat("hit_semantic"), 1.0),
        (chat("bypass"), 2.0),
        (emb_req("miss"), 1.0),
        (emb_req("hit_exact"), 1.0),
        (emb_req("hit_semantic"), 0.0),
        (emb_req("bypass"), 0.0),
        ("deja_bypass_total{reason=\"time-sensitive\"}".into(), 1.0),
        ("deja_bypass_total{reason=\"no-cache\"}".into(), 1.0),
        (
            format!("deja_verification_rejects_total{{reason=\"{reject}\"}}"),
            1.0,
        ),
        ("deja_upstream_calls_total{endpoint=\"chat\"}".into(), 6.0),
        (
            "deja_upstream_calls_total{endpoint=\"embeddings\"}".into(),
            1.0,
        ),
        (
            "deja_upstream_tokens_avoided_total{kind=\"prompt\"}".into(),
            // The two exact and the semantic hit served the first answer; each embedding
            // item was stored with its share of the batch's tokens.
            (3 * prompt_tokens + emb_tokens / 2 * 2) as f64,
        ),
        (
            "deja_upstream_tokens_avoided_total{kind=\"completion\"}".into(),
            (3 * completion_tokens) as f64,
        ),
        ("deja_embedding_items_total{result=\"hit\"}".into(), 2.0),
        ("deja_embedding_items_total{result=\"miss\"}".into(), 2.0),
        // Four chat answers (neither the time-sensitive prompt nor the classified answer
        // is stored) and two embedding items.
        (
            "deja_answers_not_stored_total{reason=\"rule:classified\"}".into(),
            1.0,
        ),
        ("deja_entries".into(), 6.0),
        ("deja_removed_total{cause=\"invalidated\"}".into(), 0.0),
    ] {
        assert_eq!(get(&s, &series), want, "{series}");
    }
    // The store's size is its file's (which only grows while the test runs).
    let bytes = get(&s, "deja_store_bytes");
    assert!(
        bytes > 0.0 && (size_before..=size_after).contains(&bytes),
        "{bytes} not in {size_before}..={size_after}"
    );
    // Only the reasons that happened are non-zero.
    assert_eq!(total(&s, "deja_bypass_total"), 2.0);
    assert_eq!(total(&s, "deja_verification_rejects_total"), 1.0);
    assert_eq!(total(&s, "deja_answers_not_stored_total"), 1.0);
    // The metrics agree with the mock upstream's own count of calls.
    let stats = p.mock.stats();
    assert_eq!(stats.chat_calls, 6);
    assert_eq!(stats.embedding_calls, 1);

    // Every histogram counts what its counter counts, and its +Inf bucket is its count.
    for endpoint in ["chat", "embeddings"] {
        for outcome in ["hit_exact", "hit_semantic", "miss", "bypass"] {
            let labels = format!("endpoint=\"{endpoint}\",outcome=\"{outcome}\"");
            let count = get(
                &s,
                &format!("deja_request_duration_seconds_count{{{labels}}}"),
            );
            assert_eq!(
                count,
                get(&s, &format!("deja_requests_total{{{labels}}}")),
                "{labels}"
            );
            assert_eq!(
                count,
                get(
                    &s,
                    &format!("deja_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}")
                ),
                "{labels}"
            );
            let sum = get(
                &s,
                &format!("deja_request_duration_seconds_sum{{{labels}}}"),
            );
            assert_eq!(sum > 0.0, count > 0.0, "{labels}: sum {sum}");
        }
        let labels = format!("endpoint=\"{endpoint}\"");
        assert_eq!(
            get(
                &s,
                &format!("deja_upstream_duration_seconds_count{{{labels}}}")
            ),
            get(&s, &format!("deja_upstream_calls_total{{{labels}}}")),
            "{labels}"
        );
    }

    // Stages: every chat request was read into a key; the seven looked up read the
    // store; the five not answered by an exact hit embedded and searched; verification
    // ran at least for the semantic hit and the refused candidate.
    let stage = |stage: &str| {
        get(
            &s,
            &format!("deja_stage_duration_seconds_count{{endpoint=\"chat\",stage=\"{stage}\"}}"),
        )
    };
    assert_eq!(stage("normalise"), 9.0);
    assert_eq!(stage("store"), 7.0);
    assert_eq!(stage("embed"), 5.0);
    assert_eq!(stage("search"), 5.0);
    assert!(stage("verify") >= 2.0, "verify {}", stage("verify"));
    assert_eq!(stage("upstream"), 6.0);

    // Removals come from the engine's counters.
    let r = p
        .client
        .post(format!("{}/admin/invalidate", p.base))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = samples(&p.scrape().await);
    assert_eq!(get(&s, "deja_removed_total{cause=\"invalidated\"}"), 6.0);
    assert_eq!(get(&s, "deja_entries"), 0.0);
    p.stop().await;
}

/// Runs `promtool check metrics` on an exposition; `None` when promtool is not installed
/// (unless `DEJA_REQUIRE_PROMTOOL=1`, which makes that a failure).
fn promtool_check(text: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("DEJA_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
                panic!("DEJA_REQUIRE_PROMTOOL=1 but promtool is not installed (scripts/install-promtool.sh)");
            }
            eprintln!("skipped: promtool not installed");
            return None;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

/// promtool's parser and linter accept the scrape (types, HELP, `_total` suffixes, units,
/// histogram shape), after traffic of every outcome and with a configured rule's reason.
/// Runs on the hash embedder, so it needs no model.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let p = Proxy::start(Arc::new(deja_testkit::conformance::HashEmbedder), |c| {
        c.rules.patterns.push(deja_core::rules::NamedPattern {
            name: "project-x".into(),
            regex: "(?i)project x".into(),
            applies_to: deja_core::rules::AppliesTo::Prompt,
        });
    })
    .await;
    assert_eq!(p.chat("Tell me a joke about cats", &[]).await.0, "miss");
    assert_eq!(
        p.chat("Tell me a joke about cats", &[]).await.0,
        "hit-exact"
    );
    let (o, h, _) = p.chat("What is the status of Project X?", &[]).await;
    assert_eq!(
        (o.as_str(), &h["x-deja-bypass-reason"]),
        ("bypass", &json!("rule:project-x"))
    );
    assert_eq!(p.embeddings(&["one", "two"]).await.0, "miss");
    let text = p.scrape().await;
    assert_eq!(
        get(
            &samples(&text),
            "deja_bypass_total{reason=\"rule:project-x\"}"
        ),
        1.0
    );
    p.stop().await;

    let Some(out) = promtool_check(&text) else {
        return;
    };
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics failed ({}):\nstdout: {}\nstderr: {}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The check above can fail: promtool rejects what it should (a counter without
/// `_total`), so a passing check means something.
#[test]
fn promtool_rejects_a_counter_without_total() {
    let bad = "# HELP deja_requests Requests.\n# TYPE deja_requests counter\ndeja_requests 1\n";
    let Some(out) = promtool_check(bad) else {
        return;
    };
    assert!(!out.status.success(), "promtool accepted {bad:?}");
}

/// Russian the English embedder only sees letter by letter: enable / disable (cosine 0.98)
/// is refused as `unseen`. A question-frame rewording of an English question is served
/// with no upstream call, though the model's confidence is below its threshold.
#[tokio::test]
async fn fragments_are_refused_and_question_frames_are_served() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    assert_eq!(
        p.chat("Как включить двухфакторную аутентификацию?", &[])
            .await
            .0,
        "miss"
    );
    let (o, h, _) = p
        .chat("Как отключить двухфакторную аутентификацию?", &[])
        .await;
    assert_eq!(o, "miss", "{h}");
    assert_eq!(h["x-deja-rejected"], "unseen", "{h}");
    assert_eq!(p.chat("How do I lose weight?", &[]).await.0, "miss");
    let (o, h, _) = p.chat("What is the best way to lose weight?", &[]).await;
    assert_eq!(o, "hit-semantic", "{h}");
    assert_eq!(p.mock.stats().chat_calls, 3);
    let s = samples(&p.scrape().await);
    assert_eq!(
        get(&s, "deja_verification_rejects_total{reason=\"unseen\"}"),
        1.0
    );
    p.stop().await;
}

/// Chinese the English embedder cannot read comes out as the same vector whatever it says;
/// the candidate is refused as `unseen`, and counted.
#[tokio::test]
async fn prompts_differing_where_the_embedder_is_blind_are_refused_and_counted() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    // Cat food, then dog food: cosine 1.0 with all-MiniLM-L6-v2.
    assert_eq!(p.chat("猫粮多少钱？", &[]).await.0, "miss");
    let (o, h, body) = p.chat("狗粮多少钱？", &[]).await;
    assert_eq!(o, "miss", "{h}");
    assert_eq!(h["x-deja-rejected"], "unseen", "{h}");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("狗粮"));
    // The same question again is an exact hit; both questions reached the upstream once.
    assert_eq!(p.chat("狗粮多少钱？", &[]).await.0, "hit-exact");
    assert_eq!(p.mock.stats().chat_calls, 2);
    let s = samples(&p.scrape().await);
    assert_eq!(
        get(&s, "deja_verification_rejects_total{reason=\"unseen\"}"),
        1.0
    );
    p.stop().await;
}
