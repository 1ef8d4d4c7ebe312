//! deja's shared backend on Redis, for several deja replicas behind a load balancer:
//!
//! - [`RedisStore`]: the [`deja_core::EntryStore`] on a standalone Redis (any Redis 7,
//!   Valkey) or a Redis Cluster, storing the same binary records as the embedded store
//!   (`deja_store_local::codec`, int8 vectors), and announcing every store and removal
//!   in a Redis Stream;
//! - [`RedisStore::follow_events`]: keeps a replica's in-process index current from that
//!   stream (`follow.rs`);
//! - [`RedisSearchIndex`]: the [`deja_core::VectorIndex`] on Redis Stack's query engine
//!   (`FT.SEARCH … KNN`), shared by every replica, for teams that run it (`search.rs`).
//!
//! Each replica keeps its own in-process vector index (`deja_store_local::HnswIndex`),
//! rebuilt from this store at start, or loaded from its snapshot and caught up from the
//! stream. Nothing here reads configuration: the server picks
//! this backend and passes its options.

mod conn;
mod follow;
mod search;
mod store;

pub use follow::{stream_id_at_or_before, EventsFollower, EventsPosition};
pub use search::RedisSearchIndex;
pub use store::{RedisStore, RedisStoreOptions, EVENTS_MAXLEN};
