#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A replica's index follows what other replicas store and remove, through the events
//! stream, on a real standalone Redis and a real Redis Cluster.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deja_core::{Answer, Entry, EntryStore, ExactKey, PartitionKey, Usage, VectorIndex};
use deja_store_local::{HnswIndex, HnswParams};
use deja_store_redis::{RedisStore, RedisStoreOptions};
use deja_testkit::conformance::test_vector;
use deja_testkit::redis_server::{RedisCluster, RedisServer};

const DIM: usize = 32;

fn entry(i: u64, partition: PartitionKey) -> Entry {
    let prompt = format!("prompt {i}");
    let exact_key = ExactKey::new(&partition, &prompt);
    serde_json::from_value(serde_json::json!({
        "id": i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        "partition": partition,
        "exact_key": exact_key,
        "prompt": prompt,
        "model": "m",
        "answer": Answer::Body(b"a".to_vec()),
        "usage": Usage::default(),
        "created_at_ms": 1,
        "last_hit_ms": 1,
        "hit_count": 0,
        "category": "default",
        "namespace": "",
        "tags": ["t"],
        "embedder_id": "test:emb",
        "vector": test_vector(i, DIM),
    }))
    .unwrap()
}

/// Polls `cond` (every millisecond, up to 5 s) and returns how long it took to hold.
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if cond().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what} did not happen within 5 s");
}

async fn follows(url: &str) {
    let opts = RedisStoreOptions {
        prefix: format!("follow-{:08x}", rand::random::<u32>()),
        ..RedisStoreOptions::default()
    };
    let a = RedisStore::connect(url, opts.clone()).await.unwrap();
    let b = Arc::new(RedisStore::connect(url, opts).await.unwrap());
    let p = PartitionKey([7; 16]);
    // Stored before B starts: B's bootstrap (a scan) finds it; events from the tail on.
    a.put(&entry(0, p)).await.unwrap();
    let index: Arc<dyn VectorIndex> =
        Arc::new(HnswIndex::new("test:emb", DIM, HnswParams::default()));
    let tail = b.events_tail().await.unwrap();
    let mut loaded = Vec::new();
    b.scan_vectors(&mut |id, p, _, v| loaded.push((id, p, v.to_vec())))
        .await
        .unwrap();
    for (id, p, v) in &loaded {
        index.insert(*p, *id, v).await.unwrap();
    }
    assert_eq!(index.len().await.unwrap(), 1);
    let follower = b.follow_events(vec![Arc::downgrade(&index) as Weak<dyn VectorIndex>], tail);

    let e = entry(1, p);
    a.put(&e).await.unwrap();
    let took = until("a vector stored by A reaching B's index", async || {
        index.len().await.unwrap() == 2
    })
    .await;
    eprintln!("put converged in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let found = index.search(p, &e.vector, 1).await.unwrap();
    assert_eq!(found[0].id, e.id);

    // Removals (invalidation) and replacements by exact key reach B too.
    let tagged = a.ids_with_tag("t").await.unwrap();
    assert_eq!(a.remove_many(&tagged).await.unwrap().len(), 2);
    let took = until("A's removals reaching B's index", async || {
        index.len().await.unwrap() == 0
    })
    .await;
    eprintln!("removal converged in {took:?}");
    let old = entry(2, p);
    let mut new = entry(3, p);
    new.exact_key = old.exact_key;
    a.put(&old).await.unwrap();
    a.put(&new).await.unwrap();
    until("a replacement reaching B's index", async || {
        let hits = index.search(p, &new.vector, 5).await.unwrap();
        hits.len() == 1 && hits[0].id == new.id
    })
    .await;

    // Its position reaches the newest event once everything is applied.
    let newest = a.events_tail().await.unwrap();
    until(
        "the follower's position reaching the newest event",
        async || follower.position.get() == newest,
    )
    .await;

    // The follower ends with the index it serves.
    drop(index);
    tokio::time::timeout(Duration::from_secs(3), follower.task)
        .await
        .expect("the follower stops once its index is dropped")
        .unwrap();
}

#[tokio::test]
async fn index_follows_events_standalone() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    follows(&server.url()).await;
}

#[tokio::test]
async fn index_follows_events_cluster() {
    let Some(cluster) = RedisCluster::start_or_skip() else {
        return;
    };
    follows(&cluster.url()).await;
}

/// B's L1 serves exact hits without a round trip, and loses an entry as soon as another
/// replica removes or replaces it (through the events B follows).
async fn l1_follows(url: &str) {
    let prefix = format!("l1-{:08x}", rand::random::<u32>());
    let a = RedisStore::connect(
        url,
        RedisStoreOptions {
            prefix: prefix.clone(),
            ..RedisStoreOptions::default()
        },
    )
    .await
    .unwrap();
    let b = Arc::new(
        RedisStore::connect(
            url,
            RedisStoreOptions {
                prefix,
                l1_max_entries: 100,
                ..RedisStoreOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    let index: Arc<dyn VectorIndex> =
        Arc::new(HnswIndex::new("test:emb", DIM, HnswParams::default()));
    let follower = b.follow_events(
        vec![Arc::downgrade(&index) as Weak<dyn VectorIndex>],
        b.events_tail().await.unwrap(),
    );
    let p = PartitionKey([8; 16]);
    let first = entry(10, p);
    a.put(&first).await.unwrap();
    assert_eq!(
        b.get_exact(&first.exact_key).await.unwrap().unwrap().id,
        first.id
    );
    // Hits recorded here show on L1 hits too.
    b.record_hit(first.id, 5_000).await.unwrap();
    b.flush().await.unwrap();
    let e = b.get_exact(&first.exact_key).await.unwrap().unwrap();
    assert_eq!((e.hit_count, e.last_hit_ms), (1, 5_000));

    // Replaced on A under the same exact key: B serves the new entry.
    let mut second = entry(11, p);
    second.exact_key = first.exact_key;
    a.put(&second).await.unwrap();
    let took = until("A's replacement reaching B's L1", async || {
        b.get_exact(&first.exact_key).await.unwrap().map(|e| e.id) == Some(second.id)
    })
    .await;
    eprintln!("L1 replacement converged in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Removed on A: gone from B's L1.
    a.remove(second.id).await.unwrap();
    let took = until("A's removal reaching B's L1", async || {
        b.get_exact(&first.exact_key).await.unwrap().is_none()
    })
    .await;
    eprintln!("L1 removal converged in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(index);
    tokio::time::timeout(Duration::from_secs(3), follower.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn l1_follows_other_replicas_standalone() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    l1_follows(&server.url()).await;
}

#[tokio::test]
async fn l1_follows_other_replicas_cluster() {
    let Some(cluster) = RedisCluster::start_or_skip() else {
        return;
    };
    l1_follows(&cluster.url()).await;
}

#[tokio::test]
async fn redis_store_with_l1_conforms() {
    let Some(server) = RedisServer::standalone_or_skip() else {
        return;
    };
    let store = RedisStore::connect(
        &server.url(),
        RedisStoreOptions {
            prefix: format!("suite-l1-{:08x}", rand::random::<u32>()),
            l1_max_entries: 1_000,
            ..RedisStoreOptions::default()
        },
    )
    .await
    .unwrap();
    deja_testkit::conformance::entry_store_suite(Arc::new(store)).await;
}
