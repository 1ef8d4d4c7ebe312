//! The shared conformance suites run against `RedbStore` and `HnswIndex`, plus what only
//! this backend promises: a reopened store keeps everything, and an index rebuilt from it
//! finds each stored vector as its own best match.

use std::sync::Arc;

use deja_core::{
    Answer, Counters, Entry, EntryId, EntryStore, ExactKey, PartitionKey, Usage, VectorIndex,
};
use deja_store_local::{HnswIndex, HnswParams, RedbStore, StoreDurability};
use deja_testkit::conformance::{
    entry_store_suite, maintenance_suite, test_vector, vector_index_suite, INDEX_DIM,
    INDEX_EMBEDDER,
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
async fn redb_store_conforms_without_hot_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast)
        .unwrap()
        .with_hot_entries(0);
    entry_store_suite(Arc::new(store)).await;
}

/// Readers keep filling the hot entries while a writer replaces, moves and removes the
/// entry under one exact key: once a write has returned, every read answers what it wrote,
/// never a copy read before it.
#[test]
fn hot_entries_never_outlive_a_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast)
            .unwrap()
            .with_hot_entries(1 << 20),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let p = PartitionKey([4; 16]);
    let base = entry(1, p, 8);
    let key = base.exact_key;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rt.block_on(store.get_exact(&key)).unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..2_000u64 {
        let mut e = base.clone();
        match round % 4 {
            // Replaced by another entry under the same key.
            0 | 1 => {
                e.id = EntryId(1_000 + round);
                e.answer = Answer::Body(format!("answer of round {round}").into_bytes());
                rt.block_on(store.put(&e)).unwrap();
                let got = rt.block_on(store.get_exact(&key)).unwrap().unwrap();
                assert_eq!((got.id, &got.answer), (e.id, &e.answer), "round {round}");
                assert_eq!(
                    rt.block_on(store.get(e.id)).unwrap().unwrap().answer,
                    e.answer
                );
            }
            // The entry moved to another key: the old one leads nowhere.
            2 => {
                let current = rt.block_on(store.get_exact(&key)).unwrap().unwrap();
                let mut moved = current.clone();
                moved.prompt = format!("moved {round}");
                moved.exact_key = ExactKey::new(&p, &moved.prompt);
                rt.block_on(store.put(&moved)).unwrap();
                assert_eq!(
                    rt.block_on(store.get_exact(&key)).unwrap(),
                    None,
                    "round {round}"
                );
                let got = rt.block_on(store.get(current.id)).unwrap().unwrap();
                assert_eq!(got.exact_key, moved.exact_key);
            }
            // Removed.
            _ => {
                rt.block_on(store.put(&e)).unwrap();
                rt.block_on(store.remove(e.id)).unwrap();
                assert_eq!(
                    rt.block_on(store.get_exact(&key)).unwrap(),
                    None,
                    "round {round}"
                );
                assert_eq!(rt.block_on(store.get(e.id)).unwrap(), None);
            }
        }
        // Flushed hits are read back, whether the entry was hot or not.
        if round % 50 == 0 {
            let mut e = base.clone();
            e.id = EntryId(5_000 + round);
            rt.block_on(store.put(&e)).unwrap();
            rt.block_on(store.get_exact(&key)).unwrap();
            rt.block_on(store.record_hit(e.id, 77)).unwrap();
            rt.block_on(store.flush()).unwrap();
            let got = rt.block_on(store.get_exact(&key)).unwrap().unwrap();
            assert_eq!(got.hit_count, 1, "round {round}");
            rt.block_on(store.record_hit(e.id, 78)).unwrap();
            assert_eq!(
                rt.block_on(store.get_exact(&key))
                    .unwrap()
                    .unwrap()
                    .hit_count,
                2
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
}

/// Fast writes are read at once, kept by a clean close, and do not grow the file without
/// bound when nothing flushes (redb frees replaced pages only at a durable commit).
#[tokio::test]
async fn fast_writes_are_read_at_once_and_keep_the_file_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deja.redb");
    let p = PartitionKey([6; 16]);
    let n = 3_000;
    {
        let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
        for i in 0..n {
            let e = entry(i, p, 384);
            store.put(&e).await.unwrap();
            assert!(store.get_exact(&e.exact_key).await.unwrap().is_some());
        }
        let bytes = std::fs::metadata(&path).unwrap().len();
        // 3,000 entries of about 2.6 KB each; every write copying its pages with none
        // freed took 270 MB here.
        assert!(bytes < 64 << 20, "file of {bytes} bytes for {n} entries");
    }
    let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
    assert_eq!(store.len().await.unwrap(), n);
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

#[tokio::test]
async fn hnsw_index_conforms_graph_inserting_in_background() {
    let params = HnswParams {
        flat_below: 0,
        ..HnswParams::default()
    };
    vector_index_suite(|| {
        let index = Arc::new(HnswIndex::new(INDEX_EMBEDDER, INDEX_DIM, params));
        index.insert_in_background().unwrap();
        index as Arc<dyn VectorIndex>
    })
    .await;
}

#[tokio::test]
async fn expiry_and_eviction_keep_redb_and_hnsw_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    maintenance_suite(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("deja-{i}.redb"));
        let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
        let index = HnswIndex::new(INDEX_EMBEDDER, INDEX_DIM, HnswParams::default());
        (
            Arc::new(store) as Arc<dyn EntryStore>,
            Arc::new(index) as Arc<dyn VectorIndex>,
        )
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
        namespace: "ns:t".into(),
        tags: vec![format!("t{}", i % 7)],
        embedder_id: "test:emb".into(),
        vector: test_vector(i, dim),
        request: None,
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
            store
                .add_state_counts("calibration", &[("label:0:1:a:default".into(), 7)])
                .await
                .unwrap();
            store.record_hit(entries[1].id, 99_000).await.unwrap();
            store.flush().await.unwrap();
            // Buffered after the last flush: kept by the flush on drop.
            store.record_hit(entries[2].id, 98_000).await.unwrap();
        }
        let store = RedbStore::open(&path, durability).unwrap();
        assert_eq!(store.len().await.unwrap(), 199, "{durability:?}");
        assert_eq!(store.counters().await.unwrap(), counters);
        assert_eq!(
            store.add_state_counts("calibration", &[]).await.unwrap(),
            Some(vec![("label:0:1:a:default".to_string(), 7)])
        );
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
        // The tag index is persisted with the entries (entry 0, tag t0, was removed).
        let t0 = store.ids_with_tag("t0").await.unwrap();
        let want = entries[1..].iter().filter(|e| e.tags[0] == "t0").count();
        assert_eq!(t0.len(), want);
        assert!(!t0.contains(&entries[0].id));
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

/// An embedder that is never called: the perf test hands every vector in.
struct GivenVectors;

#[async_trait::async_trait]
impl deja_core::Embedder for GivenVectors {
    fn id(&self) -> &str {
        "test:emb"
    }
    fn dim(&self) -> usize {
        384
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, deja_core::EmbedError> {
        Err(deja_core::EmbedError::WorkerGone)
    }
}

/// How long invalidating 10,000 tagged entries out of 110,000 takes, through
/// `Cache::invalidate` (tag index, one store transaction, index removals).
/// `cargo test --release -p deja-store-local --test conformance -- --ignored --nocapture`
#[tokio::test]
#[ignore = "timing; run by hand"]
async fn invalidating_a_tag_is_fast() {
    use deja_core::{
        Cache, CacheOptions, EntryLabels, Invalidate, ManualClock, NewEntry, SemanticMode,
    };
    let total = 110_000u64;
    let every = 11; // 10,000 entries carry the campaign's tag
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast).unwrap());
    let index = Arc::new(HnswIndex::new("test:emb", 384, HnswParams::default()));
    let cache = Cache::new(
        store.clone(),
        index.clone(),
        Arc::new(GivenVectors),
        Arc::new(ManualClock::new(1_000)),
        CacheOptions::default(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    for i in 0..total {
        let partition = PartitionKey((i % 1000).to_le_bytes().repeat(2).try_into().unwrap());
        let new = NewEntry {
            partition,
            prompt: format!("question number {i}"),
            model: "gpt-4o-mini".into(),
            answer: Answer::Body(vec![b'a'; 1024]),
            usage: Usage::default(),
            semantic: SemanticMode::Allowed,
            vector: Some(test_vector(i, 384)),
            category: None,
        };
        let tags = if i % every == 0 {
            vec!["campaign:spring".to_string(), format!("batch:{}", i % 5)]
        } else {
            vec![format!("product:{i}"), format!("shard:{}", i % 50)]
        };
        let labels = EntryLabels {
            namespace: Some("ns:bench".into()),
            tags,
        };
        cache.insert_labelled(new, labels).await.unwrap();
    }
    eprintln!("inserted {total} entries in {:?}", started.elapsed());
    // Where the time goes, on another set of entries (about 1,800 untagged by the campaign).
    let t = std::time::Instant::now();
    let ids = store.ids_with_tag("shard:7").await.unwrap();
    eprintln!("ids_with_tag: {} ids in {:?}", ids.len(), t.elapsed());
    let t = std::time::Instant::now();
    let gone = store.remove_many(&ids).await.unwrap();
    eprintln!("remove_many: {} in {:?}", gone.len(), t.elapsed());
    let t = std::time::Instant::now();
    for (id, p, _) in &gone {
        index.remove(*p, *id).await.unwrap();
    }
    eprintln!("index removals: {:?}", t.elapsed());
    let total = total - gone.len() as u64;
    let started = std::time::Instant::now();
    let removed = cache
        .invalidate(&Invalidate::Tag("campaign:spring".into()))
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("invalidated {removed} tagged entries of {total} in {took:?}");
    assert_eq!(removed, 10_000);
    assert_eq!(store.len().await.unwrap(), total - removed);
    assert_eq!(index.len().await.unwrap(), total - removed);
    let started = std::time::Instant::now();
    let removed = cache
        .invalidate(&Invalidate::Namespace("ns:none".into()))
        .await
        .unwrap();
    eprintln!(
        "a namespace invalidation (metadata scan of {} entries, nothing removed) took {:?}",
        store.len().await.unwrap(),
        started.elapsed()
    );
    assert_eq!(removed, 0);
}

/// The index snapshot is trusted only while `write_seq` is unchanged: every change of
/// entries must move it, and it must survive a reopen; hits and counters need not move it.
#[tokio::test]
async fn write_seq_moves_with_every_change_of_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deja.redb");
    let p = PartitionKey([6; 16]);
    let es: Vec<Entry> = (0..4).map(|i| entry(i, p, 16)).collect();
    let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
    let mut seen = vec![store.write_seq().unwrap()];
    let mut moved = |store: &RedbStore, what: &str| {
        let now = store.write_seq().unwrap();
        assert!(!seen.contains(&now), "{what} did not move write_seq");
        seen.push(now);
    };
    store.put(&es[0]).await.unwrap();
    moved(&store, "put");
    store.put_many(&es[1..]).await.unwrap();
    moved(&store, "put_many");
    store.remove(es[0].id).await.unwrap();
    moved(&store, "remove");
    store.remove_many(&[es[1].id, es[2].id]).await.unwrap();
    moved(&store, "remove_many");
    let before = store.write_seq().unwrap();
    store.record_hit(es[3].id, 5).await.unwrap();
    store.flush().await.unwrap();
    store.add_counters(&Counters::default()).await.unwrap();
    assert_eq!(store.write_seq().unwrap(), before, "hits and counters");
    drop(store);
    let store = RedbStore::open(&path, StoreDurability::Fast).unwrap();
    assert_eq!(store.write_seq().unwrap(), before, "after a reopen");
}

/// A small tmpfs mounted on a directory (root only), unmounted when dropped.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// `None`, with a message, when this process may not mount (not root).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// After an I/O error redb refuses everything until re-opened. The store re-opens it by
/// itself: reads go on while the disk is full, `health` says degraded while writes fail,
/// and writes work again once there is room, without a restart.
#[tokio::test]
async fn a_full_disk_degrades_the_store_until_it_recovers_by_itself() {
    use deja_core::StoreHealth;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "2m") else {
        return;
    };
    let store = RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Strict).unwrap();
    let p = PartitionKey([9; 16]);
    let kept = entry(1, p, 64);
    store.put(&kept).await.unwrap();
    assert_eq!(store.health().await, StoreHealth::Ok);

    let filler = dir.path().join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let mut big = entry(2, p, 64);
    big.answer = Answer::Body(vec![b'x'; 200_000]);
    let e = store.put(&big).await.unwrap_err();
    assert!(
        deja_core::ErrorChain(&e)
            .to_string()
            .contains("No space left"),
        "{e}"
    );
    match store.health().await {
        StoreHealth::Degraded { last_error } => assert!(!last_error.is_empty()),
        StoreHealth::Ok => panic!("a failed write must degrade the store"),
    }
    // Re-opened at once: what was stored is still read while the disk is full.
    assert_eq!(
        store.get(kept.id).await.unwrap().unwrap().prompt,
        kept.prompt
    );
    assert!(store.put(&big).await.is_err(), "still full");

    let out = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(&filler).unwrap();
    // Recovers without a write from outside: `health` attempts one when one is due (1 s
    // after the error, then 2, 4, up to 10 s apart).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.health().await != StoreHealth::Ok {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    store.put(&big).await.unwrap();
    assert_eq!(store.get(big.id).await.unwrap().unwrap().answer, big.answer);
    assert_eq!(
        store.get(kept.id).await.unwrap().unwrap().prompt,
        kept.prompt
    );
    drop(store);
    drop(tmpfs);
}
