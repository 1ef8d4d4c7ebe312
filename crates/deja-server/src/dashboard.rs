//! The dashboard: one page the binary serves itself, and the JSON it draws.
//!
//! - `GET /dashboard` (and `/dashboard/app.js`, `/dashboard/style.css`,
//!   `/dashboard/favicon.svg`): the page, compiled into the binary (`dashboard/`: plain
//!   HTML, CSS and JavaScript drawing SVG charts; no CDN, no build step). It holds no data,
//!   so it is served without credentials, with a Content-Security-Policy that lets it load
//!   nothing from elsewhere; like the admin API it answers 404 while `admin.token` is unset.
//! - `GET /admin/dashboard.json`: the data, behind the admin token like every admin route:
//!   the in-memory accounts ([`crate::insights`]), the store's entry count and persisted
//!   counters, the most-hit entries, and the recent near-misses with the cached entry's
//!   prompt read from the store now (`null` if it has gone since).
//!
//! The page asks for the token once, keeps it in `sessionStorage` (so it goes with the
//! tab) and sends it as `Authorization: Bearer`; `/dashboard#token=...` signs in without
//! the form, for scripts.
//!
//! This module is not where requests are counted ([`crate::insights`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deja_core::{EntryId, StoreError};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::insights::{NearMissRecord, NEAR_MISS_BAND, PROMPT_CHARS};
use crate::AppState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");
const FAVICON_SVG: &str = include_str!("dashboard/favicon.svg");

/// Nothing but the page's own files and its own API: no CDN, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Entries listed as the most hit.
pub const TOP_ENTRIES: usize = 10;
/// How long a top-entries scan of a large store is reused: the page refreshes every few
/// seconds, and a scan visits every entry's metadata.
const TOP_ENTRIES_TTL_MS: u64 = 10_000;
/// Stores with fewer entries are scanned on every refresh (a few milliseconds at most).
const TOP_ENTRIES_SCAN_ALWAYS: u64 = 10_000;
/// Characters of a stored prompt shown.
const PREVIEW_CHARS: usize = 200;

/// The page's routes (the JSON is an admin route: [`data`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|s| asset(s, Asset::Html)))
        .route("/dashboard/", get(|s| asset(s, Asset::Html)))
        .route("/dashboard/app.js", get(|s| asset(s, Asset::Js)))
        .route("/dashboard/style.css", get(|s| asset(s, Asset::Css)))
        .route("/dashboard/favicon.svg", get(|s| asset(s, Asset::Favicon)))
}

#[derive(Debug, Clone, Copy)]
enum Asset {
    Html,
    Js,
    Css,
    Favicon,
}

async fn asset(State(app): State<AppState>, which: Asset) -> Result<Response, ApiError> {
    if app.config().admin.token.is_none() {
        return Err(ApiError::NotFound {
            message: "the dashboard is off with the admin API; set admin.token or DEJA_ADMIN_TOKEN"
                .into(),
        });
    }
    let (body, content_type) = match which {
        Asset::Html => (INDEX_HTML, "text/html; charset=utf-8"),
        Asset::Js => (APP_JS, "text/javascript; charset=utf-8"),
        Asset::Css => (STYLE_CSS, "text/css; charset=utf-8"),
        Asset::Favicon => (FAVICON_SVG, "image/svg+xml"),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

/// One of the most-hit entries.
#[derive(Debug, Clone, Serialize)]
pub struct TopEntry {
    pub id: String,
    /// The first [`PREVIEW_CHARS`] characters of the prompt.
    pub prompt: String,
    pub model: String,
    pub category: String,
    pub hit_count: u64,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    /// Prompt plus completion tokens the answer cost upstream: what each hit saves.
    pub tokens_per_hit: u64,
}

/// The last top-entries scan, shared by concurrent refreshes (one scans, the others wait
/// and reuse it).
#[derive(Default)]
pub struct TopEntriesCache {
    last: tokio::sync::Mutex<Option<(u64, Arc<Vec<TopEntry>>)>>,
}

/// The [`TOP_ENTRIES`] entries with the most hits (at least one), most first; in a store
/// of `entries` entries, from a scan at most [`TOP_ENTRIES_TTL_MS`] old (a small store's
/// is always fresh).
async fn top_entries(
    app: &AppState,
    entries: u64,
    now_ms: u64,
) -> Result<Arc<Vec<TopEntry>>, StoreError> {
    let mut last = app.top_entries().last.lock().await;
    if let Some((at, top)) = last.as_ref() {
        if entries >= TOP_ENTRIES_SCAN_ALWAYS && now_ms.saturating_sub(*at) < TOP_ENTRIES_TTL_MS {
            return Ok(top.clone());
        }
    }
    let store = app.cache().store();
    // A min-heap of the most hit so far: the least of them drops out when it is full.
    let mut heap: BinaryHeap<Reverse<(u64, EntryId)>> = BinaryHeap::new();
    store
        .scan_meta(&mut |m| {
            if m.hit_count == 0 {
                return;
            }
            heap.push(Reverse((m.hit_count, m.id)));
            if heap.len() > TOP_ENTRIES {
                heap.pop();
            }
        })
        .await?;
    let mut top = Vec::with_capacity(heap.len());
    // `into_sorted_vec` of `Reverse` is most hits first.
    for Reverse((hits, id)) in heap.into_sorted_vec() {
        let Some(e) = store.get(id).await? else {
            // Removed since the scan.
            continue;
        };
        top.push(TopEntry {
            id: id.to_string(),
            prompt: e.prompt.chars().take(PREVIEW_CHARS).collect(),
            model: e.model,
            category: e.category,
            // The scan's count: the entry read may lag the buffered hit counts.
            hit_count: hits.max(e.hit_count),
            created_at_ms: e.created_at_ms,
            last_hit_ms: e.last_hit_ms,
            tokens_per_hit: e.usage.prompt_tokens + e.usage.completion_tokens,
        });
    }
    let top = Arc::new(top);
    *last = Some((now_ms, top.clone()));
    Ok(top)
}

/// A near-miss as the page lists it: the request's prompt and the cached one.
#[derive(Debug, Serialize)]
struct NearMissView<'a> {
    #[serde(flatten)]
    record: &'a NearMissRecord,
    /// The cached entry's prompt now; `None` if it was removed since.
    cached_prompt: Option<String>,
}

/// `GET /admin/dashboard.json`: see the module docs.
pub async fn data(State(app): State<AppState>) -> Response {
    let cache = app.cache();
    let now_ms = cache.now_ms();
    let insights = app.insights().snapshot(now_ms);
    let store = cache.store();
    let view = crate::admin::store_view(cache).await;
    let mut errors: Vec<String> = view.error.iter().cloned().collect();
    // With the store away, nothing more is asked of it: the page shows what the process
    // itself knows.
    let top = match view.entries {
        Some(entries) if errors.is_empty() => {
            crate::admin::bounded(
                "listing the most-hit entries",
                top_entries(&app, entries, now_ms),
                &mut errors,
            )
            .await
        }
        _ => None,
    };
    // Each cached prompt is read once, however many near-misses name its entry.
    let mut cached: HashMap<EntryId, Option<String>> = HashMap::new();
    for n in &insights.near_misses {
        if cached.contains_key(&n.entry) || !errors.is_empty() {
            continue;
        }
        let prompt = crate::admin::bounded(
            "reading a near-miss's entry",
            store.get(n.entry),
            &mut errors,
        )
        .await
        .flatten()
        .map(|e| e.prompt.chars().take(PROMPT_CHARS).collect());
        cached.insert(n.entry, prompt);
    }
    let near_misses: Vec<NearMissView> = insights
        .near_misses
        .iter()
        .map(|record| NearMissView {
            record,
            cached_prompt: cached.get(&record.entry).cloned().flatten(),
        })
        .collect();
    let c = app.config();
    let body: Value = json!({
        "now_ms": now_ms,
        "config": {
            "min_similarity": c.cache.min_similarity,
            "verify": c.cache.verify,
            "near_miss_band": NEAR_MISS_BAND,
        },
        "store": {
            "entries": view.entries,
            "counters": view.counters,
            "hit_rate": view.counters.as_ref().map(deja_core::Counters::hit_rate),
            "error": (!errors.is_empty()).then(|| errors.join("; ")),
        },
        "insights": insights,
        "near_misses": near_misses,
        "top_entries": top.as_deref().map(Vec::as_slice).unwrap_or_default(),
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page names its parts by the paths this module serves, and loads nothing from
    /// elsewhere (the CSP would block it, and the browser test would see the error).
    #[test]
    fn the_page_loads_only_its_own_assets() {
        for path in [
            "/dashboard/app.js",
            "/dashboard/style.css",
            "/dashboard/favicon.svg",
        ] {
            assert!(INDEX_HTML.contains(path), "{path}");
        }
        for text in [INDEX_HTML, APP_JS, STYLE_CSS, FAVICON_SVG] {
            // The SVG namespace is a name, not a URL that is loaded.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(
                !text.contains("<script>"),
                "inline scripts are blocked by the CSP"
            );
            assert!(
                !text.contains("style=\""),
                "inline styles are blocked by the CSP"
            );
        }
        assert!(APP_JS.contains("/admin/dashboard.json"));
    }
}
