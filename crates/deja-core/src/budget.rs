//! The error budget: serve a semantic candidate only where the cache's own traffic shows
//! that at most `max_false_hit_rate` (δ) of such hits are wrong.
//!
//! **Labels.** Every candidate that was not served became a miss, and the upstream answered
//! it anyway; comparing that fresh answer with the candidate's stored one
//! ([`crate::verify::answer`]) says whether serving the candidate would have been right. One
//! comparison is one observation: the candidate's similarity, its cell, agreed or not. They
//! cost no upstream call.
//!
//! **Cells.** Observations are kept per category and per *support*: how many of the other
//! entries the vector search returned answer the same as the candidate (entries join an
//! answer group when a label says their answers agree). A candidate surrounded by entries
//! that all give its answer is right more often at the same similarity, so each support
//! level earns its own threshold (a neighbourhood-sized version of vCache's per-entry
//! thresholds, with enough labels per cell to bound). Cells are cumulative: cell `k` holds
//! every label of support `k` or more, so cell 0 pools them all and a candidate may use
//! the lowest threshold of any cell it belongs to.
//!
//! **Certification.** A cell's threshold is the lowest similarity `t` such that, among the
//! labelled candidates at or above `t`, the one-sided Wilson upper bound of the wrong share
//! (at 95%) is at most δ. Thresholds are tested from the top down and the walk stops at the
//! first that fails (fixed-sequence testing: no correction for the many thresholds tried is
//! needed). Until a cell has enough labels to certify anything it is [`Certified::Untrained`];
//! a cell whose labels certify nothing is [`Certified::Nothing`]. Either way it serves no
//! semantic hit: a budget is a promise, and the cache's decisions without one are not
//! within 1% on every traffic (measured with `deja simulate`), so until its own labels
//! speak, a budgeted category answers from exact hits and the upstream (whose answers are
//! the labels).
//!
//! **Replicas.** Labels and audit tallies are counts, and counts add up: each change is
//! also kept as a pending addition ([`Calibration::take_pending`]), which the cache adds to
//! counters in its store, and what the store then holds — every replica's additions —
//! replaces this view ([`Calibration::adopt`]). Replicas sharing a store thus learn from
//! each other's traffic. Answer groups (who answers like whom) stay each replica's own.
//!
//! This module records and decides; it knows nothing of how lookups use it.

use std::collections::{HashMap, VecDeque};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::entry::EntryId;

/// Similarity bins over [0, 1]; a threshold is a bin's lower edge.
pub const BINS: usize = 200;

/// The highest support level a cell distinguishes: "this many or more".
pub const MAX_SUPPORT: u8 = 3;

/// Support levels, hence cells, per category.
const LEVELS: usize = MAX_SUPPORT as usize + 1;

/// Whether `delta` is a budget the cache can keep: a share above 0 and below one half.
pub fn valid_rate(delta: f64) -> bool {
    delta > 0.0 && delta < 0.5
}

/// One-sided 95% normal quantile for the Wilson bound.
const Z: f64 = 1.645;

/// Most entries whose answer group is remembered; the oldest memberships are forgotten
/// first (a forgotten entry counts as its own group, which only lowers support).
const MAX_MEMBERS: usize = 1_000_000;

/// Which cell an observation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    pub category: String,
    /// At least this many neighbours in the candidate's answer group (up to
    /// [`MAX_SUPPORT`]).
    pub support: u8,
}

/// What a cell's labels allow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Certified {
    /// Not enough labels yet: the cache decides as it does without a budget.
    Untrained,
    /// Candidates at or above this similarity may be served (after the veto rules).
    From(f32),
    /// The labels certify no similarity: no semantic hit from this cell.
    Nothing,
}

/// A cell's labels, by similarity bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cell {
    agreed: Vec<u32>,
    wrong: Vec<u32>,
}

impl Default for Cell {
    fn default() -> Self {
        Self {
            agreed: vec![0; BINS],
            wrong: vec![0; BINS],
        }
    }
}

/// The bin a similarity falls in.
fn bin(similarity: f32) -> usize {
    ((similarity.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1)
}

/// The lower edge of a bin: the threshold it stands for.
fn edge(bin: usize) -> f32 {
    bin as f32 / BINS as f32
}

/// The one-sided Wilson score upper bound of a rate seen as `k` out of `n`.
pub fn wilson_upper(k: u64, n: u64) -> f64 {
    wilson(k, n, Z).1
}

/// The Wilson score interval of `k` out of `n` at normal quantile `z` (both sides
/// clamped to [0, 1]); `(0, 1)` when `n` is 0.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z2 / n;
    (
        ((centre - spread) / denom).max(0.0),
        ((centre + spread) / denom).min(1.0),
    )
}

/// The fewest labels, all agreeing, whose bound reaches `delta`: below this a cell
/// cannot certify anything, so its walk does not stop for lack of labels.
fn labels_needed(delta: f64) -> u64 {
    // z²(1−δ)/δ, from solving the bound at k = 0 for n.
    ((Z * Z * (1.0 - delta) / delta).ceil() as u64).max(1)
}

impl Cell {
    fn certify(&self, delta: f64) -> Certified {
        let needed = labels_needed(delta);
        let (mut n, mut k) = (0u64, 0u64);
        let mut lowest = None;
        for b in (0..BINS).rev() {
            let here = u64::from(self.agreed[b]) + u64::from(self.wrong[b]);
            if here == 0 {
                continue;
            }
            n += here;
            k += u64::from(self.wrong[b]);
            if n < needed {
                continue;
            }
            if wilson_upper(k, n) <= delta {
                lowest = Some(edge(b));
            } else {
                break;
            }
        }
        match lowest {
            Some(t) => Certified::From(t),
            None if n < needed => Certified::Untrained,
            None => Certified::Nothing,
        }
    }

    fn counts(&self) -> (u64, u64) {
        let n = self
            .agreed
            .iter()
            .chain(&self.wrong)
            .map(|&c| u64::from(c))
            .sum();
        let k = self.wrong.iter().map(|&c| u64::from(c)).sum();
        (n, k)
    }
}

/// Which entries answer the same: each remembered entry points at its group's first
/// member.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Groups {
    of: HashMap<EntryId, EntryId>,
    /// Insertion order, for forgetting the oldest past [`MAX_MEMBERS`].
    order: VecDeque<EntryId>,
}

impl Groups {
    fn group(&self, id: EntryId) -> EntryId {
        self.of.get(&id).copied().unwrap_or(id)
    }

    fn set(&mut self, id: EntryId, group: EntryId) {
        if self.of.insert(id, group).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_MEMBERS {
            if let Some(old) = self.order.pop_front() {
                self.of.remove(&old);
            }
        }
    }
}

/// What a calibration has learned, as saved and restored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    cells: Vec<(CellKey, Cell)>,
    groups: Groups,
    #[serde(default)]
    audits: Vec<(String, AuditTally)>,
}

/// The labels of one cell, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CellReport {
    pub key: CellKey,
    pub delta: f64,
    pub labels: u64,
    pub wrong: u64,
    pub certified: Certified,
}

/// The operator's budgets: δ for every category, or its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    pub default: Option<f64>,
    pub categories: HashMap<String, f64>,
}

impl Budgets {
    /// The budget of a category; `None`: no budget (the cache decides as without one).
    pub fn of(&self, category: &str) -> Option<f64> {
        self.categories.get(category).copied().or(self.default)
    }

    pub fn any(&self) -> bool {
        self.default.is_some() || !self.categories.is_empty()
    }
}

#[derive(Default)]
struct State {
    cells: HashMap<CellKey, Cell>,
    /// Each cell's certificate, by category and support level (kept beside the labels so
    /// a lookup reads it without allocating).
    certified: HashMap<String, [Certified; LEVELS]>,
    groups: Groups,
    /// The live audit's tallies, per category.
    audits: HashMap<String, AuditTally>,
    /// Label and audit counts added since they were last taken for the store, by counter
    /// name ([`label_counter`], [`audit_counter`]).
    pending: HashMap<String, i64>,
    /// Counts changes, so a save can be skipped when nothing changed.
    version: u64,
    saved: u64,
}

/// The learned thresholds of one cache. Cheap to read on the request path (one read lock,
/// two map lookups); observations take the write lock briefly.
pub struct Calibration {
    budgets: Budgets,
    state: RwLock<State>,
}

impl Calibration {
    pub fn new(budgets: Budgets) -> Self {
        Self {
            budgets,
            state: RwLock::new(State::default()),
        }
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// How many of `others` answer the same as `candidate`, capped at [`MAX_SUPPORT`].
    pub fn support(&self, candidate: EntryId, others: &[EntryId]) -> u8 {
        support_in(&self.state.read(), candidate, others)
    }

    /// What a candidate of `category` with `support` may be served at: the lowest
    /// threshold certified by a cell it belongs to (support `0..=support`). `None`: the
    /// category has no budget.
    pub fn certified(&self, category: &str, support: u8) -> Option<Certified> {
        self.budgets.of(category)?;
        Some(certified_in(&self.state.read(), category, support))
    }

    /// A lookup's question about one candidate, under one read lock and without
    /// allocating: its support among `others`, and what it may be served at. `None`: the
    /// category has no budget.
    pub fn decide(
        &self,
        category: &str,
        candidate: EntryId,
        others: &[EntryId],
    ) -> Option<(u8, Certified)> {
        self.budgets.of(category)?;
        let state = self.state.read();
        let support = support_in(&state, candidate, others);
        Some((support, certified_in(&state, category, support)))
    }

    /// Records one label: serving a candidate of `category` with `support` at `similarity`
    /// would have been right (`agreed`) or wrong. It counts in every cell the candidate
    /// belongs to. Ignored for categories without a budget.
    pub fn observe(&self, category: &str, support: u8, similarity: f32, agreed: bool) {
        let Some(delta) = self.budgets.of(category) else {
            return;
        };
        let mut guard = self.state.write();
        let state = &mut *guard;
        let b = bin(similarity);
        for k in 0..=support.min(MAX_SUPPORT) {
            *state
                .pending
                .entry(label_counter(category, k, b, agreed))
                .or_default() += 1;
            let key = CellKey {
                category: category.to_string(),
                support: k,
            };
            let cell = state.cells.entry(key).or_default();
            if agreed {
                cell.agreed[b] = cell.agreed[b].saturating_add(1);
            } else {
                cell.wrong[b] = cell.wrong[b].saturating_add(1);
            }
            let certified = cell.certify(delta);
            state
                .certified
                .entry(category.to_string())
                .or_insert([Certified::Untrained; LEVELS])[usize::from(k)] = certified;
        }
        state.version += 1;
    }

    /// Records which group a new entry's answer belongs to: the candidate's when their
    /// answers agreed, else its own.
    pub fn join(&self, new: EntryId, candidate: EntryId, agreed: bool) {
        let mut state = self.state.write();
        if agreed {
            let group = state.groups.group(candidate);
            state.groups.set(candidate, group);
            state.groups.set(new, group);
        } else {
            state.groups.set(new, new);
        }
        state.version += 1;
    }

    /// Forgets an entry's membership (it was removed, or its answer changed).
    pub fn forget(&self, id: EntryId) {
        // The order queue keeps the id until it ages out; a stale id there only makes the
        // next eviction remove nothing.
        let mut state = self.state.write();
        if state.groups.of.remove(&id).is_some() {
            state.version += 1;
        }
    }

    /// Every cell with labels, in a stable order.
    pub fn report(&self) -> Vec<CellReport> {
        let state = self.state.read();
        let mut cells: Vec<CellReport> = state
            .cells
            .iter()
            .filter_map(|(key, cell)| {
                let delta = self.budgets.of(&key.category)?;
                let (labels, wrong) = cell.counts();
                Some(CellReport {
                    key: key.clone(),
                    delta,
                    labels,
                    wrong,
                    certified: cell.certify(delta),
                })
            })
            .collect();
        cells.sort_by(|a, b| a.key.cmp(&b.key));
        cells
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.read();
        let mut cells: Vec<(CellKey, Cell)> = state
            .cells
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        Snapshot {
            cells,
            groups: state.groups.clone(),
            audits: sorted_audits(&state),
        }
    }

    /// Takes over what a snapshot learned (cells of a bad length are dropped).
    pub fn restore(&self, snapshot: Snapshot) {
        let mut state = self.state.write();
        state.cells = snapshot
            .cells
            .into_iter()
            .filter(|(_, c)| c.agreed.len() == BINS && c.wrong.len() == BINS)
            .collect();
        state.certified = certificates(&self.budgets, &state.cells);
        state.groups = snapshot.groups;
        state.audits = snapshot.audits.into_iter().collect();
    }

    /// Counts one audited semantic hit of `category`: judged wrong or not.
    pub fn audited(&self, category: &str, wrong: bool) {
        let mut state = self.state.write();
        state
            .audits
            .entry(category.to_string())
            .or_default()
            .add(wrong);
        *state
            .pending
            .entry(audit_counter(category, AUDIT_CHECKED))
            .or_default() += 1;
        if wrong {
            *state
                .pending
                .entry(audit_counter(category, AUDIT_WRONG))
                .or_default() += 1;
        }
        state.version += 1;
    }

    /// The counts added since the last call, as counter additions for the store
    /// ([`crate::traits::EntryStore::add_state_counts`]); they are no longer pending.
    pub fn take_pending(&self) -> Vec<(String, i64)> {
        let mut pending: Vec<(String, i64)> = std::mem::take(&mut self.state.write().pending)
            .into_iter()
            .collect();
        pending.sort();
        pending
    }

    /// Gives back additions [`Calibration::take_pending`] took that the store did not keep
    /// (its write failed): they are taken again next time.
    pub fn return_pending(&self, delta: Vec<(String, i64)>) {
        let mut state = self.state.write();
        for (counter, add) in delta {
            *state.pending.entry(counter).or_default() += add;
        }
    }

    /// Every label and audit count this calibration holds, as counter additions: what
    /// seeds a store's counters from labels saved before it kept any.
    pub fn counts(&self) -> Vec<(String, i64)> {
        let state = self.state.read();
        let mut out = Vec::new();
        for (key, cell) in &state.cells {
            for (b, (&agreed, &wrong)) in cell.agreed.iter().zip(&cell.wrong).enumerate() {
                for (n, is_agreed) in [(agreed, true), (wrong, false)] {
                    if n > 0 {
                        out.push((
                            label_counter(&key.category, key.support, b, is_agreed),
                            i64::from(n),
                        ));
                    }
                }
            }
        }
        for (category, tally) in &state.audits {
            for (field, n) in [(AUDIT_CHECKED, tally.checked), (AUDIT_WRONG, tally.wrong)] {
                if n > 0 {
                    out.push((audit_counter(category, field), n as i64));
                }
            }
        }
        out.sort();
        out
    }

    /// Takes the store's counters (`totals`: every replica's label and audit counts) as
    /// this calibration's labels and tallies, with the additions still pending on top
    /// (made since they were taken); certificates follow. Counters it does not know are
    /// ignored, as are counts below 1.
    pub fn adopt(&self, totals: &[(String, i64)]) {
        let mut guard = self.state.write();
        let state = &mut *guard;
        let mut cells: HashMap<CellKey, Cell> = HashMap::new();
        let mut audits: HashMap<String, AuditTally> = HashMap::new();
        let pending = state.pending.iter().map(|(k, v)| (k.as_str(), *v));
        let all = totals.iter().map(|(k, v)| (k.as_str(), *v)).chain(pending);
        for (counter, n) in all {
            if n < 1 {
                continue;
            }
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match parse_counter(counter) {
                Some(Counter::Label {
                    category,
                    support,
                    bin,
                    agreed,
                }) => {
                    let cell = cells
                        .entry(CellKey {
                            category: category.to_string(),
                            support,
                        })
                        .or_default();
                    let slot = if agreed {
                        &mut cell.agreed[bin]
                    } else {
                        &mut cell.wrong[bin]
                    };
                    *slot = slot.saturating_add(n);
                }
                Some(Counter::Audit { category, wrong }) => {
                    let tally = audits.entry(category.to_string()).or_default();
                    if wrong {
                        tally.wrong += u64::from(n);
                    } else {
                        tally.checked += u64::from(n);
                    }
                }
                None => {}
            }
        }
        if cells == state.cells && audits == state.audits {
            return;
        }
        state.certified = certificates(&self.budgets, &cells);
        state.cells = cells;
        state.audits = audits;
        state.version += 1;
    }

    /// What changed since the last [`Calibration::saved`], with the change count to pass
    /// to it once written; `None` when nothing did.
    pub fn unsaved(&self) -> Option<(u64, Snapshot)> {
        let version = {
            let state = self.state.read();
            if state.version == state.saved {
                return None;
            }
            state.version
        };
        Some((version, self.snapshot()))
    }

    /// Notes that the state as of `version` was written.
    pub fn saved(&self, version: u64) {
        let mut state = self.state.write();
        state.saved = state.saved.max(version);
    }

    /// The live audit's tallies, per category, in name order.
    pub fn audits(&self) -> Vec<(String, AuditTally)> {
        sorted_audits(&self.state.read())
    }
}

/// Each category's certificates, by support level, from its cells.
fn certificates(
    budgets: &Budgets,
    cells: &HashMap<CellKey, Cell>,
) -> HashMap<String, [Certified; LEVELS]> {
    let mut certified: HashMap<String, [Certified; LEVELS]> = HashMap::new();
    for (key, cell) in cells {
        if let (Some(delta), true) = (budgets.of(&key.category), key.support <= MAX_SUPPORT) {
            certified
                .entry(key.category.clone())
                .or_insert([Certified::Untrained; LEVELS])[usize::from(key.support)] =
                cell.certify(delta);
        }
    }
    certified
}

const AUDIT_CHECKED: &str = "checked";
const AUDIT_WRONG: &str = "wrong";

/// The counter of one cell's labels in one similarity bin, agreed or wrong:
/// `label:SUPPORT:BIN:a|w:CATEGORY` (the category last, whatever it contains).
fn label_counter(category: &str, support: u8, bin: usize, agreed: bool) -> String {
    format!(
        "label:{support}:{bin}:{}:{category}",
        if agreed { "a" } else { "w" }
    )
}

/// The counter of one category's audited hits (`checked`) or wrong ones:
/// `audit:checked|wrong:CATEGORY`.
fn audit_counter(category: &str, field: &str) -> String {
    format!("audit:{field}:{category}")
}

/// A counter name, read back.
#[derive(Debug, PartialEq)]
enum Counter<'a> {
    Label {
        category: &'a str,
        support: u8,
        bin: usize,
        agreed: bool,
    },
    Audit {
        category: &'a str,
        wrong: bool,
    },
}

fn parse_counter(name: &str) -> Option<Counter<'_>> {
    if let Some(rest) = name.strip_prefix("label:") {
        let mut parts = rest.splitn(4, ':');
        let support: u8 = parts.next()?.parse().ok()?;
        let bin: usize = parts.next()?.parse().ok()?;
        let agreed = match parts.next()? {
            "a" => true,
            "w" => false,
            _ => return None,
        };
        let category = parts.next()?;
        (support <= MAX_SUPPORT && bin < BINS).then_some(Counter::Label {
            category,
            support,
            bin,
            agreed,
        })
    } else {
        let rest = name.strip_prefix("audit:")?;
        let (field, category) = rest.split_once(':')?;
        let wrong = match field {
            AUDIT_CHECKED => false,
            AUDIT_WRONG => true,
            _ => return None,
        };
        Some(Counter::Audit { category, wrong })
    }
}

/// How many of `others` share `candidate`'s answer group, capped at [`MAX_SUPPORT`].
fn support_in(state: &State, candidate: EntryId, others: &[EntryId]) -> u8 {
    let group = state.groups.group(candidate);
    let same = others
        .iter()
        .filter(|&&o| o != candidate && state.groups.group(o) == group)
        .count();
    same.min(usize::from(MAX_SUPPORT)) as u8
}

/// The lowest threshold certified by the cells of `category` up to `support`; `Nothing`
/// when some of them certify nothing and none a threshold; else `Untrained`.
fn certified_in(state: &State, category: &str, support: u8) -> Certified {
    let Some(levels) = state.certified.get(category) else {
        return Certified::Untrained;
    };
    levels[..=usize::from(support.min(MAX_SUPPORT))]
        .iter()
        .fold(Certified::Untrained, |best, &c| match (best, c) {
            (Certified::From(a), Certified::From(b)) => Certified::From(a.min(b)),
            (_, Certified::From(b)) | (Certified::From(b), _) => Certified::From(b),
            (Certified::Untrained, Certified::Nothing) => Certified::Nothing,
            (best, _) => best,
        })
}

/// The audit tallies in category order.
fn sorted_audits(state: &State) -> Vec<(String, AuditTally)> {
    let mut audits: Vec<(String, AuditTally)> =
        state.audits.iter().map(|(k, t)| (k.clone(), *t)).collect();
    audits.sort_by(|a, b| a.0.cmp(&b.0));
    audits
}

/// The served semantic hits checked against the upstream, and how many were wrong: the
/// measured false-hit rate with its interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTally {
    pub checked: u64,
    pub wrong: u64,
}

impl AuditTally {
    pub fn add(&mut self, wrong: bool) {
        self.checked += 1;
        self.wrong += u64::from(wrong);
    }

    /// The wrong share and its two-sided 95% Wilson interval; `None` before any check.
    pub fn estimate(&self) -> Option<(f64, f64, f64)> {
        (self.checked > 0).then(|| {
            let (lo, hi) = wilson(self.wrong, self.checked, 1.96);
            (self.wrong as f64 / self.checked as f64, lo, hi)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(delta: f64) -> Budgets {
        Budgets {
            default: Some(delta),
            categories: HashMap::new(),
        }
    }

    #[test]
    fn wilson_matches_known_values() {
        // 0 of 100 at z = 1.96: 0 to 3.70%.
        let (lo, hi) = wilson(0, 100, 1.96);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.0370).abs() < 5e-4, "{hi}");
        // 10 of 100 at z = 1.96: 5.52% to 17.4%.
        let (lo, hi) = wilson(10, 100, 1.96);
        assert!((lo - 0.0552).abs() < 5e-4, "{lo}");
        assert!((hi - 0.1744).abs() < 5e-4, "{hi}");
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
        // The bound at the labels needed reaches δ, one label fewer does not.
        for delta in [0.01, 0.02, 0.05] {
            let n = labels_needed(delta);
            assert!(wilson_upper(0, n) <= delta, "{delta}");
            assert!(wilson_upper(0, n - 1) > delta, "{delta}");
        }
    }

    #[test]
    fn untrained_until_enough_labels_then_certified_down_to_where_errors_start() {
        let cal = Calibration::new(budgets(0.02));
        for _ in 0..100 {
            cal.observe("default", 0, 0.9, true);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::Untrained));
        for _ in 0..100 {
            cal.observe("default", 0, 0.8, true);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.8)));
        // Below 0.7 half the labels are wrong: the walk stops above it.
        for _ in 0..60 {
            cal.observe("default", 0, 0.6, true);
            cal.observe("default", 0, 0.6, false);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.8)));
        // A candidate with more support may use what cell 0 certified.
        assert_eq!(cal.certified("default", 2), Some(Certified::From(0.8)));
    }

    #[test]
    fn a_cell_whose_top_labels_are_wrong_certifies_nothing() {
        let cal = Calibration::new(budgets(0.01));
        for i in 0..400 {
            cal.observe("default", 1, 0.95, i % 10 != 0);
        }
        assert_eq!(cal.certified("default", 1), Some(Certified::Nothing));
        assert_eq!(cal.certified("default", 0), Some(Certified::Nothing));
    }

    #[test]
    fn categories_without_a_budget_learn_nothing() {
        let cal = Calibration::new(Budgets {
            default: None,
            categories: HashMap::from([("faq".to_string(), 0.05)]),
        });
        for _ in 0..500 {
            cal.observe("default", 0, 0.9, true);
        }
        assert_eq!(cal.certified("default", 0), None);
        assert!(cal.report().is_empty());
        for _ in 0..100 {
            cal.observe("faq", 0, 0.9, true);
        }
        assert_eq!(cal.certified("faq", 0), Some(Certified::From(0.9)));
    }

    #[test]
    fn cells_are_cumulative_and_a_candidate_takes_its_lowest_threshold() {
        let cal = Calibration::new(budgets(0.02));
        // Support 0 is wrong one time in ten below 0.9; support 2 and up never is.
        for i in 0..300 {
            cal.observe("default", 0, 0.95, true);
            cal.observe("default", 0, 0.7, i % 10 != 0);
            cal.observe("default", 2, 0.7, true);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.95)));
        // Cell 1 holds the labels of support 1 or more: here, those of support 2.
        assert_eq!(cal.certified("default", 1), Some(Certified::From(0.7)));
        assert_eq!(cal.certified("default", 2), Some(Certified::From(0.7)));
        assert_eq!(cal.certified("default", 3), Some(Certified::From(0.7)));
        let cells = cal.report();
        let labels: Vec<(u8, u64)> = cells.iter().map(|c| (c.key.support, c.labels)).collect();
        assert_eq!(labels, vec![(0, 900), (1, 300), (2, 300)]);
    }

    #[test]
    fn support_counts_neighbours_of_the_same_answer_group() {
        let cal = Calibration::new(budgets(0.01));
        let [a, b, c, d, e] = [1u64, 2, 3, 4, 5].map(EntryId);
        cal.join(b, a, true);
        cal.join(c, b, true);
        cal.join(d, a, false);
        assert_eq!(cal.support(a, &[a, b, c, d]), 2);
        assert_eq!(cal.support(c, &[a, b, c, d, e]), 2);
        assert_eq!(cal.support(d, &[a, b, c, d]), 0);
        assert_eq!(cal.support(e, &[a, e]), 0);
        cal.forget(b);
        assert_eq!(cal.support(a, &[a, b, c]), 1);
    }

    #[test]
    fn a_snapshot_restores_labels_certificates_and_groups() {
        let cal = Calibration::new(budgets(0.05));
        for _ in 0..80 {
            cal.observe("default", 3, 0.7, true);
        }
        cal.join(EntryId(2), EntryId(1), true);
        let json = serde_json::to_string(&cal.snapshot()).unwrap();
        let back = Calibration::new(budgets(0.05));
        back.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(back.certified("default", 3), Some(Certified::From(0.7)));
        assert_eq!(back.support(EntryId(1), &[EntryId(2)]), 1);
        assert_eq!(back.report(), cal.report());
    }

    #[test]
    fn counter_names_read_back_whatever_the_category() {
        for category in ["default", "a:b", "", "support:3:9:w"] {
            assert_eq!(
                parse_counter(&label_counter(category, 2, 199, false)),
                Some(Counter::Label {
                    category,
                    support: 2,
                    bin: 199,
                    agreed: false
                })
            );
            assert_eq!(
                parse_counter(&audit_counter(category, AUDIT_CHECKED)),
                Some(Counter::Audit {
                    category,
                    wrong: false
                })
            );
        }
        // Out of range or foreign: not a counter of this calibration.
        for name in [
            "label:4:1:a:default",
            "label:0:200:a:default",
            "label:0:1:x:default",
            "label:0:1",
            "audit:other:default",
            "seeded",
        ] {
            assert_eq!(parse_counter(name), None, "{name}");
        }
    }

    #[test]
    fn adopting_counts_keeps_what_is_still_pending() {
        let a = Calibration::new(budgets(0.05));
        let b = Calibration::new(budgets(0.05));
        for _ in 0..30 {
            a.observe("default", 0, 0.9, true);
        }
        let from_a = a.take_pending();
        assert_eq!(from_a, a.counts());
        assert!(a.take_pending().is_empty(), "taken once");
        // B, with 30 labels of its own not yet added anywhere, adopts A's.
        for _ in 0..30 {
            b.observe("default", 0, 0.9, true);
        }
        assert_eq!(b.certified("default", 0), Some(Certified::Untrained));
        b.adopt(&from_a);
        assert_eq!(b.certified("default", 0), Some(Certified::From(0.9)));
        assert_eq!(b.report()[0].labels, 60);
        // A failed write gives them back.
        let pending = b.take_pending();
        b.return_pending(pending.clone());
        assert_eq!(b.take_pending(), pending);
    }

    #[test]
    fn audit_interval_covers_its_rate() {
        let mut t = AuditTally::default();
        assert_eq!(t.estimate(), None);
        for i in 0..200 {
            t.add(i % 50 == 0);
        }
        let (rate, lo, hi) = t.estimate().unwrap();
        assert_eq!(rate, 0.02);
        assert!(lo < 0.02 && hi > 0.02 && lo > 0.0, "{lo} {hi}");
    }
}
