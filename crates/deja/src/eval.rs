//! `deja eval`: measures hit quality on labelled prompt pairs (`a,b,label` CSV files)
//! through the real serving path — normalisation, partitioning, the configured embedder,
//! the on-disk store and the vector index. Each pair gets its own partition (pairwise
//! isolated): `a` is stored, then `b` is looked up; the outcome and similarity are recorded.
//! The report gives, per threshold, the hit rate on label-1 pairs and the false-hit rate on
//! label-0 pairs.

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
}

#[derive(serde::Serialize)]
struct Row {
    threshold: f32,
    hit_rate: f64,
    false_hit_rate: f64,
    precision: f64,
}

#[derive(serde::Serialize)]
struct FileReport {
    file: String,
    pairs: usize,
    positives: usize,
    rows: Vec<Row>,
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
    let lowest = args.thresholds.iter().copied().fold(1.0f32, f32::min);
    let cache = Cache::new(
        store,
        index,
        embedder,
        Arc::new(SystemClock),
        CacheOptions {
            min_similarity: lowest,
            ..CacheOptions::default()
        },
    )?;
    let mut reports = Vec::new();
    for path in &args.pairs {
        let pairs = read_pairs(path, args.sample)?;
        // similarity of the served entry (1.0 for exact), or None for a miss
        let mut served: Vec<(bool, Option<f32>)> = Vec::with_capacity(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            let mut kb = KeyBuilder::new("eval/v1");
            kb.str("file", &path.display().to_string())
                .str("pair", &i.to_string());
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
            let sim = match found {
                Lookup::ExactHit(_) => Some(1.0),
                Lookup::SemanticHit { similarity, .. } => Some(similarity),
                Lookup::Miss { .. } => None,
                Lookup::Bypass(r) => anyhow::bail!("lookup bypassed: {}", r.as_str()),
            };
            served.push((p.label, sim));
            if !args.json && (i + 1) % 500 == 0 {
                eprintln!("{}: {}/{}", path.display(), i + 1, pairs.len());
            }
        }
        let positives = served.iter().filter(|(l, _)| *l).count();
        let negatives = served.len() - positives;
        let rows = args
            .thresholds
            .iter()
            .map(|&t| {
                let hit = |(_, s): &&(bool, Option<f32>)| s.is_some_and(|s| s >= t);
                let tp = served.iter().filter(|x| x.0).filter(hit).count();
                let fp = served.iter().filter(|x| !x.0).filter(hit).count();
                Row {
                    threshold: t,
                    hit_rate: tp as f64 / positives.max(1) as f64,
                    false_hit_rate: fp as f64 / negatives.max(1) as f64,
                    precision: if tp + fp == 0 {
                        1.0
                    } else {
                        tp as f64 / (tp + fp) as f64
                    },
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
        println!("| min_similarity | hit rate (label 1) | false-hit rate (label 0) | precision |");
        println!("|---|---|---|---|");
        for row in &r.rows {
            println!(
                "| {:.2} | {:.1}% | {:.1}% | {:.1}% |",
                row.threshold,
                row.hit_rate * 100.0,
                row.false_hit_rate * 100.0,
                row.precision * 100.0
            );
        }
    }
    Ok(())
}
