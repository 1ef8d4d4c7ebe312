//! `POST /admin/feedback`: a person's verdict, from the dashboard, on a semantic hit or a
//! near-miss it lists ([`crate::observe::insights`]'s lists, by the id each row carries).
//!
//! `{"hit": ID, "verdict": "wrong"}` removes the entry that was served and, when the hit
//! was served under an error budget, labels its cell wrong; `"right"` labels it right. On
//! a near-miss, `"right"` says serving the candidate would have been right and `"wrong"`
//! that refusing it was; either labels its cell when the miss was looked up under a budget
//! (the entry stays). Each row takes one verdict. Answers `{"verdict", "entry", "labelled",
//! "removed"}`; an unknown id (or one that left the list) is a 404, a second verdict a 409.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::feedback::Said;
use crate::observe::insights::{NotReviewable, Reviewed};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    #[serde(default)]
    hit: Option<u64>,
    #[serde(default)]
    near_miss: Option<u64>,
    verdict: Said,
}

pub async fn verdict(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    const SHAPE: &str =
        "the body must be {\"hit\": ID} or {\"near_miss\": ID}, with \"verdict\": \"right\" or \"wrong\"";
    let v: Verdict = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("{SHAPE}: {e}"), None))?;
    let (list, id) = match (v.hit, v.near_miss) {
        (Some(id), None) => (Reviewed::Hit, id),
        (None, Some(id)) => (Reviewed::NearMiss, id),
        _ => return Err(ApiError::bad_request(SHAPE, None)),
    };
    let right = v.verdict == Said::Right;
    let said = v.verdict.as_str();
    let review = app
        .insights()
        .take_verdict(list, id, said)
        .map_err(|e| match e {
            NotReviewable::Unknown => ApiError::NotFound {
                message: format!("the dashboard lists no row {id} (it keeps the most recent ones)"),
            },
            NotReviewable::Given => ApiError::Conflict {
                message: format!("row {id} has had its verdict"),
            },
        })?;
    let removed = match list {
        Reviewed::Hit => {
            crate::feedback::judge(&app, review.entry, review.ticket.as_ref(), right).await?
        }
        // A near-miss's entry was not served: the verdict is about refusing it.
        Reviewed::NearMiss => {
            crate::feedback::label(&app, review.ticket.as_ref(), right);
            false
        }
    };
    Ok(Json(json!({
        "verdict": said,
        "entry": review.entry.to_string(),
        "labelled": review.ticket.is_some(),
        "removed": removed,
    }))
    .into_response())
}
