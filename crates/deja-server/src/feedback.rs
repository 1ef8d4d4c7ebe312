//! `POST /v1/deja/feedback`: a client says a semantic hit it was served was wrong, or right.
//!
//! The proxy remembers the last [`MAX_REMEMBERED`] semantic hits it served under an error
//! budget, by the request id it returned with each (`x-deja-request-id`), with the tenant
//! that asked and what the hit was (its entry, similarity and cell). A verdict names that
//! id: it must come with the credentials of the same tenant (another tenant is told the id
//! is unknown, so ids reveal nothing across tenants), and it is taken once. `wrong` removes
//! the entry and labels the hit wrong; `right` labels it right. Either way the error budget
//! learns from it as from an audit ([`deja_core::Cache::feedback`]).
//!
//! This module keeps the record and answers the route; the label is the engine's.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::observe::served::MAX_REMEMBERED;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    request_id: String,
    verdict: Said,
}

/// A verdict on a served answer: `"right"` or `"wrong"`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Said {
    Right,
    Wrong,
}

impl Said {
    pub fn as_str(self) -> &'static str {
        match self {
            Said::Right => "right",
            Said::Wrong => "wrong",
        }
    }
}

/// `POST /v1/deja/feedback` with `{"request_id": "…", "verdict": "wrong" | "right"}`.
pub async fn feedback(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v: Verdict = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("the body must be {{\"request_id\": \"…\", \"verdict\": \"wrong\" or \"right\"}}: {e}"),
            None,
        )
    })?;
    let tenant = app.tenancy().tenant(&headers, uri.query())?;
    let Some(hit) = app.served_hits().take(&v.request_id, &tenant) else {
        return Err(ApiError::NotFound {
            message: format!(
                "no semantic hit served under the error budget to this key has request id {:?} (the last {MAX_REMEMBERED} are kept, each takes one verdict)",
                v.request_id
            ),
        });
    };
    let right = v.verdict == Said::Right;
    let removed = judge(&app, hit.entry, Some(&hit.ticket), right).await?;
    Ok(Json(serde_json::json!({
        "request_id": v.request_id,
        "verdict": v.verdict.as_str(),
        "entry": hit.entry.to_string(),
        "removed": removed,
    }))
    .into_response())
}

/// Applies a verdict on a served hit (or, from the dashboard, a near-miss): labels the error
/// budget's cell when there is a `ticket`, counts it, and for `wrong` removes `entry`.
/// Returns whether the entry was removed; a removal that fails is an error (the label
/// stays recorded).
pub async fn judge(
    app: &AppState,
    entry: deja_core::EntryId,
    ticket: Option<&deja_core::LabelTicket>,
    right: bool,
) -> Result<bool, ApiError> {
    label(app, ticket, right);
    if right {
        return Ok(false);
    }
    app.cache().remove(entry).await.map_err(|e| {
        tracing::warn!(error = %deja_core::ErrorChain(&e), entry = %entry, "removing an entry called wrong failed");
        ApiError::Unavailable {
            message: format!(
                "the verdict was recorded but entry {entry} could not be removed; invalidate it by id"
            ),
        }
    })
}

/// Counts a verdict and, when there is a `ticket` (an error budget's cell), labels it.
pub fn label(app: &AppState, ticket: Option<&deja_core::LabelTicket>, right: bool) {
    if let Some(ticket) = ticket {
        app.cache().feedback(ticket, right);
    }
    app.metrics().feedback(right);
}
