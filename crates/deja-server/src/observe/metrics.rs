//! Prometheus metrics: what the proxy counts per request, rendered in the text exposition
//! format (0.0.4) by `GET /metrics` ([`crate::scrape`], which adds what the store knows).
//!
//! Recording is lock-free and allocation-free: every series is an atomic in a table fixed
//! when the server starts, so the exact-hit path (tens of thousands of requests a second)
//! pays a few uncontended-in-practice atomic adds. Labels come from bounded sets only:
//! endpoints, outcomes, and reasons known at start (the engine's bypass reasons, the
//! never-cache rules' reasons including the configured pattern names, verification
//! reasons). A reason outside the table is counted as `other` rather than growing it.
//! No prompt text, tenant or model appears in a label.
//!
//! This is not a general metrics library: no registry, no dynamic series.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deja_core::rules::{PiiKind, RulesConfig};
use deja_core::{BypassReason, RejectReason};

use super::summary::{nano_usd, Endpoint, Outcome, RequestSummary};

/// Reasons the routes give for a bypass themselves (`x-deja-bypass-reason`), besides the
/// engine's [`BypassReason`]s and the never-cache rules'.
const ROUTE_BYPASS_REASONS: [&str; 3] = ["no-cache", "unreadable-entry", "background"];

/// Every personal-data kind the detectors report. A kind added to `PiiKind` and not here
/// is counted as `other` until it is listed.
const PII_KINDS: [PiiKind; 5] = [
    PiiKind::Email,
    PiiKind::Phone,
    PiiKind::PaymentCard,
    PiiKind::Iban,
    PiiKind::NationalId,
];

const ENGINE_BYPASS_REASONS: [BypassReason; 4] = [
    BypassReason::StoreError,
    BypassReason::IndexError,
    BypassReason::EmbedError,
    BypassReason::UncacheableCategory,
];

/// The label for a bypass reason outside the table.
const OTHER: &str = "other";

/// Upper bounds of the latency buckets, in seconds: from an exact hit (tens of
/// microseconds) to a long generation upstream.
const BUCKETS_SECS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The `stage` label of `deja_stage_duration_seconds`, in the order
/// [`Metrics::observe`] reads them.
const STAGES: [&str; 6] = [
    "normalise",
    "store",
    "embed",
    "search",
    "verify",
    "upstream",
];

/// A latency histogram with the fixed [`BUCKETS_SECS`].
#[derive(Debug)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS_SECS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS_SECS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS_SECS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples. The count is the sum of the
    /// buckets read here, so `+Inf` and `_count` agree even while requests are recorded.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS_SECS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS_SECS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The proxy's own counters since it started. One per server, in [`AppState`].
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; 4]; Endpoint::COUNT],
    request_duration: [[Histogram; 4]; Endpoint::COUNT],
    /// Per endpoint, per [`STAGES`].
    stage_duration: [[Histogram; STAGES.len()]; Endpoint::COUNT],
    upstream_calls: [AtomicU64; Endpoint::COUNT],
    upstream_duration: [Histogram; Endpoint::COUNT],
    /// Bypass reasons known at start; the last one is [`OTHER`].
    bypass_reasons: Vec<String>,
    bypasses: Vec<AtomicU64>,
    /// Answers served but not stored, by the same reasons (answer rules, store errors).
    not_stored: Vec<AtomicU64>,
    rejects: [AtomicU64; RejectReason::ALL.len()],
    /// Prompt and completion tokens of the answers served from the cache.
    tokens_avoided: [AtomicU64; 2],
    /// What those tokens would have cost at the configured prices, in billionths of a US
    /// dollar: an integer, so adding stays one atomic; rendered in dollars.
    saved_nano_usd: AtomicU64,
    /// Embedding-cache items served from the cache, and sent upstream.
    embedding_items: [AtomicU64; 2],
    /// Shared embedding tier (Memcached): items found, items not found, failed round trips.
    shared_embeddings: [AtomicU64; 3],
    /// Error-budget labels recorded: the stored answer agreed with the upstream's, or not.
    budget_labels: [AtomicU64; 2],
    /// Verdicts on semantic hits (`POST /v1/deja/feedback`) and on the dashboard's rows
    /// (`POST /admin/feedback`): right, wrong.
    feedback: [AtomicU64; 2],
    /// Live audit checks: the served answer agreed with the upstream's, or not.
    audit_checks: [AtomicU64; 2],
    /// Exact hits asked upstream again to check the answer comparison: it judged the
    /// answers to agree, or not.
    judge_checks: [AtomicU64; 2],
    /// Semantic hits served through an alias (no embedding).
    alias_hits: AtomicU64,
}

impl Metrics {
    /// The table for a server whose never-cache rules are `rules` (their pattern names
    /// are bypass reasons).
    pub fn new(rules: &RulesConfig) -> Metrics {
        let mut reasons: Vec<String> = ROUTE_BYPASS_REASONS
            .iter()
            .map(|r| r.to_string())
            .chain(ENGINE_BYPASS_REASONS.iter().map(|r| r.as_str().to_string()))
            .chain(
                PII_KINDS
                    .iter()
                    .map(|k| deja_core::rules::NeverCache::PersonalData(*k).reason()),
            )
            .chain([deja_core::rules::NeverCache::TimeSensitive.reason()])
            .chain(
                rules
                    .patterns
                    .iter()
                    .map(|p| deja_core::rules::NeverCache::Rule(p.name.clone()).reason()),
            )
            .collect();
        reasons.dedup();
        reasons.push(OTHER.to_string());
        Metrics {
            requests: Default::default(),
            request_duration: Default::default(),
            stage_duration: Default::default(),
            upstream_calls: Default::default(),
            upstream_duration: Default::default(),
            bypasses: reasons.iter().map(|_| AtomicU64::new(0)).collect(),
            not_stored: reasons.iter().map(|_| AtomicU64::new(0)).collect(),
            bypass_reasons: reasons,
            rejects: Default::default(),
            tokens_avoided: Default::default(),
            saved_nano_usd: AtomicU64::new(0),
            embedding_items: Default::default(),
            shared_embeddings: Default::default(),
            budget_labels: Default::default(),
            feedback: Default::default(),
            audit_checks: Default::default(),
            judge_checks: Default::default(),
            alias_hits: AtomicU64::new(0),
        }
    }

    /// Counts one request from its summary (see [`crate::observe`]).
    pub fn observe(&self, s: &RequestSummary) {
        let Some(outcome) = s.outcome else {
            return;
        };
        let (e, o) = (s.endpoint as usize, outcome as usize);
        self.requests[e][o].fetch_add(1, Ordering::Relaxed);
        self.request_duration[e][o].observe(s.total);
        if outcome == Outcome::Bypass {
            let slot = self.bypass_slot(s.bypass_reason.as_deref().unwrap_or(OTHER));
            self.bypasses[slot].fetch_add(1, Ordering::Relaxed);
        }
        if s.aliased {
            self.alias_hits.fetch_add(1, Ordering::Relaxed);
        }
        self.tokens_avoided(s.saved);
        if let Some(nano) = s.saved_usd.map(nano_usd).filter(|n| *n > 0) {
            self.saved_nano_usd.fetch_add(nano, Ordering::Relaxed);
        }
        let stages = [
            s.normalise,
            Some(s.stages.store),
            Some(s.stages.embed),
            Some(s.stages.search),
            Some(s.stages.verify),
            s.upstream,
        ];
        for (h, d) in self.stage_duration[e].iter().zip(stages) {
            // A stage the request did not reach is not observed.
            if let Some(d) = d.filter(|d| !d.is_zero()) {
                h.observe(d);
            }
        }
    }

    /// Counts one upstream call that took `elapsed` until its response head arrived (or it
    /// failed).
    pub fn upstream_call(&self, endpoint: Endpoint, elapsed: Duration) {
        self.upstream_calls[endpoint as usize].fetch_add(1, Ordering::Relaxed);
        self.upstream_duration[endpoint as usize].observe(elapsed);
    }

    /// Counts a semantic candidate that verification refused.
    pub fn verification_reject(&self, reason: RejectReason) {
        self.rejects[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the tokens an answer served from the cache would have cost upstream.
    fn tokens_avoided(&self, usage: deja_core::Usage) {
        if usage.prompt_tokens > 0 {
            self.tokens_avoided[0].fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        }
        if usage.completion_tokens > 0 {
            self.tokens_avoided[1].fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
    }

    /// Counts embedding-cache items served from the cache and sent upstream.
    /// Counts what the shared embedding tier had of the items a replica's store lacked.
    pub fn shared_embeddings(&self, found: u64, not_found: u64) {
        self.shared_embeddings[0].fetch_add(found, Ordering::Relaxed);
        self.shared_embeddings[1].fetch_add(not_found, Ordering::Relaxed);
    }

    /// Counts a failed round trip to the shared embedding tier.
    pub fn shared_embeddings_error(&self) {
        self.shared_embeddings[2].fetch_add(1, Ordering::Relaxed);
    }

    pub fn embedding_items(&self, hits: u64, misses: u64) {
        self.embedding_items[0].fetch_add(hits, Ordering::Relaxed);
        self.embedding_items[1].fetch_add(misses, Ordering::Relaxed);
    }

    /// Counts one error-budget label ([`deja_core::Cache::label`]).
    pub fn budget_label(&self, agreed: bool) {
        self.budget_labels[usize::from(!agreed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one live audit check ([`crate::audit`]).
    pub fn audit_check(&self, agreed: bool) {
        self.audit_checks[usize::from(!agreed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one exact-hit check of the answer comparison ([`crate::audit::check_exact`]).
    pub fn judge_check(&self, agreed: bool) {
        self.judge_checks[usize::from(!agreed)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one client verdict on a semantic hit ([`crate::feedback`]).
    pub fn feedback(&self, right: bool) {
        self.feedback[usize::from(!right)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upstream answer that was served but not stored: a never-cache rule
    /// matched the answer, or the store failed. `reason` is a bypass reason.
    pub fn not_stored(&self, reason: &str) {
        self.not_stored[self.bypass_slot(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// The slot of a bypass reason; unknown ones share the last ([`OTHER`]).
    fn bypass_slot(&self, reason: &str) -> usize {
        self.bypass_reasons
            .iter()
            .position(|r| r == reason)
            .unwrap_or(self.bypass_reasons.len() - 1)
    }

    /// The proxy's own metrics in the text exposition format.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "deja_requests_total",
            "counter",
            "Requests answered, by endpoint and cache outcome (x-deja-cache).",
        );
        for e in Endpoint::ALL {
            for o in Outcome::ALL {
                let n = self.requests[e as usize][o as usize].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "deja_requests_total{{endpoint=\"{}\",outcome=\"{}\"}} {n}",
                    e.as_str(),
                    o.as_str()
                );
            }
        }
        header(
            out,
            "deja_bypass_total",
            "counter",
            "Requests that bypassed the cache, by reason (x-deja-bypass-reason).",
        );
        for (reason, n) in self.bypass_reasons.iter().zip(&self.bypasses) {
            let _ = writeln!(
                out,
                "deja_bypass_total{{reason=\"{}\"}} {}",
                escape(reason),
                n.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "deja_answers_not_stored_total",
            "counter",
            "Upstream answers served but not stored, by reason (a never-cache rule matched the answer, or the store failed).",
        );
        for (reason, n) in self.bypass_reasons.iter().zip(&self.not_stored) {
            let _ = writeln!(
                out,
                "deja_answers_not_stored_total{{reason=\"{}\"}} {}",
                escape(reason),
                n.load(Ordering::Relaxed)
            );
        }
        counter_by(
            out,
            "deja_budget_labels_total",
            "Misses labelled for the error budget by comparing the upstream's answer with the nearest entry's: agreed (serving it would have been right) or not.",
            "agreed",
            &["true", "false"],
            &self.budget_labels,
        );
        counter_by(
            out,
            "deja_audit_checks_total",
            "Semantic hits served under the error budget, asked upstream again and compared: the served answer agreed, or not.",
            "agreed",
            &["true", "false"],
            &self.audit_checks,
        );
        counter_by(
            out,
            "deja_judge_checks_total",
            "Exact hits under the error budget asked upstream again to check the answer comparison: it judged the stored and fresh answers to agree, or not (its own error).",
            "agreed",
            &["true", "false"],
            &self.judge_checks,
        );
        header(
            out,
            "deja_alias_hits_total",
            "counter",
            "Semantic hits served through an alias: a repeat of a request a semantic hit answered, served from the same entry without embedding.",
        );
        let _ = writeln!(
            out,
            "deja_alias_hits_total {}",
            self.alias_hits.load(Ordering::Relaxed)
        );
        counter_by(
            out,
            "deja_feedback_total",
            "Verdicts on semantic hits (POST /v1/deja/feedback) and on the dashboard's listed hits and near-misses (POST /admin/feedback).",
            "verdict",
            &["right", "wrong"],
            &self.feedback,
        );
        header(
            out,
            "deja_verification_rejects_total",
            "counter",
            "Semantic candidates above the threshold that verification refused (x-deja-rejected), by reason.",
        );
        for (reason, n) in RejectReason::ALL.iter().zip(&self.rejects) {
            let _ = writeln!(
                out,
                "deja_verification_rejects_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "deja_request_duration_seconds",
            "histogram",
            "Time in the proxy per request, until the response head is sent (a streamed answer's body follows), by endpoint and outcome.",
        );
        for e in Endpoint::ALL {
            for o in Outcome::ALL {
                self.request_duration[e as usize][o as usize].render(
                    out,
                    "deja_request_duration_seconds",
                    &format!("endpoint=\"{}\",outcome=\"{}\"", e.as_str(), o.as_str()),
                );
            }
        }
        header(
            out,
            "deja_stage_duration_seconds",
            "histogram",
            "Time per request in each stage it reached: normalise (reading the request into its key), store (cache reads), embed, search (vector index), verify (candidates above the threshold), upstream (until its response head).",
        );
        for e in Endpoint::ALL {
            for (stage, h) in STAGES.iter().zip(&self.stage_duration[e as usize]) {
                h.render(
                    out,
                    "deja_stage_duration_seconds",
                    &format!("endpoint=\"{}\",stage=\"{stage}\"", e.as_str()),
                );
            }
        }
        header(
            out,
            "deja_upstream_calls_total",
            "counter",
            "Calls the cached endpoints made to the upstream.",
        );
        for e in Endpoint::ALL {
            let _ = writeln!(
                out,
                "deja_upstream_calls_total{{endpoint=\"{}\"}} {}",
                e.as_str(),
                self.upstream_calls[e as usize].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "deja_upstream_duration_seconds",
            "histogram",
            "Time until the upstream's response head arrived (or the call failed), by endpoint.",
        );
        for e in Endpoint::ALL {
            self.upstream_duration[e as usize].render(
                out,
                "deja_upstream_duration_seconds",
                &format!("endpoint=\"{}\"", e.as_str()),
            );
        }
        counter_by(
            out,
            "deja_upstream_tokens_avoided_total",
            "Tokens the upstream reported for the answers served from the cache, by kind.",
            "kind",
            &["prompt", "completion"],
            &self.tokens_avoided,
        );
        header(
            out,
            "deja_saved_usd_total",
            "counter",
            "What the answers served from the cache would have cost upstream, in US dollars at the configured prices (models without a price add nothing).",
        );
        let _ = writeln!(
            out,
            "deja_saved_usd_total {}",
            self.saved_nano_usd.load(Ordering::Relaxed) as f64 / 1e9
        );
        counter_by(
            out,
            "deja_embedding_items_total",
            "Embedding-cache input items served from the cache (hit) or sent upstream (miss).",
            "result",
            &["hit", "miss"],
            &self.embedding_items,
        );
        counter_by(
            out,
            "deja_shared_embeddings_total",
            "Shared embedding tier (Memcached): items found (hit) or not (miss) of those this replica's store lacked, and failed round trips (error).",
            "result",
            &["hit", "miss", "error"],
            &self.shared_embeddings,
        );
    }
}

/// The error budget's cells: labels, wrong labels, and the threshold certified (absent
/// while untrained; 2 when nothing is certified, so no similarity reaches it).
pub fn render_budget(out: &mut String, cells: &[deja_core::budget::CellReport]) {
    header(
        out,
        "deja_budget_cell_labels",
        "gauge",
        "Error-budget labels per category, support level (neighbours giving the same answer) and kind of cell (vouched: only candidates the verifier accepted), by verdict.",
    );
    let labels = |c: &deja_core::budget::CellReport| {
        format!(
            "category=\"{}\",support=\"{}\",vouched=\"{}\"",
            escape(&c.key.category),
            c.key.support,
            c.key.vouched
        )
    };
    for c in cells {
        let l = labels(c);
        let _ = writeln!(
            out,
            "deja_budget_cell_labels{{{l},agreed=\"true\"}} {}",
            c.labels - c.wrong
        );
        let _ = writeln!(
            out,
            "deja_budget_cell_labels{{{l},agreed=\"false\"}} {}",
            c.wrong
        );
    }
    header(
        out,
        "deja_budget_certified_similarity",
        "gauge",
        "Least similarity the error budget's labels certify per category, support level and kind of cell (2: nothing certified; absent: not enough labels yet).",
    );
    for c in cells {
        let t = match c.certified {
            deja_core::budget::Certified::From(t) => f64::from(t),
            deja_core::budget::Certified::Nothing => 2.0,
            deja_core::budget::Certified::Untrained => continue,
        };
        let _ = writeln!(out, "deja_budget_certified_similarity{{{}}} {t}", labels(c));
    }
}

/// The live audit's measured false-hit rate per category, net of the answer comparison's
/// own errors, with its 95% interval (`bound`: `estimate`, `low`, `high`), and how many
/// hits it checked.
pub fn render_audit(out: &mut String, calibration: &deja_core::budget::Calibration) {
    let rows: Vec<TallyRow> = calibration
        .audits()
        .into_iter()
        .map(|(category, t)| {
            let estimate = calibration.audit_estimate(&category);
            (category, t.checked, estimate)
        })
        .collect();
    render_tallies(
        out,
        ("deja_audit_false_hit_rate", "The share of audited semantic hits whose answer disagreed with the upstream's, per category, net of the answer comparison's own errors measured on exact hits, with its 95% interval."),
        ("deja_audit_checked", "Semantic hits the live audit has checked per category (saved with the error budget's labels)."),
        &rows,
    );
}

/// The answer comparison's false-disagree rate per category, measured on exact hits asked
/// again, with its 95% Wilson interval, and how many it checked: what the error budget
/// discounts from its labels.
pub fn render_judge(out: &mut String, judge: &[(String, deja_core::budget::AuditTally)]) {
    let rows: Vec<TallyRow> = judge
        .iter()
        .map(|(category, t)| (category.clone(), t.checked, t.estimate()))
        .collect();
    render_tallies(
        out,
        ("deja_judge_false_disagree_rate", "The share of exact hits asked again whose fresh answer the comparison called different from the stored one, per category, with the 95% Wilson interval (discounted by the error budget)."),
        ("deja_judge_checked", "Exact hits asked again to check the answer comparison, per category (saved with the error budget's labels)."),
        &rows,
    );
}

/// A category, how many it checked, and its rate with the interval's bounds.
type TallyRow = (String, u64, Option<(f64, f64, f64)>);

/// A rate gauge per category (`bound`: `estimate`, `low`, `high`) and a gauge of how many
/// were checked, each given as (name, help).
fn render_tallies(
    out: &mut String,
    (rate_name, rate_help): (&str, &str),
    (checked_name, checked_help): (&str, &str),
    rows: &[TallyRow],
) {
    header(out, rate_name, "gauge", rate_help);
    for (category, _, estimate) in rows {
        if let Some((rate, low, high)) = estimate {
            for (bound, v) in [("estimate", rate), ("low", low), ("high", high)] {
                let _ = writeln!(
                    out,
                    "{rate_name}{{category=\"{}\",bound=\"{bound}\"}} {v}",
                    escape(category)
                );
            }
        }
    }
    header(out, checked_name, "gauge", checked_help);
    for (category, checked, _) in rows {
        let _ = writeln!(
            out,
            "{checked_name}{{category=\"{}\"}} {checked}",
            escape(category)
        );
    }
}

/// A counter with one label: its header, then one sample per value.
fn counter_by(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
    counts: &[AtomicU64],
) {
    header(out, name, "counter", help);
    for (value, n) in values.iter().zip(counts) {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{value}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
}

pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each observation lands in the first bucket whose bound it does not exceed, and the
    /// rendered buckets are cumulative.
    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        for micros in [50, 100, 101, 2_000_000, 120_000_000] {
            h.observe(Duration::from_micros(micros));
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        for (sample, value) in [
            ("x_bucket{a=\"b\",le=\"0.0001\"}", "2"),
            ("x_bucket{a=\"b\",le=\"0.00025\"}", "3"),
            ("x_bucket{a=\"b\",le=\"1\"}", "3"),
            ("x_bucket{a=\"b\",le=\"2.5\"}", "4"),
            ("x_bucket{a=\"b\",le=\"60\"}", "4"),
            ("x_bucket{a=\"b\",le=\"+Inf\"}", "5"),
            ("x_count{a=\"b\"}", "5"),
            ("x_sum{a=\"b\"}", "122.000251"),
        ] {
            let line = format!("{sample} {value}");
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
    }

    /// A request counts once it has an outcome, with its bypass reason; unknown reasons
    /// share `other`; configured pattern names are reasons of their own; each stage it
    /// reached is observed, and the ones it did not are not.
    #[test]
    fn requests_count_with_their_reason_and_stages() {
        let rules = RulesConfig {
            patterns: vec![deja_core::rules::NamedPattern {
                name: "secret".into(),
                regex: "secret".into(),
                applies_to: deja_core::rules::AppliesTo::Prompt,
            }],
            ..RulesConfig::default()
        };
        let m = Metrics::new(&rules);
        m.observe(&RequestSummary::new(Endpoint::Chat)); // no outcome: not counted
        for reason in [
            "rule:secret",
            "personal-data:iban",
            "never-heard-of-it",
            "no-cache",
        ] {
            let mut s = RequestSummary::new(Endpoint::Chat);
            s.outcome = Some(Outcome::Bypass);
            s.bypass_reason = Some(reason.to_string());
            s.upstream = Some(Duration::from_millis(300));
            m.observe(&s);
        }
        let mut hit = RequestSummary::new(Endpoint::Embeddings);
        hit.outcome = Some(Outcome::HitExact);
        hit.normalise = Some(Duration::from_micros(20));
        hit.stages.store = Duration::from_micros(40);
        hit.saved.prompt_tokens = 7;
        hit.saved_usd = Some(0.0075);
        m.observe(&hit);
        // A hit of a model without a price adds tokens and no money.
        let mut unpriced = hit.clone();
        unpriced.saved_usd = None;
        m.observe(&unpriced);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "deja_requests_total{endpoint=\"chat\",outcome=\"bypass\"} 4",
            "deja_requests_total{endpoint=\"chat\",outcome=\"miss\"} 0",
            "deja_requests_total{endpoint=\"embeddings\",outcome=\"hit_exact\"} 2",
            "deja_bypass_total{reason=\"rule:secret\"} 1",
            "deja_bypass_total{reason=\"personal-data:iban\"} 1",
            "deja_bypass_total{reason=\"other\"} 1",
            "deja_bypass_total{reason=\"no-cache\"} 1",
            "deja_bypass_total{reason=\"store-error\"} 0",
            "deja_request_duration_seconds_count{endpoint=\"chat\",outcome=\"bypass\"} 4",
            "deja_request_duration_seconds_count{endpoint=\"embeddings\",outcome=\"hit_exact\"} 2",
            "deja_stage_duration_seconds_count{endpoint=\"chat\",stage=\"upstream\"} 4",
            "deja_stage_duration_seconds_bucket{endpoint=\"chat\",stage=\"upstream\",le=\"0.25\"} 0",
            "deja_stage_duration_seconds_bucket{endpoint=\"chat\",stage=\"upstream\",le=\"0.5\"} 4",
            "deja_stage_duration_seconds_count{endpoint=\"chat\",stage=\"embed\"} 0",
            "deja_stage_duration_seconds_count{endpoint=\"embeddings\",stage=\"normalise\"} 2",
            "deja_stage_duration_seconds_count{endpoint=\"embeddings\",stage=\"store\"} 2",
            "deja_stage_duration_seconds_count{endpoint=\"embeddings\",stage=\"upstream\"} 0",
            "deja_upstream_tokens_avoided_total{kind=\"prompt\"} 14",
            "deja_saved_usd_total 0.0075",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        for (raw, escaped) in [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
        ] {
            assert_eq!(escape(raw), escaped);
        }
    }
}
