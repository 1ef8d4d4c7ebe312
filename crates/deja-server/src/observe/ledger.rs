//! The cost ledger: what the cache did and saved, per UTC day and per model, kept across
//! restarts.
//!
//! Every recorded request ([`crate::observe`]) adds to its day's row for its model:
//! requests, exact and semantic hits, misses, bypasses, the prompt and completion tokens
//! the hits would have cost upstream, and their price in dollars ([`crate::pricing`]).
//! A hit of a model without a price adds its tokens and counts as an unpriced hit; no
//! money is made up for it.
//!
//! Bounded: at most [`MAX_MODELS_PER_DAY`] rows a day (models after that share the row
//! [`OTHER_MODEL`], as do names longer than [`MAX_MODEL_BYTES`]), and the last
//! [`KEEP_DAYS`] days. Recording takes a short mutex on that small map and allocates
//! nothing once the day's row for the model exists, so the exact-hit path stays cheap.
//! Money is summed in billionths of a dollar (integers), so sums are exact and a
//! one-token embedding hit at $0.02 per 1M is not rounded away.
//!
//! The ledger lives in `<data_dir>/ledger.json`: written (temporary file, fsync, rename)
//! every [`SAVE_EVERY`] when it changed and at a clean stop, read at start. A crash loses
//! at most the last period. With the Redis store every replica keeps its own ledger in its
//! own data directory; the fleet's figures are the sum of theirs.
//!
//! This module is not the place for prices ([`crate::pricing`]) nor for Prometheus
//! counters ([`crate::observe::metrics`], which count since start, without days or models).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use deja_core::Usage;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::summary::{nano_usd, Outcome, RequestSummary};

/// The ledger's file, in the data directory.
pub const LEDGER_FILE: &str = "ledger.json";
/// Most rows (models) one day keeps, [`OTHER_MODEL`] included.
pub const MAX_MODELS_PER_DAY: usize = 200;
/// Days kept; older ones are dropped when a new day starts.
pub const KEEP_DAYS: usize = 400;
/// Longer model names are counted as [`OTHER_MODEL`] (a client chooses the name).
pub const MAX_MODEL_BYTES: usize = 128;
/// The row of models beyond the day's cap, and of overlong names.
pub const OTHER_MODEL: &str = "other";
/// The row of requests that named no model.
pub const NO_MODEL: &str = "unknown";
/// How often the server writes the ledger when it changed.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// The file format's version.
const FORMAT_VERSION: u32 = 1;

const DAY_MS: u64 = 24 * 3600 * 1000;
const NANOS_PER_USD: f64 = 1e9;

/// One day's figures for one model (or the sum of several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    pub requests: u64,
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypasses: u64,
    /// Tokens the hits would have cost upstream.
    pub prompt_tokens_saved: u64,
    pub completion_tokens_saved: u64,
    /// What the hits would have cost, in billionths of a US dollar.
    pub saved_nano_usd: u64,
    /// Hits of a model without a price: their tokens are counted, their money is not.
    pub unpriced_hits: u64,
}

impl Row {
    fn record(&mut self, outcome: Outcome, saved: Usage, saved_usd: Option<f64>) {
        self.requests += 1;
        match outcome {
            Outcome::HitExact => self.exact_hits += 1,
            Outcome::HitSemantic => self.semantic_hits += 1,
            Outcome::Miss => self.misses += 1,
            Outcome::Bypass => self.bypasses += 1,
        }
        self.prompt_tokens_saved += saved.prompt_tokens;
        self.completion_tokens_saved += saved.completion_tokens;
        match saved_usd {
            Some(usd) => self.saved_nano_usd += nano_usd(usd),
            None if matches!(outcome, Outcome::HitExact | Outcome::HitSemantic) => {
                self.unpriced_hits += 1
            }
            None => {}
        }
    }

    fn add(&mut self, o: &Row) {
        self.requests += o.requests;
        self.exact_hits += o.exact_hits;
        self.semantic_hits += o.semantic_hits;
        self.misses += o.misses;
        self.bypasses += o.bypasses;
        self.prompt_tokens_saved += o.prompt_tokens_saved;
        self.completion_tokens_saved += o.completion_tokens_saved;
        self.saved_nano_usd += o.saved_nano_usd;
        self.unpriced_hits += o.unpriced_hits;
    }

    /// Hits over hits and misses (bypasses are not counted), as the cache's own
    /// `hit_rate`; 0 without any.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.exact_hits + self.semantic_hits;
        match hits + self.misses {
            0 => 0.0,
            n => hits as f64 / n as f64,
        }
    }

    pub fn saved_usd(&self) -> f64 {
        self.saved_nano_usd as f64 / NANOS_PER_USD
    }
}

/// The days, each with its rows by model.
#[derive(Debug, Default)]
struct Days {
    days: BTreeMap<u64, HashMap<String, Row>>,
    /// Moves on every change; compared with `saved` to decide whether to write.
    version: u64,
    saved: u64,
}

/// The per-day, per-model accounts; one per server, in [`crate::state::AppState`].
#[derive(Debug)]
pub struct Ledger {
    state: Mutex<Days>,
    /// Where it is saved; `None` keeps it in memory only.
    path: Option<PathBuf>,
    /// Held while writing, so two saves never interleave in the temporary file.
    writing: Mutex<()>,
}

/// Why the ledger file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the ledger {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the ledger {path} is not a deja ledger: {message}")]
    Parse { path: String, message: String },
    #[error("cannot write the ledger {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Ledger {
    /// An empty ledger kept in memory only.
    pub fn in_memory() -> Ledger {
        Ledger {
            state: Mutex::new(Days::default()),
            path: None,
            writing: Mutex::new(()),
        }
    }

    /// Reads the ledger at `path` (missing: empty), to be saved there again.
    pub fn read(path: &Path) -> Result<Ledger, LedgerError> {
        let days = match std::fs::read(path) {
            Ok(bytes) => parse_file(&bytes).map_err(|message| LedgerError::Parse {
                path: path.display().to_string(),
                message,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(LedgerError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Ok(Ledger {
            state: Mutex::new(Days {
                days,
                ..Days::default()
            }),
            path: Some(path.to_path_buf()),
            writing: Mutex::new(()),
        })
    }

    /// [`Ledger::read`] for the server: a ledger that cannot be read is logged, moved
    /// aside to `ledger.json.unreadable` (so the next save does not destroy what a person
    /// may still recover) and replaced by an empty one. A ledger fault never stops a start.
    pub fn open(path: &Path) -> Ledger {
        match Ledger::read(path) {
            Ok(l) => l,
            Err(e) => {
                let aside = path.with_extension("json.unreadable");
                let moved = std::fs::rename(path, &aside).is_ok();
                tracing::warn!(
                    error = %deja_core::ErrorChain(&e),
                    moved_to = %if moved { aside.display().to_string() } else { "(not moved)".into() },
                    "cost ledger unreadable; starting an empty one"
                );
                Ledger {
                    path: Some(path.to_path_buf()),
                    ..Ledger::in_memory()
                }
            }
        }
    }

    /// Adds one request, on the UTC day of `now_ms`, to its model's row. A request
    /// without an outcome is not counted (as in [`crate::observe::metrics`]).
    pub fn record(&self, now_ms: u64, s: &RequestSummary) {
        let Some(outcome) = s.outcome else {
            return;
        };
        let model = match s.model.as_deref() {
            None => NO_MODEL,
            Some(m) if m.len() > MAX_MODEL_BYTES => OTHER_MODEL,
            Some(m) => m,
        };
        let day = now_ms / DAY_MS;
        let mut guard = self.state.lock();
        let state = &mut *guard;
        state.version += 1;
        if !state.days.contains_key(&day) {
            new_day(&mut state.days, day);
        }
        let Some(rows) = state.days.get_mut(&day) else {
            return; // `new_day` just inserted it.
        };
        match rows.get_mut(model) {
            Some(row) => row.record(outcome, s.saved, s.saved_usd),
            None => {
                // Keep one of the day's rows for `other`.
                let name = if rows.len() + 1 < MAX_MODELS_PER_DAY {
                    model
                } else {
                    OTHER_MODEL
                };
                rows.entry(name.to_string())
                    .or_default()
                    .record(outcome, s.saved, s.saved_usd);
            }
        }
    }

    /// The days from `today - days + 1` to `today` (UTC day numbers; later days too, if
    /// the clock went back), per day and per model, with totals.
    pub fn report(&self, today_ms: u64, days: u64) -> LedgerReport {
        let today = today_ms / DAY_MS;
        let first = today.saturating_sub(days.saturating_sub(1));
        let state = self.state.lock();
        let mut by_model: BTreeMap<&str, Row> = BTreeMap::new();
        let mut totals = Row::default();
        let mut day_reports = Vec::new();
        for (day, rows) in state.days.range(first..).rev() {
            let mut day_total = Row::default();
            for (model, row) in rows {
                day_total.add(row);
                by_model.entry(model).or_default().add(row);
            }
            totals.add(&day_total);
            day_reports.push(DayReport {
                date: date_of_day(*day),
                totals: ReportRow::from(&day_total),
                models: model_reports(rows.iter().map(|(m, r)| (m.as_str(), r))),
            });
        }
        LedgerReport {
            from: date_of_day(first),
            to: date_of_day(today),
            days: day_reports,
            models: model_reports(by_model.iter().map(|(m, r)| (*m, r))),
            totals: ReportRow::from(&totals),
        }
    }

    /// Writes the ledger if it changed since the last write; `Ok(true)` if it did.
    pub fn save(&self) -> Result<bool, LedgerError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let _writing = self.writing.lock();
        // Copied under the lock and serialised outside it, so requests wait for a copy of
        // a few hundred rows at most, not for the JSON encoder.
        let (days, version) = {
            let state = self.state.lock();
            if state.version == state.saved {
                return Ok(false);
            }
            (state.days.clone(), state.version)
        };
        let bytes = file_bytes(&days);
        write_atomically(path, &bytes).map_err(|source| LedgerError::Write {
            path: path.display().to_string(),
            source,
        })?;
        let mut state = self.state.lock();
        state.saved = state.saved.max(version);
        Ok(true)
    }
}

/// Starts a day, dropping the oldest beyond [`KEEP_DAYS`] (never the new one: a clock
/// set far back makes it the oldest until the next day starts).
fn new_day(days: &mut BTreeMap<u64, HashMap<String, Row>>, day: u64) {
    while days.len() >= KEEP_DAYS {
        days.pop_first();
    }
    days.insert(day, HashMap::new());
}

/// Rows by model, most money saved first, then most requests, then by name.
fn model_reports<'a>(rows: impl Iterator<Item = (&'a str, &'a Row)>) -> Vec<ModelReport> {
    let mut v: Vec<ModelReport> = rows
        .map(|(model, row)| ModelReport {
            model: model.to_string(),
            row: ReportRow::from(row),
        })
        .collect();
    v.sort_by(|a, b| {
        b.row
            .saved_nano_usd
            .cmp(&a.row.saved_nano_usd)
            .then(b.row.requests.cmp(&a.row.requests))
            .then(a.model.cmp(&b.model))
    });
    v
}

/// What `/admin/stats` and `deja stats` show: a period of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// The period's first and last UTC dates (`YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    /// Days with traffic, newest first.
    pub days: Vec<DayReport>,
    /// Per model over the period.
    pub models: Vec<ModelReport>,
    pub totals: ReportRow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayReport {
    pub date: String,
    pub totals: ReportRow,
    pub models: Vec<ModelReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    #[serde(flatten)]
    pub row: ReportRow,
}

/// A [`Row`] with its hit rate and dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    #[serde(flatten)]
    pub counts: Row,
    pub hit_rate: f64,
    pub saved_usd: f64,
}

impl From<&Row> for ReportRow {
    fn from(r: &Row) -> ReportRow {
        ReportRow {
            counts: *r,
            hit_rate: r.hit_rate(),
            saved_usd: r.saved_usd(),
        }
    }
}

impl std::ops::Deref for ModelReport {
    type Target = ReportRow;
    fn deref(&self) -> &ReportRow {
        &self.row
    }
}

impl std::ops::Deref for ReportRow {
    type Target = Row;
    fn deref(&self) -> &Row {
        &self.counts
    }
}

/// The file: `{"version": 1, "days": [{"date": "2025-06-01", "models": {"gpt-4o": {..}}}]}`.
#[derive(Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    days: Vec<FileDay>,
}

#[derive(Serialize, Deserialize)]
struct FileDay {
    date: String,
    models: BTreeMap<String, Row>,
}

fn file_bytes(days: &BTreeMap<u64, HashMap<String, Row>>) -> Vec<u8> {
    let file = LedgerFile {
        version: FORMAT_VERSION,
        days: days
            .iter()
            .map(|(day, rows)| FileDay {
                date: date_of_day(*day),
                models: rows.iter().map(|(m, r)| (m.clone(), *r)).collect(),
            })
            .collect(),
    };
    // Serialising maps with string keys and integers cannot fail.
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

fn parse_file(bytes: &[u8]) -> Result<BTreeMap<u64, HashMap<String, Row>>, String> {
    let file: LedgerFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this deja reads {FORMAT_VERSION})",
            file.version
        ));
    }
    let mut days = BTreeMap::new();
    for d in file.days {
        let day = day_of_date(&d.date).ok_or_else(|| format!("bad date {:?}", d.date))?;
        days.insert(day, d.models.into_iter().collect());
    }
    while days.len() > KEEP_DAYS {
        days.pop_first();
    }
    Ok(days)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`,
/// so a reader (or a crash) sees the old ledger or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes the ledger every [`SAVE_EVERY`] when it changed, until the returned handle is
/// aborted (the server then saves once more, [`save_logged`]).
pub fn spawn_saver(ledger: std::sync::Arc<Ledger>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            save_logged(ledger.clone()).await;
        }
    })
}

/// Saves on a blocking thread; a failure is logged (the next save tries again).
pub async fn save_logged(ledger: std::sync::Arc<Ledger>) {
    match tokio::task::spawn_blocking(move || ledger.save()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "saving the cost ledger failed")
        }
        Err(e) => tracing::warn!(error = %e, "the cost ledger's save task failed"),
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01), in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub fn date_of_day(day: u64) -> String {
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD` (the inverse of [`date_of_day`]); `None` if it is not
/// a valid date on or after 1970-01-01.
pub fn day_of_date(date: &str) -> Option<u64> {
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    // Rejects days a month does not have (2025-02-30).
    (date_of_day(day) == date).then_some(day)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deja_core::{Clock, ManualClock};

    use super::*;
    use crate::observe::summary::Endpoint;

    fn summary(
        model: &str,
        outcome: Outcome,
        saved: (u64, u64),
        usd: Option<f64>,
    ) -> RequestSummary {
        let mut s = RequestSummary::new(Endpoint::Chat);
        s.model = Some(model.to_string());
        s.outcome = Some(outcome);
        s.saved = Usage {
            prompt_tokens: saved.0,
            completion_tokens: saved.1,
        };
        s.saved_usd = usd;
        s
    }

    #[test]
    fn dates_round_trip() {
        for (day, date) in [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (11_016, "2000-02-29"),
            (19_358, "2023-01-01"),
            (20_240, "2025-06-01"),
        ] {
            assert_eq!(date_of_day(day), date);
            assert_eq!(day_of_date(date), Some(day), "{date}");
        }
        for bad in [
            "2025-02-30",
            "2025-13-01",
            "2025-1-01",
            "1969-12-31",
            "x",
            "",
        ] {
            assert_eq!(day_of_date(bad), None, "{bad}");
        }
        for day in (0..200_000).step_by(37) {
            assert_eq!(day_of_date(&date_of_day(day)), Some(day));
        }
    }

    /// Requests land on their UTC day by the injected clock; a new day starts new rows,
    /// and the report covers the asked-for days, newest first, with exact totals.
    #[test]
    fn days_roll_over_with_the_clock() {
        // 2025-06-02 23:59:59 UTC.
        let clock = Arc::new(ManualClock::new(20_241 * DAY_MS + DAY_MS - 1_000));
        let l = Ledger::in_memory();
        l.record(
            clock.now_ms(),
            &summary("gpt-4o", Outcome::Miss, (0, 0), Some(0.0)),
        );
        l.record(
            clock.now_ms(),
            &summary("gpt-4o", Outcome::HitExact, (1_000, 500), Some(0.0075)),
        );
        clock.advance_ms(1_000); // midnight
        l.record(
            clock.now_ms(),
            &summary("gpt-4o", Outcome::HitSemantic, (1_000, 500), Some(0.0075)),
        );
        l.record(
            clock.now_ms(),
            &summary("local-llm", Outcome::HitExact, (10, 20), None),
        );
        l.record(
            clock.now_ms(),
            &summary("local-llm", Outcome::Bypass, (0, 0), None),
        );

        let r = l.report(clock.now_ms(), 7);
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            ("2025-05-28", "2025-06-03")
        );
        let dates: Vec<&str> = r.days.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2025-06-03", "2025-06-02"]);
        let (today, yesterday) = (&r.days[0], &r.days[1]);
        assert_eq!(
            (
                yesterday.totals.requests,
                yesterday.totals.misses,
                yesterday.totals.exact_hits
            ),
            (2, 1, 1)
        );
        assert_eq!(yesterday.totals.saved_nano_usd, 7_500_000);
        assert_eq!(yesterday.totals.hit_rate, 0.5);
        assert_eq!(today.totals.requests, 3);
        // The priced model first; the unpriced one counts tokens but no money.
        let models: Vec<&str> = today.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(models, ["gpt-4o", "local-llm"]);
        let local = &today.models[1];
        assert_eq!(
            (
                local.prompt_tokens_saved,
                local.completion_tokens_saved,
                local.saved_nano_usd
            ),
            (10, 20, 0)
        );
        assert_eq!((local.unpriced_hits, local.bypasses), (1, 1));
        // Over the period.
        assert_eq!(r.totals.requests, 5);
        assert_eq!(r.totals.saved_usd, 0.015);
        assert_eq!(r.totals.prompt_tokens_saved, 2_010);
        assert_eq!(r.totals.hit_rate, 3.0 / 4.0);
        let gpt = r.models.iter().find(|m| m.model == "gpt-4o").unwrap();
        assert_eq!((gpt.requests, gpt.saved_nano_usd), (3, 15_000_000));
        // A one-day report is today only.
        let r = l.report(clock.now_ms(), 1);
        assert_eq!(r.days.len(), 1);
        assert_eq!(r.totals.requests, 3);
        // Eight days later, a seven-day report is empty.
        clock.advance_ms(8 * DAY_MS);
        let r = l.report(clock.now_ms(), 7);
        assert!(r.days.is_empty() && r.models.is_empty());
        assert_eq!(r.totals.requests, 0);
    }

    /// Past the cap, a day's new models share `other`; known ones keep their rows;
    /// overlong and missing names have rows of their own kind.
    #[test]
    fn models_per_day_are_capped() {
        let l = Ledger::in_memory();
        for i in 0..250 {
            l.record(0, &summary(&format!("m{i}"), Outcome::Miss, (0, 0), None));
        }
        l.record(0, &summary("m0", Outcome::Miss, (0, 0), None));
        l.record(
            0,
            &summary(
                &"x".repeat(MAX_MODEL_BYTES + 1),
                Outcome::Miss,
                (0, 0),
                None,
            ),
        );
        let mut nameless = summary("", Outcome::Miss, (0, 0), None);
        nameless.model = None;
        l.record(0, &nameless);
        let r = l.report(0, 1);
        let day = &r.days[0];
        assert_eq!(day.models.len(), MAX_MODELS_PER_DAY);
        assert_eq!(day.totals.requests, 253);
        let get = |m: &str| day.models.iter().find(|r| r.model == m).map(|r| r.requests);
        assert_eq!(get("m0"), Some(2));
        assert_eq!(get("m198"), Some(1));
        assert_eq!(get("m199"), None);
        // 51 models past the cap, the overlong name and the nameless request (whose own
        // row would exceed the cap too).
        assert_eq!(get(OTHER_MODEL), Some(53));
        // Another day has room again.
        l.record(DAY_MS, &nameless);
        assert_eq!(l.report(DAY_MS, 1).days[0].models[0].model, NO_MODEL);
    }

    #[test]
    fn only_the_last_days_are_kept() {
        let l = Ledger::in_memory();
        for day in 0..(KEEP_DAYS as u64 + 5) {
            l.record(day * DAY_MS, &summary("m", Outcome::Miss, (0, 0), None));
        }
        let r = l.report((KEEP_DAYS as u64 + 4) * DAY_MS, 10_000);
        assert_eq!(r.days.len(), KEEP_DAYS);
        assert_eq!(r.days.last().unwrap().date, date_of_day(5));
    }

    /// What is saved is what is read back; an unchanged ledger is not written again; an
    /// unreadable file is refused by `read` and set aside by `open`.
    #[test]
    fn persistence_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let l = Ledger::read(&path).unwrap();
        assert!(!l.save().unwrap(), "nothing to write yet");
        l.record(
            5 * DAY_MS,
            &summary("gpt-4o", Outcome::HitExact, (1_000, 500), Some(0.0075)),
        );
        l.record(
            6 * DAY_MS,
            &summary("emb", Outcome::HitExact, (3, 0), Some(0.000_000_06)),
        );
        l.record(
            6 * DAY_MS,
            &summary("gpt-4o", Outcome::Miss, (0, 0), Some(0.0)),
        );
        assert!(l.save().unwrap());
        assert!(!l.save().unwrap(), "unchanged since the last write");
        assert!(!dir.path().join("ledger.json.tmp").exists());

        let again = Ledger::read(&path).unwrap();
        assert_eq!(again.report(6 * DAY_MS, 30), l.report(6 * DAY_MS, 30));
        let r = again.report(6 * DAY_MS, 30);
        assert_eq!(r.totals.saved_nano_usd, 7_500_060);
        assert_eq!(r.days[1].date, "1970-01-06");

        std::fs::write(&path, b"{\"version\": 1, \"days\": [{\"date\": \"nope\"").unwrap();
        assert!(matches!(
            Ledger::read(&path),
            Err(LedgerError::Parse { .. })
        ));
        let fresh = Ledger::open(&path);
        assert_eq!(fresh.report(0, 10_000).totals.requests, 0);
        assert!(dir.path().join("ledger.json.unreadable").exists());
        // The fresh ledger saves to the same place.
        fresh.record(0, &summary("m", Outcome::Miss, (0, 0), None));
        assert!(fresh.save().unwrap());
        assert_eq!(Ledger::read(&path).unwrap().report(0, 1).totals.requests, 1);
    }

    #[test]
    fn dollars_are_summed_in_billionths() {
        for (usd, nano) in [
            (0.0075, 7_500_000),
            (0.000_000_02, 20),
            (1.0, 1_000_000_000),
            (-1.0, 0),
            (f64::NAN, 0),
        ] {
            assert_eq!(nano_usd(usd), nano, "{usd}");
        }
    }
}
