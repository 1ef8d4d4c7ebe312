#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Cost accounting through the real server: a scripted sequence of requests with a
//! configured price table, on an injected clock that crosses midnight, then the ledger in
//! `/admin/stats`, `deja_saved_usd_total` in `/metrics`, the ledger file a clean stop
//! writes, and the same ledger after a restart. Expected dollars are computed here in
//! integer billionths from the mock upstream's reported usage, not by the code under test.
//!
//! Also: recording a request on an existing (day, model) row allocates nothing (a
//! counting allocator), and what it costs in time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use common::Served;
use deja_core::{Clock, Embedder, ManualClock};
use deja_server::observe::ledger::{Ledger, LedgerReport, LEDGER_FILE};
use deja_server::pricing::ModelPrice;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "cost-test-admin-token";
const DAY_MS: u64 = 24 * 3600 * 1000;
/// 2025-06-01 12:00 UTC.
const START_MS: u64 = 20_240 * DAY_MS + 12 * 3600 * 1000;

/// Counts this thread's allocations while `COUNTING` is set on it.
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct Proxy {
    base: String,
    client: reqwest::Client,
    served: Served,
}

fn price(input_per_mtok: f64, output_per_mtok: f64) -> ModelPrice {
    ModelPrice {
        input_per_mtok,
        output_per_mtok,
    }
}

impl Proxy {
    /// A proxy on `data_dir` (strict durability: a miss is stored before it is answered)
    /// whose cache reads `clock`, with a configured price table.
    async fn start(
        data_dir: &Path,
        upstream: &MockUpstream,
        embedder: Arc<dyn Embedder>,
        clock: Arc<ManualClock>,
    ) -> Proxy {
        let mut config = common::config(data_dir, upstream.base_url());
        config.store.durability = deja_server::config::Durability::Strict;
        config.admin.token = Some(ADMIN_TOKEN.into());
        // Replaces the default gpt-4o price; adds a model the defaults do not know.
        config.prices.insert("gpt-4o".into(), price(5.0, 20.0));
        config.prices.insert("my-model".into(), price(1.0, 2.0));
        config.validate().unwrap();
        let served = Served::start_with(config, embedder, clock, |s| s).await;
        Proxy {
            base: served.base.clone(),
            client: reqwest::Client::new(),
            served,
        }
    }

    async fn stop(mut self) {
        self.served.stop().await;
    }

    /// A chat request; the `x-deja-cache` outcome and the body's usage (prompt,
    /// completion).
    async fn chat(&self, model: &str, text: &str, no_cache: bool) -> (String, (u64, u64)) {
        let mut rb = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}));
        if no_cache {
            rb = rb.header("cache-control", "no-cache");
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "{text}");
        let outcome = r.headers()["x-deja-cache"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        let u = &body["usage"];
        let usage = (
            u["prompt_tokens"].as_u64().unwrap(),
            u["completion_tokens"].as_u64().unwrap(),
        );
        (outcome, usage)
    }

    async fn embeddings(&self, input: &str) -> (String, u64) {
        let r = self
            .client
            .post(format!("{}/v1/embeddings", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(&json!({"model": "text-embedding-3-small", "input": [input]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let outcome = r.headers()["x-deja-cache"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        (outcome, body["usage"]["prompt_tokens"].as_u64().unwrap())
    }

    async fn stats(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/admin/stats{query}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn ledger(&self, days: u64) -> LedgerReport {
        let r = self.stats(&format!("?days={days}")).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        serde_json::from_value(v["ledger"].clone()).unwrap()
    }

    async fn saved_usd_metric(&self) -> f64 {
        let text = self.served.scrape().await;
        let line = text
            .lines()
            .find(|l| l.starts_with("deja_saved_usd_total "))
            .unwrap_or_else(|| panic!("no deja_saved_usd_total in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }
}

/// Billionths of a dollar for `tokens` at a price per 1M tokens given in thousandths of a
/// dollar (so 5.00 is 5_000): integer arithmetic, independent of the server's.
fn nano(tokens: u64, milli_usd_per_mtok: u64) -> u64 {
    // usd = tokens * (milli / 1000) / 1e6; nano = usd * 1e9 = tokens * milli.
    tokens * milli_usd_per_mtok
}

#[tokio::test]
async fn a_scripted_day_and_the_next_in_the_ledger_and_the_metric() {
    let Some(embedder) = common::model() else {
        return;
    };
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let p = Proxy::start(dir.path(), &upstream, embedder.clone(), clock.clone()).await;

    // 2025-06-01.
    let (o, (p1, c1)) = p.chat("gpt-4o", "How do I reset my password?", false).await;
    assert_eq!(o, "miss");
    assert!(p1 > 0 && c1 > 0);
    assert_eq!(
        p.chat("gpt-4o", "How do I reset my password?", false)
            .await
            .0,
        "hit-exact"
    );
    assert_eq!(
        p.chat("gpt-4o", "how can I reset my password", false)
            .await
            .0,
        "hit-semantic"
    );
    // A dated name priced by its configured base.
    let planet = "Name the largest planet in the solar system";
    let (o, (p2, c2)) = p.chat("my-model-20250101", planet, false).await;
    assert_eq!(o, "miss");
    assert_eq!(
        p.chat("my-model-20250101", planet, false).await.0,
        "hit-exact"
    );
    // A model without a price: tokens, no money.
    let haiku = "Write a haiku about autumn leaves";
    let (o, (p3, c3)) = p.chat("local-llm", haiku, false).await;
    assert_eq!(o, "miss");
    assert_eq!(p.chat("local-llm", haiku, false).await.0, "hit-exact");
    assert_eq!(
        p.chat("gpt-4o", "Name three primary colours", true).await.0,
        "bypass"
    );
    // An embedding priced by the default list ($0.02 per 1M).
    let (o, e) = p.embeddings("alpha beta gamma").await;
    assert_eq!(o, "miss");
    assert_eq!(p.embeddings("alpha beta gamma").await.0, "hit-exact");

    // 2025-06-02: the first entry again.
    clock.advance_ms(DAY_MS);
    assert_eq!(
        p.chat("gpt-4o", "How do I reset my password?", false)
            .await
            .0,
        "hit-exact"
    );

    let gpt = nano(p1, 5_000) + nano(c1, 20_000);
    let mine = nano(p2, 1_000) + nano(c2, 2_000);
    let emb = nano(e, 20);
    let r = p.ledger(7).await;
    assert_eq!(
        (r.from.as_str(), r.to.as_str()),
        ("2025-05-27", "2025-06-02")
    );
    let dates: Vec<&str> = r.days.iter().map(|d| d.date.as_str()).collect();
    assert_eq!(dates, ["2025-06-02", "2025-06-01"]);

    let today = &r.days[0].totals;
    assert_eq!((today.requests, today.exact_hits, today.misses), (1, 1, 0));
    assert_eq!(
        (today.prompt_tokens_saved, today.completion_tokens_saved),
        (p1, c1)
    );
    assert_eq!(today.saved_nano_usd, gpt);

    let day1 = &r.days[1].totals;
    assert_eq!(
        (
            day1.requests,
            day1.exact_hits,
            day1.semantic_hits,
            day1.misses,
            day1.bypasses
        ),
        (10, 4, 1, 4, 1)
    );
    assert_eq!(day1.hit_rate, 5.0 / 9.0);
    assert_eq!(day1.prompt_tokens_saved, 2 * p1 + p2 + p3 + e);
    assert_eq!(day1.completion_tokens_saved, 2 * c1 + c2 + c3);
    assert_eq!(day1.saved_nano_usd, 2 * gpt + mine + emb);
    assert_eq!(day1.unpriced_hits, 1);

    // Per model, over both days.
    let model = |name: &str| {
        r.models
            .iter()
            .find(|m| m.model == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", r.models))
    };
    let g = model("gpt-4o");
    assert_eq!((g.requests, g.saved_nano_usd), (5, 3 * gpt));
    let m = model("my-model-20250101");
    assert_eq!((m.requests, m.saved_nano_usd), (2, mine));
    let l = model("local-llm");
    assert_eq!(
        (
            l.requests,
            l.prompt_tokens_saved,
            l.saved_nano_usd,
            l.unpriced_hits
        ),
        (2, p3, 0, 1)
    );
    assert_eq!(model("text-embedding-3-small").saved_nano_usd, emb);
    assert_eq!(r.models[0].model, "gpt-4o", "most saved first");
    let total = 3 * gpt + mine + emb;
    assert_eq!(r.totals.saved_nano_usd, total);
    assert_eq!(r.totals.requests, 11);
    assert_eq!(r.totals.saved_usd, total as f64 / 1e9);

    // The metric counts the same money since start.
    assert_eq!((p.saved_usd_metric().await * 1e9).round() as u64, total);

    // `days` limits the period, and is checked.
    let only_today = p.ledger(1).await;
    assert_eq!(only_today.days.len(), 1);
    assert_eq!(only_today.totals.saved_nano_usd, gpt);
    for bad in ["?days=0", "?days=401", "?days=x"] {
        let resp = p.stats(bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], "days", "{bad}");
    }

    // A clean stop writes the ledger; a restart on the data dir reads it back.
    p.stop().await;
    let path = dir.path().join(LEDGER_FILE);
    let on_disk = Ledger::read(&path).unwrap().report(clock.now_ms(), 7);
    assert_eq!(on_disk, r);
    let p = Proxy::start(dir.path(), &upstream, embedder, clock.clone()).await;
    assert_eq!(p.ledger(7).await, r);
    assert_eq!(
        p.chat("gpt-4o", "How do I reset my password?", false)
            .await
            .0,
        "hit-exact"
    );
    let after = p.ledger(7).await;
    assert_eq!(after.days[0].totals.requests, 2);
    assert_eq!(after.totals.saved_nano_usd, total + gpt);
    // The metric starts from zero with the process; the ledger does not.
    assert_eq!((p.saved_usd_metric().await * 1e9).round() as u64, gpt);
    p.stop().await;
    assert_eq!(
        Ledger::read(&path).unwrap().report(clock.now_ms(), 7),
        after
    );
}

/// The exact-hit path's share of the ledger: once the day's row for the model exists,
/// recording allocates nothing. Prints what a record costs (single thread).
#[test]
fn recording_on_an_existing_row_does_not_allocate() {
    use deja_server::observe::summary::{Endpoint, Outcome};
    let ledger = Ledger::in_memory();
    let mut s = deja_server::observe::summary::RequestSummary::new(Endpoint::Chat);
    s.model = Some("gpt-4o-mini-2024-07-18".into());
    s.outcome = Some(Outcome::HitExact);
    s.saved = deja_core::Usage {
        prompt_tokens: 12,
        completion_tokens: 40,
    };
    s.saved_usd = Some(0.000_025_8);
    ledger.record(START_MS, &s); // creates the row

    let prices = deja_server::pricing::PriceTable::defaults().unwrap();
    COUNTING.with(|c| c.set(true));
    for i in 0..1_000 {
        s.saved_usd = prices.cost_usd(s.model.as_deref().unwrap(), s.saved);
        ledger.record(START_MS + i, &s);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.with(Cell::get), 0);
    // A new model on the same day does allocate (its name): the counter is live.
    s.model = Some("another-model".into());
    COUNTING.with(|c| c.set(true));
    ledger.record(START_MS, &s);
    COUNTING.with(|c| c.set(false));
    assert!(ALLOCATIONS.with(Cell::get) > 0);
    assert_eq!(ledger.report(START_MS, 1).totals.requests, 1_002);

    s.model = Some("gpt-4o-mini-2024-07-18".into());
    let n = 1_000_000u64;
    let started = std::time::Instant::now();
    for i in 0..n {
        s.saved_usd = prices.cost_usd(s.model.as_deref().unwrap(), s.saved);
        ledger.record(START_MS + i % 1_000, &s);
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("price lookup + ledger record: {per:.0} ns per request");
}
