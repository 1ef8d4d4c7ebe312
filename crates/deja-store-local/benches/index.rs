#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right
//! Benchmarks for the embedded backend:
//!
//! - `hnsw_search_top1_100k_384d`: top-1 search latency in one partition of 100k 384-d
//!   clustered unit vectors (near-duplicate and fresh queries);
//! - recall@1 against exact f32 brute force for 1,000 queries of each kind, and the index's
//!   memory per entry, printed before the timings;
//! - `redb_get_exact` / `redb_get` / `redb_record_hit`: the store's hot-path calls on 10k
//!   entries.
//!
//! Run: `cargo bench -p deja-store-local --bench index`. `DEJA_BENCH_N` overrides the
//! number of indexed vectors.

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_core::{Answer, Entry, EntryId, EntryStore, ExactKey, PartitionKey, Usage};
use deja_store_local::{HnswIndex, HnswParams, RedbStore, StoreDurability};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "support/vectors.rs"]
mod vectors;
use vectors::{noisy, random};

const DIM: usize = 384;
const CLUSTERS: usize = 1000;
/// Per-component noise of cluster members around their centroid (cos to centroid ≈ 0.86).
const MEMBER_NOISE: f32 = 0.03;
/// Per-component noise of a near-duplicate query (cos to its source ≈ 0.98).
const DUP_NOISE: f32 = 0.01;

struct Data {
    centroids: Vec<Vec<f32>>,
    vectors: Vec<Vec<f32>>,
}

fn data(n: usize, rng: &mut StdRng) -> Data {
    let centroids: Vec<Vec<f32>> = (0..CLUSTERS).map(|_| random(rng, DIM)).collect();
    let vectors = (0..n)
        .map(|_| {
            let c = &centroids[rng.gen_range(0..CLUSTERS)];
            noisy(rng, c, MEMBER_NOISE)
        })
        .collect();
    Data { centroids, vectors }
}

fn brute_top1(vectors: &[Vec<f32>], q: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in vectors.iter().enumerate() {
        let s: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn index_bench(c: &mut Criterion) {
    let n: usize = std::env::var("DEJA_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut rng = StdRng::seed_from_u64(7);
    let d = data(n, &mut rng);
    let p = PartitionKey([1; 16]);
    let idx = HnswIndex::new("bench", DIM, HnswParams::default());
    let rss_before = rss_bytes();
    let t = Instant::now();
    for (i, v) in d.vectors.iter().enumerate() {
        idx.insert_sync(p, EntryId(i as u64), v).unwrap();
    }
    let build = t.elapsed();
    let rss_after = rss_bytes();
    println!(
        "built {n} x {DIM}-d in {:.1} s ({:.0} us/insert), kernels {}, params {:?}",
        build.as_secs_f64(),
        build.as_secs_f64() * 1e6 / n as f64,
        idx.kernel_name(),
        idx.params()
    );
    println!(
        "index memory: {:.0} bytes/entry by capacity accounting ({} bytes total)",
        idx.memory_bytes() as f64 / n as f64,
        idx.memory_bytes()
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "index memory: {:.0} bytes/entry by RSS growth during the build",
            b.saturating_sub(a) as f64 / n as f64
        );
    }

    let dup_queries: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let src = &d.vectors[rng.gen_range(0..n)];
            noisy(&mut rng, src, DUP_NOISE)
        })
        .collect();
    let fresh_queries: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let c = &d.centroids[rng.gen_range(0..CLUSTERS)];
            noisy(&mut rng, c, MEMBER_NOISE)
        })
        .collect();
    for (name, qs) in [("near-duplicate", &dup_queries), ("fresh", &fresh_queries)] {
        let mut hits = 0;
        let mut near_ties = 0;
        let mut lat: Vec<f64> = Vec::with_capacity(qs.len());
        for q in qs.iter() {
            let (want, want_sim) = brute_top1(&d.vectors, q);
            let t = Instant::now();
            let got = idx.search_sync(p, q, 1).unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if got[0].id.0 as usize == want {
                hits += 1;
            } else if (got[0].similarity - want_sim).abs() < 1e-3 {
                near_ties += 1;
            }
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "recall@1 {name}: {:.3} ({hits}/{}; {near_ties} misses within 1e-3 of the best similarity); latency p50 {:.0} us, p99 {:.0} us",
            hits as f64 / qs.len() as f64,
            qs.len(),
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
        );
    }

    let mut g = c.benchmark_group("hnsw");
    let mut i = 0;
    g.bench_function("search_top1_100k_384d_near_duplicate", |b| {
        b.iter(|| {
            i = (i + 1) % dup_queries.len();
            black_box(idx.search_sync(p, &dup_queries[i], 1).unwrap())
        })
    });
    g.bench_function("search_top1_100k_384d_fresh", |b| {
        b.iter(|| {
            i = (i + 1) % fresh_queries.len();
            black_box(idx.search_sync(p, &fresh_queries[i], 1).unwrap())
        })
    });
    g.bench_function("search_top4_100k_384d_fresh", |b| {
        b.iter(|| {
            i = (i + 1) % fresh_queries.len();
            black_box(idx.search_sync(p, &fresh_queries[i], 4).unwrap())
        })
    });
    g.finish();
}

fn store_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let n = 10_000;
    let p = PartitionKey([2; 16]);
    let mut keys = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let prompt = format!("question number {i}");
        let key = ExactKey::new(&p, &prompt);
        let e = Entry {
            id: EntryId::random(),
            partition: p,
            exact_key: key,
            prompt,
            model: "gpt-4o-mini".into(),
            answer: Answer::Body(vec![b'a'; 1024]),
            usage: Usage {
                prompt_tokens: 20,
                completion_tokens: 200,
            },
            created_at_ms: 1,
            last_hit_ms: 1,
            hit_count: 0,
            category: "default".into(),
            namespace: String::new(),
            tags: Vec::new(),
            embedder_id: "bench".into(),
            vector: random(&mut rng, DIM),
            request: None,
        };
        rt.block_on(store.put(&e)).unwrap();
        keys.push(key);
        ids.push(e.id);
    }
    rt.block_on(store.flush()).unwrap();
    println!(
        "store: {n} entries with 1 KiB answers and 384-d vectors, file {} bytes",
        store.approx_bytes()
    );
    let mut g = c.benchmark_group("redb");
    let mut i = 0;
    g.bench_function("get_exact_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(rt.block_on(store.get_exact(&keys[i])).unwrap())
        })
    });
    g.bench_function("get_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(rt.block_on(store.get(ids[i])).unwrap())
        })
    });
    g.bench_function("record_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            rt.block_on(store.record_hit(ids[i], 5)).unwrap()
        })
    });
    // One miss's answer stored with `durability = "fast"` (the server flushes every
    // second; here every 1,000 puts), replacing an entry of the 10k.
    let template = rt.block_on(store.get(ids[0])).unwrap().unwrap();
    let mut puts = 0u64;
    g.bench_function("put_fast_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            let mut e = template.clone();
            e.id = EntryId::random();
            e.exact_key = keys[i];
            rt.block_on(store.put(&e)).unwrap();
            puts += 1;
            if puts.is_multiple_of(1_000) {
                rt.block_on(store.flush()).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, index_bench, store_bench);
criterion_main!(benches);
