//! deja's OpenAI-compatible caching proxy. This crate is the composition root: the only
//! place that reads configuration and picks the embedder, store and index; everything
//! below it receives them as trait objects.

pub mod admin;
pub mod answers;
pub mod audit;
pub mod budget_view;
pub mod coalesce;
pub mod config;
pub mod conn;
pub mod controls;
pub mod dashboard;
pub mod error;
pub mod feedback;
pub mod logging;
pub mod observe;
pub mod pricing;
pub mod request_id;
pub mod routes;
pub mod scrape;
pub mod shared_embeddings;
pub mod snapshot;
pub mod staleness;
pub mod state;
pub mod store_view;
pub mod tags;
pub mod tenant;
pub mod upstream;

pub use state::AppState;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::{any, get, post};
use axum::Router;
use deja_core::{
    Cache, CacheOptions, CapacityLimits, Clock, Embedder, EntryStore, Eviction, OtherLanguages,
    PairScorer, SystemClock, VectorIndex,
};
use deja_embed::{
    BertEmbedder, BertOptions, E5Embedder, E5Options, HttpEmbedder, HttpEmbedderConfig,
};
use deja_store_local::{HnswIndex, HnswParams, RedbStore, StoreDurability};
use deja_store_redis::{RedisSearchIndex, RedisStore, RedisStoreOptions};

use crate::config::{Config, Durability, EmbedderConfig, IndexKind, StoreKind};

/// Opens the embedded store at `<data_dir>/deja.redb`.
pub fn open_store(config: &Config) -> anyhow::Result<RedbStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let durability = match config.store.durability {
        Durability::Strict => StoreDurability::Strict,
        Durability::Fast => StoreDurability::Fast,
    };
    let path = config.data_dir.join("deja.redb");
    RedbStore::open_with_cache(&path, durability, config.store.cache_bytes)
        .map(|s| s.with_hot_entries(config.store.hot_bytes))
        .with_context(|| format!("opening the store at {}", path.display()))
}

/// Opens the configured store: the embedded one in `data_dir`, or Redis (standalone or
/// Cluster) shared with other replicas.
pub async fn build_store(config: &Config) -> anyhow::Result<Arc<dyn EntryStore>> {
    Ok(match config.store.kind {
        StoreKind::Local => Arc::new(open_store(config)?),
        StoreKind::Redis => connect_redis(config).await?,
    })
}

/// The Redis options of `[store]`.
fn redis_options(config: &Config) -> RedisStoreOptions {
    RedisStoreOptions {
        prefix: config.store.key_prefix.clone(),
        entry_ttl_secs: config.store.entry_ttl_secs,
        response_timeout: Duration::from_millis(config.store.response_timeout_ms),
        l1_max_entries: config.store.l1_max_entries,
        l1_ttl: Duration::from_secs(config.store.l1_ttl_secs),
        ..RedisStoreOptions::default()
    }
}

/// Connects to the Redis (standalone or Cluster) of `store.url`.
pub async fn connect_redis(config: &Config) -> anyhow::Result<Arc<RedisStore>> {
    let url = config
        .store
        .url
        .as_deref()
        .context("store.url is required with store.kind = \"redis\"")?;
    let store = RedisStore::connect(url, redis_options(config))
        .await
        .with_context(|| format!("connecting to Redis at {}", config::redact_url(url)))?;
    Ok(Arc::new(store))
}

/// The configured embedder, and the pair model loaded with it (if any).
pub struct Embedders {
    pub embedder: Arc<dyn Embedder>,
    pub pair: Option<Arc<dyn PairScorer>>,
    /// With `embedder.model = "auto"`: the embedder of the prompts that are not English,
    /// and its pair model.
    pub other: Option<Loaded>,
}

/// The pair-model file to load: the configured one, or with `auto` the file `name` beside
/// the base model in `dir` when it is installed (by `install`, named in the log otherwise).
fn pair_file(
    setting: &config::PairModelSetting,
    dir: &Path,
    name: &str,
    install: &str,
) -> Option<PathBuf> {
    match setting {
        config::PairModelSetting::Off => None,
        config::PairModelSetting::Path(p) => Some(p.clone()),
        config::PairModelSetting::Auto => {
            let p = dir.join(name);
            if p.is_file() {
                Some(p)
            } else {
                tracing::info!(
                    path = %p.display(),
                    install,
                    "no pair model installed; verifying without it"
                );
                None
            }
        }
    }
}

/// Says whether the loaded pair model is asked: only a verifier stacked with it does.
fn log_pair_model(pair: Option<&dyn PairScorer>) {
    let Some(p) = pair else {
        return;
    };
    let stacked = deja_core::verify::model::Model::shipped_for(Some(p.id()))
        .is_ok_and(|m| m.pair_model() == Some(p.id()));
    if stacked {
        tracing::info!(pair_model = p.id(), "pair model loaded");
    } else {
        tracing::warn!(
            pair_model = p.id(),
            "pair model loaded, but this build has no verifier stacked on it, so it is not asked (deja train-verifier --pair-model re-stacks one)"
        );
    }
}

/// Builds the configured embedder and, for the local one, its pair model
/// (`embedder.pair_model`).
pub fn build_embedders(config: &Config) -> anyhow::Result<Embedders> {
    Ok(match &config.embedder {
        EmbedderConfig::Local {
            model: config::LocalModel::E5Small,
            model_dir,
            threads,
            pair_model,
        } => {
            let dir = model_dir.clone().unwrap_or_else(deja_embed::default_e5_dir);
            let (embedder, pair) = load_e5(&dir, *threads, pair_model)?;
            Embedders {
                embedder,
                pair,
                other: None,
            }
        }
        EmbedderConfig::Local {
            model: config::LocalModel::MiniLm,
            model_dir,
            threads,
            pair_model,
        } => {
            let (embedder, pair) = load_minilm(model_dir.as_deref(), *threads, pair_model)?;
            Embedders {
                embedder,
                pair,
                other: None,
            }
        }
        EmbedderConfig::Local {
            model: config::LocalModel::Auto,
            model_dir,
            threads,
            pair_model,
        } => {
            let (embedder, pair) = load_minilm(model_dir.as_deref(), *threads, pair_model)?;
            // Without the multilingual model, every prompt goes to the English one, as
            // with `all-minilm-l6-v2`.
            // A pair-model path is the English model's; the multilingual one loads its own.
            let e5_pair = match pair_model {
                config::PairModelSetting::Off => config::PairModelSetting::Off,
                _ => config::PairModelSetting::Auto,
            };
            let other = match load_e5(&deja_embed::default_e5_dir(), *threads, &e5_pair) {
                Ok(loaded) => Some(loaded),
                Err(e) if is_missing(&e) => {
                    tracing::warn!(
                        install = "scripts/install-model.sh multilingual-e5-small",
                        "embedder.model = \"auto\": multilingual-e5-small is not installed, so prompts in other languages are embedded by all-MiniLM-L6-v2 too"
                    );
                    None
                }
                Err(e) => return Err(e),
            };
            Embedders {
                embedder,
                pair,
                other,
            }
        }
        EmbedderConfig::Openai {
            model,
            dim,
            base_url,
            api_key,
        } => Embedders {
            embedder: Arc::new(HttpEmbedder::new(HttpEmbedderConfig {
                base_url: base_url
                    .clone()
                    .unwrap_or_else(|| config.upstream.base_url.clone()),
                api_key: api_key.clone().or_else(|| config.upstream.api_key.clone()),
                model: model.clone(),
                dimensions: None,
                dim: *dim,
                timeout: Duration::from_secs(config.upstream.timeout_secs.max(1)),
            })?),
            pair: None,
            other: None,
        },
    })
}

/// A local embedder and its pair model, if one is loaded.
pub type Loaded = (Arc<dyn Embedder>, Option<Arc<dyn PairScorer>>);

/// all-MiniLM-L6-v2 from `dir` (else its default directory) and its pair model.
fn load_minilm(
    dir: Option<&std::path::Path>,
    threads: usize,
    pair_model: &config::PairModelSetting,
) -> anyhow::Result<Loaded> {
    let dir = dir.map_or_else(deja_embed::default_model_dir, std::path::Path::to_path_buf);
    let opts = BertOptions {
        threads: threads.max(1),
        pair_model: pair_file(
            pair_model,
            &dir,
            deja_embed::PAIR_FILE,
            deja_embed::INSTALL_HINT,
        ),
        ..BertOptions::default()
    };
    let bert = BertEmbedder::load(&dir, opts)?;
    let pair = bert.pair_scorer().map(|p| p as Arc<dyn PairScorer>);
    log_pair_model(pair.as_deref());
    Ok((Arc::new(bert), pair))
}

/// multilingual-e5-small from `dir` and its pair model.
fn load_e5(
    dir: &std::path::Path,
    threads: usize,
    pair_model: &config::PairModelSetting,
) -> anyhow::Result<Loaded> {
    let opts = E5Options {
        threads: threads.max(1),
        pair_model: pair_file(
            pair_model,
            dir,
            deja_embed::E5_PAIR_FILE,
            deja_embed::E5_INSTALL_HINT,
        ),
        ..E5Options::default()
    };
    let e5 = E5Embedder::load(dir, opts)?;
    tracing::info!(
        embedder = e5.id(),
        weights_mb = e5.weight_bytes() / 1_000_000,
        "multilingual-e5-small loaded"
    );
    let pair = e5.pair_scorer().map(|p| p as Arc<dyn PairScorer>);
    log_pair_model(pair.as_deref());
    Ok((Arc::new(e5), pair))
}

/// The other languages' space for `embedder` and its pair model, with a fresh in-process
/// index (as `deja eval` and `deja simulate` run it; `deja serve` picks the index by
/// `store.index`).
pub fn local_other_languages(
    config: &Config,
    embedder: Arc<dyn Embedder>,
    pair_scorer: Option<Arc<dyn PairScorer>>,
) -> OtherLanguages {
    let index = Arc::new(HnswIndex::new(
        embedder.id(),
        embedder.dim(),
        HnswParams::default(),
    ));
    other_languages(config, embedder, pair_scorer, index)
}

/// The other languages' space: `embedder`, its pair model, `index`, and the
/// category-example threshold (`cache.examples_min_similarity`, else
/// multilingual-e5-small's).
fn other_languages(
    config: &Config,
    embedder: Arc<dyn Embedder>,
    pair_scorer: Option<Arc<dyn PairScorer>>,
    index: Arc<dyn VectorIndex>,
) -> OtherLanguages {
    OtherLanguages {
        embedder,
        index,
        pair_scorer,
        examples_min_similarity: config
            .cache
            .examples_min_similarity
            .unwrap_or(config::E5_EXAMPLES_MIN_SIMILARITY),
    }
}

/// `hnsw` with its graph inserts on the index's own thread, so a miss's store write and
/// the graph work of the one before run side by side (inline if the thread cannot start).
fn with_insert_thread(hnsw: HnswIndex) -> Arc<HnswIndex> {
    let hnsw = Arc::new(hnsw);
    if let Err(e) = hnsw.insert_in_background() {
        tracing::warn!(error = %e, "could not start the index's insert thread; inserting inline");
    }
    hnsw
}

/// The vector index of `embedder`'s vectors in Redis Stack (`store.index = "redis-search"`).
async fn redis_search_index(
    config: &Config,
    embedder: &dyn Embedder,
) -> anyhow::Result<RedisSearchIndex> {
    let url = config.store.url.as_deref().unwrap_or_default();
    RedisSearchIndex::connect(url, &redis_options(config), embedder.id(), embedder.dim())
        .await
        .with_context(|| {
            format!(
                "creating the vector index in Redis at {} (store.index = \"redis-search\" needs Redis Stack or Redis 8)",
                config::redact_url(url)
            )
        })
}

/// Whether loading failed because the model is not installed.
fn is_missing(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<deja_core::EmbedError>(),
            Some(deja_core::EmbedError::ModelMissing { .. })
        )
    })
}

/// Builds the configured embedder (without its pair model).
pub fn build_embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    Ok(build_embedders(config)?.embedder)
}

/// Builds the cache on the configured store and loads the in-process index from it (with
/// Redis: every replica loads the shared entries at start).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    config.validate()?;
    let redis = match config.store.kind {
        StoreKind::Redis => Some(connect_redis(&config).await?),
        StoreKind::Local => None,
    };
    let (store, local): (Arc<dyn EntryStore>, Option<Arc<RedbStore>>) = match &redis {
        Some(r) => (r.clone(), None),
        None => {
            let local = Arc::new(open_store(&config)?);
            (local.clone(), Some(local))
        }
    };
    // Other replicas' writes are followed from the events stream's position before the
    // index is loaded, so nothing written during the load is missed (unless the index
    // comes from a snapshot, which says where to follow from).
    let mut events_from = match &redis {
        Some(r) => Some(
            r.events_tail()
                .await
                .context("reading the position of the Redis events stream")?,
        ),
        None => None,
    };
    let Embedders {
        embedder,
        pair: pair_scorer,
        other,
    } = build_embedders(&config)?;
    let snapshot_path = config.data_dir.join(snapshot::SNAPSHOT_FILE);
    let params = HnswParams::default();
    let redis_identity = config
        .store
        .url
        .as_deref()
        .map(|url| snapshot::redis_identity(url, &config.store.key_prefix));
    // The in-process index (possibly from its snapshot), unless replicas share Redis
    // Stack's.
    let (index, hnsw, from_snapshot): (Arc<dyn VectorIndex>, Option<Arc<HnswIndex>>, bool) =
        match config.store.index {
            IndexKind::Local => {
                let loaded = match (&local, &redis, &redis_identity) {
                    (Some(l), _, _) => {
                        snapshot::load(&snapshot_path, l, embedder.id(), embedder.dim(), params)
                    }
                    (None, Some(r), Some(identity)) => snapshot::load_redis(
                        &snapshot_path,
                        r,
                        identity,
                        embedder.id(),
                        embedder.dim(),
                        params,
                    )
                    .await
                    .map(|(index, event)| {
                        events_from = Some(event);
                        index
                    }),
                    _ => None,
                };
                let from_snapshot = loaded.is_some();
                let hnsw = with_insert_thread(
                    loaded.unwrap_or_else(|| HnswIndex::new(embedder.id(), embedder.dim(), params)),
                );
                (hnsw.clone(), Some(hnsw), from_snapshot)
            }
            IndexKind::RedisSearch => (
                Arc::new(redis_search_index(&config, embedder.as_ref()).await?),
                None,
                false,
            ),
        };
    // The other languages' index: never from a snapshot (rebuilt from the store below).
    let other = match other {
        Some((other_embedder, other_pair)) => {
            let index: Arc<dyn VectorIndex> = match config.store.index {
                IndexKind::Local => with_insert_thread(HnswIndex::new(
                    other_embedder.id(),
                    other_embedder.dim(),
                    params,
                )),
                IndexKind::RedisSearch => Arc::new(
                    redis_search_index(&config, other_embedder.as_ref())
                        .await
                        .context("creating the other languages' vector index in Redis")?,
                ),
            };
            Some(other_languages(&config, other_embedder, other_pair, index))
        }
        None => None,
    };
    let other_index = other.as_ref().map(|o| Arc::clone(&o.index));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cache = Cache::new(
        store,
        index.clone(),
        embedder,
        clock,
        CacheOptions {
            pair_scorer,
            other_languages: other,
            ..cache_options(&config)
        },
    )?;
    // A shared index in Redis already holds every replica's vectors.
    let shared_index = config.store.index == IndexKind::RedisSearch;
    if !shared_index {
        let started = std::time::Instant::now();
        // A snapshot holds the first index only.
        let n = if from_snapshot {
            cache.rebuild_other_languages_index().await
        } else {
            cache.rebuild_index().await
        }
        .context("loading the vector index")?;
        tracing::info!(
            vectors = n,
            millis = started.elapsed().as_millis() as u64,
            "vector index rebuilt from the store"
        );
    }
    let follower = match (&redis, events_from) {
        // Runs as long as the cache (which owns the store and indexes) exists.
        (Some(r), Some(from)) => {
            let indexes: Vec<std::sync::Weak<dyn VectorIndex>> = if shared_index {
                Vec::new()
            } else {
                std::iter::once(&index)
                    .chain(other_index.as_ref())
                    .map(Arc::downgrade)
                    .collect()
            };
            Some(r.follow_events(indexes, from))
        }
        _ => None,
    };
    match cache.load_calibration().await {
        Ok(true) => tracing::info!("error budget: labels loaded from the store"),
        Ok(false) => {}
        // The budget learns again; a store that cannot read this fails louder elsewhere.
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "error budget: loading the labels failed; learning again")
        }
    }
    let examples = cache
        .embed_category_examples()
        .await
        .context("embedding the categories' example prompts")?;
    tracing::info!(examples, "category examples embedded");
    let index_snapshot = match (local, hnsw, follower, redis_identity) {
        (Some(l), Some(hnsw), _, _) => Some(snapshot::IndexSnapshot::new(snapshot_path, l, hnsw)),
        (None, Some(hnsw), Some(follower), Some(identity)) => Some(
            snapshot::IndexSnapshot::for_redis(snapshot_path, identity, hnsw, &follower),
        ),
        _ => None,
    }
    .map(|s| s.loaded_at_start(from_snapshot));
    AppState::with_index_snapshot(config, cache, index_snapshot)
}

pub fn cache_options(config: &Config) -> CacheOptions {
    CacheOptions {
        min_similarity: config.cache.min_similarity,
        min_confidence: config.cache.min_confidence,
        ttl_secs: config.cache.ttl_secs,
        candidates: config.cache.candidates,
        categories: config
            .categories
            .iter()
            // In the config a category's name is its table's key.
            .map(|(name, c)| deja_core::CategorySpec {
                name: name.clone(),
                ..c.clone()
            })
            .collect(),
        examples_min_similarity: config.cache.examples_min_similarity_for(&config.embedder),
        verify: match config.cache.verify {
            config::VerifySetting::Model => deja_core::VerifyMode::Model,
            config::VerifySetting::Rules => deja_core::VerifyMode::Rules,
            config::VerifySetting::Off => deja_core::VerifyMode::Off,
        },
        verifier: None,
        pair_scorer: None,
        pair_verifier: None,
        max_false_hit_rate: config.cache.max_false_hit_rate,
        answer_min_similarity: config.cache.answer_min_similarity,
        max_aliases: config.cache.max_aliases,
        other_languages: None,
    }
}

/// The capacity limits and cold-entry age from `[cache]`.
pub fn capacity_limits(config: &Config) -> CapacityLimits {
    CapacityLimits {
        // `0` lifts the limit.
        max_entries: config.cache.max_entries.filter(|n| *n > 0),
        max_bytes: config.cache.max_bytes,
        eviction: match config.cache.eviction {
            config::EvictionSetting::Lru => Eviction::Lru,
            config::EvictionSetting::Lfu => Eviction::Lfu,
        },
        cold_after_secs: config.cache.cold_after_secs,
    }
}

/// The proxy's routes, each request with its id ([`request_id`]). Paths deja does not
/// cache pass through to the upstream (under `/openai/`, to Azure's).
pub fn router(state: AppState) -> request_id::RequestIds<Router> {
    let routes = Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/messages", post(routes::messages::messages))
        .route("/v1/responses", post(routes::responses::responses))
        .route("/v1/deja/feedback", post(feedback::feedback))
        .route(
            "/v1/messages/{*rest}",
            any(routes::passthrough::anthropic_passthrough),
        )
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(routes::azure::deployment_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(routes::azure::deployment_embeddings),
        )
        .route("/openai/v1/chat/completions", post(routes::azure::v1_chat))
        .route("/openai/v1/embeddings", post(routes::azure::v1_embeddings))
        .route("/openai/v1/responses", post(routes::azure::v1_responses))
        .route("/openai/{*rest}", any(routes::azure::passthrough))
        .route("/health", get(health))
        .route("/metrics", get(scrape::scrape))
        .merge(dashboard::router())
        .nest("/admin", admin::router(state.clone()))
        .fallback(routes::passthrough::passthrough)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    request_id::RequestIds::new(routes)
}

/// A known path with another method: 405 in the provider's error shape (axum adds the
/// `Allow` header).
async fn method_not_allowed(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        error::AnthropicError(error::ApiError::MethodNotAllowed).into_response()
    } else {
        error::ApiError::MethodNotAllowed.into_response()
    }
}

/// `GET /health`: `200 ok` while the store can write; `503` and `store: degraded (last
/// write error: ...)` while it cannot (a full disk, say). A degraded proxy still answers
/// every request (misses are forwarded, not stored), so a load balancer that acts on the
/// 503 moves traffic to replicas that can cache; it comes back by itself once the store
/// writes again (the store retries, see `RedbStore`), without traffic.
async fn health(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match app.cache().store().health().await {
        deja_core::StoreHealth::Ok => "ok".into_response(),
        deja_core::StoreHealth::Degraded { last_error } => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("store: degraded (last write error: {last_error})"),
        )
            .into_response(),
    }
}

/// Persists counters and buffered hit times every second, and shares the error budget's
/// labels every [`CALIBRATION_SAVE_EVERY`] ([`Cache::sync_calibration`]), until the
/// returned handle is aborted.
pub fn spawn_flusher(cache: Cache) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            if let Err(e) = cache.flush_counters().await {
                tracing::warn!(error = %deja_core::ErrorChain(&e), "flushing counters failed");
            }
            ticks += 1;
            if ticks.is_multiple_of(CALIBRATION_SAVE_EVERY.as_secs()) {
                save_calibration_logged(&cache).await;
            }
        }
    })
}

/// How often the error budget's labels are shared through the store (the counts added
/// since the last time, then every replica's read back) and its state saved when it
/// changed: a crash loses at most this much learning, and replicas learn each other's
/// labels this late at most.
pub const CALIBRATION_SAVE_EVERY: Duration = Duration::from_secs(10);

async fn save_calibration_logged(cache: &Cache) {
    if let Err(e) = cache.sync_calibration().await {
        tracing::warn!(error = %deja_core::ErrorChain(&e), "saving the error budget's labels failed");
    }
}

/// Every `every` (first after one period), removes expired and cold entries and enforces
/// the capacity limits, until the returned handle is aborted. A failed pass is logged and
/// the next one runs as usual.
pub fn spawn_maintenance(
    cache: Cache,
    limits: CapacityLimits,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match cache.maintain(&limits).await {
                Ok(r) if r.total() > 0 => tracing::info!(
                    expired = r.expired,
                    cold = r.cold,
                    evicted = r.evicted,
                    "removed entries"
                ),
                Ok(_) => tracing::debug!("maintenance removed nothing"),
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "cache maintenance failed")
                }
            }
        }
    })
}

/// Serves until Ctrl-C / SIGTERM, then drains and flushes.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let addr = state.config().listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, upstream = %state.config().upstream.base_url, "deja listening");
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves on an already-bound listener until `shutdown` completes.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let flusher = spawn_flusher(state.cache().clone());
    let maintenance = spawn_maintenance(
        state.cache().clone(),
        capacity_limits(state.config()),
        Duration::from_secs(state.config().cache.sweep_interval_secs.max(1)),
    );
    let staleness = staleness::spawn(state.clone());
    let ledger_saver = observe::ledger::spawn_saver(state.ledger_handle());
    let limits = conn::ConnLimits::from_config(&state.config().limits);
    tracing::info!(
        max_connections = limits.max_connections,
        "accepting connections"
    );
    conn::serve(listener, router(state.clone()), limits, shutdown).await;
    maintenance.abort();
    if let Some(s) = staleness {
        s.abort();
    }
    flusher.abort();
    save_calibration_logged(state.cache()).await;
    if let Err(e) = state.cache().flush_counters().await {
        tracing::warn!(error = %deja_core::ErrorChain(&e), "final flush failed");
    }
    ledger_saver.abort();
    observe::ledger::save_logged(state.ledger_handle()).await;
    let writer = state.clone();
    let saved =
        tokio::task::spawn_blocking(move || writer.index_snapshot().map(|s| s.save())).await;
    match saved {
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %format!("{e:#}"), "index snapshot not written; the next start rebuilds the index")
        }
        Err(e) => tracing::warn!(error = %e, "index snapshot task failed"),
        Ok(_) => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use deja_core::{Answer, EntryStore, NewEntry, PartitionKey, SemanticMode, Usage};
    use deja_testkit::conformance::{HashEmbedder, INDEX_DIM, INDEX_EMBEDDER};

    use super::*;

    /// The task itself: started, it trims the cache; aborted, it stops. (The engine's
    /// tests cover what a pass removes, with an injected clock.)
    #[tokio::test]
    async fn maintenance_task_enforces_the_limits_until_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            RedbStore::open(&dir.path().join("deja.redb"), StoreDurability::Fast).unwrap(),
        );
        let index = Arc::new(HnswIndex::new(
            INDEX_EMBEDDER,
            INDEX_DIM,
            HnswParams::default(),
        ));
        let cache = Cache::new(
            store.clone(),
            index,
            Arc::new(HashEmbedder),
            Arc::new(SystemClock),
            CacheOptions::default(),
        )
        .unwrap();
        for i in 0..40 {
            cache
                .insert(NewEntry {
                    partition: PartitionKey([1; 16]),
                    prompt: format!("prompt {i}"),
                    model: "m".into(),
                    answer: Answer::Body(b"answer".to_vec()),
                    usage: Usage::default(),
                    semantic: SemanticMode::Allowed,
                    vector: None,
                    category: None,
                })
                .await
                .unwrap();
        }
        let limits = CapacityLimits {
            max_entries: Some(20),
            ..CapacityLimits::default()
        };
        let task = spawn_maintenance(cache.clone(), limits, Duration::from_millis(5));
        // Polls a background task; bounded so a broken task fails instead of hanging.
        for _ in 0..1000 {
            if store.len().await.unwrap() <= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(store.len().await.unwrap(), 19);
        assert_eq!(cache.counters().await.unwrap().removed_evicted, 21);
    }
}
