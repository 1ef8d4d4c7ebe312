//! deja's embedded default backend, for a single process with a local data directory:
//!
//! - [`RedbStore`]: the [`deja_core::EntryStore`] on one crash-safe redb file, with a
//!   compact binary entry encoding (int8 vectors) and buffered hit counts;
//! - [`HnswIndex`]: the in-process [`deja_core::VectorIndex`], per-partition int8 vectors,
//!   brute force for small partitions and an HNSW graph for big ones.
//!
//! The index is kept across clean restarts as a snapshot file tagged with the store's
//! write sequence ([`RedbStore::write_seq`]); after a crash, or any write since, the server
//! rebuilds it from the store ([`deja_core::Cache::rebuild_index`]). Nothing here is shared between processes; two
//! servers on one data directory is not supported (redb locks the file).

/// The binary entry encoding, public so other backends (Redis) store the same records.
pub mod codec;
mod hnsw;
mod simd;
mod store;

pub use hnsw::{HnswIndex, HnswParams, SnapshotError};
pub use store::{RedbStore, StoreDurability, DEFAULT_CACHE_BYTES, DEFAULT_HOT_BYTES};
