//! The soak test's load generator, started by `bench/soak/run.sh` (see `docs/soak.md`).
//!
//! Against a running `deja serve` (in front of `deja mock-upstream`) it seeds a pool of
//! prompts, measures the proxy's capacity on the soak's request mix with a closed loop,
//! then sends the same mix open-loop at a fixed arrival rate (a fraction of that capacity)
//! for a fixed time, with invalidations and imports through the admin API beside it. Every
//! interval it prints one line (errors, latency percentiles, cache outcomes, entries, the
//! server's RSS); at the end a summary with a verdict, and optionally the series as JSON.
//!
//! Latency is measured from when a request was due, not from when it was sent, so a
//! generator or server that falls behind shows it in the percentiles instead of hiding it.
//! It is not a benchmark of peak throughput: `bench/load/run.sh` is.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "deja soak load generator (run through bench/soak/run.sh)")]
struct Args {
    /// The proxy's base URL (only 127.0.0.1 is accepted).
    #[arg(long)]
    url: String,
    /// Admin token of the proxy (invalidations, imports, stats).
    #[arg(long, env = "DEJA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// PID of `deja serve`, whose VmRSS is reported.
    #[arg(long)]
    serve_pid: u32,
    /// Length of the open-loop soak, in seconds.
    #[arg(long, default_value_t = 600)]
    duration_secs: u64,
    /// Length of the closed-loop capacity measurement, in seconds.
    #[arg(long, default_value_t = 20)]
    calibrate_secs: u64,
    /// Connections of the capacity measurement.
    #[arg(long, default_value_t = 64)]
    calibrate_concurrency: usize,
    /// Fraction of the measured capacity the soak sends.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Fixed arrival rate in requests/s instead of measuring capacity.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds per reported interval.
    #[arg(long, default_value_t = 10)]
    interval_secs: u64,
    /// Requests in flight beyond which a due request is not sent (counted as `unsent`).
    #[arg(long, default_value_t = 2048)]
    max_inflight: usize,
    /// Prompts in the pool that exact repeats and paraphrases are drawn from.
    #[arg(long, default_value_t = 2000)]
    pool: usize,
    /// The server's `cache.max_entries`, to report when the cache reached it.
    #[arg(long)]
    max_entries: u64,
    /// The server's data directory, whose size on disk is reported.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Write the time series and summary here as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

// ---------------------------------------------------------------------------------------
// The request mix

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A pool prompt in its own partition: an exact hit unless invalidated or evicted.
    Exact,
    /// A paraphrase of a pool prompt: embed, search, verify; a semantic hit or a miss.
    Semantic,
    /// A prompt never sent before: a miss, forwarded upstream and stored.
    Fresh,
    /// `"stream": true`, a pool prompt (replayed hit) or, one in three, a fresh one.
    Stream,
    /// `/v1/embeddings` with 1–4 inputs, mostly repeated items.
    Embed,
}

/// Weights in percent; see docs/soak.md for why.
const MIX: [(Kind, u32); 5] = [
    (Kind::Exact, 55),
    (Kind::Semantic, 12),
    (Kind::Fresh, 13),
    (Kind::Stream, 10),
    (Kind::Embed, 10),
];

const TENANTS: usize = 4;
const MODELS: [&str; 2] = ["gpt-4o-mini", "gpt-4o"];
const SYSTEMS: [&str; 2] = [
    "You are a helpful shop assistant.",
    "You are a concise support agent. Answer in one short paragraph.",
];
/// Tag groups: a quarter of the chat requests carry `x-deja-tags: soak:gN`.
const TAG_GROUPS: usize = 30;

/// Question families: the first form is stored, the others are paraphrases of it.
const FAMILIES: [[&str; 3]; 6] = [
    [
        "What is the return policy for {} bought online?",
        "what's the return policy for {} bought online",
        "What is your return policy for {} purchased online?",
    ],
    [
        "How do I reset the password on my {}?",
        "how can I reset my {} password?",
        "How do I reset the password for my {}",
    ],
    [
        "How long does shipping take for {}?",
        "how long does delivery take for {}?",
        "How long does it take to ship {}?",
    ],
    [
        "Do you offer a warranty on {}?",
        "do you have a warranty for {}?",
        "Is there a warranty on {}?",
    ],
    [
        "How do I clean my {}?",
        "What is the best way to clean my {}?",
        "how should I clean my {}",
    ],
    [
        "Can I pay for {} in installments?",
        "can I buy {} in installments?",
        "Is it possible to pay for {} in installments?",
    ],
];

/// Products the questions are about, comma-separated.
const SUBJECTS: &str = "wireless headphones,running shoes,a gaming laptop,a coffee grinder,\
an electric kettle,a standing desk,noise cancelling earbuds,a robot vacuum,\
a mechanical keyboard,a smart watch,hiking boots,a winter jacket,a camping tent,\
a yoga mat,a blender,an air fryer,a baby stroller,a car seat,a tablet,\
a phone case,a desk lamp,an office chair,a rice cooker,a bicycle helmet,\
a water bottle,a backpack,a sofa bed,a mattress,bed sheets,a dishwasher,\
a washing machine,a microwave oven,a toaster,a hair dryer,\
an electric toothbrush,a security camera,a wifi router,a printer,a monitor,\
a webcam";

fn subjects() -> impl Iterator<Item = &'static str> {
    SUBJECTS.split(',')
}

fn subject(i: usize) -> &'static str {
    subjects().nth(i).unwrap_or("a gift card")
}

/// One pool prompt: question family, subject, partition (tenant, model, system prompt).
#[derive(Clone, Copy)]
struct Item {
    family: usize,
    subject: usize,
    tenant: usize,
    model: usize,
    system: usize,
    tag: Option<usize>,
}

impl Item {
    fn prompt(&self, form: usize) -> String {
        FAMILIES[self.family][form].replace("{}", subject(self.subject))
    }
}

/// What one request sends, decided before it is due (so the RNG stays on one task).
struct Spec {
    kind: Kind,
    tenant: usize,
    body: Value,
    tags: Option<usize>,
    /// The answer an exact hit or a miss must carry (`None`: any mock answer).
    expect: Option<String>,
    /// Embedding inputs asked for.
    inputs: usize,
}

struct Workload {
    pool: Vec<Item>,
    fresh: AtomicU64,
}

impl Workload {
    fn new(size: usize) -> Workload {
        let mut rng = StdRng::seed_from_u64(7);
        let pool = (0..size)
            .map(|i| Item {
                family: rng.gen_range(0..FAMILIES.len()),
                subject: rng.gen_range(0..subjects().count()),
                tenant: rng.gen_range(0..TENANTS),
                model: rng.gen_range(0..MODELS.len()),
                system: rng.gen_range(0..SYSTEMS.len()),
                tag: i.is_multiple_of(4).then_some(i % TAG_GROUPS),
            })
            .collect();
        Workload {
            pool,
            fresh: AtomicU64::new(0),
        }
    }

    fn pick_kind(rng: &mut StdRng) -> Kind {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut r = rng.gen_range(0..total);
        for (kind, weight) in MIX {
            if r < weight {
                return kind;
            }
            r -= weight;
        }
        Kind::Exact
    }

    fn chat(item: &Item, prompt: &str, stream: bool) -> Value {
        json!({
            "model": MODELS[item.model],
            "messages": [
                {"role": "system", "content": SYSTEMS[item.system]},
                {"role": "user", "content": prompt},
            ],
            "temperature": 0,
            "stream": stream,
        })
    }

    fn fresh_item(&self, rng: &mut StdRng) -> (Item, String) {
        let n = self.fresh.fetch_add(1, Ordering::Relaxed);
        let item = Item {
            family: 0,
            subject: rng.gen_range(0..subjects().count()),
            tenant: rng.gen_range(0..TENANTS),
            model: rng.gen_range(0..MODELS.len()),
            system: rng.gen_range(0..SYSTEMS.len()),
            tag: (rng.gen_range(0..4) == 0).then(|| rng.gen_range(0..TAG_GROUPS)),
        };
        // The number makes it new; verification refuses a neighbour with another number.
        let prompt = format!(
            "Summarise customer ticket {n} about {}",
            subject(item.subject)
        );
        (item, prompt)
    }

    fn spec(&self, kind: Kind, rng: &mut StdRng) -> Spec {
        let pooled = self.pool[rng.gen_range(0..self.pool.len())];
        let (item, prompt, stream, expect) = match kind {
            Kind::Exact => {
                let p = pooled.prompt(0);
                (pooled, p.clone(), false, Some(p))
            }
            Kind::Semantic => (pooled, pooled.prompt(rng.gen_range(1..3)), false, None),
            Kind::Fresh => {
                let (item, p) = self.fresh_item(rng);
                (item, p.clone(), false, Some(p))
            }
            Kind::Stream if rng.gen_range(0..3) == 0 => {
                let (item, p) = self.fresh_item(rng);
                (item, p, true, None)
            }
            Kind::Stream => (pooled, pooled.prompt(0), true, None),
            Kind::Embed => {
                let inputs: Vec<String> = (0..rng.gen_range(1..=4))
                    .map(|_| {
                        if rng.gen_range(0..10) < 7 {
                            format!("catalogue entry {}", rng.gen_range(0..1000))
                        } else {
                            let n = self.fresh.fetch_add(1, Ordering::Relaxed);
                            format!("new catalogue entry {n}")
                        }
                    })
                    .collect();
                return Spec {
                    kind,
                    tenant: pooled.tenant,
                    inputs: inputs.len(),
                    body: json!({"model": "text-embedding-3-small", "input": inputs}),
                    tags: pooled.tag,
                    expect: None,
                };
            }
        };
        Spec {
            kind,
            tenant: item.tenant,
            body: Workload::chat(&item, &prompt, stream),
            tags: item.tag,
            expect: expect.map(|p| format!("deja-mock answer to: {p}")),
            inputs: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending and checking one request

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
    /// Embeddings: items served from cache / items asked.
    Embedding(u64, u64),
}

#[derive(Clone, Copy, Debug)]
enum Failure {
    /// A non-2xx answer.
    Status,
    /// Connection refused, reset, timed out.
    Transport,
    /// A 2xx answer whose body or headers are wrong (bad JSON, wrong answer, no `[DONE]`).
    Body,
}

struct Client {
    http: reqwest::Client,
    url: String,
    admin_token: String,
    /// Entry ids seen lately, for invalidation by id.
    last_entry: Mutex<Option<String>>,
}

impl Client {
    async fn send(&self, spec: &Spec) -> Result<Outcome, Failure> {
        let path = match spec.kind {
            Kind::Embed => "/v1/embeddings",
            _ => "/v1/chat/completions",
        };
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header(
                "authorization",
                format!("Bearer sk-soak-tenant-{}", spec.tenant),
            )
            .header("content-type", "application/json")
            .body(spec.body.to_string());
        if let Some(tag) = spec.tags {
            req = req.header("x-deja-tags", format!("soak:g{tag}"));
        }
        let resp = req.send().await.map_err(|_| Failure::Transport)?;
        if !resp.status().is_success() {
            // Read the body anyway so the connection can be reused.
            let _ = resp.bytes().await;
            return Err(Failure::Status);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let cache = header("x-deja-cache");
        let embedding_hits = header("x-deja-embedding-hits");
        if let Some(id) = header("x-deja-entry") {
            *self.last_entry.lock() = Some(id);
        }
        let body = resp.bytes().await.map_err(|_| Failure::Transport)?;
        if spec.kind == Kind::Embed {
            let v: Value = serde_json::from_slice(&body).map_err(|_| Failure::Body)?;
            let items = v["data"].as_array().map_or(0, Vec::len);
            let (hits, asked) = embedding_hits
                .as_deref()
                .and_then(|h| h.split_once('/'))
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or(Failure::Body)?;
            if items != spec.inputs || asked != spec.inputs as u64 {
                return Err(Failure::Body);
            }
            return Ok(Outcome::Embedding(hits, asked));
        }
        let outcome = match cache.as_deref() {
            Some("hit-exact") => Outcome::HitExact,
            Some("hit-semantic") => Outcome::HitSemantic,
            Some("miss") => Outcome::Miss,
            Some("bypass") => Outcome::Bypass,
            _ => return Err(Failure::Body),
        };
        if spec.body["stream"] == json!(true) {
            let text = std::str::from_utf8(&body).map_err(|_| Failure::Body)?;
            if !text.trim_end().ends_with("data: [DONE]") || !text.contains("deja-mock") {
                return Err(Failure::Body);
            }
            return Ok(outcome);
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| Failure::Body)?;
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or(Failure::Body)?;
        let right = match (&spec.expect, outcome) {
            (Some(expected), Outcome::HitExact | Outcome::Miss | Outcome::Bypass) => {
                content == expected
            }
            _ => content.starts_with("deja-mock answer to: "),
        };
        if right {
            Ok(outcome)
        } else {
            Err(Failure::Body)
        }
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<reqwest::Response, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|_| Failure::Transport)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(Failure::Status)
        }
    }

    async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let resp = self
            .admin(method, path, body.map(|b| b.to_string()))
            .await?;
        resp.json().await.map_err(|_| Failure::Body)
    }
}

// ---------------------------------------------------------------------------------------
// Statistics

/// What one reporting interval saw.
#[derive(Default)]
struct Interval {
    sent: u64,
    done: u64,
    status: u64,
    transport: u64,
    body: u64,
    unsent: u64,
    late: u64,
    /// Microseconds from due to answered, every request that completed without error.
    latencies: Vec<u32>,
    exact_latencies: Vec<u32>,
    /// The same latencies by request kind, in `MIX` order (for the JSON file).
    kind_latencies: [Vec<u32>; MIX.len()],
    hit_exact: u64,
    hit_semantic: u64,
    miss: u64,
    bypass: u64,
    embed_items_hit: u64,
    embed_items: u64,
    admin_ops: u64,
    removed: u64,
    imported: u64,
}

impl Interval {
    fn errors(&self) -> u64 {
        self.status + self.transport + self.body + self.unsent
    }

    fn fail(&mut self, f: Failure) {
        match f {
            Failure::Status => self.status += 1,
            Failure::Transport => self.transport += 1,
            Failure::Body => self.body += 1,
        }
    }

    fn record(&mut self, kind: Kind, result: Result<Outcome, Failure>, micros: u32) {
        self.done += 1;
        let outcome = match result {
            Ok(o) => o,
            Err(f) => return self.fail(f),
        };
        self.latencies.push(micros);
        if let Some(i) = MIX.iter().position(|(k, _)| *k == kind) {
            self.kind_latencies[i].push(micros);
        }
        match outcome {
            Outcome::HitExact => {
                self.hit_exact += 1;
                self.exact_latencies.push(micros);
            }
            Outcome::HitSemantic => self.hit_semantic += 1,
            Outcome::Miss => self.miss += 1,
            Outcome::Bypass => self.bypass += 1,
            Outcome::Embedding(hit, asked) => {
                self.embed_items_hit += hit;
                self.embed_items += asked;
            }
        }
    }
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn sorted(parts: &[&[u32]]) -> Vec<u32> {
    let mut all: Vec<u32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    all.sort_unstable();
    all
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes of the files directly in `dir` (the store, the index snapshot, the ledger).
fn dir_bytes(dir: &std::path::Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
    )
}

/// One printed row, kept for the summary and the JSON file.
struct Row {
    t_secs: f64,
    interval: Interval,
    entries: Option<u64>,
    rss_kib: Option<u64>,
    disk_bytes: Option<u64>,
}

impl Row {
    fn json(&self, secs: f64) -> Value {
        let i = &self.interval;
        let lat = sorted(&[&i.latencies]);
        let exact = sorted(&[&i.exact_latencies]);
        json!({
            "t_secs": self.t_secs,
            "sent": i.sent, "done": i.done, "rps": i.done as f64 / secs,
            "errors": {"status": i.status, "transport": i.transport, "body": i.body, "unsent": i.unsent},
            "late": i.late,
            "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "max_ms": percentile(&lat, 1.0),
            "exact_p50_ms": percentile(&exact, 0.5), "exact_p99_ms": percentile(&exact, 0.99),
            "p99_ms_by_kind": MIX.iter().zip(&i.kind_latencies)
                .map(|((k, _), l)| (format!("{k:?}").to_lowercase(), json!(percentile(&sorted(&[l]), 0.99))))
                .collect::<serde_json::Map<_, _>>(),
            "hit_exact": i.hit_exact, "hit_semantic": i.hit_semantic, "miss": i.miss, "bypass": i.bypass,
            "embedding_items": i.embed_items, "embedding_items_hit": i.embed_items_hit,
            "admin_ops": i.admin_ops, "removed": i.removed, "imported": i.imported,
            "entries": self.entries, "rss_kib": self.rss_kib, "disk_bytes": self.disk_bytes,
        })
    }

    fn print(&self, secs: f64) {
        let i = &self.interval;
        let lat = sorted(&[&i.latencies]);
        let exact = sorted(&[&i.exact_latencies]);
        let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        println!(
            "{:>5.0}s sent {:>6} {:>6.0}/s | err {} (status {} transport {} body {} unsent {}) late {} | \
             ms p50 {:.1} p99 {:.1} max {:.0}, exact p50 {:.2} p99 {:.2} | exact {} sem {} miss {} bypass {} emb {}/{} | \
             admin {} | entries {} | rss {} MiB | disk {} MiB",
            self.t_secs,
            i.sent,
            i.done as f64 / secs,
            i.errors(),
            i.status,
            i.transport,
            i.body,
            i.unsent,
            i.late,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            percentile(&exact, 0.5),
            percentile(&exact, 0.99),
            i.hit_exact,
            i.hit_semantic,
            i.miss,
            i.bypass,
            i.embed_items_hit,
            i.embed_items,
            i.admin_ops,
            opt(self.entries),
            self.rss_kib.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            self.disk_bytes.map_or("?".to_string(), |b| format!("{:.1}", b as f64 / 1048576.0)),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Phases

/// Sends every pool prompt once (misses that store them), 32 at a time.
async fn seed(client: &Arc<Client>, work: &Arc<Workload>) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (client, work, next, failed) =
                (client.clone(), work.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = work.pool.get(i) else { break };
                    let p = item.prompt(0);
                    let spec = Spec {
                        kind: Kind::Exact,
                        tenant: item.tenant,
                        body: Workload::chat(item, &p, false),
                        tags: item.tag,
                        expect: Some(format!("deja-mock answer to: {p}")),
                        inputs: 0,
                    };
                    if client.send(&spec).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {} seeding requests failed", work.pool.len());
    }
    Ok(())
}

/// Closed loop at full concurrency: the completed requests per second of the mix.
async fn calibrate(client: &Arc<Client>, work: &Arc<Workload>, args: &Args) -> anyhow::Result<f64> {
    let stats = Arc::new(Mutex::new(Interval::default()));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.calibrate_secs);
    let tasks: Vec<_> = (0..args.calibrate_concurrency)
        .map(|w| {
            let (client, work, stats) = (client.clone(), work.clone(), stats.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(1000 + w as u64);
                while Instant::now() < end {
                    let spec = work.spec(Workload::pick_kind(&mut rng), &mut rng);
                    let t = Instant::now();
                    let result = client.send(&spec).await;
                    let micros = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    stats.lock().record(spec.kind, result, micros);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let s = stats.lock();
    let lat = sorted(&[&s.latencies]);
    let rate = s.done as f64 / secs;
    println!(
        "calibration: {} requests in {secs:.1} s with {} connections = {rate:.0} req/s (p50 {:.1} ms, p99 {:.1} ms; errors {}; exact {} sem {} miss {})",
        s.done,
        args.calibrate_concurrency,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        s.errors(),
        s.hit_exact,
        s.hit_semantic,
        s.miss
    );
    if s.errors() > 0 {
        println!(
            "calibration saw errors: status {} transport {} body {}",
            s.status, s.transport, s.body
        );
    }
    Ok(rate)
}

/// Invalidation by tag and by id every 5 s, by age every 60 s, an import every 60 s.
async fn admin_loop(
    client: Arc<Client>,
    stats: Arc<Mutex<Interval>>,
    batch: Arc<String>,
    end: Instant,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    tick.tick().await;
    while Instant::now() + Duration::from_secs(1) < end {
        tick.tick().await;
        round += 1;
        let mut ops: Vec<Value> =
            vec![json!({"tag": format!("soak:g{}", round % TAG_GROUPS as u64)})];
        if let Some(id) = client.last_entry.lock().take() {
            ops.push(json!({"id": id}));
        }
        if round.is_multiple_of(12) {
            ops.push(json!({"older_than_secs": 240}));
        }
        for op in ops {
            let (client, stats) = (client.clone(), stats.clone());
            tokio::spawn(async move {
                let r = client
                    .admin_json(reqwest::Method::POST, "/admin/invalidate", Some(op))
                    .await;
                let mut s = stats.lock();
                s.admin_ops += 1;
                match r {
                    Ok(v) => s.removed += v["removed"].as_u64().unwrap_or(0),
                    Err(f) => s.fail(f),
                }
            });
        }
        // The first import 30 s in, then every minute.
        if round % 12 == 6 && !batch.is_empty() {
            let (client, stats, batch) = (client.clone(), stats.clone(), batch.clone());
            tokio::spawn(async move {
                let r = client
                    .admin(
                        reqwest::Method::POST,
                        "/admin/import",
                        Some(batch.to_string()),
                    )
                    .await;
                let r = match r {
                    Ok(resp) => resp.json::<Value>().await.map_err(|_| Failure::Body),
                    Err(f) => Err(f),
                };
                let mut s = stats.lock();
                s.admin_ops += 1;
                match r {
                    Ok(v) => s.imported += v["imported"].as_u64().unwrap_or(0),
                    Err(f) => s.fail(f),
                }
            });
        }
    }
}

/// The open loop: request `k` is due at `start + k / rate`, sent then whatever happened to
/// the ones before it.
async fn soak(
    client: &Arc<Client>,
    work: &Arc<Workload>,
    args: &Args,
    rate: f64,
    batch: Arc<String>,
) -> anyhow::Result<Vec<Row>> {
    let stats = Arc::new(Mutex::new(Interval::default()));
    let inflight = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let duration = Duration::from_secs(args.duration_secs);
    let end = start + duration;
    let total = (rate * duration.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let admin = tokio::spawn(admin_loop(client.clone(), stats.clone(), batch, end));

    let reporter = {
        let (client, stats) = (client.clone(), stats.clone());
        let (pid, secs) = (args.serve_pid, args.interval_secs);
        let data_dir = args.data_dir.clone();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::from_std(start + Duration::from_secs(secs)),
                Duration::from_secs(secs),
            );
            loop {
                let at = tick.tick().await.into_std();
                let interval = std::mem::take(&mut *stats.lock());
                let entries = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.admin_json(reqwest::Method::GET, "/admin/stats?days=1", None),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|v| v["entries"].as_u64());
                let row = Row {
                    t_secs: (at - start).as_secs_f64().round(),
                    interval,
                    entries,
                    rss_kib: rss_kib(pid),
                    disk_bytes: data_dir.as_deref().and_then(dir_bytes),
                };
                row.print(secs as f64);
                rows.push(row);
                if at + Duration::from_millis(100) >= end {
                    break;
                }
            }
            rows
        })
    };

    let mut rng = StdRng::seed_from_u64(42);
    let mut k = 0u64;
    while k < total {
        let due = start + period.mul_f64(k as f64);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            continue;
        }
        k += 1;
        if inflight.load(Ordering::Relaxed) >= args.max_inflight {
            stats.lock().unsent += 1;
            continue;
        }
        let spec = work.spec(Workload::pick_kind(&mut rng), &mut rng);
        {
            let mut s = stats.lock();
            s.sent += 1;
            if now - due > Duration::from_millis(10) {
                s.late += 1;
            }
        }
        inflight.fetch_add(1, Ordering::Relaxed);
        let (client, stats, inflight) = (client.clone(), stats.clone(), inflight.clone());
        tokio::spawn(async move {
            let result = client.send(&spec).await;
            let micros = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            inflight.fetch_sub(1, Ordering::Relaxed);
            stats.lock().record(spec.kind, result, micros);
        });
    }
    // Requests still in flight when the reporter stops (at `end`) are not counted: the
    // summary shows them as the difference between sent and completed.
    let rows = reporter.await?;
    admin.abort();
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Summary

struct Window {
    name: &'static str,
    from: f64,
    to: f64,
}

/// Latencies of the intervals that lie inside `w` (each `step` seconds long).
fn window_latencies(rows: &[Row], w: &Window, step: f64, exact: bool) -> Vec<u32> {
    let parts: Vec<&[u32]> = rows
        .iter()
        .filter(|r| r.t_secs - step >= w.from - 0.5 && r.t_secs <= w.to + 0.5)
        .map(|r| {
            if exact {
                &r.interval.exact_latencies[..]
            } else {
                &r.interval.latencies[..]
            }
        })
        .collect();
    sorted(&parts)
}

fn summarise(rows: &[Row], args: &Args, capacity: Option<f64>, rate: f64) -> anyhow::Result<bool> {
    let d = args.duration_secs as f64;
    // Two minutes of a ten-minute run; a fifth of a shorter one, in whole intervals.
    let step = args.interval_secs as f64;
    let w = (((d / 5.0).min(120.0) / step).floor() * step).max(step);
    let windows = [
        Window {
            name: "first",
            from: 0.0,
            to: w,
        },
        Window {
            name: "reference",
            from: w,
            to: 2.0 * w,
        },
        Window {
            name: "last",
            from: d - w,
            to: d,
        },
    ];
    let sum = |f: fn(&Interval) -> u64| rows.iter().map(|r| f(&r.interval)).sum::<u64>();
    let (status, transport, body, unsent) = (
        sum(|i| i.status),
        sum(|i| i.transport),
        sum(|i| i.body),
        sum(|i| i.unsent),
    );
    let errors = status + transport + body + unsent;
    let full = rows
        .iter()
        .find(|r| r.entries.is_some_and(|e| e >= args.max_entries * 95 / 100));
    // RSS is compared from the later of the first window's end and the first row at capacity.
    let base_t = full.map_or(f64::INFINITY, |r| r.t_secs).max(w);
    let base = rows.iter().find(|r| r.t_secs >= base_t - 0.5);
    let last = rows.last();
    println!("\n== summary");
    println!(
        "rate: {rate:.0} req/s open loop{}; sent {}, completed {}, late (>10 ms behind schedule) {}",
        capacity.map_or(String::new(), |c| format!(" ({:.0}% of the measured {c:.0} req/s)", rate / c * 100.0)),
        sum(|i| i.sent),
        sum(|i| i.done),
        sum(|i| i.late),
    );
    println!(
        "errors: {errors} (status {status}, transport {transport}, body {body}, unsent {unsent})"
    );
    println!(
        "admin: {} operations, {} entries invalidated, {} imported",
        sum(|i| i.admin_ops),
        sum(|i| i.removed),
        sum(|i| i.imported)
    );
    let mut json_windows = serde_json::Map::new();
    for win in &windows {
        let all = window_latencies(rows, win, step, false);
        let exact = window_latencies(rows, win, step, true);
        println!(
            "{:>9} {:>4.0}–{:<4.0}s: p50 {:.2} ms, p99 {:.2} ms; exact hits p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            win.name,
            win.from,
            win.to,
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&exact, 0.5),
            percentile(&exact, 0.99),
            all.len()
        );
        json_windows.insert(
            win.name.into(),
            json!({"from_secs": win.from, "to_secs": win.to, "p50_ms": percentile(&all, 0.5), "p99_ms": percentile(&all, 0.99),
                   "exact_p50_ms": percentile(&exact, 0.5), "exact_p99_ms": percentile(&exact, 0.99)}),
        );
    }
    let p99 = |i: usize| percentile(&window_latencies(rows, &windows[i], step, false), 0.99);
    let drift = if p99(1) > 0.0 {
        p99(2) / p99(1)
    } else {
        f64::INFINITY
    };
    let mib = |r: Option<&Row>| r.and_then(|r| r.rss_kib).map(|k| k as f64 / 1024.0);
    let growth = match (mib(base), mib(last)) {
        (Some(a), Some(b)) if a > 0.0 => Some((b - a) / a),
        _ => None,
    };
    match full {
        Some(r) => println!(
            "capacity: entries reached 95% of max_entries = {} at {:.0} s",
            args.max_entries, r.t_secs
        ),
        None => println!(
            "capacity: entries never reached 95% of max_entries = {}",
            args.max_entries
        ),
    }
    println!(
        "rss: {} MiB at {} s (at capacity) → {} MiB at the end",
        mib(base).map_or("?".into(), |m| format!("{m:.1}")),
        base.map_or("?".into(), |r| format!("{:.0}", r.t_secs)),
        mib(last).map_or("?".into(), |m| format!("{m:.1}")),
    );
    let ok_errors = errors == 0;
    let ok_rss = growth.is_some_and(|g| g < 0.10);
    let ok_p99 = drift <= 1.5;
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "verdict: {} errors = {errors} (target 0); {} RSS growth after capacity {} (target < 10%); {} p99 last / reference = {drift:.2} (target ≤ 1.5) → {}",
        mark(ok_errors),
        mark(ok_rss),
        growth.map_or("unknown (capacity not reached)".into(), |g| format!("{:+.1}%", g * 100.0)),
        mark(ok_p99),
        if ok_errors && ok_rss && ok_p99 { "PASS" } else { "FAIL" },
    );

    if let Some(path) = &args.json {
        let secs = args.interval_secs as f64;
        let doc = json!({
            "duration_secs": args.duration_secs,
            "interval_secs": args.interval_secs,
            "max_entries": args.max_entries,
            "capacity_rps": capacity,
            "rate_rps": rate,
            "mix_percent": MIX.iter().map(|(k, w)| (format!("{k:?}").to_lowercase(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "intervals": rows.iter().map(|r| r.json(secs)).collect::<Vec<_>>(),
            "summary": {
                "errors": {"status": status, "transport": transport, "body": body, "unsent": unsent},
                "windows": json_windows,
                "capacity_at_secs": full.map(|r| r.t_secs),
                "rss_base_kib": base.and_then(|r| r.rss_kib),
                "rss_end_kib": last.and_then(|r| r.rss_kib),
                "rss_growth": growth,
                "p99_drift": drift,
                "pass": ok_errors && ok_rss && ok_p99,
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("series written to {}", path.display());
    }
    Ok(ok_errors && ok_rss && ok_p99)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.url.starts_with("http://127.0.0.1:") {
        bail!("--url must be http://127.0.0.1:PORT (the soak talks to this machine only)");
    }
    // Idle pooled connections are dropped well before the server's `idle_timeout_secs`
    // (60 s) closes them, as SDKs do (httpx: 5 s), so a request never races that close.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(args.max_inflight)
        .build()?;
    let client = Arc::new(Client {
        http,
        url: args.url.trim_end_matches('/').to_string(),
        admin_token: args.admin_token.clone(),
        last_entry: Mutex::new(None),
    });
    let work = Arc::new(Workload::new(args.pool));

    let t = Instant::now();
    seed(&client, &work).await?;
    println!(
        "seeded {} pool prompts in {:.1} s",
        args.pool,
        t.elapsed().as_secs_f64()
    );
    // The import batch: the first 200 entries of an export taken now (pool prompts), so
    // each import replaces entries that may since have been invalidated or evicted.
    let export = client
        .admin(reqwest::Method::GET, "/admin/export", None)
        .await
        .map_err(|f| anyhow::anyhow!("GET /admin/export failed: {f:?}"))?
        .text()
        .await?;
    let batch: String = export.lines().take(200).map(|l| format!("{l}\n")).collect();
    println!(
        "import batch: {} entries from /admin/export",
        batch.lines().count()
    );

    let (capacity, rate) = match args.rate {
        Some(r) => (None, r),
        None => {
            let c = calibrate(&client, &work, &args).await?;
            (Some(c), c * args.load)
        }
    };
    if rate < 1.0 {
        bail!("rate {rate:.1} req/s is too low to soak");
    }
    println!(
        "soak: {rate:.0} req/s open loop for {} s, max_entries {}, report every {} s",
        args.duration_secs, args.max_entries, args.interval_secs
    );
    let rows = soak(&client, &work, &args, rate, Arc::new(batch)).await?;
    let pass = summarise(&rows, &args, capacity, rate)?;
    std::process::exit(if pass { 0 } else { 2 });
}
