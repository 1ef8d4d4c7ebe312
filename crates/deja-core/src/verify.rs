//! Verification of semantic candidates: after the vector search finds a cached prompt
//! similar enough, decide whether it really asks the same thing. Embedding similarity
//! cannot tell "order #4821" from "order #4812" or "enable" from "disable"; these cheap,
//! explainable checks can. A rejected candidate is not served, and the reason is reported.

/// Why a semantic candidate was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Numbers, amounts, IDs, dates or units differ.
    Number,
}

impl RejectReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::Number => "number",
        }
    }
}

/// Checks whether the answer cached for `cached` may answer `query`. Both are normalised
/// prompts.
pub fn verify(cached: &str, query: &str) -> Result<(), RejectReason> {
    if numbers(cached) != numbers(query) {
        return Err(RejectReason::Number);
    }
    Ok(())
}

/// The digit runs of a text, in order.
fn numbers(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("Where is order #4821?", "where is my order #4821", Ok(())),
            ("Where is order #4821?", "Where is order #4812?", Err(RejectReason::Number)),
            ("wake me up at 4 am", "wake me up at 5 am", Err(RejectReason::Number)),
            ("How do I reset my password?", "how can I reset my password", Ok(())),
        ];
        for (a, b, want) in cases {
            assert_eq!(verify(a, b), want, "{a} / {b}");
        }
    }
}
