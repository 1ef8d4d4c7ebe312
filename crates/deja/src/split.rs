//! The fixed split of the labelled development pairs into the part `deja train-verifier`
//! fits on and the part it holds out, which `deja eval --held-out` measures: one place,
//! so the trainer and the evaluator cannot disagree about which pair is which.

use std::collections::BTreeMap;

/// The share of each file (other than PAWS) `deja train-verifier` holds out, in percent.
pub const HOLDOUT_PCT: u64 = 30;

/// Whether a pair is held out: PAWS by its own split, the rest by a hash of the texts.
pub fn is_held_out(
    file: &str,
    a: &str,
    b: &str,
    columns: &BTreeMap<String, String>,
    pct: u64,
) -> bool {
    if file.contains("paws") {
        if let Some(split) = columns.get("split") {
            return split != "dev";
        }
    }
    // FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in file
        .bytes()
        .chain([0])
        .chain(a.bytes())
        .chain([0])
        .chain(b.bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % 100 < pct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_near_the_share() {
        let none = BTreeMap::new();
        let held = (0..10_000)
            .filter(|i| is_held_out("x.csv", &format!("a{i}"), "b", &none, 30))
            .count();
        assert!((2_700..3_300).contains(&held), "{held}");
        assert_eq!(
            is_held_out("x.csv", "a1", "b", &none, 30),
            is_held_out("x.csv", "a1", "b", &none, 30)
        );
        let dev = BTreeMap::from([("split".to_string(), "dev".to_string())]);
        let test = BTreeMap::from([("split".to_string(), "test".to_string())]);
        assert!(!is_held_out("paws_wiki.csv", "a", "b", &dev, 30));
        assert!(is_held_out("paws_wiki.csv", "a", "b", &test, 30));
    }
}
