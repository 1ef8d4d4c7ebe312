//! The three roles a cache is made of. Implementations live in other crates and say their
//! technology in their names (`RedbStore`, `HnswIndex`, `BertEmbedder`).
//!
//! All similarities are cosine similarities in [-1, 1]; backends that speak "distance"
//! convert at their edge. All vectors crossing these traits are unit length.

use async_trait::async_trait;

use crate::entry::{Counters, Entry, EntryId};
use crate::key::{ExactKey, PartitionKey};

/// Turns texts into unit-length vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Stable identity of the model, recorded with every stored vector
    /// (e.g. `local:all-MiniLM-L6-v2`, `openai:text-embedding-3-small`).
    fn id(&self) -> &str;
    /// Length of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// One unit-length vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The parts of `text` this embedder cannot see, in order: what it maps to its
    /// unknown token (most Chinese characters, Thai, ... for an English model) and what
    /// it cuts off past its longest input. Two texts that differ only there get the same
    /// vector, so their similarity says nothing about that difference. Empty when it sees
    /// everything, or cannot tell (a remote model). Required, so a wrapper cannot drop it
    /// by accident.
    fn unseen(&self, text: &str) -> Vec<String>;
    /// The whole words this embedder knows, to tell a typo from another word
    /// ([`crate::verify::Vocabulary`]); `None` when it has no such list (a remote model),
    /// and then no difference is taken for a typo. Required, like [`Embedder::unseen`], so
    /// a wrapper cannot drop it by accident.
    fn vocabulary(&self) -> Option<&crate::verify::Vocabulary>;
}

/// Reads two prompts together and says how likely the answer cached for the first answers
/// the second: a cross-encoder ("pair model"), asked only about candidates the vector
/// search found and the cheap checks let through. Optional: a cache without one decides
/// on similarity and the verifier's features alone.
#[async_trait]
pub trait PairScorer: Send + Sync + std::fmt::Debug {
    /// Stable identity of the pair model (recorded in evaluations and the verifier it
    /// was stacked with).
    fn id(&self) -> &str;
    /// Whether the model was trained on prompts in many languages and reads any text its
    /// tokenizer covers (the multilingual pair model on multilingual-e5-small): then it is
    /// asked whatever the prompts' language. Otherwise (the MiniLM pair model learned
    /// English words) it is asked only about prompts whose words the embedder's vocabulary
    /// reads ([`crate::verify::Vocabulary::reads_both`]). Required, so a wrapper cannot
    /// drop it by accident.
    fn multilingual(&self) -> bool;
    /// One logit (log-odds of "the same request") per `(cached, query)` pair, in order.
    async fn score(&self, pairs: &[(String, String)]) -> Result<Vec<f32>, EmbedError>;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model not found at {path}; install it with `{install_hint}`")]
    ModelMissing { path: String, install_hint: String },
    #[error("embedding model at {path} is invalid: {reason}")]
    ModelInvalid { path: String, reason: String },
    #[error("tokenizer failed")]
    Tokenizer(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("embedding upstream {url} failed: {reason}")]
    Upstream { url: String, reason: String },
    #[error("embedder returned {got} vectors of dimension {dim} for {want} texts")]
    Shape { want: usize, got: usize, dim: usize },
    #[error("embedder worker is gone")]
    WorkerGone,
}

/// Persistent home of entries, looked up by id or by exact key.
// `len` is a backend round-trip; an `is_empty` beside it would only duplicate it.
#[allow(clippy::len_without_is_empty)]
#[async_trait]
pub trait EntryStore: Send + Sync {
    /// The entry stored under this exact key, if any.
    async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError>;
    async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError>;
    /// Stores an entry. An entry already stored under the same exact key is replaced,
    /// and its id is returned so the caller can drop it from the index.
    async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError>;
    /// [`EntryStore::put`] for many entries, in order, returning what each one replaced.
    /// Backends that can should write the batch in one transaction (bulk import writes
    /// thousands of entries a second this way); this default stores them one by one, so a
    /// failure may leave a prefix of the batch stored — harmless for an import, which can
    /// be run again (entries replace their namesakes).
    async fn put_many(&self, entries: &[Entry]) -> Result<Vec<Option<EntryId>>, StoreError> {
        let mut replaced = Vec::with_capacity(entries.len());
        for e in entries {
            replaced.push(self.put(e).await?);
        }
        Ok(replaced)
    }
    /// Removes an entry; returns it if it existed.
    async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError>;
    /// Notes a hit. Must be cheap (called on every hit): implementations may buffer and
    /// write in batches; a crash may lose the last moments of hit counts, nothing else.
    async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError>;
    /// Visits every entry's (id, partition, embedder id, vector) in storage order; used to
    /// rebuild an in-process index at start.
    async fn scan_vectors(
        &self,
        visit: &mut (dyn for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]) + Send),
    ) -> Result<(), StoreError>;
    async fn len(&self) -> Result<u64, StoreError>;
    /// Bytes the store occupies, when it can tell without a scan (the embedded store: its
    /// file on disk); `None` when it cannot.
    async fn stored_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Ids of the entries carrying `tag`, from an index (not a scan of every entry).
    async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError>;
    /// Visits every entry's metadata (hit counts current), without copying its answer or
    /// vector; used to select entries to invalidate, expire or evict. (The reference and
    /// the metadata share one lifetime because `async_trait` would otherwise name the
    /// reference's elided lifetime after the method's, which no caller could satisfy.)
    async fn scan_meta(
        &self,
        visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
    ) -> Result<(), StoreError>;
    /// Removes every listed entry in one transaction: afterwards none of them is found by
    /// id, exact key or tag. Returns, for each entry that existed, its id, partition and
    /// whether it had a vector (so the caller can drop it from the index). Absent ids are
    /// skipped.
    async fn remove_many(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError>;
    /// Adds to the persisted counters.
    async fn add_counters(&self, delta: &Counters) -> Result<(), StoreError>;
    async fn counters(&self) -> Result<Counters, StoreError>;
    /// Makes everything written so far durable (buffered hit counts included).
    async fn flush(&self) -> Result<(), StoreError>;
    /// Whether the store can write, for a health check. Informational: a store that cannot
    /// write still serves what it can (a failing cache bypasses, it never fails a request).
    /// Backends that can tell override it; this default always says ok.
    async fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
    /// A named piece of the engine's own learned state (the error budget's labels), kept
    /// with the entries so it survives a restart and, in a shared store, is seen by every
    /// replica. `None` when nothing was saved under `name`. Backends that cannot keep it
    /// use these defaults: nothing is kept.
    async fn load_state(&self, _name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    /// Replaces what is saved under `name`.
    async fn save_state(&self, _name: &str, _bytes: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Adds `delta` to the counters kept under `name` (a counter not yet kept starts at 0)
    /// and returns every counter of `name` after the addition, its own and those other
    /// replicas sharing the store added: the error budget's label counts, which every
    /// replica adds to and each reads back whole. Additions are never lost to a concurrent
    /// one (each is one atomic increment in a shared store, one transaction in a local
    /// one). `None` when the backend keeps no counters (these defaults).
    async fn add_state_counts(
        &self,
        _name: &str,
        _delta: &[(String, i64)],
    ) -> Result<Option<Vec<(String, i64)>>, StoreError> {
        Ok(None)
    }
}

/// What [`EntryStore::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// Writes fail (answers are served but not stored); `last_error` is the last one's
    /// error chain. Reads may still work.
    Degraded {
        last_error: String,
    },
}

/// What [`EntryStore::scan_meta`] shows of an entry: everything but the answer, the
/// prompt and the vector, borrowed from the stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta<'a> {
    pub id: EntryId,
    pub partition: PartitionKey,
    pub model: &'a str,
    pub namespace: &'a str,
    pub category: &'a str,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    pub hit_count: u64,
    pub has_vector: bool,
    pub tags: Vec<&'a str>,
    /// Bytes of the prompt plus the answer (body, or the sum of its chunks): what
    /// `max_bytes` counts. Approximate by design: the vector, labels and the backend's own
    /// overhead are not included.
    pub size_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path} could not be opened")]
    Open {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store backend {backend} failed")]
    Backend {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored entry {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub id: EntryId,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Approximate nearest-neighbour search over prompt vectors, scoped to one partition.
#[allow(clippy::len_without_is_empty)]
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// The embedder whose vectors this index holds, and their dimension.
    fn embedder_id(&self) -> &str;
    fn dim(&self) -> usize;
    /// Adds (or replaces) a vector. A vector of the wrong dimension is an error.
    async fn insert(
        &self,
        partition: PartitionKey,
        id: EntryId,
        vector: &[f32],
    ) -> Result<(), IndexError>;
    /// Removes a vector; removing an absent id is not an error.
    async fn remove(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError>;
    /// Up to `k` nearest vectors in `partition`, most similar first.
    async fn search(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbor>, IndexError>;
    /// [`Self::search`] for a caller that can use only neighbours at or above `floor`: an
    /// approximate index whose search found none searches wider (within a bound) before it
    /// answers, so a servable entry is not lost to the search's width. The default is
    /// [`Self::search`], right for an exact index.
    async fn search_near(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        floor: f32,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let _ = floor;
        self.search(partition, query, k).await
    }
    async fn len(&self) -> Result<u64, IndexError>;
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("vector of dimension {got} given to an index of dimension {want}")]
    Dimension { want: usize, got: usize },
    #[error("vector from embedder {got} given to an index of embedder {want}")]
    Embedder { want: String, got: String },
    #[error("index backend {backend} failed")]
    Backend {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
