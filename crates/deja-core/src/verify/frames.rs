//! Question frames: "How do I …", "What is the best way to …", "How can I …", "Comment
//! puis-je …", "Hoe kan ik …" ask for a way to do the same thing, and rephrasings swap them
//! freely. Two prompts that are word for word the same once their opening frames are
//! taken off ask the same thing, however far apart the frames put their embeddings
//! ("How do I lose weight?" / "What is the best way to lose weight?", cosine 0.87).
//!
//! Only frames that add nothing are listed: not "Can I …" (yes or no), not "How do you …"
//! ("How do you feel?" asks about someone else), not "the cheapest way to" or "the fastest
//! way to" (a constraint).

use std::sync::OnceLock;

/// Frames in English, French and Dutch, lowercase, words as [`words`] splits them.
const FRAMES: &[&str] = &[
    "how do i",
    "how can i",
    "how should i",
    "how would i",
    "how could i",
    "how does one",
    "how can one",
    "how to",
    "what is the best way to",
    "what's the best way to",
    "what is a good way to",
    "what's a good way to",
    "what is the right way to",
    "what's the right way to",
    "what is the proper way to",
    "what is the correct way to",
    "what is the recommended way to",
    "what are the best ways to",
    "what are some ways to",
    "what are the ways to",
    "what are the steps to",
    "is there a way to",
    "is there any way to",
    "what should i do to",
    "what can i do to",
    "can you tell me how to",
    "could you tell me how to",
    "tell me how to",
    "i want to know how to",
    "i would like to know how to",
    "i'd like to know how to",
    "please",
    "best way to",
    "comment",
    "comment puis je",
    "comment est ce que je peux",
    "comment faire pour",
    "comment dois je",
    "quelle est la meilleure façon de",
    "quelle est la meilleure facon de",
    "quelle est la meilleure manière de",
    "quelle est la meilleure maniere de",
    "hoe kan ik",
    "hoe moet ik",
    "wat is de beste manier om",
];

/// Lowercase words: runs of letters, digits and apostrophes (’ read as ').
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('’', "'"))
        .collect()
}

/// `w` without its opening frames (the longest first, repeatedly: "please tell me how
/// to …"), and whether any was taken off.
fn strip(w: &[String]) -> (&[String], bool) {
    static PARSED: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let frames = PARSED.get_or_init(|| {
        let mut f: Vec<Vec<&str>> = FRAMES.iter().map(|f| f.split(' ').collect()).collect();
        f.sort_by_key(|f| std::cmp::Reverse(f.len()));
        f
    });
    let mut rest = w;
    let mut stripped = false;
    while let Some(frame) = frames
        .iter()
        .find(|f| rest.len() > f.len() && f.iter().zip(rest).all(|(x, y)| *x == y))
    {
        rest = &rest[frame.len()..];
        stripped = true;
    }
    (rest, stripped)
}

/// Whether the two prompts differ only in their opening question frames (and in case and
/// punctuation).
pub fn same_request(cached: &str, query: &str) -> bool {
    let (a, b) = (words(cached), words(query));
    let ((ra, fa), (rb, fb)) = (strip(&a), strip(&b));
    (fa || fb) && !ra.is_empty() && ra == rb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_that_add_nothing_are_taken_off() {
        let same = [
            (
                "How do I lose weight?",
                "What is the best way to lose weight?",
            ),
            ("How to learn Python?", "How can I learn Python"),
            (
                "What's the best way to stretch out jeans?",
                "how do i stretch out jeans",
            ),
            (
                "Please tell me how to reset my password",
                "How can I reset my password?",
            ),
            (
                "Comment réinitialiser mon mot de passe ?",
                "Comment puis-je réinitialiser mon mot de passe ?",
            ),
            (
                "Hoe kan ik mijn abonnement opzeggen?",
                "Hoe moet ik mijn abonnement opzeggen?",
            ),
        ];
        for (a, b) in same {
            assert!(same_request(a, b), "{a} / {b}");
            assert!(same_request(b, a), "{b} / {a}");
        }
        let different = [
            // The rest differs.
            ("How do I lose weight?", "How do I gain weight?"),
            ("How to learn Python quickly?", "How to learn Python?"),
            (
                "How do I delete my account?",
                "How do I not delete my account?",
            ),
            // Frames that are not listed: yes/no, someone else, a constraint.
            ("Can I learn Python?", "How do I learn Python?"),
            ("How do you feel?", "How do I feel?"),
            (
                "What is the cheapest way to get to Paris?",
                "How do I get to Paris?",
            ),
            // Nothing but a frame, or no frame at all.
            ("How do I?", "How to?"),
            ("Lose weight", "lose weight!"),
        ];
        for (a, b) in different {
            assert!(!same_request(a, b), "{a} / {b}");
            assert!(!same_request(b, a), "{b} / {a}");
        }
    }
}
