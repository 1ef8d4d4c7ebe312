//! The lookup/insert flow: exact first (no embedding computed), then semantic within the
//! partition, then miss. One write path ([`Cache::insert`]) keeps store and index
//! consistent: the store is written first and is the source of truth; the index only
//! points at entries, and every index candidate is re-read from the store before it is
//! served, so an index that is ahead of or behind the store can never serve a wrong or
//! removed entry.
//!
//! This file holds the engine's types and the [`Cache`] itself; its work is split by
//! concern, each file an `impl Cache` block over the same state:
//!
//! - `lookup.rs`: exact, then semantic candidates through the checks, then miss;
//! - `insert.rs`: the one write path, and restores (import, replication);
//! - `invalidate.rs`: removals, one entry or every entry a selector names;
//! - `lifecycle.rs`: expiry, cold entries and capacity limits;
//! - `rebuild.rs`: start-up work (category examples, the index from the store);
//! - `label.rs`: the error budget's labels, audits and verdicts, and its persistence;
//! - `stale.rs`: the staleness job's candidates and verdicts.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::budget::{Budgets, Calibration};
use crate::clock::Clock;
use crate::entry::{Answer, Counters, Entry, EntryId, Usage};
use crate::key::PartitionKey;
use crate::policy::{CategorySpec, Policy, PolicyError};
use crate::traits::{EmbedError, Embedder, EntryStore, IndexError, StoreError, VectorIndex};
use crate::verify::model::{Model, ModelError};
use crate::verify::RejectReason;

mod alias;
mod insert;
mod invalidate;
mod label;
mod lifecycle;
mod lookup;
mod rebuild;
mod stale;
pub use stale::StaleCheck;

/// Engine settings that apply to every request.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Least cosine similarity for a semantic hit (the `default` category's). With the
    /// learned verifier this is the candidate gate; `min_confidence` decides.
    pub min_similarity: f32,
    /// Least probability from the learned verifier for a semantic hit (the `default`
    /// category's); `None`: the model's own recommendation.
    pub min_confidence: Option<f32>,
    /// Entries older than this are never served; `None` keeps them until removed (the
    /// `default` category's).
    pub ttl_secs: Option<u64>,
    /// Categories besides `default`, with their own threshold, TTL and cacheability.
    pub categories: Vec<CategorySpec>,
    /// Least similarity to a category's example prompt to put a prompt in that category.
    pub examples_min_similarity: f32,
    /// How many index candidates to examine per semantic lookup.
    pub candidates: usize,
    /// How semantic candidates are verified before they are served.
    pub verify: VerifyMode,
    /// The learned verifier to use instead of the shipped one (for evaluating a freshly
    /// trained model).
    pub verifier: Option<Arc<Model>>,
    /// The pair model (cross-encoder), when one is loaded. It is asked only by a verifier
    /// stacked with it (same id), about candidates the cheaper checks let through.
    pub pair_scorer: Option<Arc<dyn crate::PairScorer>>,
    /// The verifier stacked with the pair model to use instead of the shipped one (for
    /// evaluating a freshly trained one).
    pub pair_verifier: Option<Arc<Model>>,
    /// The error budget: the largest share of semantic hits that may be wrong (δ), for
    /// every category without its own. With a budget, misses are labelled by comparing
    /// answers ([`Cache::label`]) and a candidate is served where the labels certify it
    /// ([`crate::budget`]); until they do, as without one.
    pub max_false_hit_rate: Option<f64>,
    /// Least cosine of two answers' embeddings for them to agree
    /// ([`crate::verify::answer`]); `None`: the embedder family's default.
    pub answer_min_similarity: Option<f32>,
    /// Most requests remembered as aliases of the entry a semantic hit served them, so a
    /// repeat is served without embedding (`engine/alias.rs`); 0 keeps none.
    pub max_aliases: usize,
    /// A second embedder for the prompts that are not English, with its own index; `None`:
    /// the first embedder embeds every prompt.
    pub other_languages: Option<OtherLanguages>,
}

/// The embedding space of the prompts that are not English: a multilingual embedder, its
/// own index, and its pair model. A prompt goes there when the first embedder's vocabulary
/// does not tell it English (`Vocabulary::route`): it is embedded, searched,
/// verified (by the verifiers shipped for that embedder and pair model) and indexed
/// there, and its entry records that embedder. English prompts stay with the first
/// embedder, which reads English better (docs/hit-quality.md). A prompt is only ever
/// compared with entries of its own space; the language veto already refuses pairs in two
/// languages.
#[derive(Clone)]
pub struct OtherLanguages {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<dyn VectorIndex>,
    /// Its pair model, asked as the first embedder's is.
    pub pair_scorer: Option<Arc<dyn crate::PairScorer>>,
    /// [`CacheOptions::examples_min_similarity`] for this embedder's cosines.
    pub examples_min_similarity: f32,
}

impl std::fmt::Debug for OtherLanguages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherLanguages")
            .field("embedder", &self.embedder.id())
            .field("index", &self.index.embedder_id())
            .field("pair_scorer", &self.pair_scorer)
            .field("examples_min_similarity", &self.examples_min_similarity)
            .finish()
    }
}

/// Whether semantic candidates are verified before they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Veto rules, then the learned verifier's probability against the category's
    /// `min_confidence` ([`crate::verify::verify_model`]; the default).
    Model,
    /// Reject candidates that differ in numbers, negation, actions, ... ([`crate::verify::verify`]).
    Rules,
    /// Serve on similarity alone (for measuring what verification adds).
    Off,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            min_similarity: DEFAULT_GATE,
            min_confidence: None,
            ttl_secs: None,
            categories: Vec::new(),
            examples_min_similarity: 0.7,
            candidates: 4,
            verify: VerifyMode::Model,
            verifier: None,
            pair_scorer: None,
            pair_verifier: None,
            max_false_hit_rate: None,
            answer_min_similarity: None,
            max_aliases: DEFAULT_MAX_ALIASES,
            other_languages: None,
        }
    }
}

/// The default of [`CacheOptions::max_aliases`]: about 10 MB at most.
pub const DEFAULT_MAX_ALIASES: usize = 100_000;

/// The default candidate gate (`min_similarity`) with the learned verifier: the shipped
/// model's (see [`crate::verify::model`]).
pub const DEFAULT_GATE: f32 = 0.8;

/// Whether a request may be answered by a similar prompt, or only by the identical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemanticMode {
    Allowed,
    /// For requests whose meaning is not carried by a last user message alone (e.g. the
    /// conversation ends in tool results), or whose prompt is empty.
    ExactOnly,
}

/// One cache lookup.
#[derive(Debug, Clone)]
pub struct LookupRequest<'a> {
    /// The category the client named (e.g. a request header); unknown names are ignored.
    pub category: Option<&'a str>,
    pub partition: PartitionKey,
    /// The normalised prompt (see [`crate::normalize_prompt`]).
    pub prompt: &'a str,
    pub semantic: SemanticMode,
    /// A per-request threshold; it can only raise the configured one.
    pub min_similarity: Option<f32>,
    /// Accept only entries younger than this (from `Cache-Control: max-age`).
    pub max_age_secs: Option<u64>,
}

impl<'a> LookupRequest<'a> {
    /// A lookup of `prompt` in `partition` without client controls: a similar prompt may
    /// answer it, no category hint, the configured threshold, any age.
    pub fn new(partition: PartitionKey, prompt: &'a str) -> Self {
        Self {
            category: None,
            partition,
            prompt,
            semantic: SemanticMode::Allowed,
            min_similarity: None,
            max_age_secs: None,
        }
    }
}

/// Why a request was not looked up or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    StoreError,
    IndexError,
    EmbedError,
    /// The request's category is configured as not cacheable (e.g. transactions).
    UncacheableCategory,
}

impl BypassReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            BypassReason::StoreError => "store-error",
            BypassReason::IndexError => "index-error",
            BypassReason::EmbedError => "embed-error",
            BypassReason::UncacheableCategory => "category",
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    ExactHit(Entry),
    SemanticHit {
        entry: Entry,
        similarity: f32,
        /// Served through an alias: an earlier identical request was served this entry, so
        /// no embedding was computed.
        aliased: bool,
        /// Served under an error budget: what to label if this hit is audited
        /// ([`Cache::audit`]).
        audit: Option<LabelTicket>,
    },
    /// Nothing servable. `vector` is the prompt's embedding when one was computed, so the
    /// insert that follows the upstream call does not compute it again; `nearest` is the
    /// best similarity of a candidate not served (below the threshold, or rejected), and
    /// `nearest_id` that entry; `rejected` is set when a candidate above the threshold
    /// failed verification; `threshold` is the similarity a hit needed (`None`: no
    /// semantic search was made).
    Miss {
        vector: Option<Vec<f32>>,
        nearest: Option<f32>,
        nearest_id: Option<EntryId>,
        rejected: Option<RejectReason>,
        threshold: Option<f32>,
        /// The request's category, to be stored with its answer.
        category: String,
        /// With an error budget: the candidates to label once the upstream has answered.
        label: Option<LabelTicket>,
    },
    /// A backend failed; the caller should go upstream and not store.
    Bypass(BypassReason),
}

/// What a miss leaves for labelling under an error budget: the candidates the search found
/// (best first, down to [`SAME_REQUEST_FLOOR`]), so that once the upstream has answered,
/// the first one the hard checks let through is compared with the fresh answer
/// ([`Cache::label`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelTicket {
    pub category: String,
    pub candidates: Vec<Labelled>,
}

/// A candidate of a [`LabelTicket`]: what its label will say besides agreed or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub id: EntryId,
    pub similarity: f32,
    /// Neighbours answering the same (see [`crate::budget`]).
    pub support: u8,
    /// The verifier accepted it (only known of the candidate the lookup decided on).
    pub vouched: bool,
}

/// One label [`Cache::label`] recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub candidate: EntryId,
    pub similarity: f32,
    pub support: u8,
    pub vouched: bool,
    /// Whether the stored answer agreed with the upstream's: serving it would have been
    /// right.
    pub agreed: bool,
}

/// Where a lookup spent its time, by stage. Stages it did not reach stay zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Store reads: the exact key, and each semantic candidate's entry.
    pub store: Duration,
    /// Embedding the prompt.
    pub embed: Duration,
    /// The vector index search.
    pub search: Duration,
    /// Verifying candidates above the threshold.
    pub verify: Duration,
}

/// An answer to store.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub partition: PartitionKey,
    pub prompt: String,
    pub model: String,
    pub answer: Answer,
    pub usage: Usage,
    pub semantic: SemanticMode,
    /// The prompt's embedding if the lookup computed it.
    pub vector: Option<Vec<f32>>,
    /// The category the lookup found (`None`: `default`).
    pub category: Option<String>,
}

/// Who an entry belongs to and what it is about, recorded with it so it can be
/// invalidated later. Not part of its key: two requests differing only in labels share an
/// entry (the later answer replaces the earlier, with its labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryLabels {
    /// The tenant label (`None`: stored as the empty string).
    pub namespace: Option<String>,
    pub tags: Vec<String>,
}

/// Which entries [`Cache::invalidate`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidate {
    /// Every entry carrying this tag (found through the store's tag index).
    Tag(String),
    /// Every entry answered by this model.
    Model(String),
    /// Every entry under this tenant label (`key:<hash>` with its namespaces, `ns:<name>`
    /// under every principal, ...; see [`crate::entry::tenant_matches`]).
    Namespace(String),
    Id(EntryId),
    /// Every entry created `secs` or more seconds ago.
    OlderThan {
        secs: u64,
    },
    All,
}

/// The name the error budget's learned state is saved under ([`EntryStore::save_state`]).
pub const CALIBRATION_STATE: &str = "calibration";

/// The name the error budget's label and audit counts are kept under, shared by the
/// replicas of one store ([`EntryStore::add_state_counts`]).
pub const CALIBRATION_COUNTS: &str = "calibration";

/// Most candidates' answers one miss compares with the fresh answer ([`Cache::label`]),
/// looking for the answer group the new entry belongs to: each costs a store read and,
/// unless the answers are identical or structured, one embedding of the stored answer.
pub const LABELS_PER_MISS: usize = 4;

/// Least similarity at which a candidate below the threshold is still checked for being
/// the same request in other wording ([`crate::verify::same_request`]).
pub const SAME_REQUEST_FLOOR: f32 = 0.5;

/// How many ids [`Cache::invalidate`] hands the store per transaction: large enough that
/// a typical invalidation is one transaction, small enough that removing millions of
/// entries does not hold them all in one transaction's memory.
const INVALIDATE_BATCH: usize = 10_000;

/// Which entries [`Cache::enforce_capacity`] removes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eviction {
    /// Least recently used: the oldest last hit (or creation, if never hit) goes first.
    #[default]
    Lru,
    /// Least frequently used: the fewest hits go first; among equals, the oldest entry.
    Lfu,
}

/// How large the cache may grow, and how long an entry nobody asks for is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapacityLimits {
    /// Most entries kept (chat answers and embedding items alike).
    pub max_entries: Option<u64>,
    /// Most bytes of prompts plus answers kept (see [`crate::EntryMeta::size_bytes`]).
    pub max_bytes: Option<u64>,
    pub eviction: Eviction,
    /// Entries not hit (or, if never hit, not created) for this long are removed by
    /// [`Cache::maintain`].
    pub cold_after_secs: Option<u64>,
}

/// What one [`Cache::maintain`] pass removed, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaintenanceReport {
    pub expired: u64,
    pub cold: u64,
    pub evicted: u64,
}

impl MaintenanceReport {
    pub fn total(&self) -> u64 {
        self.expired + self.cold + self.evicted
    }
}

/// An over-limit cache is trimmed to this share of its limit, so that it is not trimmed
/// again after every few inserts.
const EVICT_TO_PERCENT: u64 = 95;

/// Why a cache could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("loading the learned verifier")]
    Verifier(#[source] &'static ModelError),
    #[error("max_false_hit_rate must be above 0 and below 0.5, got {0}")]
    Budget(f64),
    #[error("the other languages' embedder must differ from the first one (both are {0})")]
    SameEmbedder(String),
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("index failed")]
    Index(#[from] IndexError),
    #[error("embedder failed")]
    Embed(#[from] EmbedError),
}

/// The cache engine. Cheap to share (`Arc` inside); pass it explicitly.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn EntryStore>,
    /// The embedding spaces: the first embedder's, then the other languages' if set.
    spaces: Vec<Space>,
    clock: Arc<dyn Clock>,
    options: CacheOptions,
    /// Replaced once, when [`Cache::embed_category_examples`] has embedded the examples.
    policy: parking_lot::RwLock<Arc<Policy>>,
    /// Counted since the last [`Cache::flush_counters`].
    pending: Mutex<Counters>,
    /// The error budget's labels and thresholds, when a budget is set.
    calibration: Option<Arc<Calibration>>,
    /// Requests earlier semantic hits answered, by exact key.
    aliases: alias::Aliases,
}

/// One embedder, the index of the vectors it made, and the verifiers fitted to its
/// cosines.
struct Space {
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn Embedder>,
    /// The learned verifier, when `options.verify` is [`VerifyMode::Model`].
    verifier: Option<Arc<Model>>,
    /// The second path of [`VerifyMode::Model`]: the pair model and the verifier stacked
    /// with it, when that pair model is loaded.
    pair: Option<(Arc<Model>, Arc<dyn crate::PairScorer>)>,
    examples_min_similarity: f32,
}

impl Space {
    /// Checks that `index` holds `embedder`'s vectors and loads the verifiers: `verifier`
    /// and `pair_verifier` replace the shipped ones (for evaluating fresh fits).
    fn new(
        index: Arc<dyn VectorIndex>,
        embedder: Arc<dyn Embedder>,
        verify: VerifyMode,
        verifier: Option<&Arc<Model>>,
        pair_scorer: Option<&Arc<dyn crate::PairScorer>>,
        pair_verifier: Option<&Arc<Model>>,
        examples_min_similarity: f32,
    ) -> Result<Space, BuildError> {
        if index.embedder_id() != embedder.id() {
            return Err(IndexError::Embedder {
                want: index.embedder_id().to_string(),
                got: embedder.id().to_string(),
            }
            .into());
        }
        if index.dim() != embedder.dim() {
            return Err(IndexError::Dimension {
                want: index.dim(),
                got: embedder.dim(),
            }
            .into());
        }
        let verifier = match (verify, verifier) {
            (VerifyMode::Model, Some(m)) => Some(m.clone()),
            (VerifyMode::Model, None) => Some(Arc::new(
                Model::shipped_for_embedder(embedder.id())
                    .map_err(BuildError::Verifier)?
                    .clone(),
            )),
            _ => None,
        };
        // The pair model is asked only by the verifier stacked with it.
        let pair = match (verify, pair_scorer) {
            (VerifyMode::Model, Some(scorer)) => {
                let stacked = match pair_verifier {
                    Some(m) => Arc::clone(m),
                    None => Arc::new(
                        Model::shipped_for(Some(scorer.id()))
                            .map_err(BuildError::Verifier)?
                            .clone(),
                    ),
                };
                (stacked.pair_model() == Some(scorer.id())).then(|| (stacked, Arc::clone(scorer)))
            }
            _ => None,
        };
        Ok(Space {
            index,
            embedder,
            verifier,
            pair,
            examples_min_similarity,
        })
    }
}

impl Cache {
    /// Fails if the index was built for another embedder or dimension: mixing vectors of
    /// two models gives meaningless similarities.
    pub fn new(
        store: Arc<dyn EntryStore>,
        index: Arc<dyn VectorIndex>,
        embedder: Arc<dyn Embedder>,
        clock: Arc<dyn Clock>,
        options: CacheOptions,
    ) -> Result<Self, BuildError> {
        let mut spaces = vec![Space::new(
            index,
            embedder,
            options.verify,
            options.verifier.as_ref(),
            options.pair_scorer.as_ref(),
            options.pair_verifier.as_ref(),
            options.examples_min_similarity,
        )?];
        if let Some(other) = &options.other_languages {
            if other.embedder.id() == spaces[0].embedder.id() {
                return Err(BuildError::SameEmbedder(other.embedder.id().to_string()));
            }
            spaces.push(Space::new(
                Arc::clone(&other.index),
                Arc::clone(&other.embedder),
                options.verify,
                None,
                other.pair_scorer.as_ref(),
                None,
                other.examples_min_similarity,
            )?);
        }
        let policy = Policy::new(
            options.min_similarity,
            options.min_confidence,
            options.ttl_secs,
            options.categories.clone(),
        )?;
        let budgets = Budgets {
            default: options.max_false_hit_rate,
            categories: options
                .categories
                .iter()
                .filter_map(|c| Some((c.name.clone(), c.max_false_hit_rate?)))
                .collect(),
        };
        if let Some(bad) = budgets
            .default
            .iter()
            .chain(budgets.categories.values())
            .find(|d| !crate::budget::valid_rate(**d))
        {
            return Err(BuildError::Budget(*bad));
        }
        let calibration = budgets.any().then(|| Arc::new(Calibration::new(budgets)));
        let aliases = alias::Aliases::new(options.max_aliases);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                spaces,
                clock,
                options,
                policy: parking_lot::RwLock::new(Arc::new(policy)),
                pending: Mutex::new(Counters::default()),
                calibration,
                aliases,
            }),
        })
    }

    /// The error budget's labels and thresholds, when a budget is set.
    pub fn calibration(&self) -> Option<&Arc<Calibration>> {
        self.inner.calibration.as_ref()
    }

    pub fn options(&self) -> &CacheOptions {
        &self.inner.options
    }

    /// The categories in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.inner.policy.read())
    }

    pub fn store(&self) -> &Arc<dyn EntryStore> {
        &self.inner.store
    }

    /// The first embedder (of English prompts, when another embeds the other languages).
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.spaces[0].embedder
    }

    /// The embedder of `prompt` (normalised): the first one, unless the other languages
    /// have their own and the first one's vocabulary does not tell `prompt` English.
    pub fn embedder_for(&self, prompt: &str) -> &Arc<dyn Embedder> {
        &self.space_for(prompt).embedder
    }

    /// Every embedder and its index, the first one first.
    pub fn indexes(&self) -> impl Iterator<Item = (&Arc<dyn Embedder>, &Arc<dyn VectorIndex>)> {
        self.inner.spaces.iter().map(|s| (&s.embedder, &s.index))
    }

    /// The embedding space of `prompt`, its position, and whether the prompt's language
    /// was told (by its script or function words) rather than guessed from its words
    /// ([`crate::verify::Vocabulary::route`]).
    fn space_at(&self, prompt: &str) -> (usize, &Space, bool) {
        let spaces = &self.inner.spaces;
        if spaces.len() < 2 {
            return (0, &spaces[0], true);
        }
        let route = match spaces[0].embedder.vocabulary() {
            Some(v) => v.route(prompt),
            None => return (0, &spaces[0], true),
        };
        if route.english {
            (0, &spaces[0], route.told)
        } else {
            (1, &spaces[1], route.told)
        }
    }

    fn space_for(&self, prompt: &str) -> &Space {
        self.space_at(prompt).1
    }

    /// The space whose index holds `entry`'s vector: none without a vector, or for a
    /// vector of an embedder this cache does not run.
    fn indexed_in(&self, entry: &Entry) -> Option<&Space> {
        self.space_of(&entry.embedder_id)
            .filter(|_| !entry.vector.is_empty())
    }

    /// The space whose embedder made vectors of `embedder_id`, if any.
    fn space_of(&self, embedder_id: &str) -> Option<&Space> {
        self.inner
            .spaces
            .iter()
            .find(|s| s.embedder.id() == embedder_id)
    }

    /// How many requests are remembered as aliases of the entry that answered them.
    pub fn alias_count(&self) -> usize {
        self.inner.aliases.len()
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Counts something the engine does not see itself (upstream calls, embedding-cache
    /// traffic, bypasses decided by the caller).
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.inner.pending.lock());
    }

    /// Persists counters accumulated since the last flush, and the store's buffered writes.
    pub async fn flush_counters(&self) -> Result<(), StoreError> {
        let delta = std::mem::take(&mut *self.inner.pending.lock());
        if !delta.is_zero() {
            if let Err(e) = self.inner.store.add_counters(&delta).await {
                // Put them back so they are not lost; the next flush tries again.
                self.inner.pending.lock().add(&delta);
                return Err(e);
            }
        }
        self.inner.store.flush().await
    }

    /// Persisted counters plus those not yet flushed.
    pub async fn counters(&self) -> Result<Counters, StoreError> {
        let mut c = self.inner.store.counters().await?;
        c.add(&self.inner.pending.lock());
        Ok(c)
    }
}

/// The TTL of the category an entry was stored in; a category no longer configured
/// follows `default`.
fn category_ttl_secs(policy: &Policy, category: &str) -> Option<u64> {
    let id = policy.by_name(category).unwrap_or(policy.default_id());
    policy.get(id).ttl_secs
}

/// Whether something that happened at `at_ms` is less than `secs` old at `now_ms`.
fn younger_than(at_ms: u64, now_ms: u64, secs: u64) -> bool {
    now_ms.saturating_sub(at_ms) < secs.saturating_mul(1000)
}

/// When an entry was last useful: its last hit, or its creation if it was never hit.
fn last_used_ms(m: &crate::traits::EntryMeta<'_>) -> u64 {
    m.last_hit_ms.max(m.created_at_ms)
}

/// Formats an error with its `source()` chain, for logs.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
