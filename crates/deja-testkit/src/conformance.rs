//! Conformance suites for `EntryStore` and `VectorIndex` implementations: every backend
//! runs the same checks, so the engine can rely on the trait contracts and not on one
//! backend's quirks.
//!
//! - [`entry_store_suite`] needs an empty store.
//! - [`vector_index_suite`] needs a factory of empty indexes of dimension [`INDEX_DIM`]
//!   (8) for embedder [`INDEX_EMBEDDER`] (`test:fake`); it calls the factory once per check.
//! - [`maintenance_suite`] needs a factory of (empty store, empty index of that kind): it
//!   runs the engine's expiry, cold cleanup and capacity eviction on the pair and checks
//!   that store and index agree afterwards ([`assert_store_and_index_agree`]).
//!
//! Stores may quantise vectors, so vectors are compared by cosine (≥ 0.999) and unit
//! length, everything else exactly.

// Test support: a panic is how a check reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use deja_core::{
    Answer, Cache, CacheOptions, CapacityLimits, CategorySpec, Counters, EmbedError, Embedder,
    Entry, EntryId, EntryMeta, EntryStore, Eviction, ExactKey, IndexError, Lookup, LookupRequest,
    ManualClock, NewEntry, PartitionKey, SemanticMode, Usage, VectorIndex,
};

/// Dimension of the indexes [`vector_index_suite`] expects.
pub const INDEX_DIM: usize = 8;
/// Embedder id of the indexes [`vector_index_suite`] expects.
pub const INDEX_EMBEDDER: &str = "test:fake";

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A deterministic unit vector of dimension `dim`, different for each `seed`.
pub fn test_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let raw: Vec<f32> = (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    unit(&raw)
}

fn entry(id: u64, partition: u8, prompt: &str, answer: Answer, vector: Vec<f32>) -> Entry {
    let partition = PartitionKey([partition; 16]);
    Entry {
        id: EntryId(id),
        partition,
        exact_key: ExactKey::new(&partition, prompt),
        prompt: prompt.to_string(),
        model: "gpt-test".to_string(),
        answer,
        usage: Usage {
            prompt_tokens: id * 3,
            completion_tokens: id * 5,
        },
        created_at_ms: 1_000 + id,
        last_hit_ms: 2_000 + id,
        hit_count: id % 3,
        category: format!("cat-{partition}"),
        namespace: if id.is_multiple_of(2) {
            String::new()
        } else {
            format!("ns:team-{partition}")
        },
        tags: (0..id % 3).map(|t| format!("tag-{t}")).collect(),
        embedder_id: if vector.is_empty() {
            String::new()
        } else {
            "test:fake".to_string()
        },
        vector,
        // Some entries carry their request (staleness checks re-send it), some not.
        request: (id % 2 == 1)
            .then(|| format!("{{\"model\":\"gpt-test\",\"n\":{id}}}").into_bytes()),
    }
}

/// Asserts `got` equals `want` field by field, vectors by cosine.
fn assert_same_entry(got: &Entry, want: &Entry, what: &str) {
    let Entry {
        id,
        partition,
        exact_key,
        prompt,
        model,
        answer,
        usage,
        created_at_ms,
        last_hit_ms,
        hit_count,
        category,
        namespace,
        tags,
        embedder_id,
        vector,
        request,
    } = want;
    assert_eq!(got.request, *request, "{what}: request");
    assert_eq!(got.category, *category, "{what}: category");
    assert_eq!(got.namespace, *namespace, "{what}: namespace");
    assert_eq!(got.tags, *tags, "{what}: tags");
    assert_eq!(got.id, *id, "{what}: id");
    assert_eq!(got.partition, *partition, "{what}: partition");
    assert_eq!(got.exact_key, *exact_key, "{what}: exact_key");
    assert_eq!(got.prompt, *prompt, "{what}: prompt");
    assert_eq!(got.model, *model, "{what}: model");
    assert_eq!(got.answer, *answer, "{what}: answer");
    assert_eq!(got.usage, *usage, "{what}: usage");
    assert_eq!(got.created_at_ms, *created_at_ms, "{what}: created_at_ms");
    assert_eq!(got.last_hit_ms, *last_hit_ms, "{what}: last_hit_ms");
    assert_eq!(got.hit_count, *hit_count, "{what}: hit_count");
    assert_eq!(got.embedder_id, *embedder_id, "{what}: embedder_id");
    assert_eq!(got.vector.len(), vector.len(), "{what}: vector length");
    if !vector.is_empty() {
        let cos = cosine(&got.vector, vector);
        assert!(
            cos >= 0.999,
            "{what}: vector cosine {cos} to the stored one"
        );
        let norm = cosine(&got.vector, &got.vector).sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{what}: vector norm {norm}");
    }
}

/// Every `EntryStore` must pass this, starting from an empty store.
pub async fn entry_store_suite(store: Arc<dyn EntryStore>) {
    let s = store.as_ref();
    assert_eq!(s.len().await.unwrap(), 0, "the suite needs an empty store");

    // Round trips: both answer shapes, empty and non-empty parts, no vector.
    let dim = 384;
    let cases = [
        entry(
            1,
            1,
            "body",
            Answer::Body(b"{\"id\":\"x\"}".to_vec()),
            test_vector(1, dim),
        ),
        entry(
            2,
            1,
            "empty body",
            Answer::Body(Vec::new()),
            test_vector(2, dim),
        ),
        entry(
            3,
            2,
            "chunks",
            Answer::Chunks(vec![b"{\"a\":1}".to_vec(), Vec::new(), vec![0xff, 0, 7]]),
            test_vector(3, dim),
        ),
        entry(
            4,
            2,
            "no chunks",
            Answer::Chunks(Vec::new()),
            test_vector(4, 8),
        ),
        entry(
            5,
            3,
            "exact only",
            Answer::Body(b"plain".to_vec()),
            Vec::new(),
        ),
        entry(
            6,
            3,
            "ünïcødé 你好",
            Answer::Body(vec![0; 100_000]),
            test_vector(6, 1536),
        ),
        entry(7, 3, "", Answer::Body(b"empty prompt".to_vec()), Vec::new()),
    ];
    for e in &cases {
        assert_eq!(
            s.put(e).await.unwrap(),
            None,
            "put {} replaced something",
            e.prompt
        );
    }
    for e in &cases {
        let what = format!("entry {:?}", e.prompt);
        let by_id = s
            .get(e.id)
            .await
            .unwrap()
            .expect("get finds a stored entry");
        assert_same_entry(&by_id, e, &format!("{what} by id"));
        let by_key = s
            .get_exact(&e.exact_key)
            .await
            .unwrap()
            .expect("get_exact finds a stored entry");
        assert_same_entry(&by_key, e, &format!("{what} by exact key"));
    }
    assert_eq!(s.len().await.unwrap(), cases.len() as u64);
    assert!(s.get(EntryId(999)).await.unwrap().is_none(), "unknown id");
    assert!(
        s.get_exact(&ExactKey([9; 16])).await.unwrap().is_none(),
        "unknown exact key"
    );

    // Scan sees every entry once, with its partition, embedder and vector.
    let mut seen: Vec<(EntryId, PartitionKey, String, Vec<f32>)> = Vec::new();
    s.scan_vectors(&mut |id, p, emb, v| seen.push((id, p, emb.to_string(), v.to_vec())))
        .await
        .unwrap();
    assert_eq!(seen.len(), cases.len(), "scan_vectors visits every entry");
    for e in &cases {
        let (_, p, emb, v) = seen
            .iter()
            .find(|(id, ..)| *id == e.id)
            .unwrap_or_else(|| panic!("scan_vectors missed {}", e.id));
        assert_eq!(*p, e.partition);
        assert_eq!(*emb, e.embedder_id);
        assert_eq!(v.len(), e.vector.len());
        if !v.is_empty() {
            assert!(cosine(v, &e.vector) >= 0.999);
        }
    }

    // Replacement by exact key: the old id is returned and gone everywhere.
    let old = &cases[0];
    let mut new = entry(
        100,
        1,
        "body",
        Answer::Body(b"new".to_vec()),
        test_vector(100, dim),
    );
    assert_eq!(new.exact_key, old.exact_key);
    assert_eq!(
        s.put(&new).await.unwrap(),
        Some(old.id),
        "put returns the replaced id"
    );
    assert!(
        s.get(old.id).await.unwrap().is_none(),
        "replaced entry is gone"
    );
    let got = s.get_exact(&old.exact_key).await.unwrap().unwrap();
    assert_same_entry(&got, &new, "replacement by exact key");
    assert_eq!(s.len().await.unwrap(), cases.len() as u64);
    let mut scanned = Vec::new();
    s.scan_vectors(&mut |id, _, _, _| scanned.push(id))
        .await
        .unwrap();
    assert!(
        !scanned.contains(&old.id),
        "scan_vectors still sees a replaced entry"
    );
    assert!(scanned.contains(&new.id));

    // Putting the same entry again replaces nothing.
    new.answer = Answer::Body(b"newer".to_vec());
    assert_eq!(s.put(&new).await.unwrap(), None, "re-put of the same id");
    let got = s.get(new.id).await.unwrap().unwrap();
    assert_same_entry(&got, &new, "re-put of the same id");

    // Remove returns the entry; afterwards it is gone by id and by key.
    let gone = &cases[2];
    let removed = s
        .remove(gone.id)
        .await
        .unwrap()
        .expect("remove returns the entry");
    assert_same_entry(&removed, gone, "removed entry");
    assert!(s.get(gone.id).await.unwrap().is_none());
    assert!(s.get_exact(&gone.exact_key).await.unwrap().is_none());
    assert!(s.remove(gone.id).await.unwrap().is_none(), "second remove");
    assert_eq!(s.len().await.unwrap(), cases.len() as u64 - 1);

    // Hits: visible on reads right away and after a flush.
    let hit = &cases[1];
    s.record_hit(hit.id, 50_000).await.unwrap();
    s.record_hit(hit.id, 40_000).await.unwrap();
    s.record_hit(EntryId(424_242), 1).await.unwrap(); // an unknown id is not an error
    let check_hits = |e: Entry, when: &str| {
        assert_eq!(e.hit_count, hit.hit_count + 2, "hit_count {when}");
        assert_eq!(e.last_hit_ms, 50_000, "last_hit_ms {when}");
    };
    check_hits(s.get(hit.id).await.unwrap().unwrap(), "before flush");
    s.flush().await.unwrap();
    check_hits(s.get(hit.id).await.unwrap().unwrap(), "after flush");
    check_hits(
        s.get_exact(&hit.exact_key).await.unwrap().unwrap(),
        "after flush, by key",
    );
    s.record_hit(hit.id, 60_000).await.unwrap();
    s.flush().await.unwrap();
    let e = s.get(hit.id).await.unwrap().unwrap();
    assert_eq!(e.hit_count, hit.hit_count + 3, "hits add up over flushes");
    assert_eq!(e.last_hit_ms, 60_000);
    assert!(s.get(EntryId(424_242)).await.unwrap().is_none());
    // A hit on an entry removed before the flush does not resurrect it.
    let doomed = &cases[3];
    s.record_hit(doomed.id, 70_000).await.unwrap();
    s.remove(doomed.id).await.unwrap();
    s.flush().await.unwrap();
    assert!(s.get(doomed.id).await.unwrap().is_none());

    lifecycle_checks(s).await;

    // Counters add up, every field separately.
    assert!(
        s.counters().await.unwrap().is_zero(),
        "fresh counters are zero"
    );
    let a = Counters {
        exact_hits: 1,
        semantic_hits: 2,
        misses: 3,
        bypasses: 4,
        upstream_calls: 5,
        prompt_tokens_saved: 6,
        completion_tokens_saved: 7,
        embedding_hits: 8,
        embedding_misses: 9,
        verification_rejects: 10,
        removed_expired: 11,
        removed_evicted: 12,
        removed_invalidated: 13,
        stale_checks: 14,
        stale_check_tokens: 15,
        stale_check_failures: 16,
        removed_stale: 17,
        stale_replaced: 18,
    };
    let b = Counters {
        exact_hits: 10,
        misses: 1,
        embedding_misses: 100,
        ..Counters::default()
    };
    s.add_counters(&a).await.unwrap();
    s.add_counters(&b).await.unwrap();
    s.add_counters(&Counters::default()).await.unwrap();
    let mut want = a;
    want.add(&b);
    assert_eq!(s.counters().await.unwrap(), want);
    s.flush().await.unwrap();
    assert_eq!(s.counters().await.unwrap(), want);

    // The engine's named state: absent until saved, then the last bytes saved; not an
    // entry.
    let entries = s.len().await.unwrap();
    assert_eq!(s.load_state("calibration").await.unwrap(), None);
    s.save_state("calibration", b"{\"cells\":[]}")
        .await
        .unwrap();
    s.save_state("other", b"").await.unwrap();
    s.save_state("calibration", b"{\"cells\":[1]}")
        .await
        .unwrap();
    assert_eq!(
        s.load_state("calibration").await.unwrap().as_deref(),
        Some(&b"{\"cells\":[1]}"[..])
    );
    assert_eq!(
        s.load_state("other").await.unwrap().as_deref(),
        Some(&b""[..])
    );
    assert_eq!(s.len().await.unwrap(), entries);

    batch_checks(s).await;
    state_count_checks(store.clone()).await;
}

/// `add_state_counts` adds, per name, and loses no addition made at the same time as
/// another (as replicas sharing the store do).
async fn state_count_checks(store: Arc<dyn EntryStore>) {
    let s = store.as_ref();
    let sorted = |v: Option<Vec<(String, i64)>>| {
        let mut v = v.expect("the store keeps counters");
        v.sort();
        v
    };
    assert_eq!(
        sorted(s.add_state_counts("labels", &[]).await.unwrap()),
        vec![]
    );
    let got = s
        .add_state_counts(
            "labels",
            &[
                ("label:0:180:a:default".into(), 3),
                ("audit:wrong:a:b".into(), 1),
                ("zero".into(), 0),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(got),
        vec![
            ("audit:wrong:a:b".to_string(), 1),
            ("label:0:180:a:default".to_string(), 3)
        ]
    );
    // Another name is another set of counters.
    let other = s
        .add_state_counts("other", &[("label:0:180:a:default".into(), 5)])
        .await
        .unwrap();
    assert_eq!(
        sorted(other),
        vec![("label:0:180:a:default".to_string(), 5)]
    );
    // 16 writers adding at once: every addition counts.
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    store
                        .add_state_counts(
                            "labels",
                            &[
                                ("label:0:180:a:default".into(), 1),
                                (format!("label:{}:10:w:default", i % 4), 2),
                            ],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let got = sorted(s.add_state_counts("labels", &[]).await.unwrap());
    assert_eq!(
        got,
        vec![
            ("audit:wrong:a:b".to_string(), 1),
            ("label:0:10:w:default".to_string(), 80),
            ("label:0:180:a:default".to_string(), 163),
            ("label:1:10:w:default".to_string(), 80),
            ("label:2:10:w:default".to_string(), 80),
            ("label:3:10:w:default".to_string(), 80),
        ]
    );
    // A negative addition subtracts.
    let got = sorted(
        s.add_state_counts("other", &[("label:0:180:a:default".into(), -5)])
            .await
            .unwrap(),
    );
    assert_eq!(got, vec![("label:0:180:a:default".to_string(), 0)]);
}

/// `put_many` stores like `put` one by one: in order, later entries replacing earlier
/// ones of the batch or of the store under the same exact key (ids 300.., partition 9).
async fn batch_checks(s: &dyn EntryStore) {
    let dim = 384;
    let before = s.len().await.unwrap();
    let old = entry(
        300,
        9,
        "batch replaced",
        Answer::Body(b"old".to_vec()),
        test_vector(300, dim),
    );
    assert_eq!(s.put(&old).await.unwrap(), None);
    let mut batch: Vec<Entry> = (301..311)
        .map(|id| {
            entry(
                id,
                9,
                &format!("batch {id}"),
                Answer::Body(id.to_le_bytes().to_vec()),
                test_vector(id, dim),
            )
        })
        .collect();
    // Replaces the stored entry 300 ...
    batch.push(entry(
        311,
        9,
        "batch replaced",
        Answer::Body(b"new".to_vec()),
        Vec::new(),
    ));
    // ... and an entry of this same batch.
    batch.push(entry(
        312,
        9,
        "batch 301",
        Answer::Body(b"again".to_vec()),
        test_vector(312, dim),
    ));
    let replaced = s.put_many(&batch).await.unwrap();
    let mut want_replaced = vec![None; batch.len()];
    want_replaced[10] = Some(EntryId(300));
    want_replaced[11] = Some(EntryId(301));
    assert_eq!(replaced, want_replaced, "what each batched entry replaced");
    assert_eq!(
        s.len().await.unwrap(),
        before + 11,
        "300 and 301 were replaced"
    );
    assert!(s.get(EntryId(300)).await.unwrap().is_none());
    assert!(s.get(EntryId(301)).await.unwrap().is_none());
    for e in batch.iter().filter(|e| e.id != EntryId(301)) {
        let got = s
            .get(e.id)
            .await
            .unwrap()
            .expect("a batched entry is stored");
        assert_same_entry(&got, e, "put_many, by id");
        let got = s
            .get_exact(&e.exact_key)
            .await
            .unwrap()
            .expect("and by exact key");
        assert_eq!(got.id, e.id, "exact key of {}", e.prompt);
    }
    for tag in ["tag-0", "tag-1"] {
        let ids = tagged(s, tag).await;
        for e in &batch {
            let carries = e.tags.iter().any(|t| t == tag);
            let stored = e.id != EntryId(301);
            assert_eq!(
                ids.contains(&e.id),
                carries && stored,
                "tag {tag} of entry {}",
                e.id
            );
        }
        assert!(
            !ids.contains(&EntryId(300)),
            "a replaced entry leaves its tags"
        );
    }
    assert_eq!(s.put_many(&[]).await.unwrap(), Vec::new(), "an empty batch");
}

/// Every `VectorIndex` must pass this. `make` returns a new, empty index of dimension
/// [`INDEX_DIM`] for embedder [`INDEX_EMBEDDER`].
pub async fn vector_index_suite(make: impl Fn() -> Arc<dyn VectorIndex>) {
    let pa = PartitionKey([1; 16]);
    let pb = PartitionKey([2; 16]);
    let v = |seed: u64| test_vector(seed, INDEX_DIM);

    // Identity.
    let idx = make();
    assert_eq!(idx.dim(), INDEX_DIM);
    assert_eq!(idx.embedder_id(), INDEX_EMBEDDER);
    assert_eq!(idx.len().await.unwrap(), 0);

    // Empty partitions and k = 0 return nothing.
    assert!(idx.search(pa, &v(1), 5).await.unwrap().is_empty());
    idx.insert(pa, EntryId(1), &v(1)).await.unwrap();
    assert!(
        idx.search(pb, &v(1), 5).await.unwrap().is_empty(),
        "other partition"
    );
    assert!(idx.search(pa, &v(1), 0).await.unwrap().is_empty(), "k = 0");

    // Order: most similar first, similarities are cosines, k caps the count.
    let idx = make();
    let query = v(1000);
    let mut want: Vec<(EntryId, f32)> = Vec::new();
    for i in 0..50u64 {
        let vec = v(i);
        idx.insert(pa, EntryId(i), &vec).await.unwrap();
        want.push((EntryId(i), cosine(&vec, &query)));
    }
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(idx.len().await.unwrap(), 50);
    let got = idx.search(pa, &query, 5).await.unwrap();
    assert_eq!(got.len(), 5);
    for w in got.windows(2) {
        assert!(
            w[0].similarity >= w[1].similarity,
            "results not sorted: {got:?}"
        );
    }
    assert_eq!(got[0].id, want[0].0, "top-1 of 50");
    for n in &got {
        let exact = want.iter().find(|(id, _)| *id == n.id).unwrap().1;
        assert!(
            (n.similarity - exact).abs() < 0.02,
            "similarity {} vs {exact}",
            n.similarity
        );
        assert!((-1.0..=1.0).contains(&n.similarity));
    }
    assert_eq!(
        idx.search(pa, &query, 100).await.unwrap().len(),
        50,
        "k > len"
    );
    // A stored vector is its own best match, with similarity ~1.
    for i in 0..50u64 {
        let got = idx.search(pa, &v(i), 1).await.unwrap();
        assert_eq!(got[0].id, EntryId(i), "vector {i} finds itself");
        assert!(got[0].similarity > 0.99);
    }
    // An opposite vector has similarity ~ -1.
    let neg: Vec<f32> = v(7).iter().map(|x| -x).collect();
    let idx2 = make();
    idx2.insert(pa, EntryId(7), &v(7)).await.unwrap();
    let got = idx2.search(pa, &neg, 1).await.unwrap();
    assert!(got[0].similarity < -0.99, "opposite vector: {got:?}");

    // Partition isolation: the same vector in another partition is never returned.
    let idx = make();
    for i in 0..30u64 {
        idx.insert(pa, EntryId(i), &v(i)).await.unwrap();
        idx.insert(pb, EntryId(1000 + i), &v(i)).await.unwrap();
    }
    assert_eq!(idx.len().await.unwrap(), 60);
    for i in 0..30u64 {
        for n in idx.search(pa, &v(i), 10).await.unwrap() {
            assert!(n.id.0 < 1000, "partition a returned {}", n.id);
        }
        for n in idx.search(pb, &v(i), 10).await.unwrap() {
            assert!(n.id.0 >= 1000, "partition b returned {}", n.id);
        }
    }

    // Removal: a removed id is never returned; removing twice or from the wrong partition
    // is not an error and does not touch the other partition.
    for i in (0..30u64).step_by(2) {
        idx.remove(pa, EntryId(i)).await.unwrap();
        idx.remove(pa, EntryId(i)).await.unwrap();
    }
    idx.remove(pb, EntryId(1)).await.unwrap(); // id 1 lives in partition a
    idx.remove(pa, EntryId(12_345)).await.unwrap();
    assert_eq!(idx.len().await.unwrap(), 45);
    for i in 0..30u64 {
        let got = idx.search(pa, &v(i), 30).await.unwrap();
        assert_eq!(got.len(), 15);
        assert!(
            got.iter().all(|n| n.id.0 % 2 == 1),
            "removed id returned: {got:?}"
        );
        if i % 2 == 1 {
            assert_eq!(got[0].id, EntryId(i));
        }
    }
    assert!(idx.search(pa, &v(1), 1).await.unwrap()[0].id == EntryId(1));
    for i in (1..30u64).step_by(2) {
        idx.remove(pa, EntryId(i)).await.unwrap();
    }
    assert!(
        idx.search(pa, &v(1), 5).await.unwrap().is_empty(),
        "emptied partition"
    );
    assert_eq!(idx.len().await.unwrap(), 30);
    // A removed id can come back.
    idx.insert(pa, EntryId(4), &v(4)).await.unwrap();
    assert_eq!(idx.search(pa, &v(4), 5).await.unwrap()[0].id, EntryId(4));

    // Replacement: inserting an existing id replaces its vector, it is not duplicated.
    let idx = make();
    idx.insert(pa, EntryId(1), &v(1)).await.unwrap();
    idx.insert(pa, EntryId(2), &v(2)).await.unwrap();
    idx.insert(pa, EntryId(1), &v(3)).await.unwrap();
    assert_eq!(idx.len().await.unwrap(), 2);
    let got = idx.search(pa, &v(3), 5).await.unwrap();
    assert_eq!(got.len(), 2, "replaced id duplicated: {got:?}");
    assert_eq!(got[0].id, EntryId(1));
    assert!(got[0].similarity > 0.99);
    let got = idx.search(pa, &v(1), 5).await.unwrap();
    let old = got.iter().find(|n| n.id == EntryId(1)).unwrap();
    assert!(
        (old.similarity - cosine(&v(1), &v(3))).abs() < 0.02,
        "old vector still indexed"
    );

    // Wrong dimension is an error, for insert and search, and changes nothing.
    let idx = make();
    let short = vec![1.0f32; INDEX_DIM - 1];
    let long = test_vector(1, INDEX_DIM + 1);
    for bad in [&short, &long] {
        match idx.insert(pa, EntryId(1), bad).await {
            Err(IndexError::Dimension { want, got }) => {
                assert_eq!((want, got), (INDEX_DIM, bad.len()));
            }
            other => panic!("insert of dimension {} gave {other:?}", bad.len()),
        }
        assert!(
            matches!(
                idx.search(pa, bad, 1).await,
                Err(IndexError::Dimension { .. })
            ),
            "search of dimension {}",
            bad.len()
        );
    }
    assert_eq!(idx.len().await.unwrap(), 0);
}

/// Owned copy of what `scan_meta` showed, to compare after the visit.
#[derive(Debug, Clone, PartialEq)]
struct Meta {
    id: EntryId,
    partition: PartitionKey,
    model: String,
    namespace: String,
    category: String,
    created_at_ms: u64,
    last_hit_ms: u64,
    hit_count: u64,
    has_vector: bool,
    tags: Vec<String>,
    size_bytes: u64,
}

impl Meta {
    fn of_entry(e: &Entry) -> Meta {
        Meta {
            id: e.id,
            partition: e.partition,
            model: e.model.clone(),
            namespace: e.namespace.clone(),
            category: e.category.clone(),
            created_at_ms: e.created_at_ms,
            last_hit_ms: e.last_hit_ms,
            hit_count: e.hit_count,
            has_vector: !e.vector.is_empty(),
            tags: e.tags.clone(),
            size_bytes: (e.prompt.len() + e.answer.len_bytes()) as u64,
        }
    }
    fn of_meta(m: &EntryMeta<'_>) -> Meta {
        Meta {
            id: m.id,
            partition: m.partition,
            model: m.model.to_string(),
            namespace: m.namespace.to_string(),
            category: m.category.to_string(),
            created_at_ms: m.created_at_ms,
            last_hit_ms: m.last_hit_ms,
            hit_count: m.hit_count,
            has_vector: m.has_vector,
            tags: m.tags.iter().map(|t| t.to_string()).collect(),
            size_bytes: m.size_bytes,
        }
    }
}

async fn scan_meta(s: &dyn EntryStore) -> Vec<Meta> {
    let mut seen = Vec::new();
    s.scan_meta(&mut |m| seen.push(Meta::of_meta(m)))
        .await
        .unwrap();
    seen.sort_by_key(|m| m.id);
    seen
}

async fn tagged(s: &dyn EntryStore, tag: &str) -> Vec<EntryId> {
    let mut ids = s.ids_with_tag(tag).await.unwrap();
    ids.sort();
    ids
}

/// Tag index, metadata scan and batch removal, on the entries the suite left so far plus
/// its own (ids 200..).
async fn lifecycle_checks(s: &dyn EntryStore) {
    // The metadata scan agrees with reading every entry (hit counts included).
    let mut ids: Vec<EntryId> = Vec::new();
    s.scan_vectors(&mut |id, _, _, _| ids.push(id))
        .await
        .unwrap();
    ids.sort();
    let mut want = Vec::new();
    for id in &ids {
        want.push(Meta::of_entry(&s.get(*id).await.unwrap().unwrap()));
    }
    assert_eq!(scan_meta(s).await, want, "scan_meta agrees with get");

    let base = s.len().await.unwrap();
    let mk = |id: u64, prompt: &str, tags: &[&str], vector: bool| {
        let mut e = entry(
            id,
            9,
            prompt,
            Answer::Chunks(vec![b"a".to_vec(), b"b".to_vec()]),
            if vector {
                test_vector(id, 16)
            } else {
                Vec::new()
            },
        );
        e.tags = tags.iter().map(|t| t.to_string()).collect();
        e
    };
    let a = mk(200, "tagged a", &["product:1", "policy:returns"], true);
    let b = mk(201, "tagged b", &["product:1"], false);
    let c = mk(202, "tagged c", &["product:2"], true);
    for e in [&a, &b, &c] {
        s.put(e).await.unwrap();
    }
    assert_eq!(tagged(s, "product:1").await, vec![a.id, b.id]);
    assert_eq!(tagged(s, "policy:returns").await, vec![a.id]);
    assert_eq!(tagged(s, "product:3").await, Vec::<EntryId>::new());

    // Re-putting an id with other tags moves it in the tag index.
    let mut c2 = c.clone();
    c2.tags = vec!["product:1".into()];
    s.put(&c2).await.unwrap();
    assert_eq!(tagged(s, "product:2").await, Vec::<EntryId>::new());
    assert_eq!(tagged(s, "product:1").await, vec![a.id, b.id, c.id]);
    // Replacing an entry by exact key drops the old id's tags.
    let b2 = mk(203, "tagged b", &["product:9"], false);
    assert_eq!(s.put(&b2).await.unwrap(), Some(b.id));
    assert_eq!(tagged(s, "product:1").await, vec![a.id, c.id]);
    assert_eq!(tagged(s, "product:9").await, vec![b2.id]);
    // Removing one entry drops its tags.
    s.remove(b2.id).await.unwrap();
    assert_eq!(tagged(s, "product:9").await, Vec::<EntryId>::new());

    // remove_many: one call, absent ids skipped, gone by id, key and tag.
    let metas = scan_meta(s).await;
    let m_a = metas.iter().find(|m| m.id == a.id).unwrap();
    assert_eq!(m_a.tags, a.tags);
    assert!(m_a.has_vector);
    let mut gone = s
        .remove_many(&[a.id, EntryId(987_654), c.id, b2.id])
        .await
        .unwrap();
    gone.sort_by_key(|(id, ..)| *id);
    assert_eq!(
        gone,
        vec![(a.id, a.partition, true), (c.id, c.partition, true)],
        "remove_many reports what it removed"
    );
    for e in [&a, &c2] {
        assert!(s.get(e.id).await.unwrap().is_none());
        assert!(s.get_exact(&e.exact_key).await.unwrap().is_none());
    }
    assert_eq!(tagged(s, "product:1").await, Vec::<EntryId>::new());
    assert_eq!(tagged(s, "policy:returns").await, Vec::<EntryId>::new());
    assert_eq!(s.len().await.unwrap(), base);
    assert!(s.remove_many(&[]).await.unwrap().is_empty());
    assert!(scan_meta(s)
        .await
        .iter()
        .all(|m| m.id != a.id && m.id != c.id));
    // A hit on a batch-removed entry does not resurrect it.
    let d = mk(204, "tagged d", &["x"], false);
    s.put(&d).await.unwrap();
    s.record_hit(d.id, 90_000).await.unwrap();
    let gone = s.remove_many(&[d.id]).await.unwrap();
    assert_eq!(gone, vec![(d.id, d.partition, false)]);
    s.flush().await.unwrap();
    assert!(s.get(d.id).await.unwrap().is_none());
    assert_eq!(s.len().await.unwrap(), base);
}

/// Checks that `index` holds exactly the vectors of the entries in `store` that have one:
/// every stored vector is found in its partition as its own nearest neighbour, and the
/// index holds no more vectors than that (so none of a removed entry).
pub async fn assert_store_and_index_agree(store: &dyn EntryStore, index: &dyn VectorIndex) {
    let mut stored: Vec<(EntryId, PartitionKey, Vec<f32>)> = Vec::new();
    store
        .scan_vectors(&mut |id, p, _, v| {
            if !v.is_empty() {
                stored.push((id, p, v.to_vec()));
            }
        })
        .await
        .unwrap();
    assert_eq!(
        index.len().await.unwrap(),
        stored.len() as u64,
        "index and store hold different numbers of vectors"
    );
    for (id, p, v) in &stored {
        let found = index.search(*p, v, 1).await.unwrap();
        assert_eq!(
            found.first().map(|n| n.id),
            Some(*id),
            "stored entry {id} is not indexed"
        );
    }
}

/// Embeds a text as [`test_vector`] of a hash of it: distinct texts get unrelated vectors.
/// Its id and dimension are [`INDEX_EMBEDDER`] and [`INDEX_DIM`].
pub struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    fn id(&self) -> &str {
        INDEX_EMBEDDER
    }
    fn dim(&self) -> usize {
        INDEX_DIM
    }
    fn vocabulary(&self) -> Option<&deja_core::verify::Vocabulary> {
        None
    }

    fn unseen(&self, _text: &str) -> Vec<String> {
        Vec::new()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let seed = t.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                test_vector(seed, INDEX_DIM)
            })
            .collect())
    }
}

const MAINT_PARTITION: PartitionKey = PartitionKey([7; 16]);

fn maint_entry(prompt: &str, category: Option<&str>, semantic: SemanticMode) -> NewEntry {
    NewEntry {
        partition: MAINT_PARTITION,
        prompt: prompt.to_string(),
        model: "gpt-test".to_string(),
        answer: Answer::Body(prompt.as_bytes().to_vec()),
        usage: Usage::default(),
        semantic,
        vector: None,
        category: category.map(str::to_string),
    }
}

async fn stored_prompts(store: &dyn EntryStore) -> Vec<String> {
    let mut ids = Vec::new();
    store
        .scan_vectors(&mut |id, _, _, _| ids.push(id))
        .await
        .unwrap();
    let mut prompts = Vec::new();
    for id in ids {
        prompts.push(store.get(id).await.unwrap().unwrap().prompt);
    }
    prompts.sort();
    prompts
}

/// The engine's expiry, cold cleanup and eviction on a real store and index. `make`
/// returns a new, empty store and an empty index of dimension [`INDEX_DIM`] for embedder
/// [`INDEX_EMBEDDER`]; it is called once per check.
pub async fn maintenance_suite(make: impl Fn() -> (Arc<dyn EntryStore>, Arc<dyn VectorIndex>)) {
    let build = |options: CacheOptions| {
        let (store, index) = make();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cache = Cache::new(
            store.clone(),
            index.clone(),
            Arc::new(HashEmbedder),
            clock.clone(),
            options,
        )
        .unwrap();
        (cache, store, index, clock)
    };
    let lookup = |cache: &Cache, prompt: &str| {
        let cache = cache.clone();
        let prompt = prompt.to_string();
        async move {
            cache
                .lookup(&LookupRequest {
                    category: None,
                    partition: MAINT_PARTITION,
                    prompt: &prompt,
                    semantic: SemanticMode::ExactOnly,
                    min_similarity: None,
                    max_age_secs: None,
                })
                .await
        }
    };

    // Expiry by category TTL: only expired entries go, with their vectors.
    let (cache, store, index, clock) = build(CacheOptions {
        ttl_secs: Some(100),
        categories: vec![CategorySpec {
            name: "short".into(),
            min_similarity: 0.9,
            min_confidence: None,
            max_false_hit_rate: None,
            ttl_secs: Some(10),
            cacheable: true,
            keywords: Vec::new(),
            examples: Vec::new(),
        }],
        ..CacheOptions::default()
    });
    for (prompt, category, semantic) in [
        ("short a", Some("short"), SemanticMode::Allowed),
        ("short b", Some("short"), SemanticMode::ExactOnly),
        ("default a", None, SemanticMode::Allowed),
        ("default b", None, SemanticMode::ExactOnly),
    ] {
        cache
            .insert(maint_entry(prompt, category, semantic))
            .await
            .unwrap();
    }
    clock.advance_ms(10_000);
    assert_eq!(cache.sweep_expired().await.unwrap(), 2);
    assert_eq!(stored_prompts(&*store).await, ["default a", "default b"]);
    assert_store_and_index_agree(&*store, &*index).await;
    clock.advance_ms(90_000);
    assert_eq!(cache.sweep_expired().await.unwrap(), 2);
    assert_eq!(store.len().await.unwrap(), 0);
    assert_store_and_index_agree(&*store, &*index).await;
    cache.flush_counters().await.unwrap();
    assert_eq!(store.counters().await.unwrap().removed_expired, 4);

    // Capacity: LRU and LFU pick different victims; hit counts come from the store.
    for (eviction, want) in [
        // Least recently used: e0 (hit before the others were created) and e2.
        (Eviction::Lru, ["e1", "e3", "e4"]),
        // Least frequently used: the oldest never hit, e2 and e3.
        (Eviction::Lfu, ["e0", "e1", "e4"]),
    ] {
        let (cache, store, index, clock) = build(CacheOptions::default());
        for i in 0..5 {
            let p = format!("e{i}");
            let semantic = if i == 2 {
                SemanticMode::ExactOnly
            } else {
                SemanticMode::Allowed
            };
            cache.insert(maint_entry(&p, None, semantic)).await.unwrap();
            if i == 0 {
                // e0: three hits, long ago.
                for _ in 0..3 {
                    assert!(matches!(lookup(&cache, "e0").await, Lookup::ExactHit(_)));
                }
            }
            clock.advance_ms(1_000);
        }
        // e1: one recent hit.
        clock.advance_ms(10_000);
        assert!(matches!(lookup(&cache, "e1").await, Lookup::ExactHit(_)));
        // Hits reach the store's persisted fields too.
        cache.flush_counters().await.unwrap();
        let limits = CapacityLimits {
            max_entries: Some(4),
            eviction,
            ..CapacityLimits::default()
        };
        // 95% of 4 is 3: two of five go.
        assert_eq!(cache.enforce_capacity(&limits).await.unwrap(), 2);
        assert_eq!(stored_prompts(&*store).await, want, "{eviction:?}");
        assert_store_and_index_agree(&*store, &*index).await;
    }

    // max_bytes and cold cleanup.
    let (cache, store, index, clock) = build(CacheOptions::default());
    for i in 10..30 {
        // "item 10".."item 29": 7 bytes of prompt and 7 of answer.
        cache
            .insert(maint_entry(
                &format!("item {i}"),
                None,
                SemanticMode::Allowed,
            ))
            .await
            .unwrap();
        clock.advance_ms(1_000);
    }
    let limits = CapacityLimits {
        max_bytes: Some(200),
        ..CapacityLimits::default()
    };
    // 280 bytes over a limit of 200: trimmed to 190 (95%), 13 entries of 14 bytes.
    assert_eq!(cache.enforce_capacity(&limits).await.unwrap(), 7);
    assert_eq!(store.len().await.unwrap(), 13);
    assert_eq!(stored_prompts(&*store).await[0], "item 17");
    assert_store_and_index_agree(&*store, &*index).await;
    assert!(matches!(
        lookup(&cache, "item 29").await,
        Lookup::ExactHit(_)
    ));
    clock.advance_ms(30_000);
    assert_eq!(cache.remove_cold(31).await.unwrap(), 12);
    assert_eq!(stored_prompts(&*store).await, ["item 29"]);
    assert_store_and_index_agree(&*store, &*index).await;
    cache.flush_counters().await.unwrap();
    assert_eq!(store.counters().await.unwrap().removed_evicted, 19);
}
