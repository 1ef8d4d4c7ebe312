//! The embeddings request parser and its per-item keys: `parse_embeddings` on arbitrary
//! bytes never panics, and for every request it accepts: the items' keys are
//! deterministic, equal exactly when their prompts are, and differ between tenants; the
//! request sent upstream for the items is itself a valid request with the same items and
//! (numbers aside, see below) the same partition; and vectors survive the little-endian
//! byte encoding.
#![no_main]

use deja_openai::embeddings::{
    build_upstream_request, f32s_to_le_bytes, item_key, item_prompt, items, le_bytes_to_f32s,
    parse_embeddings, partition_key,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_embeddings(data) else {
        // Whatever was refused, the byte encoding of vectors must still round-trip.
        let floats: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let back = le_bytes_to_f32s(&f32s_to_le_bytes(&floats)).expect("whole f32s");
        assert!(back
            .iter()
            .zip(&floats)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(back.len(), floats.len());
        return;
    };
    let list = items(&req);
    assert!(
        !list.is_empty(),
        "an accepted request has at least one input"
    );
    let partition = partition_key(&req, "tenant-a");
    assert_ne!(partition_key(&req, "tenant-b"), partition);

    let keys: Vec<[u8; 16]> = list.iter().map(|i| item_key(&req, i, "tenant-a")).collect();
    for (i, a) in list.iter().enumerate() {
        assert_eq!(item_key(&req, a, "tenant-a"), keys[i]);
        assert_ne!(item_key(&req, a, "tenant-b"), keys[i]);
        for (j, b) in list.iter().enumerate().skip(i + 1) {
            let same_prompt = item_prompt(a) == item_prompt(b);
            assert_eq!(keys[i] == keys[j], same_prompt, "items {i} and {j}");
        }
    }

    // What goes upstream for the missing items is a request for the same items and,
    // unless an unknown parameter holds a non-integer number, the same partition: such a
    // number is re-printed from an f64, and serde_json's default parser (not correctly
    // rounded) may read a long literal 1 ULP away from where the re-printed one lands.
    let upstream = build_upstream_request(&req, &list);
    let sent = parse_embeddings(&upstream).expect("the upstream request is valid");
    assert_eq!(items(&sent), list);
    if !req.extra.values().any(has_float) {
        assert_eq!(partition_key(&sent, "tenant-a"), partition);
    }
});

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}
