//! One summary per proxied request, and where it goes.
//!
//! A route starts a [`RequestRecord`] as soon as the request is readable, fills in what it
//! learns (the model, the outcome, the tokens a hit saved, the similarity, a near-miss,
//! where the time went) and lets it drop when it returns. On drop the summary is handed to
//! every consumer in one place: the Prometheus table ([`crate::observe::metrics`]) and whatever
//! else keeps per-request accounts. So a route says what happened once, and a new
//! consumer is added here, not in every route.
//!
//! A request rejected before its outcome is decided (a bad body) is not recorded; one
//! that fails after (an upstream that cannot be reached) is, with its duration.

use std::time::Instant;

use deja_core::Usage;

use crate::observe::summary::{Endpoint, Outcome, RequestSummary};
use crate::routes::CacheHeader;
use crate::state::AppState;

/// What one request did, as the consumers see it.
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
