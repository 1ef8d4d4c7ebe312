//! deja's embedded default backend, for a single process with a local data directory:
//!
//! - [`RedbStore`]: the [`deja_core::EntryStore`] on one crash-safe redb file, with a
//!   compact binary entry encoding (int8 vectors) and buffered hit counts;
//! - [`HnswIndex`]: the in-process [`deja_core::VectorIndex`], per-partition int8 vectors,
//!   brute force for small partitions and an HNSW graph for big ones.
//!
//! The index is not persisted: the server rebuilds it from the store at start
//! ([`deja_core::Cache::rebuild_index`]). Nothing here is shared between processes; two
//! servers on one data directory is not supported (redb locks the file).

/// The binary entry encoding, public so other backends (Redis) store the same records.
pub mod codec;
mod hnsw;
mod simd;
mod store;

pub use hnsw::{HnswIndex, HnswParams};
pub use store::{RedbStore, StoreDurability};
