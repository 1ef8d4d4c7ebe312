//! The embedded backend's index snapshot: written at a clean shutdown, loaded at the next
//! start instead of rebuilding every HNSW graph from the store (a million entries take
//! minutes to index, seconds to load).
//!
//! The snapshot is trusted only if the store's write sequence ([`RedbStore::write_seq`])
//! is the one it was taken at: after a crash, an import into the stopped store, or any
//! other change of entries, it is deleted and the index is rebuilt. It is not written for
//! Redis, where every replica follows the shared events stream instead.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use deja_store_local::{HnswIndex, HnswParams, RedbStore};

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "index.snapshot";

/// Where the index is kept between runs, and what it must agree with.
pub struct IndexSnapshot {
    path: PathBuf,
    store: Arc<RedbStore>,
    index: Arc<HnswIndex>,
}

/// Loads the snapshot at `path` if it was made for this embedder and the store has not
/// changed since; otherwise deletes it (it can never become current again) and returns
/// `None`, logging why.
pub fn load(
    path: &std::path::Path,
    store: &RedbStore,
    embedder_id: &str,
    dim: usize,
    params: HnswParams,
) -> Option<HnswIndex> {
    if !path.exists() {
        return None;
    }
    let started = std::time::Instant::now();
    let outcome = HnswIndex::load_snapshot(path, embedder_id, dim, params)
        .map_err(|e| deja_core::ErrorChain(&e).to_string())
        .and_then(|(index, state)| match store.write_seq() {
            Ok(seq) if seq == state => Ok(index),
            Ok(seq) => Err(format!(
                "the store changed since it was taken (write {seq}, snapshot of write {state})"
            )),
            Err(e) => Err(deja_core::ErrorChain(&e).to_string()),
        });
    match outcome {
        Ok(index) => {
            tracing::info!(
                vectors = index.len_sync(),
                millis = started.elapsed().as_millis() as u64,
                path = %path.display(),
                "vector index loaded from its snapshot"
            );
            Some(index)
        }
        Err(why) => {
            tracing::info!(path = %path.display(), %why, "index snapshot not used; rebuilding");
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(error = %e, path = %path.display(), "removing the unusable index snapshot failed");
            }
            None
        }
    }
}

impl IndexSnapshot {
    pub fn new(path: PathBuf, store: Arc<RedbStore>, index: Arc<HnswIndex>) -> IndexSnapshot {
        IndexSnapshot { path, store, index }
    }

    /// Writes the snapshot, tagged with the store's write sequence. Called once nothing
    /// writes any more (after the server has drained); should a write still slip in while
    /// the index is being written, the sequence moves and the snapshot is discarded, so a
    /// snapshot never hides an entry from the index.
    pub fn save(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let before = self
            .store
            .write_seq()
            .context("reading the store's write sequence")?;
        self.index
            .save_snapshot(&self.path, before)
            .context("writing the index snapshot")?;
        let after = self
            .store
            .write_seq()
            .context("reading the store's write sequence")?;
        if after != before {
            std::fs::remove_file(&self.path).ok();
            anyhow::bail!("entries changed while the index snapshot was written; discarded");
        }
        tracing::info!(
            vectors = self.index.len_sync(),
            millis = started.elapsed().as_millis() as u64,
            path = %self.path.display(),
            "index snapshot written"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use deja_core::{
        Answer, Cache, CacheOptions, Embedder, EntryStore, NewEntry, PartitionKey, SemanticMode,
        SystemClock, Usage, VectorIndex,
    };
    use deja_store_local::StoreDurability;
    use deja_testkit::conformance::{HashEmbedder, INDEX_DIM, INDEX_EMBEDDER};

    use super::*;

    fn insert(i: usize) -> NewEntry {
        NewEntry {
            partition: PartitionKey([(i % 3) as u8; 16]),
            prompt: format!("prompt number {i}"),
            model: "m".into(),
            answer: Answer::Body(b"answer".to_vec()),
            usage: Usage::default(),
            semantic: SemanticMode::Allowed,
            vector: None,
            category: None,
        }
    }

    #[tokio::test]
    async fn a_snapshot_is_used_only_while_the_store_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let params = HnswParams {
            flat_below: 16,
            ..HnswParams::default()
        };
        let store = Arc::new(
            RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast).unwrap(),
        );
        let index = Arc::new(HnswIndex::new(INDEX_EMBEDDER, INDEX_DIM, params));
        let cache = Cache::new(
            store.clone(),
            index.clone(),
            Arc::new(HashEmbedder),
            Arc::new(SystemClock),
            CacheOptions::default(),
        )
        .unwrap();
        for i in 0..120 {
            cache.insert(insert(i)).await.unwrap();
        }
        assert!(load(&path, &store, INDEX_EMBEDDER, INDEX_DIM, params).is_none());
        IndexSnapshot::new(path.clone(), store.clone(), index.clone())
            .save()
            .unwrap();

        // Unchanged store: the loaded index is the saved one, and hits and counters (which
        // do not change entries) do not spoil it.
        store.record_hit(deja_core::EntryId(1), 5).await.unwrap();
        store.flush().await.unwrap();
        let loaded = load(&path, &store, INDEX_EMBEDDER, INDEX_DIM, params).unwrap();
        assert_eq!(loaded.len_sync(), index.len_sync());
        assert_eq!(loaded.len_sync(), 120);
        let q = HashEmbedder
            .embed(&["prompt number 7".to_string()])
            .await
            .unwrap()
            .remove(0);
        for p in 0..3u8 {
            assert_eq!(
                loaded.search(PartitionKey([p; 16]), &q, 3).await.unwrap(),
                index.search(PartitionKey([p; 16]), &q, 3).await.unwrap()
            );
        }
        // Another parameter set cannot use it (and it is deleted).
        let other = HnswParams { m: 8, ..params };
        assert!(load(&path, &store, INDEX_EMBEDDER, INDEX_DIM, other).is_none());
        assert!(!path.exists());

        // A change of entries after the snapshot: refused and deleted.
        IndexSnapshot::new(path.clone(), store.clone(), index.clone())
            .save()
            .unwrap();
        cache.insert(insert(1000)).await.unwrap();
        assert!(load(&path, &store, INDEX_EMBEDDER, INDEX_DIM, params).is_none());
        assert!(!path.exists());
    }
}
