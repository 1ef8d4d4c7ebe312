#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The staleness job against the mock upstream, which changes some answers and lists the
//! questions it was asked: entries are stored through the real proxy (so their requests
//! are recorded as in production), then passes run with an injected clock (no sleeps).
//! The embedder compares bags of words, so an unchanged answer scores 1 and a rewritten
//! one far less, deterministically.

use std::sync::Arc;

use async_trait::async_trait;
use deja_core::{Cache, EmbedError, Embedder, Entry, EntryId, ManualClock};
use deja_server::config::{Config, StaleAction};
use deja_server::staleness::{BudgetState, PassReport, StalenessJob, STATE_FILE};
use deja_server::AppState;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const TOKEN: &str = "staleness-admin-token";
const DAY_MS: u64 = 24 * 3600 * 1000;

/// Hashes words into 64 buckets: texts sharing most words are similar, texts sharing few
/// are not.
struct WordsEmbedder;

#[async_trait]
impl Embedder for WordsEmbedder {
    fn id(&self) -> &str {
        "test:words64"
    }
    fn dim(&self) -> usize {
        64
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 64];
                for w in t.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                    if w.is_empty() {
                        continue;
                    }
                    let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    });
                    v[(h % 64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

struct Server {
    base: String,
    app: AppState,
    cache: Cache,
    clock: Arc<ManualClock>,
    mock: MockUpstream,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: tempfile::TempDir,
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
        config.upstream.api_key = Some("sk-deja-server".into());
        config.admin.token = Some(TOKEN.into());
        config.staleness.enabled = true;
        // Passes are run by the tests, not by the timer.
        config.staleness.interval_secs = 24 * 3600;
        config.staleness.min_age_secs = 60;
        tweak(&mut config);
        config.validate().unwrap();
        let store = Arc::new(deja_server::open_store(&config).unwrap());
        let embedder = Arc::new(WordsEmbedder);
        let index = Arc::new(deja_store_local::HnswIndex::new(
            embedder.id(),
            embedder.dim(),
            deja_store_local::HnswParams::default(),
        ));
        // Day 20,000 of the epoch, at 10:00 UTC.
        let clock = Arc::new(ManualClock::new(20_000 * DAY_MS + 10 * 3600 * 1000));
        let cache = Cache::new(
            store,
            index,
            embedder,
            clock.clone(),
            deja_server::cache_options(&config),
        )
        .unwrap();
        let app = AppState::new(config, cache.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(deja_server::serve_on(listener, app.clone(), async {
            let _ = rx.await;
        }));
        Server {
            base,
            app,
            cache,
            clock,
            mock,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            dir,
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

    async fn chat(&self, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth("sk-client")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Every stored entry, by id.
    async fn entries(&self) -> Vec<Entry> {
        let mut ids = Vec::new();
        self.cache
            .store()
            .scan_meta(&mut |m| ids.push(m.id))
            .await
            .unwrap();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            out.push(self.cache.store().get(id).await.unwrap().unwrap());
        }
        out
    }

    async fn admin_stats(&self) -> Value {
        self.client
            .get(format!("{}/admin/stats", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
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

const QUESTIONS: [&str; 6] = [
    "What is the price of the basic plan",
    "Which regions does the service run in",
    "How many users can one team have",
    "What is the refund window for annual plans",
    "Which file formats can be imported",
    "How long are audit logs kept",
];

/// Six entries are checked two per pass within five calls a day: the mock sees exactly the
/// sampled entries' questions, in rotation order; the changed answers are invalidated;
/// the budget stops the fourth pass and survives a restart of the job; the next day the
/// rotation goes on where it stopped.
#[tokio::test]
async fn samples_in_rotation_within_the_daily_call_budget_and_invalidates_changed_answers() {
    let s = Server::start(|c| {
        c.staleness.entries_per_pass = 2;
        c.staleness.max_calls_per_day = 5;
    })
    .await;
    for q in QUESTIONS {
        assert_eq!(outcome(&s.chat(ask(q)).await), "miss");
    }
    // An embedding item: stored without a request, so never re-asked.
    let r = s
        .client
        .post(format!("{}/v1/embeddings", s.base))
        .json(&json!({"model": "text-embedding-3-small", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let entries = s.entries().await;
    assert_eq!(entries.len(), 7);
    for e in &entries {
        let is_chat = QUESTIONS.contains(&e.prompt.as_str());
        assert_eq!(e.request.is_some(), is_chat, "{}", e.prompt);
    }
    // Chat entries in rotation (id) order.
    let order: Vec<&Entry> = entries.iter().filter(|e| e.request.is_some()).collect();
    let prompt = |i: usize| order[i].prompt.clone();
    s.mock.reset();

    // Too young: nothing is checked yet.
    let job = StalenessJob::new(s.app.clone());
    assert_eq!(job.run_pass().await, PassReport::default());
    assert_eq!(s.mock.stats().chat_calls, 0);
    s.clock.advance_ms(61_000);

    // The model changed its mind about the 2nd and 5th entries in rotation order.
    s.mock.state().set_answer(
        &prompt(1),
        "Prices were revised; contact sales for a quote.",
    );
    s.mock
        .state()
        .set_answer(&prompt(4), "Only CSV is supported since the last release.");

    let r1 = job.run_pass().await;
    assert_eq!(
        (r1.checked, r1.unchanged, r1.changed, r1.removed),
        (2, 1, 1, 1)
    );
    let r2 = job.run_pass().await;
    assert_eq!((r2.checked, r2.unchanged, r2.changed), (2, 2, 0));
    let r3 = job.run_pass().await;
    assert_eq!((r3.checked, r3.changed, r3.removed), (1, 1, 1));
    assert!(r3.budget_exhausted);
    // The embedding item was passed over without a call if the rotation reached it (ids
    // are random: it may come after the 5th chat entry).
    let embedding = entries.iter().find(|e| e.request.is_none()).unwrap();
    assert_eq!(
        r1.skipped + r2.skipped + r3.skipped,
        u64::from(embedding.id < order[4].id)
    );
    let asked: Vec<String> = (0..5).map(prompt).collect();
    assert_eq!(s.mock.state().chat_questions(), asked);
    assert_eq!(s.mock.stats().chat_calls, 5);

    // The budget is spent: no call, now or from a restarted job (it reads the state file).
    let r4 = job.run_pass().await;
    assert!(r4.budget_exhausted && r4.checked == 0);
    drop(job);
    let saved = BudgetState::load(&s.dir.path().join(STATE_FILE));
    assert_eq!((saved.day, saved.calls), (20_000, 5));
    let job = StalenessJob::new(s.app.clone());
    assert!(job.run_pass().await.budget_exhausted);
    assert_eq!(s.mock.stats().chat_calls, 5);

    // The changed entries are gone; the others are still served.
    let left: Vec<String> = s.entries().await.into_iter().map(|e| e.prompt).collect();
    assert!(!left.contains(&prompt(1)) && !left.contains(&prompt(4)));
    assert_eq!(left.len(), 5);
    assert_eq!(outcome(&s.chat(ask(&prompt(0))).await), "hit-exact");
    assert_eq!(s.mock.stats().chat_calls, 5);

    // Next day: the rotation continues after the 5th entry (the 6th), then wraps.
    s.clock.advance_ms(DAY_MS);
    let r5 = job.run_pass().await;
    assert_eq!((r5.checked, r5.changed), (2, 0));
    let questions = s.mock.state().chat_questions();
    assert_eq!(questions[5..], [prompt(5), prompt(0)]);

    let c = s.cache.counters().await.unwrap();
    assert_eq!(
        (
            c.stale_checks,
            c.removed_stale,
            c.stale_replaced,
            c.stale_check_failures
        ),
        (7, 2, 0, 0)
    );
    assert!(c.stale_check_tokens > 0);
    let stats = s.admin_stats().await;
    assert_eq!(stats["counters"]["removed_stale"], 2);
    assert_eq!(stats["counters"]["stale_checks"], 7);
    assert_eq!(stats["staleness"]["calls_today"], 2);
    assert_eq!(stats["staleness"]["max_calls_per_day"], 5);
    s.stop().await;
}

/// `action = "replace"`: a streamed entry whose answer changed gets the fresh answer (same
/// id), served afterwards in both shapes without an upstream call; an unchanged streamed
/// entry compares equal through its assembled chunks. The token budget stops a pass before
/// a check that would not fit.
#[tokio::test]
async fn replaces_changed_answers_including_streamed_ones_within_the_token_budget() {
    let s = Server::start(|c| {
        c.staleness.action = StaleAction::Replace;
        c.staleness.entries_per_pass = 10;
    })
    .await;
    let stream = |q: &str| {
        let mut b = ask(q);
        b["stream"] = json!(true);
        b
    };
    for q in &QUESTIONS[..3] {
        let r = s.chat(stream(q)).await;
        assert_eq!(outcome(&r), "miss");
        r.bytes().await.unwrap();
    }
    let entries = s.entries().await;
    assert_eq!(entries.len(), 3);
    assert!(entries
        .iter()
        .all(|e| matches!(e.answer, deja_core::Answer::Chunks(_))));
    let changed = entries[1].clone();
    let new_answer = "The basic plan costs twelve euros a month since March.";
    s.mock.state().set_answer(&changed.prompt, new_answer);
    s.mock.reset();
    s.clock.advance_ms(120_000);

    let r = StalenessJob::new(s.app.clone()).run_pass().await;
    assert_eq!(
        (r.checked, r.unchanged, r.changed, r.replaced, r.removed),
        (3, 2, 1, 1, 0)
    );
    // Each question was re-sent as a non-streamed request with the server's key.
    assert_eq!(s.mock.stats().chat_calls, 3);
    assert_eq!(
        s.mock.last_authorization().as_deref(),
        Some("Bearer sk-deja-server")
    );
    let after = s.cache.store().get(changed.id).await.unwrap().unwrap();
    assert_eq!(after.id, changed.id);
    assert_eq!(after.created_at_ms, s.cache.now_ms());
    assert_eq!(after.request, changed.request);
    s.mock.reset();
    let r = s.chat(ask(&changed.prompt)).await;
    assert_eq!(outcome(&r), "hit-exact");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], new_answer);
    let r = s.chat(stream(&changed.prompt)).await;
    assert_eq!(outcome(&r), "hit-exact");
    let text = r.text().await.unwrap();
    assert!(text.contains("twelve euros"), "{text}");
    assert_eq!(s.mock.stats().chat_calls, 0);
    let c = s.cache.counters().await.unwrap();
    assert_eq!((c.stale_replaced, c.removed_stale), (1, 0));
    s.stop().await;

    // The token budget: the mock counts words, about 20 tokens a check here; 30 tokens a
    // day allow one check, and the second would not fit.
    let s = Server::start(|c| {
        c.staleness.entries_per_pass = 10;
        c.staleness.max_tokens_per_day = 30;
    })
    .await;
    for q in &QUESTIONS[..3] {
        s.chat(ask(q)).await;
    }
    let usage = s.entries().await[0].usage;
    let per_check = usage.prompt_tokens + usage.completion_tokens;
    assert!((16..=30).contains(&per_check), "{per_check}");
    s.mock.reset();
    s.clock.advance_ms(120_000);
    let job = StalenessJob::new(s.app.clone());
    let r = job.run_pass().await;
    assert_eq!(r.checked, 1);
    assert!(r.budget_exhausted);
    assert_eq!(s.mock.stats().chat_calls, 1);
    assert_eq!(job.state().await.tokens, per_check);
    s.stop().await;
}

/// A check whose upstream call fails is counted as a failure, spends a call but no
/// tokens, and leaves the entry alone; an entry removed meanwhile is not resurrected.
#[tokio::test]
async fn failed_checks_leave_entries_alone() {
    let s = Server::start(|c| {
        c.staleness.entries_per_pass = 10;
        c.staleness.action = StaleAction::Replace;
    })
    .await;
    s.chat(ask("Tell me about [mock:500] errors")).await;
    s.chat(ask(QUESTIONS[0])).await;
    // The first request failed upstream and was not stored; store one that fails when
    // re-asked by recording the marker in its request.
    let entries = s.entries().await;
    assert_eq!(entries.len(), 1);
    let mut broken = entries[0].clone();
    broken.id = EntryId(broken.id.0 ^ 1);
    broken.prompt = "Tell me about [mock:500] errors".into();
    broken.exact_key = deja_core::ExactKey::new(&broken.partition, &broken.prompt);
    broken.request = Some(serde_json::to_vec(&ask("Tell me about [mock:500] errors")).unwrap());
    broken.vector.clear();
    broken.embedder_id.clear();
    s.cache.restore(&broken).await.unwrap();
    s.mock.reset();
    s.clock.advance_ms(120_000);
    let r = StalenessJob::new(s.app.clone()).run_pass().await;
    assert_eq!((r.checked, r.failed, r.changed), (1, 1, 0));
    assert_eq!(s.entries().await.len(), 2);
    let c = s.cache.counters().await.unwrap();
    assert_eq!((c.stale_checks, c.stale_check_failures), (1, 1));
    s.stop().await;
}

/// `serve_on` starts the job when `[staleness] enabled = true`: with a one-second interval
/// the mock sees the stored entry's question again without any client request. (Polls
/// the mock, bounded, because this is about the real timer.)
#[tokio::test]
async fn serve_on_starts_the_job_when_enabled() {
    let s = Server::start(|c| {
        c.staleness.interval_secs = 1;
        c.staleness.min_age_secs = 0;
    })
    .await;
    s.chat(ask(QUESTIONS[0])).await;
    s.mock.reset();
    let mut asked = Vec::new();
    for _ in 0..100 {
        asked = s.mock.state().chat_questions();
        if !asked.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(asked.first().map(String::as_str), Some(QUESTIONS[0]));
    s.stop().await;
    // Off (the default): no job.
    let s = Server::start(|c| c.staleness.enabled = false).await;
    assert!(deja_server::staleness::spawn(s.app.clone()).is_none());
    s.stop().await;
}
