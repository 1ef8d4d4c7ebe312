//! Typed configuration: a TOML file, then `DEJA_…` environment variables (and the
//! OpenAI SDKs' own `OPENAI_BASE_URL` / `OPENAI_API_KEY`, and `ANTHROPIC_API_KEY`), then
//! command-line flags, each layer overriding the one before. Errors name the bad key and
//! what would be valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use deja_core::CategorySpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the proxy listens on.
    pub listen: SocketAddr,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub embedder: EmbedderConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    /// Kinds of traffic with their own threshold, TTL and cacheability. Configuring any
    /// category replaces the built-in set.
    pub categories: BTreeMap<String, CategorySpec>,
    /// What is never cached: personal data, time-sensitive prompts, configured patterns.
    pub rules: deja_core::rules::RulesConfig,
    /// The admin API (`/admin/...`): off unless a token is set.
    pub admin: AdminConfig,
    /// The background job that re-asks the upstream whether cached answers still hold.
    pub staleness: StalenessConfig,
    /// Where `POST /v1/messages` (Anthropic's Messages API) sends its misses.
    pub anthropic: AnthropicConfig,
    /// Where Azure OpenAI's routes (`/openai/...`) send their misses; off until its
    /// `base_url` is set.
    pub azure: AzureConfig,
    /// Prices per model in US dollars per 1M tokens, over the built-in list
    /// (`[prices."gpt-4o"] input_per_mtok = 2.5, output_per_mtok = 10.0`); see
    /// [`crate::pricing`].
    pub prices: BTreeMap<String, crate::pricing::ModelPrice>,
    /// Namespaces whose entries several credentials share (`[namespaces.NAME] keys =
    /// [...]`, or a `token`); without one, a namespace only narrows each credential's own
    /// tenant. See [`crate::tenant`].
    pub namespaces: BTreeMap<String, crate::tenant::SharedNamespace>,
}

/// `[anthropic]`: the upstream of Anthropic's Messages API. Timeouts are `[upstream]`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnthropicConfig {
    /// Anthropic's base URL, as its SDKs take it (without `/v1`; a trailing `/v1` is
    /// accepted too). Env `DEJA_ANTHROPIC_BASE_URL`.
    pub base_url: String,
    /// Key sent upstream as `x-api-key`. When unset, the client's own `x-api-key` (or
    /// `Authorization`) is forwarded. Env `ANTHROPIC_API_KEY`.
    pub api_key: Option<String>,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
        }
    }
}

/// `[azure]`: the upstream of Azure OpenAI's routes (`/openai/deployments/{deployment}/...`
/// and `/openai/v1/...`). Timeouts are `[upstream]`'s.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// The resource endpoint, as Azure's SDKs take it (`https://RESOURCE.openai.azure.com`; a
    /// trailing `/openai` is accepted too). Unset, the Azure routes answer an error saying
    /// so, and nothing is sent anywhere. Env `DEJA_AZURE_BASE_URL`.
    pub base_url: Option<String>,
    /// Key sent upstream as `api-key`, in place of the client's `api-key` and
    /// `Authorization`. When unset, the client's own are forwarded. Env
    /// `DEJA_AZURE_API_KEY`.
    pub api_key: Option<String>,
}

/// `[staleness]`: a background job samples entries, re-sends each one's recorded request
/// to the upstream, and compares the fresh answer with the cached one by embedding
/// similarity; an answer that changed is replaced or its entry invalidated. Off by
/// default: every check is a paid upstream call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StalenessConfig {
    /// Turns the job on. While on, chat entries also record their request (so they can be
    /// re-sent); entries stored while it was off cannot be checked and are skipped.
    pub enabled: bool,
    /// Time between two check passes.
    pub interval_secs: u64,
    /// Entries re-asked per pass: the sampling rate is `entries_per_pass` per
    /// `interval_secs`, within the daily budget.
    pub entries_per_pass: usize,
    /// Most upstream calls the checks make per UTC day.
    pub max_calls_per_day: u64,
    /// Most tokens (prompt plus completion) the checks spend per UTC day. A check is only
    /// started if the entry's recorded usage still fits.
    pub max_tokens_per_day: u64,
    /// Entries younger than this are not checked.
    pub min_age_secs: u64,
    /// Least cosine similarity between the cached and the fresh answer's embeddings for
    /// the answer to count as unchanged.
    pub min_similarity: f32,
    /// What happens to an entry whose answer changed.
    pub action: StaleAction,
}

impl Default for StalenessConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 600,
            entries_per_pass: 5,
            max_calls_per_day: 200,
            max_tokens_per_day: 200_000,
            min_age_secs: 3_600,
            min_similarity: 0.9,
            action: StaleAction::Invalidate,
        }
    }
}

/// What the staleness job does with an entry whose answer changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StaleAction {
    /// Remove it; the next request asks the upstream and stores the new answer.
    #[default]
    Invalidate,
    /// Store the fresh answer in its place (same id, labels and hit counts).
    Replace,
}

/// Shortest admin token accepted: the token guards invalidation, export and import, so it
/// must not be guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token the admin API requires (`Authorization: Bearer <token>`). Unset: the
    /// admin routes answer 404, as if they did not exist.
    pub token: Option<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The built-in categories. With the learned verifier (the default) every cacheable
/// category gates candidates at the default `min_similarity` and leaves the decision to the
/// model's recommended confidence, which was chosen for Quora questions and PAWS
/// (see docs/hit-quality.md); `deja tune` can set `min_confidence` per category
/// from labelled pairs. Transactions are never cached.
pub fn default_categories() -> BTreeMap<String, CategorySpec> {
    let day = 24 * 3600;
    BTreeMap::from([
        (
            "faq".to_string(),
            CategorySpec {
                name: "faq".to_string(),
                min_similarity: DEFAULT_MIN_SIMILARITY,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs: Some(14 * day),
                cacheable: true,
                keywords: Vec::new(),
                examples: strings(&[
                    "What is your return policy?",
                    "How long does shipping take?",
                    "What are your opening hours?",
                ]),
            },
        ),
        (
            "support".to_string(),
            CategorySpec {
                name: "support".to_string(),
                min_similarity: DEFAULT_MIN_SIMILARITY,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs: Some(7 * day),
                cacheable: true,
                keywords: Vec::new(),
                examples: strings(&[
                    "My card has not arrived yet",
                    "I was charged twice for the same purchase",
                    "The app keeps crashing when I log in",
                ]),
            },
        ),
        (
            "search".to_string(),
            CategorySpec {
                name: "search".to_string(),
                min_similarity: DEFAULT_MIN_SIMILARITY,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs: Some(day),
                cacheable: true,
                keywords: Vec::new(),
                examples: strings(&[
                    "wireless noise cancelling headphones under 200 dollars",
                    "red running shoes size 42",
                ]),
            },
        ),
        (
            "transactional".to_string(),
            CategorySpec {
                name: "transactional".to_string(),
                min_similarity: 0.97,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs: None,
                cacheable: false,
                keywords: strings(&[
                    "transfer money",
                    "wire transfer",
                    "send money",
                    "place an order",
                    "virement",
                    "envoyer de l'argent",
                    "passer une commande",
                    "转账",
                    "汇款",
                    "下单",
                    "geld overmaken",
                    "overschrijving",
                    "bestelling plaatsen",
                ]),
                examples: strings(&[
                    "Transfer 200 euros to my savings account",
                    "Buy 10 shares of Apple",
                    "Pay my electricity bill",
                    "Book a table for two at 8pm tonight",
                ]),
            },
        ),
    ])
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: default_data_dir(),
            upstream: UpstreamConfig::default(),
            cache: CacheConfig::default(),
            embedder: EmbedderConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            categories: default_categories(),
            rules: deja_core::rules::RulesConfig::default(),
            admin: AdminConfig::default(),
            staleness: StalenessConfig::default(),
            anthropic: AnthropicConfig::default(),
            azure: AzureConfig::default(),
            prices: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

/// `$XDG_DATA_HOME/deja` (or the platform's equivalent), else `./deja-data`.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("deja"))
        .unwrap_or_else(|| PathBuf::from("deja-data"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// OpenAI-compatible base URL ending in `/v1`.
    pub base_url: String,
    /// Key sent upstream. When unset, the client's own `Authorization` is forwarded.
    pub api_key: Option<String>,
    pub connect_timeout_secs: u64,
    /// Whole-request limit for non-streamed calls; for streams, the longest silence
    /// between two chunks.
    pub timeout_secs: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            connect_timeout_secs: 10,
            timeout_secs: 600,
        }
    }
}

/// `cache.tenant`: whose entries a request may be served from ([`crate::tenant`]).
pub use crate::tenant::TenantMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Least cosine similarity for a semantic hit (a request can raise it, not lower it).
    /// With `verify = "model"` this is the gate for a candidate to be judged at all.
    pub min_similarity: f32,
    /// With `verify = "model"`: least probability from the learned verifier for a semantic
    /// hit. Unset: the shipped model's recommendation.
    pub min_confidence: Option<f32>,
    /// Entries older than this are not served. Unset: kept until removed.
    pub ttl_secs: Option<u64>,
    /// Index candidates examined per semantic lookup.
    pub candidates: usize,
    pub tenant: TenantMode,
    /// Least similarity to a category's example prompt to classify a prompt by it.
    /// Unset: the embedder's own ([`CacheConfig::examples_min_similarity_for`]).
    pub examples_min_similarity: Option<f32>,
    /// `model`: veto rules, then the learned verifier's confidence (the default);
    /// `rules`: semantic candidates must pass the verification rules (numbers, negation,
    /// ...); `off`: similarity alone decides.
    pub verify: VerifySetting,
    /// Most entries kept (chat answers and embedding items together); `0`: no limit.
    /// Default [`DEFAULT_MAX_ENTRIES`], so memory is bounded out of the box (see there).
    pub max_entries: Option<u64>,
    /// Most bytes of prompts plus answers kept (vectors and store overhead are not
    /// counted, so the file is larger). Unset: no limit.
    pub max_bytes: Option<u64>,
    /// Which entries go first when a limit is exceeded: `lru` (least recently hit) or
    /// `lfu` (fewest hits, then oldest).
    pub eviction: EvictionSetting,
    /// Entries not hit for this long (never-hit entries: since stored) are removed.
    /// Unset: kept until they expire or are evicted.
    pub cold_after_secs: Option<u64>,
    /// How often expired and cold entries are removed and the limits enforced. Between
    /// passes the cache may exceed its limits by what was stored meanwhile.
    pub sweep_interval_secs: u64,
    /// Longest a request waits for an identical one already calling the upstream before
    /// it calls the upstream itself (0: no waiting). Errors are shared and a stream is
    /// stored at the upstream's pace, so this only ends waits for a slow upstream.
    pub coalesce_wait_ms: u64,
    /// The error budget (δ): the largest share of semantic hits that may be wrong, e.g.
    /// `0.01`. Misses are then labelled by comparing the upstream's answer with the
    /// nearest entry's, and a semantic candidate is served where those labels certify it
    /// (see docs/matching.md, "Error budget"); until enough labels exist, exact hits only. A
    /// category may set its own (`[categories.NAME] max_false_hit_rate`). Unset: no budget.
    pub max_false_hit_rate: Option<f64>,
    /// Least cosine of two answers' embeddings for them to count as the same answer when
    /// labelling. Unset: the embedder's own (0.8 for all-MiniLM-L6-v2, 0.93 for
    /// multilingual-e5-small).
    pub answer_min_similarity: Option<f32>,
    /// Most requests remembered as aliases of the entry a semantic hit served them: a
    /// repeat of the same request is then served from that entry without embedding
    /// (re-read from the store and checked first; never under an error budget). `0`
    /// keeps none.
    pub max_aliases: usize,
    /// The live audit: the share of semantic hits served under an error budget that are
    /// asked upstream again in the background (with `upstream.api_key`, or
    /// `anthropic.api_key` for `/v1/messages`; never with a client's key) and compared.
    pub audit_share: f64,
    /// The share of exact hits under an error budget asked upstream again the same way,
    /// while the answer comparison's own error (how often it calls two answers to the same
    /// request different) is not yet known to within δ / 2: the budget discounts it.
    /// Within the same daily call and token budget.
    pub audit_exact_share: f64,
    /// Most audit calls per UTC day (counted in this process since it started).
    pub audit_max_calls_per_day: u64,
    /// Most tokens (prompt plus completion) audit calls spend per UTC day; a call starts
    /// only if the served entry's recorded usage still fits.
    pub audit_max_tokens_per_day: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionSetting {
    #[default]
    Lru,
    Lfu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum VerifySetting {
    #[default]
    Model,
    Rules,
    Off,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_similarity: DEFAULT_MIN_SIMILARITY,
            min_confidence: None,
            ttl_secs: None,
            candidates: 4,
            tenant: TenantMode::PerKey,
            examples_min_similarity: None,
            verify: VerifySetting::Model,
            max_entries: Some(DEFAULT_MAX_ENTRIES),
            max_bytes: None,
            eviction: EvictionSetting::Lru,
            cold_after_secs: None,
            sweep_interval_secs: 60,
            coalesce_wait_ms: 60_000,
            max_false_hit_rate: None,
            answer_min_similarity: None,
            max_aliases: deja_core::DEFAULT_MAX_ALIASES,
            audit_share: 0.01,
            audit_exact_share: 0.02,
            audit_max_calls_per_day: 1_000,
            audit_max_tokens_per_day: 1_000_000,
        }
    }
}

/// The default `cache.max_entries`. Each entry holds in memory its quantised vector
/// in the index (384 bytes for MiniLM, plus its scale and id), its HNSW links once its
/// partition is large (16 to 32 neighbours of 4 bytes), and its share of its partition's
/// index (a partition per tenant, model, system prompt and parameters: about 2.5 KB each
/// were measured when every request opened a new one); prompts and answers stay on disk,
/// read through the store's page cache (`store.cache_bytes`). So 100,000 entries bound
/// the index to about 100 MB when partitions are shared and about 250 MB in the worst case
/// of one entry per partition. `0` lifts the limit.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// `cache.examples_min_similarity` unset, for all-MiniLM-L6-v2 (and remote embedders).
pub const EXAMPLES_MIN_SIMILARITY: f32 = 0.7;

/// `cache.examples_min_similarity` unset, for multilingual-e5-small, whose cosines sit
/// higher: unrelated prompts (GPTCache's 999 random pairings) score 0.83 at the median,
/// 0.89 at the 99th percentile and 0.92 at most; its paraphrases 0.94 and up.
pub const E5_EXAMPLES_MIN_SIMILARITY: f32 = 0.92;

impl CacheConfig {
    /// The configured `examples_min_similarity`, else the one for `embedder`'s model.
    pub fn examples_min_similarity_for(&self, embedder: &EmbedderConfig) -> f32 {
        self.examples_min_similarity.unwrap_or(match embedder {
            EmbedderConfig::Local {
                model: LocalModel::E5Small,
                ..
            } => E5_EXAMPLES_MIN_SIMILARITY,
            _ => EXAMPLES_MIN_SIMILARITY,
        })
    }
}

/// The learned verifier's candidate gate ([`deja_core::engine::DEFAULT_GATE`]): below
/// it, no candidate is judged. Chosen with the model on labelled pairs; see docs/hit-quality.md.
pub const DEFAULT_MIN_SIMILARITY: f32 = deja_core::engine::DEFAULT_GATE;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// A model run in-process: all-MiniLM-L6-v2 (English) or multilingual-e5-small.
    Local {
        /// Which model (also `DEJA_EMBEDDER_MODEL`, `--embedder-model`).
        #[serde(default)]
        model: LocalModel,
        /// The model's directory. Default for all-MiniLM-L6-v2: `$DEJA_MODEL_DIR`, else
        /// the user's data dir `deja/models/all-MiniLM-L6-v2`; for multilingual-e5-small:
        /// `$DEJA_E5_DIR`, else `deja/models/multilingual-e5-small` there.
        #[serde(default)]
        model_dir: Option<PathBuf>,
        /// Threads computing embeddings (and the pair model's scores), batching the
        /// requests that arrive together. Default: the machine's cores, at most
        /// [`MAX_DEFAULT_EMBEDDER_THREADS`] (see [`default_embedder_threads`]).
        #[serde(default = "default_embedder_threads")]
        threads: usize,
        /// The pair model (cross-encoder) the learned verifier is stacked with:
        /// `"auto"` (the default) loads `deja-pair-model.safetensors` (for
        /// multilingual-e5-small, `deja-pair-model-e5.safetensors`) from the model
        /// directory when `scripts/install-model.sh` put it there, `"off"` never loads
        /// one, a path loads that file (and fails to start if it cannot). See
        /// docs/hit-quality.md, "The pair model", for what it adds, measured on streams of
        /// requests.
        #[serde(default)]
        pair_model: PairModelSetting,
    },
    /// An OpenAI-compatible `/embeddings` endpoint (by default the upstream).
    Openai {
        model: String,
        dim: usize,
        #[serde(default)]
        base_url: Option<String>,
        #[serde(default)]
        api_key: Option<String>,
    },
}

/// The most embedding threads the default asks for.
pub const MAX_DEFAULT_EMBEDDER_THREADS: usize = 8;

/// `embedder.threads` by default: one per core, at most [`MAX_DEFAULT_EMBEDDER_THREADS`].
/// On 2 cores, two threads served 1.6x the semantic hits of one at 16 connections, exact
/// hits unchanged (docs/performance.md).
pub fn default_embedder_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_DEFAULT_EMBEDDER_THREADS))
}

/// `embedder.model`: which local model embeds prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LocalModel {
    /// sentence-transformers/all-MiniLM-L6-v2: English, 6 layers, the fastest.
    #[serde(rename = "all-minilm-l6-v2", alias = "all-MiniLM-L6-v2")]
    MiniLm,
    /// intfloat/multilingual-e5-small (4-bit): about 100 languages, 12 layers.
    #[serde(rename = "multilingual-e5-small")]
    E5Small,
    /// Both, by the prompt's language: English prompts by all-MiniLM-L6-v2, the others by
    /// multilingual-e5-small (when it is installed; else all by all-MiniLM-L6-v2), each
    /// with its own index, verifiers and pair model. `model_dir` is all-MiniLM-L6-v2's;
    /// multilingual-e5-small's is `$DEJA_E5_DIR`, else `deja/models/multilingual-e5-small`.
    /// The default: each language is read by the model that reads it best
    /// (docs/hit-quality.md, "Both models, by language").
    #[default]
    #[serde(rename = "auto")]
    Auto,
}

impl LocalModel {
    /// The setting's value for a model name (case-insensitive).
    pub fn parse(name: &str) -> Option<LocalModel> {
        match name.to_ascii_lowercase().as_str() {
            "all-minilm-l6-v2" => Some(LocalModel::MiniLm),
            "multilingual-e5-small" => Some(LocalModel::E5Small),
            "auto" => Some(LocalModel::Auto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LocalModel::MiniLm => "all-minilm-l6-v2",
            LocalModel::E5Small => "multilingual-e5-small",
            LocalModel::Auto => "auto",
        }
    }
}

/// `embedder.pair_model`: see [`EmbedderConfig::Local`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PairModelSetting {
    #[default]
    Auto,
    Off,
    Path(PathBuf),
}

impl Serialize for PairModelSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PairModelSetting::Auto => s.serialize_str("auto"),
            PairModelSetting::Off => s.serialize_str("off"),
            PairModelSetting::Path(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PairModelSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PairModelSetting::parse(&String::deserialize(d)?))
    }
}

impl PairModelSetting {
    /// `auto`, `off`, or a path.
    pub fn parse(v: &str) -> PairModelSetting {
        match v {
            "auto" => PairModelSetting::Auto,
            "off" => PairModelSetting::Off,
            path => PairModelSetting::Path(PathBuf::from(path)),
        }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig::Local {
            model: LocalModel::default(),
            model_dir: None,
            threads: default_embedder_threads(),
            pair_model: PairModelSetting::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Every stored entry is fsynced before the response completes.
    #[default]
    Strict,
    /// Entries become durable within about a second; a crash may lose the last second.
    Fast,
}

/// Where entries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// The embedded store in `data_dir` (one process).
    #[default]
    Local,
    /// A Redis server or Redis Cluster at `store.url`, shared by every replica.
    Redis,
}

/// Where semantic search happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IndexKind {
    /// An HNSW index in each process, loaded from the store at start (with Redis: kept
    /// current by the events stream).
    #[default]
    Local,
    /// Redis Stack's (or Redis 8's) query engine on the Redis of `store.url`, shared by
    /// every replica (`FT.SEARCH … KNN`); needs `store.kind = "redis"`, not a cluster.
    RedisSearch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// Where semantic search happens (`--index`).
    pub index: IndexKind,
    /// Local store: when a stored entry is durable.
    pub durability: Durability,
    /// Local store: memory for the store's page cache, in bytes.
    pub cache_bytes: usize,
    /// Local store: memory for the entries read most recently, kept decoded so a repeated
    /// exact hit reads no table (0: none).
    pub hot_bytes: usize,
    /// Redis store: `redis://HOST:PORT[/DB]`, `rediss://…`, or a cluster through any of
    /// its nodes, `redis+cluster://HOST:PORT,HOST:PORT`. May hold a password; it is
    /// redacted wherever the config is shown.
    pub url: Option<String>,
    /// Redis store: prefix of every key, so several caches can share one Redis.
    pub key_prefix: String,
    /// Redis store: Redis expiry of every entry, a backstop beside the category TTLs
    /// (unset: entries stay until deja removes them).
    pub entry_ttl_secs: Option<u64>,
    /// Redis store: longest wait for one command before the request bypasses the cache.
    pub response_timeout_ms: u64,
    /// Redis store: entries kept in the in-process L1 for exact hits without a round trip
    /// (0: none).
    pub l1_max_entries: u64,
    /// Redis store: longest an entry stays in the L1, which bounds how long an entry
    /// removed by another replica could still be served if its removal event was missed.
    pub l1_ttl_secs: u64,
    /// Embedding items shared by every replica through Memcached, `memcached://HOST:PORT`
    /// (unset: none); a second tier behind this replica's own store
    /// ([`crate::shared_embeddings`]).
    pub shared_embeddings: Option<String>,
    /// Memcached: longest wait for one round trip before it is skipped.
    pub shared_timeout_ms: u64,
    /// Memcached: expiry of shared items, in seconds (at most 30 days; 0: none, Memcached
    /// then drops the least recently used when it is full).
    pub shared_ttl_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::default(),
            index: IndexKind::default(),
            durability: Durability::default(),
            cache_bytes: 64 * 1024 * 1024,
            hot_bytes: deja_store_local::DEFAULT_HOT_BYTES,
            url: None,
            key_prefix: "deja".into(),
            entry_ttl_secs: None,
            response_timeout_ms: 2_000,
            l1_max_entries: 10_000,
            l1_ttl_secs: 10,
            shared_embeddings: None,
            shared_timeout_ms: 200,
            shared_ttl_secs: 7 * 24 * 3600,
        }
    }
}

impl StoreConfig {
    /// Selects the store from a `--store` / `DEJA_STORE` value: `local`, or a Redis URL.
    pub fn select(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if value == "local" {
            self.kind = StoreKind::Local;
            self.url = None;
        } else if is_redis_url(value) {
            self.kind = StoreKind::Redis;
            self.url = Some(value.to_string());
        } else {
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: format!(
                    "{:?} is not valid; use \"local\", redis://HOST:PORT or redis+cluster://HOST:PORT,HOST:PORT",
                    redact_url(value)
                ),
            });
        }
        Ok(())
    }
}

fn is_redis_url(v: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
    ]
    .iter()
    .any(|s| v.starts_with(s))
}

/// A URL with its credentials replaced, for messages and the admin API's config view.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// `[limits]`: what one request, and one connection, may take of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A new connection that has not sent a complete request head within this many
    /// seconds is closed. Env `DEJA_HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout_secs: u64,
    /// Longest pause while a request body is being received, in seconds; then the
    /// request is answered 408. Env `DEJA_BODY_READ_TIMEOUT_SECS`.
    pub body_read_timeout_secs: u64,
    /// A connection with no request in progress (a keep-alive connection between
    /// requests) is closed after this many seconds. Responses being sent, streams
    /// included, are requests in progress and are never cut by it. Env
    /// `DEJA_IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: u64,
    /// Most client connections open at once; at the limit a new connection closes the one
    /// idle longest, or, when every connection has a request in progress, waits until one
    /// ends. Unset: derived from the open-file limit at start
    /// ([`crate::conn::default_max_connections`]). Env `DEJA_MAX_CONNECTIONS`, flag
    /// `--max-connections`.
    pub max_connections: Option<usize>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Reads a TOML file (missing keys take their defaults).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies environment overrides from `lookup` (`std::env::var` in production).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = lookup("DEJA_LISTEN") {
            self.listen = parse_key("DEJA_LISTEN", &v, "an address like 127.0.0.1:8080")?;
        }
        if let Some(v) = lookup("DEJA_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = lookup("OPENAI_BASE_URL") {
            self.upstream.base_url = v;
        }
        if let Some(v) = lookup("DEJA_UPSTREAM") {
            self.upstream.base_url = v;
        }
        if let Some(v) = lookup("OPENAI_API_KEY").filter(|v| !v.is_empty()) {
            self.upstream.api_key = Some(v);
        }
        // Not ANTHROPIC_BASE_URL: that is where a client's SDK is pointed, which may well
        // be deja itself.
        if let Some(v) = lookup("DEJA_ANTHROPIC_BASE_URL") {
            self.anthropic.base_url = v;
        }
        if let Some(v) = lookup("ANTHROPIC_API_KEY").filter(|v| !v.is_empty()) {
            self.anthropic.api_key = Some(v);
        }
        // Not AZURE_OPENAI_ENDPOINT / AZURE_OPENAI_API_KEY: those configure a client's SDK,
        // which may well be pointed at deja itself.
        if let Some(v) = lookup("DEJA_AZURE_BASE_URL").filter(|v| !v.is_empty()) {
            self.azure.base_url = Some(v);
        }
        if let Some(v) = lookup("DEJA_AZURE_API_KEY").filter(|v| !v.is_empty()) {
            self.azure.api_key = Some(v);
        }
        if let Some(v) = lookup("DEJA_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.admin.token = Some(v);
        }
        if let Some(v) = lookup("DEJA_MIN_SIMILARITY") {
            self.cache.min_similarity =
                parse_key("DEJA_MIN_SIMILARITY", &v, "a number between 0 and 1")?;
        }
        if let Some(v) = lookup("DEJA_MAX_FALSE_HIT_RATE") {
            self.cache.max_false_hit_rate = Some(parse_key(
                "DEJA_MAX_FALSE_HIT_RATE",
                &v,
                "a share above 0 and below 0.5, e.g. 0.01",
            )?);
        }
        if let Some(v) = lookup("DEJA_MAX_ALIASES") {
            self.cache.max_aliases = parse_key("DEJA_MAX_ALIASES", &v, "a whole number")?;
        }
        if let Some(v) = lookup("DEJA_TTL_SECS") {
            self.cache.ttl_secs = Some(parse_key("DEJA_TTL_SECS", &v, "whole seconds")?);
        }
        if let Some(v) = lookup("DEJA_DURABILITY") {
            self.store.durability = match v.as_str() {
                "strict" => Durability::Strict,
                "fast" => Durability::Fast,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "DEJA_DURABILITY".into(),
                        message: format!("{v:?} is not valid; use \"strict\" or \"fast\""),
                    })
                }
            };
        }
        if let Some(v) = lookup("DEJA_STORE") {
            self.store.select("DEJA_STORE", &v)?;
        }
        if let Some(v) = lookup("DEJA_SHARED_EMBEDDINGS") {
            self.store.shared_embeddings = Some(v);
        }
        for (key, field) in [
            (
                "DEJA_HEADER_READ_TIMEOUT_SECS",
                &mut self.limits.header_read_timeout_secs,
            ),
            (
                "DEJA_BODY_READ_TIMEOUT_SECS",
                &mut self.limits.body_read_timeout_secs,
            ),
            ("DEJA_IDLE_TIMEOUT_SECS", &mut self.limits.idle_timeout_secs),
        ] {
            if let Some(v) = lookup(key) {
                *field = parse_key(key, &v, "whole seconds")?;
            }
        }
        if let Some(v) = lookup("DEJA_MAX_CONNECTIONS") {
            self.limits.max_connections = Some(parse_key(
                "DEJA_MAX_CONNECTIONS",
                &v,
                "a number of connections",
            )?);
        }
        if let Some(v) = lookup("DEJA_EMBEDDER_MODEL") {
            self.set_embedder_model("DEJA_EMBEDDER_MODEL", &v)?;
        }
        if let Some(v) = lookup("DEJA_MODEL_DIR") {
            // The default model's directory (as for scripts/install-model.sh); the
            // multilingual one has its own, `DEJA_E5_DIR`.
            if let EmbedderConfig::Local {
                model: LocalModel::MiniLm | LocalModel::Auto,
                model_dir,
                ..
            } = &mut self.embedder
            {
                *model_dir = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = lookup("DEJA_PAIR_MODEL") {
            if let EmbedderConfig::Local { pair_model, .. } = &mut self.embedder {
                *pair_model = PairModelSetting::parse(&v);
            }
        }
        Ok(())
    }

    /// Selects the local model `name` (`key` names the setting in an error). A change of
    /// model forgets a directory set for the other one (`auto`'s is all-MiniLM-L6-v2's).
    pub fn set_embedder_model(&mut self, key: &str, name: &str) -> Result<(), ConfigError> {
        let chosen = LocalModel::parse(name).ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            message: format!(
                "unknown model {name:?}: use \"all-minilm-l6-v2\", \"multilingual-e5-small\" or \"auto\""
            ),
        })?;
        match &mut self.embedder {
            EmbedderConfig::Local {
                model, model_dir, ..
            } => {
                let e5_dir = |m: LocalModel| m == LocalModel::E5Small;
                if e5_dir(*model) != e5_dir(chosen) {
                    *model_dir = None;
                }
                *model = chosen;
            }
            EmbedderConfig::Openai { .. } => {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "selects a local model, but embedder.kind is \"openai\"".into(),
                })
            }
        }
        Ok(())
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .admin
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "admin.token".into(),
                message: "is empty; set a secret, or remove the key to turn the admin API off"
                    .into(),
            });
        }
        if let Some(t) = self.admin.token.as_deref() {
            let chars = t.trim().chars().count();
            if chars < MIN_ADMIN_TOKEN_CHARS {
                return Err(ConfigError::Invalid {
                    key: "admin.token".into(),
                    message: format!(
                        "is {chars} characters; use a secret of at least {MIN_ADMIN_TOKEN_CHARS} (e.g. `openssl rand -hex 16`), or remove the key to turn the admin API off"
                    ),
                });
            }
        }
        for (key, value) in [
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
            ),
            (
                "limits.body_read_timeout_secs",
                self.limits.body_read_timeout_secs,
            ),
            ("limits.idle_timeout_secs", self.limits.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be at least 1 second".into(),
                });
            }
        }
        let budgets = std::iter::once((
            "cache.max_false_hit_rate".to_string(),
            self.cache.max_false_hit_rate,
        ))
        .chain(self.categories.iter().map(|(name, c)| {
            (
                format!("categories.{name}.max_false_hit_rate"),
                c.max_false_hit_rate,
            )
        }));
        for (key, value) in budgets {
            if value.is_some_and(|d| !deja_core::budget::valid_rate(d)) {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be a share above 0 and below 0.5, e.g. 0.01 for 1%".into(),
                });
            }
        }
        for (key, share) in [
            ("cache.audit_share", self.cache.audit_share),
            ("cache.audit_exact_share", self.cache.audit_exact_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be a share between 0 and 1, e.g. 0.01 for 1%".into(),
                });
            }
        }
        if self
            .cache
            .answer_min_similarity
            .is_some_and(|s| !(0.0..=1.0).contains(&s))
        {
            return Err(ConfigError::Invalid {
                key: "cache.answer_min_similarity".into(),
                message: "must be between 0 and 1".into(),
            });
        }
        if self.limits.max_connections == Some(0) {
            return Err(ConfigError::Invalid {
                key: "limits.max_connections".into(),
                message:
                    "must be at least 1 (remove the key to derive it from the open-file limit)"
                        .into(),
            });
        }
        if let Some(url) = &self.store.shared_embeddings {
            crate::shared_embeddings::parse_url(url).map_err(|message| ConfigError::Invalid {
                key: "store.shared_embeddings".into(),
                message,
            })?;
        }
        if self.store.shared_ttl_secs > crate::shared_embeddings::MAX_TTL_SECS {
            return Err(ConfigError::Invalid {
                key: "store.shared_ttl_secs".into(),
                message: format!(
                    "{} is more than 30 days, which Memcached reads as a date",
                    self.store.shared_ttl_secs
                ),
            });
        }
        let s = self.cache.min_similarity;
        if !(0.0..=1.0).contains(&s) {
            return Err(ConfigError::Invalid {
                key: "cache.min_similarity".into(),
                message: format!("{s} is out of range; use a cosine similarity between 0 and 1"),
            });
        }
        if self.cache.candidates == 0 {
            return Err(ConfigError::Invalid {
                key: "cache.candidates".into(),
                message: "must be at least 1".into(),
            });
        }
        for (key, value) in [
            ("cache.max_bytes", self.cache.max_bytes),
            ("cache.cold_after_secs", self.cache.cold_after_secs),
            (
                "cache.sweep_interval_secs",
                Some(self.cache.sweep_interval_secs),
            ),
        ] {
            if value == Some(0) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be at least 1 (remove the key for no limit)".into(),
                });
            }
        }
        self.validate_staleness()?;
        self.validate_namespaces()?;
        for (model, price) in &self.prices {
            if model.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "prices".into(),
                    message: "a model name is empty; write [prices.\"model-name\"]".into(),
                });
            }
            if let Some(message) = price.problem() {
                return Err(ConfigError::Invalid {
                    key: format!("prices.{model:?}"),
                    message,
                });
            }
        }
        for (key, url) in [
            ("upstream.base_url", Some(&self.upstream.base_url)),
            ("anthropic.base_url", Some(&self.anthropic.base_url)),
            ("azure.base_url", self.azure.base_url.as_ref()),
        ] {
            let Some(url) = url else { continue };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: format!("{url:?} is not an http(s) URL"),
                });
            }
        }
        if let Some(url) = &self.azure.base_url {
            check_azure_endpoint(url).map_err(|message| ConfigError::Invalid {
                key: "azure.base_url".into(),
                message,
            })?;
        }
        match (self.store.kind, self.store.url.as_deref()) {
            (StoreKind::Redis, None) => {
                return Err(ConfigError::Invalid {
                    key: "store.url".into(),
                    message: "is required with store.kind = \"redis\", e.g. redis://127.0.0.1:6379"
                        .into(),
                })
            }
            (StoreKind::Redis, Some(url)) if !is_redis_url(url) => {
                return Err(ConfigError::Invalid {
                    key: "store.url".into(),
                    message: format!(
                        "{:?} is not a Redis URL; use redis://HOST:PORT, rediss://HOST:PORT or redis+cluster://HOST:PORT,HOST:PORT",
                        redact_url(url)
                    ),
                })
            }
            (StoreKind::Local, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "store.url".into(),
                    message: "is only used with store.kind = \"redis\"".into(),
                })
            }
            _ => {}
        }
        if self.store.index == IndexKind::RedisSearch {
            let url = self.store.url.as_deref().unwrap_or_default();
            if self.store.kind != StoreKind::Redis || url.contains("+cluster://") {
                return Err(ConfigError::Invalid {
                    key: "store.index".into(),
                    message: "\"redis-search\" needs store.kind = \"redis\" on a Redis Stack or Redis 8 server (not a cluster); use \"local\" otherwise".into(),
                });
            }
        }
        if self.store.response_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "store.response_timeout_ms".into(),
                message: "must be at least 1".into(),
            });
        }
        if let EmbedderConfig::Openai { dim: 0, .. } = self.embedder {
            return Err(ConfigError::Invalid {
                key: "embedder.dim".into(),
                message: "must be the embedding length, e.g. 1536".into(),
            });
        }
        Ok(())
    }
}

impl Config {
    fn validate_namespaces(&self) -> Result<(), ConfigError> {
        for (name, ns) in &self.namespaces {
            let key = format!("namespaces.{name}");
            if name.is_empty() || name.len() > 256 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::Invalid {
                    key,
                    message: "a namespace name is 1 to 256 visible ASCII characters, as clients send it in x-deja-namespace".into(),
                });
            }
            ns.check()
                .map_err(|message| ConfigError::Invalid { key, message })?;
        }
        Ok(())
    }

    fn validate_staleness(&self) -> Result<(), ConfigError> {
        let s = &self.staleness;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("staleness.{key}"),
            message: message.into(),
        };
        if s.interval_secs == 0 {
            return Err(invalid("interval_secs", "must be at least 1"));
        }
        if s.entries_per_pass == 0 {
            return Err(invalid(
                "entries_per_pass",
                "must be at least 1 (set enabled = false to stop checking)",
            ));
        }
        if !(0.0..=1.0).contains(&s.min_similarity) {
            return Err(invalid(
                "min_similarity",
                &format!(
                    "{} is out of range; use a cosine similarity between 0 and 1",
                    s.min_similarity
                ),
            ));
        }
        if s.enabled && self.upstream.api_key.is_none() {
            return Err(invalid(
                "enabled",
                "staleness checks need upstream.api_key (or OPENAI_API_KEY): clients' keys are never stored, so the job has no other credential",
            ));
        }
        Ok(())
    }
}

/// What is wrong with an Azure resource endpoint, if anything: it is where each request's
/// own `/openai/...` path goes, so it must not already hold a part of such a path (a
/// deployment, `/openai/v1`) or a query. A path before `/openai` (a gateway's prefix) is
/// kept.
fn check_azure_endpoint(url: &str) -> Result<(), String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix("/openai").unwrap_or(path);
    if url.contains(['?', '#']) || path.split('/').any(|s| s == "openai") {
        return Err(format!(
            "{url:?} is not a resource endpoint; give it without the /openai/... path or a query, e.g. https://RESOURCE.openai.azure.com (deja keeps each request's path and api-version)"
        ));
    }
    Ok(())
}

fn parse_key<T: std::str::FromStr>(key: &str, value: &str, want: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{value:?} is not valid; expected {want}"),
    })
}

#[cfg(test)]
mod tests;
