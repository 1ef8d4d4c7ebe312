//! `deja eval --dump FILE`: every pair's outcome as JSON Lines, written once and read back
//! by `deja eval --from-dump`, `deja tune` and `deja train-verifier` without re-running the
//! embedder.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{file_name, read_pairs, Candidate, Decision, FileOutcomes, Mode, Pair, PairOutcome};

/// One line of a `--dump` file. Older dumps (isolated mode only) have just `file`, `a`,
/// `b`, `label`, `similarity` and `rejected`; the other fields default accordingly.
#[derive(Debug, Serialize, Deserialize)]
struct DumpLine {
    file: String,
    a: String,
    b: String,
    label: u8,
    /// Similarity of the nearest entry.
    similarity: Option<f32>,
    /// Why verification refused the nearest entry.
    rejected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
    /// Whether the nearest entry is the pair's own `a` (always, in isolated mode).
    #[serde(default = "yes")]
    nearest_own: bool,
    /// What deja served; absent in older dumps, where it is the nearest entry unless
    /// verification refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    served: Option<ServedLine>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    columns: BTreeMap<String, String>,
    /// The learned verifier's probability for the nearest entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confidence: Option<f32>,
    /// The pair model's logit for the nearest entry and `b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pair: Option<f32>,
    /// The nearest entry differs from `b` only in question frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    same_request: bool,
    /// What deja as configured did (absent in older dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deja: Option<Decision>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServedLine {
    similarity: Option<f32>,
    own: bool,
}

fn yes() -> bool {
    true
}

pub(super) fn write_dump(
    path: &Path,
    file: &str,
    mode: Mode,
    pairs: &[Pair],
    outcomes: &[PairOutcome],
) -> anyhow::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for (p, o) in pairs.iter().zip(outcomes) {
        let line = DumpLine {
            file: file.to_string(),
            a: p.a.clone(),
            b: p.b.clone(),
            label: u8::from(p.label),
            similarity: o.nearest.map(|c| c.similarity),
            rejected: o.rejected.clone(),
            mode: Some(mode),
            nearest_own: o.nearest.is_none_or(|c| c.own),
            served: Some(ServedLine {
                similarity: o.served.map(|c| c.similarity),
                own: o.served.is_some_and(|c| c.own),
            }),
            columns: p.columns.clone(),
            confidence: o.confidence,
            pair: o.pair_logit,
            same_request: o.same_request,
            deja: o.deja.clone(),
        };
        serde_json::to_writer(&mut w, &line)?;
        writeln!(w)?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// The mode a dump was recorded in (`None` for older dumps without it: isolated).
pub(super) fn dump_mode(path: &Path) -> anyhow::Result<Option<Mode>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match text.lines().find(|l| !l.trim().is_empty()) {
        Some(line) => Ok(serde_json::from_str::<DumpLine>(line)?.mode),
        None => Ok(None),
    }
}

/// Reads a `--dump` file back into outcomes per file, in the order files first appear.
/// With `pairs`, keeps only those files, and looks the `by` column up in them for dump
/// lines that do not carry it (matched on file name, `a` and `b`).
pub fn load_dump(
    path: &Path,
    pairs: &[PathBuf],
    by: Option<&str>,
) -> anyhow::Result<Vec<FileOutcomes>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let wanted: Vec<String> = pairs.iter().map(|p| file_name(p)).collect();
    // Columns from the CSV files, for dumps written before dumps carried them.
    let mut lookup: HashMap<(String, String, String), String> = HashMap::new();
    if let Some(by) = by {
        for p in pairs {
            for pair in read_pairs(p, 0)? {
                if let Some(v) = pair.columns.get(by) {
                    lookup
                        .entry((file_name(p), pair.a, pair.b))
                        .or_insert_with(|| v.clone());
                }
            }
        }
    }
    let mut files: Vec<FileOutcomes> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let d: DumpLine = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a dump line", path.display(), n + 1))?;
        if !wanted.is_empty() && !wanted.contains(&d.file) {
            continue;
        }
        let group = by.and_then(|c| {
            d.columns.get(c).cloned().or_else(|| {
                lookup
                    .get(&(d.file.clone(), d.a.clone(), d.b.clone()))
                    .cloned()
            })
        });
        let nearest = d.similarity.map(|similarity| Candidate {
            similarity,
            own: d.nearest_own,
        });
        let served = match &d.served {
            Some(s) => s.similarity.map(|similarity| Candidate {
                similarity,
                own: s.own,
            }),
            None if d.rejected.is_none() => nearest,
            None => None,
        };
        let outcome = PairOutcome {
            label: d.label == 1,
            group,
            nearest,
            served,
            rejected: d.rejected,
            confidence: d.confidence,
            pair_logit: d.pair,
            same_request: d.same_request,
            deja: d.deja,
        };
        match files.iter_mut().find(|f| f.file == d.file) {
            Some(f) => f.outcomes.push(outcome),
            None => files.push(FileOutcomes {
                file: d.file,
                outcomes: vec![outcome],
            }),
        }
    }
    if files.is_empty() {
        anyhow::bail!("{}: no pairs (for the files asked)", path.display());
    }
    if let Some(by) = by {
        for f in &files {
            if f.outcomes.iter().all(|o| o.group.is_none()) {
                eprintln!(
                    "note: {} has no column {by:?} in the dump{}; reported as a whole",
                    f.file,
                    if pairs.is_empty() {
                        " (pass its CSV with --pairs to look it up)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(files)
}
