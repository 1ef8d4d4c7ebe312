//! `deja bench`: the engine on its embedded default backend (redb store + HNSW index) with
//! synthetic entries — insert rate, exact and semantic lookup latency (embedding excluded:
//! vectors are precomputed), and memory per entry. The proxy's HTTP throughput is measured
//! separately with `bench/load/run.sh`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use deja_core::{
    Answer, Cache, CacheOptions, EmbedError, Embedder, KeyBuilder, Lookup, LookupRequest, NewEntry,
    SemanticMode, SystemClock, Usage,
};
use parking_lot::RwLock;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use deja_server::config::{Config, Durability};

pub struct BenchArgs {
    pub entries: usize,
    pub queries: usize,
    pub dim: usize,
    pub answer_bytes: usize,
    pub json: bool,
}

/// Hands out precomputed vectors, so lookups measure the cache, not the model.
struct PrecomputedEmbedder {
    dim: usize,
    vectors: RwLock<HashMap<String, Vec<f32>>>,
}

#[async_trait]
impl Embedder for PrecomputedEmbedder {
    fn id(&self) -> &str {
        "bench:precomputed"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let map = self.vectors.read();
        texts
            .iter()
            .map(|t| map.get(t).cloned().ok_or(EmbedError::WorkerGone))
            .collect()
    }
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Embedding-like data: unit vectors around 1,000 cluster centres.
fn clustered(rng: &mut rand::rngs::StdRng, centres: &[Vec<f32>], spread: f32) -> Vec<f32> {
    let c = &centres[rng.gen_range(0..centres.len())];
    let mut v: Vec<f32> = c
        .iter()
        .map(|x| x + spread * (rng.gen::<f32>() - 0.5))
        .collect();
    unit(&mut v);
    v
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

#[derive(Serialize)]
struct Report {
    entries: usize,
    queries: usize,
    insert_per_sec: f64,
    exact_p50_us: f64,
    exact_p99_us: f64,
    semantic_p50_us: f64,
    semantic_p99_us: f64,
    semantic_hit_rate: f64,
    miss_p50_us: f64,
    miss_p99_us: f64,
    /// Process RSS growth over the inserts, per entry. It includes the store's page cache,
    /// which is bounded (`store.cache_bytes`), so it shrinks per entry as the cache fills.
    rss_bytes_per_entry: f64,
    /// The vector index's own allocations per entry.
    index_bytes_per_entry: f64,
    disk_bytes_per_entry: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The engine under test: the embedded backend in a scratch directory, fed precomputed
/// vectors. Verification is off: synthetic prompts differ in numbers by construction
/// ("bench prompt 17" vs "near 3"), which verification would rightly refuse; this measures
/// the similarity machinery.
struct Harness {
    cache: Cache,
    index: Arc<deja_store_local::HnswIndex>,
    embedder: Arc<PrecomputedEmbedder>,
    partition: deja_core::PartitionKey,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(config: Config, dim: usize) -> anyhow::Result<Harness> {
        let dir = tempfile::tempdir().context("creating a scratch data dir")?;
        let mut config = config;
        config.data_dir = dir.path().to_path_buf();
        config.store.durability = Durability::Fast;
        let embedder = Arc::new(PrecomputedEmbedder {
            dim,
            vectors: RwLock::new(HashMap::new()),
        });
        let store = Arc::new(deja_server::open_store(&config)?);
        let index = Arc::new(deja_store_local::HnswIndex::new(
            embedder.id(),
            dim,
            deja_store_local::HnswParams::default(),
        ));
        // As `deja serve` runs it: graph inserts on the index's own thread.
        index
            .insert_in_background()
            .context("starting the index's insert thread")?;
        let cache = Cache::new(
            store,
            index.clone(),
            embedder.clone(),
            Arc::new(SystemClock),
            CacheOptions {
                min_similarity: 0.9,
                verify: deja_core::VerifyMode::Off,
                ..CacheOptions::default()
            },
        )?;
        let mut kb = KeyBuilder::new("bench/v1");
        kb.str("tenant", "bench");
        Ok(Harness {
            cache,
            index,
            embedder,
            partition: kb.finish_partition(),
            _dir: dir,
        })
    }
}

pub async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    let Harness {
        cache,
        index,
        embedder,
        partition,
        _dir: dir,
    } = Harness::new(config, args.dim)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut v: Vec<f32> = (0..args.dim).map(|_| rng.gen::<f32>() - 0.5).collect();
            unit(&mut v);
            v
        })
        .collect();
    let answer = vec![b'x'; args.answer_bytes];

    let mut vectors = Vec::with_capacity(args.entries);
    for _ in 0..args.entries {
        vectors.push(clustered(&mut rng, &centres, 0.08));
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    for (i, v) in vectors.iter().enumerate() {
        cache
            .insert(NewEntry {
                partition,
                prompt: format!("bench prompt {i}"),
                model: "bench".into(),
                answer: Answer::Body(answer.clone()),
                usage: Usage::default(),
                semantic: SemanticMode::Allowed,
                vector: Some(v.clone()),
                category: None,
            })
            .await?;
        if !args.json && (i + 1) % 10_000 == 0 {
            eprintln!("inserted {}/{}", i + 1, args.entries);
        }
    }
    cache.flush_counters().await?;
    // Counted until every vector is in its graph.
    index.settle();
    let insert_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();

    let time = |t: Instant| t.elapsed().as_secs_f64() * 1e6;
    let mut exact = Vec::with_capacity(args.queries);
    let mut semantic = Vec::with_capacity(args.queries);
    let mut novel = Vec::with_capacity(args.queries);
    let mut semantic_hits = 0usize;
    for q in 0..args.queries {
        let i = rng.gen_range(0..args.entries);
        let prompt = format!("bench prompt {i}");
        let t = Instant::now();
        let found = cache
            .lookup(&LookupRequest {
                category: None,
                partition,
                prompt: &prompt,
                semantic: SemanticMode::Allowed,
                min_similarity: None,
                max_age_secs: None,
            })
            .await;
        exact.push(time(t));
        anyhow::ensure!(
            matches!(found, Lookup::ExactHit(_)),
            "exact lookup {i} missed"
        );

        // A near neighbour: the stored vector plus a little noise (cosine ≈ 0.95–0.99).
        let mut near: Vec<f32> = vectors[i]
            .iter()
            .map(|x| x + 0.012 * (rng.gen::<f32>() - 0.5))
            .collect();
        unit(&mut near);
        let near_prompt = format!("near {q}");
        let mut far = clustered(&mut rng, &centres, 0.6);
        unit(&mut far);
        let far_prompt = format!("novel {q}");
        {
            let mut map = embedder.vectors.write();
            map.insert(near_prompt.clone(), near);
            map.insert(far_prompt.clone(), far);
        }
        let t = Instant::now();
        let found = cache
            .lookup(&LookupRequest {
                category: None,
                partition,
                prompt: &near_prompt,
                semantic: SemanticMode::Allowed,
                min_similarity: None,
                max_age_secs: None,
            })
            .await;
        semantic.push(time(t));
        if matches!(found, Lookup::SemanticHit { .. }) {
            semantic_hits += 1;
        }
        let t = Instant::now();
        cache
            .lookup(&LookupRequest {
                category: None,
                partition,
                prompt: &far_prompt,
                semantic: SemanticMode::Allowed,
                min_similarity: Some(0.99),
                max_age_secs: None,
            })
            .await;
        novel.push(time(t));
    }
    for v in [&mut exact, &mut semantic, &mut novel] {
        v.sort_by(f64::total_cmp);
    }
    let disk = std::fs::metadata(dir.path().join("deja.redb")).map_or(0, |m| m.len());
    let n = args.entries.max(1) as f64;
    let report = Report {
        entries: args.entries,
        queries: args.queries,
        insert_per_sec: args.entries as f64 / insert_secs,
        exact_p50_us: pct(&exact, 0.5),
        exact_p99_us: pct(&exact, 0.99),
        semantic_p50_us: pct(&semantic, 0.5),
        semantic_p99_us: pct(&semantic, 0.99),
        semantic_hit_rate: semantic_hits as f64 / args.queries.max(1) as f64,
        miss_p50_us: pct(&novel, 0.5),
        miss_p99_us: pct(&novel, 0.99),
        rss_bytes_per_entry: rss_after.saturating_sub(rss_before) as f64 / n,
        index_bytes_per_entry: index.memory_bytes() as f64 / n,
        disk_bytes_per_entry: disk as f64 / n,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "entries {} (answers {} B), queries {}",
            report.entries, args.answer_bytes, report.queries
        );
        println!("insert            {:.0} entries/s", report.insert_per_sec);
        println!(
            "exact lookup      p50 {:.1} µs  p99 {:.1} µs",
            report.exact_p50_us, report.exact_p99_us
        );
        println!(
            "semantic lookup   p50 {:.1} µs  p99 {:.1} µs  (hit rate {:.1}%, embedding excluded)",
            report.semantic_p50_us,
            report.semantic_p99_us,
            report.semantic_hit_rate * 100.0
        );
        println!(
            "semantic miss     p50 {:.1} µs  p99 {:.1} µs",
            report.miss_p50_us, report.miss_p99_us
        );
        println!(
            "memory            {:.0} B/entry index; {:.0} B/entry RSS growth (incl. the bounded page cache); {:.0} B/entry on disk",
            report.index_bytes_per_entry, report.rss_bytes_per_entry, report.disk_bytes_per_entry
        );
    }
    Ok(())
}

/// One query of a peer-benchmark workload (`../shared/bench/peers`, `--dump-workload`).
#[derive(serde::Deserialize)]
struct WorkloadQuery {
    kind: String,
    text: String,
    expected_id: i64,
}

#[derive(serde::Deserialize)]
struct WorkloadEntry {
    prompt: String,
    response: String,
}

fn read_f32s(path: &std::path::Path) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {}", path.display())))
        .collect()
}

/// Replays a peer workload: the same prompts, answers and vectors the peers were measured
/// on, through deja's engine (min_similarity 0.9, RedisVL's default).
pub async fn run_workload(config: Config, dir: &std::path::Path) -> anyhow::Result<()> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("meta.json")).context("reading meta.json")?,
    )?;
    let dim = meta["dim"].as_u64().context("meta.json: dim")? as usize;
    let entries: Vec<WorkloadEntry> = read_jsonl(&dir.join("entries.jsonl"))?;
    let queries: Vec<WorkloadQuery> = read_jsonl(&dir.join("queries.jsonl"))?;
    let entry_vecs = read_f32s(&dir.join("entry_vectors.f32"))?;
    let query_vecs = read_f32s(&dir.join("query_vectors.f32"))?;
    anyhow::ensure!(
        entry_vecs.len() == entries.len() * dim && query_vecs.len() == queries.len() * dim,
        "vector files do not match the JSON Lines files"
    );
    let Harness {
        cache,
        index,
        embedder,
        partition,
        _dir,
    } = Harness::new(config, dim)?;
    {
        let mut map = embedder.vectors.write();
        for (j, q) in queries.iter().enumerate() {
            map.insert(q.text.clone(), query_vecs[j * dim..(j + 1) * dim].to_vec());
        }
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    for (i, e) in entries.iter().enumerate() {
        cache
            .insert(NewEntry {
                partition,
                prompt: deja_core::normalize_prompt(&e.prompt),
                model: "bench".into(),
                answer: Answer::Body(e.response.as_bytes().to_vec()),
                usage: Usage::default(),
                semantic: SemanticMode::Allowed,
                vector: Some(entry_vecs[i * dim..(i + 1) * dim].to_vec()),
                category: None,
            })
            .await?;
    }
    cache.flush_counters().await?;
    // Counted until every vector is in its graph.
    index.settle();
    let insert_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let mut by_kind: HashMap<String, (Vec<f64>, usize, usize)> = HashMap::new();
    let cpu_started = Instant::now();
    for q in &queries {
        let prompt = deja_core::normalize_prompt(&q.text);
        let t = Instant::now();
        let found = cache
            .lookup(&LookupRequest {
                category: None,
                partition,
                prompt: &prompt,
                semantic: SemanticMode::Allowed,
                min_similarity: None,
                max_age_secs: None,
            })
            .await;
        let us = t.elapsed().as_secs_f64() * 1e6;
        let served = match &found {
            Lookup::ExactHit(e) | Lookup::SemanticHit { entry: e, .. } => Some(e),
            _ => None,
        };
        let slot = by_kind.entry(q.kind.clone()).or_default();
        slot.0.push(us);
        if let Some(e) = served {
            let expected = usize::try_from(q.expected_id)
                .ok()
                .and_then(|i| entries.get(i))
                .map(|w| w.response.as_bytes());
            if expected
                == Some(match &e.answer {
                    Answer::Body(b) => b.as_slice(),
                    Answer::Chunks(_) => &[],
                })
            {
                slot.1 += 1;
            } else {
                slot.2 += 1;
            }
        }
    }
    let lookups_per_sec = queries.len() as f64 / cpu_started.elapsed().as_secs_f64();
    let mut kinds = serde_json::Map::new();
    for (kind, (mut lat, correct, wrong)) in by_kind {
        lat.sort_by(f64::total_cmp);
        kinds.insert(
            kind,
            serde_json::json!({
                "queries": lat.len(), "correct_hits": correct, "wrong_hits": wrong,
                "p50_us": pct(&lat, 0.5), "p95_us": pct(&lat, 0.95), "p99_us": pct(&lat, 0.99),
            }),
        );
    }
    let n = entries.len().max(1) as f64;
    let report = serde_json::json!({
        "workload": dir.display().to_string(),
        "entries": entries.len(),
        "queries": queries.len(),
        "insert_per_sec": entries.len() as f64 / insert_secs,
        "lookups_per_sec": lookups_per_sec,
        "kinds": kinds,
        "index_bytes_per_entry": index.memory_bytes() as f64 / n,
        "rss_bytes_per_entry": rss_after.saturating_sub(rss_before) as f64 / n,
    });
    // JSON, to sit beside the peers' JSON results.
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `deja bench --transfer`: export and import throughput. Writes `entries` synthetic
/// entries (one partition, `answer_bytes` answers, one tag, a vector each) as an export
/// file, then times the three paths users run: `deja import --data-dir` (a stopped store),
/// `deja export --data-dir`, and `deja import --server` (a running cache, which also
/// indexes every vector).
pub async fn run_transfer(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    use deja_server::admin::transfer::{export_lines, ExportLine, ImportTarget, Importer};
    use std::io::{Read, Write};

    let scratch = tempfile::tempdir().context("creating a scratch dir")?;
    let file = scratch.path().join("entries.jsonl");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut v: Vec<f32> = (0..args.dim).map(|_| rng.gen::<f32>() - 0.5).collect();
            unit(&mut v);
            v
        })
        .collect();
    let mut kb = KeyBuilder::new("bench/v1");
    kb.str("tenant", "bench");
    let partition = kb.finish_partition();
    let answer = vec![b'x'; args.answer_bytes];
    {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?,
        );
        for i in 0..args.entries {
            let prompt = format!("bench prompt {i}: how do I configure feature {}?", i % 977);
            let entry = deja_core::Entry {
                id: deja_core::EntryId(i as u64 + 1),
                partition,
                exact_key: deja_core::ExactKey::new(&partition, &prompt),
                prompt,
                model: "bench".into(),
                answer: Answer::Body(answer.clone()),
                usage: Usage {
                    prompt_tokens: 20,
                    completion_tokens: 200,
                },
                created_at_ms: 1_700_000_000_000 + i as u64,
                last_hit_ms: 0,
                hit_count: 0,
                category: "default".into(),
                namespace: String::new(),
                tags: vec![format!("product:{}", i % 1000)],
                embedder_id: "bench:precomputed".into(),
                vector: clustered(&mut rng, &centres, 0.08),
                request: None,
            };
            serde_json::to_writer(&mut out, &ExportLine::from_entry(&entry))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let file_bytes = std::fs::metadata(&file)?.len();

    // Reads the file in the CLI's chunk size into a fresh importer; checks that every entry
    // arrived and returns the seconds it took.
    async fn import_file(
        path: &std::path::Path,
        target: ImportTarget,
        entries: usize,
    ) -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut imp = Importer::new(target, HashMap::new());
        let mut input = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            imp.push(&buf[..n]).await?;
        }
        let n = imp.finish().await?;
        anyhow::ensure!(n as usize == entries, "imported {n} of {entries}");
        Ok(started.elapsed().as_secs_f64())
    }

    let mut store_config = config.clone();
    store_config.data_dir = scratch.path().join("stopped");
    let store: Arc<dyn deja_core::EntryStore> = Arc::new(deja_server::open_store(&store_config)?);
    let import_secs = import_file(&file, ImportTarget::Store(store.clone()), args.entries).await?;
    eprintln!(
        "import into a stopped store: {:.0} entries/s",
        args.entries as f64 / import_secs
    );

    let exported = scratch.path().join("export.jsonl");
    let started = Instant::now();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&exported)?);
        let mut rx = export_lines(store.clone());
        let mut lines = 0usize;
        while let Some(line) = rx.recv().await {
            out.write_all(line?.as_bytes())?;
            lines += 1;
        }
        out.flush()?;
        anyhow::ensure!(
            lines == args.entries,
            "exported {lines} of {}",
            args.entries
        );
    }
    let export_secs = started.elapsed().as_secs_f64();
    eprintln!("export: {:.0} entries/s", args.entries as f64 / export_secs);
    drop(store);

    let Harness { cache, _dir, .. } = Harness::new(config, args.dim)?;
    let live_secs =
        import_file(&exported, ImportTarget::Cache(cache.clone()), args.entries).await?;

    let per_sec = |secs: f64| args.entries as f64 / secs;
    let report = serde_json::json!({
        "entries": args.entries,
        "file_bytes_per_entry": file_bytes as f64 / args.entries.max(1) as f64,
        "import_stopped_store_per_sec": per_sec(import_secs),
        "export_per_sec": per_sec(export_secs),
        "import_running_cache_per_sec": per_sec(live_secs),
        "durability": format!("{:?}", store_config.store.durability),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Exact lookups on random entries from a background task until `stop`, with their
/// latencies (µs) and how many were hits.
fn spawn_lookups(
    cache: Cache,
    prompts: Arc<Vec<(deja_core::PartitionKey, String)>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<f64>, usize)> {
    tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut lat = Vec::new();
        let mut hits = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (partition, prompt) = &prompts[rng.gen_range(0..prompts.len())];
            let t = Instant::now();
            let found = cache
                .lookup(&LookupRequest {
                    category: None,
                    partition: *partition,
                    prompt,
                    semantic: SemanticMode::ExactOnly,
                    min_similarity: None,
                    max_age_secs: None,
                })
                .await;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            hits += usize::from(matches!(found, Lookup::ExactHit(_)));
            // Lets the runtime run the other task on this worker too.
            tokio::task::yield_now().await;
        }
        lat.sort_by(f64::total_cmp);
        (lat, hits)
    })
}

/// Runs `work` while exact lookups run beside it; returns its result, how long it took,
/// and the lookups' p50 / p99 (µs), count and hit share.
async fn beside_lookups<T>(
    cache: &Cache,
    prompts: &Arc<Vec<(deja_core::PartitionKey, String)>>,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, f64, serde_json::Value)> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lookups = spawn_lookups(cache.clone(), prompts.clone(), stop.clone());
    let started = Instant::now();
    let out = work.await;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (lat, hits) = lookups.await?;
    let stats = serde_json::json!({
        "lookups": lat.len(),
        "hit_share": hits as f64 / lat.len().max(1) as f64,
        "p50_us": pct(&lat, 0.5),
        "p99_us": pct(&lat, 0.99),
    });
    Ok((out?, secs, stats))
}

/// `deja bench --lifecycle`: invalidation and eviction at scale while hits are served.
/// Stores `entries` entries over 100 tenants (100 partitions), a hundredth of them tagged
/// `product:7`, then measures exact-hit latency (a) alone for two seconds, (b) while the
/// tag is invalidated, (c) while eviction brings the cache to 95% of its size.
pub async fn run_lifecycle(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    let Harness {
        cache, index, _dir, ..
    } = Harness::new(config, args.dim)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut v: Vec<f32> = (0..args.dim).map(|_| rng.gen::<f32>() - 0.5).collect();
            unit(&mut v);
            v
        })
        .collect();
    let partitions: Vec<deja_core::PartitionKey> = (0..100)
        .map(|t| {
            let mut kb = KeyBuilder::new("bench/v1");
            kb.str("tenant", &format!("tenant-{t}"));
            kb.finish_partition()
        })
        .collect();
    let answer = vec![b'x'; args.answer_bytes];
    let mut prompts = Vec::with_capacity(args.entries);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1024);
    for i in 0..args.entries {
        let partition = partitions[i % partitions.len()];
        let prompt = format!("bench prompt {i}");
        prompts.push((partition, prompt.clone()));
        batch.push(deja_core::Entry {
            id: deja_core::EntryId(i as u64 + 1),
            partition,
            exact_key: deja_core::ExactKey::new(&partition, &prompt),
            prompt,
            model: "bench".into(),
            answer: Answer::Body(answer.clone()),
            usage: Usage::default(),
            created_at_ms: 1_700_000_000_000 + i as u64,
            last_hit_ms: 0,
            hit_count: 0,
            category: "default".into(),
            namespace: String::new(),
            tags: vec![format!("product:{}", (i / partitions.len()) % 100)],
            embedder_id: "bench:precomputed".into(),
            vector: clustered(&mut rng, &centres, 0.08),
            request: None,
        });
        if batch.len() == 1024 || i + 1 == args.entries {
            cache.restore_many(&batch).await?;
            batch.clear();
            if !args.json && (i + 1) % 100_000 < 1024 {
                eprintln!("stored {}/{}", i + 1, args.entries);
            }
        }
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let prompts = Arc::new(prompts);

    let (_, _, alone) = beside_lookups(&cache, &prompts, async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    let (invalidated, invalidate_secs, during_invalidation) =
        beside_lookups(&cache, &prompts, async {
            Ok(cache
                .invalidate(&deja_core::Invalidate::Tag("product:7".into()))
                .await?)
        })
        .await?;
    let limits = deja_core::CapacityLimits {
        max_entries: Some(args.entries as u64 * 95 / 100),
        ..Default::default()
    };
    let (evicted, evict_secs, during_eviction) = beside_lookups(&cache, &prompts, async {
        Ok(cache.enforce_capacity(&limits).await?)
    })
    .await?;
    // What a restart costs: writing and loading the index snapshot (building it again from
    // the stored vectors costs what filling did).
    use deja_core::VectorIndex as _;
    let snapshot = _dir.path().join("index.snapshot");
    let started = Instant::now();
    index.save_snapshot(&snapshot, 1)?;
    let snapshot_save_secs = started.elapsed().as_secs_f64();
    let snapshot_bytes = std::fs::metadata(&snapshot)?.len();
    let started = Instant::now();
    let (loaded, _) = deja_store_local::HnswIndex::load_snapshot(
        &snapshot,
        index.embedder_id(),
        args.dim,
        index.params(),
    )?;
    let snapshot_load_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        loaded.len_sync() == index.len_sync(),
        "the loaded snapshot lost vectors"
    );
    let report = serde_json::json!({
        "entries": args.entries,
        "fill_per_sec": args.entries as f64 / fill_secs,
        "snapshot_save_secs": snapshot_save_secs,
        "snapshot_load_secs": snapshot_load_secs,
        "snapshot_bytes_per_entry": snapshot_bytes as f64 / args.entries.max(1) as f64,
        "exact_hits_alone": alone,
        "invalidated": invalidated,
        "invalidate_secs": invalidate_secs,
        "exact_hits_during_invalidation": during_invalidation,
        "evicted": evicted,
        "evict_secs": evict_secs,
        "exact_hits_during_eviction": during_eviction,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
