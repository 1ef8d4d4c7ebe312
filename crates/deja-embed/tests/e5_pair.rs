//! The multilingual pair model (`models/deja-pair-model-e5.safetensors`, made by
//! `training/train.py --base e5`) run by deja over multilingual-e5-small, against the
//! PyTorch model it was exported from (`training/export.py` wrote the fixture once, its
//! output committed): token ids, segments and logits, alone and batched; and a damaged or
//! foreign file refused with the reason.
//!
//! Needs the model from `scripts/install-model.sh multilingual-e5-small`. Without it the
//! tests print a skip note and pass, unless `DEJA_REQUIRE_MODEL=1`, when they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use deja_core::PairScorer;
use deja_embed::{default_e5_dir, E5Embedder, E5Options, E5_FILE, E5_INSTALL_HINT, E5_PAIR_FILE};
use serde_json::Value;

fn repo_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn load(pair: PathBuf) -> Option<Result<E5Embedder, deja_core::EmbedError>> {
    let file = default_e5_dir().join(E5_FILE);
    if !file.is_file() {
        assert_ne!(
            std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
            Ok("1"),
            "model not installed at {}; run {E5_INSTALL_HINT} (DEJA_REQUIRE_MODEL=1)",
            file.display()
        );
        println!("skipped: model not installed at {}", file.display());
        return None;
    }
    Some(E5Embedder::load(
        &file,
        E5Options {
            pair_model: Some(pair),
            ..E5Options::default()
        },
    ))
}

#[test]
fn the_multilingual_pair_model_matches_its_reference() {
    let Some(e) = load(repo_models().join(E5_PAIR_FILE)) else {
        return;
    };
    let e = e.unwrap();
    let scorer = e.pair_scorer().expect("a pair scorer");
    assert!(scorer.id().starts_with("pair:"), "{}", scorer.id());
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_models().join("deja-pair-model-e5.fixture.json")).unwrap(),
    )
    .unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut worst = 0.0f32;
    for case in cases {
        let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
        let want_ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let types: Vec<u32> = serde_json::from_value(case["type_ids"].clone()).unwrap();
        let (ids, second) = e.pair_token_ids(a, b).unwrap();
        assert_eq!(ids, want_ids, "{a} / {b}");
        assert_eq!(second, types.iter().position(|&t| t == 1).unwrap());
        let got = e.score_pairs_blocking(&[(a, b)]).unwrap()[0];
        let want = case["logit"].as_f64().unwrap() as f32;
        worst = worst.max((got - want).abs());
        assert!((got - want).abs() < 4e-3, "{a} / {b}: {got} against {want}");
    }
    // Batched with others, a pair scores as it does alone.
    let pairs: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c["a"].as_str().unwrap(), c["b"].as_str().unwrap()))
        .collect();
    let together = e.score_pairs_blocking(&pairs).unwrap();
    for (c, got) in cases.iter().zip(together) {
        assert!((got - c["logit"].as_f64().unwrap() as f32).abs() < 4e-3);
    }
    println!(
        "largest logit difference from the reference: {worst}; weights {} MB",
        e.weight_bytes() / 1_000_000
    );
}

/// A damaged file, the MiniLM pair model, or a file of another format is refused with
/// the reason, never half-loaded.
#[test]
fn a_damaged_or_foreign_pair_file_is_refused() {
    let bytes = std::fs::read(repo_models().join(E5_PAIR_FILE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let mut flipped = bytes.clone();
    let at = flipped.len() - 1000;
    flipped[at] ^= 0x10;
    let minilm = repo_models().join(deja_embed::PAIR_FILE);
    for (file, want) in [
        (write("flipped", &flipped), "BLAKE3"),
        (minilm, "base model"),
        (write("short", &bytes[..bytes.len() / 2]), ""),
        (dir.path().join("missing.safetensors"), ""),
    ] {
        let Some(got) = load(file.clone()) else {
            return;
        };
        let err = got.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{}: {err}", file.display());
    }
}
