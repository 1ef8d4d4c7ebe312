//! Answer equivalence: would the stored answer have served a request as well as the answer
//! the upstream just gave it? This labels the error budget's observations
//! ([`crate::budget`]) and the live audit, so it must err towards "no": a wrong "no" costs
//! the cache a little confidence, a wrong "yes" teaches it to serve wrong answers.
//!
//! Two answers agree when
//! - they are the same text, or
//! - both are JSON (tool calls, structured output): their values are equal (key order and
//!   spacing do not matter, anything else does), or
//! - neither is JSON, their embeddings' cosine reaches the configured least similarity,
//!   and the veto rules that still mean something for answers do not fire: other numbers
//!   (an amount, a count), the opposite polarity.
//!
//! The text of an answer is the server's to extract (it knows the wire formats); this
//! module compares texts.

use super::{verify_with, Rules};

/// The rules that tell two answers apart even when their wording is close. The antonym
/// and date rules are left out: in answers of several sentences they fire on words the two
/// wordings merely use differently ("start" / "fails"), which would label right answers
/// wrong and cost the budget its confidence.
const ANSWER_RULES: Rules = Rules(Rules::NUMBER_CHANGED.0 | Rules::NEGATION.0);

/// The least cosine of two answers' embeddings for them to agree, per embedder family:
/// answers to one question reworded (an LLM's answers vary from call to call) score above
/// it, answers to two questions of one topic mostly below. e5's cosines sit higher
/// throughout (its scale starts near 0.7), as for prompts.
pub fn default_min_similarity(embedder_id: &str) -> f32 {
    if embedder_id.contains("e5") {
        0.93
    } else {
        0.8
    }
}

/// An answer as a structured value, when it is a JSON object or array.
fn as_json(s: &str) -> Option<serde_json::Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(s).ok()
}

/// Whether two answers need no embedding to be judged: identical, or JSON on either side.
/// `Some(verdict)` when decided; `None` when their similarity must be measured.
pub fn agree_without_embedding(cached: &str, fresh: &str) -> Option<bool> {
    if cached.trim() == fresh.trim() {
        return Some(true);
    }
    match (as_json(cached), as_json(fresh)) {
        (Some(a), Some(b)) => Some(a == b),
        // One structured, one prose: different kinds of answer.
        (Some(_), None) | (None, Some(_)) => Some(false),
        (None, None) if cached.trim().is_empty() || fresh.trim().is_empty() => Some(false),
        (None, None) => None,
    }
}

/// Whether two prose answers agree, given their embeddings' cosine.
pub fn agree(cached: &str, fresh: &str, cosine: f32, min_similarity: f32) -> bool {
    if let Some(decided) = agree_without_embedding(cached, fresh) {
        return decided;
    }
    cosine >= min_similarity && verify_with(cached, fresh, ANSWER_RULES).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_json_answers_need_no_embedding() {
        assert_eq!(agree_without_embedding(" Paris. ", "Paris."), Some(true));
        assert_eq!(
            agree_without_embedding(
                r#"[{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}}]"#,
                r#"[ {"arguments": {"unit":"c","city":"Paris"}, "name":"get_weather"} ]"#
            ),
            Some(true)
        );
        assert_eq!(
            agree_without_embedding(
                r#"[{"name":"get_weather","arguments":{"city":"Paris"}}]"#,
                r#"[{"name":"get_weather","arguments":{"city":"Lyon"}}]"#
            ),
            Some(false)
        );
        assert_eq!(
            agree_without_embedding(r#"{"a":1}"#, "The answer is one."),
            Some(false)
        );
        assert_eq!(agree_without_embedding("", "Something"), Some(false));
        assert_eq!(
            agree_without_embedding("It takes 3 days.", "Three days."),
            None
        );
    }

    #[test]
    fn close_wording_with_other_facts_disagrees() {
        // As if the embeddings said they are close: the rules still tell them apart.
        assert!(agree(
            "Your card usually arrives within 5 business days.",
            "Expect the card within 5 business days.",
            0.95,
            0.85
        ));
        assert!(!agree(
            "Your card usually arrives within 5 business days.",
            "Your card usually arrives within 7 business days.",
            0.97,
            0.85
        ));
        assert!(!agree(
            "You can change your PIN at any ATM.",
            "You cannot change your PIN at any ATM.",
            0.97,
            0.85
        ));
        assert!(agree(
            "If anything goes wrong, our team can help. Start from the settings page.",
            "Begin on the settings page; when something fails, our team can help.",
            0.9,
            0.8
        ));
        assert!(!agree(
            "Top-ups by card are free.",
            "Top-ups by transfer arrive the next day.",
            0.6,
            0.85
        ));
    }

    #[test]
    fn e5_is_judged_on_its_own_scale() {
        assert!(default_min_similarity("local:e5-small-a575c954aa93") > 0.9);
        assert!(default_min_similarity("local:all-MiniLM-L6-v2") < 0.9);
    }
}
