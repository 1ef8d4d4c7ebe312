#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deja eval` with the real model on `bench/quality/near-misses.csv`: hand-written
//! near-miss pairs in 23 languages (negation, antonyms, numbers, direction, places,
//! people, objects, words the model only sees as fragments or not at all) must all be refused,
//! while paraphrases the verifier can vouch for are still served.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::have_model;

fn near_misses() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/quality/near-misses.csv")
}

#[test]
fn no_near_miss_is_served_in_any_language() {
    if !have_model() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["eval", "--sample", "0", "--by", "lang", "--pairs"])
        .arg(near_misses())
        .arg("--dump")
        .arg(&dump)
        .env_remove("DEJA_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deja eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 240, "{} rows", rows.len());
    let served = |r: &&Value| r["deja"] == "hit";
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| r["label"] == 0)
        .filter(served)
        .map(|r| format!("{} / {} ({})", r["a"], r["b"], r["similarity"]))
        .collect();
    assert!(wrong.is_empty(), "near misses served: {wrong:#?}");
    // Not a check that refuses everything: English paraphrases are served.
    let paraphrases: Vec<&str> = rows
        .iter()
        .filter(|r| r["label"] == 1)
        .filter(served)
        .map(|r| r["b"].as_str().unwrap())
        .collect();
    assert!(
        paraphrases.contains(&"How can I reset my password?")
            && paraphrases.contains(&"Where's my order?")
            && paraphrases.contains(&"Should I lease or buy a car?")
            && paraphrases.contains(&"Is a tomato a vegetable or a fruit?")
            && paraphrases.contains(&"What is the best way to lose weight?")
            && paraphrases.contains(&"Comment puis-je réinitialiser mon mot de passe ?"),
        "{paraphrases:?}"
    );
}
