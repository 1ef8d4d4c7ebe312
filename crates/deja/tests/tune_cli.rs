#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deja tune` and `deja eval` on a small made-up dump (`tests/fixtures/tune-dump.jsonl`),
//! through the built binary: what users see, compared with a stored snapshot.
//!
//! To accept a changed output: `UPDATE_SNAPSHOTS=1 cargo test -p deja --test tune_cli`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `deja` in `dir` and returns its stdout; fails the test if it fails.
fn deja(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deja {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_snapshot(name: &str, got: &str) {
    let path = fixture(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; set UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert_eq!(got, want, "output differs from {}", path.display());
}

#[test]
fn tune_from_dump_prints_tables_recommendations_and_toml() {
    let dir = tempfile::tempdir().unwrap();
    let dump = fixture("tune-dump.jsonl");
    let out = deja(
        dir.path(),
        &[
            "tune",
            "--from-dump",
            dump.to_str().unwrap(),
            "--target-precision",
            "0.99",
            "--plot",
            "chart.svg",
        ],
    );
    assert_snapshot("tune-expected.txt", &out);
    // The values the fixture was made for.
    assert!(
        out.contains("[categories.faq]\nmin_similarity = 0.92\n"),
        "{out}"
    );
    assert!(
        out.contains("[categories.support]\nmin_similarity = 0.98\n"),
        "{out}"
    );
    assert!(out.contains("# smalltalk: no label-1 pairs"), "{out}");
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        2,
        "faq and support have curves"
    );
}

#[test]
fn tune_by_column_from_dump_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let dump = fixture("tune-dump.jsonl");
    let out = deja(
        dir.path(),
        &[
            "tune",
            "--from-dump",
            dump.to_str().unwrap(),
            "--by",
            "split",
            "--thresholds",
            "0.85,0.9,0.95",
            "--target-precision",
            "0.5",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    // faq and smalltalk lack the column; support is split by it.
    assert_eq!(names, ["faq", "support/dev", "support/test", "smalltalk"]);
    let dev = &v["groups"][1];
    assert_eq!(dev["key"], "support_dev");
    assert_eq!(
        dev["recommended"]["min_similarity"].as_f64().unwrap() as f32,
        0.85
    );
    assert_eq!(dev["rows"][0]["hits"], 2);
    assert_eq!(dev["rows"][0]["served"], 2);
    // support/test: its positive was refused by verification, its negative served.
    let test = &v["groups"][2];
    assert_eq!(test["recommended"], serde_json::Value::Null);
    assert_eq!(test["reason"], "none reaches the target");
    assert!(v["toml"]
        .as_str()
        .unwrap()
        .contains("[categories.support_dev]"));
    assert!(
        dir.path().join("deja-tune.svg").exists(),
        "default plot path"
    );
}

#[test]
fn eval_from_dump_reports_per_file_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let dump = fixture("tune-dump.jsonl");
    let out = deja(
        dir.path(),
        &[
            "eval",
            "--from-dump",
            dump.to_str().unwrap(),
            "--by",
            "split",
            "--thresholds",
            "0.9,0.95",
        ],
    );
    assert_snapshot("eval-expected.txt", &out);
    let json = deja(
        dir.path(),
        &[
            "eval",
            "--from-dump",
            dump.to_str().unwrap(),
            "--thresholds",
            "0.9",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let faq = &v["files"][0];
    assert_eq!(faq["file"], "faq.csv");
    assert_eq!(
        (faq["pairs"].as_u64(), faq["positives"].as_u64()),
        (Some(9), Some(5))
    );
    // At 0.90: on similarity alone 0.99, 0.97, 0.96, 0.93 and the negatives 0.95 and
    // 0.91 are served; verification refuses the 0.95 one.
    let row = &faq["rows"][0];
    assert_eq!(row["similarity_only"]["hits"], 4);
    assert_eq!(row["similarity_only"]["false_hits"], 2);
    assert_eq!(row["verified"]["false_hits"], 1);
    assert_eq!(row["verified"]["precision"], 0.8);
}

#[test]
fn tune_without_pairs_or_dump_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["tune"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pairs"));
}
