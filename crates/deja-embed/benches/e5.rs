//! multilingual-e5-small on one compute thread: a 16-token query (`<s>`, `query: `, the
//! text, `</s>`), the MiniLM benchmark's English query (19 tokens here), a batch of 16, the
//! same query with the 4-bit weights (`E5Options::quantized`), finding a text's unseen
//! parts, and the multilingual pair model on one candidate (the MiniLM benchmark's pair). `DEJA_EMBED_ISA=avx2` measures what a CPU without AVX-512 runs. Skips (prints a note) when the model is not installed
//! (`scripts/install-model.sh multilingual-e5-small`).

use criterion::{criterion_group, criterion_main, Criterion};
use deja_core::Embedder;
use deja_embed::{default_e5_dir, E5Embedder, E5Options};

/// Queries of about 16 tokens; the first of exactly 16 as the model reads them is timed.
const QUERIES_16: [&str; 4] = [
    "How do I reset the password of my account?",
    "How do I quickly reset the password of my account?",
    "How can I reset the password for my online account?",
    "How do I reset the password of my account on the website?",
];
/// The query of `benches/embed.rs` (16 tokens for MiniLM).
const QUERY: &str = "How can I quickly reset the password of my account on the website?";

fn bench(c: &mut Criterion) {
    let embedder = match E5Embedder::load(&default_e5_dir(), E5Options::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let counts: Vec<usize> = QUERIES_16
        .iter()
        .map(|q| embedder.token_ids(q).len())
        .collect();
    let Some(at) = counts.iter().position(|&n| n == 16) else {
        panic!("no query of 16 tokens: {counts:?}");
    };
    let query_16 = QUERIES_16[at];
    eprintln!(
        "weights in memory: {:.1} MB; {} tokens in the MiniLM query",
        embedder.weight_bytes() as f64 / 1e6,
        embedder.token_ids(QUERY).len()
    );
    let batch: Vec<String> = (0..16).map(|i| format!("{QUERY} (variant {i})")).collect();
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    c.bench_function("e5_embed_query_16_tokens_1_thread", |b| {
        b.iter(|| embed(&embedder, &[query_16]))
    });
    c.bench_function("e5_embed_minilm_query_1_thread", |b| {
        b.iter(|| embed(&embedder, &[QUERY]))
    });
    c.bench_function("e5_embed_batch_16_1_thread", |b| {
        b.iter(|| embed(&embedder, &batch))
    });
    let quantized = E5Embedder::load(
        &default_e5_dir(),
        E5Options {
            quantized: true,
            ..E5Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("e5_quantized_embed_query_16_tokens_1_thread", |b| {
        b.iter(|| embed(&quantized, &[query_16]))
    });
    c.bench_function("e5_unseen_query_zh", |b| {
        b.iter(|| embedder.unseen("我的包裹什么时候能送到？我已经等了一个星期了。"))
    });
    let pair_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(deja_embed::E5_PAIR_FILE);
    let with_pair = E5Embedder::load(
        &default_e5_dir(),
        E5Options {
            pair_model: Some(pair_file),
            ..E5Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cached = "How can I quickly reset the password of my account on the website?";
    let query = "I forgot my password yesterday, so how do I reset it on your website right now?";
    eprintln!(
        "pair tokens: {}",
        with_pair
            .pair_token_ids(cached, query)
            .map_or(0, |(ids, _)| ids.len())
    );
    c.bench_function("e5_pair_score_1_candidate_1_thread", |b| {
        b.iter(
            || match with_pair.score_pairs_blocking(&[(cached, query)]) {
                Ok(v) => v,
                Err(e) => panic!("pair scoring failed: {e}"),
            },
        )
    });
}

fn embed(embedder: &E5Embedder, texts: &[&str]) -> Vec<Vec<f32>> {
    match embedder.embed_blocking(texts) {
        Ok(v) => v,
        Err(e) => panic!("embedding failed: {e}"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
