//! The live audit: a sampled share of the semantic hits served under an error budget is
//! asked upstream again in the background and the fresh answer compared with the one
//! served ([`deja_core::Cache::audit`]): the measured false-hit rate, with its interval, in
//! `/metrics`, and labels for the similarities the budget now serves (which produce no
//! misses any more).
//!
//! Only with the operator's key for that upstream (`upstream.api_key`, `anthropic.api_key`
//! for `/v1/messages`, or `azure.api_key` for Azure OpenAI's routes): a client's key is never spent on a check it did
//! not ask for. Within a daily call and token budget (per UTC day of the cache's clock,
//! counted since this process started); a hit is audited only if its entry's recorded
//! usage still fits. The request is re-sent as it came, not streamed. Nothing here runs on
//! the request path but the sampling decision.
//!
//! Exact hits are checked the same way ([`check_exact`], `cache.audit_exact_share`) while
//! the budget still needs them: their stored answer is right by definition, so how often
//! the comparison calls the fresh one different is its own error, which the budget's
//! certificates discount ([`deja_core::budget`]).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use deja_core::{Answer, LabelTicket};
use serde_json::Value;

use crate::answers::Api;
use crate::state::AppState;
use crate::upstream::Upstream;

/// What an audit re-sends: the request as it came, where it went.
pub struct Resend {
    /// The upstream that answered it.
    pub upstream: Upstream,
    /// The wire format it answered in (how to read the fresh answer).
    pub api: Api,
    /// The incoming path and query, mapped under the upstream's base URL.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Audits one hit (spawned after it was served): re-sends the request non-streamed with the
/// operator's key, compares the answers and records the verdict. A failure costs the audit
/// only (logged).
pub async fn check(app: AppState, ticket: LabelTicket, prompt: String, resend: Resend) {
    let Some(fresh_text) = ask_again(&app, &resend).await else {
        return;
    };
    match app
        .cache()
        .audit(
            &ticket,
            &prompt,
            &fresh_text,
            crate::answers::comparable_text,
        )
        .await
    {
        Ok(Some(o)) => {
            app.metrics().audit_check(o.agreed);
            warn_if_over_budget(&app, &ticket.category);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "audit: comparing the answers failed")
        }
    }
}

/// Checks the answer comparison on one exact hit (spawned after it was served): re-sends
/// the request like [`check`] and compares the fresh answer with the stored one
/// (`stored`), which the request's own earlier call gave. A failure costs the check only.
pub async fn check_exact(app: AppState, category: String, stored: Answer, resend: Resend) {
    let Some(stored) = crate::answers::comparable_text(&stored) else {
        return;
    };
    let Some(fresh) = ask_again(&app, &resend).await else {
        return;
    };
    match app.cache().check_judge(&category, &stored, &fresh).await {
        Ok(Some(agreed)) => app.metrics().judge_check(agreed),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "audit: comparing the answers failed")
        }
    }
}

/// Re-sends a request non-streamed with the operator's key and returns the fresh answer's
/// text; `None` (logged) when there is no operator key, the upstream fails, or its answer
/// has no text to compare.
async fn ask_again(app: &AppState, resend: &Resend) -> Option<String> {
    let upstream = &resend.upstream;
    if !upstream.has_operator_key() {
        return None;
    }
    let body = match serde_json::from_slice::<Value>(&resend.body) {
        Ok(Value::Object(mut obj)) => {
            obj.insert("stream".into(), Value::Bool(false));
            obj.remove("stream_options");
            serde_json::to_vec(&obj).ok()?
        }
        _ => return None,
    };
    let sent = upstream
        .send(
            Method::POST,
            &resend.path,
            &resend.headers,
            body.into(),
            true,
        )
        .await;
    let fresh = match sent {
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "audit: reading the upstream's answer failed");
                return None;
            }
        },
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "audit: the upstream refused the check"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(error = ?e, "audit: the upstream could not be reached");
            return None;
        }
    };
    app.audit_budget().spend(resend.api.usage_from_body(&fresh));
    let text = crate::answers::comparable_text(&Answer::Body(fresh.to_vec()));
    if text.is_none() {
        tracing::warn!("audit: the upstream's answer has no text to compare");
    }
    text
}

/// Logs a warning when a category's audit says, at 95%, that its hits are wrong more often
/// than its budget allows.
fn warn_if_over_budget(app: &AppState, category: &str) {
    let Some(calibration) = app.cache().calibration() else {
        return;
    };
    let Some(delta) = calibration.budgets().of(category) else {
        return;
    };
    if let Some((rate, low, high)) = calibration.audit_estimate(category) {
        if low > delta {
            tracing::warn!(
                category,
                rate,
                low,
                high,
                delta,
                "audit: semantic hits are wrong more often than max_false_hit_rate allows"
            );
        }
    }
}
