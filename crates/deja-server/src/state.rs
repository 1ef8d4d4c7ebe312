//! The server's state: everything a request handler needs, built once by
//! [`crate::build_state`] and cloned into every handler.
//!
//! It holds the records the requests fill in ([`crate::observe`]) and the parts they read
//! (configuration, cache, upstreams); it knows nothing of the handlers that use it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deja_core::Cache;

use crate::coalesce::Inflight;
use crate::config::Config;
use crate::observe::{audit_budget, insights, ledger, metrics, served};
use crate::upstream::Upstream;
use crate::{pricing, shared_embeddings, snapshot, store_view, tenant};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppInner>,
}

struct AppInner {
    config: Config,
    cache: Cache,
    rules: deja_core::rules::NeverCacheRules,
    upstream: Upstream,
    /// Anthropic's API, for `/v1/messages` (`[anthropic]`).
    anthropic: Upstream,
    /// Azure OpenAI, for `/openai/...` (`[azure]`); `None` while it is not configured.
    azure: Option<Upstream>,
    inflight: Inflight,
    /// What `GET /metrics` reports; recorded by the routes.
    metrics: Arc<metrics::Metrics>,
    /// What the dashboard shows about recent requests; recorded with the metrics.
    insights: insights::Insights,
    /// The dashboard's last scan for the most-hit entries.
    top_entries: store_view::TopEntriesCache,
    /// Prices per model, for what hits saved ([`pricing`]).
    prices: pricing::PriceTable,
    /// What the cache did and saved per day and model; written by [`serve_on`].
    ledger: Arc<ledger::Ledger>,
    /// Where the embedded backend keeps its index between runs (written at shutdown).
    index_snapshot: Option<snapshot::IndexSnapshot>,
    /// Embedding items shared with other replicas (`[store] shared_embeddings`).
    shared_embeddings: Option<shared_embeddings::SharedEmbeddings>,
    /// Semantic hits served under an error budget, for client verdicts ([`feedback`]).
    served_hits: served::ServedHits,
    /// What the live audit spent today ([`audit`]).
    audit_budget: audit_budget::AuditBudget,
}

impl AppState {
    /// Wires a state from an already-built cache (tests inject their own parts here).
    pub fn new(config: Config, cache: Cache) -> anyhow::Result<AppState> {
        Self::with_index_snapshot(config, cache, None)
    }

    /// [`AppState::new`], with the index snapshot [`serve_on`] writes when it stops.
    pub fn with_index_snapshot(
        config: Config,
        cache: Cache,
        index_snapshot: Option<snapshot::IndexSnapshot>,
    ) -> anyhow::Result<AppState> {
        let upstream = Upstream::new(&config.upstream).context("building the upstream client")?;
        let anthropic = Upstream::anthropic(&config.anthropic, &config.upstream)
            .context("building the Anthropic upstream client")?;
        let azure = Upstream::azure(&config.azure, &config.upstream)
            .context("building the Azure OpenAI upstream client")?;
        let rules = deja_core::rules::NeverCacheRules::new(&config.rules)
            .context("compiling the never-cache rules ([rules] in the config)")?;
        let metrics = Arc::new(metrics::Metrics::new(&config.rules));
        let prices = pricing::PriceTable::with_overrides(&config.prices)
            .context("building the price table ([prices] in the config)")?;
        let ledger = Arc::new(ledger::Ledger::open(
            &config.data_dir.join(ledger::LEDGER_FILE),
        ));
        let shared_embeddings = match &config.store.shared_embeddings {
            Some(url) => Some(shared_embeddings::SharedEmbeddings::new(
                shared_embeddings::parse_url(url)
                    .map_err(anyhow::Error::msg)
                    .context("store.shared_embeddings")?,
                &config.store.key_prefix,
                Duration::from_millis(config.store.shared_timeout_ms.max(1)),
                config.store.shared_ttl_secs,
            )),
            None => None,
        };
        Ok(AppState {
            inner: Arc::new(AppInner {
                metrics,
                prices,
                ledger,
                insights: insights::Insights::new(cache.now_ms()),
                top_entries: store_view::TopEntriesCache::default(),
                config,
                cache,
                rules,
                upstream,
                anthropic,
                azure,
                inflight: Inflight::default(),
                index_snapshot,
                shared_embeddings,
                served_hits: served::ServedHits::default(),
                audit_budget: audit_budget::AuditBudget::default(),
            }),
        })
    }

    /// Semantic hits served under an error budget, for client verdicts.
    pub fn served_hits(&self) -> &served::ServedHits {
        &self.inner.served_hits
    }

    /// What the live audit spent today.
    pub fn audit_budget(&self) -> &audit_budget::AuditBudget {
        &self.inner.audit_budget
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }
    pub fn rules(&self) -> &deja_core::rules::NeverCacheRules {
        &self.inner.rules
    }
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }
    /// The client for Anthropic's API (`/v1/messages`).
    pub fn anthropic(&self) -> &Upstream {
        &self.inner.anthropic
    }
    /// The client for Azure OpenAI (`/openai/...`), unless `[azure]` has no `base_url`.
    pub fn azure(&self) -> Option<&Upstream> {
        self.inner.azure.as_ref()
    }
    pub fn inflight(&self) -> &Inflight {
        &self.inner.inflight
    }
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }
    /// Where the in-process index is kept between runs (`None`: not kept, or shared).
    pub fn index_snapshot(&self) -> Option<&snapshot::IndexSnapshot> {
        self.inner.index_snapshot.as_ref()
    }
    pub fn prices(&self) -> &pricing::PriceTable {
        &self.inner.prices
    }
    pub fn ledger(&self) -> &ledger::Ledger {
        &self.inner.ledger
    }
    /// The ledger, for the task that saves it.
    pub fn ledger_handle(&self) -> Arc<ledger::Ledger> {
        self.inner.ledger.clone()
    }
    pub fn insights(&self) -> &insights::Insights {
        &self.inner.insights
    }
    pub fn top_entries(&self) -> &store_view::TopEntriesCache {
        &self.inner.top_entries
    }
    /// How requests are assigned tenants (`cache.tenant`, `[namespaces]`).
    pub fn tenancy(&self) -> tenant::Tenancy<'_> {
        tenant::Tenancy {
            mode: self.inner.config.cache.tenant,
            shared: &self.inner.config.namespaces,
        }
    }
    /// The embedding tier shared with other replicas, when configured.
    pub fn shared_embeddings(&self) -> Option<&shared_embeddings::SharedEmbeddings> {
        self.inner.shared_embeddings.as_ref()
    }
}
