//! One summary per proxied request, and where it goes.
//!
//! A route starts a [`RequestRecord`] as soon as the request is readable, fills in what it
//! learns (the model, the outcome, the tokens a hit saved, the similarity, a near-miss,
//! where the time went) and lets it drop when it returns. On drop the summary is handed to
//! every consumer in one place: the Prometheus table ([`crate::metrics`]) and whatever
//! else keeps per-request accounts. So a route says what happened once, and a new
//! consumer is added here, not in every route.
//!
//! A request rejected before its outcome is decided (a bad body) is not recorded; one
//! that fails after (an upstream that cannot be reached) is, with its duration.

use std::time::{Duration, Instant};

use deja_core::{EntryId, RejectReason, StageTimes, Usage};

use crate::metrics::{Endpoint, Outcome};
use crate::routes::CacheHeader;
use crate::AppState;

/// What one request did, as the consumers see it.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    pub endpoint: Endpoint,
    /// `None` until the route decided; a summary without one is not recorded.
    pub outcome: Option<Outcome>,
    /// For a bypass, its reason (`x-deja-bypass-reason`).
    pub bypass_reason: Option<String>,
    /// The model the request named, when it named one.
    pub model: Option<String>,
    /// Tokens the upstream reported for the answer(s) served from the cache: what the
    /// request would have cost without it.
    pub saved: Usage,
    /// What `saved` would have cost in US dollars at the configured prices for `model`
    /// (`None`: no price known for it); set when recorded, before the consumers see it.
    pub saved_usd: Option<f64>,
    /// The similarity of a semantic hit.
    pub similarity: Option<f32>,
    /// The best candidate not served, when a semantic search found one.
    pub near_miss: Option<NearMiss>,
    /// Reading the request into its cache key (parsing and normalising).
    pub normalise: Option<Duration>,
    /// The engine's stages (see [`deja_core::StageTimes`]).
    pub stages: StageTimes,
    /// The upstream call, until its response head arrived.
    pub upstream: Option<Duration>,
    /// The whole request until the response head was ready; set when recorded.
    pub total: Duration,
}

impl RequestSummary {
    /// A request to `endpoint` with nothing known yet.
    pub fn new(endpoint: Endpoint) -> RequestSummary {
        RequestSummary {
            endpoint,
            outcome: None,
            bypass_reason: None,
            model: None,
            saved: Usage::default(),
            saved_usd: None,
            similarity: None,
            near_miss: None,
            normalise: None,
            stages: StageTimes::default(),
            upstream: None,
            total: Duration::ZERO,
        }
    }
}

/// A cached prompt similar to the request's, but not served: below the threshold, or
/// refused by verification. Shown to guide tuning.
#[derive(Debug, Clone)]
pub struct NearMiss {
    pub similarity: f32,
    /// The similarity a hit needed.
    pub threshold: f32,
    /// The cached entry (its prompt is read when it is shown).
    pub entry: EntryId,
    /// The request's prompt as it was looked up (normalised).
    pub prompt: String,
    /// Set when the candidate reached the threshold and verification refused it.
    pub rejected: Option<RejectReason>,
}

/// Records one request when dropped; see the module docs.
pub struct RequestRecord<'a> {
    app: &'a AppState,
    started: Instant,
    pub summary: RequestSummary,
}

impl<'a> RequestRecord<'a> {
    pub fn new(app: &'a AppState, endpoint: Endpoint) -> RequestRecord<'a> {
        RequestRecord {
            app,
            started: Instant::now(),
            summary: RequestSummary::new(endpoint),
        }
    }

    /// Marks the end of reading the request into its key.
    pub fn normalised(&mut self) {
        self.summary.normalise = Some(self.started.elapsed());
    }

    /// Sets the outcome from the route's response header value.
    pub fn set(&mut self, header: &CacheHeader) {
        let s = &mut self.summary;
        match header {
            CacheHeader::HitExact => s.outcome = Some(Outcome::HitExact),
            CacheHeader::HitSemantic(similarity) => {
                s.outcome = Some(Outcome::HitSemantic);
                s.similarity = Some(*similarity);
            }
            CacheHeader::Miss => s.outcome = Some(Outcome::Miss),
            CacheHeader::Bypass(reason) => {
                s.outcome = Some(Outcome::Bypass);
                s.bypass_reason = Some(reason.to_string());
            }
            CacheHeader::NeverCache(reason) => {
                s.outcome = Some(Outcome::Bypass);
                s.bypass_reason = Some(reason.clone());
            }
        }
    }

    /// A hit served an answer that cost `usage` upstream.
    pub fn served(&mut self, header: &CacheHeader, usage: Usage) {
        self.set(header);
        self.summary.saved = usage;
    }
}

impl Drop for RequestRecord<'_> {
    fn drop(&mut self) {
        if self.summary.outcome.is_none() {
            return;
        }
        self.summary.total = self.started.elapsed();
        let s = &mut self.summary;
        // Only what was served from the cache is priced (a hit, or the cached items of a
        // partly served embeddings request); anything else costs no table lookup.
        let served = matches!(s.outcome, Some(Outcome::HitExact | Outcome::HitSemantic))
            || s.saved.prompt_tokens > 0
            || s.saved.completion_tokens > 0;
        if served {
            if let Some(model) = s.model.as_deref() {
                s.saved_usd = self.app.prices().cost_usd(model, s.saved);
            }
        }
        let now = self.app.cache().now_ms();
        self.app.ledger().record(now, &self.summary);
        self.app.metrics().observe(&self.summary);
        self.app.insights().observe(&self.summary, now);
    }
}
