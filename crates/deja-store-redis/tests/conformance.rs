//! The shared conformance suites run against `RedisStore` on a real standalone Redis and
//! a real 3-master Redis Cluster (started by deja-testkit on 127.0.0.1, stopped by PID),
//! plus what only a shared store promises: two handles on one Redis see each other's
//! writes, and a cluster spreads the keys over its shards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use deja_core::{Answer, Entry, EntryStore, ExactKey, PartitionKey, Usage, VectorIndex};
use deja_store_local::{HnswIndex, HnswParams};
use deja_store_redis::{RedisStore, RedisStoreOptions};
use deja_testkit::conformance::{
    entry_store_suite, maintenance_suite, test_vector, INDEX_DIM, INDEX_EMBEDDER,
};
use deja_testkit::redis_server::{RedisCluster, RedisServer};

fn opts(prefix: &str) -> RedisStoreOptions {
    RedisStoreOptions {
        prefix: format!("{prefix}-{:08x}", rand::random::<u32>()),
        ..RedisStoreOptions::default()
    }
}

async fn connect(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(url, opts(prefix)).await.unwrap()
}

#[tokio::test]
async fn redis_store_conforms_standalone() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    entry_store_suite(Arc::new(connect(&server.url(), "suite").await)).await;
}

#[tokio::test]
async fn redis_store_conforms_cluster() {
    let Some(cluster) = RedisCluster::start_or_skip() else {
        return;
    };
    entry_store_suite(Arc::new(connect(&cluster.url(), "suite").await)).await;
}

#[tokio::test]
async fn expiry_and_eviction_keep_redis_and_hnsw_in_step() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let url = server.url();
    // maintenance_suite builds each store synchronously; connect them all up front.
    let mut stores = Vec::new();
    for _ in 0..16 {
        stores.push(Arc::new(connect(&url, "maint").await));
    }
    let stores = parking_lot::Mutex::new(stores);
    maintenance_suite(|| {
        let store = stores.lock().pop().expect("enough stores for the suite");
        let index = HnswIndex::new(INDEX_EMBEDDER, INDEX_DIM, HnswParams::default());
        (
            store as Arc<dyn EntryStore>,
            Arc::new(index) as Arc<dyn VectorIndex>,
        )
    })
    .await;
}

/// A test entry, built through serde so fields the engine adds later (with defaults) do
/// not break this file.
fn entry(i: u64, partition: PartitionKey, dim: usize) -> Entry {
    let prompt = format!("prompt {i}");
    let exact_key = ExactKey::new(&partition, &prompt);
    serde_json::from_value(serde_json::json!({
        "id": i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        "partition": partition,
        "exact_key": exact_key,
        "prompt": prompt,
        "model": "m",
        "answer": Answer::Body(format!("answer {i}").into_bytes()),
        "usage": Usage::default(),
        "created_at_ms": 10 + i,
        "last_hit_ms": 10 + i,
        "hit_count": 0,
        "category": "default",
        "namespace": "ns:t",
        "tags": [format!("t{}", i % 7)],
        "embedder_id": "test:emb",
        "vector": test_vector(i, dim),
    }))
    .unwrap()
}

#[tokio::test]
async fn two_handles_share_entries_hits_and_removals() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let o = opts("shared");
    let a = RedisStore::connect(&server.url(), o.clone()).await.unwrap();
    let b = RedisStore::connect(&server.url(), o).await.unwrap();
    let p = PartitionKey([3; 16]);
    let entries: Vec<Entry> = (0..50).map(|i| entry(i, p, 64)).collect();
    for e in &entries {
        a.put(e).await.unwrap();
    }
    assert_eq!(b.len().await.unwrap(), 50);
    let got = b.get_exact(&entries[7].exact_key).await.unwrap().unwrap();
    assert_eq!(got.answer, entries[7].answer);
    a.record_hit(entries[7].id, 99_000).await.unwrap();
    a.flush().await.unwrap();
    let got = b.get(entries[7].id).await.unwrap().unwrap();
    assert_eq!((got.hit_count, got.last_hit_ms), (1, 99_000));
    let t0 = b.ids_with_tag("t0").await.unwrap();
    assert_eq!(
        t0.len(),
        entries.iter().filter(|e| e.tags[0] == "t0").count()
    );
    let gone = b.remove_many(&t0).await.unwrap();
    assert_eq!(gone.len(), t0.len());
    for id in &t0 {
        assert!(a.get(*id).await.unwrap().is_none());
    }
    let mut seen = 0;
    a.scan_vectors(&mut |_, _, _, _| seen += 1).await.unwrap();
    assert_eq!(seen, 50 - t0.len());
}

#[tokio::test]
async fn cluster_spreads_entries_over_every_shard() {
    let Some(cluster) = RedisCluster::start_or_skip() else {
        return;
    };
    let store = connect(&cluster.url(), "spread").await;
    let p = PartitionKey([4; 16]);
    for i in 0..300 {
        store.put(&entry(i, p, 32)).await.unwrap();
    }
    assert_eq!(store.len().await.unwrap(), 300);
    for n in &cluster.nodes {
        let reply = n.command("DBSIZE").unwrap();
        let keys: u64 = reply.trim().trim_start_matches(':').parse().unwrap();
        assert!(keys > 100, "node {} holds only {keys} keys", n.port());
    }
}

/// Redis memory per entry beyond its answer text stays under the 1.5 KB (RedisVL's
/// SemanticCache used 7.7 KB): 384-dimension vectors, a realistic prompt, tenant
/// namespace, one tag, and hits flushed for half of the entries.
#[tokio::test]
async fn redis_memory_per_entry_beyond_the_answer_is_under_1_5_kb() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let used = || -> u64 {
        let info = server.command("INFO memory").unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let store = connect(&server.url(), "mem").await;
    let n = 2_000u64;
    let answer_bytes = 600;
    let before = used();
    for i in 0..n {
        let p = PartitionKey([(i % 50) as u8; 16]);
        let mut e = entry(i, p, 384);
        e.prompt = format!("How do I configure the {i}th widget of my account settings page?");
        e.exact_key = ExactKey::new(&p, &e.prompt);
        e.model = "gpt-4o-mini-2024-07-18".into();
        e.namespace = "ns:3f9a1c0e5b7d2468".into();
        e.embedder_id = "local:all-MiniLM-L6-v2:0123456789abcdef".into();
        e.tags = vec![format!("product:{}", i % 100)];
        e.answer = Answer::Body(vec![b'a'; answer_bytes]);
        store.put(&e).await.unwrap();
        if i % 2 == 0 {
            store.record_hit(e.id, 1_000 + i).await.unwrap();
        }
    }
    store.flush().await.unwrap();
    let after = used();
    let per_entry = after.saturating_sub(before) / n;
    let beyond = per_entry.saturating_sub(answer_bytes as u64);
    eprintln!(
        "redis memory: {per_entry} bytes per entry, {beyond} beyond the {answer_bytes}-byte answer"
    );
    assert!(beyond <= 1536, "{beyond} bytes per entry beyond the answer");
}

/// A shard killed (SIGKILL) and restarted loses nothing it persisted: every entry, exact
/// key and tag is found again through a connection made before the crash.
#[tokio::test]
async fn cluster_shard_restart_loses_nothing_persisted() {
    let Some(mut cluster) = RedisCluster::start_persistent_or_skip() else {
        return;
    };
    let store = connect(&cluster.url(), "restart").await;
    let p = PartitionKey([6; 16]);
    let entries: Vec<Entry> = (0..300).map(|i| entry(i, p, 32)).collect();
    for e in &entries {
        store.put(e).await.unwrap();
    }
    let shard = &mut cluster.nodes[1];
    let keys_before = shard.command("DBSIZE").unwrap();
    shard.kill();
    shard.restart().unwrap();
    assert_eq!(
        shard.command("DBSIZE").unwrap(),
        keys_before,
        "the shard reloaded its data"
    );
    cluster.wait_ok().unwrap();
    // The client notices the restart through its own retries; give it a few attempts.
    let mut len = None;
    for _ in 0..100 {
        if let Ok(n) = store.len().await {
            len = Some(n);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(len, Some(300));
    for e in &entries {
        let got = store.get_exact(&e.exact_key).await.unwrap().unwrap();
        assert_eq!(got.answer, e.answer);
    }
    let t0 = store.ids_with_tag("t0").await.unwrap();
    assert_eq!(
        t0.len(),
        entries.iter().filter(|e| e.tags[0] == "t0").count()
    );
}

/// `entry_ttl_secs` becomes a Redis expiry on the record, its exact key and (once hit)
/// its hits; without it nothing expires.
#[tokio::test]
async fn entry_ttl_is_a_redis_expiry() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let pttl = |key: &str| -> i64 {
        let reply = server.command(&format!("PTTL {key}")).unwrap();
        reply.trim().trim_start_matches(':').parse().unwrap()
    };
    let p = PartitionKey([9; 16]);
    for ttl in [None, Some(3_600u64)] {
        let o = RedisStoreOptions {
            entry_ttl_secs: ttl,
            ..opts("ttl")
        };
        let prefix = o.prefix.clone();
        let store = RedisStore::connect(&server.url(), o).await.unwrap();
        let e = entry(1, p, 8);
        store.put(&e).await.unwrap();
        store.record_hit(e.id, 5).await.unwrap();
        store.flush().await.unwrap();
        let hex: String = e.exact_key.0.iter().map(|b| format!("{b:02x}")).collect();
        for key in [
            format!("{prefix}:e:{{{:016x}}}", e.id.0),
            format!("{prefix}:h:{{{:016x}}}", e.id.0),
            format!("{prefix}:x:{{{hex}}}"),
        ] {
            let left = pttl(&key);
            match ttl {
                None => assert_eq!(left, -1, "{key} expires without a TTL"),
                Some(secs) => assert!(
                    left > 0 && left <= secs as i64 * 1000,
                    "{key}: PTTL {left} with entry_ttl_secs {secs}"
                ),
            }
        }
    }
}
