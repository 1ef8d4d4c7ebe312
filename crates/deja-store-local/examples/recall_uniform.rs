#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement: failing loudly is right
//! Recall@1 of the HNSW index on the peers' workload shape (`../shared/bench/peers`): `N`
//! uniformly random 384-d unit vectors in one partition (no clusters: the hardest case for
//! a graph), near-duplicate queries at cosine ≈ 0.95 to a random entry, and novel queries
//! (independent random vectors, which should find nothing). For the default graph, per
//! search: the share of near-duplicates whose entry comes first, and p50 / p99 search time
//! of each kind — at fixed widths, and with `search_near_sync` (floor 0.5, the least
//! similarity the engine ever serves), which searches wider only when it found nothing.
//!
//! Run: `cargo run --release -p deja-store-local --example recall_uniform -- [N] [QUERIES]
//! [M] [EF_CONSTRUCTION]` (defaults 100,000 and 2,000, and the index's own graph
//! parameters).

use std::time::Instant;

use deja_core::{EntryId, Neighbor, PartitionKey};
use deja_store_local::{HnswIndex, HnswParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "../benches/support/vectors.rs"]
mod vectors;
use vectors::{noisy, random};

const DIM: usize = 384;

/// `(p50, p99)` in µs.
fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |a| a.parse().unwrap());
    let q: usize = args.next().map_or(2_000, |a| a.parse().unwrap());
    let defaults = HnswParams::default();
    let params = HnswParams {
        m: args.next().map_or(defaults.m, |a| a.parse().unwrap()),
        ef_construction: args
            .next()
            .map_or(defaults.ef_construction, |a| a.parse().unwrap()),
        ..defaults
    };
    let mut rng = StdRng::seed_from_u64(42);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| random(&mut rng, DIM)).collect();
    // cos(v, normalize(v + s g)) ≈ 0.95 for unit v, g ~ N(0, I): s = sqrt((1/0.95² - 1) / DIM).
    let sigma = ((1.0 / (0.95f32 * 0.95) - 1.0) / DIM as f32).sqrt();
    let near: Vec<(u64, Vec<f32>)> = (0..q)
        .map(|_| {
            let i = rng.gen_range(0..n);
            (i as u64, noisy(&mut rng, &vectors[i], sigma))
        })
        .collect();
    let novel: Vec<Vec<f32>> = (0..q).map(|_| random(&mut rng, DIM)).collect();
    let partition = PartitionKey([7; 16]);
    let index = HnswIndex::new("bench", DIM, params);
    let started = Instant::now();
    for (i, v) in vectors.iter().enumerate() {
        index.insert_sync(partition, EntryId(i as u64), v).unwrap();
    }
    println!(
        "{n} vectors, m {}, ef_construction {}: built in {:.1} s",
        params.m,
        params.ef_construction,
        started.elapsed().as_secs_f64()
    );
    let run = |name: &str, search: &dyn Fn(&[f32]) -> Vec<Neighbor>| {
        let mut found = 0;
        let mut near_times = Vec::with_capacity(q);
        for (i, v) in &near {
            let t = Instant::now();
            let hits = search(v);
            near_times.push(t.elapsed().as_secs_f64() * 1e6);
            found += usize::from(hits.first().is_some_and(|h| h.id == EntryId(*i)));
        }
        let mut novel_times = Vec::with_capacity(q);
        for v in &novel {
            let t = Instant::now();
            search(v);
            novel_times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let (np50, np99) = percentiles(near_times);
        let (vp50, vp99) = percentiles(novel_times);
        println!(
            "{name:<28} recall@1 {:.4}  near p50 {np50:>6.0} us p99 {np99:>6.0} us  novel p50 {vp50:>6.0} us p99 {vp99:>6.0} us",
            found as f64 / q as f64
        );
    };
    for ef in [64, 128, 256, 512, 1024, 2048] {
        run(&format!("width {ef}"), &|v| {
            index.search_sync_at_width(partition, v, 1, ef).unwrap()
        });
    }
    run("search_near (floor 0.5)", &|v| {
        index.search_near_sync(partition, v, 1, 0.5).unwrap()
    });
}
