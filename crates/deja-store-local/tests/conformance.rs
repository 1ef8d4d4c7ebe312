//! The shared conformance suites run against `RedbStore` and `HnswIndex`, plus what only
//! this backend promises: a reopened store keeps everything, and an index rebuilt from it
//! finds each stored vector as its own best match.

use std::sync::Arc;

use deja_core::{
    Answer, Counters, Entry, EntryId, EntryStore, ExactKey, PartitionKey, Usage, VectorIndex,
};
use deja_store_local::{HnswIndex, HnswParams, RedbStore, StoreDurability};
use deja_testkit::conformance::{
    entry_store_suite, test_vector, vector_index_suite, INDEX_DIM, INDEX_EMBEDDER,
};

#[tokio::test]
async fn redb_store_conforms_strict() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Strict).unwrap();
    entry_store_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn redb_store_conforms_fast() {
    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory is created.
    let path = dir.path().join("nested").join("deja.redb");
    let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
    entry_store_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn hnsw_index_conforms_flat() {
    vector_index_suite(|| {
        Arc::new(HnswIndex::new(
            INDEX_EMBEDDER,
            INDEX_DIM,
            HnswParams::default(),
        )) as Arc<dyn VectorIndex>
    })
    .await;
}

#[tokio::test]
async fn hnsw_index_conforms_graph() {
    // flat_below 0: every partition is searched through its graph from the first vector.
    let params = HnswParams {
        flat_below: 0,
        ..HnswParams::default()
    };
    vector_index_suite(|| {
        Arc::new(HnswIndex::new(INDEX_EMBEDDER, INDEX_DIM, params)) as Arc<dyn VectorIndex>
    })
    .await;
}

fn entry(i: u64, partition: PartitionKey, dim: usize) -> Entry {
    let prompt = format!("prompt {i}");
    Entry {
        id: EntryId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        partition,
        exact_key: ExactKey::new(&partition, &prompt),
        prompt,
        model: "m".into(),
        answer: if i & 1 == 0 {
            Answer::Body(format!("answer {i}").into_bytes())
        } else {
            Answer::Chunks(vec![b"a".to_vec(), format!("{i}").into_bytes()])
        },
        usage: Usage {
            prompt_tokens: i,
            completion_tokens: 2 * i,
        },
        created_at_ms: 10 + i,
        last_hit_ms: 10 + i,
        hit_count: 0,
        category: "default".into(),
        embedder_id: "test:emb".into(),
        vector: test_vector(i, dim),
    }
}

#[tokio::test]
async fn reopened_store_keeps_everything() {
    for durability in [StoreDurability::Strict, StoreDurability::Fast] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deja.redb");
        let p = PartitionKey([5; 16]);
        let entries: Vec<Entry> = (0..200).map(|i| entry(i, p, 64)).collect();
        let counters = Counters {
            exact_hits: 3,
            misses: 4,
            ..Counters::default()
        };
        {
            let store = RedbStore::open(&path, durability).unwrap();
            for e in &entries {
                store.put(e).await.unwrap();
            }
            store.remove(entries[0].id).await.unwrap();
            store.add_counters(&counters).await.unwrap();
            store.record_hit(entries[1].id, 99_000).await.unwrap();
            store.flush().await.unwrap();
            // Buffered after the last flush: kept by the flush on drop.
            store.record_hit(entries[2].id, 98_000).await.unwrap();
        }
        let store = RedbStore::open(&path, durability).unwrap();
        assert_eq!(store.len().await.unwrap(), 199, "{durability:?}");
        assert_eq!(store.counters().await.unwrap(), counters);
        assert!(store.get(entries[0].id).await.unwrap().is_none());
        for e in &entries[1..] {
            let got = store.get_exact(&e.exact_key).await.unwrap().unwrap();
            assert_eq!(got.answer, e.answer);
            assert_eq!(got.prompt, e.prompt);
            let cos: f32 = got.vector.iter().zip(&e.vector).map(|(a, b)| a * b).sum();
            assert!(cos > 0.999);
        }
        let hit = store.get(entries[1].id).await.unwrap().unwrap();
        assert_eq!((hit.hit_count, hit.last_hit_ms), (1, 99_000));
        let hit = store.get(entries[2].id).await.unwrap().unwrap();
        assert_eq!((hit.hit_count, hit.last_hit_ms), (1, 98_000));
        let mut n = 0;
        store.for_each_entry(|_| n += 1).unwrap();
        assert_eq!(n, 199);
        assert!(store.approx_bytes() > 0);
    }
}

#[tokio::test]
async fn rebuilt_index_finds_every_stored_vector_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast).unwrap();
    let dim = 48;
    let parts = [PartitionKey([1; 16]), PartitionKey([2; 16])];
    // 1,500 entries in one partition (past the default flat threshold, so a graph) and
    // 300 in another (searched flat).
    let mut entries = Vec::new();
    for i in 0..1800u64 {
        let p = if i < 1500 { parts[0] } else { parts[1] };
        entries.push(entry(i, p, dim));
    }
    for e in &entries {
        store.put(e).await.unwrap();
    }
    let index = HnswIndex::new("test:emb", dim, HnswParams::default());
    let mut stored = Vec::new();
    store
        .scan_vectors(&mut |id, p, emb, v| {
            assert_eq!(emb, "test:emb");
            stored.push((id, p, v.to_vec()));
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), entries.len());
    for (id, p, v) in &stored {
        index.insert(*p, *id, v).await.unwrap();
    }
    assert_eq!(index.len().await.unwrap(), 1800);
    for (id, p, v) in &stored {
        let got = index.search(*p, v, 1).await.unwrap();
        assert_eq!(got[0].id, *id, "stored vector is not its own top-1");
        assert!(
            got[0].similarity > 0.999,
            "similarity {}",
            got[0].similarity
        );
    }
}
