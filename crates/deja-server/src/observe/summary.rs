//! What one proxied request did: the record every consumer reads.
//!
//! A route fills in a [`RequestSummary`] (through [`crate::routes::record`]) and, when the
//! request is done, hands it to each consumer of [`crate::observe`]: the Prometheus table
//! ([`super::metrics`]), the cost ledger ([`super::ledger`]) and the dashboard's accounts
//! ([`super::insights`]). This file knows none of them.

use std::time::Duration;

use deja_core::{EntryId, LabelTicket, RejectReason, StageTimes, Usage};

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
    /// A semantic hit served through an alias of an earlier identical request (no
    /// embedding computed).
    pub aliased: bool,
    /// The best candidate not served, when a semantic search found one.
    pub near_miss: Option<NearMiss>,
    /// What a semantic hit served, for a person's verdict on the dashboard.
    pub semantic_hit: Option<SemanticServed>,
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
            aliased: false,
            near_miss: None,
            semantic_hit: None,
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
    /// Under an error budget: the candidate's label cell, which a person's verdict on the
    /// dashboard labels (would serving it have been right?).
    pub ticket: Option<LabelTicket>,
}

/// A semantic hit that was served.
#[derive(Debug, Clone)]
pub struct SemanticServed {
    pub entry: EntryId,
    /// The request's prompt as it was looked up (normalised).
    pub prompt: String,
    /// Under an error budget: the hit's label cell, which a verdict labels.
    pub ticket: Option<LabelTicket>,
}

/// The `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI's `/v1/chat/completions`.
    Chat,
    Embeddings,
    /// Anthropic's `/v1/messages`.
    Messages,
    /// OpenAI's Responses API, `/v1/responses`.
    Responses,
}

impl Endpoint {
    pub const COUNT: usize = 4;
    pub const ALL: [Endpoint; Endpoint::COUNT] = [
        Endpoint::Chat,
        Endpoint::Embeddings,
        Endpoint::Messages,
        Endpoint::Responses,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
        }
    }
}

/// The `outcome` label: what `x-deja-cache` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::HitExact,
        Outcome::HitSemantic,
        Outcome::Miss,
        Outcome::Bypass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HitExact => "hit_exact",
            Outcome::HitSemantic => "hit_semantic",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// Dollars to billionths of a dollar, rounded; what is not a non-negative finite amount
/// counts nothing.
pub fn nano_usd(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        // `as` saturates at u64::MAX for amounts beyond any bill.
        (usd * 1e9).round() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-endpoint and per-outcome tables are indexed by `as usize`.
    #[test]
    fn labels_are_listed_in_declaration_order() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
    }
}
