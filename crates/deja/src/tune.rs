//! `deja tune`: picks `min_similarity` from labelled pairs, the way teams choose a
//! threshold: for each group (a file, or a value of a `--by` column) a precision/recall
//! table over a fine grid of thresholds for verified serving (deja's behaviour), the
//! recommended threshold for a target precision, a TOML snippet to paste into the config,
//! and a precision/recall chart (SVG).
//!
//! The recommended threshold is the lowest one from which precision stays at or above the
//! target at every higher threshold of the grid (thresholds that serve nothing are
//! skipped). Precision is not monotonic in the threshold on finite samples; asking that it
//! hold from there upward keeps one lucky low threshold from being picked.
//!
//! Outcomes come from [`crate::eval`]: run through the engine, or read from a dump.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use deja_server::config::Config;
use serde::Serialize;

use crate::eval::{
    self, pct, threshold_str, Counts, FileOutcomes, Mode, PairOutcome, Serving, ServingRow,
};
use crate::plot;

/// `deja tune` arguments.
#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// CSV files with columns a, b, label.
    #[arg(long, num_args = 1.., required_unless_present = "from_dump")]
    pub pairs: Vec<PathBuf>,
    /// Use a file written by `deja eval --dump` instead of embedding again (with --pairs,
    /// only those files, and their columns fill in --by when the dump lacks it).
    #[arg(long)]
    pub from_dump: Option<PathBuf>,
    /// Least precision (share of served pairs served correctly) to recommend a threshold.
    #[arg(long, default_value_t = 0.99)]
    pub target_precision: f64,
    /// Recommend a threshold per value of this CSV column (e.g. a category column)
    /// instead of per file.
    #[arg(long, value_name = "COLUMN")]
    pub by: Option<String>,
    /// Thresholds to consider [default: 0.80 to 0.99, step 0.01].
    #[arg(long, value_delimiter = ',')]
    pub thresholds: Option<Vec<f32>>,
    /// Where to write the precision/recall chart (SVG).
    #[arg(long, default_value = "deja-tune.svg")]
    pub plot: PathBuf,
    /// Evaluate an evenly spread sample of this many rows per file (0 = all).
    #[arg(long, default_value_t = 2000)]
    pub sample: usize,
    /// isolated: one partition per pair; shared: all `a` of a file in one partition (with
    /// --from-dump, the dump's mode is used).
    #[arg(long, value_enum, default_value_t = Mode::Isolated)]
    pub mode: Mode,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Print JSON (tables, recommendations, the TOML snippet; no progress bar).
    #[arg(long)]
    pub json: bool,
    /// What to tune: `min-similarity` (the candidate gate, with verification as
    /// configured) or `min-confidence` (the learned verifier's confidence, at the gate
    /// `--gate`; isolated mode).
    #[arg(long, value_enum, default_value_t = Knob::MinSimilarity)]
    pub knob: Knob,
    /// With `--knob min-confidence`: the candidate gate the confidence is tuned at.
    #[arg(long, default_value_t = deja_core::engine::DEFAULT_GATE)]
    pub gate: f32,
}

/// The setting `tune` picks.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    MinSimilarity,
    MinConfidence,
}

impl Knob {
    /// The config key it sets.
    pub fn key(self) -> &'static str {
        match self {
            Knob::MinSimilarity => "min_similarity",
            Knob::MinConfidence => "min_confidence",
        }
    }
}

/// 0.80, 0.81, ..., 0.99.
pub fn default_grid() -> Vec<f32> {
    (80..=99).map(|i| i as f32 / 100.0).collect()
}

/// Confidences 0.50, 0.52, ..., 0.98.
pub fn confidence_grid() -> Vec<f32> {
    (25..=49).map(|i| i as f32 / 50.0).collect()
}

/// What `tune` recommends for one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recommendation {
    /// The lowest threshold from which precision stays at or above the target.
    Threshold { threshold: f32, counts: Counts },
    /// No threshold of the grid reaches the target (or it does not hold above it);
    /// `best` is the highest precision seen, at the lowest threshold giving it.
    NoneReaches { best: Option<(f32, f64)> },
    /// The group has no label-1 pairs: nothing it serves is correct.
    NoPositives,
}

/// Picks a threshold from `(threshold, counts)` rows (any order). See the module doc for
/// the rule.
pub fn recommend(rows: &[(f32, Counts)], target: f64) -> Recommendation {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    if rows.iter().all(|(_, c)| c.positives == 0) {
        return Recommendation::NoPositives;
    }
    let mut pick = None;
    for &(threshold, counts) in rows.iter().rev() {
        match counts.precision() {
            // Serves nothing: no evidence either way.
            None => continue,
            Some(p) if p >= target && counts.hits > 0 => pick = Some((threshold, counts)),
            Some(_) => break,
        }
    }
    match pick {
        Some((threshold, counts)) => Recommendation::Threshold { threshold, counts },
        None => {
            let mut best: Option<(f32, f64)> = None;
            for &(t, c) in &rows {
                if let Some(p) = c.precision() {
                    if best.is_none_or(|(_, b)| p > b) {
                        best = Some((t, p));
                    }
                }
            }
            Recommendation::NoneReaches { best }
        }
    }
}

/// A group's name as a TOML key: lowercase `[a-z0-9_]+`.
pub fn sanitize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "group".to_string()
    } else {
        out
    }
}

/// The pairs a threshold is recommended for.
struct Group<'a> {
    name: String,
    outcomes: Vec<&'a PairOutcome>,
}

fn file_stem(file: &str) -> &str {
    file.strip_suffix(".csv").unwrap_or(file)
}

/// Per file without `by`; with it, per value (prefixed by the file's name when there are
/// several files). Pairs without a value are grouped under their file's name.
fn groups<'a>(files: &'a [FileOutcomes], by: Option<&str>) -> Vec<Group<'a>> {
    let several = files.len() > 1;
    let mut out: Vec<Group<'a>> = Vec::new();
    for f in files {
        let stem = file_stem(&f.file);
        let mut by_value: BTreeMap<String, Vec<&PairOutcome>> = BTreeMap::new();
        for o in &f.outcomes {
            let name = match (&o.group, by) {
                (Some(v), Some(_)) if several => format!("{stem}/{v}"),
                (Some(v), Some(_)) => v.clone(),
                _ => stem.to_string(),
            };
            by_value.entry(name).or_default().push(o);
        }
        out.extend(
            by_value
                .into_iter()
                .map(|(name, outcomes)| Group { name, outcomes }),
        );
    }
    out
}

#[derive(Debug, Serialize)]
struct TuneRow {
    threshold: f32,
    #[serde(flatten)]
    verified: ServingRow,
}

#[derive(Debug, Serialize)]
struct Pick {
    /// The picked value of the knob.
    #[serde(skip)]
    min_similarity: f32,
    /// The same, under the knob's config key (`min_similarity` or `min_confidence`).
    #[serde(flatten)]
    setting: BTreeMap<&'static str, f32>,
    precision: Option<f64>,
    precision_lower_bound: Option<f64>,
    recall: Option<f64>,
    false_hit_rate: Option<f64>,
    served: usize,
}

#[derive(Debug, Serialize)]
struct GroupReport {
    name: String,
    /// The name as a TOML key.
    key: String,
    pairs: usize,
    positives: usize,
    negatives: usize,
    rows: Vec<TuneRow>,
    /// `None` when no threshold qualifies; `reason` says why.
    recommended: Option<Pick>,
    reason: Option<String>,
    #[serde(skip)]
    recommendation: Recommendation,
}

#[derive(Debug, Serialize)]
struct TuneReport {
    mode: Mode,
    serving: &'static str,
    /// The config key tuned.
    knob: &'static str,
    target_precision: f64,
    by: Option<String>,
    thresholds: Vec<f32>,
    groups: Vec<GroupReport>,
    toml: String,
    plot: Option<String>,
}

pub async fn run(config: Config, args: TuneArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.target_precision) {
        anyhow::bail!(
            "--target-precision must be between 0 and 1 (e.g. 0.99), not {}",
            args.target_precision
        );
    }
    let source = eval::Source {
        pairs: &args.pairs,
        from_dump: args.from_dump.as_deref(),
        sample: args.sample,
        mode: args.mode,
        by: args.by.as_deref(),
        dump: None,
        progress: !args.json,
        verifier: None,
        pair_verifier: None,
        held_out: false,
    };
    let (mode, files) = eval::collect(config, &source).await?;
    let thresholds = args.thresholds.clone().unwrap_or_else(|| match args.knob {
        Knob::MinSimilarity => default_grid(),
        Knob::MinConfidence => confidence_grid(),
    });
    let mut report = build_report(&files, &args, thresholds);
    report.mode = mode;
    write_plot(&args.plot, &report)?;
    report.plot = Some(args.plot.display().to_string());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    print_report(&mut out, &report)?;
    Ok(())
}

fn build_report(files: &[FileOutcomes], args: &TuneArgs, thresholds: Vec<f32>) -> TuneReport {
    let mut thresholds = thresholds;
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let mut keys_seen: BTreeMap<String, usize> = BTreeMap::new();
    let serving = match args.knob {
        Knob::MinSimilarity => Serving::Verified,
        Knob::MinConfidence => Serving::Confidence { gate: args.gate },
    };
    let groups = groups(files, args.by.as_deref())
        .into_iter()
        .map(|g| {
            let counts: Vec<(f32, Counts)> = thresholds
                .iter()
                .map(|&t| (t, Counts::at(g.outcomes.iter().copied(), t, serving)))
                .collect();
            let recommendation = recommend(&counts, args.target_precision);
            let (recommended, reason) = match recommendation {
                Recommendation::Threshold { threshold, counts } => (
                    Some(Pick {
                        min_similarity: threshold,
                        setting: BTreeMap::from([(args.knob.key(), threshold)]),
                        precision: counts.precision(),
                        precision_lower_bound: counts.precision_lower_bound(),
                        recall: counts.hit_rate(),
                        false_hit_rate: counts.false_hit_rate(),
                        served: counts.served(),
                    }),
                    None,
                ),
                Recommendation::NoneReaches { .. } => {
                    (None, Some("none reaches the target".to_string()))
                }
                Recommendation::NoPositives => (None, Some("no label-1 pairs".to_string())),
            };
            // Two names may sanitise to the same key; number the later ones.
            let mut key = sanitize(&g.name);
            let seen = keys_seen.entry(key.clone()).or_insert(0);
            *seen += 1;
            if *seen > 1 {
                key = format!("{key}_{seen}");
            }
            let positives = g.outcomes.iter().filter(|o| o.label).count();
            GroupReport {
                name: g.name,
                key,
                pairs: g.outcomes.len(),
                positives,
                negatives: g.outcomes.len() - positives,
                rows: counts
                    .into_iter()
                    .map(|(threshold, c)| TuneRow {
                        threshold,
                        verified: c.into(),
                    })
                    .collect(),
                recommended,
                reason,
                recommendation,
            }
        })
        .collect::<Vec<_>>();
    let toml = toml_snippet(&groups, &thresholds, args.target_precision, args.knob);
    TuneReport {
        mode: args.mode,
        serving: "verified",
        knob: args.knob.key(),
        target_precision: args.target_precision,
        by: args.by.clone(),
        thresholds,
        groups,
        toml,
        plot: None,
    }
}

fn toml_snippet(groups: &[GroupReport], thresholds: &[f32], target: f64, knob: Knob) -> String {
    let key = knob.key();
    let range = match (thresholds.first(), thresholds.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.2}..{hi:.2}"),
        _ => "the grid".to_string(),
    };
    let mut s = String::new();
    let missing = |g: &GroupReport| match g.recommendation {
        Recommendation::NoPositives => {
            format!("# {}: no label-1 pairs, no threshold to pick\n", g.name)
        }
        _ => format!(
            "# {}: no threshold in {range} reaches {} precision\n",
            g.name,
            pct(Some(target))
        ),
    };
    if let [g] = groups {
        match &g.recommended {
            Some(p) => s.push_str(&format!(
                "[cache]\n{key} = {}\n",
                threshold_str(p.min_similarity)
            )),
            None => s.push_str(&missing(g)),
        }
        return s;
    }
    for g in groups {
        match &g.recommended {
            Some(p) => s.push_str(&format!(
                "[categories.{}]\n{key} = {}\n",
                g.key,
                threshold_str(p.min_similarity)
            )),
            None => s.push_str(&missing(g)),
        }
    }
    s
}

fn write_plot(path: &Path, report: &TuneReport) -> anyhow::Result<()> {
    let series: Vec<plot::Series> = report
        .groups
        .iter()
        .map(|g| {
            let mut chosen = None;
            let points = g
                .rows
                .iter()
                .filter_map(|r| {
                    let precision = r.verified.precision?;
                    let recall = r.verified.hit_rate?;
                    if g.recommended
                        .as_ref()
                        .is_some_and(|p| p.min_similarity == r.threshold)
                    {
                        chosen = Some(());
                    }
                    Some(plot::Point {
                        threshold: r.threshold,
                        recall,
                        precision,
                    })
                })
                .collect::<Vec<_>>();
            let chosen = chosen.and_then(|()| {
                let t = g.recommended.as_ref()?.min_similarity;
                points.iter().position(|p| p.threshold == t)
            });
            plot::Series {
                name: g.name.clone(),
                points,
                chosen,
            }
        })
        .collect();
    let title = format!(
        "deja tune: precision vs recall, verified serving ({} mode)",
        report.mode.as_str()
    );
    let svg =
        plot::precision_recall_svg(&title, report.knob, &series, Some(report.target_precision));
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn print_report(out: &mut impl Write, r: &TuneReport) -> std::io::Result<()> {
    let shared = r.mode == Mode::Shared;
    writeln!(
        out,
        "deja tune: verified serving (deja's behaviour), {} mode, target precision {}",
        r.mode.as_str(),
        pct(Some(r.target_precision))
    )?;
    for g in &r.groups {
        writeln!(out)?;
        writeln!(
            out,
            "{} ({} pairs, {} positive, {} negative)",
            g.name, g.pairs, g.positives, g.negatives
        )?;
        let mut head = vec![r.knob, "recall (hits, label 1)", "false hits (label 0)"];
        if shared {
            head.push("wrong entry (label 1)");
        }
        head.extend(["served", "precision", "precision, 95% lower bound", "note"]);
        writeln!(out, "| {} |", head.join(" | "))?;
        writeln!(out, "|{}", "---|".repeat(head.len()))?;
        let chosen = g.recommended.as_ref().map(|p| p.min_similarity);
        for row in &g.rows {
            let v = &row.verified;
            let mut cells = vec![
                threshold_str(row.threshold),
                format!("{} ({})", pct(v.hit_rate), v.counts.hits),
                format!("{} ({})", pct(v.false_hit_rate), v.counts.false_hits),
            ];
            if shared {
                cells.push(format!(
                    "{} ({})",
                    pct(v.wrong_entry_rate),
                    v.counts.wrong_entry_hits
                ));
            }
            cells.extend([
                v.served.to_string(),
                pct(v.precision),
                pct(v.precision_lower_bound),
                if chosen == Some(row.threshold) {
                    "← recommended".to_string()
                } else {
                    String::new()
                },
            ]);
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Recommended {}: the lowest threshold from which precision stays ≥ {}",
        r.knob,
        pct(Some(r.target_precision))
    )?;
    writeln!(
        out,
        "| group | {} | precision | precision, 95% lower bound | recall | false-hit rate | served |",
        r.knob
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    let mut weak = false;
    for g in &r.groups {
        match (&g.recommended, g.recommendation) {
            (Some(p), _) => {
                weak |= p.precision_lower_bound < Some(r.target_precision);
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    g.name,
                    threshold_str(p.min_similarity),
                    pct(p.precision),
                    pct(p.precision_lower_bound),
                    pct(p.recall),
                    pct(p.false_hit_rate),
                    p.served
                )?
            }
            (None, Recommendation::NoneReaches { best }) => {
                let best = best.map_or_else(String::new, |(t, p)| {
                    format!(" (best: {} at {})", pct(Some(p)), threshold_str(t))
                });
                writeln!(
                    out,
                    "| {} | none reaches the target{best} | | | | | |",
                    g.name
                )?
            }
            (None, _) => writeln!(
                out,
                "| {} | no label-1 pairs: nothing served is correct | | | | | |",
                g.name
            )?,
        }
    }
    if weak {
        writeln!(
            out,
            "Where the 95% lower bound is below the target, too few pairs were served there to \
             be sure of it: measure more pairs of that kind before relying on the threshold."
        )?;
    }
    writeln!(out)?;
    if r.groups.len() > 1 && r.groups.iter().any(|g| g.recommended.is_some()) {
        writeln!(
            out,
            "# Paste into deja's config. A category receives traffic through its keywords or\n\
             # examples (or a client naming it); configuring any replaces the built-in ones."
        )?;
    } else {
        writeln!(out, "# Paste into deja's config.")?;
    }
    write!(out, "{}", r.toml)?;
    if let Some(p) = &r.plot {
        writeln!(out)?;
        writeln!(out, "precision/recall chart: {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Candidate;

    fn outcome(label: bool, similarity: f32) -> PairOutcome {
        let c = Candidate {
            similarity,
            own: true,
        };
        PairOutcome {
            label,
            group: None,
            nearest: Some(c),
            served: Some(c),
            rejected: None,
            confidence: None,
            pair_logit: None,
            same_request: false,
            deja: None,
        }
    }

    fn rows(outcomes: &[PairOutcome], grid: &[f32]) -> Vec<(f32, Counts)> {
        grid.iter()
            .map(|&t| (t, Counts::at(outcomes, t, Serving::Verified)))
            .collect()
    }

    #[test]
    fn recommendation_table() {
        let grid = [0.80, 0.85, 0.90, 0.95];
        // (name, outcomes as (label, similarity), target, expected threshold or None)
        type Case = (&'static str, &'static [(bool, f32)], f64, Option<f32>);
        let cases: &[Case] = &[
            (
                "clean separation: lowest threshold above the negatives",
                &[(true, 0.97), (true, 0.92), (false, 0.86), (false, 0.70)],
                0.99,
                Some(0.90),
            ),
            (
                "a similarity equal to the threshold is served (tie)",
                &[(true, 0.95), (true, 0.90), (false, 0.90)],
                0.99,
                Some(0.95),
            ),
            (
                "precision exactly at the target qualifies",
                // 3 hits of 4 served at every threshold: exactly 75%.
                &[
                    (true, 0.99),
                    (true, 0.98),
                    (true, 0.97),
                    (false, 0.96),
                    (false, 0.5),
                ],
                0.75,
                Some(0.80),
            ),
            (
                "a lucky low threshold is not picked when a higher one falls below",
                // 0.80: 3 hits of 4 served = 75%; 0.85 and 0.90: 2 of 3 = 66.7%; 0.95: 2 of 2.
                &[(true, 0.97), (true, 0.96), (false, 0.91), (true, 0.82)],
                0.75,
                Some(0.95),
            ),
            (
                "none reaches the target",
                &[(true, 0.97), (false, 0.98)],
                0.99,
                None,
            ),
            (
                "thresholds that serve nothing are skipped",
                &[(true, 0.86), (false, 0.5)],
                0.99,
                Some(0.80),
            ),
        ];
        for (name, pairs, target, want) in cases {
            let outcomes: Vec<_> = pairs.iter().map(|&(l, s)| outcome(l, s)).collect();
            let got = recommend(&rows(&outcomes, &grid), *target);
            match (got, want) {
                (Recommendation::Threshold { threshold, .. }, Some(w)) => {
                    assert_eq!(threshold, *w, "{name}")
                }
                (Recommendation::NoneReaches { .. }, None) => {}
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn recommendation_reports_its_counts_and_best() {
        let outcomes = [
            outcome(true, 0.97),
            outcome(false, 0.98),
            outcome(true, 0.5),
        ];
        let got = recommend(&rows(&outcomes, &[0.9, 0.95, 0.99]), 0.99);
        assert_eq!(
            got,
            Recommendation::NoneReaches {
                best: Some((0.9, 0.5))
            }
        );
        let outcomes = [outcome(true, 0.97), outcome(true, 0.5), outcome(false, 0.6)];
        let Recommendation::Threshold { threshold, counts } =
            recommend(&rows(&outcomes, &[0.9, 0.8]), 0.99)
        else {
            panic!("expected a threshold");
        };
        assert_eq!(threshold, 0.8, "rows in any order");
        assert_eq!(
            (counts.hits, counts.false_hits, counts.positives),
            (1, 0, 2)
        );
        assert_eq!(counts.hit_rate(), Some(0.5));
    }

    #[test]
    fn no_positives_has_no_threshold() {
        let outcomes = [outcome(false, 0.99), outcome(false, 0.5)];
        assert_eq!(
            recommend(&rows(&outcomes, &default_grid()), 0.99),
            Recommendation::NoPositives
        );
        assert_eq!(recommend(&[], 0.99), Recommendation::NoPositives);
    }

    #[test]
    fn default_grid_is_exact_hundredths() {
        let g = default_grid();
        assert_eq!(g.len(), 20);
        assert_eq!(g[0], 0.80);
        assert_eq!(g[15], 0.95);
        assert_eq!(g[19], 0.99);
    }

    #[test]
    fn sanitize_names() {
        let cases = [
            ("faq", "faq"),
            ("banking77/pos_same_intent", "banking77_pos_same_intent"),
            ("Card Arrival!", "card_arrival"),
            ("__x--y__", "x_y"),
            ("Überweisung", "berweisung"),
            ("***", "group"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), want, "{input}");
        }
    }

    fn args(by: Option<&str>) -> TuneArgs {
        TuneArgs {
            pairs: Vec::new(),
            from_dump: None,
            target_precision: 0.99,
            by: by.map(str::to_string),
            thresholds: None,
            plot: PathBuf::from("unused.svg"),
            sample: 0,
            mode: Mode::Isolated,
            model: Default::default(),
            json: false,
            knob: Knob::MinSimilarity,
            gate: 0.8,
        }
    }

    #[test]
    fn confidence_is_tuned_at_the_gate() {
        // (label, similarity, confidence): below the gate nothing is served; a veto
        // (no confidence) is never served.
        let cases = [
            (true, 0.95, Some(0.9)),
            (true, 0.90, Some(0.7)),
            (false, 0.97, Some(0.6)),
            (false, 0.99, None),
            (true, 0.70, Some(0.99)),
        ];
        let outcomes: Vec<PairOutcome> = cases
            .iter()
            .map(|&(label, sim, confidence)| PairOutcome {
                confidence,
                ..outcome(label, sim)
            })
            .collect();
        let file = FileOutcomes {
            file: "f.csv".into(),
            outcomes,
        };
        let a = TuneArgs {
            knob: Knob::MinConfidence,
            ..args(None)
        };
        let r = build_report(std::slice::from_ref(&file), &a, vec![0.5, 0.65, 0.8]);
        let g = &r.groups[0];
        let served: Vec<(usize, usize)> = g
            .rows
            .iter()
            .map(|row| (row.verified.counts.hits, row.verified.counts.false_hits))
            .collect();
        assert_eq!(served, [(2, 1), (2, 0), (1, 0)]);
        assert_eq!(r.toml, "[cache]\nmin_confidence = 0.65\n");
        let json = serde_json::to_value(&g.recommended).unwrap();
        assert_eq!(
            json["min_confidence"].as_f64().map(|v| v as f32),
            Some(0.65)
        );
    }

    #[test]
    fn toml_for_one_group_sets_the_cache_threshold() {
        let files = [FileOutcomes {
            file: "faq.csv".into(),
            outcomes: vec![outcome(true, 0.97), outcome(false, 0.91)],
        }];
        let r = build_report(&files, &args(None), default_grid());
        assert_eq!(r.toml, "[cache]\nmin_similarity = 0.92\n");
    }

    #[test]
    fn toml_per_group_with_by_and_missing_ones_commented() {
        let mut outcomes = vec![
            outcome(true, 0.97),
            outcome(false, 0.91),
            outcome(true, 0.9),
            outcome(false, 0.99),
            outcome(false, 0.99),
        ];
        for (o, g) in outcomes
            .iter_mut()
            .zip(["FAQ", "FAQ", "sup port", "sup port", "neg"])
        {
            o.group = Some(g.into());
        }
        let files = [FileOutcomes {
            file: "x.csv".into(),
            outcomes,
        }];
        let r = build_report(&files, &args(Some("kind")), default_grid());
        let names: Vec<_> = r.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["FAQ", "neg", "sup port"]);
        assert_eq!(
            r.toml,
            "[categories.faq]\nmin_similarity = 0.92\n\
             # neg: no label-1 pairs, no threshold to pick\n\
             # sup port: no threshold in 0.80..0.99 reaches 99.0% precision\n"
        );
    }

    #[test]
    fn groups_are_prefixed_by_file_when_several() {
        let mut a = outcome(true, 0.9);
        a.group = Some("dev".into());
        let files = [
            FileOutcomes {
                file: "p.csv".into(),
                outcomes: vec![a, outcome(true, 0.9)],
            },
            FileOutcomes {
                file: "q.csv".into(),
                outcomes: vec![outcome(false, 0.9)],
            },
        ];
        let names: Vec<String> = groups(&files, Some("split"))
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["p", "p/dev", "q"]);
        let names: Vec<String> = groups(&files, None).into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["p", "q"]);
    }
}
