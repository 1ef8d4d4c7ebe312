//! The staleness job: does the upstream still give the answers the cache serves?
//!
//! Every `staleness.interval_secs` a pass takes the next `staleness.entries_per_pass`
//! entries in the engine's rotation ([`deja_core::Cache::stale_candidates`]: by id, so a
//! uniform sample that reaches every entry once per round), re-sends each one's recorded
//! request to the upstream (as a non-streamed call, with the configured key), and compares
//! the fresh answer's text with the cached one's (a streamed entry's chunks are assembled
//! first) by the cosine similarity of their embeddings from the cache's embedder. Below
//! `staleness.min_similarity` the answer changed: the entry is invalidated, or replaced by
//! the fresh answer (`action`), unless the fresh answer may not be stored (never-cache
//! rules), in which case it is invalidated.
//!
//! The daily budget (`max_calls_per_day`, `max_tokens_per_day`, per UTC day of the
//! cache's clock) and the rotation cursor are kept in `<data_dir>/staleness.json`, written
//! after every check, so a restart neither resets the budget nor starts the rotation over.
//! A check starts only if the entry's recorded usage still fits the day's token budget;
//! what the upstream reports is what is counted.
//!
//! An entry of Anthropic's Messages API (its answer is a `message`, or a stream of
//! Anthropic's events) is re-asked at `[anthropic]`'s `/v1/messages` with `anthropic.api_key`
//! and `anthropic-version: 2023-06-01` (the recorded request is the body only), and its
//! text is compared the same way; without `anthropic.api_key` it is passed over. An entry
//! of the Responses API (a `response`, or a stream of its events) is re-asked at the
//! upstream's `/v1/responses`.
//!
//! Entries without a recorded request (stored while the job was off, embedding items, Azure
//! OpenAI's, whose path and `api-version` a recording would lack) are passed over without
//! a call. What the checks did is counted in the cache's counters
//! (`stale_checks`, `stale_check_tokens`, `stale_check_failures`, `removed_stale`,
//! `stale_replaced`), which `deja stats` and `GET /admin/stats` show.
//!
//! This module is not the place for the sampling order or the replacement itself (the
//! engine's), nor for configuration parsing.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use deja_core::{Answer, Entry, EntryId, ErrorChain, StaleCheck, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answers::Api;
use crate::config::StaleAction;
use crate::state::AppState;

/// The job's state file, in the data directory.
pub const STATE_FILE: &str = "staleness.json";

const DAY_MS: u64 = 24 * 3600 * 1000;

/// How many candidates a pass looks at per entry it may check: entries without a recorded
/// request are passed over without a call, and a pass should still find its quota.
const CANDIDATES_PER_CHECK: usize = 8;

/// What survives a restart: the day's spending and where the rotation stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetState {
    /// The UTC day (days since the epoch) the spending below belongs to.
    pub day: u64,
    pub calls: u64,
    pub tokens: u64,
    /// The last entry id the rotation reached (16 hex digits).
    pub cursor: Option<String>,
}

impl BudgetState {
    /// Reads the state file; a missing file is a fresh state, an unreadable one is logged
    /// and replaced by a fresh state (so at worst one day's budget is spent twice).
    pub fn load(path: &std::path::Path) -> BudgetState {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "staleness state unreadable; starting afresh");
                BudgetState::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BudgetState::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "staleness state unreadable; starting afresh");
                BudgetState::default()
            }
        }
    }

    /// Writes the state file atomically (a temporary file renamed over it).
    fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Entries re-asked whose answers were compared.
    pub checked: u64,
    pub unchanged: u64,
    /// Entries whose answer changed (removed or replaced).
    pub changed: u64,
    pub removed: u64,
    pub replaced: u64,
    /// Re-asks that failed (upstream error, unreadable answer, embedder fault).
    pub failed: u64,
    /// Candidates passed over without a call: no recorded request, or recorded usage
    /// larger than a whole day's token budget.
    pub skipped: u64,
    /// The pass stopped because the day's call or token budget was spent.
    pub budget_exhausted: bool,
}

/// The job; [`StalenessJob::run_pass`] is one pass.
pub struct StalenessJob {
    app: AppState,
    path: PathBuf,
    state: tokio::sync::Mutex<BudgetState>,
}

/// Why a check could not compare answers.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("the recorded request is not a JSON object")]
    BadRequest,
    #[error("the upstream answered {status}")]
    Status { status: u16 },
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream broke off")]
    Upstream(#[source] reqwest::Error),
    #[error("the answer has no text to compare: {0}")]
    Unreadable(String),
    #[error("embedding the answers failed")]
    Embed(#[source] deja_core::EmbedError),
}

impl StalenessJob {
    /// Loads the budget and cursor from the data directory.
    pub fn new(app: AppState) -> StalenessJob {
        let path = app.config().data_dir.join(STATE_FILE);
        let state = BudgetState::load(&path);
        StalenessJob {
            app,
            path,
            state: tokio::sync::Mutex::new(state),
        }
    }

    /// The budget state as it stands (for stats).
    pub async fn state(&self) -> BudgetState {
        self.state.lock().await.clone()
    }

    /// One pass: up to `entries_per_pass` checks, within the day's budget.
    pub async fn run_pass(&self) -> PassReport {
        let cfg = &self.app.config().staleness;
        let cache = self.app.cache();
        let mut report = PassReport::default();
        let mut state = self.state.lock().await;
        let today = cache.now_ms() / DAY_MS;
        if state.day != today {
            state.day = today;
            state.calls = 0;
            state.tokens = 0;
        }
        let after = state.cursor.as_deref().and_then(EntryId::parse_hex);
        let sel = StaleCheck {
            after,
            count: cfg.entries_per_pass.saturating_mul(CANDIDATES_PER_CHECK),
            min_age_secs: cfg.min_age_secs,
        };
        let candidates = match cache.stale_candidates(&sel).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "staleness: listing entries failed");
                return report;
            }
        };
        for id in candidates {
            if report.checked + report.failed >= cfg.entries_per_pass as u64 {
                break;
            }
            if state.calls >= cfg.max_calls_per_day {
                report.budget_exhausted = true;
                break;
            }
            let entry = match cache.store().get(id).await {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), entry = %id, "staleness: reading an entry failed");
                    break;
                }
            };
            let estimate = total(entry.usage);
            let api = Api::of(&entry.answer);
            let Some(request) = entry.request.clone() else {
                report.skipped += 1;
                state.cursor = Some(id.to_string());
                continue;
            };
            if api == Api::Anthropic && self.app.config().anthropic.api_key.is_none() {
                // Clients' keys are never stored: without deja's own key there is no
                // credential to ask Anthropic with.
                report.skipped += 1;
                state.cursor = Some(id.to_string());
                continue;
            }
            if estimate > cfg.max_tokens_per_day {
                // Would never fit; waiting for tomorrow would stall the rotation on it.
                report.skipped += 1;
                state.cursor = Some(id.to_string());
                continue;
            }
            if state.tokens.saturating_add(estimate) > cfg.max_tokens_per_day {
                report.budget_exhausted = true;
                break;
            }
            state.calls += 1;
            state.cursor = Some(id.to_string());
            cache.count(|c| c.upstream_calls += 1);
            match self.check(&entry, &request, api).await {
                Err(e) => {
                    report.failed += 1;
                    cache.count(|c| c.stale_check_failures += 1);
                    tracing::warn!(entry = %id, error = %ErrorChain(&e), "staleness check failed");
                }
                Ok((fresh, usage, similarity)) => {
                    let spent = if total(usage) > 0 {
                        total(usage)
                    } else {
                        estimate
                    };
                    state.tokens = state.tokens.saturating_add(spent);
                    report.checked += 1;
                    cache.count(|c| {
                        c.stale_checks += 1;
                        c.stale_check_tokens += spent;
                    });
                    if similarity >= cfg.min_similarity {
                        report.unchanged += 1;
                    } else {
                        report.changed += 1;
                        tracing::info!(entry = %id, similarity, "staleness: the upstream's answer changed");
                        self.act(&entry, fresh, usage, &mut report).await;
                    }
                }
            }
            if let Err(e) = state.save(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "staleness: saving the budget failed");
            }
        }
        if let Err(e) = state.save(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "staleness: saving the budget failed");
        }
        report
    }

    /// Re-asks the upstream; returns the fresh body, its usage, and the similarity of the
    /// two answers' texts.
    async fn check(
        &self,
        entry: &Entry,
        request: &[u8],
        api: Api,
    ) -> Result<(Vec<u8>, Usage, f32), CheckError> {
        let mut body: Value =
            serde_json::from_slice(request).map_err(|_| CheckError::BadRequest)?;
        let obj = body.as_object_mut().ok_or(CheckError::BadRequest)?;
        // One JSON answer is simplest to compare; the stored entry serves either shape.
        obj.insert("stream".into(), Value::Bool(false));
        obj.remove("stream_options");
        let body = serde_json::to_vec(&body).map_err(|_| CheckError::BadRequest)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let (upstream, path) = match api {
            Api::OpenAi => (self.app.upstream(), "/v1/chat/completions"),
            Api::Responses => (self.app.upstream(), "/v1/responses"),
            Api::Anthropic => {
                headers.insert(
                    "anthropic-version",
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                );
                (self.app.anthropic(), "/v1/messages")
            }
        };
        let resp = upstream
            .send(Method::POST, path, &headers, body.into(), true)
            .await
            .map_err(|e| CheckError::Unreachable(format!("{e:?}")))?;
        if !resp.status().is_success() {
            return Err(CheckError::Status {
                status: resp.status().as_u16(),
            });
        }
        let fresh = resp.bytes().await.map_err(CheckError::Upstream)?.to_vec();
        let (usage, old_text, new_text) = match api {
            Api::OpenAi => (
                deja_openai::sse::usage_from_body(&fresh),
                match &entry.answer {
                    Answer::Body(b) => answer_text(b),
                    Answer::Chunks(c) => deja_openai::sse::chunks_to_completion(c)
                        .map_err(|e| {
                            CheckError::Unreadable(format!("the cached stream: {}", e.message))
                        })
                        .and_then(|b| answer_text(&b)),
                }?,
                answer_text(&fresh)?,
            ),
            Api::Anthropic | Api::Responses => {
                let unreadable = |what: &str, e: deja_openai::WireError| {
                    CheckError::Unreadable(format!("{what}: {}", e.message))
                };
                let old = api
                    .text(&entry.answer)
                    .map_err(|e| unreadable("the cached answer", e))?;
                let new = api
                    .body_text(&fresh)
                    .map_err(|e| unreadable("the fresh answer", e))?;
                (api.usage_from_body(&fresh), old, new)
            }
        };
        let similarity = self
            .app
            .cache()
            .text_similarity(&old_text, &new_text)
            .await
            .map_err(CheckError::Embed)?;
        Ok((fresh, usage, similarity))
    }

    /// Invalidates or replaces an entry whose answer changed.
    async fn act(&self, entry: &Entry, fresh: Vec<u8>, usage: Usage, report: &mut PassReport) {
        let cache = self.app.cache();
        let action = self.app.config().staleness.action;
        let storable = self
            .app
            .rules()
            .check_answer(&String::from_utf8_lossy(&fresh))
            .is_none();
        let result = if action == StaleAction::Replace && storable {
            cache
                .replace_answer(entry.id, &entry.answer, Answer::Body(fresh), usage)
                .await
                .map(|done| (done, true))
        } else {
            cache.remove_stale(entry.id).await.map(|done| (done, false))
        };
        match result {
            Ok((true, true)) => report.replaced += 1,
            Ok((true, false)) => report.removed += 1,
            // Removed or refreshed meanwhile: nothing left to do.
            Ok((false, _)) => {}
            Err(e) => {
                tracing::warn!(entry = %entry.id, error = %ErrorChain(&e), "staleness: acting on a changed answer failed")
            }
        }
    }
}

/// The `anthropic-version` the job re-asks Anthropic with: the recorded request is the body
/// only, and this is the version every Anthropic SDK has long understood.
const ANTHROPIC_VERSION: &str = "2023-06-01";

fn total(u: Usage) -> u64 {
    u.prompt_tokens.saturating_add(u.completion_tokens)
}

/// The text of a `chat.completion` body ([`crate::answers::completion_text`]).
fn answer_text(body: &[u8]) -> Result<String, CheckError> {
    crate::answers::completion_text(body).map_err(CheckError::Unreadable)
}

/// Runs a pass every `staleness.interval_secs` (the first after one interval) until the
/// returned handle is aborted; `None` when the job is off.
pub fn spawn(app: AppState) -> Option<tokio::task::JoinHandle<()>> {
    if !app.config().staleness.enabled {
        return None;
    }
    let every = Duration::from_secs(app.config().staleness.interval_secs.max(1));
    let job = StalenessJob::new(app);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let r = job.run_pass().await;
            if r.checked + r.failed > 0 || r.budget_exhausted {
                tracing::info!(
                    checked = r.checked,
                    changed = r.changed,
                    removed = r.removed,
                    replaced = r.replaced,
                    failed = r.failed,
                    budget_exhausted = r.budget_exhausted,
                    "staleness pass"
                );
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_text_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"}}]}"#,
                Some("Paris"),
            ),
            (
                r#"{"choices":[{"index":1,"message":{"content":"b"}},{"index":0,"message":{"content":"a"}}]}"#,
                Some("a\nb"),
            ),
            (
                r#"{"choices":[{"index":0,"message":{"content":null,"refusal":"no"}}]}"#,
                Some("no"),
            ),
            (
                r#"{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"t"}]}}]}"#,
                Some(r#"[{"id":"t"}]"#),
            ),
            (r#"{"choices":[]}"#, Some("")),
            (r#"{"error":{}}"#, None),
            ("not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(
                answer_text(body.as_bytes()).ok().as_deref(),
                *want,
                "{body}"
            );
        }
    }

    #[test]
    fn state_file_round_trips_and_a_bad_one_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(BudgetState::load(&path), BudgetState::default());
        let s = BudgetState {
            day: 20_000,
            calls: 3,
            tokens: 120,
            cursor: Some("00000000000000ff".into()),
        };
        s.save(&path).unwrap();
        assert_eq!(BudgetState::load(&path), s);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(BudgetState::load(&path), BudgetState::default());
    }
}
