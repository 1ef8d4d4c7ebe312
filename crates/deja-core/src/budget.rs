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
//! **Vouched cells.** The verifier the cache runs without a budget (the veto rules, the
//! learned verifier, the pair model) ranks candidates far better than similarity does, but
//! its one confidence cut-off is set on other people's pairs. So every label also says
//! whether the verifier accepted the candidate (*vouched* for it), and each support level
//! has a second cell holding only the vouched candidates' labels: where the verifier is
//! right on this traffic, that cell certifies a lower similarity for candidates it vouches
//! for than the plain cell can for all of them; where it is wrong too often, it certifies
//! nothing and costs nothing.
//!
//! **Certification.** A cell's threshold is the lowest similarity `t` such that the
//! labelled candidates at or above `t` show a wrong share below δ ([`shows_below`]: a test
//! that stays valid however often it is repeated, since the cache re-certifies after every
//! label). Thresholds are tested from the top down and the walk stops at the first that
//! fails (fixed-sequence testing: no correction for the many thresholds tried is needed).
//! Until a cell has enough labels to certify anything it is [`Certified::Untrained`]; a
//! cell whose labels certify nothing is [`Certified::Nothing`]. Either way it serves no
//! semantic hit: a budget is a promise, and the cache's decisions without one are not
//! within 1% on every traffic (measured with `deja simulate`), so until its own labels
//! speak, a budgeted category answers from exact hits and the upstream (whose answers are
//! the labels).
//!
//! **The judge's own noise.** Two answers to the *same* request differ in words, and the
//! answer comparison sometimes calls them different: a label says "wrong" where serving
//! would have been right. Left in, that noise counts against every cell as if it were false
//! hits, and a budget of 1% can hardly certify anything once the judge errs 0.7% of the
//! time. So a sampled share of exact hits — answers that are right by definition — is asked
//! again, and how often the judge calls the fresh answer different from the stored one is
//! its false-disagree rate ε, measured per category ([`Calibration::judged`]). A cell then
//! tests its judged-wrong share against `δ(1 − ε) + ε` rather than δ, with ε's lower bound
//! ([`observed_bound`]): what the judge is sure to get wrong is not counted as false hits.
//! Where no exact hit was judged different, the test is against δ. Checks stop once ε's
//! interval is narrower than δ / 2.
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

/// Support levels, hence cells of each kind (plain and vouched), per category.
const LEVELS: usize = MAX_SUPPORT as usize + 1;

/// A category's certificates: plain cells (`[0]`) and vouched ones (`[1]`), by support.
type Levels = [[Certified; LEVELS]; 2];

const UNTRAINED: Levels = [[Certified::Untrained; LEVELS]; 2];

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
    /// Only candidates the verifier accepted (a vouched cell), or all of them.
    #[serde(default)]
    pub vouched: bool,
}

/// What a lookup may serve one candidate at, under a budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// How many of the other candidates answer the same as this one.
    pub support: u8,
    /// Whatever the verifier says of it.
    pub any: Certified,
    /// If the verifier accepts it: the lower of what the plain and the vouched cells of
    /// its support certify.
    pub vouched: Certified,
}

impl Decision {
    /// The similarity from which the candidate may be served (`vouched`: whether the
    /// verifier accepted it); `None`: not at any.
    pub fn threshold(&self, vouched: bool) -> Option<f32> {
        match if vouched { self.vouched } else { self.any } {
            Certified::From(t) => Some(t),
            Certified::Untrained | Certified::Nothing => None,
        }
    }
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

/// The judged-wrong share that candidates truly wrong `delta` of the time show in labels,
/// when the judge calls a share ε of right answers different: `δ(1 − ε) + ε`, with ε's
/// one-sided 97.5% Wilson lower bound from its exact-hit checks (`judge`; 0 without any
/// judged different), so only what the judge is sure to get wrong is discounted.
pub fn observed_bound(delta: f64, judge: Option<&AuditTally>) -> f64 {
    let noise = judge
        .filter(|j| j.checked > 0 && j.wrong > 0)
        .map_or(0.0, |j| wilson(j.wrong, j.checked, JUDGE_Z).0);
    (delta * (1.0 - noise) + noise).min(1.0)
}

/// One-sided 97.5% normal quantile for the judge's false-disagree rate.
const JUDGE_Z: f64 = 1.96;

/// Points of the mixture in [`shows_below`].
const GRID: usize = 5;

/// The level of [`shows_below`]: a cell's certificate is wrong with at most this
/// probability, however often it is looked at.
pub const ALPHA: f64 = 0.05;

/// Whether `k` wrong labels of `n` show that the wrong share is below `bound`, at level
/// [`ALPHA`] **whenever the cell is looked at**. The cache re-certifies after every label, so
/// a fixed-sample bound (Wilson's) would be tested thousands of times and pass by chance
/// somewhere (a cell certified at 0.865 on 300 clean labels served 1.5% wrong hits at
/// δ = 1% in `deja simulate`). This is a test martingale instead: the likelihood ratio of
/// rates `q` below the bound (a mixture over [`GRID`] points evenly inside it) against the
/// bound itself. Where the true share is at or above the bound its expectation stays at
/// most 1, so by Ville's inequality it ever reaches 1/α with probability at most α.
pub fn shows_below(k: u64, n: u64, bound: f64) -> bool {
    Below::new(bound, 0.0).shows(k, n)
}

/// The fewest labels, all agreeing, that show a share below `bound`.
pub fn labels_needed(bound: f64) -> u64 {
    Below::new(bound, 0.0).needed
}

/// [`shows_below`] for one bound, its logarithms taken once (a cell's walk tests every
/// bin against the same bound).
#[derive(Debug, Clone, Copy)]
struct Below {
    /// Per point `q` of the mixture: `ln(q / bound)` and `ln((1 − q) / (1 − bound))`.
    wrong: [f64; GRID],
    right: [f64; GRID],
    /// Outside (0, 1): every test passes (1 and above) or fails.
    degenerate: Option<bool>,
    /// The fewest labels that pass when `expected` of them are wrong: where a cell's walk
    /// starts testing (see [`Cell::certify`]).
    needed: u64,
}

impl Below {
    /// The test against `bound`; `expected`: the share of labels the judge alone makes
    /// wrong (its measured false-disagree rate, 0 without one).
    fn new(bound: f64, expected: f64) -> Below {
        let mut below = Below {
            wrong: [0.0; GRID],
            right: [0.0; GRID],
            degenerate: (!(bound > 0.0 && bound < 1.0)).then_some(bound >= 1.0),
            needed: 1,
        };
        if below.degenerate.is_some() {
            return below;
        }
        let (ln_bound, ln_rest) = (bound.ln(), (1.0 - bound).ln());
        for j in 0..GRID {
            let q = bound * (j as f64 + 0.5) / GRID as f64;
            below.wrong[j] = q.ln() - ln_bound;
            below.right[j] = (1.0 - q).ln() - ln_rest;
        }
        let passes = |n: u64| below.shows((expected.clamp(0.0, 1.0) * n as f64).ceil() as u64, n);
        let (mut low, mut high) = (1u64, 1u64 << 40);
        if !passes(high) {
            below.needed = high;
            return below;
        }
        while low < high {
            let mid = low + (high - low) / 2;
            if passes(mid) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        below.needed = low;
        below
    }

    fn shows(&self, k: u64, n: u64) -> bool {
        if let Some(all) = self.degenerate {
            return all;
        }
        if k > n {
            return false;
        }
        let (k, rest) = (k as f64, (n - k) as f64);
        let mut terms = [0.0f64; GRID];
        for (j, t) in terms.iter_mut().enumerate() {
            *t = k * self.wrong[j] + rest * self.right[j];
        }
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = terms.iter().map(|t| (t - top).exp()).sum::<f64>() / GRID as f64;
        top + mean.ln() >= (1.0 / ALPHA).ln()
    }
}

impl Cell {
    /// `test`: the category's ([`category_test`]). The walk tests nothing above the
    /// similarity where the cell holds `test.needed` labels: the first threshold tested
    /// decides whether any is, and one tested on fewer labels than could pass at the
    /// judge's own error rate would fail for that noise alone, every time (the top of the
    /// scale gains labels slowest). Where to start depends on label counts and the judge's
    /// checks, never on the cell's verdicts, so the sequence stays fixed.
    fn certify(&self, test: &Below) -> Certified {
        let needed = test.needed;
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
            if test.shows(k, n) {
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
    #[serde(default)]
    judge: Vec<(String, AuditTally)>,
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
    /// Each cell's certificate, by category, kind and support level (kept beside the
    /// labels so a lookup reads it without allocating).
    certified: HashMap<String, Levels>,
    groups: Groups,
    /// The live audit's tallies, per category.
    audits: HashMap<String, AuditTally>,
    /// Exact hits checked against the upstream, and how many of them the answer
    /// comparison called different (its false-disagree rate), per category.
    judge: HashMap<String, AuditTally>,
    /// Each category's test, as its budget and judge make it (kept: finding the labels it
    /// needs takes a search).
    tests: HashMap<String, Below>,
    /// Label and audit counts added since they were last taken for the store, by counter
    /// name ([`label_counter`], [`tally_counter`]).
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

    /// What a candidate of `category` with `support` may be served at whatever the
    /// verifier says: the lowest threshold certified by a plain cell it belongs to (support
    /// `0..=support`). `None`: the category has no budget.
    pub fn certified(&self, category: &str, support: u8) -> Option<Certified> {
        self.budgets.of(category)?;
        Some(certified_both(&self.state.read(), category, support).0)
    }

    /// What a candidate the verifier accepted may be served at: the lowest threshold of
    /// the plain and vouched cells it belongs to. `None`: the category has no budget.
    pub fn certified_vouched(&self, category: &str, support: u8) -> Option<Certified> {
        self.budgets.of(category)?;
        Some(certified_both(&self.state.read(), category, support).1)
    }

    /// A lookup's question about one candidate, under one read lock and without
    /// allocating: its support among `others`, and what it may be served at with and
    /// without the verifier's word. `None`: the category has no budget.
    pub fn decide(
        &self,
        category: &str,
        candidate: EntryId,
        others: &[EntryId],
    ) -> Option<Decision> {
        self.budgets.of(category)?;
        let state = self.state.read();
        let support = support_in(&state, candidate, others);
        let (any, vouched) = certified_both(&state, category, support);
        Some(Decision {
            support,
            any,
            vouched,
        })
    }

    /// Records one label: serving a candidate of `category` with `support` at `similarity`
    /// would have been right (`agreed`) or wrong; `vouched`: the verifier had accepted it.
    /// It counts in every cell the candidate belongs to. Ignored for categories without a
    /// budget.
    pub fn observe(
        &self,
        category: &str,
        support: u8,
        similarity: f32,
        agreed: bool,
        vouched: bool,
    ) {
        let Some(delta) = self.budgets.of(category) else {
            return;
        };
        let mut guard = self.state.write();
        let state = &mut *guard;
        let test = test_of(&mut state.tests, &state.judge, category, delta);
        let b = bin(similarity);
        let kinds: &[bool] = if vouched { &[false, true] } else { &[false] };
        for &kind in kinds {
            for k in 0..=support.min(MAX_SUPPORT) {
                *state
                    .pending
                    .entry(label_counter(category, k, b, agreed, kind))
                    .or_default() += 1;
                let key = CellKey {
                    category: category.to_string(),
                    support: k,
                    vouched: kind,
                };
                let cell = state.cells.entry(key).or_default();
                if agreed {
                    cell.agreed[b] = cell.agreed[b].saturating_add(1);
                } else {
                    cell.wrong[b] = cell.wrong[b].saturating_add(1);
                }
                let certified = cell.certify(&test);
                state
                    .certified
                    .entry(category.to_string())
                    .or_insert(UNTRAINED)[usize::from(kind)][usize::from(k)] = certified;
            }
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
                    certified: state.certified.get(&key.category).map_or(
                        Certified::Untrained,
                        |levels| {
                            levels[usize::from(key.vouched)]
                                [usize::from(key.support.min(MAX_SUPPORT))]
                        },
                    ),
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
            audits: sorted(&state.audits),
            judge: sorted(&state.judge),
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
        state.groups = snapshot.groups;
        state.audits = snapshot.audits.into_iter().collect();
        state.judge = snapshot.judge.into_iter().collect();
        state.tests.clear();
        state.certified = certificates(&self.budgets, &state.cells, &state.judge);
    }

    /// Counts one exact hit of `category` checked against the upstream: whether the
    /// answer comparison called the fresh answer different from the stored one (it should
    /// not: the request is the same). Certificates of the category follow.
    pub fn judged(&self, category: &str, different: bool) {
        let mut guard = self.state.write();
        let state = &mut *guard;
        count_tally(state, JUDGE, category, different);
        // The category's test moves with its judge; the other categories' stay.
        state.tests.remove(category);
        let Some(delta) = self.budgets.of(category) else {
            return;
        };
        let test = test_of(&mut state.tests, &state.judge, category, delta);
        let levels = state
            .certified
            .entry(category.to_string())
            .or_insert(UNTRAINED);
        for (key, cell) in state.cells.iter().filter(|(k, _)| k.category == category) {
            levels[usize::from(key.vouched)][usize::from(key.support.min(MAX_SUPPORT))] =
                cell.certify(&test);
        }
    }

    /// Whether an exact hit of `category` is worth checking against the upstream: the
    /// category has a budget and the judge's false-disagree rate is not yet known to
    /// within δ / 2 (its two-sided 95% interval), nor checked [`MAX_JUDGE_CHECKS`] times.
    pub fn wants_judge_check(&self, category: &str) -> bool {
        let Some(delta) = self.budgets.of(category) else {
            return false;
        };
        let state = self.state.read();
        let tally = state.judge.get(category).copied().unwrap_or_default();
        let (low, high) = wilson(tally.wrong, tally.checked, 1.96);
        tally.checked < MAX_JUDGE_CHECKS && high - low > delta / 2.0
    }

    /// The live audit's estimate for `category` net of the answer comparison's own
    /// errors ([`AuditTally::estimate_net`]); `None` before any audit.
    pub fn audit_estimate(&self, category: &str) -> Option<(f64, f64, f64)> {
        let state = self.state.read();
        state
            .audits
            .get(category)?
            .estimate_net(state.judge.get(category))
    }

    /// The exact-hit checks of the answer comparison, per category, in name order.
    pub fn judge(&self) -> Vec<(String, AuditTally)> {
        sorted(&self.state.read().judge)
    }

    /// Counts one audited semantic hit of `category`: judged wrong or not.
    pub fn audited(&self, category: &str, wrong: bool) {
        count_tally(&mut self.state.write(), AUDIT, category, wrong);
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
                            label_counter(&key.category, key.support, b, is_agreed, key.vouched),
                            i64::from(n),
                        ));
                    }
                }
            }
        }
        for (kind, tallies) in [(AUDIT, &state.audits), (JUDGE, &state.judge)] {
            for (category, tally) in tallies {
                for (field, n) in [(AUDIT_CHECKED, tally.checked), (AUDIT_WRONG, tally.wrong)] {
                    if n > 0 {
                        out.push((tally_counter(kind, category, field), n as i64));
                    }
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
        let mut judge: HashMap<String, AuditTally> = HashMap::new();
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
                    vouched,
                }) => {
                    let cell = cells
                        .entry(CellKey {
                            category: category.to_string(),
                            support,
                            vouched,
                        })
                        .or_default();
                    let slot = if agreed {
                        &mut cell.agreed[bin]
                    } else {
                        &mut cell.wrong[bin]
                    };
                    *slot = slot.saturating_add(n);
                }
                Some(Counter::Tally {
                    judge: of_judge,
                    category,
                    wrong,
                }) => {
                    let tallies = if of_judge { &mut judge } else { &mut audits };
                    let tally = tallies.entry(category.to_string()).or_default();
                    if wrong {
                        tally.wrong += u64::from(n);
                    } else {
                        tally.checked += u64::from(n);
                    }
                }
                None => {}
            }
        }
        if cells == state.cells && audits == state.audits && judge == state.judge {
            return;
        }
        state.tests.clear();
        state.certified = certificates(&self.budgets, &cells, &judge);
        state.cells = cells;
        state.audits = audits;
        state.judge = judge;
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
        sorted(&self.state.read().audits)
    }
}

/// Counts one check in a category's audit (`AUDIT`) or judge (`JUDGE`) tally, and as
/// pending counter additions for the store.
fn count_tally(state: &mut State, kind: &str, category: &str, wrong: bool) {
    let tallies = if kind == JUDGE {
        &mut state.judge
    } else {
        &mut state.audits
    };
    tallies.entry(category.to_string()).or_default().add(wrong);
    let fields: &[&str] = if wrong {
        &[AUDIT_CHECKED, AUDIT_WRONG]
    } else {
        &[AUDIT_CHECKED]
    };
    for field in fields {
        *state
            .pending
            .entry(tally_counter(kind, category, field))
            .or_default() += 1;
    }
    state.version += 1;
}

/// Each category's certificates, by support level, from its cells.
fn certificates(
    budgets: &Budgets,
    cells: &HashMap<CellKey, Cell>,
    judge: &HashMap<String, AuditTally>,
) -> HashMap<String, Levels> {
    let mut certified: HashMap<String, Levels> = HashMap::new();
    let mut tests = HashMap::new();
    for (key, cell) in cells {
        if let (Some(delta), true) = (budgets.of(&key.category), key.support <= MAX_SUPPORT) {
            let test = test_of(&mut tests, judge, &key.category, delta);
            certified.entry(key.category.clone()).or_insert(UNTRAINED)[usize::from(key.vouched)]
                [usize::from(key.support)] = cell.certify(&test);
        }
    }
    certified
}

/// The test of a category's cells: against `delta` raised by what the judge is sure to get
/// wrong, starting where labels wrong as often as the judge alone errs could pass.
fn category_test(delta: f64, judge: Option<&AuditTally>) -> Below {
    let expected = judge.and_then(AuditTally::estimate).map_or(0.0, |e| e.0);
    Below::new(observed_bound(delta, judge), expected)
}

/// The test of `category`'s cells (budget `delta`), from `tests` or made and kept there.
fn test_of(
    tests: &mut HashMap<String, Below>,
    judge: &HashMap<String, AuditTally>,
    category: &str,
    delta: f64,
) -> Below {
    if let Some(test) = tests.get(category) {
        return *test;
    }
    let test = category_test(delta, judge.get(category));
    tests.insert(category.to_string(), test);
    test
}

const AUDIT_CHECKED: &str = "checked";
const AUDIT_WRONG: &str = "wrong";

/// The counter of one cell's labels in one similarity bin, agreed or wrong:
/// `label:SUPPORT:BIN:a|w:CATEGORY` for a plain cell, `vouched:…` for a vouched one (the
/// category last, whatever it contains).
fn label_counter(category: &str, support: u8, bin: usize, agreed: bool, vouched: bool) -> String {
    format!(
        "{}:{support}:{bin}:{}:{category}",
        if vouched { VOUCHED } else { LABEL },
        if agreed { "a" } else { "w" }
    )
}

const LABEL: &str = "label";
const VOUCHED: &str = "vouched";

/// The counter of one category's audited hits (`checked`) or wrong ones,
/// `audit:checked|wrong:CATEGORY`, or of its exact hits checked and judged different,
/// `judge:checked|wrong:CATEGORY`.
fn tally_counter(kind: &str, category: &str, field: &str) -> String {
    format!("{kind}:{field}:{category}")
}

const AUDIT: &str = "audit";
const JUDGE: &str = "judge";

/// Exact hits checked per category at most, however noisy the judge.
pub const MAX_JUDGE_CHECKS: u64 = 10_000;

/// A counter name, read back.
#[derive(Debug, PartialEq)]
enum Counter<'a> {
    Label {
        category: &'a str,
        support: u8,
        bin: usize,
        agreed: bool,
        vouched: bool,
    },
    /// An audit tally (`judge`: the exact-hit checks of the answer comparison).
    Tally {
        judge: bool,
        category: &'a str,
        wrong: bool,
    },
}

fn parse_counter(name: &str) -> Option<Counter<'_>> {
    let label = match name.split_once(':') {
        Some((LABEL, rest)) => Some((rest, false)),
        Some((VOUCHED, rest)) => Some((rest, true)),
        _ => None,
    };
    if let Some((rest, vouched)) = label {
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
            vouched,
        })
    } else {
        let (kind, rest) = name.split_once(':')?;
        let judge = match kind {
            AUDIT => false,
            JUDGE => true,
            _ => return None,
        };
        let (field, category) = rest.split_once(':')?;
        let wrong = match field {
            AUDIT_CHECKED => false,
            AUDIT_WRONG => true,
            _ => return None,
        };
        Some(Counter::Tally {
            judge,
            category,
            wrong,
        })
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

/// The lowest threshold certified by the plain cells of `category` up to `support`, and
/// by those with its vouched ones (for a candidate the verifier accepted); `Nothing` when
/// some of them certify nothing and none a threshold; else `Untrained`.
fn certified_both(state: &State, category: &str, support: u8) -> (Certified, Certified) {
    let Some([plain, vouched]) = state.certified.get(category) else {
        return (Certified::Untrained, Certified::Untrained);
    };
    let up_to = usize::from(support.min(MAX_SUPPORT));
    let lowest = |from: Certified, cells: &[Certified]| {
        cells.iter().fold(from, |best, &c| match (best, c) {
            (Certified::From(a), Certified::From(b)) => Certified::From(a.min(b)),
            (_, Certified::From(b)) | (Certified::From(b), _) => Certified::From(b),
            (Certified::Untrained, Certified::Nothing) => Certified::Nothing,
            (best, _) => best,
        })
    };
    let any = lowest(Certified::Untrained, &plain[..=up_to]);
    (any, lowest(any, &vouched[..=up_to]))
}

/// Tallies in category order.
fn sorted(tallies: &HashMap<String, AuditTally>) -> Vec<(String, AuditTally)> {
    let mut out: Vec<(String, AuditTally)> = tallies.iter().map(|(k, t)| (k.clone(), *t)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
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

    /// [`AuditTally::estimate`] net of the answer comparison's own errors (`judge`: its
    /// exact-hit checks, see [`Calibration::judged`]): the share of checked hits truly
    /// wrong, `(a − ε) / (1 − ε)` for a judged-wrong share `a` and a false-disagree rate
    /// `ε`, with Newcombe's hybrid score interval for the difference (95%, two-sided).
    /// The plain estimate where no check of the comparison found it wrong.
    pub fn estimate_net(&self, judge: Option<&AuditTally>) -> Option<(f64, f64, f64)> {
        let plain = self.estimate()?;
        let Some(judge) = judge.filter(|j| j.checked > 0 && j.wrong > 0) else {
            return Some(plain);
        };
        let (a, a_low, a_high) = plain;
        let (e, e_low, e_high) = judge.estimate()?;
        if e >= 1.0 {
            return Some(plain);
        }
        let d = a - e;
        let low = d - ((a - a_low).powi(2) + (e_high - e).powi(2)).sqrt();
        let high = d + ((a_high - a).powi(2) + (e - e_low).powi(2)).sqrt();
        let net = |x: f64| (x / (1.0 - e)).clamp(0.0, 1.0);
        Some((net(d), net(low), net(high)))
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
    }

    /// A small xorshift generator: the streams below are the same on every run.
    fn stream(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn the_test_holds_however_often_it_is_looked_at() {
        // All agreeing, the labels needed: 454 at 1%, 226 at 2%, 89 at 5%, 9 at 40%.
        for (delta, want) in [(0.01, 454), (0.02, 226), (0.05, 89), (0.4, 9)] {
            let n = labels_needed(delta);
            assert_eq!(n, want, "{delta}");
            assert!(shows_below(0, n, delta) && !shows_below(0, n - 1, delta));
        }
        // Streams of labels wrong exactly 2% of the time, tested after every label as
        // the cache does: the test passes on at most α of them, where a Wilson bound
        // looked at as often passes on many more.
        let (streams, length, bound) = (200, 5_000, 0.02);
        let test = Below::new(bound, 0.0);
        let (mut ours, mut wilsons) = (0, 0);
        for seed in 0..streams {
            let mut draw = stream(seed + 1);
            let (mut k, mut passed, mut wilson_passed) = (0u64, false, false);
            for n in 1..=length {
                k += u64::from(draw() < bound);
                passed |= test.shows(k, n);
                wilson_passed |= n >= 133 && wilson_upper(k, n) <= bound;
            }
            ours += usize::from(passed);
            wilsons += usize::from(wilson_passed);
        }
        assert!(ours as f64 <= ALPHA * streams as f64, "{ours} of {streams}");
        assert!(wilsons > 2 * ours.max(10), "{wilsons} against {ours}");
        // Half the bound is shown within a few thousand labels.
        let mut draw = stream(7);
        let mut k = 0;
        let shown = (1..=5_000u64).find(|&n| {
            k += u64::from(draw() < bound / 2.0);
            test.shows(k, n)
        });
        assert!(shown.is_some_and(|n| n < 3_000), "{shown:?}");
    }

    #[test]
    fn untrained_until_enough_labels_then_certified_down_to_where_errors_start() {
        let cal = Calibration::new(budgets(0.02));
        for _ in 0..150 {
            cal.observe("default", 0, 0.9, true, false);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::Untrained));
        for _ in 0..150 {
            cal.observe("default", 0, 0.8, true, false);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.8)));
        // Below 0.7 half the labels are wrong: the walk stops above it.
        for _ in 0..60 {
            cal.observe("default", 0, 0.6, true, false);
            cal.observe("default", 0, 0.6, false, false);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.8)));
        // A candidate with more support may use what cell 0 certified.
        assert_eq!(cal.certified("default", 2), Some(Certified::From(0.8)));
    }

    #[test]
    fn a_cell_whose_top_labels_are_wrong_certifies_nothing() {
        let cal = Calibration::new(budgets(0.01));
        for i in 0..600 {
            cal.observe("default", 1, 0.95, i % 10 != 0, false);
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
            cal.observe("default", 0, 0.9, true, false);
        }
        assert_eq!(cal.certified("default", 0), None);
        assert!(cal.report().is_empty());
        assert!(!cal.wants_judge_check("default"));
        assert!(cal.wants_judge_check("faq"));
        for _ in 0..100 {
            cal.observe("faq", 0, 0.9, true, false);
        }
        assert_eq!(cal.certified("faq", 0), Some(Certified::From(0.9)));
    }

    #[test]
    fn cells_are_cumulative_and_a_candidate_takes_its_lowest_threshold() {
        let cal = Calibration::new(budgets(0.02));
        // Support 0 is wrong one time in ten below 0.9; support 2 and up never is.
        for i in 0..300 {
            cal.observe("default", 0, 0.95, true, false);
            cal.observe("default", 0, 0.7, i % 10 != 0, false);
            cal.observe("default", 2, 0.7, true, false);
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
    fn the_verifiers_word_earns_its_own_threshold_where_it_is_right() {
        let cal = Calibration::new(budgets(0.02));
        // Around 0.75, candidates the verifier accepted are right; the others are wrong
        // one time in four.
        for i in 0..300 {
            cal.observe("default", 0, 0.95, true, i % 2 == 0);
            cal.observe("default", 0, 0.75, true, true);
            cal.observe("default", 0, 0.75, i % 4 != 0, false);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.95)));
        assert_eq!(
            cal.certified_vouched("default", 0),
            Some(Certified::From(0.75))
        );
        let found = [EntryId(1)];
        let d = cal.decide("default", EntryId(1), &found).unwrap();
        assert_eq!(
            (d.threshold(false), d.threshold(true)),
            (Some(0.95), Some(0.75))
        );
        // A vouched label counts in the plain cell too: 900 labels there, 450 vouched.
        let labels: Vec<(bool, u64)> = cal
            .report()
            .iter()
            .map(|c| (c.key.vouched, c.labels))
            .collect();
        assert_eq!(labels, vec![(false, 900), (true, 450)]);
        // Where the verifier is wrong too, its cell certifies nothing, and a vouched
        // candidate keeps the plain threshold.
        let cal = Calibration::new(budgets(0.02));
        for i in 0..300 {
            cal.observe("default", 0, 0.95, true, false);
            cal.observe("default", 0, 0.75, i % 4 != 0, true);
        }
        assert_eq!(
            cal.certified_vouched("default", 0),
            Some(Certified::From(0.95))
        );
        // The vouched cells go to the store and come back.
        let other = Calibration::new(budgets(0.02));
        other.adopt(&cal.take_pending());
        assert_eq!(other.report(), cal.report());
        assert_eq!(
            other.certified_vouched("default", 0),
            Some(Certified::From(0.95))
        );
    }

    #[test]
    fn the_judges_own_errors_are_discounted_once_measured() {
        let judge = |wrong, checked| AuditTally { checked, wrong };
        // Nothing measured, or no error seen: labels are tested against δ itself.
        assert_eq!(observed_bound(0.01, None), 0.01);
        assert_eq!(observed_bound(0.01, Some(&judge(0, 3000))), 0.01);
        // The judge calls 1% of identical requests' answers different (20 of 2,000): only
        // its lower bound, 0.65%, is discounted.
        let bound = observed_bound(0.01, Some(&judge(20, 2000)));
        assert!((bound - 0.01642).abs() < 1e-4, "{bound}");
        // One different answer in thirty checks discounts less.
        assert!(observed_bound(0.01, Some(&judge(1, 30))) < bound);

        // In a cell: 1% of 4,000 labels wrong where the judge errs 1% of the time. A
        // budget of 1% certifies nothing on them until the judge's checks come in.
        let cal = Calibration::new(budgets(0.01));
        for i in 0..4000 {
            cal.observe("default", 0, 0.9, i % 100 != 0, true);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::Nothing));
        assert!(cal.wants_judge_check("default"));
        for i in 0..2000 {
            cal.judged("default", i % 100 == 0);
        }
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.9)));
        assert_eq!(
            cal.certified_vouched("default", 0),
            Some(Certified::From(0.9))
        );
        // 2,000 checks at 1% put the judge's interval at about 0.9 points, wider than
        // δ / 2: still checking; at 8,000 it is narrow enough.
        assert!(cal.wants_judge_check("default"));
        for i in 0..6000 {
            cal.judged("default", i % 100 == 0);
        }
        assert!(!cal.wants_judge_check("default"));
        // Real errors beyond the judge's still show: 3% wrong against its 1%.
        let worse = Calibration::new(budgets(0.01));
        for i in 0..4000 {
            worse.observe("default", 0, 0.9, i % 100 >= 3, true);
        }
        for i in 0..8000 {
            worse.judged("default", i % 100 == 0);
        }
        assert_eq!(worse.certified("default", 0), Some(Certified::Nothing));
        // The checks go to the store and come back, and a snapshot keeps them.
        let other = Calibration::new(budgets(0.01));
        other.adopt(&cal.take_pending());
        assert_eq!(other.judge(), cal.judge());
        assert_eq!(other.certified("default", 0), Some(Certified::From(0.9)));
        let back = Calibration::new(budgets(0.01));
        back.restore(
            serde_json::from_str(&serde_json::to_string(&cal.snapshot()).unwrap()).unwrap(),
        );
        assert_eq!(back.judge(), cal.judge());
        assert_eq!(back.certified("default", 0), Some(Certified::From(0.9)));
    }

    #[test]
    fn the_walk_starts_where_the_judges_noise_alone_could_pass() {
        // The judge calls 0.8% of right answers different; the top of the scale has 250
        // labels with 2 wrong (its noise), the rest 1,500 with 12.
        let cal = Calibration::new(budgets(0.02));
        for i in 0..250 {
            cal.observe("default", 0, 0.99, i % 125 != 0, true);
        }
        for i in 0..1500 {
            cal.observe("default", 0, 0.95, i % 125 != 0, true);
        }
        // Without the judge's checks the first threshold tested is 0.99, on 250 labels,
        // which its two wrong ones fail: nothing below it is tested.
        assert_eq!(cal.certified("default", 0), Some(Certified::Nothing));
        for i in 0..1000 {
            cal.judged("default", i % 125 == 0);
        }
        // With them, the walk starts where that much noise could pass (above 250 labels),
        // and the 1,750 labels from 0.95 up pass.
        assert!(labels_needed(0.02) < 250);
        assert_eq!(cal.certified("default", 0), Some(Certified::From(0.95)));
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
        for _ in 0..100 {
            cal.observe("default", 3, 0.7, true, false);
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
            for vouched in [false, true] {
                assert_eq!(
                    parse_counter(&label_counter(category, 2, 199, false, vouched)),
                    Some(Counter::Label {
                        category,
                        support: 2,
                        bin: 199,
                        agreed: false,
                        vouched,
                    })
                );
            }
            for (kind, judge) in [(AUDIT, false), (JUDGE, true)] {
                assert_eq!(
                    parse_counter(&tally_counter(kind, category, AUDIT_CHECKED)),
                    Some(Counter::Tally {
                        judge,
                        category,
                        wrong: false
                    })
                );
            }
        }
        // Out of range or foreign: not a counter of this calibration.
        for name in [
            "label:4:1:a:default",
            "label:0:200:a:default",
            "label:0:1:x:default",
            "label:0:1",
            "vouched:4:1:a:default",
            "labels:0:1:a:default",
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
        for _ in 0..50 {
            a.observe("default", 0, 0.9, true, false);
        }
        let from_a = a.take_pending();
        assert_eq!(from_a, a.counts());
        assert!(a.take_pending().is_empty(), "taken once");
        // B, with 50 labels of its own not yet added anywhere, adopts A's.
        for _ in 0..50 {
            b.observe("default", 0, 0.9, true, false);
        }
        assert_eq!(b.certified("default", 0), Some(Certified::Untrained));
        b.adopt(&from_a);
        assert_eq!(b.certified("default", 0), Some(Certified::From(0.9)));
        assert_eq!(b.report()[0].labels, 100);
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
        assert_eq!(t.estimate_net(None), t.estimate());
        // The comparison calls 1% of identical requests' answers different: about 1% of
        // the hits are truly wrong, within a wider interval.
        let judge = AuditTally {
            checked: 1000,
            wrong: 10,
        };
        let (net, net_lo, net_hi) = t.estimate_net(Some(&judge)).unwrap();
        assert!((net - 0.0101).abs() < 1e-3, "{net}");
        assert!(net_lo < net && net_hi > net, "{net_lo} {net_hi}");
        // Wider above than the plain interval (both rates are uncertain); clamped at 0.
        assert!(net_hi - net > hi - rate, "{net_hi}");
        assert_eq!(net_lo, 0.0);
    }
}
