//! The lookup/insert flow: exact first (no embedding computed), then semantic within the
//! partition, then miss. One write path ([`Cache::insert`]) keeps store and index
//! consistent: the store is written first and is the source of truth; the index only
//! points at entries, and every index candidate is re-read from the store before it is
//! served, so an index that is ahead of or behind the store can never serve a wrong or
//! removed entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::budget::{Budgets, Calibration, Certified};
use crate::clock::Clock;
use crate::entry::{Answer, Counters, Entry, EntryId, Usage};
use crate::key::{ExactKey, PartitionKey};
use crate::policy::{CategoryId, CategorySpec, Policy, PolicyError, DEFAULT_CATEGORY};
use crate::traits::{EmbedError, Embedder, EntryStore, IndexError, StoreError, VectorIndex};
use crate::verify::model::{Model, ModelError};
use crate::verify::RejectReason;

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
        }
    }
}

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
    /// Entry, similarity, and support (see [`crate::budget`]).
    pub candidates: Vec<(EntryId, f32, u8)>,
}

/// One label [`Cache::label`] recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub candidate: EntryId,
    pub similarity: f32,
    pub support: u8,
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

/// The name the error budget's labels are saved under ([`EntryStore::save_state`]).
pub const CALIBRATION_STATE: &str = "calibration";

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
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn Embedder>,
    clock: Arc<dyn Clock>,
    options: CacheOptions,
    /// The learned verifier, when `options.verify` is [`VerifyMode::Model`].
    verifier: Option<Arc<Model>>,
    /// The second path of [`VerifyMode::Model`]: the pair model and the verifier stacked
    /// with it, when that pair model is loaded.
    pair: Option<(Arc<Model>, Arc<dyn crate::PairScorer>)>,
    /// Replaced once, when [`Cache::embed_category_examples`] has embedded the examples.
    policy: parking_lot::RwLock<Arc<Policy>>,
    /// Counted since the last [`Cache::flush_counters`].
    pending: Mutex<Counters>,
    /// The error budget's labels and thresholds, when a budget is set.
    calibration: Option<Arc<Calibration>>,
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
        let verifier = match (&options.verify, &options.verifier) {
            (VerifyMode::Model, Some(m)) => Some(m.clone()),
            (VerifyMode::Model, None) => Some(Arc::new(
                Model::shipped_for_embedder(embedder.id())
                    .map_err(BuildError::Verifier)?
                    .clone(),
            )),
            _ => None,
        };
        // The pair model is asked only by the verifier stacked with it.
        let pair = match (&options.verify, &options.pair_scorer) {
            (VerifyMode::Model, Some(scorer)) => {
                let stacked = match &options.pair_verifier {
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
        let policy = Policy::new(
            options.min_similarity,
            options.min_confidence,
            options.ttl_secs,
            options.categories.clone(),
            options.examples_min_similarity,
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
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                index,
                embedder,
                clock,
                options,
                verifier,
                pair,
                policy: parking_lot::RwLock::new(Arc::new(policy)),
                pending: Mutex::new(Counters::default()),
                calibration,
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

    /// Embeds the categories' example prompts so prompts can be classified by their
    /// nearest example. Call once at start; until then only hints and keywords classify.
    pub async fn embed_category_examples(&self) -> Result<usize, EmbedError> {
        let policy = self.policy();
        let examples = policy.example_texts();
        if examples.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> = examples
            .iter()
            .map(|(_, t)| crate::key::normalize_prompt(t))
            .collect();
        let vectors = self.inner.embedder.embed(&texts).await?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::Shape {
                want: texts.len(),
                got: vectors.len(),
                dim: self.inner.embedder.dim(),
            });
        }
        let mut updated = (*policy).clone();
        updated.set_example_vectors(
            examples
                .into_iter()
                .map(|(id, _)| id)
                .zip(vectors)
                .collect(),
        );
        *self.inner.policy.write() = Arc::new(updated);
        Ok(texts.len())
    }

    pub fn store(&self) -> &Arc<dyn EntryStore> {
        &self.inner.store
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.embedder
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Loads every stored vector of the current embedder into the index. Entries embedded
    /// by another model stay exact-only. Returns how many vectors were indexed.
    pub async fn rebuild_index(&self) -> Result<u64, InsertError> {
        let want = self.inner.embedder.id().to_string();
        let mut batch: Vec<(EntryId, PartitionKey, Vec<f32>)> = Vec::new();
        let mut skipped = 0u64;
        self.inner
            .store
            .scan_vectors(&mut |id, partition, embedder_id, vector| {
                if vector.is_empty() {
                    return;
                }
                if embedder_id == want {
                    batch.push((id, partition, vector.to_vec()));
                } else {
                    skipped += 1;
                }
            })
            .await?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                embedder = %want,
                "entries embedded by another model are served by exact match only"
            );
        }
        let n = batch.len() as u64;
        for (id, partition, vector) in batch {
            self.inner.index.insert(partition, id, &vector).await?;
        }
        Ok(n)
    }

    /// Whether an entry may still be served: younger than its category's TTL and the
    /// request's `max-age`.
    fn is_fresh(
        &self,
        policy: &Policy,
        entry: &Entry,
        max_age_secs: Option<u64>,
        now_ms: u64,
    ) -> bool {
        let limit = match (category_ttl_secs(policy, &entry.category), max_age_secs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limit.is_none_or(|secs| younger_than(entry.created_at_ms, now_ms, secs))
    }

    /// Exact, then semantic, then miss. Never fails: a backend fault is a bypass.
    pub async fn lookup(&self, req: &LookupRequest<'_>) -> Lookup {
        self.lookup_timed(req).await.0
    }

    /// [`Cache::lookup`], also saying where the time went.
    pub async fn lookup_timed(&self, req: &LookupRequest<'_>) -> (Lookup, StageTimes) {
        let mut times = StageTimes::default();
        let found = self.lookup_inner(req, &mut times).await;
        let mut pending = self.inner.pending.lock();
        match &found {
            Lookup::ExactHit(e) => {
                pending.exact_hits += 1;
                pending.prompt_tokens_saved += e.usage.prompt_tokens;
                pending.completion_tokens_saved += e.usage.completion_tokens;
            }
            Lookup::SemanticHit { entry: e, .. } => {
                pending.semantic_hits += 1;
                pending.prompt_tokens_saved += e.usage.prompt_tokens;
                pending.completion_tokens_saved += e.usage.completion_tokens;
            }
            Lookup::Miss { rejected, .. } => {
                pending.misses += 1;
                if rejected.is_some() {
                    pending.verification_rejects += 1;
                }
            }
            Lookup::Bypass(_) => pending.bypasses += 1,
        }
        (found, times)
    }

    async fn lookup_inner(&self, req: &LookupRequest<'_>, times: &mut StageTimes) -> Lookup {
        let inner = &self.inner;
        let policy = self.policy();
        let now = inner.clock.now_ms();
        // Hints and keywords decide before anything is looked up, so an uncacheable
        // category never touches the cache. A hint may only tighten: what the prompt is
        // classified as still counts (see `Policy::tightened`).
        let hint: Option<CategoryId> = req.category.and_then(|name| policy.by_name(name));
        let mut classified: Option<CategoryId> = policy.classify_text(req.prompt);
        let uncacheable = |c: Option<CategoryId>| c.is_some_and(|c| !policy.get(c).cacheable);
        if uncacheable(hint) || uncacheable(classified) {
            return Lookup::Bypass(BypassReason::UncacheableCategory);
        }
        let exact_key = ExactKey::new(&req.partition, req.prompt);
        let started = Instant::now();
        let exact = inner.store.get_exact(&exact_key).await;
        times.store += started.elapsed();
        match exact {
            Ok(Some(entry)) if self.is_fresh(&policy, &entry, req.max_age_secs, now) => {
                self.note_hit(entry.id, now).await;
                return Lookup::ExactHit(entry);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "store lookup failed; bypassing cache");
                return Lookup::Bypass(BypassReason::StoreError);
            }
        }
        if req.semantic == SemanticMode::ExactOnly || req.prompt.is_empty() {
            return Lookup::Miss {
                vector: None,
                nearest: None,
                nearest_id: None,
                rejected: None,
                threshold: None,
                category: policy.tightened(hint, classified).name.to_string(),
                label: None,
            };
        }
        let started = Instant::now();
        let embedded = inner.embedder.embed(&[req.prompt.to_string()]).await;
        times.embed += started.elapsed();
        let vector = match embedded {
            Ok(mut v) if v.len() == 1 => v.swap_remove(0),
            Ok(v) => {
                let e = EmbedError::Shape {
                    want: 1,
                    got: v.len(),
                    dim: inner.embedder.dim(),
                };
                tracing::warn!(error = %e, "embedder failed; bypassing cache");
                return Lookup::Bypass(BypassReason::EmbedError);
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "embedder failed; bypassing cache");
                return Lookup::Bypass(BypassReason::EmbedError);
            }
        };
        if classified.is_none() {
            classified = policy.classify_vector(&vector);
            if uncacheable(classified) {
                return Lookup::Bypass(BypassReason::UncacheableCategory);
            }
        }
        let spec = policy.tightened(hint, classified);
        let threshold = req
            .min_similarity
            .map_or(spec.min_similarity, |m| m.max(spec.min_similarity));
        let started = Instant::now();
        let searched = inner
            .index
            .search(req.partition, &vector, inner.options.candidates.max(1))
            .await;
        times.search += started.elapsed();
        let neighbors = match searched {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "index search failed; bypassing cache");
                return Lookup::Bypass(BypassReason::IndexError);
            }
        };
        // The best candidate not served, and its entry.
        let mut nearest: Option<(f32, EntryId)> = None;
        let mut not_served = |n: &crate::traits::Neighbor| {
            if nearest.is_none_or(|(s, _)| n.similarity > s) {
                nearest = Some((n.similarity, n.id));
            }
        };
        let mut rejected = None;
        // What the embedder could not see of the request (computed for the first
        // candidate that reaches verification).
        let mut query_unseen: Option<Vec<String>> = None;
        // The pair model's path reaches below the gate, down to its own (unless the client
        // set a threshold or the category is stricter than the default).
        let pair_gate = inner
            .pair
            .as_ref()
            .filter(|_| req.min_similarity.is_none() && spec.min_similarity <= DEFAULT_GATE)
            .map(|(m, _)| m.file().min_similarity);
        let floor = pair_gate.map_or(SAME_REQUEST_FLOOR, |g| g.min(SAME_REQUEST_FLOOR));
        // The error budget decides where its labels have certified a threshold (never
        // with verification off).
        let calibration = inner
            .calibration
            .as_ref()
            .filter(|_| inner.options.verify != VerifyMode::Off);
        let found: Vec<EntryId> = match calibration {
            Some(_) => neighbors.iter().map(|n| n.id).collect(),
            None => Vec::new(),
        };
        let mut ticket = Vec::new();
        for n in neighbors {
            let decided = calibration.and_then(|c| c.decide(spec.name, n.id, &found));
            if let Some((support, _)) = decided {
                if n.similarity >= SAME_REQUEST_FLOOR {
                    ticket.push((n.id, n.similarity, support));
                }
            }
            let calibrated = match decided.map(|(_, c)| c) {
                Some(Certified::From(t)) => Some(t),
                // Until the labels certify a threshold, a budgeted category serves no
                // semantic hit (see `crate::budget`); nor does a candidate further away
                // (see below).
                Some(Certified::Nothing | Certified::Untrained) => {
                    not_served(&n);
                    break;
                }
                None => None,
            };
            if let Some(t) = calibrated {
                // A client's threshold can only raise the certified one. The labels were
                // learned on the nearest candidate the veto rules let through, so a
                // candidate below its threshold ends the search: one further away is not
                // served in its place.
                if n.similarity < t.max(req.min_similarity.unwrap_or(0.0)) {
                    not_served(&n);
                    break;
                }
            }
            // Below the threshold, a candidate may still be the same request in other
            // wording (case, punctuation, contractions, typos, a question frame), which
            // similarity measures badly for short prompts ("How do I reset my pasword?",
            // 0.63): it is read and checked for that alone, or by the pair model's path
            // (never when the client raised the threshold itself, nor with verification
            // off).
            let below = n.similarity < threshold;
            if calibrated.is_none()
                && below
                && (n.similarity < floor
                    || req.min_similarity.is_some()
                    || inner.options.verify == VerifyMode::Off)
            {
                not_served(&n);
                continue;
            }
            let started = Instant::now();
            let got = inner.store.get(n.id).await;
            times.store += started.elapsed();
            let entry = match got {
                Ok(Some(entry))
                    if entry.partition == req.partition
                        && entry.embedder_id == inner.embedder.id()
                        && self.is_fresh(&policy, &entry, req.max_age_secs, now) =>
                {
                    entry
                }
                // Removed, expired or replaced since the index saw it: not servable.
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "store read failed; bypassing cache");
                    return Lookup::Bypass(BypassReason::StoreError);
                }
            };
            let started = Instant::now();
            let same_request = || {
                crate::verify::same_request(&entry.prompt, req.prompt, inner.embedder.vocabulary())
            };
            // Prompts whose unseen parts differ (in order: a swap is unseen too) differ
            // where their similarity is blind, unless all they differ in is a question
            // frame ("Comment puis-je …" / "Comment …").
            let mut seen_alike = || {
                inner.options.verify == VerifyMode::Off
                    || {
                        let query =
                            query_unseen.get_or_insert_with(|| inner.embedder.unseen(req.prompt));
                        *query == inner.embedder.unseen(&entry.prompt)
                    }
                    || same_request()
            };
            let second_path = pair_gate.is_some_and(|g| n.similarity >= g);
            let verdict = if calibrated.is_some() {
                self.hard_checks(&entry.prompt, req.prompt, &mut query_unseen)
            } else if below {
                let same = same_request()
                    && match inner.options.verify {
                        VerifyMode::Rules => crate::verify::verify(&entry.prompt, req.prompt),
                        _ => crate::verify::vetoes(&entry.prompt, req.prompt),
                    }
                    .is_ok();
                if same {
                    Ok(())
                } else if second_path {
                    if seen_alike() {
                        self.second_path(&entry.prompt, req.prompt, n.similarity, &spec)
                            .await
                    } else {
                        Err(RejectReason::Unseen)
                    }
                } else {
                    // Below the gate and not the same request: not reported as a refusal.
                    times.verify += started.elapsed();
                    not_served(&n);
                    continue;
                }
            } else {
                match (inner.options.verify, &inner.verifier) {
                    _ if !seen_alike() => Err(RejectReason::Unseen),
                    (VerifyMode::Model, Some(model)) => {
                        let confidence = spec.min_confidence(model.file().min_confidence);
                        match crate::verify::verify_model(
                            model,
                            &entry.prompt,
                            req.prompt,
                            n.similarity,
                            None,
                            confidence,
                            inner.embedder.vocabulary(),
                        ) {
                            Ok(_) => Ok(()),
                            // The features alone were not sure: the pair model reads both.
                            Err(RejectReason::Model) if second_path => {
                                self.second_path(&entry.prompt, req.prompt, n.similarity, &spec)
                                    .await
                            }
                            Err(reason) => Err(reason),
                        }
                    }
                    (VerifyMode::Rules, _) => crate::verify::verify(&entry.prompt, req.prompt),
                    // `Cache::new` loads a model for `Model`.
                    (VerifyMode::Model, None) | (VerifyMode::Off, _) => Ok(()),
                }
            };
            times.verify += started.elapsed();
            if let Err(reason) = verdict {
                rejected.get_or_insert(reason);
                not_served(&n);
                continue;
            }
            self.note_hit(entry.id, now).await;
            let audit = decided.map(|(support, _)| LabelTicket {
                category: spec.name.to_string(),
                candidates: vec![(n.id, n.similarity, support)],
            });
            return Lookup::SemanticHit {
                entry,
                similarity: n.similarity,
                audit,
            };
        }
        Lookup::Miss {
            vector: Some(vector),
            nearest: nearest.map(|(s, _)| s),
            nearest_id: nearest.map(|(_, id)| id),
            rejected,
            threshold: Some(threshold),
            category: spec.name.to_string(),
            label: (!ticket.is_empty()).then(|| LabelTicket {
                category: spec.name.to_string(),
                candidates: ticket,
            }),
        }
    }

    /// What a candidate must pass whatever its similarity or the labels say: the veto rules
    /// (all of them in [`VerifyMode::Rules`]), and no difference where the embedder is
    /// blind ([`Embedder::unseen`]) unless only a question frame differs.
    fn hard_checks(
        &self,
        cached: &str,
        query: &str,
        query_unseen: &mut Option<Vec<String>>,
    ) -> Result<(), RejectReason> {
        let inner = &self.inner;
        match inner.options.verify {
            VerifyMode::Rules => crate::verify::verify(cached, query)?,
            _ => crate::verify::vetoes(cached, query)?,
        }
        let unseen = query_unseen.get_or_insert_with(|| inner.embedder.unseen(query));
        if *unseen != inner.embedder.unseen(cached)
            && !crate::verify::same_request(cached, query, inner.embedder.vocabulary())
        {
            return Err(RejectReason::Unseen);
        }
        Ok(())
    }

    /// The cosine similarity of two texts' embeddings by the cache's embedder (1 for equal
    /// texts, without embedding them): how close two answers to one request are.
    pub async fn text_similarity(&self, a: &str, b: &str) -> Result<f32, EmbedError> {
        if a == b {
            return Ok(1.0);
        }
        let embedder = &self.inner.embedder;
        let vectors = embedder.embed(&[a.to_string(), b.to_string()]).await?;
        match vectors.as_slice() {
            [x, y] => Ok(x.iter().zip(y).map(|(p, q)| p * q).sum()),
            _ => Err(EmbedError::Shape {
                want: 2,
                got: vectors.len(),
                dim: embedder.dim(),
            }),
        }
    }

    /// Whether two answers to one request agree ([`crate::verify::answer`]): the text an
    /// answer stored for a similar prompt, and the upstream's fresh one. Embeds both unless
    /// they are identical or structured.
    pub async fn answers_agree(&self, cached: &str, fresh: &str) -> Result<bool, EmbedError> {
        if let Some(decided) = crate::verify::answer::agree_without_embedding(cached, fresh) {
            return Ok(decided);
        }
        let cosine = self.text_similarity(cached, fresh).await?;
        let inner = &self.inner;
        let least = inner
            .options
            .answer_min_similarity
            .unwrap_or_else(|| crate::verify::answer::default_min_similarity(inner.embedder.id()));
        Ok(crate::verify::answer::agree(cached, fresh, cosine, least))
    }

    /// Labels a miss once the upstream has answered it (off the request path). The first
    /// of the ticket's candidates that is still stored and passes [`Cache::hard_checks`]
    /// — the one a lookup would have served — has its stored answer compared with the
    /// fresh one ([`crate::verify::answer`]), and the calibration learns whether serving it
    /// would have been right. `new_entry`, the entry that stored the fresh answer (if it
    /// was stored), joins the answer group of the first candidate whose answer agrees (up
    /// to [`LABELS_PER_MISS`] are compared), else it starts its own. `text_of` gives an
    /// answer's text (the caller knows the wire format); a candidate whose text it cannot
    /// give is passed over. Returns the label recorded, if any.
    pub async fn label(
        &self,
        ticket: &LabelTicket,
        query: &str,
        fresh: &str,
        new_entry: Option<EntryId>,
        text_of: impl Fn(&Answer) -> Option<String>,
    ) -> Result<Option<Observation>, InsertError> {
        let inner = &self.inner;
        let Some(calibration) = &inner.calibration else {
            return Ok(None);
        };
        let mut query_unseen = None;
        let mut label = None;
        let mut compared = 0;
        let mut group = None;
        for &(id, similarity, support) in &ticket.candidates {
            if compared == LABELS_PER_MISS
                || (label.is_some() && (group.is_some() || new_entry.is_none()))
            {
                break;
            }
            let Some(entry) = inner.store.get(id).await? else {
                continue;
            };
            if self
                .hard_checks(&entry.prompt, query, &mut query_unseen)
                .is_err()
            {
                continue;
            }
            let Some(cached) = text_of(&entry.answer) else {
                continue;
            };
            compared += 1;
            let agreed = self.answers_agree(&cached, fresh).await?;
            if label.is_none() {
                calibration.observe(&ticket.category, support, similarity, agreed);
                label = Some(Observation {
                    candidate: id,
                    similarity,
                    support,
                    agreed,
                });
            }
            if agreed && group.is_none() {
                group = Some(id);
            }
        }
        if let Some(new) = new_entry {
            match group {
                Some(id) => calibration.join(new, id, true),
                None => calibration.join(new, new, false),
            }
        }
        Ok(label)
    }

    /// Records a client's verdict on a semantic hit it was served under an error budget
    /// (`ticket` is the hit's audit ticket): a label like an audit's, right or wrong.
    /// Returns the label, or `None` without a budget.
    pub fn feedback(&self, ticket: &LabelTicket, right: bool) -> Option<Observation> {
        let calibration = self.inner.calibration.as_ref()?;
        let &(candidate, similarity, support) = ticket.candidates.first()?;
        calibration.observe(&ticket.category, support, similarity, right);
        Some(Observation {
            candidate,
            similarity,
            support,
            agreed: right,
        })
    }

    /// Saves the error budget's labels with the store ([`EntryStore::save_state`]) if they
    /// changed since the last save; returns whether it wrote.
    pub async fn save_calibration(&self) -> Result<bool, StoreError> {
        let Some((version, snapshot)) = self.inner.calibration.as_ref().and_then(|c| c.unsaved())
        else {
            return Ok(false);
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| StoreError::Backend {
            backend: "calibration",
            source: Box::new(e),
        })?;
        self.inner
            .store
            .save_state(CALIBRATION_STATE, &bytes)
            .await?;
        if let Some(c) = &self.inner.calibration {
            c.saved(version);
        }
        Ok(true)
    }

    /// Takes over the error budget's labels saved with the store (at start); returns
    /// whether there were any. Saved labels that cannot be read are logged and left
    /// alone (the budget learns again, and the next save replaces them).
    pub async fn load_calibration(&self) -> Result<bool, StoreError> {
        let Some(c) = &self.inner.calibration else {
            return Ok(false);
        };
        let Some(bytes) = self.inner.store.load_state(CALIBRATION_STATE).await? else {
            return Ok(false);
        };
        match serde_json::from_slice(&bytes) {
            Ok(snapshot) => {
                c.restore(snapshot);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the error budget's saved labels are unreadable; learning again");
                Ok(false)
            }
        }
    }

    /// Audits a semantic hit served under an error budget, once the upstream has answered
    /// the same request (off the request path): the served answer is compared with the
    /// fresh one, the verdict counts in the live audit's tally, and it is a label like a
    /// miss's, so the labels keep covering the similarities the budget now serves (which
    /// produce no misses any more). Returns the label, if the entry could be compared.
    pub async fn audit(
        &self,
        ticket: &LabelTicket,
        query: &str,
        fresh: &str,
        text_of: impl Fn(&Answer) -> Option<String>,
    ) -> Result<Option<Observation>, InsertError> {
        let label = self.label(ticket, query, fresh, None, text_of).await?;
        if let (Some(o), Some(c)) = (&label, &self.inner.calibration) {
            c.audited(&ticket.category, !o.agreed);
        }
        Ok(label)
    }

    /// The second path of the learned verifier: the veto rules (cheaper, and precise),
    /// then the pair model reads both prompts and the verifier stacked with it decides
    /// (at its own confidence, or the category's if that is higher). A pair model that
    /// fails refuses the candidate (logged): a fault costs a hit, never a wrong answer.
    async fn second_path(
        &self,
        cached: &str,
        query: &str,
        similarity: f32,
        spec: &crate::policy::Applied<'_>,
    ) -> Result<(), RejectReason> {
        let Some((stacked, pair)) = &self.inner.pair else {
            return Err(RejectReason::Model);
        };
        crate::verify::vetoes(cached, query)?;
        // The pair model judges only what its vocabulary reads (it learned English): in
        // other languages the first path's refusal stands.
        if !self
            .inner
            .embedder
            .vocabulary()
            .is_some_and(|v| v.reads_both(cached, query))
        {
            return Err(RejectReason::Model);
        }
        let logit = match pair.score(&[(cached.to_string(), query.to_string())]).await {
            Ok(v) if v.len() == 1 && v[0].is_finite() => v[0],
            Ok(v) => {
                tracing::warn!(
                    got = v.len(),
                    "pair model gave no usable score; not serving"
                );
                return Err(RejectReason::Model);
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "pair model failed; not serving");
                return Err(RejectReason::Model);
            }
        };
        let own = stacked.file().min_confidence;
        let confidence = spec.min_confidence(own).max(own);
        match crate::verify::verify_model(
            stacked,
            cached,
            query,
            similarity,
            Some(logit),
            confidence,
            self.inner.embedder.vocabulary(),
        ) {
            Ok(_) => Ok(()),
            Err(RejectReason::Model) => Err(RejectReason::Pair),
            Err(reason) => Err(reason),
        }
    }

    async fn note_hit(&self, id: EntryId, now: u64) {
        if let Err(e) = self.inner.store.record_hit(id, now).await {
            tracing::warn!(error = %ErrorChain(&e), entry = %id, "recording a hit failed");
        }
    }

    /// Stores an answer: store first, then index. If indexing fails the stored entry is
    /// removed again, so an entry is either fully in or fully out.
    pub async fn insert(&self, new: NewEntry) -> Result<EntryId, InsertError> {
        self.insert_labelled(new, EntryLabels::default()).await
    }

    /// [`Cache::insert`], recording the entry's tenant and tags for invalidation.
    pub async fn insert_labelled(
        &self,
        new: NewEntry,
        labels: EntryLabels,
    ) -> Result<EntryId, InsertError> {
        self.insert_recorded(new, labels, None).await
    }

    /// [`Cache::insert_labelled`], also recording the request the answer was given to (the
    /// client's JSON body), so a staleness check can ask the upstream again.
    pub async fn insert_recorded(
        &self,
        new: NewEntry,
        labels: EntryLabels,
        request: Option<Vec<u8>>,
    ) -> Result<EntryId, InsertError> {
        let inner = &self.inner;
        let EntryLabels { namespace, tags } = labels;
        let NewEntry {
            partition,
            prompt,
            model,
            answer,
            usage,
            semantic,
            vector,
            category,
        } = new;
        let vector = match (semantic, vector) {
            (SemanticMode::ExactOnly, _) => Vec::new(),
            (SemanticMode::Allowed, _) if prompt.is_empty() => Vec::new(),
            (SemanticMode::Allowed, Some(v)) => v,
            (SemanticMode::Allowed, None) => {
                let mut v = inner.embedder.embed(std::slice::from_ref(&prompt)).await?;
                if v.len() != 1 {
                    return Err(EmbedError::Shape {
                        want: 1,
                        got: v.len(),
                        dim: inner.embedder.dim(),
                    }
                    .into());
                }
                v.swap_remove(0)
            }
        };
        let now = inner.clock.now_ms();
        let entry = Entry {
            id: EntryId::random(),
            exact_key: ExactKey::new(&partition, &prompt),
            partition,
            prompt,
            model,
            answer,
            usage,
            created_at_ms: now,
            last_hit_ms: now,
            hit_count: 0,
            category: category.unwrap_or_else(|| DEFAULT_CATEGORY.to_string()),
            namespace: namespace.unwrap_or_default(),
            tags,
            embedder_id: if vector.is_empty() {
                String::new()
            } else {
                inner.embedder.id().to_string()
            },
            vector,
            request,
        };
        if let Some(replaced) = inner.store.put(&entry).await? {
            if let Some(c) = &inner.calibration {
                c.forget(replaced);
            }
            if let Err(e) = inner.index.remove(partition, replaced).await {
                // Harmless for correctness: lookups re-read the store, and the replaced id
                // is gone from it.
                tracing::warn!(error = %ErrorChain(&e), entry = %replaced, "index removal failed");
            }
        }
        if !entry.vector.is_empty() {
            if let Err(e) = inner.index.insert(partition, entry.id, &entry.vector).await {
                if let Err(e2) = inner.store.remove(entry.id).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of an unindexed entry failed");
                }
                return Err(e.into());
            }
        }
        Ok(entry.id)
    }

    /// Stores an entry exactly as given (id, keys, times, counts), e.g. from an export, and
    /// indexes its vector if this cache's embedder made it (others stay exact-only, as at
    /// start). Store first, then index, as [`Cache::insert`] does.
    pub async fn restore(&self, entry: &Entry) -> Result<(), InsertError> {
        let inner = &self.inner;
        if let Some(replaced) = inner.store.put(entry).await? {
            if let Err(e) = inner.index.remove(entry.partition, replaced).await {
                // Harmless for correctness: lookups re-read the store.
                tracing::warn!(error = %ErrorChain(&e), entry = %replaced, "index removal failed");
            }
        }
        if !entry.vector.is_empty() && entry.embedder_id == inner.embedder.id() {
            if let Err(e) = inner
                .index
                .insert(entry.partition, entry.id, &entry.vector)
                .await
            {
                if let Err(e2) = inner.store.remove(entry.id).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of an unindexed entry failed");
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// [`Cache::restore`] for a batch: one store write for all of them (one transaction
    /// where the backend has them), then the index. An entry the index refuses is removed
    /// from the store again before the error is returned, so each entry is fully in or
    /// fully out; entries before it in the batch stay.
    pub async fn restore_many(&self, entries: &[Entry]) -> Result<(), InsertError> {
        let inner = &self.inner;
        let replaced = inner.store.put_many(entries).await?;
        for (entry, replaced) in entries.iter().zip(replaced) {
            if let Some(replaced) = replaced {
                if let Err(e) = inner.index.remove(entry.partition, replaced).await {
                    // Harmless for correctness: lookups re-read the store.
                    tracing::warn!(error = %ErrorChain(&e), entry = %replaced, "index removal failed");
                }
            }
        }
        for (i, entry) in entries.iter().enumerate() {
            if entry.vector.is_empty() || entry.embedder_id != inner.embedder.id() {
                continue;
            }
            if let Err(e) = inner
                .index
                .insert(entry.partition, entry.id, &entry.vector)
                .await
            {
                let unindexed: Vec<EntryId> = entries[i..].iter().map(|e| e.id).collect();
                if let Err(e2) = inner.store.remove_many(&unindexed).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of unindexed entries failed");
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Removes an entry from store and index.
    pub async fn remove(&self, id: EntryId) -> Result<bool, InsertError> {
        match self.inner.store.remove(id).await? {
            Some(entry) => {
                if let Some(c) = &self.inner.calibration {
                    c.forget(id);
                }
                if !entry.vector.is_empty() {
                    self.inner.index.remove(entry.partition, id).await?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every entry `what` selects; returns how many were removed.
    ///
    /// The store is written first: once a batch's removal has committed, no lookup can
    /// serve its entries (lookups re-read every candidate from the store), whatever the
    /// index still lists. Their vectors are then dropped from the index; a failure there
    /// is logged, not returned, because it cannot make a removed entry servable.
    ///
    /// Entries stored while an invalidation runs may survive it: it removes what existed
    /// when it looked.
    pub async fn invalidate(&self, what: &Invalidate) -> Result<u64, InsertError> {
        let store = &self.inner.store;
        let ids: Vec<EntryId> = match what {
            Invalidate::Id(id) => vec![*id],
            Invalidate::Tag(tag) => store.ids_with_tag(tag).await?,
            Invalidate::Model(_)
            | Invalidate::Namespace(_)
            | Invalidate::OlderThan { .. }
            | Invalidate::All => {
                let now = self.inner.clock.now_ms();
                let selects = |m: &crate::traits::EntryMeta<'_>| match what {
                    Invalidate::Model(model) => m.model == model,
                    Invalidate::Namespace(ns) => crate::entry::tenant_matches(m.namespace, ns),
                    Invalidate::OlderThan { secs } => {
                        now.saturating_sub(m.created_at_ms) >= secs.saturating_mul(1000)
                    }
                    Invalidate::All => true,
                    Invalidate::Id(_) | Invalidate::Tag(_) => false,
                };
                let mut ids = Vec::new();
                store
                    .scan_meta(&mut |m| {
                        if selects(m) {
                            ids.push(m.id);
                        }
                    })
                    .await?;
                ids
            }
        };
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_invalidated += removed;
        Ok(removed)
    }

    /// Removes `ids` from the store (in transactions of [`INVALIDATE_BATCH`]), then drops
    /// the removed entries' vectors from the index; returns how many entries existed and
    /// were removed. The order is what makes removal safe for concurrent lookups (see
    /// [`Cache::invalidate`]): an index failure is logged, not returned, because it cannot
    /// make a removed entry servable.
    async fn remove_ids(&self, ids: &[EntryId]) -> Result<u64, InsertError> {
        let mut removed = 0u64;
        for batch in ids.chunks(INVALIDATE_BATCH) {
            let gone = self.inner.store.remove_many(batch).await?;
            removed += gone.len() as u64;
            for (id, partition, had_vector) in gone {
                if let Some(c) = &self.inner.calibration {
                    c.forget(id);
                }
                if !had_vector {
                    continue;
                }
                if let Err(e) = self.inner.index.remove(partition, id).await {
                    tracing::warn!(error = %ErrorChain(&e), entry = %id, "index removal failed");
                }
            }
        }
        Ok(removed)
    }

    /// Removes every entry whose category TTL has passed (lookups already refuse to serve
    /// them; this gives their space back). Entries of a category no longer configured
    /// follow the `default` category, as lookups do. Returns how many were removed.
    pub async fn sweep_expired(&self) -> Result<u64, InsertError> {
        let policy = self.policy();
        let now = self.inner.clock.now_ms();
        let mut ids = Vec::new();
        self.inner
            .store
            .scan_meta(&mut |m| {
                let expired = category_ttl_secs(&policy, m.category)
                    .is_some_and(|secs| !younger_than(m.created_at_ms, now, secs));
                if expired {
                    ids.push(m.id);
                }
            })
            .await?;
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_expired += removed;
        Ok(removed)
    }

    /// Removes every entry not hit for `after_secs` (never-hit entries count from their
    /// creation); counted as evictions. Returns how many were removed.
    pub async fn remove_cold(&self, after_secs: u64) -> Result<u64, InsertError> {
        let now = self.inner.clock.now_ms();
        let mut ids = Vec::new();
        self.inner
            .store
            .scan_meta(&mut |m| {
                if !younger_than(last_used_ms(m), now, after_secs) {
                    ids.push(m.id);
                }
            })
            .await?;
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_evicted += removed;
        Ok(removed)
    }

    /// If the cache holds more than `limits.max_entries` entries or `limits.max_bytes`
    /// bytes, removes the least valuable entries (by `limits.eviction`) until it is at
    /// about 95% of each limit exceeded. One metadata scan collects (score, id, size);
    /// the victims of an entry limit are selected without sorting every entry, those of
    /// a byte limit by sorting what remains after them. They are removed store-first, in
    /// transactions of up to 10,000. Returns how many were removed. (`cold_after_secs` is
    /// not applied here; see [`Cache::remove_cold`].)
    pub async fn enforce_capacity(&self, limits: &CapacityLimits) -> Result<u64, InsertError> {
        if limits.max_entries.is_none() && limits.max_bytes.is_none() {
            return Ok(0);
        }
        // (score, id, size): the smallest score is the least valuable entry.
        let mut all: Vec<((u64, u64), EntryId, u64)> = Vec::new();
        let mut total_bytes = 0u64;
        self.inner
            .store
            .scan_meta(&mut |m| {
                let score = match limits.eviction {
                    Eviction::Lru => (last_used_ms(m), m.created_at_ms),
                    Eviction::Lfu => (m.hit_count, m.created_at_ms),
                };
                total_bytes = total_bytes.saturating_add(m.size_bytes);
                all.push((score, m.id, m.size_bytes));
            })
            .await?;
        let count = all.len() as u64;
        let over_entries = limits.max_entries.is_some_and(|max| count > max);
        let over_bytes = limits.max_bytes.is_some_and(|max| total_bytes > max);
        if !over_entries && !over_bytes {
            return Ok(0);
        }
        let target = |max: u64| max / 100 * EVICT_TO_PERCENT + max % 100 * EVICT_TO_PERCENT / 100;
        // Victims by count: the `k` least valuable, found without sorting everything.
        let mut k = match limits.max_entries {
            Some(max) if over_entries => (count - target(max)) as usize,
            _ => 0,
        };
        if k > 0 && k < all.len() {
            all.select_nth_unstable_by(k - 1, |a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        // Victims by size: if removing those `k` is not enough, take more in order.
        if let Some(max) = limits.max_bytes.filter(|_| over_bytes) {
            let want = target(max);
            let mut left = total_bytes.saturating_sub(all[..k].iter().map(|v| v.2).sum::<u64>());
            if left > want {
                all[k..].sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
                while left > want && k < all.len() {
                    left = left.saturating_sub(all[k].2);
                    k += 1;
                }
            }
        }
        let victims: Vec<EntryId> = all[..k].iter().map(|v| v.1).collect();
        let removed = self.remove_ids(&victims).await?;
        self.inner.pending.lock().removed_evicted += removed;
        Ok(removed)
    }

    /// One maintenance pass: expired entries, then cold ones, then whatever still exceeds
    /// the capacity limits. What the server runs periodically.
    pub async fn maintain(
        &self,
        limits: &CapacityLimits,
    ) -> Result<MaintenanceReport, InsertError> {
        let expired = self.sweep_expired().await?;
        let cold = match limits.cold_after_secs {
            Some(secs) => self.remove_cold(secs).await?,
            None => 0,
        };
        let evicted = self.enforce_capacity(limits).await?;
        Ok(MaintenanceReport {
            expired,
            cold,
            evicted,
        })
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
mod tests {
    //! The flow against small in-memory fakes; the real backends run the conformance
    //! suites in deja-testkit.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::clock::ManualClock;
    use crate::traits::{EntryMeta, Neighbor};

    /// Embeds by hashing words into 8 buckets: texts sharing words are similar. Like an
    /// English model before Chinese, it does not see words that are not ASCII.
    #[derive(Default)]
    struct WordsEmbedder {
        calls: AtomicUsize,
        fail: AtomicBool,
        vocab: Option<crate::verify::Vocabulary>,
    }

    #[async_trait]
    impl Embedder for WordsEmbedder {
        fn id(&self) -> &str {
            "test:words"
        }
        fn dim(&self) -> usize {
            8
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(EmbedError::WorkerGone);
            }
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = [0f32; 8];
                    for w in t.to_lowercase().split_whitespace().filter(|w| w.is_ascii()) {
                        let h = blake3::hash(w.as_bytes()).as_bytes()[0] as usize;
                        v[h % 8] += 1.0;
                    }
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                    v.iter().map(|x| x / n).collect()
                })
                .collect())
        }
        fn vocabulary(&self) -> Option<&crate::verify::Vocabulary> {
            self.vocab.as_ref()
        }

        fn unseen(&self, text: &str) -> Vec<String> {
            text.split_whitespace()
                .filter(|w| !w.is_ascii())
                .map(str::to_string)
                .collect()
        }
    }

    // `pub(super)`: the engine's submodules' tests (`stale.rs`) use the same fakes.
    #[derive(Default)]
    pub(super) struct MemStore {
        pub(super) entries: Mutex<HashMap<EntryId, Entry>>,
        fail: AtomicBool,
        state: Mutex<HashMap<String, Vec<u8>>>,
    }

    fn backend_err() -> StoreError {
        StoreError::Backend {
            backend: "mem",
            source: "injected fault".into(),
        }
    }

    #[async_trait]
    impl EntryStore for MemStore {
        async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(backend_err());
            }
            Ok(self
                .entries
                .lock()
                .values()
                .find(|e| e.exact_key == *key)
                .cloned())
        }
        async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
            Ok(self.entries.lock().get(&id).cloned())
        }
        async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
            let mut m = self.entries.lock();
            let old = m
                .values()
                .find(|e| e.exact_key == entry.exact_key)
                .map(|e| e.id);
            if let Some(old) = old {
                m.remove(&old);
            }
            m.insert(entry.id, entry.clone());
            Ok(old)
        }
        async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
            Ok(self.entries.lock().remove(&id))
        }
        async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError> {
            if let Some(e) = self.entries.lock().get_mut(&id) {
                e.hit_count += 1;
                e.last_hit_ms = at_ms;
            }
            Ok(())
        }
        async fn scan_vectors(
            &self,
            visit: &mut (dyn for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]) + Send),
        ) -> Result<(), StoreError> {
            for e in self.entries.lock().values() {
                visit(e.id, e.partition, &e.embedder_id, &e.vector);
            }
            Ok(())
        }
        async fn len(&self) -> Result<u64, StoreError> {
            Ok(self.entries.lock().len() as u64)
        }
        async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
            Ok(self
                .entries
                .lock()
                .values()
                .filter(|e| e.tags.iter().any(|t| t == tag))
                .map(|e| e.id)
                .collect())
        }
        async fn scan_meta(
            &self,
            visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
        ) -> Result<(), StoreError> {
            for e in self.entries.lock().values() {
                visit(&EntryMeta {
                    id: e.id,
                    partition: e.partition,
                    model: &e.model,
                    namespace: &e.namespace,
                    category: &e.category,
                    created_at_ms: e.created_at_ms,
                    last_hit_ms: e.last_hit_ms,
                    hit_count: e.hit_count,
                    has_vector: !e.vector.is_empty(),
                    tags: e.tags.iter().map(String::as_str).collect(),
                    size_bytes: (e.prompt.len() + e.answer.len_bytes()) as u64,
                });
            }
            Ok(())
        }
        async fn remove_many(
            &self,
            ids: &[EntryId],
        ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
            let mut m = self.entries.lock();
            Ok(ids
                .iter()
                .filter_map(|id| m.remove(id))
                .map(|e| (e.id, e.partition, !e.vector.is_empty()))
                .collect())
        }
        async fn add_counters(&self, _: &Counters) -> Result<(), StoreError> {
            Ok(())
        }
        async fn counters(&self) -> Result<Counters, StoreError> {
            Ok(Counters::default())
        }
        async fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.state.lock().get(name).cloned())
        }
        async fn save_state(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.state.lock().insert(name.to_string(), bytes.to_vec());
            Ok(())
        }
    }

    #[derive(Default)]
    pub(super) struct FlatIndex {
        pub(super) vectors: Mutex<HashMap<(PartitionKey, EntryId), Vec<f32>>>,
        fail_inserts: AtomicBool,
    }

    #[async_trait]
    impl VectorIndex for FlatIndex {
        fn embedder_id(&self) -> &str {
            "test:words"
        }
        fn dim(&self) -> usize {
            8
        }
        async fn insert(
            &self,
            partition: PartitionKey,
            id: EntryId,
            vector: &[f32],
        ) -> Result<(), IndexError> {
            if self.fail_inserts.load(Ordering::SeqCst) {
                return Err(IndexError::Backend {
                    backend: "flat",
                    source: "injected fault".into(),
                });
            }
            self.vectors.lock().insert((partition, id), vector.to_vec());
            Ok(())
        }
        async fn remove(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError> {
            self.vectors.lock().remove(&(partition, id));
            Ok(())
        }
        async fn search(
            &self,
            partition: PartitionKey,
            query: &[f32],
            k: usize,
        ) -> Result<Vec<Neighbor>, IndexError> {
            let mut out: Vec<Neighbor> = self
                .vectors
                .lock()
                .iter()
                .filter(|((p, _), _)| *p == partition)
                .map(|((_, id), v)| Neighbor {
                    id: *id,
                    similarity: v.iter().zip(query).map(|(a, b)| a * b).sum(),
                })
                .collect();
            out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            out.truncate(k);
            Ok(out)
        }
        async fn len(&self) -> Result<u64, IndexError> {
            Ok(self.vectors.lock().len() as u64)
        }
    }

    pub(super) struct Fixture {
        pub(super) cache: Cache,
        pub(super) store: Arc<MemStore>,
        pub(super) index: Arc<FlatIndex>,
        embedder: Arc<WordsEmbedder>,
        pub(super) clock: Arc<ManualClock>,
    }

    pub(super) fn fixture(options: CacheOptions) -> Fixture {
        fixture_with(options, WordsEmbedder::default())
    }

    fn fixture_with(options: CacheOptions, embedder: WordsEmbedder) -> Fixture {
        let store = Arc::new(MemStore::default());
        let index = Arc::new(FlatIndex::default());
        let embedder = Arc::new(embedder);
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cache = Cache::new(
            store.clone(),
            index.clone(),
            embedder.clone(),
            clock.clone(),
            options,
        )
        .unwrap();
        Fixture {
            cache,
            store,
            index,
            embedder,
            clock,
        }
    }

    pub(super) const P1: PartitionKey = PartitionKey([1; 16]);
    const P2: PartitionKey = PartitionKey([2; 16]);

    pub(super) fn new_entry(partition: PartitionKey, prompt: &str) -> NewEntry {
        NewEntry {
            partition,
            prompt: prompt.into(),
            model: "m".into(),
            answer: Answer::Body(prompt.as_bytes().to_vec()),
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 5,
            },
            semantic: SemanticMode::Allowed,
            vector: None,
            category: None,
        }
    }

    pub(super) fn req(partition: PartitionKey, prompt: &str) -> LookupRequest<'_> {
        LookupRequest::new(partition, prompt)
    }

    /// The fake embedder is a bag of words, so these tests pair reorderings of the same
    /// words ("order 4821 where is"); the learned verifier rightly refuses those (swapped
    /// roles), so tests about partitions, categories and storage verify with the rules.
    /// `the_learned_verifier_refuses_swapped_roles` covers the model.
    pub(super) fn options(min_similarity: f32) -> CacheOptions {
        CacheOptions {
            min_similarity,
            verify: VerifyMode::Rules,
            ..CacheOptions::default()
        }
    }

    #[tokio::test]
    async fn prompts_that_differ_where_the_embedder_is_blind_are_not_served() {
        for verify in [VerifyMode::Model, VerifyMode::Rules] {
            let f = fixture(CacheOptions {
                min_similarity: 0.5,
                verify,
                ..CacheOptions::default()
            });
            f.cache
                .insert(new_entry(P1, "how much is 猫粮 per bag"))
                .await
                .unwrap();
            // The embedder sees "how much is per bag" in both: cosine 1, blind to the rest.
            for other in ["how much is 狗粮 per bag", "how much is per bag"] {
                match f.cache.lookup(&req(P1, other)).await {
                    Lookup::Miss {
                        rejected, nearest, ..
                    } => {
                        assert_eq!(rejected, Some(RejectReason::Unseen), "{verify:?} {other}");
                        assert!(nearest.is_some_and(|s| s > 0.999), "{nearest:?}");
                    }
                    got => panic!("{verify:?} {other}: {got:?}"),
                }
            }
            // The same unseen words, in the same places: similarity may vouch for the rest.
            assert!(
                matches!(
                    f.cache.lookup(&req(P1, "How much is 猫粮 per bag")).await,
                    Lookup::SemanticHit { .. }
                ),
                "{verify:?}"
            );
        }
        // With verification off, similarity alone decides (the measuring baseline).
        let off = fixture(CacheOptions {
            min_similarity: 0.5,
            verify: VerifyMode::Off,
            ..CacheOptions::default()
        });
        off.cache
            .insert(new_entry(P1, "how much is 猫粮 per bag"))
            .await
            .unwrap();
        assert!(matches!(
            off.cache.lookup(&req(P1, "how much is 狗粮 per bag")).await,
            Lookup::SemanticHit { .. }
        ));
    }

    #[tokio::test]
    async fn the_learned_verifier_refuses_swapped_roles() {
        let f = fixture(CacheOptions {
            min_similarity: 0.5,
            ..CacheOptions::default()
        });
        assert_eq!(f.cache.options().verify, VerifyMode::Model);
        f.cache
            .insert(new_entry(P1, "Germany beat Brazil in the final"))
            .await
            .unwrap();
        // The same words, so the bag-of-words embedder gives cosine 1.
        match f
            .cache
            .lookup(&req(P1, "Brazil beat Germany in the final"))
            .await
        {
            Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Model)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            f.cache
                .lookup(&req(P1, "germany beat brazil in the final"))
                .await,
            Lookup::SemanticHit { .. }
        ));
        // Veto rules still name their reason.
        f.cache
            .insert(new_entry(P1, "where is order 4821"))
            .await
            .unwrap();
        match f.cache.lookup(&req(P1, "where is order 4812")).await {
            Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Number)),
            other => panic!("{other:?}"),
        }
        // A category may ask for more confidence than the model's default.
        let strict = fixture(CacheOptions {
            min_similarity: 0.5,
            min_confidence: Some(1.0),
            ..CacheOptions::default()
        });
        strict
            .cache
            .insert(new_entry(P1, "Germany beat Brazil in the final"))
            .await
            .unwrap();
        // (Not merely another case: prompts that differ only in case, punctuation or
        // contractions are the same request, whatever the confidence.)
        assert!(matches!(
            strict
                .cache
                .lookup(&req(P1, "germany beat brazil in the final"))
                .await,
            Lookup::SemanticHit { .. }
        ));
        assert!(matches!(
            strict
                .cache
                .lookup(&req(P1, "germany beat brazil in the final game"))
                .await,
            Lookup::Miss {
                rejected: Some(RejectReason::Model),
                ..
            }
        ));
    }

    /// Below the threshold, only the same request in other wording is served; never when
    /// the client raised the threshold, nor past a veto.
    #[tokio::test]
    async fn the_same_request_in_other_wording_is_served_below_the_threshold() {
        let f = fixture(CacheOptions {
            min_similarity: 0.99,
            verify: VerifyMode::Rules,
            ..CacheOptions::default()
        });
        f.cache
            .insert(new_entry(P1, "Where is my order?"))
            .await
            .unwrap();
        match f.cache.lookup(&req(P1, "where's my order")).await {
            Lookup::SemanticHit { similarity, .. } => assert!(similarity < 0.99, "{similarity}"),
            other => panic!("{other:?}"),
        }
        // Similar words, another request.
        assert!(matches!(
            f.cache.lookup(&req(P1, "where is my car order")).await,
            Lookup::Miss { .. }
        ));
        // The client's own threshold is kept.
        let mut raised = req(P1, "where's my order");
        raised.min_similarity = Some(0.99);
        assert!(matches!(f.cache.lookup(&raised).await, Lookup::Miss { .. }));
    }

    /// A pair model that answers a fixed logit, or fails; counts what it was asked.
    #[derive(Debug, Default)]
    struct FixedPair {
        logit: f32,
        fail: bool,
        asked: parking_lot::Mutex<Vec<(String, String)>>,
    }

    #[async_trait]
    impl crate::PairScorer for FixedPair {
        fn id(&self) -> &str {
            "pair:test"
        }
        async fn score(&self, pairs: &[(String, String)]) -> Result<Vec<f32>, EmbedError> {
            self.asked.lock().extend(pairs.iter().cloned());
            if self.fail {
                return Err(EmbedError::WorkerGone);
            }
            Ok(vec![self.logit; pairs.len()])
        }
    }

    /// A verifier of the features alone that never serves.
    fn never() -> Arc<Model> {
        let mut file = Model::shipped().unwrap().file().clone();
        file.weights.iter_mut().for_each(|w| *w = 0.0);
        file.bias = -50.0;
        Arc::new(Model::from_file(file).unwrap())
    }

    /// A verifier of the pair model's logit alone (every feature weight 0).
    fn stacked_on(model: &str) -> Arc<Model> {
        Arc::new(
            Model::from_file(crate::verify::model::ModelFile {
                min_similarity: 0.5,
                pair: Some(crate::verify::model::PairInput {
                    model: model.into(),
                    mean: 0.0,
                    scale: 1.0,
                    weight: 1.0,
                }),
                ..crate::verify::model::neutral_file()
            })
            .unwrap(),
        )
    }

    /// With a verifier stacked on a pair model, the pair model decides the candidates the
    /// veto rules let through: a high logit serves, a low one refuses, a veto is never
    /// sent to it, and a pair model that fails refuses (a fault costs a hit, not a wrong
    /// answer). A verifier stacked on another pair model never asks this one.
    #[tokio::test]
    async fn a_stacked_verifier_asks_the_pair_model_after_the_vetoes() {
        let run = |logit: f32, fail: bool, model: &'static str| async move {
            let pair = Arc::new(FixedPair {
                logit,
                fail,
                ..FixedPair::default()
            });
            let words = WordsEmbedder {
                vocab: Some(crate::verify::Vocabulary::new([
                    "how", "do", "not", "reset", "my", "password", "please", "comment", "le",
                    "volume",
                ])),
                ..WordsEmbedder::default()
            };
            let f = fixture_with(
                CacheOptions {
                    min_similarity: 0.5,
                    verify: VerifyMode::Model,
                    verifier: Some(never()),
                    pair_verifier: Some(stacked_on(model)),
                    pair_scorer: Some(pair.clone()),
                    ..CacheOptions::default()
                },
                words,
            );
            f.cache
                .insert(new_entry(P1, "how do i reset my password"))
                .await
                .unwrap();
            let paraphrase = f
                .cache
                .lookup(&req(P1, "how do i reset my password please"))
                .await;
            let negated = f
                .cache
                .lookup(&req(P1, "how do i not reset my password"))
                .await;
            // A difference the vocabulary cannot read is not sent to the pair model.
            f.cache
                .insert(new_entry(P2, "comment flurbiser le volume"))
                .await
                .unwrap();
            let foreign = f.cache.lookup(&req(P2, "comment gronker le volume")).await;
            assert!(matches!(foreign, Lookup::Miss { .. }), "{foreign:?}");
            let asked = pair.asked.lock().clone();
            (paraphrase, negated, asked)
        };
        let (served, negated, asked) = run(3.0, false, "pair:test").await;
        assert!(matches!(served, Lookup::SemanticHit { .. }), "{served:?}");
        assert!(matches!(negated, Lookup::Miss { .. }), "{negated:?}");
        assert_eq!(
            asked,
            vec![(
                "how do i reset my password".to_string(),
                "how do i reset my password please".to_string()
            )],
            "only the candidate no veto refused reaches the pair model"
        );
        let (refused, _, _) = run(-3.0, false, "pair:test").await;
        assert!(
            matches!(
                refused,
                Lookup::Miss {
                    rejected: Some(RejectReason::Pair),
                    ..
                }
            ),
            "{refused:?}"
        );
        let (failed, _, _) = run(3.0, true, "pair:test").await;
        assert!(matches!(failed, Lookup::Miss { .. }), "{failed:?}");
        // Stacked on another pair model: this one is never asked, and only the first path
        // (here: never serving) decides.
        let (other, _, asked) = run(3.0, false, "pair:other").await;
        assert!(asked.is_empty());
        assert!(matches!(other, Lookup::Miss { .. }), "{other:?}");
    }

    fn body_text(answer: &Answer) -> Option<String> {
        match answer {
            Answer::Body(b) => String::from_utf8(b.clone()).ok(),
            Answer::Chunks(_) => None,
        }
    }

    #[tokio::test]
    async fn an_error_budget_serves_only_what_its_labels_certify() {
        assert!(matches!(
            Cache::new(
                Arc::new(MemStore::default()),
                Arc::new(FlatIndex::default()),
                Arc::new(WordsEmbedder::default()),
                Arc::new(ManualClock::new(0)),
                CacheOptions {
                    max_false_hit_rate: Some(0.7),
                    ..CacheOptions::default()
                },
            ),
            Err(BuildError::Budget(_))
        ));
        let f = fixture(CacheOptions {
            max_false_hit_rate: Some(0.05),
            ..CacheOptions::default()
        });
        let stored = f
            .cache
            .insert(new_entry(P1, "where is my parcel"))
            .await
            .unwrap();
        // The same words in another order: cosine 1 for the bag-of-words embedder.
        let asked = "is my parcel where";
        // No labels yet: no semantic hit, and the miss says what to label.
        let Lookup::Miss {
            label: Some(ticket),
            ..
        } = f.cache.lookup(&req(P1, asked)).await
        else {
            panic!("an untrained budget served a semantic hit");
        };
        assert_eq!(ticket.category, "default");
        assert_eq!(ticket.candidates.len(), 1);
        assert_eq!(ticket.candidates[0].0, stored);
        // The upstream gave the stored answer again, 60 times: enough to certify 5%.
        for i in 0..60 {
            let o = f
                .cache
                .label(&ticket, asked, "where is my parcel", None, body_text)
                .await
                .unwrap()
                .unwrap();
            assert!(o.agreed, "{i}");
        }
        let calibration = f.cache.calibration().unwrap();
        let certified = calibration.certified("default", 0);
        assert!(matches!(certified, Some(Certified::From(t)) if t <= 1.0));
        // Saved with the store when changed, and taken over by the next start.
        assert!(f.cache.save_calibration().await.unwrap());
        assert!(!f.cache.save_calibration().await.unwrap(), "unchanged");
        let restarted = Cache::new(
            f.store.clone(),
            f.index.clone(),
            f.embedder.clone(),
            f.clock.clone(),
            f.cache.options().clone(),
        )
        .unwrap();
        assert!(restarted.load_calibration().await.unwrap());
        assert_eq!(
            restarted.calibration().unwrap().certified("default", 0),
            certified
        );
        let Lookup::SemanticHit {
            entry,
            audit: Some(audit),
            ..
        } = f.cache.lookup(&req(P1, asked)).await
        else {
            panic!("the certified candidate was not served");
        };
        assert_eq!(entry.id, stored);
        // An audit that finds another answer counts as wrong and as a label.
        let o = f
            .cache
            .audit(&audit, asked, "the shop opens at nine", body_text)
            .await
            .unwrap()
            .unwrap();
        assert!(!o.agreed);
        assert_eq!(
            calibration.audits(),
            vec![(
                "default".to_string(),
                crate::budget::AuditTally {
                    checked: 1,
                    wrong: 1
                }
            )]
        );
        // Wrong labels at the top take the certificate away again.
        for _ in 0..20 {
            f.cache
                .label(&ticket, asked, "the shop opens at nine", None, body_text)
                .await
                .unwrap();
        }
        assert_eq!(
            calibration.certified("default", 0),
            Some(Certified::Nothing)
        );
        assert!(matches!(
            f.cache.lookup(&req(P1, asked)).await,
            Lookup::Miss { .. }
        ));
        // A new entry whose answer agreed joins the candidate's answer group; removing an
        // entry forgets it.
        let other = f
            .cache
            .insert(new_entry(P1, "is my parcel where"))
            .await
            .unwrap();
        f.cache
            .label(&ticket, asked, "where is my parcel", Some(other), body_text)
            .await
            .unwrap();
        assert_eq!(calibration.support(stored, &[stored, other]), 1);
        f.cache.remove(other).await.unwrap();
        assert_eq!(calibration.support(stored, &[stored, other]), 0);
    }

    #[tokio::test]
    async fn exact_hit_computes_no_embedding() {
        let f = fixture(options(0.9));
        f.cache
            .insert(new_entry(P1, "red green blue"))
            .await
            .unwrap();
        let before = f.embedder.calls.load(Ordering::SeqCst);
        assert!(matches!(
            f.cache.lookup(&req(P1, "red green blue")).await,
            Lookup::ExactHit(_)
        ));
        assert_eq!(f.embedder.calls.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn semantic_hits_stay_inside_their_partition() {
        let f = fixture(options(0.5));
        f.cache
            .insert(new_entry(P1, "red green blue"))
            .await
            .unwrap();
        match f.cache.lookup(&req(P1, "blue green red")).await {
            Lookup::SemanticHit { similarity, .. } => assert!(similarity > 0.99),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            f.cache.lookup(&req(P2, "blue green red")).await,
            Lookup::Miss { .. }
        ));
    }

    #[tokio::test]
    async fn threshold_can_be_raised_not_lowered() {
        let f = fixture(options(0.99));
        f.cache
            .insert(new_entry(P1, "one two three four"))
            .await
            .unwrap();
        // "one two three five" shares 3 of 4 words: similar, but below 0.99.
        let mut r = req(P1, "one two three five");
        let Lookup::Miss {
            nearest, vector, ..
        } = f.cache.lookup(&r).await
        else {
            panic!("expected a miss");
        };
        assert!(nearest.is_some_and(|s| s < 0.99));
        assert!(vector.is_some(), "a miss hands its embedding to the insert");
        r.min_similarity = Some(0.1);
        assert!(
            matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }),
            "lowering is ignored"
        );
    }

    #[tokio::test]
    async fn removed_entry_is_never_served_even_if_the_index_lists_it() {
        let f = fixture(options(0.5));
        let id = f.cache.insert(new_entry(P1, "alpha beta")).await.unwrap();
        // Remove from the store only, as if a removal raced the index.
        f.store.entries.lock().remove(&id);
        assert_eq!(f.index.vectors.lock().len(), 1);
        assert!(matches!(
            f.cache.lookup(&req(P1, "beta alpha")).await,
            Lookup::Miss { .. }
        ));
        assert!(matches!(
            f.cache.lookup(&req(P1, "alpha beta")).await,
            Lookup::Miss { .. }
        ));
    }

    #[tokio::test]
    async fn ttl_and_max_age_follow_the_injected_clock() {
        let f = fixture(CacheOptions {
            min_similarity: 0.9,
            ttl_secs: Some(60),
            ..CacheOptions::default()
        });
        f.cache.insert(new_entry(P1, "x y")).await.unwrap();
        f.clock.advance_ms(30_000);
        let mut r = req(P1, "x y");
        assert!(matches!(f.cache.lookup(&r).await, Lookup::ExactHit(_)));
        r.max_age_secs = Some(10);
        assert!(matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }));
        r.max_age_secs = None;
        f.clock.advance_ms(30_000);
        assert!(
            matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }),
            "expired at 60 s"
        );
    }

    #[tokio::test]
    async fn replacing_an_exact_key_drops_the_old_vector() {
        let f = fixture(options(0.9));
        let old = f.cache.insert(new_entry(P1, "same prompt")).await.unwrap();
        let new = f.cache.insert(new_entry(P1, "same prompt")).await.unwrap();
        assert_ne!(old, new);
        assert_eq!(f.store.entries.lock().len(), 1);
        let ids: Vec<EntryId> = f.index.vectors.lock().keys().map(|(_, id)| *id).collect();
        assert_eq!(ids, vec![new]);
    }

    #[tokio::test]
    async fn faults_bypass_and_failed_indexing_rolls_back() {
        let f = fixture(options(0.9));
        f.embedder.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            f.cache.lookup(&req(P1, "anything")).await,
            Lookup::Bypass(BypassReason::EmbedError)
        ));
        f.embedder.fail.store(false, Ordering::SeqCst);
        f.store.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            f.cache.lookup(&req(P1, "anything")).await,
            Lookup::Bypass(BypassReason::StoreError)
        ));
        f.store.fail.store(false, Ordering::SeqCst);
        f.index.fail_inserts.store(true, Ordering::SeqCst);
        assert!(f.cache.insert(new_entry(P1, "p q")).await.is_err());
        assert!(f.store.entries.lock().is_empty(), "no half-inserted entry");
    }

    #[tokio::test]
    async fn exact_only_entries_have_no_vector() {
        let f = fixture(options(0.5));
        let mut e = new_entry(P1, "tool result follows");
        e.semantic = SemanticMode::ExactOnly;
        f.cache.insert(e).await.unwrap();
        assert!(f.index.vectors.lock().is_empty());
        let mut r = req(P1, "tool result follows");
        r.semantic = SemanticMode::ExactOnly;
        assert!(matches!(f.cache.lookup(&r).await, Lookup::ExactHit(_)));
        assert_eq!(f.embedder.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn counters_count_outcomes_and_savings() {
        let f = fixture(options(0.9));
        f.cache.insert(new_entry(P1, "a b c")).await.unwrap();
        f.cache.lookup(&req(P1, "a b c")).await;
        f.cache.lookup(&req(P1, "zzz")).await;
        let c = f.cache.counters().await.unwrap();
        assert_eq!((c.exact_hits, c.misses), (1, 1));
        assert_eq!((c.prompt_tokens_saved, c.completion_tokens_saved), (3, 5));
    }

    #[test]
    fn another_embedder_is_refused() {
        struct Other;
        #[async_trait]
        impl Embedder for Other {
            fn id(&self) -> &str {
                "test:other"
            }
            fn dim(&self) -> usize {
                8
            }
            fn vocabulary(&self) -> Option<&crate::verify::Vocabulary> {
                None
            }

            fn unseen(&self, _text: &str) -> Vec<String> {
                Vec::new()
            }
            async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
                Ok(vec![])
            }
        }
        let r = Cache::new(
            Arc::new(MemStore::default()),
            Arc::new(FlatIndex::default()),
            Arc::new(Other),
            Arc::new(ManualClock::new(0)),
            CacheOptions::default(),
        );
        assert!(matches!(
            r,
            Err(BuildError::Index(IndexError::Embedder { .. }))
        ));
    }

    #[tokio::test]
    async fn verification_rejects_a_similar_prompt_with_other_numbers() {
        let f = fixture(options(0.5));
        f.cache
            .insert(new_entry(P1, "where is order 4821"))
            .await
            .unwrap();
        match f.cache.lookup(&req(P1, "where is order 4812")).await {
            Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Number)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            f.cache.lookup(&req(P1, "order 4821 where is")).await,
            Lookup::SemanticHit { .. }
        ));
        let c = f.cache.counters().await.unwrap();
        assert_eq!(c.verification_rejects, 1);
    }

    #[tokio::test]
    async fn categories_set_threshold_ttl_and_cacheability() {
        let spec =
            |name: &str, min: f32, ttl: Option<u64>, cacheable: bool, kw: &str| CategorySpec {
                name: name.into(),
                min_similarity: min,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs: ttl,
                cacheable,
                keywords: vec![kw.into()],
                examples: Vec::new(),
            };
        let f = fixture(CacheOptions {
            min_similarity: 0.99,
            verify: VerifyMode::Rules,
            categories: vec![
                spec("loose", 0.5, Some(10), true, "loose"),
                spec("transactional", 0.99, None, false, "transfer"),
            ],
            ..CacheOptions::default()
        });
        // The keyword puts both prompts in "loose": threshold 0.5 applies.
        let mut e = new_entry(P1, "loose red green blue");
        e.category = Some("loose".into());
        f.cache.insert(e).await.unwrap();
        assert!(matches!(
            f.cache.lookup(&req(P1, "blue green loose")).await,
            Lookup::SemanticHit { .. }
        ));
        // The entry's category TTL (10 s) applies to exact hits too.
        f.clock.advance_ms(11_000);
        assert!(matches!(
            f.cache.lookup(&req(P1, "loose red green blue")).await,
            Lookup::Miss { .. }
        ));
        // Uncacheable categories bypass before any lookup; so does a hint naming one.
        assert!(matches!(
            f.cache.lookup(&req(P1, "transfer 10 to bob")).await,
            Lookup::Bypass(BypassReason::UncacheableCategory)
        ));
        let mut r = req(P1, "anything at all");
        r.category = Some("transactional");
        assert!(matches!(
            f.cache.lookup(&r).await,
            Lookup::Bypass(BypassReason::UncacheableCategory)
        ));
        match f.cache.lookup(&req(P1, "plain question")).await {
            Lookup::Miss { category, .. } => assert_eq!(category, "default"),
            other => panic!("{other:?}"),
        }
        // A hint may only tighten: naming a cacheable category does not make a prompt the
        // transactional category refuses cacheable.
        for hint in ["default", "loose"] {
            let mut r = req(P1, "transfer 10 to bob");
            r.category = Some(hint);
            assert!(
                matches!(
                    f.cache.lookup(&r).await,
                    Lookup::Bypass(BypassReason::UncacheableCategory)
                ),
                "{hint}"
            );
        }
        // Nor does it loosen the threshold: "loose" (0.5) named for a default-category
        // prompt still needs the default's 0.99.
        let mut e = new_entry(P1, "red green blue yellow");
        e.category = Some("default".into());
        f.cache.insert(e).await.unwrap();
        let mut r = req(P1, "red green blue purple");
        r.category = Some("loose");
        assert!(matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }));
        // (The same prompt is a hit in "loose" proper: the entry is what the hint cannot
        // reach, not the prompt.)
        let mut e = new_entry(P1, "loose red green blue yellow");
        e.category = Some("loose".into());
        f.cache.insert(e).await.unwrap();
        assert!(matches!(
            f.cache
                .lookup(&req(P1, "loose red green blue purple"))
                .await,
            Lookup::SemanticHit { .. }
        ));
    }

    async fn insert_labelled(f: &Fixture, prompt: &str, model: &str, ns: &str, tags: &[&str]) {
        let mut e = new_entry(P1, prompt);
        e.model = model.into();
        let labels = EntryLabels {
            namespace: Some(ns.into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        f.cache.insert_labelled(e, labels).await.unwrap();
    }

    fn stored_prompts(f: &Fixture) -> Vec<String> {
        let mut p: Vec<String> = f
            .store
            .entries
            .lock()
            .values()
            .map(|e| e.prompt.clone())
            .collect();
        p.sort();
        p
    }

    #[tokio::test]
    async fn invalidate_removes_exactly_what_it_selects() {
        let all = ["alpha one", "beta two", "gamma three", "delta four"];
        let cases: Vec<(Invalidate, Vec<&str>)> = vec![
            (
                Invalidate::Tag("product:1".into()),
                vec!["alpha one", "beta two"],
            ),
            (Invalidate::Tag("nobody".into()), vec![]),
            (Invalidate::Model("m2".into()), vec!["gamma three"]),
            (Invalidate::Namespace("ns:b".into()), vec!["delta four"]),
            // Created 100 s before the others.
            (Invalidate::OlderThan { secs: 50 }, vec!["alpha one"]),
            (Invalidate::OlderThan { secs: 1000 }, vec![]),
            (Invalidate::All, all.to_vec()),
        ];
        for (what, want_removed) in cases {
            let f = fixture(options(0.5));
            insert_labelled(&f, all[0], "m1", "ns:a", &["product:1", "x"]).await;
            f.clock.advance_ms(100_000);
            insert_labelled(&f, all[1], "m1", "ns:a", &["product:1"]).await;
            insert_labelled(&f, all[2], "m2", "ns:a", &["product:2"]).await;
            insert_labelled(&f, all[3], "m1", "ns:b", &[]).await;
            let removed = f.cache.invalidate(&what).await.unwrap();
            assert_eq!(removed, want_removed.len() as u64, "{what:?}");
            let mut want: Vec<String> = all
                .iter()
                .filter(|p| !want_removed.contains(p))
                .map(|p| p.to_string())
                .collect();
            want.sort();
            assert_eq!(stored_prompts(&f), want, "{what:?}");
            assert_eq!(
                f.index.vectors.lock().len(),
                want.len(),
                "{what:?}: vectors of removed entries leave the index"
            );
            for p in want_removed {
                assert!(
                    matches!(f.cache.lookup(&req(P1, p)).await, Lookup::Miss { .. }),
                    "{what:?}: {p} is still served"
                );
            }
        }
    }

    #[tokio::test]
    async fn invalidate_by_id_and_labels_are_stored() {
        let f = fixture(options(0.5));
        let labels = EntryLabels {
            namespace: Some("ns:t".into()),
            tags: vec!["a".into(), "b".into()],
        };
        let id = f
            .cache
            .insert_labelled(new_entry(P1, "red green"), labels)
            .await
            .unwrap();
        let e = f.store.entries.lock().get(&id).cloned().unwrap();
        assert_eq!((e.namespace.as_str(), e.tags.len()), ("ns:t", 2));
        let plain = f.cache.insert(new_entry(P1, "blue")).await.unwrap();
        let e = f.store.entries.lock().get(&plain).cloned().unwrap();
        assert!(e.namespace.is_empty() && e.tags.is_empty());
        assert_eq!(f.cache.invalidate(&Invalidate::Id(id)).await.unwrap(), 1);
        assert_eq!(f.cache.invalidate(&Invalidate::Id(id)).await.unwrap(), 0);
        assert_eq!(stored_prompts(&f), vec!["blue".to_string()]);
    }

    /// Lookups race an invalidation on other threads; once `invalidate` has returned, no
    /// lookup that starts afterwards may serve a removed entry, exactly or semantically.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_removed_entry_is_served_after_invalidate_returns() {
        let f = fixture(options(0.5));
        let prompts: Vec<String> = (0..200).map(|i| format!("item {i} colour red")).collect();
        let mut doomed = std::collections::HashSet::new();
        for (i, p) in prompts.iter().enumerate() {
            let tags = if i % 2 == 0 {
                vec!["gone".to_string()]
            } else {
                vec![]
            };
            let id = f
                .cache
                .insert_labelled(
                    new_entry(P1, p),
                    EntryLabels {
                        namespace: None,
                        tags,
                    },
                )
                .await
                .unwrap();
            if i % 2 == 0 {
                doomed.insert(id);
            }
        }
        let done = Arc::new(AtomicBool::new(false));
        let doomed = Arc::new(doomed);
        let mut readers = Vec::new();
        for r in 0..2 {
            let (cache, done, doomed, prompts) = (
                f.cache.clone(),
                done.clone(),
                doomed.clone(),
                prompts.clone(),
            );
            readers.push(tokio::spawn(async move {
                let mut after = 0;
                // Keep reading for a while after the invalidation finished.
                while after < 400 {
                    for p in prompts.iter().skip(r).step_by(3) {
                        let finished_before = done.load(Ordering::SeqCst);
                        // Exact, then a reordering of the same words (semantic).
                        let reordered = p.split(' ').rev().collect::<Vec<_>>().join(" ");
                        for q in [p.as_str(), reordered.as_str()] {
                            let served = match cache.lookup(&req(P1, q)).await {
                                Lookup::ExactHit(e) => Some(e.id),
                                Lookup::SemanticHit { entry, .. } => Some(entry.id),
                                _ => None,
                            };
                            if let Some(id) = served {
                                assert!(
                                    !(finished_before && doomed.contains(&id)),
                                    "removed entry {id} served after invalidate returned"
                                );
                            }
                        }
                        if finished_before {
                            after += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        tokio::task::yield_now().await;
        let removed = f
            .cache
            .invalidate(&Invalidate::Tag("gone".into()))
            .await
            .unwrap();
        done.store(true, Ordering::SeqCst);
        assert_eq!(removed, 100);
        for r in readers {
            r.await.unwrap();
        }
        assert_eq!(f.store.entries.lock().len(), 100);
    }

    /// Every vector in the index belongs to a stored entry that has one, and every stored
    /// entry with a vector is indexed under its partition.
    fn assert_store_and_index_agree(f: &Fixture) {
        let mut stored: Vec<(PartitionKey, EntryId)> = f
            .store
            .entries
            .lock()
            .values()
            .filter(|e| !e.vector.is_empty())
            .map(|e| (e.partition, e.id))
            .collect();
        let mut indexed: Vec<(PartitionKey, EntryId)> =
            f.index.vectors.lock().keys().copied().collect();
        stored.sort();
        indexed.sort();
        assert_eq!(stored, indexed, "store and index disagree");
    }

    fn category(name: &str, ttl_secs: Option<u64>) -> CategorySpec {
        CategorySpec {
            name: name.into(),
            min_similarity: 0.9,
            min_confidence: None,
            max_false_hit_rate: None,
            ttl_secs,
            cacheable: true,
            keywords: Vec::new(),
            examples: Vec::new(),
        }
    }

    #[tokio::test]
    async fn sweep_removes_only_entries_past_their_category_ttl() {
        let f = fixture(CacheOptions {
            ttl_secs: Some(100),
            categories: vec![category("short", Some(10)), category("forever", None)],
            ..options(0.9)
        });
        let insert = |prompt: &'static str, cat: Option<&str>, semantic: SemanticMode| {
            let mut e = new_entry(P1, prompt);
            e.category = cat.map(str::to_string);
            e.semantic = semantic;
            f.cache.insert(e)
        };
        insert("short one", Some("short"), SemanticMode::Allowed)
            .await
            .unwrap();
        insert("short exact", Some("short"), SemanticMode::ExactOnly)
            .await
            .unwrap();
        insert("default one", None, SemanticMode::Allowed)
            .await
            .unwrap();
        insert("forever one", Some("forever"), SemanticMode::Allowed)
            .await
            .unwrap();
        // An entry of a category no longer configured follows `default`.
        insert("gone category", Some("retired"), SemanticMode::Allowed)
            .await
            .unwrap();
        f.clock.advance_ms(9_999);
        assert_eq!(f.cache.sweep_expired().await.unwrap(), 0);
        f.clock.advance_ms(1);
        assert_eq!(f.cache.sweep_expired().await.unwrap(), 2);
        assert_eq!(
            stored_prompts(&f),
            ["default one", "forever one", "gone category"]
        );
        assert_store_and_index_agree(&f);
        f.clock.advance_ms(90_000);
        assert_eq!(f.cache.sweep_expired().await.unwrap(), 2);
        assert_eq!(stored_prompts(&f), ["forever one"]);
        assert_store_and_index_agree(&f);
        assert_eq!(f.index.vectors.lock().len(), 1);
        let c = f.cache.counters().await.unwrap();
        assert_eq!((c.removed_expired, c.removed_evicted), (4, 0));
    }

    /// 40 entries created a second apart; entry 0 is hit 5 times right after it is
    /// created, entries 10..30 once each, later, in order.
    async fn forty_entries_with_hits(f: &Fixture) {
        for i in 0..40 {
            f.cache
                .insert(new_entry(P1, &format!("entry {i}")))
                .await
                .unwrap();
            if i == 0 {
                for _ in 0..5 {
                    f.clock.advance_ms(10);
                    f.cache.lookup(&req(P1, "entry 0")).await;
                }
            }
            f.clock.advance_ms(1_000);
        }
        for i in 10..30 {
            let p = format!("entry {i}");
            assert!(matches!(
                f.cache.lookup(&req(P1, &p)).await,
                Lookup::ExactHit(_)
            ));
            f.clock.advance_ms(1_000);
        }
    }

    fn surviving_numbers(f: &Fixture) -> Vec<u32> {
        let mut n: Vec<u32> = stored_prompts(f)
            .iter()
            .map(|p| p.trim_start_matches("entry ").parse().unwrap())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn lru_and_lfu_choose_their_victims() {
        // 40 entries over a limit of 20: trimmed to 19 (95%), so 21 go.
        let cases = [
            // Least recently used: 0 (hit long ago), 1..10 and 30..40 (never hit), then
            // the earliest of the later hits (10).
            (Eviction::Lru, (11..30).collect::<Vec<u32>>()),
            // Least frequently used: the 19 never hit, then the oldest hit once (10, 11);
            // entry 0, hit most often, stays although its hits are old.
            (
                Eviction::Lfu,
                std::iter::once(0).chain(12..30).collect::<Vec<u32>>(),
            ),
        ];
        for (eviction, survivors) in cases {
            let f = fixture(options(0.9));
            forty_entries_with_hits(&f).await;
            let limits = CapacityLimits {
                max_entries: Some(20),
                eviction,
                ..CapacityLimits::default()
            };
            assert_eq!(f.cache.enforce_capacity(&limits).await.unwrap(), 21);
            assert_eq!(surviving_numbers(&f), survivors, "{eviction:?}");
            assert_store_and_index_agree(&f);
            assert_eq!(f.cache.enforce_capacity(&limits).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn max_entries_and_max_bytes_are_enforced() {
        // Prompts "entry 100".."entry 149" (9 bytes) with the prompt as answer: 18 bytes.
        let cases = [
            (
                CapacityLimits {
                    max_entries: Some(30),
                    ..CapacityLimits::default()
                },
                28,
            ),
            (
                CapacityLimits {
                    max_bytes: Some(500),
                    ..CapacityLimits::default()
                },
                26,
            ),
            (
                CapacityLimits {
                    max_entries: Some(40),
                    max_bytes: Some(500),
                    eviction: Eviction::Lfu,
                    cold_after_secs: None,
                },
                26,
            ),
            (
                CapacityLimits {
                    max_entries: Some(50),
                    max_bytes: Some(900),
                    ..CapacityLimits::default()
                },
                50,
            ),
        ];
        for (limits, kept) in cases {
            let f = fixture(options(0.9));
            for i in 100..150 {
                let mut e = new_entry(P1, &format!("entry {i}"));
                // Embedding-cache items are exact-only; they count the same.
                if i % 5 == 0 {
                    e.semantic = SemanticMode::ExactOnly;
                }
                f.cache.insert(e).await.unwrap();
                f.clock.advance_ms(1_000);
            }
            let removed = f.cache.enforce_capacity(&limits).await.unwrap();
            assert_eq!(removed, 50 - kept, "{limits:?}");
            let entries = f.store.entries.lock().len() as u64;
            let bytes: u64 = f
                .store
                .entries
                .lock()
                .values()
                .map(|e| (e.prompt.len() + e.answer.len_bytes()) as u64)
                .sum();
            assert_eq!(entries, kept, "{limits:?}");
            assert!(limits.max_entries.is_none_or(|m| entries <= m));
            assert!(limits.max_bytes.is_none_or(|m| bytes <= m));
            // The oldest went first.
            assert_eq!(surviving_numbers(&f)[0], 150 - kept as u32, "{limits:?}");
            assert_store_and_index_agree(&f);
            assert_eq!(f.cache.counters().await.unwrap().removed_evicted, removed);
        }
    }

    #[tokio::test]
    async fn cold_entries_are_removed_and_maintain_reports_each_cause() {
        let f = fixture(CacheOptions {
            ttl_secs: Some(3_600),
            ..options(0.9)
        });
        for p in ["old red", "old green", "old blue"] {
            f.cache.insert(new_entry(P1, p)).await.unwrap();
        }
        f.clock.advance_ms(50_000);
        f.cache.lookup(&req(P1, "old green")).await;
        f.cache.insert(new_entry(P1, "new one")).await.unwrap();
        f.cache.insert(new_entry(P1, "new two")).await.unwrap();
        f.clock.advance_ms(20_000);
        assert_eq!(f.cache.remove_cold(60).await.unwrap(), 2);
        assert_eq!(stored_prompts(&f), ["new one", "new two", "old green"]);
        assert_store_and_index_agree(&f);

        f.clock.advance_ms(3_600_000 - 20_000);
        for p in ["fresh a", "fresh b", "fresh c"] {
            f.cache.insert(new_entry(P1, p)).await.unwrap();
        }
        f.clock.advance_ms(1);
        f.cache.lookup(&req(P1, "fresh b")).await;
        let limits = CapacityLimits {
            max_entries: Some(2),
            cold_after_secs: Some(3_000),
            ..CapacityLimits::default()
        };
        // "new one" and "new two" expired; "old green" too (created 3,650 s ago; hits do
        // not extend a TTL); nothing is cold; then the limit keeps the most recently used
        // (95% of 2 is 1).
        let report = f.cache.maintain(&limits).await.unwrap();
        assert_eq!(
            report,
            MaintenanceReport {
                expired: 3,
                cold: 0,
                evicted: 2
            }
        );
        assert_eq!(report.total(), 5);
        assert_eq!(stored_prompts(&f), ["fresh b"]);
        assert_store_and_index_agree(&f);
        f.cache.invalidate(&Invalidate::All).await.unwrap();
        let c = f.cache.counters().await.unwrap();
        assert_eq!(
            (c.removed_expired, c.removed_evicted, c.removed_invalidated),
            (3, 4, 1)
        );
    }

    #[tokio::test]
    async fn restore_keeps_the_entry_as_given_and_indexes_own_vectors_only() {
        let f = fixture(options(0.5));
        let id = f
            .cache
            .insert(new_entry(P1, "alpha beta gamma"))
            .await
            .unwrap();
        let mut entry = f.store.entries.lock().get(&id).cloned().unwrap();
        f.cache.remove(id).await.unwrap();
        assert!(f.index.vectors.lock().is_empty());
        entry.hit_count = 7;
        f.cache.restore(&entry).await.unwrap();
        assert_eq!(f.store.entries.lock()[&id].hit_count, 7);
        assert!(matches!(
            f.cache.lookup(&req(P1, "gamma beta alpha")).await,
            Lookup::SemanticHit { .. }
        ));
        // A vector from another embedder is stored but not indexed.
        let mut other = entry.clone();
        other.id = EntryId(42);
        other.partition = P2;
        other.exact_key = ExactKey::new(&P2, &other.prompt);
        other.embedder_id = "test:other".into();
        f.cache.restore(&other).await.unwrap();
        assert!(f.store.entries.lock().contains_key(&EntryId(42)));
        assert_eq!(f.index.vectors.lock().len(), 1);
    }
}
