#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The error budget through the real proxy (`cache.max_false_hit_rate`): until labels
//! certify a threshold no semantic hit is served; every miss is labelled in the background
//! by comparing the upstream's answer with the nearest entry's (`/metrics` counts them); once
//! the labels certify a threshold, a paraphrase above it is served and audited in the
//! background with the operator's key (and not audited without one); the labels are saved
//! with the store and a restarted proxy starts from them; a client's verdict on a hit it was
//! served removes the entry and is a label. The upstream is the mock, told to give every
//! paraphrase the same answer and an unrelated question another.

#[macro_use]
mod common;

use std::time::Duration;

use serde_json::json;

use common::Served;
use deja_testkit::mock_upstream::MockUpstream;

use common::{sample, PARCEL as PARAPHRASES, PARCEL_ANSWER as ANSWER};

async fn ask(client: &reqwest::Client, base: &str, text: &str) -> String {
    let r = common::chat(client, base, text).await;
    r.headers()["x-deja-cache"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_learns_from_misses_before_it_serves_a_paraphrase() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    for q in PARAPHRASES {
        mock.state().set_answer(q, ANSWER);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), mock.base_url());
    // 40%: nine agreeing labels certify it, so the test stays short.
    config.cache.max_false_hit_rate = Some(0.4);
    // Every hit audited, with the operator's key.
    config.cache.audit_share = 1.0;
    config.upstream.api_key = Some("sk-operator".into());
    config.admin.token = Some("admin-token-0123456789".into());
    let mut served = Served::start(config.clone(), embedder).await;
    let client = reqwest::Client::new();

    // Nine labels are needed: the tenth lookup is the first that can find them.
    let learn = &PARAPHRASES[..10];
    for (i, q) in learn.iter().enumerate() {
        assert_eq!(
            ask(&client, &served.base, q).await,
            "miss",
            "{q}: served before the labels certified anything"
        );
        // Each answer is stored before the next question (labelled in the background).
        let mut stored = false;
        for _ in 0..200 {
            if sample(&served.scrape().await, "deja_entries ").unwrap_or(0.0) >= (i + 1) as f64 {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stored, "the answer to {q:?} was not stored");
    }
    // Every miss but the first had a candidate whose answer agrees.
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = served.scrape().await;
        if sample(&metrics, "deja_budget_labels_total{agreed=\"true\"}").unwrap_or(0.0) >= 9.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agreed = sample(&metrics, "deja_budget_labels_total{agreed=\"true\"}").unwrap();
    let disagreed = sample(&metrics, "deja_budget_labels_total{agreed=\"false\"}").unwrap();
    assert!(agreed >= 9.0 && disagreed == 0.0, "{metrics}");
    assert!(
        metrics.contains("deja_budget_certified_similarity{category="),
        "{metrics}"
    );
    // A paraphrase close to what was learned is now served.
    let calls = mock.stats().chat_calls;
    assert_eq!(
        ask(&client, &served.base, PARAPHRASES[10]).await,
        "hit-semantic"
    );
    // The hit is asked upstream again in the background, with the operator's key, and the
    // answers agree.
    let mut audited = None;
    for _ in 0..200 {
        audited = sample(
            &served.scrape().await,
            "deja_audit_checks_total{agreed=\"true\"}",
        );
        if audited == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(audited, Some(1.0), "{}", served.scrape().await);
    assert_eq!(
        mock.stats().chat_calls,
        calls + 1,
        "one upstream call: the audit's"
    );
    let metrics = served.scrape().await;
    assert!(
        metrics.contains("deja_audit_false_hit_rate{category="),
        "{metrics}"
    );
    // The same in /admin/stats, which `deja stats` prints.
    let stats = common::admin_get(
        &client,
        &served.base,
        "/admin/stats",
        "admin-token-0123456789",
    )
    .await;
    let budget = &stats["error_budget"];
    let audit = &budget["audits"][0];
    assert_eq!(
        (&audit["checked"], &audit["wrong"], &audit["over_budget"]),
        (&json!(1), &json!(0), &json!(false)),
        "{budget}"
    );
    assert!(audit["high"].as_f64().unwrap() > 0.0, "{budget}");
    assert!(
        budget["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["support"] == 0 && c["certified_similarity"].is_f64()),
        "{budget}"
    );
    // An unrelated question is still a miss.
    assert_eq!(
        ask(
            &client,
            &served.base,
            "what are your opening hours on sunday"
        )
        .await,
        "miss"
    );
    served.stop().await;
    drop(served);

    // The labels were saved with the store at the clean stop: a proxy started as `deja
    // serve` starts serves the next paraphrase at once, having labelled nothing itself.
    // Without an operator key there is no audit: a client's key is never spent on one.
    config.upstream.api_key = None;
    let mut restarted = Served::serve(deja_server::build_state(config).await.unwrap()).await;
    let calls = mock.stats().chat_calls;
    let hit = common::chat(&client, &restarted.base, "where's my parcel").await;
    assert_eq!(hit.headers()["x-deja-cache"], "hit-semantic");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        mock.stats().chat_calls,
        calls,
        "no audit call without an operator key"
    );
    let metrics = restarted.scrape().await;
    assert_eq!(
        sample(&metrics, "deja_budget_labels_total{agreed=\"true\"}"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "deja_audit_checks_total{agreed=\"true\"}"),
        Some(0.0),
        "{metrics}"
    );

    // The client says that hit was wrong: only with its own key, once; the entry goes.
    let request_id = hit.headers()["x-deja-request-id"].to_str().unwrap();
    let entry = hit.headers()["x-deja-entry"].to_str().unwrap().to_string();
    let verdict = |key: &str, body: serde_json::Value| {
        client
            .post(format!("{}/v1/deja/feedback", restarted.base))
            .header("authorization", format!("Bearer {key}"))
            .json(&body)
            .send()
    };
    let wrong = serde_json::json!({"request_id": request_id, "verdict": "wrong"});
    let r = verdict("sk-other", wrong.clone()).await.unwrap();
    assert_eq!(r.status(), 404, "another tenant may not judge it");
    let r = verdict(
        "sk-test",
        serde_json::json!({"request_id": request_id, "verdict": "meh"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    let r = verdict("sk-test", wrong.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let done: serde_json::Value = r.json().await.unwrap();
    assert_eq!(done["entry"], entry.as_str(), "{done}");
    assert_eq!(done["removed"], true, "{done}");
    let r = verdict("sk-test", wrong).await.unwrap();
    assert_eq!(r.status(), 404, "one verdict per hit");
    let metrics = restarted.scrape().await;
    assert_eq!(
        sample(&metrics, "deja_feedback_total{verdict=\"wrong\"}"),
        Some(1.0),
        "{metrics}"
    );
    restarted.stop().await;
}

/// Waits until a metric's sample reaches `want` (or 4 s pass) and returns it.
async fn await_sample(served: &Served, name: &str, want: f64) -> Option<f64> {
    let mut got = None;
    for _ in 0..200 {
        got = sample(&served.scrape().await, name);
        if got == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_hits_are_asked_again_to_measure_the_answer_comparisons_own_errors() {
    let embedder = need_model!();
    let mock = MockUpstream::start().await.unwrap();
    let question = PARAPHRASES[0];
    mock.state().set_answer(question, ANSWER);
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), mock.base_url());
    config.cache.max_false_hit_rate = Some(0.4);
    config.cache.audit_exact_share = 1.0;
    config.upstream.api_key = Some("sk-operator".into());
    config.admin.token = Some("admin-token-0123456789".into());
    let mut served = Served::start(config, embedder).await;
    let client = reqwest::Client::new();

    assert_eq!(ask(&client, &served.base, question).await, "miss");
    assert_eq!(
        await_sample(&served, "deja_entries ", 1.0).await,
        Some(1.0),
        "the answer was not stored"
    );
    // The exact hit is served at once, then asked again with the operator's key: the
    // upstream gives the same answer, and the comparison agrees.
    assert_eq!(ask(&client, &served.base, question).await, "hit-exact");
    let name = "deja_judge_checks_total{agreed=\"true\"}";
    assert_eq!(await_sample(&served, name, 1.0).await, Some(1.0));
    assert_eq!(
        mock.stats().chat_calls,
        2,
        "the miss's call and the check's"
    );
    // The upstream now words its answer otherwise (here: another answer altogether):
    // the comparison calls it different, which is its own error, since the request is
    // the same.
    mock.state()
        .set_answer(question, "The shop opens at nine on weekdays.");
    assert_eq!(ask(&client, &served.base, question).await, "hit-exact");
    let name = "deja_judge_checks_total{agreed=\"false\"}";
    assert_eq!(await_sample(&served, name, 1.0).await, Some(1.0));
    let metrics = served.scrape().await;
    assert_eq!(
        sample(
            &metrics,
            "deja_judge_false_disagree_rate{category=\"default\",bound=\"estimate\"}"
        ),
        Some(0.5),
        "{metrics}"
    );
    let stats = common::admin_get(
        &client,
        &served.base,
        "/admin/stats",
        "admin-token-0123456789",
    )
    .await;
    let judge = &stats["error_budget"]["judge"][0];
    assert_eq!(
        (
            &judge["category"],
            &judge["checked"],
            &judge["judged_different"],
            &judge["still_checking"]
        ),
        (&json!("default"), &json!(2), &json!(1), &json!(true)),
        "{stats}"
    );
    // Nothing is stored or changed by a check: the entry still serves its answer.
    let r = common::chat(&client, &served.base, question).await;
    assert_eq!(r.headers()["x-deja-cache"], "hit-exact");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER, "{body}");
    served.stop().await;
}
