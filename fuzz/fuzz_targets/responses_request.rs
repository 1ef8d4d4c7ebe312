//! The Responses API request parser, its cache key and the answer conversions, on arbitrary
//! bytes: `parse_responses` never panics, and for every request it accepts `responses_key`
//! is deterministic, keeps tenants apart, ignores the transport and bookkeeping fields,
//! yields a normalised prompt, and is exact-only whenever provider-side state is named.
//! The same bytes read as an answer: `response_to_events` never panics, and a response it
//! converts comes back whole from the events (`events_to_response`), which are whole
//! exactly when the response is.
#![no_main]

use deja_core::{normalize_prompt, SemanticMode};
use deja_openai::responses::stream::{
    body_completed, events_to_response, response_to_events, stream_completed,
};
use deja_openai::responses::{parse_responses, responses_key};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = response_to_events(data) {
        let back = events_to_response(&events).expect("converted events carry the response");
        let original: Value = serde_json::from_slice(data).expect("converted, so JSON");
        let back: Value = serde_json::from_slice(&back).expect("JSON out");
        assert!(same(&back, &original), "{back} vs {original}");
        assert_eq!(stream_completed(&events), body_completed(data));
    }

    let Ok(req) = parse_responses(data) else {
        return;
    };
    let key = responses_key(&req, "tenant-a");
    let again = parse_responses(data).expect("accepted once, accepted twice");
    assert_eq!(responses_key(&again, "tenant-a"), key);
    assert_ne!(responses_key(&req, "tenant-b").partition, key.partition);

    let mut transport = req.clone();
    transport.stream = Some(!req.stream.unwrap_or(false));
    transport.stream_options = Some(serde_json::json!({"include_obfuscation": false}));
    transport.metadata = Some(serde_json::json!({"k": "v"}));
    transport.user = Some("u".into());
    transport.safety_identifier = Some("s".into());
    transport.prompt_cache_key = Some("p".into());
    transport.prompt_cache_retention = Some("24h".into());
    transport.service_tier = Some("flex".into());
    assert_eq!(responses_key(&transport, "tenant-a"), key);

    assert_eq!(normalize_prompt(&key.prompt), key.prompt);
    if req.previous_response_id.is_some() || req.conversation.is_some() {
        assert_eq!(key.semantic, SemanticMode::ExactOnly);
    }
});

/// Equal JSON, floats within rounding: serde_json's default float parser is not exact, so
/// a float written back and read again may move in its last digit (an integer beyond u64,
/// say, read as a float).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
