//! The dashboard: one page the binary serves itself, and the JSON it draws.
//!
//! - `GET /dashboard` (and `/dashboard/app.js`, `/dashboard/style.css`,
//!   `/dashboard/favicon.svg`): the page, compiled into the binary (`dashboard/`: plain
//!   HTML, CSS and JavaScript drawing SVG charts; no CDN, no build step). It holds no data,
//!   so it is served without credentials, with a Content-Security-Policy that lets it load
//!   nothing from elsewhere; like the admin API it answers 404 while `admin.token` is unset.
//! - `GET /admin/dashboard.json`: the data, behind the admin token like every admin route:
//!   the in-memory accounts ([`crate::observe::insights`]), the store's entry count and persisted
//!   counters, the most-hit entries, and the recent near-misses and semantic hits with the
//!   cached entry's prompt read from the store now (`null` if it has gone since); and the
//!   error budget ([`crate::budget_view`]: each category's live audit, each cell's labels
//!   and certified similarity; `null` without a budget). Each row
//!   of those two lists has buttons for a person's verdict (`POST /admin/feedback`,
//!   [`crate::admin::verdicts`]).
//!
//! The page asks for the token once, keeps it in `sessionStorage` (so it goes with the
//! tab) and sends it as `Authorization: Bearer`; `/dashboard#token=...` signs in without
//! the form, for scripts.
//!
//! This module is not where requests are counted ([`crate::observe::insights`]).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deja_core::EntryId;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::observe::insights::{HitRecord, NearMissRecord, NEAR_MISS_BAND, PROMPT_CHARS};
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");
const FAVICON_SVG: &str = include_str!("dashboard/favicon.svg");

/// Nothing but the page's own files and its own API: no CDN, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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

/// A near-miss as the page lists it: the request's prompt and the cached one.
#[derive(Debug, Serialize)]
struct NearMissView<'a> {
    #[serde(flatten)]
    record: &'a NearMissRecord,
    /// The cached entry's prompt now; `None` if it was removed since.
    cached_prompt: Option<String>,
}

/// A semantic hit as the page lists it: the request's prompt and the cached one it was
/// served from.
#[derive(Debug, Serialize)]
struct HitView<'a> {
    #[serde(flatten)]
    record: &'a HitRecord,
    /// The cached entry's prompt now; `None` if it was removed since.
    cached_prompt: Option<String>,
}

/// `GET /admin/dashboard.json`: see the module docs.
pub async fn data(State(app): State<AppState>) -> Response {
    let cache = app.cache();
    let now_ms = cache.now_ms();
    let insights = app.insights().snapshot(now_ms);
    let store = cache.store();
    let view = crate::store_view::store_view(cache).await;
    let mut errors: Vec<String> = view.error.iter().cloned().collect();
    // With the store away, nothing more is asked of it: the page shows what the process
    // itself knows.
    let top = match view.entries {
        Some(entries) if errors.is_empty() => {
            crate::store_view::bounded(
                "listing the most-hit entries",
                app.top_entries().get(app.cache(), entries, now_ms),
                &mut errors,
            )
            .await
        }
        _ => None,
    };
    // Each cached prompt is read once, however many near-misses and hits name its entry.
    let mut cached: HashMap<EntryId, Option<String>> = HashMap::new();
    let listed = insights.near_misses.iter().map(|n| n.entry);
    for entry in listed.chain(insights.hits.iter().map(|h| h.entry)) {
        if cached.contains_key(&entry) || !errors.is_empty() {
            continue;
        }
        let prompt =
            crate::store_view::bounded("reading a listed entry", store.get(entry), &mut errors)
                .await
                .flatten()
                .map(|e| e.prompt.chars().take(PROMPT_CHARS).collect());
        cached.insert(entry, prompt);
    }
    let near_misses: Vec<NearMissView> = insights
        .near_misses
        .iter()
        .map(|record| NearMissView {
            record,
            cached_prompt: cached.get(&record.entry).cloned().flatten(),
        })
        .collect();
    let hits: Vec<HitView> = insights
        .hits
        .iter()
        .map(|record| HitView {
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
        "hits": hits,
        "error_budget": crate::budget_view::error_budget(cache),
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
