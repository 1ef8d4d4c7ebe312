//! deja's engine: what a cached request is keyed by, what an entry holds, the policy that
//! decides whether a stored answer may be served, and the lookup/insert flow over three
//! roles that backends implement: [`Embedder`], [`EntryStore`] and [`VectorIndex`].
//!
//! This crate knows nothing of HTTP, OpenAI JSON, files or any particular backend; the
//! server composes it with concrete implementations.

pub mod budget;
pub mod clock;
pub mod engine;
pub mod entry;
pub mod key;
pub mod policy;
pub mod rules;
pub mod traits;
pub mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    BuildError, BypassReason, Cache, CacheOptions, CapacityLimits, EntryLabels, ErrorChain,
    Eviction, InsertError, Invalidate, LabelTicket, Labelled, Lookup, LookupRequest,
    MaintenanceReport, NewEntry, Observation, OtherLanguages, SemanticMode, StageTimes, StaleCheck,
    VerifyMode, DEFAULT_MAX_ALIASES,
};
pub use entry::{tenant_matches, Answer, Counters, Entry, EntryId, Usage};
pub use key::{normalize_prompt, ExactKey, KeyBuilder, PartitionKey};
pub use policy::{Applied, CategoryId, CategorySpec, Policy, DEFAULT_CATEGORY};
pub use traits::{
    EmbedError, Embedder, EntryMeta, EntryStore, IndexError, Neighbor, PairScorer, StoreError,
    StoreHealth, VectorIndex,
};
pub use verify::RejectReason;
