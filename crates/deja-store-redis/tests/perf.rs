#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Measurements of the Redis backend on a real local Redis (run by hand, in release):
//!
//! `DEJA_REDIS_PERF_ENTRIES=1000000 cargo test --release -p deja-store-redis --test perf -- --ignored --nocapture`
//!
//! Stores N entries (384-dimension vectors, 1,000 partitions, 500-byte answers), then
//! reports: store rate, Redis memory per entry, exact lookup latency (what an L1 miss
//! costs), a replica's bootstrap (scan of every vector into a fresh `HnswIndex`) and the
//! semantic lookup latency excluding embedding (index search plus the candidate's re-read
//! from Redis).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deja_core::{Answer, Entry, EntryStore, ExactKey, PartitionKey, Usage, VectorIndex};
use deja_store_local::{HnswIndex, HnswParams};
use deja_store_redis::{RedisStore, RedisStoreOptions};
use deja_testkit::conformance::test_vector;
use deja_testkit::redis_server::RedisServer;
use futures::StreamExt;

const DIM: usize = 384;
const PARTITIONS: u64 = 1_000;

fn partition(i: u64) -> PartitionKey {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&(i % PARTITIONS).to_le_bytes());
    PartitionKey(p)
}

fn entry(i: u64) -> Entry {
    let p = partition(i);
    let prompt = format!("How do I configure the {i}th widget of my account settings page?");
    let exact_key = ExactKey::new(&p, &prompt);
    serde_json::from_value(serde_json::json!({
        "id": i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        "partition": p,
        "exact_key": exact_key,
        "prompt": prompt,
        "model": "gpt-4o-mini",
        "answer": Answer::Body(vec![b'a'; 500]),
        "usage": Usage::default(),
        "created_at_ms": 1,
        "last_hit_ms": 1,
        "hit_count": 0,
        "category": "default",
        "namespace": "ns:3f9a1c0e5b7d2468",
        "tags": [format!("product:{}", i % 100)],
        "embedder_id": "local:all-MiniLM-L6-v2",
        "vector": test_vector(i, DIM),
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn used_memory(server: &RedisServer) -> u64 {
    let info = server.command("INFO memory").unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run by hand in release"]
async fn redis_backend_figures() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let n: u64 = std::env::var("DEJA_REDIS_PERF_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = Arc::new(
        RedisStore::connect(&server.url(), RedisStoreOptions::default())
            .await
            .unwrap(),
    );
    let before = used_memory(&server);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move { store.put(&entry(i)).await.unwrap() }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    let took = started.elapsed();
    eprintln!(
        "stored {n} entries in {took:.1?} ({:.0}/s)",
        n as f64 / took.as_secs_f64()
    );
    let per_entry = (used_memory(&server) - before) / n;
    eprintln!(
        "redis memory: {per_entry} bytes per entry ({} beyond the 500-byte answer)",
        per_entry - 500
    );

    // Exact lookups, one at a time (latency, not throughput).
    let mut lat = Vec::new();
    for k in 0..20_000u64 {
        let i = k.wrapping_mul(7919) % n;
        let key = entry(i).exact_key;
        let t = Instant::now();
        let got = store.get_exact(&key).await.unwrap();
        lat.push(t.elapsed());
        assert!(got.is_some());
    }
    lat.sort();
    eprintln!(
        "get_exact (L1 miss -> Redis hit): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // A replica's bootstrap: every vector into a fresh index.
    let index = HnswIndex::new("local:all-MiniLM-L6-v2", DIM, HnswParams::default());
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(n as usize);
    store
        .scan_vectors(&mut |id, p, _, v| vectors.push((id, p, v.to_vec())))
        .await
        .unwrap();
    let scanned = started.elapsed();
    for (id, p, v) in &vectors {
        index.insert(*p, *id, v).await.unwrap();
    }
    eprintln!(
        "bootstrap of {} vectors: {scanned:.1?} reading Redis, {:.1?} in all",
        vectors.len(),
        started.elapsed()
    );
    assert_eq!(index.len().await.unwrap(), n);

    // Semantic lookup without embedding: search the partition, re-read the candidate.
    let mut lat = Vec::new();
    for k in 0..5_000u64 {
        let i = k.wrapping_mul(104_729) % n;
        let e = entry(i);
        let t = Instant::now();
        let found = index.search(e.partition, &e.vector, 4).await.unwrap();
        let top = store.get(found[0].id).await.unwrap();
        lat.push(t.elapsed());
        assert!(top.is_some());
    }
    lat.sort();
    eprintln!(
        "semantic lookup (search + re-read, no embedding): p50 {:?}, p99 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// Mode b against mode a at the same size: N vectors (default 100,000, 1,000 partitions)
/// in Redis Stack's query engine (`RedisSearchIndex`) and in a local `HnswIndex`; insert
/// rate and search latency (top-4 in the query's partition), one search at a time.
///
/// `cargo test --release -p deja-store-redis --test perf redis_search -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run by hand in release"]
async fn redis_search_against_local_index() {
    let Some(server) = RedisServer::stack_or_skip() else {
        return;
    };
    let n: u64 = std::env::var("DEJA_REDIS_PERF_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let shared = Arc::new(
        deja_store_redis::RedisSearchIndex::connect(
            &server.url(),
            &RedisStoreOptions::default(),
            "local:all-MiniLM-L6-v2",
            DIM,
        )
        .await
        .unwrap(),
    );
    let local = Arc::new(HnswIndex::new(
        "local:all-MiniLM-L6-v2",
        DIM,
        HnswParams::default(),
    ));
    let before = used_memory(&server);
    for (name, index) in [
        ("redis-search", shared.clone() as Arc<dyn VectorIndex>),
        ("local hnsw", local.clone() as Arc<dyn VectorIndex>),
    ] {
        let started = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let index = index.clone();
                async move {
                    index
                        .insert(
                            partition(i),
                            deja_core::EntryId(i + 1),
                            &test_vector(i, DIM),
                        )
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(32)
            .for_each(|_| async {})
            .await;
        let took = started.elapsed();
        assert_eq!(index.len().await.unwrap(), n);
        let mut lat = Vec::new();
        let mut top1 = 0;
        for k in 0..5_000u64 {
            let i = k.wrapping_mul(104_729) % n;
            let t = Instant::now();
            let found = index
                .search(partition(i), &test_vector(i, DIM), 4)
                .await
                .unwrap();
            lat.push(t.elapsed());
            top1 += usize::from(found.first().map(|f| f.id.0) == Some(i + 1));
        }
        lat.sort();
        eprintln!(
            "{name}: {n} inserts in {took:.1?} ({:.0}/s); search p50 {:?}, p99 {:?}; stored vector is its own top-1 in {top1}/5000",
            n as f64 / took.as_secs_f64(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    eprintln!(
        "redis-search memory: {} bytes per vector in Redis",
        (used_memory(&server) - before) / n
    );
}
