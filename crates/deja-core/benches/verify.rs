#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right
//! What verification adds to a semantic lookup: the learned verifier (veto rules, features,
//! model, question frames), the rules alone, and the question-frame comparison alone, on
//! short and long prompt pairs in the four languages.
//!
//! Run: `cargo bench -p deja-core --bench verify`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_core::verify::{self, model::Model};

const PAIRS: &[(&str, &str, &str)] = &[
    (
        "short_en",
        "How do I reset my password?",
        "How can I reset my password?",
    ),
    (
        "swap_en",
        "Germany beat Brazil in the final",
        "Brazil beat Germany in the final",
    ),
    (
        "long_en",
        "The 1990 season was the club's first in the top division after winning the second division title in 1989, and it finished fifth under its new manager.",
        "After winning the second division title in 1989, the club finished fifth in its first top-division season in 1990 under a new manager.",
    ),
    (
        "fr",
        "Comment réinitialiser mon mot de passe ?",
        "Comment puis-je réinitialiser mon mot de passe ?",
    ),
    ("nl", "Waarom werkt mijn kaart niet?", "Waarom doet mijn kaart het niet?"),
    ("zh", "从北京到上海怎么走", "从上海到北京怎么走"),
];

fn bench(c: &mut Criterion) {
    let model = Model::shipped().expect("the shipped model parses");
    let confidence = model.file().min_confidence;
    for (name, a, b) in PAIRS {
        c.bench_function(&format!("verify_model_{name}"), |bench| {
            bench.iter(|| {
                verify::verify_model(
                    model,
                    black_box(a),
                    black_box(b),
                    0.95,
                    None,
                    confidence,
                    None,
                )
            })
        });
        c.bench_function(&format!("verify_rules_{name}"), |bench| {
            bench.iter(|| verify::verify(black_box(a), black_box(b)))
        });
        c.bench_function(&format!("same_request_{name}"), |bench| {
            bench.iter(|| verify::same_request(black_box(a), black_box(b), None))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
