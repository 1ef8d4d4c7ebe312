//! The Anthropic Messages request parser and its cache key: `parse_messages` on arbitrary
//! bytes never panics, and for every request it accepts, `messages_key` is deterministic,
//! keeps tenants and API versions apart, does not depend on the order or repetition of
//! `anthropic-beta` values, ignores the transport-only fields, and yields a normalised
//! prompt.
#![no_main]

use deja_core::normalize_prompt;
use deja_openai::anthropic::{messages_key, parse_messages, ApiHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_messages(data) else {
        return;
    };
    let api = ApiHeaders {
        version: Some("2023-06-01".into()),
        beta: vec![
            "tools-2024-04-04".into(),
            "prompt-caching-2024-07-31".into(),
        ],
    };
    let key = messages_key(&req, "tenant-a", &api);

    let again = parse_messages(data).expect("accepted once, accepted twice");
    assert_eq!(messages_key(&again, "tenant-a", &api), key);

    assert_ne!(
        messages_key(&req, "tenant-b", &api).partition,
        key.partition
    );
    let other_version = ApiHeaders {
        version: Some("2024-01-01".into()),
        ..api.clone()
    };
    assert_ne!(
        messages_key(&req, "tenant-a", &other_version).partition,
        key.partition
    );

    // Beta flags are a set.
    let mut shuffled = api.clone();
    shuffled.beta.reverse();
    shuffled.beta.push(api.beta[0].clone());
    assert_eq!(messages_key(&req, "tenant-a", &shuffled), key);

    let mut transport = req.clone();
    transport.stream = Some(!req.stream.unwrap_or(false));
    transport.metadata = Some(serde_json::json!({"user_id": "u"}));
    transport.service_tier = Some("auto".into());
    transport.cache_control = Some(serde_json::json!({"type": "ephemeral"}));
    transport.inference_geo = Some("eu".into());
    transport.speed = Some("fast".into());
    transport.user_profile_id = Some("p".into());
    transport.workspace_id = Some("w".into());
    assert_eq!(messages_key(&transport, "tenant-a", &api), key);

    assert_eq!(normalize_prompt(&key.prompt), key.prompt);
});
