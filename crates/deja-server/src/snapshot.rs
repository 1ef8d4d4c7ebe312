//! The in-process index's snapshot: written at a clean shutdown, loaded at the next start
//! instead of rebuilding every HNSW graph from the store (a million entries take minutes
//! to index, seconds to load). What a snapshot must agree with depends on the store:
//!
//! - **Embedded store**: the snapshot is trusted only if the store's write sequence
//!   ([`RedbStore::write_seq`]) is the one it was taken at. After a crash, an import into
//!   the stopped store, or any other change of entries, it is deleted and the index is
//!   rebuilt.
//! - **Redis** (a replica with its own index): the snapshot is the index as of an event of
//!   the shared events stream (the follower's position, kept beside it in
//!   [`POSITION_FILE`]). At the next start the replica loads it and follows the stream
//!   from that event, replaying what other replicas did meanwhile (replays are harmless:
//!   inserts replace, removals of absent ids do nothing), instead of reading every entry
//!   from Redis again. It is trusted only for the same Redis and key prefix, and only
//!   while the stream still holds every event after it (its oldest event is at or before
//!   the position); a trimmed or vanished stream means a rebuild. Because any snapshot
//!   taken at a position stays valid while the stream covers it, one left from an earlier
//!   clean stop is still good after a crash.
//!
//! Either way the store stays the source of truth: every candidate the index returns is
//! read again from the store before it is served, so an index that holds a removed entry
//! never serves it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use deja_store_local::{HnswIndex, HnswParams, RedbStore};
use deja_store_redis::{EventsPosition, RedisStore};
use serde::{Deserialize, Serialize};

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "index.snapshot";

/// Beside a Redis replica's snapshot: which Redis it is of, and at which event.
pub const POSITION_FILE: &str = "index.snapshot.position.json";

/// Where the index is kept between runs, and what it must agree with.
pub struct IndexSnapshot {
    path: PathBuf,
    index: Arc<HnswIndex>,
    agreement: Agreement,
    /// Whether the index was loaded from this snapshot at start (else it was rebuilt).
    loaded: bool,
}

enum Agreement {
    /// The embedded store, by its write sequence.
    Local(Arc<RedbStore>),
    /// A Redis replica: `identity` names the Redis and prefix; the follower's task is
    /// stopped before its position is read, so the index holds every event up to it.
    Redis {
        identity: String,
        position: EventsPosition,
        follower: tokio::task::AbortHandle,
    },
}

/// What [`POSITION_FILE`] holds.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Position {
    identity: String,
    /// The id of the last event of the stream the index holds.
    event: String,
}

impl Position {
    /// The snapshot's tag: ties the index file to this position file.
    fn tag(&self) -> u64 {
        let h = blake3::hash(format!("{}\n{}", self.identity, self.event).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
}

/// What names a Redis deployment for a snapshot: its address (without credentials) and
/// the key prefix.
pub fn redis_identity(url: &str, prefix: &str) -> String {
    format!("{} {prefix}", crate::config::redact_url(url))
}

/// Loads the snapshot at `path` if it was made for this embedder and the store has not
/// changed since; otherwise deletes it (it can never become current again) and returns
/// `None`, logging why.
pub fn load(
    path: &Path,
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
    loaded(path, started, outcome, true)
}

/// Loads a Redis replica's snapshot at `path` and returns it with the event to follow the
/// stream from, if it is of this Redis (`identity`, see [`redis_identity`]), this embedder
/// and parameters, and the stream still holds every event after it. Otherwise returns
/// `None`, logging why; the files are deleted only when they can never be used again (a
/// Redis that cannot be reached now may be reachable at the next start).
pub async fn load_redis(
    path: &Path,
    store: &RedisStore,
    identity: &str,
    embedder_id: &str,
    dim: usize,
    params: HnswParams,
) -> Option<(HnswIndex, String)> {
    let position_path = position_path(path);
    if !path.exists() || !position_path.exists() {
        return None;
    }
    let started = std::time::Instant::now();
    let position = std::fs::read(&position_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Position>(&b).map_err(|e| e.to_string()));
    let position = match position {
        Ok(p) if p.identity == identity => p,
        Ok(p) => {
            let why = format!("it is of another Redis or prefix ({})", p.identity);
            return loaded(path, started, Err(why), true).map(|i| (i, String::new()));
        }
        Err(e) => {
            let why = format!("its position file is unreadable: {e}");
            return loaded(path, started, Err(why), true).map(|i| (i, String::new()));
        }
    };
    let covered =
        match store.events_head().await {
            Ok(Some(head)) => {
                match deja_store_redis::stream_id_at_or_before(&head, &position.event) {
                Some(true) => Ok(()),
                Some(false) => Err((
                    format!(
                        "the events stream no longer holds every event after it (oldest {head}, snapshot at {})",
                        position.event
                    ),
                    true,
                )),
                None => Err((format!("unexpected stream ids {head} / {}", position.event), true)),
            }
            }
            Ok(None) => Err((
                "the events stream is gone (Redis lost its data?)".to_string(),
                true,
            )),
            Err(e) => Err((
                format!(
                    "reading the events stream failed: {}",
                    deja_core::ErrorChain(&e)
                ),
                false,
            )),
        };
    if let Err((why, delete)) = covered {
        return loaded(path, started, Err(why), delete).map(|i| (i, String::new()));
    }
    let outcome = HnswIndex::load_snapshot(path, embedder_id, dim, params)
        .map_err(|e| deja_core::ErrorChain(&e).to_string())
        .and_then(|(index, state)| {
            if state == position.tag() {
                Ok(index)
            } else {
                Err("it does not match its position file".to_string())
            }
        });
    loaded(path, started, outcome, true).map(|index| (index, position.event))
}

fn position_path(path: &Path) -> PathBuf {
    path.with_file_name(POSITION_FILE)
}

/// Logs how loading ended; an unusable snapshot is deleted if `delete`.
fn loaded(
    path: &Path,
    started: std::time::Instant,
    outcome: Result<HnswIndex, String>,
    delete: bool,
) -> Option<HnswIndex> {
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
            if delete {
                for p in [path.to_path_buf(), position_path(path)] {
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(error = %e, path = %p.display(), "removing the unusable index snapshot failed")
                        }
                    }
                }
            }
            None
        }
    }
}

impl IndexSnapshot {
    /// The snapshot of an index over the embedded store.
    pub fn new(path: PathBuf, store: Arc<RedbStore>, index: Arc<HnswIndex>) -> IndexSnapshot {
        IndexSnapshot {
            path,
            index,
            agreement: Agreement::Local(store),
            loaded: false,
        }
    }

    /// Records that the index was loaded from the snapshot at start.
    pub fn loaded_at_start(mut self, loaded: bool) -> IndexSnapshot {
        self.loaded = loaded;
        self
    }

    /// Whether the index was loaded from the snapshot at start (else it was rebuilt).
    pub fn was_loaded(&self) -> bool {
        self.loaded
    }

    /// The snapshot of a Redis replica's index, kept current by the follower whose task
    /// and position are given.
    pub fn for_redis(
        path: PathBuf,
        identity: String,
        index: Arc<HnswIndex>,
        follower: &deja_store_redis::EventsFollower,
    ) -> IndexSnapshot {
        IndexSnapshot {
            path,
            index,
            agreement: Agreement::Redis {
                identity,
                position: follower.position.clone(),
                follower: follower.task.abort_handle(),
            },
            loaded: false,
        }
    }

    /// Writes the snapshot. Called once nothing writes any more (after the server has
    /// drained). With the embedded store it is tagged with the write sequence; should a
    /// write still slip in while the index is being written, the sequence moves and the
    /// snapshot is discarded, so a snapshot never hides an entry from the index. With
    /// Redis the follower is stopped first and the snapshot tagged with its position.
    pub fn save(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        match &self.agreement {
            Agreement::Local(store) => {
                let before = store
                    .write_seq()
                    .context("reading the store's write sequence")?;
                self.index
                    .save_snapshot(&self.path, before)
                    .context("writing the index snapshot")?;
                let after = store
                    .write_seq()
                    .context("reading the store's write sequence")?;
                if after != before {
                    std::fs::remove_file(&self.path).ok();
                    anyhow::bail!(
                        "entries changed while the index snapshot was written; discarded"
                    );
                }
            }
            Agreement::Redis {
                identity,
                position,
                follower,
            } => {
                // Stopped, the follower applies nothing more: the index holds every event
                // up to its position (and perhaps some after it, which replay harmlessly).
                follower.abort();
                let position = Position {
                    identity: identity.clone(),
                    event: position.get(),
                };
                self.index
                    .save_snapshot(&self.path, position.tag())
                    .context("writing the index snapshot")?;
                let target = position_path(&self.path);
                let tmp = target.with_extension("json.tmp");
                std::fs::write(&tmp, serde_json::to_vec(&position)?)
                    .and_then(|()| std::fs::rename(&tmp, &target))
                    .with_context(|| format!("writing {}", target.display()))?;
            }
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
