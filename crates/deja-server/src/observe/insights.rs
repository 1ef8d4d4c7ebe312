//! What the dashboard shows about recent requests: a consumer of [`RequestSummary`] that
//! keeps bounded, in-memory accounts since the server started.
//!
//! - per-minute buckets for the last 24 hours: requests by outcome, tokens and dollars
//!   saved (a ring of [`WINDOW_MINUTES`] slots, each reused when its minute comes round
//!   again);
//! - latency histograms per outcome, log-spaced ([`LATENCY_BINS_PER_DECADE`] bins a decade
//!   from 10 µs to 100 s), fine enough for p50 / p90 / p99 within a few percent;
//! - similarity histograms (0.01 wide) of served semantic hits, of near-misses (the best
//!   candidate not served, at most [`NEAR_MISS_BAND`] below the threshold) and of
//!   candidates above the threshold that verification refused;
//! - counts by bypass reason (at most [`MAX_BYPASS_REASONS`], then `other`) and by
//!   verification reason;
//! - the last [`NEAR_MISS_RING`] near-misses, with the request's prompt (truncated to
//!   [`PROMPT_CHARS`]) and the cached entry's id, so the dashboard can show both prompts
//!   side by side; and the last [`HIT_RING`] semantic hits served, the same way. Each has
//!   an id a person's verdict names ([`Insights::take_verdict`]; `crate::admin`'s
//!   `POST /admin/feedback`), once.
//!
//! Recording is a handful of relaxed atomic adds and one `log10`; a lock is taken only when
//! a minute's slot is reused (once a minute), for a bypass reason's count, and for a
//! near-miss (a request that already embedded its prompt and searched the index). Prompts
//! live only in memory and are shown only behind the admin token (`crate::dashboard`).
//! Nothing here is persisted: a restart starts the accounts afresh (the store's counters
//! are the durable totals).
//!
//! This is not the Prometheus table ([`crate::observe::metrics`]), whose fixed series are meant
//! for scraping, nor the dashboard's HTTP side ([`crate::dashboard`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deja_core::{EntryId, LabelTicket, RejectReason};
use parking_lot::Mutex;
use serde::Serialize;

use super::summary::{nano_usd, Outcome, RequestSummary};

/// Minutes the time series covers.
pub const WINDOW_MINUTES: usize = 24 * 60;
/// Near-misses kept for the dashboard's list.
pub const NEAR_MISS_RING: usize = 50;
/// Semantic hits kept for the dashboard's list.
pub const HIT_RING: usize = 50;
/// How far below the threshold a candidate still counts as a near-miss.
pub const NEAR_MISS_BAND: f32 = 0.15;
/// Characters of a request's prompt kept with a near-miss.
pub const PROMPT_CHARS: usize = 500;
/// Distinct bypass reasons counted by name; later ones are counted as `other`.
pub const MAX_BYPASS_REASONS: usize = 32;
/// Latency bins per factor of ten.
pub const LATENCY_BINS_PER_DECADE: usize = 20;
/// The lower edge of the first latency bin (anything faster is counted in it).
const LATENCY_MIN_SECS: f64 = 1e-5;
/// 10 µs to 100 s.
const LATENCY_DECADES: usize = 7;
const LATENCY_BINS: usize = LATENCY_DECADES * LATENCY_BINS_PER_DECADE;
/// Similarity bins over [0, 1]; a negative similarity counts in the first.
const SIMILARITY_BINS: usize = 100;
const OUTCOMES: usize = Outcome::ALL.len();
const MINUTE_MS: u64 = 60_000;

fn zeroed<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// One minute's accounts.
struct MinuteSlot {
    /// The minute (since the epoch) plus one that the counts below belong to; 0: never
    /// used.
    minute: AtomicU64,
    requests: [AtomicU64; OUTCOMES],
    prompt_tokens_saved: AtomicU64,
    completion_tokens_saved: AtomicU64,
    nano_usd_saved: AtomicU64,
    near_misses: AtomicU64,
}

impl MinuteSlot {
    fn new() -> MinuteSlot {
        MinuteSlot {
            minute: AtomicU64::new(0),
            requests: zeroed(),
            prompt_tokens_saved: AtomicU64::new(0),
            completion_tokens_saved: AtomicU64::new(0),
            nano_usd_saved: AtomicU64::new(0),
            near_misses: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        for r in &self.requests {
            r.store(0, Ordering::Relaxed);
        }
        self.prompt_tokens_saved.store(0, Ordering::Relaxed);
        self.completion_tokens_saved.store(0, Ordering::Relaxed);
        self.nano_usd_saved.store(0, Ordering::Relaxed);
        self.near_misses.store(0, Ordering::Relaxed);
    }
}

/// A histogram of latencies in log-spaced bins.
struct LatencyHistogram {
    bins: [AtomicU64; LATENCY_BINS],
}

impl LatencyHistogram {
    fn new() -> LatencyHistogram {
        LatencyHistogram { bins: zeroed() }
    }

    fn observe(&self, d: Duration) {
        self.bins[latency_bin(d.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.bins
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// The bin of a latency: bin `i` holds `[lower(i), lower(i + 1))`, the first also
/// anything faster and the last anything slower.
fn latency_bin(secs: f64) -> usize {
    if secs.is_nan() || secs <= LATENCY_MIN_SECS {
        return 0;
    }
    let i = ((secs / LATENCY_MIN_SECS).log10() * LATENCY_BINS_PER_DECADE as f64).floor();
    (i as usize).min(LATENCY_BINS - 1)
}

/// The lower edge of latency bin `i`, in seconds.
fn latency_lower(i: usize) -> f64 {
    LATENCY_MIN_SECS * 10f64.powf(i as f64 / LATENCY_BINS_PER_DECADE as f64)
}

/// The `q` quantile (0 < q ≤ 1) of latency bin counts, in seconds: the geometric middle of
/// the bin it falls in (so within half a bin, about 6 %, of the true value). `None`
/// without observations.
pub fn latency_quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the observation the quantile names, 1-based.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some((latency_lower(i) * latency_lower(i + 1)).sqrt());
        }
    }
    None
}

fn similarity_bin(s: f32) -> usize {
    if s.is_nan() || s <= 0.0 {
        return 0;
    }
    ((s * SIMILARITY_BINS as f32).floor() as usize).min(SIMILARITY_BINS - 1)
}

/// One near-miss, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NearMissRecord {
    /// What a verdict names.
    pub id: u64,
    pub at_ms: u64,
    pub model: Option<String>,
    /// The request's prompt (normalised), at most [`PROMPT_CHARS`] characters.
    pub prompt: String,
    /// Whether `prompt` was cut.
    pub truncated: bool,
    #[serde(serialize_with = "entry_hex")]
    pub entry: EntryId,
    pub similarity: f32,
    pub threshold: f32,
    /// The verification reason, when the candidate reached the threshold and was refused.
    pub rejected: Option<&'static str>,
    /// Whether a verdict labels the error budget (the miss was looked up under one).
    pub labelable: bool,
    /// The verdict given, if one was.
    pub verdict: Option<&'static str>,
    #[serde(skip)]
    pub ticket: Option<LabelTicket>,
}

/// One semantic hit served, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HitRecord {
    /// What a verdict names.
    pub id: u64,
    pub at_ms: u64,
    pub model: Option<String>,
    /// The request's prompt (normalised), at most [`PROMPT_CHARS`] characters.
    pub prompt: String,
    pub truncated: bool,
    /// The entry served.
    #[serde(serialize_with = "entry_hex")]
    pub entry: EntryId,
    pub similarity: f32,
    /// Served through an alias of an earlier identical request.
    pub aliased: bool,
    /// Whether a verdict labels the error budget (served under one).
    pub labelable: bool,
    /// The verdict given, if one was.
    pub verdict: Option<&'static str>,
    #[serde(skip)]
    pub ticket: Option<LabelTicket>,
}

/// Which list a verdict names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewed {
    NearMiss,
    Hit,
}

/// What a verdict is about, taken from the list it named.
#[derive(Debug, Clone)]
pub struct UnderReview {
    pub entry: EntryId,
    pub ticket: Option<LabelTicket>,
}

/// Why a verdict was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReviewable {
    /// Not (or no longer) in the list.
    Unknown,
    /// A verdict was given already.
    Given,
}

fn entry_hex<S: serde::Serializer>(id: &EntryId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// The in-memory accounts; one per server, in [`crate::state::AppState`].
pub struct Insights {
    started_ms: u64,
    minutes: Box<[MinuteSlot]>,
    /// Taken only to reuse a minute's slot, so two requests cannot both reset it.
    rollover: Mutex<()>,
    requests: [AtomicU64; OUTCOMES],
    prompt_tokens_saved: AtomicU64,
    completion_tokens_saved: AtomicU64,
    nano_usd_saved: AtomicU64,
    latency: [LatencyHistogram; OUTCOMES],
    served_similarity: [AtomicU64; SIMILARITY_BINS],
    near_similarity: [AtomicU64; SIMILARITY_BINS],
    rejected_similarity: [AtomicU64; SIMILARITY_BINS],
    rejects: [AtomicU64; RejectReason::ALL.len()],
    bypasses: Mutex<Vec<(String, u64)>>,
    near_misses: Mutex<VecDeque<NearMissRecord>>,
    hits: Mutex<VecDeque<HitRecord>>,
    /// The next id of a listed near-miss or hit.
    next_id: AtomicU64,
}

impl Insights {
    /// Empty accounts, for a server that started at `now_ms`.
    pub fn new(now_ms: u64) -> Insights {
        Insights {
            started_ms: now_ms,
            minutes: (0..WINDOW_MINUTES).map(|_| MinuteSlot::new()).collect(),
            rollover: Mutex::new(()),
            requests: zeroed(),
            prompt_tokens_saved: AtomicU64::new(0),
            completion_tokens_saved: AtomicU64::new(0),
            nano_usd_saved: AtomicU64::new(0),
            latency: std::array::from_fn(|_| LatencyHistogram::new()),
            served_similarity: zeroed(),
            near_similarity: zeroed(),
            rejected_similarity: zeroed(),
            rejects: zeroed(),
            bypasses: Mutex::new(Vec::new()),
            near_misses: Mutex::new(VecDeque::with_capacity(NEAR_MISS_RING)),
            hits: Mutex::new(VecDeque::with_capacity(HIT_RING)),
            next_id: AtomicU64::new(1),
        }
    }

    /// The slot of minute `minute`, reset first if it still holds an older minute; `None`
    /// for a minute older than the slot's (a clock that went back a day), which is not
    /// counted.
    fn minute_slot(&self, minute: u64) -> Option<&MinuteSlot> {
        let slot = &self.minutes[(minute % WINDOW_MINUTES as u64) as usize];
        let tag = minute + 1;
        let held = slot.minute.load(Ordering::Acquire);
        if held == tag {
            return Some(slot);
        }
        if held > tag {
            return None;
        }
        let _reusing = self.rollover.lock();
        let held = slot.minute.load(Ordering::Acquire);
        if held < tag {
            slot.reset();
            slot.minute.store(tag, Ordering::Release);
        } else if held > tag {
            return None;
        }
        Some(slot)
    }

    /// Counts one request that completed at `now_ms`.
    pub fn observe(&self, s: &RequestSummary, now_ms: u64) {
        let Some(outcome) = s.outcome else {
            return;
        };
        let o = outcome as usize;
        let nano_usd = s.saved_usd.map_or(0, nano_usd);
        self.requests[o].fetch_add(1, Ordering::Relaxed);
        self.latency[o].observe(s.total);
        let saved = s.saved.prompt_tokens + s.saved.completion_tokens > 0;
        if saved {
            self.prompt_tokens_saved
                .fetch_add(s.saved.prompt_tokens, Ordering::Relaxed);
            self.completion_tokens_saved
                .fetch_add(s.saved.completion_tokens, Ordering::Relaxed);
        }
        if nano_usd > 0 {
            self.nano_usd_saved.fetch_add(nano_usd, Ordering::Relaxed);
        }
        let near = s
            .near_miss
            .as_ref()
            .filter(|n| n.rejected.is_some() || n.similarity >= n.threshold - NEAR_MISS_BAND);
        if let Some(slot) = self.minute_slot(now_ms / MINUTE_MS) {
            slot.requests[o].fetch_add(1, Ordering::Relaxed);
            if saved {
                slot.prompt_tokens_saved
                    .fetch_add(s.saved.prompt_tokens, Ordering::Relaxed);
                slot.completion_tokens_saved
                    .fetch_add(s.saved.completion_tokens, Ordering::Relaxed);
            }
            if nano_usd > 0 {
                slot.nano_usd_saved.fetch_add(nano_usd, Ordering::Relaxed);
            }
            if near.is_some() {
                slot.near_misses.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let (Outcome::HitSemantic, Some(sim)) = (outcome, s.similarity) {
            self.served_similarity[similarity_bin(sim)].fetch_add(1, Ordering::Relaxed);
            if let Some(hit) = &s.semantic_hit {
                let record = HitRecord {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    at_ms: now_ms,
                    model: s.model.clone(),
                    prompt: hit.prompt.chars().take(PROMPT_CHARS).collect(),
                    truncated: hit.prompt.chars().count() > PROMPT_CHARS,
                    entry: hit.entry,
                    similarity: sim,
                    aliased: s.aliased,
                    labelable: hit.ticket.is_some(),
                    verdict: None,
                    ticket: hit.ticket.clone(),
                };
                push_bounded(&mut self.hits.lock(), record, HIT_RING);
            }
        }
        if outcome == Outcome::Bypass {
            self.count_bypass(s.bypass_reason.as_deref().unwrap_or("other"));
        }
        if let Some(n) = near {
            match n.rejected {
                Some(r) => {
                    self.rejects[r.index()].fetch_add(1, Ordering::Relaxed);
                    self.rejected_similarity[similarity_bin(n.similarity)]
                        .fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.near_similarity[similarity_bin(n.similarity)]
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            let truncated = n.prompt.chars().count() > PROMPT_CHARS;
            let record = NearMissRecord {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                at_ms: now_ms,
                model: s.model.clone(),
                prompt: n.prompt.chars().take(PROMPT_CHARS).collect(),
                truncated,
                entry: n.entry,
                similarity: n.similarity,
                threshold: n.threshold,
                rejected: n.rejected.map(|r| r.as_str()),
                labelable: n.ticket.is_some(),
                verdict: None,
                ticket: n.ticket.clone(),
            };
            push_bounded(&mut self.near_misses.lock(), record, NEAR_MISS_RING);
        }
    }

    /// Takes a person's verdict (`right` or `wrong`) on the listed near-miss or hit `id`:
    /// marks it, so each takes one, and returns what it is about.
    pub fn take_verdict(
        &self,
        list: Reviewed,
        id: u64,
        verdict: &'static str,
    ) -> Result<UnderReview, NotReviewable> {
        fn give(
            given: &mut Option<&'static str>,
            verdict: &'static str,
        ) -> Result<(), NotReviewable> {
            match given {
                Some(_) => Err(NotReviewable::Given),
                None => {
                    *given = Some(verdict);
                    Ok(())
                }
            }
        }
        match list {
            Reviewed::NearMiss => {
                let mut ring = self.near_misses.lock();
                let r = ring
                    .iter_mut()
                    .find(|r| r.id == id)
                    .ok_or(NotReviewable::Unknown)?;
                give(&mut r.verdict, verdict)?;
                Ok(UnderReview {
                    entry: r.entry,
                    ticket: r.ticket.clone(),
                })
            }
            Reviewed::Hit => {
                let mut ring = self.hits.lock();
                let r = ring
                    .iter_mut()
                    .find(|r| r.id == id)
                    .ok_or(NotReviewable::Unknown)?;
                give(&mut r.verdict, verdict)?;
                Ok(UnderReview {
                    entry: r.entry,
                    ticket: r.ticket.clone(),
                })
            }
        }
    }

    fn count_bypass(&self, reason: &str) {
        let mut counts = self.bypasses.lock();
        if let Some(c) = counts.iter_mut().find(|(r, _)| r == reason) {
            c.1 += 1;
            return;
        }
        let reason = if counts.len() < MAX_BYPASS_REASONS {
            reason
        } else {
            "other"
        };
        match counts.iter_mut().find(|(r, _)| r == reason) {
            Some(c) => c.1 += 1,
            None => counts.push((reason.to_string(), 1)),
        }
    }

    /// Everything counted, as of `now_ms`: the minutes of the last 24 hours that saw
    /// requests, the histograms, the reasons (most frequent first) and the near-misses
    /// (newest first).
    pub fn snapshot(&self, now_ms: u64) -> InsightsSnapshot {
        let now_minute = now_ms / MINUTE_MS;
        let oldest = (now_minute + 1).saturating_sub(WINDOW_MINUTES as u64);
        let mut minutes: Vec<MinuteView> = self
            .minutes
            .iter()
            .filter_map(|slot| {
                let tag = slot.minute.load(Ordering::Acquire);
                let minute = tag.checked_sub(1)?;
                if minute < oldest || minute > now_minute {
                    return None;
                }
                let r = |i: usize| slot.requests[i].load(Ordering::Relaxed);
                Some(MinuteView {
                    t_ms: minute * MINUTE_MS,
                    hit_exact: r(0),
                    hit_semantic: r(1),
                    miss: r(2),
                    bypass: r(3),
                    prompt_tokens_saved: slot.prompt_tokens_saved.load(Ordering::Relaxed),
                    completion_tokens_saved: slot.completion_tokens_saved.load(Ordering::Relaxed),
                    usd_saved: slot.nano_usd_saved.load(Ordering::Relaxed) as f64 / 1e9,
                    near_misses: slot.near_misses.load(Ordering::Relaxed),
                })
            })
            .collect();
        minutes.sort_by_key(|m| m.t_ms);
        let counts: Vec<Vec<u64>> = self.latency.iter().map(LatencyHistogram::counts).collect();
        let hits: Vec<u64> = counts[0]
            .iter()
            .zip(&counts[1])
            .map(|(a, b)| a + b)
            .collect();
        let load = |bins: &[AtomicU64]| -> Vec<u64> {
            bins.iter().map(|b| b.load(Ordering::Relaxed)).collect()
        };
        let mut bypass_reasons: Vec<ReasonCount> = self
            .bypasses
            .lock()
            .iter()
            .map(|(reason, count)| ReasonCount {
                reason: reason.clone(),
                count: *count,
            })
            .collect();
        bypass_reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        let mut reject_reasons: Vec<ReasonCount> = RejectReason::ALL
            .iter()
            .zip(&self.rejects)
            .map(|(r, n)| ReasonCount {
                reason: r.as_str().to_string(),
                count: n.load(Ordering::Relaxed),
            })
            .filter(|r| r.count > 0)
            .collect();
        reject_reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        let r = |i: usize| self.requests[i].load(Ordering::Relaxed);
        InsightsSnapshot {
            now_ms,
            started_ms: self.started_ms,
            totals: Totals {
                hit_exact: r(0),
                hit_semantic: r(1),
                miss: r(2),
                bypass: r(3),
                prompt_tokens_saved: self.prompt_tokens_saved.load(Ordering::Relaxed),
                completion_tokens_saved: self.completion_tokens_saved.load(Ordering::Relaxed),
                usd_saved: self.nano_usd_saved.load(Ordering::Relaxed) as f64 / 1e9,
            },
            minutes,
            latency: LatencyViews {
                hit: LatencyView::of(&hits),
                hit_exact: LatencyView::of(&counts[0]),
                hit_semantic: LatencyView::of(&counts[1]),
                miss: LatencyView::of(&counts[2]),
                bypass: LatencyView::of(&counts[3]),
            },
            similarity: SimilarityView {
                bin_width: 1.0 / SIMILARITY_BINS as f32,
                served: load(&self.served_similarity),
                near_miss: load(&self.near_similarity),
                rejected: load(&self.rejected_similarity),
            },
            bypass_reasons,
            reject_reasons,
            near_misses: self.near_misses.lock().iter().rev().cloned().collect(),
            hits: self.hits.lock().iter().rev().cloned().collect(),
        }
    }
}

/// Appends `record`, dropping the oldest once `capacity` are held.
fn push_bounded<T>(ring: &mut VecDeque<T>, record: T, capacity: usize) {
    if ring.len() == capacity {
        ring.pop_front();
    }
    ring.push_back(record);
}

/// What [`Insights::snapshot`] returns; serialised into the dashboard's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct InsightsSnapshot {
    pub now_ms: u64,
    /// When counting started (the server's start).
    pub started_ms: u64,
    /// Since the start.
    pub totals: Totals,
    /// The minutes of the last 24 hours that saw a request, oldest first.
    pub minutes: Vec<MinuteView>,
    pub latency: LatencyViews,
    pub similarity: SimilarityView,
    /// Most frequent first.
    pub bypass_reasons: Vec<ReasonCount>,
    /// Verification refusals by reason, most frequent first; reasons never seen left out.
    pub reject_reasons: Vec<ReasonCount>,
    /// Newest first.
    pub near_misses: Vec<NearMissRecord>,
    /// The semantic hits served, newest first.
    pub hits: Vec<HitRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub hit_exact: u64,
    pub hit_semantic: u64,
    pub miss: u64,
    pub bypass: u64,
    pub prompt_tokens_saved: u64,
    pub completion_tokens_saved: u64,
    pub usd_saved: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MinuteView {
    /// The minute's start, in ms since the epoch.
    pub t_ms: u64,
    pub hit_exact: u64,
    pub hit_semantic: u64,
    pub miss: u64,
    pub bypass: u64,
    pub prompt_tokens_saved: u64,
    pub completion_tokens_saved: u64,
    pub usd_saved: f64,
    pub near_misses: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyViews {
    /// Exact and semantic hits together.
    pub hit: LatencyView,
    pub hit_exact: LatencyView,
    pub hit_semantic: LatencyView,
    pub miss: LatencyView,
    pub bypass: LatencyView,
}

/// One latency histogram: its quantiles (seconds; `None` when empty) and its non-empty
/// bins.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyView {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    /// `[lower_secs, upper_secs, count]` for each bin that holds an observation.
    pub bins: Vec<(f64, f64, u64)>,
}

impl LatencyView {
    fn of(counts: &[u64]) -> LatencyView {
        LatencyView {
            count: counts.iter().sum(),
            p50: latency_quantile(counts, 0.5),
            p90: latency_quantile(counts, 0.9),
            p99: latency_quantile(counts, 0.99),
            bins: counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (latency_lower(i), latency_lower(i + 1), *c))
                .collect(),
        }
    }
}

/// Similarity histograms over [0, 1], `bin_width` wide (bin `i` starts at `i * bin_width`).
#[derive(Debug, Clone, Serialize)]
pub struct SimilarityView {
    pub bin_width: f32,
    /// Served semantic hits.
    pub served: Vec<u64>,
    /// Best candidates below the threshold (within [`NEAR_MISS_BAND`]).
    pub near_miss: Vec<u64>,
    /// Candidates that reached the threshold but verification refused.
    pub rejected: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use deja_core::Usage;

    use super::*;
    use crate::observe::summary::{Endpoint, NearMiss};

    const T0: u64 = 1_700_000_000_000;

    fn summary(outcome: Outcome, total_us: u64) -> RequestSummary {
        let mut s = RequestSummary::new(Endpoint::Chat);
        s.outcome = Some(outcome);
        s.total = Duration::from_micros(total_us);
        s
    }

    fn near(similarity: f32, rejected: Option<RejectReason>, prompt: &str) -> RequestSummary {
        let mut s = summary(Outcome::Miss, 20_000);
        s.near_miss = Some(NearMiss {
            similarity,
            threshold: 0.8,
            entry: EntryId(7),
            prompt: prompt.into(),
            rejected,
            ticket: None,
        });
        s
    }

    #[test]
    fn latency_bins_are_log_spaced_and_clamped() {
        for (secs, bin) in [
            (0.0, 0),
            (-1.0, 0),
            (f64::NAN, 0),
            (5e-6, 0),
            (1e-5, 0),
            (1.2e-5, 1),
            (1.01e-4, 20),
            (1.01e-3, 40),
            (0.02, 66),
            (1.01, 100),
            (99.0, 139),
            (1e6, 139),
        ] {
            assert_eq!(latency_bin(secs), bin, "{secs}");
        }
        // Every bin's lower edge falls in that bin.
        for i in 0..LATENCY_BINS {
            assert_eq!(latency_bin(latency_lower(i) * 1.000_001), i);
        }
    }

    #[test]
    fn quantiles_land_within_a_bin_of_the_truth() {
        // 1..=1000 µs, uniformly: p50 ≈ 500 µs, p90 ≈ 900 µs, p99 ≈ 990 µs.
        let insights = Insights::new(T0);
        for us in 1..=1000 {
            insights.observe(&summary(Outcome::HitExact, us), T0);
        }
        let v = insights.snapshot(T0).latency.hit;
        assert_eq!(v.count, 1000);
        for (got, want) in [(v.p50, 500e-6), (v.p90, 900e-6), (v.p99, 990e-6)] {
            let got = got.unwrap();
            assert!((got / want - 1.0).abs() < 0.07, "{got} vs {want}");
        }
        assert_eq!(latency_quantile(&[0; 10], 0.5), None);
        // One observation: every quantile is its bin.
        let mut one = vec![0; LATENCY_BINS];
        one[40] = 1;
        let p = latency_quantile(&one, 0.99).unwrap();
        assert!(p > latency_lower(40) && p < latency_lower(41));
    }

    #[test]
    fn hits_and_misses_are_kept_apart() {
        let insights = Insights::new(T0);
        insights.observe(&summary(Outcome::HitExact, 50), T0);
        insights.observe(&summary(Outcome::HitSemantic, 5_000), T0);
        insights.observe(&summary(Outcome::Miss, 200_000), T0);
        let l = insights.snapshot(T0).latency;
        assert_eq!(
            (l.hit.count, l.hit_exact.count, l.hit_semantic.count),
            (2, 1, 1)
        );
        assert_eq!((l.miss.count, l.bypass.count), (1, 0));
        assert!(l.miss.p50.unwrap() > 0.15 && l.miss.p50.unwrap() < 0.25);
        assert_eq!(l.miss.bins.len(), 1);
        assert!(l.bypass.p50.is_none() && l.bypass.bins.is_empty());
    }

    #[test]
    fn minutes_bucket_requests_and_savings() {
        let insights = Insights::new(T0);
        let mut hit = summary(Outcome::HitExact, 40);
        hit.saved = Usage {
            prompt_tokens: 10,
            completion_tokens: 30,
        };
        hit.saved_usd = Some(0.000_025);
        let minute = T0 / MINUTE_MS * MINUTE_MS;
        insights.observe(&hit, minute + 1);
        insights.observe(&hit, minute + 59_999);
        insights.observe(&summary(Outcome::Miss, 1000), minute + 60_000);
        insights.observe(&summary(Outcome::Bypass, 1000), minute + 3 * 60_000);
        let s = insights.snapshot(minute + 3 * 60_000);
        let got: Vec<(u64, u64, u64, u64)> = s
            .minutes
            .iter()
            .map(|m| ((m.t_ms - minute) / MINUTE_MS, m.hit_exact, m.miss, m.bypass))
            .collect();
        assert_eq!(got, vec![(0, 2, 0, 0), (1, 0, 1, 0), (3, 0, 0, 1)]);
        assert_eq!(s.minutes[0].prompt_tokens_saved, 20);
        assert_eq!(s.minutes[0].completion_tokens_saved, 60);
        assert!((s.minutes[0].usd_saved - 0.000_05).abs() < 1e-12);
        assert_eq!(s.totals.hit_exact, 2);
        assert_eq!(s.totals.completion_tokens_saved, 60);
        assert!((s.totals.usd_saved - 0.000_05).abs() < 1e-12);
        // A summary without an outcome is not counted.
        insights.observe(&RequestSummary::new(Endpoint::Chat), minute);
        assert_eq!(insights.snapshot(minute).totals.miss, 1);
    }

    #[test]
    fn a_minute_slot_is_reused_a_day_later_and_old_minutes_drop_out() {
        let insights = Insights::new(T0);
        let day = WINDOW_MINUTES as u64 * MINUTE_MS;
        insights.observe(&summary(Outcome::Miss, 1000), T0);
        insights.observe(&summary(Outcome::Miss, 1000), T0 + MINUTE_MS);
        // Still in the window a minute before the first one leaves it.
        assert_eq!(insights.snapshot(T0 + day - MINUTE_MS).minutes.len(), 2);
        // A day later the first minute is out of the window, then its slot is reused.
        let later = insights.snapshot(T0 + day);
        assert_eq!(later.minutes.len(), 1);
        insights.observe(&summary(Outcome::HitExact, 10), T0 + day);
        let s = insights.snapshot(T0 + day);
        let got: Vec<(u64, u64)> = s.minutes.iter().map(|m| (m.miss, m.hit_exact)).collect();
        assert_eq!(got, vec![(1, 0), (0, 1)]);
        assert_eq!(s.minutes[1].t_ms, (T0 + day) / MINUTE_MS * MINUTE_MS);
        // A request stamped a day before its slot's minute (the clock went back) is not
        // put in the newer minute's slot; the totals still count it.
        insights.observe(&summary(Outcome::Bypass, 10), T0);
        let s = insights.snapshot(T0 + day);
        assert_eq!(s.minutes.iter().map(|m| m.bypass).sum::<u64>(), 0);
        assert_eq!(s.totals.bypass, 1);
        // Nothing from the future is shown.
        assert_eq!(insights.snapshot(T0).minutes.len(), 0);
    }

    #[test]
    fn similarity_histograms_and_the_near_miss_band() {
        let insights = Insights::new(T0);
        let mut hit = summary(Outcome::HitSemantic, 3000);
        hit.similarity = Some(0.874);
        insights.observe(&hit, T0);
        insights.observe(&near(0.72, None, "within the band"), T0);
        insights.observe(&near(0.6, None, "too far below"), T0);
        insights.observe(&near(0.91, Some(RejectReason::Antonym), "refused"), T0);
        insights.observe(&near(0.95, Some(RejectReason::Antonym), "refused"), T0);
        insights.observe(&near(0.2, Some(RejectReason::Number), "refused far"), T0);
        let s = insights.snapshot(T0);
        let nonzero = |v: &[u64]| -> Vec<(usize, u64)> {
            v.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i, *c))
                .collect()
        };
        assert_eq!(nonzero(&s.similarity.served), vec![(87, 1)]);
        assert_eq!(nonzero(&s.similarity.near_miss), vec![(72, 1)]);
        assert_eq!(
            nonzero(&s.similarity.rejected),
            vec![(20, 1), (91, 1), (95, 1)]
        );
        let reasons: Vec<(&str, u64)> = s
            .reject_reasons
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect();
        assert_eq!(reasons, vec![("antonym", 2), ("number", 1)]);
        assert_eq!(s.near_misses.len(), 4);
        assert_eq!(s.near_misses[0].prompt, "refused far");
        assert_eq!(s.near_misses[3].prompt, "within the band");
        assert_eq!(s.minutes[0].near_misses, 4);
        assert_eq!(similarity_bin(-0.3), 0);
        assert_eq!(similarity_bin(1.0), SIMILARITY_BINS - 1);
    }

    #[test]
    fn the_near_miss_ring_keeps_the_newest_and_truncates_prompts() {
        let insights = Insights::new(T0);
        for i in 0..NEAR_MISS_RING + 7 {
            insights.observe(&near(0.75, None, &format!("prompt {i}")), T0 + i as u64);
        }
        let long = "é".repeat(PROMPT_CHARS + 10);
        insights.observe(&near(0.75, None, &long), T0 + 1000);
        let ring = insights.snapshot(T0 + 1000).near_misses;
        assert_eq!(ring.len(), NEAR_MISS_RING);
        assert!(ring[0].truncated);
        assert_eq!(ring[0].prompt.chars().count(), PROMPT_CHARS);
        assert_eq!(ring[1].prompt, format!("prompt {}", NEAR_MISS_RING + 6));
        assert!(!ring[1].truncated);
        assert_eq!(ring[NEAR_MISS_RING - 1].prompt, format!("prompt {}", 8));
        let json = serde_json::to_value(&ring[1]).unwrap();
        assert_eq!(json["entry"], "0000000000000007");
        assert_eq!(json["rejected"], serde_json::Value::Null);
    }

    #[test]
    fn bypass_reasons_are_bounded() {
        let insights = Insights::new(T0);
        let bypass = |reason: &str| {
            let mut s = summary(Outcome::Bypass, 100);
            s.bypass_reason = Some(reason.into());
            s
        };
        for _ in 0..3 {
            insights.observe(&bypass("no-cache"), T0);
        }
        insights.observe(&bypass("time-sensitive"), T0);
        for i in 0..MAX_BYPASS_REASONS + 5 {
            insights.observe(&bypass(&format!("rule:r{i}")), T0);
        }
        let reasons = insights.snapshot(T0).bypass_reasons;
        assert_eq!(reasons.len(), MAX_BYPASS_REASONS + 1);
        // Most frequent first.
        let top: Vec<(&str, u64)> = reasons[..2]
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect();
        assert_eq!(top, vec![("other", 7), ("no-cache", 3)]);
        assert_eq!(
            reasons.iter().map(|r| r.count).sum::<u64>(),
            4 + MAX_BYPASS_REASONS as u64 + 5
        );
    }

    #[test]
    fn listed_hits_and_near_misses_take_one_verdict_each() {
        use crate::observe::summary::SemanticServed;
        let insights = Insights::new(T0);
        let ticket = LabelTicket {
            category: "default".into(),
            candidates: vec![deja_core::Labelled {
                id: EntryId(9),
                similarity: 0.91,
                support: 1,
                vouched: true,
            }],
        };
        let mut hit = summary(Outcome::HitSemantic, 500);
        hit.similarity = Some(0.91);
        hit.semantic_hit = Some(SemanticServed {
            entry: EntryId(9),
            prompt: "how do i reset my password".into(),
            ticket: Some(ticket.clone()),
        });
        insights.observe(&hit, T0);
        let mut untracked = near(0.75, None, "below");
        untracked.near_miss.as_mut().unwrap().ticket = None;
        insights.observe(&untracked, T0);

        let snap = insights.snapshot(T0 + 1);
        let (h, n) = (&snap.hits[0], &snap.near_misses[0]);
        assert_eq!(
            (h.entry, h.similarity, h.labelable),
            (EntryId(9), 0.91, true)
        );
        assert_eq!(h.prompt, "how do i reset my password");
        assert!(!n.labelable);
        assert_ne!(h.id, n.id, "ids are unique across both lists");
        // The ticket stays on the server.
        let json = serde_json::to_value(&snap.hits).unwrap();
        assert!(json[0].get("ticket").is_none(), "{json}");
        assert_eq!(json[0]["entry"], EntryId(9).to_string());

        let review = insights.take_verdict(Reviewed::Hit, h.id, "wrong").unwrap();
        assert_eq!(review.entry, EntryId(9));
        assert_eq!(review.ticket, Some(ticket));
        assert_eq!(
            insights
                .take_verdict(Reviewed::Hit, h.id, "right")
                .unwrap_err(),
            NotReviewable::Given
        );
        assert_eq!(
            insights
                .take_verdict(Reviewed::NearMiss, h.id, "right")
                .unwrap_err(),
            NotReviewable::Unknown,
            "an id names one list"
        );
        let review = insights
            .take_verdict(Reviewed::NearMiss, n.id, "right")
            .unwrap();
        assert_eq!((review.entry, review.ticket), (EntryId(7), None));
        let snap = insights.snapshot(T0 + 2);
        assert_eq!(snap.hits[0].verdict, Some("wrong"));
        assert_eq!(snap.near_misses[0].verdict, Some("right"));

        // The list is bounded: the oldest hits go.
        for _ in 0..HIT_RING + 5 {
            insights.observe(&hit, T0);
        }
        assert_eq!(insights.snapshot(T0 + 3).hits.len(), HIT_RING);
        assert_eq!(
            insights
                .take_verdict(Reviewed::Hit, h.id, "right")
                .unwrap_err(),
            NotReviewable::Unknown
        );
    }
}
