//! Embedding latency of the local model on one compute thread: a ~16-token query, and a
//! batch of 16 such queries; and what finding a text's unseen parts costs (verification
//! does it for the request and each candidate), and telling a typo from another word with
//! the model's vocabulary; and the pair model on one candidate (two prompts of about 35
//! tokens together) and on 4 candidates at once; and which model reads a prompt when both
//! run. Skips (prints a note) when the model is not installed.

use criterion::{criterion_group, criterion_main, Criterion};
use deja_core::Embedder;
use deja_embed::{default_model_dir, BertEmbedder, BertOptions};

/// 16 tokens with [CLS] and [SEP].
const QUERY: &str = "How can I quickly reset the password of my account on the website?";

fn bench(c: &mut Criterion) {
    let dir = default_model_dir();
    let pair_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(deja_embed::PAIR_FILE);
    let embedder = match BertEmbedder::load(
        &dir,
        BertOptions {
            pair_model: Some(pair_file),
            ..BertOptions::default()
        },
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let batch: Vec<String> = (0..16).map(|i| format!("{QUERY} (variant {i})")).collect();
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    c.bench_function("embed_query_16_tokens_1_thread", |b| {
        b.iter(|| embed(&embedder, &[QUERY]))
    });
    c.bench_function("embed_batch_16_1_thread", |b| {
        b.iter(|| embed(&embedder, &batch))
    });
    // 35 tokens together with [CLS] and the two [SEP]s.
    let cached = "How can I quickly reset the password of my account on the website?";
    let query = "I forgot my password yesterday, so how do I reset it on your website right now?";
    c.bench_function("pair_score_35_tokens_1_thread", |b| {
        b.iter(|| score(&embedder, &[(cached, query)]))
    });
    let four = [
        (cached, query),
        (
            cached,
            "How do I change the password of my account on the website?",
        ),
        (
            cached,
            "How can I reset the password of my account in the app?",
        ),
        (
            cached,
            "how can i quickly reset my account password on the website",
        ),
    ];
    c.bench_function("pair_score_4_candidates_1_thread", |b| {
        b.iter(|| score(&embedder, &four))
    });
    c.bench_function("unseen_query_en", |b| b.iter(|| embedder.unseen(QUERY)));
    // Printable ASCII with a word the vocabulary lacks: the tokenizer runs.
    c.bench_function("unseen_query_en_rare_word", |b| {
        b.iter(|| embedder.unseen("How do I reset my Gmail password on the website?"))
    });
    // About 170 words of plain English: under the model's 256 tokens, so still no tokenizing.
    let long = "How can I quickly reset the password of my account on the website, and what should I do if the reset email never arrives in my inbox? ".repeat(6);
    c.bench_function("unseen_long_en", |b| b.iter(|| embedder.unseen(&long)));
    c.bench_function("unseen_query_ru", |b| {
        b.iter(|| embedder.unseen("Как сбросить пароль моей учётной записи на сайте?"))
    });
    c.bench_function("unseen_query_zh", |b| {
        b.iter(|| embedder.unseen("我的包裹什么时候能送到？我已经等了一个星期了。"))
    });
    // Which model reads a prompt when both run (`embedder.model = "auto"`): told by
    // function words, by script, or guessed from the words the vocabulary knows.
    if let Some(vocab) = embedder.vocabulary() {
        for (name, text) in [
            ("route_en", QUERY),
            (
                "route_fr",
                "Comment réinitialiser le mot de passe de mon compte ?",
            ),
            ("route_zh", "我的包裹什么时候能送到？我已经等了一个星期了。"),
            ("route_guessed", "Waqar Younis back as Pakistan coach"),
        ] {
            c.bench_function(name, |b| b.iter(|| vocab.route(std::hint::black_box(text))));
        }
    }
    // The same request with a typo, against the model's vocabulary: the nearest-word scan
    // verification runs for a candidate that differs in one unknown word.
    let vocab = embedder.vocabulary();
    c.bench_function("same_request_typo", |b| {
        b.iter(|| {
            deja_core::verify::same_request(
                "How do I reset the password of my account?",
                "How do I reset the pasword of my account?",
                vocab,
            )
        })
    });
    c.bench_function("same_request_different", |b| {
        b.iter(|| {
            deja_core::verify::same_request(
                "How do I reset the password of my account?",
                "How do I change the password of my account?",
                vocab,
            )
        })
    });
}

fn embed(embedder: &BertEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
    match embedder.embed_blocking(texts) {
        Ok(v) => v,
        Err(e) => panic!("embedding failed: {e}"),
    }
}

fn score(embedder: &BertEmbedder, pairs: &[(&str, &str)]) -> Vec<f32> {
    match embedder.score_pairs_blocking(pairs) {
        Ok(v) => v,
        Err(e) => panic!("pair scoring failed: {e}"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
