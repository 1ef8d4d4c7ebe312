//! The store's binary entry record (`deja_store_local::codec`), read by the embedded
//! store and by Redis.
//!
//! - On arbitrary bytes, every reader (`decode_entry`, `decode_meta`,
//!   `decode_vector_parts`, `read_hits`, `read_keys`) returns an error or a value, never
//!   panics; and when the whole record decodes, the partial readers agree with it, and
//!   encoding it again decodes to the same entry.
//! - An entry built from the same input (`arbitrary`) round-trips `encode_entry` →
//!   `decode_entry` exactly, except that its vector comes back quantised to int8 and
//!   rescaled to unit length (as documented).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use deja_core::{Answer, Entry, EntryId, ExactKey, PartitionKey, Usage};
use deja_store_local::codec::{
    decode_entry, decode_meta, decode_vector_parts, dequantize_unit, encode_entry, quantize,
    read_hits, read_keys,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum FuzzAnswer {
    Body(Vec<u8>),
    Chunks(Vec<Vec<u8>>),
}

#[derive(Debug, Arbitrary)]
struct FuzzEntry {
    id: u64,
    partition: [u8; 16],
    exact_key: [u8; 16],
    prompt: String,
    model: String,
    answer: FuzzAnswer,
    usage: (u64, u64),
    created_at_ms: u64,
    last_hit_ms: u64,
    hit_count: u64,
    category: String,
    namespace: String,
    tags: Vec<String>,
    embedder_id: String,
    vector: Vec<f32>,
    request: Option<Vec<u8>>,
}

impl FuzzEntry {
    fn into_entry(self) -> Entry {
        Entry {
            id: EntryId(self.id),
            partition: PartitionKey(self.partition),
            exact_key: ExactKey(self.exact_key),
            prompt: self.prompt,
            model: self.model,
            answer: match self.answer {
                FuzzAnswer::Body(b) => Answer::Body(b),
                FuzzAnswer::Chunks(c) => Answer::Chunks(c),
            },
            usage: Usage {
                prompt_tokens: self.usage.0,
                completion_tokens: self.usage.1,
            },
            created_at_ms: self.created_at_ms,
            last_hit_ms: self.last_hit_ms,
            hit_count: self.hit_count,
            category: self.category,
            namespace: self.namespace,
            tags: self.tags,
            embedder_id: self.embedder_id,
            vector: self.vector,
            request: self.request,
        }
    }
}

/// The partial readers agree with the whole record `e` decoded from `bytes`.
fn check_parts(e: &Entry, bytes: &[u8]) {
    let meta = decode_meta(e.id, bytes).expect("the whole record decodes");
    assert_eq!(meta.created_at_ms, e.created_at_ms);
    assert_eq!(meta.last_hit_ms, e.last_hit_ms);
    assert_eq!(meta.hit_count, e.hit_count);
    assert_eq!(meta.partition, e.partition);
    assert_eq!(meta.exact_key, e.exact_key);
    assert_eq!(meta.model, e.model);
    assert_eq!(meta.category, e.category);
    assert_eq!(meta.namespace, e.namespace);
    assert_eq!(meta.tags, e.tags);
    assert_eq!(meta.has_vector, !e.vector.is_empty());
    assert_eq!(
        meta.size_bytes,
        (e.prompt.len() + e.answer.len_bytes()) as u64
    );
    let parts = decode_vector_parts(e.id, bytes).expect("the whole record decodes");
    assert_eq!(parts.partition, e.partition);
    assert_eq!(parts.embedder_id, e.embedder_id);
    assert_eq!(parts.vector, e.vector);
    assert_eq!(
        read_hits(e.id, bytes).expect("the whole record decodes"),
        (e.last_hit_ms, e.hit_count)
    );
    assert_eq!(
        read_keys(e.id, bytes).expect("the whole record decodes"),
        (e.partition, e.exact_key)
    );
}

fuzz_target!(|data: &[u8]| {
    let id = EntryId(7);
    let _ = decode_meta(id, data);
    let _ = decode_vector_parts(id, data);
    let _ = read_hits(id, data);
    let _ = read_keys(id, data);
    if let Ok(e) = decode_entry(id, data) {
        check_parts(&e, data);
        // Re-encoded, it decodes to itself; only the vector may move by a rounding step.
        let back = decode_entry(id, &encode_entry(&e)).expect("re-encoded record decodes");
        assert_eq!(back.vector.len(), e.vector.len());
        for (a, b) in back.vector.iter().zip(&e.vector) {
            assert!((a - b).abs() < 0.02, "vector moved from {b} to {a}");
        }
        assert_eq!(
            Entry {
                vector: e.vector.clone(),
                ..back
            },
            e
        );
    }

    let Ok(fuzzed) = FuzzEntry::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let e = fuzzed.into_entry();
    let bytes = encode_entry(&e);
    let back = decode_entry(e.id, &bytes).expect("an encoded entry decodes");
    let want_vector = if e.vector.is_empty() {
        Vec::new()
    } else {
        dequantize_unit(&quantize(&e.vector).codes)
    };
    let norm: f32 = back.vector.iter().map(|x| x * x).sum();
    assert!(
        back.vector.is_empty() || norm == 0.0 || (norm - 1.0).abs() < 1e-4,
        "decoded vector has squared norm {norm}"
    );
    assert_eq!(
        back,
        Entry {
            vector: want_vector,
            ..e.clone()
        }
    );
    check_parts(&back, &bytes);
});
