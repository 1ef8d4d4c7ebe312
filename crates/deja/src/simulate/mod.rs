//! `deja simulate`: a stream of requests drawn from an intent set, answered by a mock
//! upstream, through the real engine — to measure the error budget offline.
//!
//! The intents file has columns `text,intent`. Queries are drawn from its texts at random
//! (with replacement, so some repeat exactly). The mock upstream answers each with a wording
//! of its intent's answer: every intent has its own facts (a number with a unit, a topic),
//! and every call words them anew (opening, sentence frame, closing), as an LLM's answers to
//! one question vary in words. A semantic hit is wrong when the entry served was stored for
//! a text of another intent.
//!
//! The same stream runs three ways:
//! - **budget**: the configured cache with `max_false_hit_rate`; every miss is labelled by
//!   comparing the fresh answer with the nearest entry's (the engine's labelling, run
//!   inline here; the server runs it off the request path), a share of the served
//!   semantic hits is audited (asked again and compared) to estimate the false-hit rate,
//!   and, while the budget still needs it, a share of exact hits is asked again to measure
//!   how often the answer comparison calls two answers to one request different;
//! - **defaults**: the cache as it ships, without a budget;
//! - **static**: a cache serving on one cosine threshold alone, at every threshold of a
//!   grid, in hindsight; the best one whose false-hit rate is no higher than the budget
//!   run's is the baseline.
//!
//! Embeddings are computed once per text and shared by the runs.

mod static_sweep;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use deja_core::budget::{AuditTally, Certified};
use deja_core::{
    Answer, Cache, CacheOptions, EmbedError, Embedder, KeyBuilder, Lookup, LookupRequest, NewEntry,
    PartitionKey, SemanticMode, SystemClock, Usage,
};
use deja_server::config::{Config, Durability};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// CSV with columns text,intent.
    #[arg(long)]
    pub intents: PathBuf,
    /// How many queries the stream has.
    #[arg(long, default_value_t = 10_000)]
    pub queries: usize,
    /// The error budget δ of the budget run.
    #[arg(long, default_value_t = 0.01)]
    pub max_false_hit_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of the budget run's served semantic hits audited (asked again and compared).
    #[arg(long, default_value_t = 0.05)]
    pub audit_share: f64,
    /// Share of the budget run's exact hits asked again while the answer comparison's
    /// false-disagree rate is not yet known to within δ / 2 (`cache.audit_exact_share`).
    #[arg(long, default_value_t = 0.25)]
    pub exact_audit_share: f64,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Least cosine of two answers' embeddings for them to agree (labels and audit)
    /// [default: the embedder's own, as `cache.answer_min_similarity`].
    #[arg(long)]
    pub answer_min_similarity: Option<f32>,
    /// Index candidates examined per lookup [default: `cache.candidates`].
    #[arg(long)]
    pub candidates: Option<usize>,
    /// A verifier stacked on the loaded pair model (`deja train-verifier --pair-model`),
    /// for a pair model this build ships no verifier for (`DEJA_PAIR_MODEL=PATH`).
    #[arg(long)]
    pub pair_verifier: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What one run of the stream did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub exact_hits: usize,
    pub semantic_hits: usize,
    /// Semantic hits that served another intent's answer.
    pub wrong_hits: usize,
    pub misses: usize,
    /// Requests that went to the upstream (misses and bypasses).
    pub upstream_calls: usize,
    /// Semantic hits per query.
    pub hit_rate: f64,
    /// Wrong semantic hits per semantic hit.
    pub false_hit_rate: f64,
    /// Labels recorded (budget run), and how many of them the truth contradicts.
    pub labels: usize,
    pub labels_disagreeing: usize,
    /// Labels the truth contradicts: said to agree, or said to disagree.
    pub labels_false_agree: usize,
    pub labels_false_disagree: usize,
    /// Semantic hits audited, how many were truly wrong, how many the audit judged wrong.
    pub audited: usize,
    pub audited_wrong: usize,
    pub audit_judged_wrong: usize,
    /// Exact hits asked again to measure the answer comparison's own errors, and how many
    /// it judged different.
    pub judge_checked: usize,
    pub judge_different: usize,
    /// Upstream calls the audits made (semantic and exact hits asked again), beside
    /// `upstream_calls`.
    pub audit_calls: usize,
}

impl RunReport {
    fn finish(&mut self, queries: usize) {
        self.hit_rate = ratio(self.semantic_hits, queries);
        self.false_hit_rate = ratio(self.wrong_hits, self.semantic_hits);
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The live audit's estimate against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub share: f64,
    pub checked: u64,
    pub judged_wrong: u64,
    pub estimate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Whether the interval holds the run's true false-hit rate.
    pub covers_true_rate: Option<bool>,
}

/// A certified cell at the end of the budget run.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    pub category: String,
    pub support: u8,
    /// Only the labels of candidates the verifier accepted.
    pub vouched: bool,
    pub labels: u64,
    pub wrong: u64,
    /// The least similarity served (`None`: untrained; 2: nothing certified).
    pub certified: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimulateReport {
    pub intents_file: String,
    pub embedder: String,
    pub texts: usize,
    pub intents: usize,
    pub queries: usize,
    pub seed: u64,
    pub max_false_hit_rate: f64,
    /// The budget run's figures, flat (the keys the issue names).
    pub hit_rate: f64,
    pub false_hit_rate: f64,
    pub exact_hit_rate: f64,
    pub upstream_calls: usize,
    /// The best static threshold's hit rate at a false-hit rate no higher than the budget
    /// run's.
    pub static_hit_rate_same_false: f64,
    pub static_threshold_same_false: Option<f32>,
    /// The best static threshold's hit rate within δ.
    pub static_hit_rate_within_budget: f64,
    pub static_threshold_within_budget: Option<f32>,
    pub budget: RunReport,
    pub defaults: RunReport,
    pub audit: AuditReport,
    pub cells: Vec<CellSummary>,
}

/// The intents file: texts (normalised as the proxy normalises prompts), their intents.
struct IntentSet {
    texts: Vec<String>,
    intent: Vec<u32>,
    names: Vec<String>,
    by_text: HashMap<String, u32>,
}

fn read_intents(path: &Path) -> anyhow::Result<IntentSet> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{} has no column {name:?} (want text,intent)",
                path.display()
            )
        })
    };
    let (t, i) = (col("text")?, col("intent")?);
    let mut set = IntentSet {
        texts: Vec::new(),
        intent: Vec::new(),
        names: Vec::new(),
        by_text: HashMap::new(),
    };
    let mut ids: HashMap<String, u32> = HashMap::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), line + 2))?;
        let text = deja_core::normalize_prompt(row.get(t).unwrap_or_default());
        let name = row.get(i).unwrap_or_default().to_string();
        if text.is_empty() || set.by_text.contains_key(&text) {
            continue;
        }
        let next = ids.len() as u32;
        let id = *ids.entry(name.clone()).or_insert_with(|| {
            set.names.push(name);
            next
        });
        set.by_text.insert(text.clone(), id);
        set.texts.push(text);
        set.intent.push(id);
    }
    anyhow::ensure!(
        set.texts.len() >= 2,
        "{} has fewer than two texts",
        path.display()
    );
    Ok(set)
}

/// An embedder that embeds each text once.
struct Memo {
    inner: Arc<dyn Embedder>,
    seen: Mutex<HashMap<String, Vec<f32>>>,
}

#[async_trait::async_trait]
impl Embedder for Memo {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn unseen(&self, text: &str) -> Vec<String> {
        self.inner.unseen(text)
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        self.inner.vocabulary()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let missing: Vec<String> = {
            let seen = self.seen.lock();
            texts
                .iter()
                .filter(|t| !seen.contains_key(*t))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing).await?;
            let mut seen = self.seen.lock();
            for (t, v) in missing.into_iter().zip(vectors) {
                seen.insert(t, v);
            }
        }
        let seen = self.seen.lock();
        Ok(texts.iter().map(|t| seen[t].clone()).collect())
    }
}

/// The mock upstream's answer to a request of `intent`: the intent's own facts, worded
/// anew on every call. Every intent has a number with a unit, and three nouns of its own
/// (drawn by a hash of its name); an answer states the four facts about its topic in random
/// order, each in one of three wordings, sometimes with a pleasantry around them.
pub fn mock_answer(intent: &str, rng: &mut impl Rng) -> String {
    const NUMBER: [&str; 3] = [
        "It usually takes {n} {unit} for {topic}.",
        "Expect about {n} {unit} for {topic}.",
        "For {topic}, plan on roughly {n} {unit}.",
    ];
    const FACTS: [[&str; 3]; 3] = [
        [
            "You can handle {topic} from the {k0} page in the app.",
            "Open the {k0} page in the app to deal with {topic}.",
            "The {k0} page of the app is where {topic} is done.",
        ],
        [
            "Have your {k1} ready before you start with {topic}.",
            "For {topic}, keep your {k1} at hand.",
            "You will be asked for your {k1} during {topic}.",
        ],
        [
            "If {topic} goes wrong, the {k2} team can help.",
            "Contact the {k2} team when {topic} fails.",
            "Questions about {topic} go to the {k2} team.",
        ],
    ];
    const OPENINGS: [&str; 3] = ["Sure! ", "Happy to help. ", "Good question. "];
    const CLOSINGS: [&str; 3] = [
        " Let me know if you need anything else.",
        " I hope this helps.",
        " Anything else?",
    ];
    const UNITS: [&str; 6] = ["days", "euros", "minutes", "steps", "percent", "hours"];
    const NOUNS: [&str; 24] = [
        "settings",
        "statement",
        "profile",
        "passport",
        "receipt",
        "security",
        "billing",
        "travel",
        "savings",
        "loyalty",
        "identity",
        "delivery",
        "account",
        "privacy",
        "payments",
        "rewards",
        "insurance",
        "limits",
        "devices",
        "documents",
        "branch",
        "currency",
        "contacts",
        "notifications",
    ];
    // FNV-1a: the intent's facts must not change between runs or versions.
    let h = intent.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let pick = |shift: u32, n: usize| ((h >> shift) % n as u64) as usize;
    let topic = intent.replace(['_', '|', ';', '='], " ");
    let fill = |s: &str| {
        s.replace("{n}", &(2 + h % 997).to_string())
            .replace("{unit}", UNITS[pick(10, UNITS.len())])
            .replace("{topic}", topic.trim())
            .replace("{k0}", NOUNS[pick(20, NOUNS.len())])
            .replace("{k1}", NOUNS[pick(30, NOUNS.len())])
            .replace("{k2}", NOUNS[pick(40, NOUNS.len())])
    };
    let mut sentences: Vec<String> = FACTS
        .iter()
        .map(|wordings| fill(wordings[rng.gen_range(0..wordings.len())]))
        .collect();
    sentences.push(fill(NUMBER[rng.gen_range(0..NUMBER.len())]));
    sentences.shuffle(rng);
    let mut out = String::new();
    if rng.gen_bool(0.3) {
        out.push_str(OPENINGS[rng.gen_range(0..OPENINGS.len())]);
    }
    out.push_str(&sentences.join(" "));
    if rng.gen_bool(0.3) {
        out.push_str(CLOSINGS[rng.gen_range(0..CLOSINGS.len())]);
    }
    out
}

/// A stored mock answer's text.
fn text_of(answer: &Answer) -> Option<String> {
    match answer {
        Answer::Body(b) => String::from_utf8(b.clone()).ok(),
        Answer::Chunks(_) => None,
    }
}

pub async fn run(config: Config, args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.max_false_hit_rate > 0.0 && args.max_false_hit_rate < 0.5,
        "--max-false-hit-rate must be above 0 and below 0.5"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.audit_share) && (0.0..=1.0).contains(&args.exact_audit_share),
        "--audit-share and --exact-audit-share must be between 0 and 1"
    );
    anyhow::ensure!(args.queries > 0, "--queries must be at least 1");
    let set = read_intents(&args.intents)?;
    let built = deja_server::build_embedders(&config)?;
    let memo = Arc::new(Memo {
        inner: built.embedder,
        seen: Mutex::new(HashMap::new()),
    });
    let bar = progress(args.json, set.texts.len(), "embedding");
    for chunk in set.texts.chunks(64) {
        memo.embed(chunk)
            .await
            .context("embedding the intents' texts")?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let stream: Vec<usize> = (0..args.queries)
        .map(|_| rng.gen_range(0..set.texts.len()))
        .collect();

    let configured = deja_server::cache_options(&config);
    let pair_verifier = crate::eval::read_verifier(args.pair_verifier.as_deref())?;
    let base = CacheOptions {
        pair_scorer: built.pair.clone(),
        pair_verifier,
        answer_min_similarity: args
            .answer_min_similarity
            .or(configured.answer_min_similarity),
        candidates: args.candidates.unwrap_or(configured.candidates),
        ..configured
    };
    let budget_options = CacheOptions {
        max_false_hit_rate: Some(args.max_false_hit_rate),
        ..base.clone()
    };
    let sim = Sim {
        config: &config,
        set: &set,
        stream: &stream,
        embedder: memo.clone(),
        other: built.other.map(|(inner, pair)| {
            let memo: Arc<dyn Embedder> = Arc::new(Memo {
                inner,
                seen: Mutex::new(HashMap::new()),
            });
            (memo, pair)
        }),
        seed: args.seed,
        json: args.json,
    };
    let (budget, cells) = sim
        .run(
            "budget",
            budget_options,
            (args.audit_share, args.exact_audit_share),
        )
        .await?;
    let (defaults, _) = sim.run("defaults", base, (0.0, 0.0)).await?;
    let audit = AuditTally {
        checked: budget.audited as u64,
        wrong: budget.audit_judged_wrong as u64,
    };

    let vectors: Vec<Vec<f32>> = memo.embed(&set.texts).await?;
    let thresholds: Vec<f32> = (0..=49).map(|i| 0.5 + i as f32 * 0.01).collect();
    let sweep = static_sweep::sweep(&vectors, &set.intent, &stream, &thresholds);
    let same = static_sweep::best_at(&sweep, budget.false_hit_rate);
    let within = static_sweep::best_at(&sweep, args.max_false_hit_rate);
    let rate = |o: Option<static_sweep::StaticOutcome>| {
        o.map_or(0.0, |o| ratio(o.semantic_hits, args.queries))
    };
    // Net of the answer comparison's own errors, as the server reports it.
    let judge = AuditTally {
        checked: budget.judge_checked as u64,
        wrong: budget.judge_different as u64,
    };
    let estimate = audit.estimate_net(Some(&judge));
    let report = SimulateReport {
        intents_file: args.intents.display().to_string(),
        embedder: memo.id().to_string(),
        texts: set.texts.len(),
        intents: set.names.len(),
        queries: args.queries,
        seed: args.seed,
        max_false_hit_rate: args.max_false_hit_rate,
        hit_rate: budget.hit_rate,
        false_hit_rate: budget.false_hit_rate,
        exact_hit_rate: ratio(budget.exact_hits, args.queries),
        upstream_calls: budget.upstream_calls,
        static_hit_rate_same_false: rate(same),
        static_threshold_same_false: same.map(|o| o.threshold),
        static_hit_rate_within_budget: rate(within),
        static_threshold_within_budget: within.map(|o| o.threshold),
        audit: AuditReport {
            share: args.audit_share,
            checked: audit.checked,
            judged_wrong: audit.wrong,
            estimate: estimate.map(|e| e.0),
            low: estimate.map(|e| e.1),
            high: estimate.map(|e| e.2),
            covers_true_rate: estimate
                .map(|(_, lo, hi)| lo <= budget.false_hit_rate && budget.false_hit_rate <= hi),
        },
        budget,
        defaults,
        cells,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(())
}

/// A progress bar of `len` steps named `what` (hidden when the output is JSON).
fn progress(hidden: bool, len: usize, what: &str) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} {bar:40} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// What every run shares.
struct Sim<'a> {
    config: &'a Config,
    set: &'a IntentSet,
    stream: &'a [usize],
    embedder: Arc<Memo>,
    /// With `--embedder-model auto`: the other languages' embedder and pair model.
    other: Option<deja_server::Loaded>,
    seed: u64,
    json: bool,
}

impl Sim<'_> {
    /// Runs the stream through a fresh cache with `options`; with a budget, labels every
    /// miss and audits `audit_share` of the semantic hits it serves.
    async fn run(
        &self,
        name: &str,
        options: CacheOptions,
        (audit_share, exact_audit_share): (f64, f64),
    ) -> anyhow::Result<(RunReport, Vec<CellSummary>)> {
        let dir = tempfile::tempdir().context("creating a scratch data dir")?;
        let mut config = self.config.clone();
        config.data_dir = dir.path().to_path_buf();
        config.store.durability = Durability::Fast;
        let store = Arc::new(deja_server::open_store(&config)?);
        let embedder: Arc<dyn Embedder> = self.embedder.clone();
        let index = Arc::new(deja_store_local::HnswIndex::new(
            embedder.id(),
            embedder.dim(),
            deja_store_local::HnswParams::default(),
        ));
        // Each run starts empty: a fresh index for the other languages too.
        let other_languages = self.other.as_ref().map(|(other, pair)| {
            deja_server::local_other_languages(self.config, other.clone(), pair.clone())
        });
        let options = CacheOptions {
            other_languages,
            ..options
        };
        let cache = Cache::new(store, index, embedder, Arc::new(SystemClock), options)?;
        cache
            .embed_category_examples()
            .await
            .context("embedding the categories' example prompts")?;
        let partition: PartitionKey = KeyBuilder::new("deja-simulate").finish_partition();
        // Answers and audits draw from their own generator, so every run sees the same
        // stream whatever it asked upstream.
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed_a115);
        let mut r = RunReport::default();
        let bar = progress(self.json, self.stream.len(), name);
        for &t in self.stream {
            bar.inc(1);
            let prompt = &self.set.texts[t];
            let intent = self.set.intent[t];
            let intent_name = &self.set.names[intent as usize];
            match cache.lookup(&LookupRequest::new(partition, prompt)).await {
                Lookup::ExactHit(entry) => {
                    r.exact_hits += 1;
                    let wanted = cache
                        .calibration()
                        .is_some_and(|c| c.wants_judge_check(&entry.category));
                    if wanted && exact_audit_share > 0.0 && rng.gen_bool(exact_audit_share) {
                        let fresh = mock_answer(intent_name, &mut rng);
                        r.audit_calls += 1;
                        if let Some(stored) = text_of(&entry.answer) {
                            if let Some(agreed) =
                                cache.check_judge(&entry.category, &stored, &fresh).await?
                            {
                                r.judge_checked += 1;
                                r.judge_different += usize::from(!agreed);
                            }
                        }
                    }
                }
                Lookup::SemanticHit {
                    entry,
                    audit: ticket,
                    ..
                } => {
                    r.semantic_hits += 1;
                    let right = self.set.by_text.get(&entry.prompt) == Some(&intent);
                    r.wrong_hits += usize::from(!right);
                    if let (Some(ticket), true) = (ticket, audit_share > 0.0) {
                        if rng.gen_bool(audit_share) {
                            let fresh = mock_answer(intent_name, &mut rng);
                            r.audit_calls += 1;
                            if let Some(o) = cache.audit(&ticket, prompt, &fresh, text_of).await? {
                                r.audited += 1;
                                r.audited_wrong += usize::from(!right);
                                r.audit_judged_wrong += usize::from(!o.agreed);
                            }
                        }
                    }
                }
                Lookup::Miss {
                    vector,
                    label,
                    category,
                    ..
                } => {
                    r.misses += 1;
                    r.upstream_calls += 1;
                    let fresh = mock_answer(intent_name, &mut rng);
                    let id = cache
                        .insert(NewEntry {
                            partition,
                            prompt: prompt.clone(),
                            model: "simulated".into(),
                            answer: Answer::Body(fresh.clone().into_bytes()),
                            usage: Usage {
                                prompt_tokens: 20,
                                completion_tokens: 40,
                            },
                            semantic: SemanticMode::Allowed,
                            vector,
                            category: Some(category),
                        })
                        .await?;
                    if let Some(ticket) = label {
                        if let Some(o) = cache
                            .label(&ticket, prompt, &fresh, Some(id), text_of)
                            .await?
                        {
                            r.labels += 1;
                            r.labels_disagreeing += usize::from(!o.agreed);
                            let truth = cache
                                .store()
                                .get(o.candidate)
                                .await?
                                .and_then(|e| self.set.by_text.get(&e.prompt).copied())
                                == Some(intent);
                            r.labels_false_agree += usize::from(o.agreed && !truth);
                            r.labels_false_disagree += usize::from(!o.agreed && truth);
                        }
                    }
                }
                Lookup::Bypass(_) => r.upstream_calls += 1,
            }
        }
        bar.finish_and_clear();
        r.finish(self.stream.len());
        let cells = cache
            .calibration()
            .map(|c| {
                c.report()
                    .into_iter()
                    .map(|c| CellSummary {
                        category: c.key.category,
                        support: c.key.support,
                        vouched: c.key.vouched,
                        labels: c.labels,
                        wrong: c.wrong,
                        certified: match c.certified {
                            Certified::From(t) => Some(t),
                            Certified::Nothing => Some(2.0),
                            Certified::Untrained => None,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((r, cells))
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn print_report(out: &mut impl Write, r: &SimulateReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} texts, {} intents; {} queries, seed {}; {}; δ = {}",
        r.intents_file,
        r.texts,
        r.intents,
        r.queries,
        r.seed,
        r.embedder,
        pct(r.max_false_hit_rate)
    )?;
    writeln!(
        out,
        "{:<34} {:>10} {:>12} {:>10} {:>10}",
        "", "hit rate", "false hits", "exact", "upstream"
    )?;
    for (name, run) in [
        ("error budget", &r.budget),
        ("defaults (no budget)", &r.defaults),
    ] {
        writeln!(
            out,
            "{:<34} {:>10} {:>12} {:>10} {:>10}",
            name,
            pct(run.hit_rate),
            pct(run.false_hit_rate),
            run.exact_hits,
            run.upstream_calls
        )?;
    }
    let threshold = |t: Option<f32>| t.map_or("none".to_string(), |t| format!("{t:.2}"));
    writeln!(
        out,
        "{:<34} {:>10}",
        format!(
            "best static, same false hits ({})",
            threshold(r.static_threshold_same_false)
        ),
        pct(r.static_hit_rate_same_false)
    )?;
    writeln!(
        out,
        "{:<34} {:>10}",
        format!(
            "best static, within δ ({})",
            threshold(r.static_threshold_within_budget)
        ),
        pct(r.static_hit_rate_within_budget)
    )?;
    writeln!(
        out,
        "labels: {} ({} disagreeing; mistaken: {} said to agree, {} said to disagree)",
        r.budget.labels,
        r.budget.labels_disagreeing,
        r.budget.labels_false_agree,
        r.budget.labels_false_disagree
    )?;
    writeln!(
        out,
        "judge: {} of {} exact hits asked again judged different; audits asked the upstream {} times",
        r.budget.judge_different, r.budget.judge_checked, r.budget.audit_calls
    )?;
    match (r.audit.estimate, r.audit.low, r.audit.high) {
        (Some(e), Some(lo), Some(hi)) => writeln!(
            out,
            "audit: {} of {} checked judged wrong; net of the judge's errors {} [{} – {}] (true {}; covered: {})",
            r.audit.judged_wrong,
            r.audit.checked,
            pct(e),
            pct(lo),
            pct(hi),
            pct(r.false_hit_rate),
            r.audit.covers_true_rate == Some(true)
        )?,
        _ => writeln!(out, "audit: no semantic hit was checked")?,
    }
    for c in &r.cells {
        writeln!(
            out,
            "cell {} support {}{}: {} labels, {} wrong, certified {}",
            c.category,
            c.support,
            if c.vouched { " vouched" } else { "" },
            c.labels,
            c.wrong,
            match c.certified {
                None => "not yet".to_string(),
                Some(t) if t > 1.0 => "nothing".to_string(),
                Some(t) => format!("from {t:.3}"),
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_intent_is_worded_anew_with_the_same_facts_and_two_intents_differ() {
        let mut rng = StdRng::seed_from_u64(7);
        let a: Vec<String> = (0..20)
            .map(|_| mock_answer("card_arrival", &mut rng))
            .collect();
        let distinct: std::collections::HashSet<&String> = a.iter().collect();
        assert!(distinct.len() > 10, "{a:?}");
        let number = |s: &str| -> Vec<String> {
            s.split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        };
        for s in &a {
            assert_eq!(number(s), number(&a[0]), "{s}");
            assert!(s.contains("card arrival"), "{s}");
        }
        let b = mock_answer("card_linking", &mut rng);
        assert_ne!(number(&b), number(&a[0]));
        // The facts depend on the intent only: another generator states the same.
        let mut other = StdRng::seed_from_u64(8);
        assert_eq!(
            number(&mock_answer("card_arrival", &mut other)),
            number(&a[0])
        );
    }

    #[test]
    fn an_intents_file_needs_its_columns_and_keeps_each_text_once() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "a,b\nx,y\n").unwrap();
        let e = read_intents(&bad).err().unwrap().to_string();
        assert!(e.contains("no column \"text\""), "{e}");
        let good = dir.path().join("good.csv");
        std::fs::write(
            &good,
            "intent,text\ngreet,Hello there\ngreet,\"  Hello   there \"\nbye,\"Bye, then\"\ngreet,Hi\n",
        )
        .unwrap();
        let set = read_intents(&good).unwrap();
        assert_eq!(set.names, vec!["greet", "bye"]);
        // "Hello there" and "  Hello   there " normalise alike: kept once.
        assert_eq!(set.texts, vec!["Hello there", "Bye, then", "Hi"]);
        assert_eq!(set.intent, vec![0, 1, 0]);
    }
}
