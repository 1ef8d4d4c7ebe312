//! `deja eval`: measures hit quality on labelled prompt pairs (`a,b,label` CSV files)
//! through the real serving path — normalisation, partitioning, the configured embedder,
//! the on-disk store and the vector index. Each pair gets its own partition (pairwise
//! isolated): `a` is stored, then `b` is looked up; the outcome and similarity are recorded.
//! The report gives, per threshold, the hit rate on label-1 pairs and the false-hit rate on
//! label-0 pairs, on similarity alone and after verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use deja_core::{
    Answer, Cache, CacheOptions, KeyBuilder, Lookup, LookupRequest, NewEntry, SemanticMode,
    SystemClock, Usage,
};
use deja_server::config::{Config, Durability};

pub struct EvalArgs {
    pub pairs: Vec<PathBuf>,
    pub sample: usize,
    pub thresholds: Vec<f32>,
    pub json: bool,
    /// Append one JSON line per pair (texts, label, similarity, rejection) to this file.
    pub dump: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Row {
    threshold: f32,
    /// Served on similarity alone.
    hit_rate: f64,
    false_hit_rate: f64,
    precision: f64,
    /// Served after verification (deja's behaviour).
    verified_hit_rate: f64,
    verified_false_hit_rate: f64,
    verified_precision: f64,
}

#[derive(serde::Serialize)]
struct FileReport {
    file: String,
    pairs: usize,
    positives: usize,
    rows: Vec<Row>,
}

/// What the serving path did with one pair (at threshold 0, so every pair has a candidate).
#[derive(serde::Serialize)]
struct Outcome {
    label: bool,
    /// Similarity of the candidate (1.0 for an exact hit); None when nothing was found.
    similarity: Option<f32>,
    /// Why verification refused the candidate, if it did.
    rejected: Option<&'static str>,
}

struct Pair {
    a: String,
    b: String,
    label: bool,
}

fn read_pairs(path: &Path, sample: usize) -> anyhow::Result<Vec<Pair>> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", path.display()))
    };
    let (ia, ib, il) = (col("a")?, col("b")?, col("label")?);
    let mut all = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        all.push(Pair {
            a: rec.get(ia).unwrap_or_default().to_string(),
            b: rec.get(ib).unwrap_or_default().to_string(),
            label: rec.get(il) == Some("1"),
        });
    }
    // A deterministic, evenly spread sample keeps runs comparable.
    if sample > 0 && all.len() > sample {
        let step = all.len() as f64 / sample as f64;
        all = (0..sample)
            .map(|i| (i as f64 * step) as usize)
            .filter_map(|i| {
                all.get(i).map(|p| Pair {
                    a: p.a.clone(),
                    b: p.b.clone(),
                    label: p.label,
                })
            })
            .collect();
    }
    Ok(all)
}

pub async fn run(config: Config, args: EvalArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a scratch data dir")?;
    let mut config = config;
    config.data_dir = dir.path().to_path_buf();
    config.store.durability = Durability::Fast;
    let store = Arc::new(deja_server::open_store(&config)?);
    let embedder = deja_server::build_embedder(&config)?;
    let index = Arc::new(deja_store_local::HnswIndex::new(
        embedder.id(),
        embedder.dim(),
        deja_store_local::HnswParams::default(),
    ));
    let cache = Cache::new(
        store,
        index,
        embedder,
        Arc::new(SystemClock),
        // Threshold 0: every pair yields its candidate and similarity; the thresholds are
        // applied when reporting.
        CacheOptions {
            min_similarity: 0.0,
            ..CacheOptions::default()
        },
    )?;
    let mut reports = Vec::new();
    for path in &args.pairs {
        let pairs = read_pairs(path, args.sample)?;
        let mut served: Vec<Outcome> = Vec::with_capacity(pairs.len());
        let mut dump = Vec::new();
        for (i, p) in pairs.iter().enumerate() {
            let mut kb = KeyBuilder::new("eval/v1");
            kb.str("file", &path.display().to_string()).str("pair", &i.to_string());
            let partition = kb.finish_partition();
            let a = deja_core::normalize_prompt(&p.a);
            let b = deja_core::normalize_prompt(&p.b);
            cache
                .insert(NewEntry {
                    partition,
                    prompt: a,
                    model: "eval".into(),
                    answer: Answer::Body(Vec::new()),
                    usage: Usage::default(),
                    semantic: SemanticMode::Allowed,
                    vector: None,
                })
                .await?;
            let found = cache
                .lookup(&LookupRequest {
                    partition,
                    prompt: &b,
                    semantic: SemanticMode::Allowed,
                    min_similarity: None,
                    max_age_secs: None,
                })
                .await;
            let outcome = match found {
                Lookup::ExactHit(_) => Outcome { label: p.label, similarity: Some(1.0), rejected: None },
                Lookup::SemanticHit { similarity, .. } => Outcome {
                    label: p.label,
                    similarity: Some(similarity),
                    rejected: None,
                },
                Lookup::Miss { nearest, rejected, .. } => Outcome {
                    label: p.label,
                    similarity: nearest,
                    rejected: rejected.map(|r| r.as_str()),
                },
                Lookup::Bypass(r) => anyhow::bail!("lookup bypassed: {}", r.as_str()),
            };
            if args.dump.is_some() {
                dump.push(serde_json::json!({
                    "file": path.file_name().map(|f| f.to_string_lossy().to_string()),
                    "a": p.a, "b": p.b, "label": p.label as u8,
                    "similarity": outcome.similarity, "rejected": outcome.rejected,
                }));
            }
            served.push(outcome);
            if !args.json && (i + 1) % 500 == 0 {
                eprintln!("{}: {}/{}", path.display(), i + 1, pairs.len());
            }
        }
        if let Some(dump_path) = &args.dump {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump_path)
                .with_context(|| format!("opening {}", dump_path.display()))?;
            for d in dump {
                writeln!(f, "{d}")?;
            }
        }
        let positives = served.iter().filter(|o| o.label).count();
        let negatives = served.len() - positives;
        let rate = |n: usize, d: usize| n as f64 / d.max(1) as f64;
        let precision = |tp: usize, fp: usize| if tp + fp == 0 { 1.0 } else { rate(tp, tp + fp) };
        let rows = args
            .thresholds
            .iter()
            .map(|&t| {
                let above = |o: &&Outcome| o.similarity.is_some_and(|s| s >= t);
                let verified = |o: &&Outcome| above(o) && o.rejected.is_none();
                let count = |label: bool, f: &dyn Fn(&&Outcome) -> bool| {
                    served.iter().filter(|o| o.label == label).filter(|o| f(o)).count()
                };
                let (tp, fp) = (count(true, &above), count(false, &above));
                let (vtp, vfp) = (count(true, &verified), count(false, &verified));
                Row {
                    threshold: t,
                    hit_rate: rate(tp, positives),
                    false_hit_rate: rate(fp, negatives),
                    precision: precision(tp, fp),
                    verified_hit_rate: rate(vtp, positives),
                    verified_false_hit_rate: rate(vfp, negatives),
                    verified_precision: precision(vtp, vfp),
                }
            })
            .collect();
        reports.push(FileReport {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            pairs: served.len(),
            positives,
            rows,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    for r in &reports {
        println!("\n{} ({} pairs, {} positive)", r.file, r.pairs, r.positives);
        println!("| min_similarity | hits (label 1) | false hits (label 0) | precision | hits, verified | false hits, verified | precision, verified |");
        println!("|---|---|---|---|---|---|---|");
        for row in &r.rows {
            println!(
                "| {:.2} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                row.threshold,
                row.hit_rate * 100.0,
                row.false_hit_rate * 100.0,
                row.precision * 100.0,
                row.verified_hit_rate * 100.0,
                row.verified_false_hit_rate * 100.0,
                row.verified_precision * 100.0,
            );
        }
    }
    Ok(())
}
