//! Cache keys. A request is split into a *partition* (everything that changes the answer
//! except the last user message: tenant, model, system prompts, earlier turns, parameters)
//! and a *prompt* (the last user message, normalised). Exact hits need the same partition
//! and the same normalised prompt; semantic hits need the same partition and a similar
//! prompt. Semantic matching never crosses partitions.
//!
//! The wire crates decide which fields go into a partition (by destructuring their request
//! types); this module only hashes what it is given, unambiguously.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// 128-bit hash identifying a partition. Collisions are negligible at any cache size
/// (birthday bound ~2^64 partitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey(pub [u8; 16]);

/// 128-bit hash of (partition, normalised prompt): the exact-hit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExactKey(pub [u8; 16]);

impl ExactKey {
    pub fn new(partition: &PartitionKey, normalized_prompt: &str) -> Self {
        let mut b = KeyBuilder::new("exact/v1");
        b.bytes("partition", &partition.0);
        b.str("prompt", normalized_prompt);
        Self(b.finish_bytes())
    }
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Display for ExactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Builds a key from labelled fields. Every field is written as
/// `len(label) label len(value) value`, so no two different field lists hash alike
/// ("ab" + "c" never equals "a" + "bc"), and a field's label keeps equal values of
/// different fields apart.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
}

impl KeyBuilder {
    /// `domain` separates key kinds (partition vs exact vs embedding) and versions.
    pub fn new(domain: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(domain.len() as u64).to_le_bytes());
        hasher.update(domain.as_bytes());
        Self { hasher }
    }

    pub fn bytes(&mut self, label: &str, value: &[u8]) -> &mut Self {
        self.hasher.update(&(label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    pub fn str(&mut self, label: &str, value: &str) -> &mut Self {
        self.bytes(label, value.as_bytes())
    }

    /// An optional field: absent and present-but-empty hash differently.
    pub fn opt_str(&mut self, label: &str, value: Option<&str>) -> &mut Self {
        match value {
            None => self.bytes(label, &[0]),
            Some(v) => {
                let mut tagged = Vec::with_capacity(v.len() + 1);
                tagged.push(1);
                tagged.extend_from_slice(v.as_bytes());
                self.bytes(label, &tagged)
            }
        }
    }

    pub fn finish_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.hasher.finalize().as_bytes()[..16]);
        out
    }

    pub fn finish_partition(&self) -> PartitionKey {
        PartitionKey(self.finish_bytes())
    }
}

/// Normalises a prompt for exact matching and for storage. Exactly this, nothing more:
///
/// 1. Unicode NFC (composed and decomposed accents compare equal);
/// 2. leading and trailing whitespace removed;
/// 3. every run of whitespace (spaces, tabs, newlines, any Unicode white space) inside the
///    text becomes one ASCII space.
///
/// Case, punctuation and digits are kept: "Enable X." and "enable x" may be asked for
/// different reasons (code, names), and the semantic path handles harmless variation.
pub fn normalize_prompt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfc() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            ("hello", "hello"),
            ("  hello  ", "hello"),
            ("hello   world", "hello world"),
            ("hello\n\tworld\r\n", "hello world"),
            ("a\u{00A0}b", "a b"),
            ("caf\u{0065}\u{0301}", "caf\u{00E9}"),
            ("Hello World", "Hello World"),
            ("", ""),
            ("   ", ""),
            ("你好 世界", "你好 世界"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_prompt(input), want, "input {input:?}");
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = KeyBuilder::new("t");
        a.str("x", "ab").str("y", "c");
        let mut b = KeyBuilder::new("t");
        b.str("x", "a").str("y", "bc");
        assert_ne!(a.finish_bytes(), b.finish_bytes());
    }

    #[test]
    fn optional_absent_differs_from_empty() {
        let mut a = KeyBuilder::new("t");
        a.opt_str("x", None);
        let mut b = KeyBuilder::new("t");
        b.opt_str("x", Some(""));
        assert_ne!(a.finish_bytes(), b.finish_bytes());
    }

    #[test]
    fn labels_separate_equal_values() {
        let mut a = KeyBuilder::new("t");
        a.str("model", "x");
        let mut b = KeyBuilder::new("t");
        b.str("system", "x");
        assert_ne!(a.finish_bytes(), b.finish_bytes());
    }

    #[test]
    fn exact_key_depends_on_partition_and_prompt() {
        let p1 = PartitionKey([1; 16]);
        let p2 = PartitionKey([2; 16]);
        assert_ne!(ExactKey::new(&p1, "a"), ExactKey::new(&p2, "a"));
        assert_ne!(ExactKey::new(&p1, "a"), ExactKey::new(&p1, "b"));
        assert_eq!(ExactKey::new(&p1, "a"), ExactKey::new(&p1, "a"));
    }
}
