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
    /// The fields as written, hashed once at the end: one BLAKE3 pass over the whole
    /// input gives the same hash as feeding it piece by piece, for far less per-call
    /// overhead (a chat key has dozens of small fields).
    buf: Vec<u8>,
}

impl KeyBuilder {
    /// `domain` separates key kinds (partition vs exact vs embedding) and versions.
    pub fn new(domain: &str) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(&(domain.len() as u64).to_le_bytes());
        buf.extend_from_slice(domain.as_bytes());
        Self { buf }
    }

    pub fn bytes(&mut self, label: &str, value: &[u8]) -> &mut Self {
        self.head(label, value.len());
        self.buf.extend_from_slice(value);
        self
    }

    /// A field's label and the length of its value.
    fn head(&mut self, label: &str, value_len: usize) {
        self.buf
            .extend_from_slice(&(label.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(label.as_bytes());
        self.buf
            .extend_from_slice(&(value_len as u64).to_le_bytes());
    }

    pub fn str(&mut self, label: &str, value: &str) -> &mut Self {
        self.bytes(label, value.as_bytes())
    }

    /// An optional field: absent and present-but-empty hash differently.
    pub fn opt_str(&mut self, label: &str, value: Option<&str>) -> &mut Self {
        match value {
            None => self.bytes(label, &[0]),
            Some(v) => {
                // The value 1 then `v`, as one field.
                self.head(label, v.len() + 1);
                self.buf.push(1);
                self.buf.extend_from_slice(v.as_bytes());
                self
            }
        }
    }

    pub fn finish_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::hash(&self.buf).as_bytes()[..16]);
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
    // Most prompts are already in NFC (all ASCII text is): the quick check says so without
    // decomposing and recomposing every character.
    match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => collapse_whitespace(text, text.chars()),
        _ => collapse_whitespace(text, text.nfc()),
    }
}

/// `chars` (the characters of `text`, normalised) with runs of whitespace as one space,
/// trimmed.
fn collapse_whitespace(text: &str, chars: impl Iterator<Item = char>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in chars {
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

    /// Keys are what they were when each field was fed to BLAKE3 as it came: stored
    /// entries keep their keys across versions.
    #[test]
    fn keys_hash_as_fed_field_by_field() {
        // The domain, as `new` writes it, then each field as `bytes` writes it.
        let domain = "chat/v1";
        let mut h = blake3::Hasher::new();
        h.update(&(domain.len() as u64).to_le_bytes());
        h.update(domain.as_bytes());
        let mut field = |label: &str, value: &[u8]| {
            h.update(&(label.len() as u64).to_le_bytes());
            h.update(label.as_bytes());
            h.update(&(value.len() as u64).to_le_bytes());
            h.update(value);
        };
        field("tenant", b"ns:x");
        field("absent", &[0]);
        field("present", b"\x01{\"a\":1}");
        field("empty", b"\x01");
        let want = h.finalize();
        let got = KeyBuilder::new(domain)
            .str("tenant", "ns:x")
            .opt_str("absent", None)
            .opt_str("present", Some("{\"a\":1}"))
            .opt_str("empty", Some(""))
            .finish_bytes();
        assert_eq!(got, want.as_bytes()[..16]);
    }

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
            // What the quick check cannot pass: a singleton, conjoining jamo, a combining
            // mark after a letter that composes with it, marks out of order.
            ("\u{212B}ngstr\u{00F6}m", "\u{00C5}ngstr\u{00F6}m"),
            ("\u{1100}\u{1161}", "\u{AC00}"),
            ("A\u{030A} and  a\u{0308}", "\u{00C5} and \u{00E4}"),
            ("a\u{0316}\u{0301}b", "\u{00E1}\u{0316}b"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_prompt(input), want, "input {input:?}");
            // The quick path answers what full normalisation does.
            assert_eq!(
                normalize_prompt(input),
                collapse_whitespace(input, input.nfc()),
                "input {input:?}"
            );
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
