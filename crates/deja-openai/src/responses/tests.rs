#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

fn base() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "instructions": "You are terse.",
        "input": "What is Rust?"
    })
}

fn key_of(v: &Value) -> ChatKey {
    let body = serde_json::to_vec(v).unwrap();
    responses_key(&parse_responses(&body).unwrap(), "t1")
}

fn with(field: &str, value: Value) -> Value {
    let mut v = base();
    v[field] = value;
    v
}

fn error_of(v: &Value) -> WireError {
    parse_responses(&serde_json::to_vec(v).unwrap()).unwrap_err()
}

#[test]
fn answer_changing_parameters_change_the_partition() {
    let cases: &[(&str, Value)] = &[
        ("model", json!("gpt-4o")),
        ("instructions", json!("You are verbose.")),
        ("background", json!(true)),
        ("background_options", json!({"x": 1})),
        ("context_management", json!([{"type": "compaction"}])),
        ("conversation", json!("conv_1")),
        ("include", json!(["reasoning.encrypted_content"])),
        ("max_output_tokens", json!(10)),
        ("max_tool_calls", json!(2)),
        ("moderation", json!({"model": "omni"})),
        ("parallel_tool_calls", json!(false)),
        ("previous_response_id", json!("resp_1")),
        ("prompt", json!({"id": "pmpt_1", "variables": {"x": "y"}})),
        ("prompt_cache_options", json!({"mode": "explicit"})),
        ("reasoning", json!({"effort": "low"})),
        ("store", json!(false)),
        ("temperature", json!(0.2)),
        (
            "text",
            json!({"format": {"type": "json_schema", "name": "x", "schema": {}}}),
        ),
        ("tool_choice", json!("required")),
        ("tools", json!([{"type": "function", "name": "f"}])),
        ("top_logprobs", json!(3)),
        ("top_p", json!(0.5)),
        ("truncation", json!("auto")),
        ("some_future_parameter", json!(1)),
    ];
    let plain = key_of(&base());
    for (field, value) in cases {
        let k = key_of(&with(field, value.clone()));
        assert_ne!(
            k.partition, plain.partition,
            "{field} must change the partition"
        );
        assert_eq!(k.prompt, plain.prompt, "{field}");
    }
}

#[test]
fn transport_and_bookkeeping_fields_do_not_change_the_partition() {
    let cases: &[(&str, Value)] = &[
        ("stream", json!(true)),
        ("stream_options", json!({"include_obfuscation": false})),
        ("metadata", json!({"k": "v"})),
        ("user", json!("u-1")),
        ("safety_identifier", json!("s-1")),
        ("prompt_cache_key", json!("k")),
        ("prompt_cache_retention", json!("24h")),
        ("service_tier", json!("flex")),
        // Absent means stored.
        ("store", json!(true)),
    ];
    let plain = key_of(&base());
    for (field, value) in cases {
        let k = key_of(&with(field, value.clone()));
        assert_eq!(k.partition, plain.partition, "{field} must not be keyed");
        assert_eq!(k.semantic, SemanticMode::Allowed, "{field}");
    }
}

#[test]
fn the_prompt_is_the_last_user_message_in_either_spelling() {
    let plain = key_of(&base());
    assert_eq!(plain.prompt, "What is Rust?");
    assert_eq!(plain.semantic, SemanticMode::Allowed);
    assert_eq!(plain.model, "gpt-4o-mini");
    for spelling in [
        json!([{"role": "user", "content": "What is Rust?"}]),
        json!([{"type": "message", "role": "user", "content": "What is Rust?"}]),
        json!([{"role": "user", "content": [{"type": "input_text", "text": "What is Rust?"}]}]),
    ] {
        let k = key_of(&with("input", spelling.clone()));
        assert_eq!(k.partition, plain.partition, "{spelling}");
        assert_eq!(k.prompt, plain.prompt, "{spelling}");
    }
    // Another question: same partition, another prompt.
    let other = key_of(&with("input", json!("What is Go?")));
    assert_eq!(other.partition, plain.partition);
    assert_ne!(other.prompt, plain.prompt);
    // Different tenants never share a partition.
    let body = serde_json::to_vec(&base()).unwrap();
    let t2 = responses_key(&parse_responses(&body).unwrap(), "t2");
    assert_ne!(t2.partition, plain.partition);
}

#[test]
fn earlier_items_and_non_text_parts_are_context() {
    let plain = key_of(&with(
        "input",
        json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is Rust?"}
        ]),
    ));
    let other_history = key_of(&with(
        "input",
        json!([
            {"role": "user", "content": "Hey"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is Rust?"}
        ]),
    ));
    assert_ne!(plain.partition, other_history.partition);
    assert_eq!(plain.prompt, other_history.prompt);
    assert_eq!(plain.semantic, SemanticMode::Allowed);

    let image = |url: &str| {
        key_of(&with(
            "input",
            json!([{"role": "user", "content": [
                {"type": "input_text", "text": "What is in this image?"},
                {"type": "input_image", "image_url": url}
            ]}]),
        ))
    };
    let (a, b) = (image("https://x/a.png"), image("https://x/b.png"));
    assert_ne!(a.partition, b.partition, "two images never share an entry");
    assert_eq!(a.prompt, "What is in this image?");
}

#[test]
fn provider_state_and_trailing_items_are_matched_exactly_only() {
    for (field, value) in [
        ("previous_response_id", json!("resp_abc")),
        ("conversation", json!({"id": "conv_abc"})),
    ] {
        let k = key_of(&with(field, value));
        assert_eq!(k.semantic, SemanticMode::ExactOnly, "{field}");
        assert_eq!(k.prompt, "What is Rust?", "{field}");
    }
    let tool_output = key_of(&with(
        "input",
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
        ]),
    ));
    assert_eq!(tool_output.semantic, SemanticMode::ExactOnly);
    let no_input = key_of(&json!({"model": "m", "prompt": {"id": "pmpt_1"}}));
    assert_eq!(no_input.semantic, SemanticMode::ExactOnly);
    assert_eq!(no_input.prompt, "");
    // An absent input and an empty one are different requests.
    let empty = key_of(&json!({"model": "m", "prompt": {"id": "pmpt_1"}, "input": []}));
    assert_ne!(empty.partition, no_input.partition);
}

#[test]
fn parameter_order_does_not_matter() {
    let a = key_of(&json!({"model": "m", "input": "q", "x": 1, "y": {"b": 1, "a": 2}}));
    let b = key_of(&json!({"y": {"a": 2, "b": 1}, "x": 1, "input": "q", "model": "m"}));
    assert_eq!(a.partition, b.partition);
}

#[test]
fn bad_requests_are_named() {
    let cases: &[(Value, &str)] = &[
        (json!({"input": "q"}), "model"),
        (json!({"model": "", "input": "q"}), "model"),
        (json!({"model": "m", "input": 3}), "input"),
        (json!({"model": "m", "input": [3]}), "input[0]"),
        (json!({"model": "m", "input": [{}]}), "input[0]"),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": 3}]}),
            "input[0].content",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"text": "x"}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": "q", "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "m", "input": "q", "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "m", "input": "q", "instructions": 3}),
            "instructions",
        ),
        (
            json!({"model": "m", "input": "q", "previous_response_id": ""}),
            "previous_response_id",
        ),
    ];
    for (body, param) in cases {
        let e = error_of(body);
        assert_eq!(e.param.as_deref(), Some(*param), "{body}: {}", e.message);
    }
    // A prompt template may name the model.
    assert!(parse_responses(br#"{"prompt":{"id":"pmpt_1"},"input":"q"}"#).is_ok());
    assert!(parse_responses(b"[1]").is_err());
    assert!(parse_responses(b"{").is_err());
}

#[test]
fn stream_and_background_are_read() {
    let req = |v: Value| parse_responses(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(is_stream(&req(with("stream", json!(true)))));
    assert!(!is_stream(&req(with("stream", json!(false)))));
    assert!(!is_stream(&req(base())));
    assert!(is_background(&req(with("background", json!(true)))));
    assert!(!is_background(&req(with("background", Value::Null))));
    assert!(!is_background(&req(base())));
}
