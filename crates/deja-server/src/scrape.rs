//! `GET /metrics`: the proxy's counters ([`crate::observe::metrics`]) and what the store
//! knows (entries, size, removals by cause, the error budget's cells and audits).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::observe::metrics::{header, render_audit, render_budget, render_judge};
use crate::state::AppState;
use crate::store_view::bounded;

/// `GET /metrics`. The store is read here, at scrape time, never on the request path;
/// what it cannot tell within [`crate::store_view::STORE_READ_TIMEOUT`] is left out of this
/// scrape (the proxy's own counters are always rendered).
pub async fn scrape(State(app): State<AppState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    app.metrics().render(&mut out);
    let store = app.cache().store();
    let mut errors = Vec::new();
    if let Some(n) = bounded("counting entries", store.len(), &mut errors).await {
        header(
            &mut out,
            "deja_entries",
            "gauge",
            "Entries in the store (chat answers and embedding items).",
        );
        let _ = writeln!(out, "deja_entries {n}");
    }
    if let Some(Some(n)) = bounded("reading its size", store.stored_bytes(), &mut errors).await {
        header(
            &mut out,
            "deja_store_bytes",
            "gauge",
            "Bytes the store occupies (the embedded store's file; not reported for Redis).",
        );
        let _ = writeln!(out, "deja_store_bytes {n}");
    }
    header(
        &mut out,
        "deja_aliases",
        "gauge",
        "Requests remembered as aliases of the entry a semantic hit served them (cache.max_aliases).",
    );
    let _ = writeln!(out, "deja_aliases {}", app.cache().alias_count());
    if let Some(calibration) = app.cache().calibration() {
        render_budget(&mut out, &calibration.report());
        render_audit(&mut out, calibration);
        render_judge(&mut out, &calibration.judge());
    }
    let degraded = store.health().await != deja_core::StoreHealth::Ok;
    header(
        &mut out,
        "deja_store_degraded",
        "gauge",
        "1 while the store cannot write (answers are served but not stored), else 0.",
    );
    let _ = writeln!(out, "deja_store_degraded {}", u8::from(degraded));
    if let Some(c) = bounded("reading the counters", app.cache().counters(), &mut errors).await {
        header(
            &mut out,
            "deja_removed_total",
            "counter",
            "Entries removed, by cause; the store's totals (shared by every replica on Redis).",
        );
        for (cause, n) in [
            ("expired", c.removed_expired),
            ("evicted", c.removed_evicted),
            ("invalidated", c.removed_invalidated),
            ("stale", c.removed_stale),
        ] {
            let _ = writeln!(out, "deja_removed_total{{cause=\"{cause}\"}} {n}");
        }
    }
    if !errors.is_empty() {
        tracing::warn!(errors = %errors.join("; "), "metrics: the store could not be read");
    }
    (
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}
