//! The chat completion request parser and its cache key: `parse_chat` on arbitrary bytes
//! never panics, and for every request it accepts, `chat_key` is deterministic, keeps
//! tenants apart, ignores the transport-only fields, and yields a normalised prompt.
#![no_main]

use deja_core::normalize_prompt;
use deja_openai::chat::{chat_key, parse_chat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_chat(data) else {
        return;
    };
    let key = chat_key(&req, "tenant-a");

    // The same bytes give the same key.
    let again = parse_chat(data).expect("accepted once, accepted twice");
    assert_eq!(chat_key(&again, "tenant-a"), key);

    // Another tenant never shares a partition.
    let other = chat_key(&req, "tenant-b");
    assert_ne!(other.partition, key.partition);
    assert_eq!(other.prompt, key.prompt);

    // Fields that change the transport or bookkeeping, not the answer, leave the key alone.
    let mut transport = req.clone();
    transport.stream = Some(!req.stream.unwrap_or(false));
    transport.stream_options = Some(serde_json::json!({"include_usage": true}));
    transport.user = Some("someone else".into());
    transport.store = Some(true);
    transport.metadata = Some(serde_json::json!({"k": "v"}));
    transport.service_tier = Some("flex".into());
    transport.prompt_cache_key = Some("pck".into());
    transport.safety_identifier = Some("sid".into());
    assert_eq!(chat_key(&transport, "tenant-a"), key);

    // The prompt is already normalised.
    assert_eq!(normalize_prompt(&key.prompt), key.prompt);
});
