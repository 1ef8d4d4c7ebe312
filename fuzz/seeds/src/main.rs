//! Writes the binary seeds of the fuzz corpora into the corpus directory given as the only
//! argument (`fuzz/corpus`): encoded entries (`entry_codec/`), index snapshots
//! (`index_snapshot/`) and export lines (`import_line/`), made with the project's own
//! encoders so they are what the store, the index and `deja export` write. The text seeds
//! (requests, SSE streams) are hand-written files in the corpus directories.
//!
//! Deterministic: running it again rewrites the same bytes.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use deja_core::{Answer, Entry, EntryId, ExactKey, PartitionKey, Usage};
use deja_store_local::codec::encode_entry;
use deja_store_local::{HnswIndex, HnswParams};

/// What `fuzz_targets/index_snapshot.rs` loads snapshots with.
const EMBEDDER: &str = "fuzz:e";
const DIM: usize = 8;
const PARAMS: HnswParams = HnswParams {
    m: 4,
    ef_construction: 16,
    ef_search: 8,
    flat_below: 16,
};

fn unit_vector(seed: &mut u64, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn entries() -> Vec<Entry> {
    let mut seed = 11;
    let partition = PartitionKey(*b"chat-partition-1");
    let entry = |id: u64, prompt: &str, answer: Answer, vector: Vec<f32>| Entry {
        id: EntryId(id),
        partition,
        exact_key: ExactKey::new(&partition, prompt),
        prompt: prompt.to_string(),
        model: "gpt-4o-mini".into(),
        answer,
        usage: Usage {
            prompt_tokens: 12,
            completion_tokens: 7,
        },
        created_at_ms: 1_764_000_000_000,
        last_hit_ms: 1_764_000_100_000,
        hit_count: 3,
        category: "default".into(),
        namespace: "ns:team".into(),
        tags: vec!["product:42".into()],
        embedder_id: if vector.is_empty() {
            String::new()
        } else {
            EMBEDDER.into()
        },
        vector,
        request: None,
    };
    let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;
    let chunks = vec![
        br#"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.to_vec(),
        br#"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Paris."},"finish_reason":null}]}"#.to_vec(),
        br#"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_vec(),
    ];
    vec![
        entry(
            1,
            "what is the capital of france",
            Answer::Body(body.to_vec()),
            unit_vector(&mut seed, DIM),
        ),
        Entry {
            request: Some(
                br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the capital of France?"}],"stream":true}"#.to_vec(),
            ),
            tags: vec!["product:42".into(), "policy:geo".into()],
            ..entry(
                2,
                "what is the capital of france?",
                Answer::Chunks(chunks),
                unit_vector(&mut seed, DIM),
            )
        },
        Entry {
            namespace: String::new(),
            tags: Vec::new(),
            ..entry(3, "hi", Answer::Body(b"{}".to_vec()), Vec::new())
        },
    ]
}

/// A line of `deja export`, written field by field as `ExportLine::from_entry` writes it
/// (this crate does not build the server).
fn export_line(e: &Entry) -> String {
    let vector: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut line = serde_json::json!({
        "id": e.id.to_string(),
        "partition": e.partition.to_string(),
        "exact_key": e.exact_key.to_string(),
        "prompt": e.prompt,
        "model": e.model,
        "namespace": e.namespace,
        "tags": e.tags,
        "category": e.category,
        "created_at_ms": e.created_at_ms,
        "last_hit_ms": e.last_hit_ms,
        "hit_count": e.hit_count,
        "usage": e.usage,
        "embedder_id": e.embedder_id,
        "vector": B64.encode(vector),
        "answer": match &e.answer {
            Answer::Body(b) => serde_json::json!({"body": B64.encode(b)}),
            Answer::Chunks(c) => serde_json::json!({
                "chunks": c.iter().map(|c| B64.encode(c)).collect::<Vec<_>>()
            }),
        },
    });
    if let Some(r) = &e.request {
        line["request"] = B64.encode(r).into();
    }
    line.to_string()
}

/// A snapshot with a graph partition (with tombstones) and a flat one.
fn snapshot(dir: &Path, partitions: &[(u8, u64, u64)]) -> Vec<u8> {
    let index = HnswIndex::new(EMBEDDER, DIM, PARAMS);
    let mut seed = 5;
    for &(key, count, removed) in partitions {
        let key = PartitionKey([key; 16]);
        for id in 0..count {
            index
                .insert_sync(key, EntryId(id * 7 + 1), &unit_vector(&mut seed, DIM))
                .expect("the index's dimension");
        }
        for id in 0..removed {
            index
                .remove_sync(key, EntryId(id * 3 * 7 + 1))
                .expect("removal");
        }
    }
    let path = dir.join("seed.snapshot");
    index
        .save_snapshot(&path, 42)
        .expect("the snapshot is written");
    let bytes = std::fs::read(&path).expect("the snapshot is read back");
    std::fs::remove_file(&path).expect("the temporary snapshot is removed");
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("the seed is written");
}

fn main() {
    let corpus = std::env::args()
        .nth(1)
        .expect("usage: deja-fuzz-seeds <corpus directory>");
    let corpus = Path::new(&corpus);

    let codec = corpus.join("entry_codec");
    let import = corpus.join("import_line");
    for (i, e) in entries().iter().enumerate() {
        write(&codec, &format!("seed-entry-{}", i + 1), &encode_entry(e));
        write(
            &import,
            &format!("seed-line-{}.json", i + 1),
            export_line(e).as_bytes(),
        );
    }
    // A version 1 record: no trailing request flag.
    let mut v1 = encode_entry(&entries()[0]);
    v1[0] = 1;
    v1.pop();
    write(&codec, "seed-entry-v1", &v1);

    // Mode byte 1: the target appends the hash itself; 0: the file as written.
    let snapshots = corpus.join("index_snapshot");
    let tmp = std::env::temp_dir();
    for (name, partitions) in [
        ("graph-and-flat", &[(1, 40, 6), (2, 5, 0)][..]),
        ("flat", &[(3, 6, 1)][..]),
    ] {
        let file = snapshot(&tmp, partitions);
        let mut unhashed = vec![1];
        unhashed.extend_from_slice(&file[..file.len() - 32]);
        write(&snapshots, &format!("seed-{name}"), &unhashed);
        let mut whole = vec![0];
        whole.extend_from_slice(&file);
        write(&snapshots, &format!("seed-{name}-hashed"), &whole);
    }
}
