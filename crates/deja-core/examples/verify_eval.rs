//! Measures `deja_core::verify` on labelled prompt pairs dumped by `deja eval --dump`:
//! per file and threshold, the hit rate on true duplicates and the false-hit rate on
//! different-intent pairs, with similarity alone and with verification; then how many
//! rejections each rule makes on each label. Pairs are split by a hash of their text into
//! a tuning half (even) and a held-out half (odd), reported separately.
//!
//! Usage: verify_eval DUMP.jsonl [--examples RULE [--half held-out]] [--bench-rules]

use std::collections::BTreeMap;
use std::time::Instant;

use deja_core::verify::{verify, verify_with, Rules};

const THRESHOLDS: [f64; 6] = [0.80, 0.85, 0.90, 0.92, 0.94, 0.96];
/// Rule counts are taken over pairs the similarity threshold would serve.
const RULE_MIN_SIMILARITY: f64 = 0.85;

struct Pair {
    file: String,
    a: String,
    b: String,
    same: bool,
    similarity: f64,
    held_out: bool,
}

fn fnv(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn load(path: &str) -> Result<Vec<Pair>, Box<dyn std::error::Error>> {
    let mut pairs = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let (a, b) = (text("a"), text("b"));
        let held_out = fnv(a.bytes().chain(b.bytes())) % 2 == 1;
        pairs.push(Pair {
            file: text("file").trim_end_matches(".csv").to_string(),
            same: v["label"].as_i64() == Some(1),
            similarity: v["similarity"].as_f64().unwrap_or(f64::NEG_INFINITY),
            held_out,
            a,
            b,
        });
    }
    Ok(pairs)
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * n as f64 / d as f64)
    }
}

fn report(pairs: &[&Pair], title: &str) {
    let mut by_file: BTreeMap<&str, Vec<&Pair>> = BTreeMap::new();
    for p in pairs {
        by_file.entry(&p.file).or_default().push(p);
    }
    println!("\n=== {title}: hit rate on label 1 / false-hit rate on label 0, % (similarity only -> with verify)");
    print!("{:<14}", "file");
    for t in THRESHOLDS {
        print!(" | {:^27}", format!("t={t:.2}"));
    }
    println!();
    for (file, ps) in &by_file {
        let verified: Vec<bool> = ps.iter().map(|p| verify(&p.a, &p.b).is_ok()).collect();
        let pos = ps.iter().filter(|p| p.same).count();
        let neg = ps.len() - pos;
        print!("{file:<14}");
        for t in THRESHOLDS {
            let (mut h, mut hv, mut f, mut fv) = (0, 0, 0, 0);
            for (p, ok) in ps.iter().zip(&verified) {
                if p.similarity >= t {
                    match p.same {
                        true => {
                            h += 1;
                            hv += usize::from(*ok);
                        }
                        false => {
                            f += 1;
                            fv += usize::from(*ok);
                        }
                    }
                }
            }
            print!(
                " | H {:>4}>{:>4} F {:>4}>{:>4}",
                pct(h, pos),
                pct(hv, pos),
                pct(f, neg),
                pct(fv, neg)
            );
        }
        println!();
    }
    println!("\n--- {title}: rejections per rule among pairs with similarity >= {RULE_MIN_SIMILARITY} (label0 wrong answers stopped / label1 true hits lost)");
    print!("{:<14}", "file");
    for (_, name) in Rules::EACH {
        print!(" | {name:>14}");
    }
    print!(" | {:>14}", "shipped");
    println!();
    let mut totals = vec![(0, 0); Rules::EACH.len() + 1];
    for (file, ps) in &by_file {
        print!("{file:<14}");
        let served: Vec<&&Pair> = ps
            .iter()
            .filter(|p| p.similarity >= RULE_MIN_SIMILARITY)
            .collect();
        for (k, (rule, _)) in Rules::EACH
            .iter()
            .chain([(Rules::SHIPPED, "")].iter())
            .enumerate()
        {
            let (mut r0, mut r1) = (0, 0);
            for p in &served {
                if verify_with(&p.a, &p.b, *rule).is_err() {
                    match p.same {
                        true => r1 += 1,
                        false => r0 += 1,
                    }
                }
            }
            totals[k].0 += r0;
            totals[k].1 += r1;
            print!(" | {:>14}", format!("{r0} / {r1}"));
        }
        println!();
    }
    print!("{:<14}", "total");
    for (r0, r1) in totals {
        print!(" | {:>14}", format!("{r0} / {r1}"));
    }
    println!();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: verify_eval DUMP.jsonl [--examples RULE] [--half tune|held-out]");
        std::process::exit(2);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let pairs = load(path)?;
    let tune: Vec<&Pair> = pairs.iter().filter(|p| !p.held_out).collect();
    let held: Vec<&Pair> = pairs.iter().filter(|p| p.held_out).collect();

    if let Some(rule_name) = flag("--examples") {
        let rule = Rules::EACH
            .iter()
            .find(|(_, n)| *n == rule_name)
            .map(|(r, _)| *r)
            .ok_or("unknown rule")?;
        let half = if flag("--half").as_deref() == Some("held-out") {
            &held
        } else {
            &tune
        };
        for p in half.iter().filter(|p| p.similarity >= 0.80) {
            if verify_with(&p.a, &p.b, rule).is_err() {
                println!(
                    "{} {} {:.3} | {} | {}",
                    p.file,
                    u8::from(p.same),
                    p.similarity,
                    p.a,
                    p.b
                );
            }
        }
        return Ok(());
    }

    if args.iter().any(|a| a == "--bench-rules") {
        for (rule, name) in Rules::EACH
            .iter()
            .chain([(Rules::NONE, "parse-only")].iter())
        {
            let start = Instant::now();
            for p in &pairs {
                std::hint::black_box(verify_with(&p.a, &p.b, *rule)).ok();
            }
            println!(
                "{name:>16}: {:.2} µs per call",
                start.elapsed().as_secs_f64() * 1e6 / pairs.len() as f64
            );
        }
        return Ok(());
    }

    report(&tune, "tuning half (hash even)");
    report(&held, "held-out half (hash odd)");

    // Speed: every pair, several rounds, through the shipped rules.
    let rounds = 5;
    let start = Instant::now();
    let mut rejected = 0;
    for _ in 0..rounds {
        for p in &pairs {
            rejected += usize::from(std::hint::black_box(verify(&p.a, &p.b)).is_err());
        }
    }
    let calls = rounds * pairs.len();
    // Short prompts, the typical chat question: the question-style files.
    let short: Vec<&Pair> = pairs
        .iter()
        .filter(|p| matches!(p.file.as_str(), "gptcache_qqp" | "banking77" | "hwu64"))
        .collect();
    let short_start = Instant::now();
    for _ in 0..rounds {
        for p in &short {
            std::hint::black_box(verify(&p.a, &p.b)).ok();
        }
    }
    println!(
        "speed on question-style prompts (qqp, banking77, hwu64): {:.2} µs per call",
        short_start.elapsed().as_secs_f64() * 1e6 / (rounds * short.len()) as f64
    );
    let mean_chars = pairs.iter().map(|p| p.a.len() + p.b.len()).sum::<usize>() as f64
        / (2 * pairs.len()) as f64;
    println!(
        "\nspeed: {:.2} µs per call over {calls} calls (mean prompt {mean_chars:.0} bytes; {} rejected)",
        start.elapsed().as_secs_f64() * 1e6 / calls as f64,
        rejected / rounds
    );
    Ok(())
}
