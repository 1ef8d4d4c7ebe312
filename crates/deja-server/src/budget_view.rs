//! The error budget as the admin API (`GET /admin/stats`) and the dashboard show it: each
//! cell's labels and certified similarity, each category's live audit (net of the answer
//! comparison's own errors) with its 95% interval and whether its lower bound passed the
//! budget, and those errors as measured on exact hits. Read from the engine's calibration
//! in memory; no store access.

use deja_core::budget::Certified;
use serde_json::{json, Value};

/// The error budget (`null` without one): each cell's labels and certified similarity,
/// each category's live audit with its 95% interval and whether its lower bound is above
/// the budget, and the answer comparison's checks on exact hits.
pub fn error_budget(cache: &deja_core::Cache) -> Value {
    let Some(calibration) = cache.calibration() else {
        return Value::Null;
    };
    let cells: Vec<Value> = calibration
        .report()
        .into_iter()
        .map(|r| {
            json!({
                "category": r.key.category,
                "support": r.key.support,
                "vouched": r.key.vouched,
                "max_false_hit_rate": r.delta,
                "labels": r.labels,
                "wrong": r.wrong,
                "certified_similarity": match r.certified {
                    Certified::From(t) => json!(t),
                    Certified::Nothing => json!("nothing"),
                    Certified::Untrained => Value::Null,
                },
            })
        })
        .collect();
    let audits: Vec<Value> = calibration
        .audits()
        .into_iter()
        .map(|(category, t)| {
            let delta = calibration.budgets().of(&category);
            let estimate = calibration.audit_estimate(&category);
            json!({
                "category": category,
                "max_false_hit_rate": delta,
                "checked": t.checked,
                "wrong": t.wrong,
                "false_hit_rate": estimate.map(|e| e.0),
                "low": estimate.map(|e| e.1),
                "high": estimate.map(|e| e.2),
                "over_budget": estimate.zip(delta).is_some_and(|(e, d)| e.1 > d),
            })
        })
        .collect();
    // The answer comparison's own error, measured on exact hits asked again: what the
    // certificates discount from the cells' wrong labels.
    let judge: Vec<Value> = calibration
        .judge()
        .into_iter()
        .map(|(category, t)| {
            let estimate = t.estimate();
            json!({
                "category": category,
                "checked": t.checked,
                "judged_different": t.wrong,
                "false_disagree_rate": estimate.map(|e| e.0),
                "low": estimate.map(|e| e.1),
                "high": estimate.map(|e| e.2),
                "still_checking": calibration.wants_judge_check(&category),
            })
        })
        .collect();
    json!({ "cells": cells, "audits": audits, "judge": judge })
}
