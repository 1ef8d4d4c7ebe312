//! `deja eval`: measures hit quality on labelled prompt pairs (`a,b,label` CSV files)
//! through the real serving path — normalisation, partitioning, the configured embedder,
//! the on-disk store, the vector index and verification.
//!
//! Two ways to place the pairs ([`Mode`]):
//! - *isolated*: each pair gets its own partition; `a` is stored, then `b` is looked up.
//!   This measures the pair alone.
//! - *shared*: every `a` of a file goes into one partition first, then every `b` is looked
//!   up, so the other entries act as distractors. Serving the pair's own `a` (or an entry
//!   with the same text) on a label-1 pair is a hit; serving anything else is a false hit.
//!
//! Lookups run at threshold 0, so each pair yields its candidate and similarity once; the
//! thresholds are applied when reporting ([`Counts::at`]). That is exact, not an
//! approximation: the engine serves the first candidate, most similar first, that passes
//! verification, so at threshold `t` it serves that same candidate if its similarity is at
//! least `t`, and nothing otherwise.
//!
//! The report gives, per file (and per value of a `--by` column), per threshold: hits on
//! label-1 pairs, false hits on label-0 pairs, precision — on similarity alone and after
//! verification. [`run_pairs`] and [`load_dump`] are shared with `deja tune`.
//!
//! Not here: choosing a threshold (that is `deja tune`), or any change to serving itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use deja_core::rules::NeverCacheRules;
use deja_core::verify::model::Model;
use deja_core::{
    Answer, Cache, CacheOptions, EmbedError, Embedder, Entry, KeyBuilder, Lookup, LookupRequest,
    NewEntry, PairScorer, SemanticMode, SystemClock, Usage, VerifyMode,
};
use deja_server::config::{Config, Durability};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// `deja eval` arguments.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// CSV files with columns a, b, label (extra columns may be used with --by).
    #[arg(long, num_args = 1.., required_unless_present = "from_dump")]
    pub pairs: Vec<PathBuf>,
    /// Report from a file written by --dump instead of embedding again (with --pairs, only
    /// those files, and their columns fill in --by when the dump lacks it).
    #[arg(long)]
    pub from_dump: Option<PathBuf>,
    /// Evaluate an evenly spread sample of this many rows per file (0 = all).
    #[arg(long, default_value_t = 2000)]
    pub sample: usize,
    /// Thresholds to report.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.6,0.8,0.85,0.9,0.92,0.94,0.95,0.96,0.97,0.98,0.99"
    )]
    pub thresholds: Vec<f32>,
    /// isolated: one partition per pair; shared: all `a` of a file in one partition, so the
    /// others act as distractors (with --from-dump, the dump's mode is used).
    #[arg(long, value_enum, default_value_t = Mode::Isolated)]
    pub mode: Mode,
    /// Also report per value of this CSV column (e.g. pair_type, split) where present.
    #[arg(long, value_name = "COLUMN")]
    pub by: Option<String>,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Print JSON (everything in the tables; no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Append one JSON line per pair (texts, label, similarities, rejection, columns) to FILE.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// A learned-verifier model file (from `deja train-verifier`) to use instead of the
    /// shipped one.
    #[arg(long)]
    pub verifier: Option<PathBuf>,
    /// A verifier stacked on the pair model (`deja train-verifier --pair-model`) to use
    /// instead of the shipped `verifier-pair.json`, for the second path.
    #[arg(long)]
    pub pair_verifier: Option<PathBuf>,
    /// Only the pairs `deja train-verifier` holds out (PAWS: split=test; other files: 30%
    /// by a hash of the pair), so the shipped model is measured on pairs it was not
    /// trained on. Applied before --sample.
    #[arg(long)]
    pub held_out: bool,
}

/// Where the pairs of a file are stored before their `b` is looked up.
#[derive(clap::ValueEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One partition per pair: `a` is the only entry `b` can find.
    Isolated,
    /// One partition per file: every `a` is stored, then every `b` is looked up.
    Shared,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Isolated => "isolated",
            Mode::Shared => "shared",
        }
    }
}

/// One labelled pair as read from a CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub label: bool,
    /// Every other column of the row, by header (kept in dumps, grouped on by `--by`).
    pub columns: BTreeMap<String, String>,
}

/// An entry the serving path returned for a pair's `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Cosine similarity (1.0 for an exact hit).
    pub similarity: f32,
    /// Whether it is the pair's own `a` (or an entry with the same normalised text).
    pub own: bool,
}

/// What the serving path did with one pair, threshold aside.
#[derive(Debug, Clone, PartialEq)]
pub struct PairOutcome {
    pub label: bool,
    /// The pair's value of the `--by` column, if any.
    pub group: Option<String>,
    /// The most similar entry: what serving on similarity alone returns.
    pub nearest: Option<Candidate>,
    /// The entry deja serves: the most similar one that passes verification.
    pub served: Option<Candidate>,
    /// Why verification refused the nearest entry, if it did.
    pub rejected: Option<String>,
    /// The learned verifier's probability for the nearest entry (`None`: a veto rule
    /// refused it, or no model).
    pub confidence: Option<f32>,
    /// The pair model's logit for the nearest entry and `b` (`None`: no pair model loaded,
    /// or no nearest entry). The verifier stacked with it is its second path; `confidence`
    /// is the first's.
    pub pair_logit: Option<f32>,
    /// The nearest entry's prompt differs from `b` only in question frames ("How do I …" /
    /// "What is the best way to …"), which verification accepts whatever the confidence.
    pub same_request: bool,
    /// What deja does with its configuration as it stands: categories with their own
    /// thresholds, never-cache rules, verification (`None` in dumps made before).
    pub deja: Option<Decision>,
}

/// What the serving path, configured as deja runs, did with a pair's `b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Served the pair's own `a` (or an entry with the same text).
    Hit,
    /// Served another entry (shared mode).
    OtherEntry,
    Miss,
    /// Neither looked up nor stored, with the reason (a never-cache rule, an uncacheable
    /// category).
    Bypass(String),
}

/// The outcomes of one pairs file.
#[derive(Debug, Clone)]
pub struct FileOutcomes {
    /// The file's name (no directory), as reports and dumps show it.
    pub file: String,
    pub outcomes: Vec<PairOutcome>,
}

/// Which entry counts as served at a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serving {
    /// The nearest entry, whatever verification says.
    SimilarityOnly,
    /// The entry deja serves (deja's behaviour).
    Verified,
    /// The nearest entry when its similarity reaches `gate` and the learned verifier's
    /// probability reaches the threshold (a veto rule refuses it outright): what
    /// `min_confidence` decides, in isolated mode.
    Confidence { gate: f32 },
}

/// What was served at one threshold, over a set of pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pairs: usize,
    pub positives: usize,
    pub negatives: usize,
    /// Label-1 pairs served their own `a`.
    pub hits: usize,
    /// Label-0 pairs served any entry.
    pub false_hits: usize,
    /// Label-1 pairs served another pair's `a` (only possible in shared mode).
    pub wrong_entry_hits: usize,
}

impl Counts {
    /// Counts what `serving` serves at `threshold` (a candidate is served when its
    /// similarity is at least the threshold).
    pub fn at<'a>(
        outcomes: impl IntoIterator<Item = &'a PairOutcome>,
        threshold: f32,
        serving: Serving,
    ) -> Counts {
        let mut c = Counts::default();
        for o in outcomes {
            c.pairs += 1;
            if o.label {
                c.positives += 1;
            } else {
                c.negatives += 1;
            }
            let candidate = match serving {
                Serving::SimilarityOnly => o.nearest,
                Serving::Verified => o.served,
                Serving::Confidence { gate } => o.nearest.filter(|n| {
                    n.similarity >= gate
                        && o.confidence
                            .is_some_and(|c| c >= threshold || o.same_request)
                }),
            };
            // For the confidence the threshold applies to the probability, checked above.
            let reaches = |cand: &Candidate| match serving {
                Serving::Confidence { .. } => true,
                _ => cand.similarity >= threshold,
            };
            match candidate {
                Some(cand) if reaches(&cand) => match (o.label, cand.own) {
                    (true, true) => c.hits += 1,
                    (true, false) => c.wrong_entry_hits += 1,
                    (false, _) => c.false_hits += 1,
                },
                _ => {}
            }
        }
        c
    }

    /// Pairs served any entry.
    pub fn served(&self) -> usize {
        self.hits + self.false_hits + self.wrong_entry_hits
    }

    /// Share of label-1 pairs served their own `a` (recall); `None` without positives.
    pub fn hit_rate(&self) -> Option<f64> {
        ratio(self.hits, self.positives)
    }

    /// Share of label-0 pairs served anything; `None` without negatives.
    pub fn false_hit_rate(&self) -> Option<f64> {
        ratio(self.false_hits, self.negatives)
    }

    /// Share of label-1 pairs served another pair's entry; `None` without positives.
    pub fn wrong_entry_rate(&self) -> Option<f64> {
        ratio(self.wrong_entry_hits, self.positives)
    }

    /// Share of served pairs that were served correctly; `None` when nothing was served.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.hits, self.served())
    }

    /// The 95% Wilson lower bound of [`Counts::precision`]: how low the true precision may
    /// plausibly be, given how few pairs were served.
    pub fn precision_lower_bound(&self) -> Option<f64> {
        wilson_lower_bound(self.hits, self.served())
    }
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// Lower end of the 95% Wilson score interval for `successes` out of `n`.
pub fn wilson_lower_bound(successes: usize, n: usize) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let z = 1.959_964_f64;
    let n = n as f64;
    let p = successes as f64 / n;
    let z2n = z * z / n;
    let centre = p + z2n / 2.0;
    let margin = z * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    Some(((centre - margin) / (1.0 + z2n)).max(0.0))
}

/// What deja's configuration as it stands does over a set of pairs ([`Decision`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Defaults {
    #[serde(flatten)]
    pub counts: Counts,
    pub hit_rate: Option<f64>,
    pub false_hit_rate: Option<f64>,
    /// Pairs bypassed, by reason (label 0 and 1 together).
    pub bypasses: BTreeMap<String, usize>,
}

impl Defaults {
    /// `None` when no outcome carries a decision (dumps made before there were any).
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a PairOutcome>) -> Option<Defaults> {
        let mut d = Defaults::default();
        let mut any = false;
        for o in outcomes {
            let c = &mut d.counts;
            c.pairs += 1;
            if o.label {
                c.positives += 1;
            } else {
                c.negatives += 1;
            }
            let Some(decision) = &o.deja else { continue };
            any = true;
            match (decision, o.label) {
                (Decision::Hit, true) => c.hits += 1,
                (Decision::OtherEntry, true) => c.wrong_entry_hits += 1,
                (Decision::Hit | Decision::OtherEntry, false) => c.false_hits += 1,
                (Decision::Miss, _) => {}
                (Decision::Bypass(reason), _) => {
                    *d.bypasses.entry(reason.clone()).or_default() += 1
                }
            }
        }
        d.hit_rate = d.counts.hit_rate();
        d.false_hit_rate = d.counts.false_hit_rate();
        any.then_some(d)
    }
}

/// [`Counts`] with its rates, as the JSON output carries it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServingRow {
    #[serde(flatten)]
    pub counts: Counts,
    pub served: usize,
    pub hit_rate: Option<f64>,
    pub false_hit_rate: Option<f64>,
    pub wrong_entry_rate: Option<f64>,
    pub precision: Option<f64>,
    pub precision_lower_bound: Option<f64>,
}

impl From<Counts> for ServingRow {
    fn from(counts: Counts) -> Self {
        Self {
            counts,
            served: counts.served(),
            hit_rate: counts.hit_rate(),
            false_hit_rate: counts.false_hit_rate(),
            wrong_entry_rate: counts.wrong_entry_rate(),
            precision: counts.precision(),
            precision_lower_bound: counts.precision_lower_bound(),
        }
    }
}

/// One threshold's line of a table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub threshold: f32,
    pub similarity_only: ServingRow,
    /// deja's behaviour.
    pub verified: ServingRow,
}

/// The table of one set of pairs (a file, or one `--by` value within it).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub pairs: usize,
    pub positives: usize,
    pub negatives: usize,
    pub rows: Vec<Row>,
    /// deja's configuration as it stands (categories, never-cache rules, verification).
    pub defaults: Option<Defaults>,
}

impl Table {
    pub fn new(outcomes: &[&PairOutcome], thresholds: &[f32]) -> Self {
        let positives = outcomes.iter().filter(|o| o.label).count();
        Self {
            pairs: outcomes.len(),
            positives,
            negatives: outcomes.len() - positives,
            rows: thresholds
                .iter()
                .map(|&t| Row {
                    threshold: t,
                    similarity_only: Counts::at(
                        outcomes.iter().copied(),
                        t,
                        Serving::SimilarityOnly,
                    )
                    .into(),
                    verified: Counts::at(outcomes.iter().copied(), t, Serving::Verified).into(),
                })
                .collect(),
            defaults: Defaults::of(outcomes.iter().copied()),
        }
    }
}

#[derive(Debug, Serialize)]
struct GroupReport {
    /// The `--by` column's value; pairs without the column are left out of the groups.
    value: String,
    #[serde(flatten)]
    table: Table,
}

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    #[serde(flatten)]
    table: Table,
    /// One table per value of the `--by` column (empty without `--by`, or when the file
    /// lacks the column).
    groups: Vec<GroupReport>,
}

#[derive(Debug, Serialize)]
struct EvalReport {
    mode: Mode,
    by: Option<String>,
    thresholds: Vec<f32>,
    files: Vec<FileReport>,
}

pub async fn run(config: Config, args: EvalArgs) -> anyhow::Result<()> {
    let source = Source {
        pairs: &args.pairs,
        from_dump: args.from_dump.as_deref(),
        sample: args.sample,
        mode: args.mode,
        by: args.by.as_deref(),
        dump: args.dump.as_deref(),
        progress: !args.json,
        verifier: args.verifier.as_deref(),
        pair_verifier: args.pair_verifier.as_deref(),
        held_out: args.held_out,
    };
    let (mode, files) = collect(config, &source).await?;
    let report = EvalReport {
        mode,
        by: args.by.clone(),
        thresholds: args.thresholds.clone(),
        files: files
            .iter()
            .map(|f| file_report(f, &args.thresholds))
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    print_report(&mut out, &report)?;
    Ok(())
}

fn file_report(f: &FileOutcomes, thresholds: &[f32]) -> FileReport {
    let all: Vec<&PairOutcome> = f.outcomes.iter().collect();
    let mut groups: BTreeMap<&str, Vec<&PairOutcome>> = BTreeMap::new();
    for o in &f.outcomes {
        if let Some(g) = &o.group {
            groups.entry(g).or_default().push(o);
        }
    }
    FileReport {
        file: f.file.clone(),
        table: Table::new(&all, thresholds),
        groups: groups
            .into_iter()
            .map(|(value, outcomes)| GroupReport {
                value: value.to_string(),
                table: Table::new(&outcomes, thresholds),
            })
            .collect(),
    }
}

fn print_report(out: &mut impl Write, report: &EvalReport) -> std::io::Result<()> {
    writeln!(out, "mode: {}", report.mode.as_str())?;
    for f in &report.files {
        writeln!(out)?;
        print_table(out, &f.file, &f.table, report.mode)?;
        for g in &f.groups {
            let by = report.by.as_deref().unwrap_or_default();
            writeln!(out)?;
            print_table(
                out,
                &format!("{} {by}={}", f.file, g.value),
                &g.table,
                report.mode,
            )?;
        }
    }
    Ok(())
}

/// `12.3%`, or `-` when undefined.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// `0.95`; more digits only when the threshold has them (`0.955`).
pub fn threshold_str(t: f32) -> String {
    let two = format!("{t:.2}");
    if two.parse::<f32>().ok() == Some(t) {
        two
    } else {
        t.to_string()
    }
}

fn print_table(out: &mut impl Write, title: &str, t: &Table, mode: Mode) -> std::io::Result<()> {
    writeln!(
        out,
        "{title} ({} pairs, {} positive, {} negative)",
        t.pairs, t.positives, t.negatives
    )?;
    // Serving another pair's entry is only possible when entries share a partition.
    let shared = mode == Mode::Shared;
    let cells = |s: &ServingRow| {
        let mut v = vec![pct(s.hit_rate), pct(s.false_hit_rate)];
        if shared {
            v.push(pct(s.wrong_entry_rate));
        }
        v.push(pct(s.precision));
        v
    };
    let mut head = vec!["hits (label 1)", "false hits (label 0)"];
    if shared {
        head.push("wrong entry (label 1)");
    }
    head.push("precision");
    let verified: Vec<String> = head.iter().map(|h| format!("{h}, verified")).collect();
    let head: Vec<String> = std::iter::once("min_similarity".to_string())
        .chain(head.iter().map(|h| h.to_string()))
        .chain(verified)
        .collect();
    writeln!(out, "| {} |", head.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(head.len()))?;
    for row in &t.rows {
        let line: Vec<String> = std::iter::once(threshold_str(row.threshold))
            .chain(cells(&row.similarity_only))
            .chain(cells(&row.verified))
            .collect();
        writeln!(out, "| {} |", line.join(" | "))?;
    }
    if let Some(d) = &t.defaults {
        let bypasses: Vec<String> = d.bypasses.iter().map(|(r, n)| format!("{r} {n}")).collect();
        writeln!(
            out,
            "deja as configured (categories, never-cache rules, verification): hits {}, false hits {}, bypassed {}",
            pct(d.hit_rate),
            pct(d.false_hit_rate),
            if bypasses.is_empty() {
                "0".to_string()
            } else {
                bypasses.join(", ")
            }
        )?;
    }
    Ok(())
}

/// A verifier file (`deja train-verifier --out`), if one is named.
pub fn read_verifier(path: Option<&Path>) -> anyhow::Result<Option<Arc<Model>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let model = Model::parse(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(Arc::new(model)))
}

/// Where outcomes come from, for `eval` and `tune` alike.
pub struct Source<'a> {
    pub pairs: &'a [PathBuf],
    /// A model file to verify with instead of the shipped model.
    pub verifier: Option<&'a Path>,
    /// A stacked model file for the pair model's path instead of the shipped one.
    pub pair_verifier: Option<&'a Path>,
    /// Keep only the pairs the verifier's trainer holds out.
    pub held_out: bool,
    pub from_dump: Option<&'a Path>,
    pub sample: usize,
    pub mode: Mode,
    pub by: Option<&'a str>,
    /// Append every pair's outcome to this file.
    pub dump: Option<&'a Path>,
    pub progress: bool,
}

/// The outcomes per file, read from a dump or run through the engine, and the mode they
/// were measured in (a dump's own mode wins over `src.mode`).
pub async fn collect(
    config: Config,
    src: &Source<'_>,
) -> anyhow::Result<(Mode, Vec<FileOutcomes>)> {
    if let Some(dump) = src.from_dump {
        let files = load_dump(dump, src.pairs, src.by)?;
        let mode = dump_mode(dump)?.unwrap_or(Mode::Isolated);
        return Ok((mode, files));
    }
    let engine = EvalEngine::new(
        config,
        src.mode,
        read_verifier(src.verifier)?,
        read_verifier(src.pair_verifier)?,
    )
    .await?;
    let mut files = Vec::new();
    for path in src.pairs {
        let name = file_name(path);
        let mut pairs = if src.held_out {
            let all = read_pairs(path, 0)?
                .into_iter()
                .filter(|p| {
                    crate::split::is_held_out(
                        &name,
                        &p.a,
                        &p.b,
                        &p.columns,
                        crate::split::HOLDOUT_PCT,
                    )
                })
                .collect();
            spread_sample(all, src.sample)
        } else {
            read_pairs(path, src.sample)?
        };
        if src.by == Some(LANG) {
            for p in &mut pairs {
                p.columns
                    .entry(LANG.into())
                    .or_insert_with(|| detected_lang(&p.a, &p.b));
            }
        }
        if let Some(by) = src.by {
            if !pairs.iter().any(|p| p.columns.contains_key(by)) {
                eprintln!("note: {name} has no column {by:?}; reported as a whole");
            }
        }
        let bar = progress_bar(src.progress, &name, pairs.len(), src.mode);
        let outcomes = run_pairs(&engine, &name, &pairs, src.by, &bar).await?;
        bar.finish_and_clear();
        if let Some(dump) = src.dump {
            write_dump(dump, &name, src.mode, &pairs, &outcomes)?;
        }
        files.push(FileOutcomes {
            file: name,
            outcomes,
        });
    }
    Ok((src.mode, files))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

fn progress_bar(show: bool, name: &str, pairs: usize, mode: Mode) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    // Shared mode stores every `a` before it looks up every `b`: two steps per pair.
    let steps = match mode {
        Mode::Isolated => pairs,
        Mode::Shared => 2 * pairs,
    };
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar
}

/// Reads `a,b,label` (label `1` is a duplicate, anything else is not) and keeps the other
/// columns. With `sample > 0`, keeps an evenly spread, deterministic sample of that many
/// rows, so runs stay comparable.
pub fn read_pairs(path: &Path, sample: usize) -> anyhow::Result<Vec<Pair>> {
    let rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    read_pairs_from(rdr, sample).with_context(|| format!("reading {}", path.display()))
}

fn read_pairs_from<R: std::io::Read>(
    mut rdr: csv::Reader<R>,
    sample: usize,
) -> anyhow::Result<Vec<Pair>> {
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no column {name:?}"))
    };
    let (ia, ib, il) = (col("a")?, col("b")?, col("label")?);
    let mut all = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let columns = headers
            .iter()
            .zip(rec.iter())
            .enumerate()
            .filter(|(i, _)| ![ia, ib, il].contains(i))
            .map(|(_, (h, v))| (h.to_string(), v.to_string()))
            .collect();
        all.push(Pair {
            a: rec.get(ia).unwrap_or_default().to_string(),
            b: rec.get(ib).unwrap_or_default().to_string(),
            label: rec.get(il).map(str::trim) == Some("1"),
            columns,
        });
    }
    Ok(spread_sample(all, sample))
}

/// `--by lang` on a file without a `lang` column groups its pairs by the language deja
/// tells they are written in ([`detected_lang`]).
const LANG: &str = "lang";

/// The language of a pair as `deja_core::verify::lang` tells it: the code both prompts
/// share, `xx-yy` when they plainly differ, `und` when it cannot tell.
fn detected_lang(a: &str, b: &str) -> String {
    use deja_core::verify::lang::language;
    match (language(a), language(b)) {
        (Some(x), Some(y)) if x == y => x.to_string(),
        (Some(x), Some(y)) => format!("{x}-{y}"),
        (Some(x), None) | (None, Some(x)) => x.to_string(),
        (None, None) => "und".to_string(),
    }
}

/// An evenly spread, deterministic sample of `sample` pairs (all of them for 0).
fn spread_sample(all: Vec<Pair>, sample: usize) -> Vec<Pair> {
    if sample > 0 && all.len() > sample {
        let step = all.len() as f64 / sample as f64;
        let picked: Vec<usize> = (0..sample).map(|i| (i as f64 * step) as usize).collect();
        let mut all: Vec<Option<Pair>> = all.into_iter().map(Some).collect();
        return picked
            .into_iter()
            .filter_map(|i| all.get_mut(i).and_then(Option::take))
            .collect();
    }
    all
}

/// The engine `eval` runs pairs through: the configured embedder, a scratch redb store and
/// an HNSW index, at threshold 0 so every lookup yields its best candidate.
pub struct EvalEngine {
    mode: Mode,
    /// Serves as deja is configured: categories with their thresholds, verification.
    serving: Cache,
    /// The never-cache rules the proxy applies before any lookup.
    rules: NeverCacheRules,
    /// The learned verifier, to record each nearest entry's probability.
    model: Option<Arc<Model>>,
    /// The pair model, to record each nearest entry's logit.
    pair: Option<Arc<dyn PairScorer>>,
    /// Verification as configured but at threshold 0 and without categories, so every
    /// lookup yields its best candidate and thresholds apply when reporting.
    verified: Cache,
    /// Verification off, over the same store and index: finds the nearest entry in shared
    /// mode, where the verified lookup may serve another one.
    unverified: Cache,
    /// Kept so the scratch directory lives as long as the store in it.
    _dir: tempfile::TempDir,
}

impl EvalEngine {
    pub async fn new(
        config: Config,
        mode: Mode,
        verifier: Option<Arc<Model>>,
        pair_verifier: Option<Arc<Model>>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a scratch data dir")?;
        let mut config = config;
        config.data_dir = dir.path().to_path_buf();
        config.store.durability = Durability::Fast;
        let store = Arc::new(deja_server::open_store(&config)?);
        // Both caches embed the same `b` one after the other; the second gets it for free.
        let built = deja_server::build_embedders(&config)?;
        let pair = built.pair;
        let embedder: Arc<dyn Embedder> = Arc::new(LastEmbedding {
            inner: built.embedder,
            last: Mutex::new(None),
        });
        let index = Arc::new(deja_store_local::HnswIndex::new(
            embedder.id(),
            embedder.dim(),
            deja_store_local::HnswParams::default(),
        ));
        // With `--embedder-model auto`: the other languages' embedder and index, shared by
        // the three caches as the first ones are.
        let other_languages = built.other.map(|(other, other_pair)| {
            let other: Arc<dyn Embedder> = Arc::new(LastEmbedding {
                inner: other,
                last: Mutex::new(None),
            });
            deja_server::local_other_languages(&config, other, other_pair)
        });
        let configured = CacheOptions {
            verifier: verifier.clone(),
            pair_scorer: pair.clone(),
            pair_verifier,
            other_languages,
            ..deja_server::cache_options(&config)
        };
        let model = match (configured.verify, verifier) {
            (VerifyMode::Model, Some(m)) => Some(m),
            (VerifyMode::Model, None) => Some(Arc::new(
                Model::shipped_for_embedder(embedder.id())
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("loading the learned verifier")?
                    .clone(),
            )),
            _ => None,
        };
        let cache = |options: CacheOptions| {
            Cache::new(
                store.clone(),
                index.clone(),
                embedder.clone(),
                Arc::new(SystemClock),
                options,
            )
        };
        let at_zero = |verify| CacheOptions {
            min_similarity: 0.0,
            categories: Vec::new(),
            verify,
            ..configured.clone()
        };
        let serving = cache(configured.clone())?;
        serving
            .embed_category_examples()
            .await
            .context("embedding the categories' example prompts")?;
        Ok(Self {
            mode,
            rules: NeverCacheRules::new(&config.rules)
                .context("compiling the never-cache rules ([rules] in the config)")?,
            model,
            pair,
            verified: cache(at_zero(configured.verify))?,
            unverified: cache(at_zero(VerifyMode::Off))?,
            serving,
            _dir: dir,
        })
    }
}

/// An embedder that remembers its last answer, so looking the same prompt up twice
/// embeds it once.
struct LastEmbedding {
    inner: Arc<dyn Embedder>,
    last: Mutex<Option<Remembered>>,
}

/// Texts and their vectors.
type Remembered = (Vec<String>, Vec<Vec<f32>>);

#[async_trait::async_trait]
impl Embedder for LastEmbedding {
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
        if let Some((t, v)) = &*self.last.lock() {
            if t.as_slice() == texts {
                return Ok(v.clone());
            }
        }
        let v = self.inner.embed(texts).await?;
        *self.last.lock() = Some((texts.to_vec(), v.clone()));
        Ok(v)
    }
}

/// Runs `pairs` (all from the file `file`) through the engine and records what it served.
/// `by` names the column whose value becomes each outcome's group.
pub async fn run_pairs(
    engine: &EvalEngine,
    file: &str,
    pairs: &[Pair],
    by: Option<&str>,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<PairOutcome>> {
    let partition_of = |i: usize| {
        let mut kb = KeyBuilder::new("eval/v1");
        kb.str("file", file).str("mode", engine.mode.as_str());
        if engine.mode == Mode::Isolated {
            kb.str("pair", &i.to_string());
        }
        kb.finish_partition()
    };
    let insert = |i: usize, p: &Pair| {
        engine.verified.insert(NewEntry {
            partition: partition_of(i),
            prompt: deja_core::normalize_prompt(&p.a),
            model: "eval".into(),
            answer: Answer::Body(Vec::new()),
            usage: Usage::default(),
            semantic: SemanticMode::Allowed,
            vector: None,
            category: None,
        })
    };
    if engine.mode == Mode::Shared {
        for (i, p) in pairs.iter().enumerate() {
            insert(i, p).await?;
            bar.inc(1);
        }
    }
    let mut outcomes = Vec::with_capacity(pairs.len());
    for (i, p) in pairs.iter().enumerate() {
        if engine.mode == Mode::Isolated {
            insert(i, p).await?;
        }
        let own_prompt = deja_core::normalize_prompt(&p.a);
        let b = deja_core::normalize_prompt(&p.b);
        let req = LookupRequest {
            category: None,
            partition: partition_of(i),
            prompt: &b,
            semantic: SemanticMode::Allowed,
            min_similarity: None,
            max_age_secs: None,
        };
        let candidate = |e: &Entry, similarity: f32| Candidate {
            similarity,
            own: e.prompt == own_prompt,
        };
        let (served, mut rejected, mut nearest) = match engine.verified.lookup(&req).await {
            Lookup::ExactHit(e) => (Some(candidate(&e, 1.0)), None, None),
            Lookup::SemanticHit {
                entry, similarity, ..
            } => (Some(candidate(&entry, similarity)), None, None),
            Lookup::Miss {
                nearest, rejected, ..
            } => (
                None,
                rejected.map(|r| r.as_str().to_string()),
                // In isolated mode the only entry is the pair's own.
                nearest.map(|similarity| Candidate {
                    similarity,
                    own: true,
                }),
            ),
            Lookup::Bypass(r) => anyhow::bail!("{file}: lookup bypassed: {}", r.as_str()),
        };
        // The nearest entry's prompt, for its model probability.
        let mut nearest_prompt = Some(own_prompt.clone());
        match engine.mode {
            // One entry: the nearest is the served one, or the one that was refused.
            Mode::Isolated => nearest = nearest.or(served),
            Mode::Shared => {
                let top = match engine.unverified.lookup(&req).await {
                    Lookup::ExactHit(e) => Some((candidate(&e, 1.0), e)),
                    Lookup::SemanticHit {
                        entry, similarity, ..
                    } => Some((candidate(&entry, similarity), entry)),
                    Lookup::Miss { .. } => None,
                    Lookup::Bypass(r) => {
                        anyhow::bail!("{file}: lookup bypassed: {}", r.as_str())
                    }
                };
                nearest_prompt = None;
                if let Some((cand, entry)) = top {
                    if served.is_some_and(|s| s.similarity < cand.similarity) {
                        // deja served a less similar entry: verification refused this one.
                        rejected = match &engine.model {
                            Some(m) => deja_core::verify::verify_model(
                                m,
                                &entry.prompt,
                                &b,
                                cand.similarity,
                                None,
                                m.file().min_confidence,
                                engine.serving.embedder().vocabulary(),
                            )
                            .err(),
                            None => deja_core::verify::verify(&entry.prompt, &b).err(),
                        }
                        .map(|r| r.as_str().to_string());
                    }
                    nearest = Some(cand);
                    nearest_prompt = Some(entry.prompt);
                }
            }
        }
        let vocab = engine.serving.embedder().vocabulary();
        let same_request = nearest_prompt
            .as_deref()
            .is_some_and(|prompt| deja_core::verify::same_request(prompt, &b, vocab));
        let pair_logit = match (&engine.pair, &nearest_prompt) {
            (Some(scorer), Some(prompt)) if nearest.is_some() => scorer
                .score(&[(prompt.clone(), b.clone())])
                .await
                .with_context(|| format!("{file}: scoring a pair"))?
                .first()
                .copied(),
            _ => None,
        };
        let confidence = match (&engine.model, nearest, &nearest_prompt) {
            (Some(m), Some(n), Some(prompt)) => {
                deja_core::verify::verify_model(m, prompt, &b, n.similarity, None, 0.0, vocab).ok()
            }
            _ => None,
        };
        let deja = if let Some(rule) = engine.rules.check_prompt(&b) {
            Decision::Bypass(rule.reason())
        } else if engine.mode == Mode::Isolated && engine.rules.check_prompt(&own_prompt).is_some()
        {
            // The proxy would not have stored `a`, so there is nothing to find.
            Decision::Miss
        } else {
            match engine.serving.lookup(&req).await {
                Lookup::ExactHit(e) | Lookup::SemanticHit { entry: e, .. } => {
                    if e.prompt == own_prompt {
                        Decision::Hit
                    } else {
                        Decision::OtherEntry
                    }
                }
                Lookup::Miss { .. } => Decision::Miss,
                Lookup::Bypass(r) => Decision::Bypass(r.as_str().to_string()),
            }
        };
        outcomes.push(PairOutcome {
            label: p.label,
            group: by.and_then(|c| p.columns.get(c).cloned()),
            nearest,
            served,
            rejected,
            confidence,
            pair_logit,
            same_request,
            deja: Some(deja),
        });
        bar.inc(1);
    }
    Ok(outcomes)
}

mod dump;
#[cfg(test)]
mod tests;

pub use dump::load_dump;
use dump::{dump_mode, write_dump};
