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

use super::vocab::Vocabulary;

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

/// Punctuation that ends or separates sentences and clauses, or quotes: it changes how a
/// prompt reads, never what it asks. (Inside a number, `3.5` or `10:30` or `1,000`, a
/// point, colon or comma is part of the number.)
fn is_sentence_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | '?'
            | '!'
            | ';'
            | ':'
            | '…'
            | '¿'
            | '¡'
            | '"'
            | '“'
            | '”'
            | '„'
            | '«'
            | '»'
            | '‹'
            | '›'
            | '('
            | ')'
            | '['
            | ']'
            | '。'
            | '，'
            | '？'
            | '！'
            | '；'
            | '：'
            | '、'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '؟'
            | '،'
            | '।'
    )
}

/// Han characters and kana.
fn is_ideograph(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// Lowercase tokens: runs of letters, digits and apostrophes (’ read as '), numbers with
/// their inner points, commas and colons, and every other symbol on its own (`c++` and
/// `c#`, `$5` and `€5` stay apart), each Chinese or Japanese character on its own;
/// sentence punctuation, whitespace and hyphens between letters are left out.
fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word).to_lowercase());
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let inside_number = matches!(c, '.' | ',' | ':')
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        // A hyphen between letters joins words ("puis-je", "e-mail"): read as a space.
        let joining_hyphen = c == '-'
            && i > 0
            && chars[i - 1].is_alphabetic()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        if is_ideograph(c) {
            // Chinese and Japanese are not written with spaces: each character is a word.
            flush(&mut word, &mut out);
            out.push(c.to_string());
        } else if c.is_alphanumeric() || c == '\'' || c == '’' || inside_number {
            word.push(if c == '’' { '\'' } else { c });
        } else if joining_hyphen {
            flush(&mut word, &mut out);
        } else {
            flush(&mut word, &mut out);
            if !c.is_whitespace() && !is_sentence_punctuation(c) {
                out.push(c.to_lowercase().collect());
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

/// English contractions written out, so "what's" / "what is" and "don't" / "do not" read
/// alike. Only forms with one reading: "'s" after the words listed (not a possessive),
/// "'d" is left as it is (had or would).
fn expand(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len() + 2);
    for w in words {
        let parts: &[&str] = match w.as_str() {
            "can't" | "cannot" => &["can", "not"],
            "won't" => &["will", "not"],
            "shan't" => &["shall", "not"],
            "ain't" => &["am", "not"],
            "let's" => &["let", "us"],
            "i'm" => &["i", "am"],
            // Chat shorthand with one reading.
            "u" => &["you"],
            "pls" | "plz" => &["please"],
            "thx" | "thnx" => &["thanks"],
            _ => &[],
        };
        if !parts.is_empty() {
            out.extend(parts.iter().map(|p| p.to_string()));
            continue;
        }
        let split = |suffix: &str, full: &'static str| {
            w.strip_suffix(suffix)
                .filter(|stem| !stem.is_empty())
                .map(|stem| (stem.to_string(), full))
        };
        let expanded = split("n't", "not")
            .or_else(|| split("'re", "are"))
            .or_else(|| split("'ve", "have"))
            .or_else(|| split("'ll", "will"))
            .or_else(|| {
                split("'s", "is").filter(|(stem, _)| {
                    matches!(
                        stem.as_str(),
                        "it" | "that"
                            | "what"
                            | "where"
                            | "who"
                            | "how"
                            | "there"
                            | "here"
                            | "he"
                            | "she"
                            | "when"
                            | "why"
                            | "which"
                    )
                })
            });
        match expanded {
            Some((stem, full)) => {
                out.push(stem);
                out.push(full.to_string());
            }
            None => out.push(w),
        }
    }
    out
}

/// Whether two prompts are the same request written differently: they differ only in
/// case, whitespace, sentence punctuation and English contractions ("what is the capital
/// of France" / "What's the capital of France?").
pub fn same_wording(cached: &str, query: &str) -> bool {
    let (a, b) = (expand(words(cached)), expand(words(query)));
    !a.is_empty() && a == b
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

/// Most words two prompts may differ in by typos alone.
const MAX_TYPOS: usize = 2;

/// Whether two word lists are the same but for at most [`MAX_TYPOS`] typos (a word the
/// vocabulary lacks in place of the one word it has that close), with at least two words
/// the same.
fn alike(a: &[String], b: &[String], vocab: Option<&Vocabulary>) -> bool {
    if a == b {
        return !a.is_empty();
    }
    let Some(vocab) = vocab else {
        return false;
    };
    if a.len() != b.len() {
        return false;
    }
    let differing: Vec<(&String, &String)> = a.iter().zip(b).filter(|(x, y)| x != y).collect();
    differing.len() <= MAX_TYPOS
        && a.len() - differing.len() >= 2
        && differing
            .iter()
            .all(|(x, y)| vocab.is_typo_of(x, y) || vocab.is_typo_of(y, x))
}

/// Whether the two prompts ask the same thing in other words: they differ only in their
/// wording ([`same_wording`]) and, given the embedder's vocabulary, in typos
/// ("internationaly" / "internationally"), or also in their opening question frames.
pub fn same_request(cached: &str, query: &str, vocab: Option<&Vocabulary>) -> bool {
    let (a, b) = (expand(words(cached)), expand(words(query)));
    if a.is_empty() {
        return false;
    }
    if alike(&a, &b, vocab) {
        return true;
    }
    let ((ra, fa), (rb, fb)) = (strip(&a), strip(&b));
    (fa || fb) && !ra.is_empty() && alike(ra, rb, vocab)
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
            assert!(same_request(a, b, None), "{a} / {b}");
            assert!(same_request(b, a, None), "{b} / {a}");
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
            // Nothing but a frame.
            ("How do I?", "How to?"),
            // Symbols are words: another language, another currency, another account.
            ("How do I learn C++?", "How to learn C#?"),
            ("How do I pay $5?", "How to pay €5?"),
            (
                "How do I close account #4821?",
                "How to close account 4821?",
            ),
            // Numbers keep their points and commas.
            ("How do I convert 3.5 kg?", "How to convert 35 kg?"),
            ("How do I pay 1,000 dollars?", "How do I pay 1 000 dollars?"),
        ];
        for (a, b) in different {
            assert!(!same_request(a, b, None), "{a} / {b}");
            assert!(!same_request(b, a, None), "{b} / {a}");
        }
    }

    #[test]
    fn case_punctuation_whitespace_and_contractions_are_the_same_wording() {
        let same = [
            (
                "what is the capital of France",
                "What is the capital of France?",
            ),
            (
                "What's the capital of France?",
                "what is the capital of france",
            ),
            ("I don't understand my bill", "I do not understand my bill."),
            ("Why can't I log in?", "why cannot i log in"),
            ("Lose weight", "lose weight!"),
            ("  Where’s my order?! ", "where is my order"),
            ("Le train part à 10:30 ?", "le train part à 10:30"),
            ("你好，世界！", "你好世界"),
        ];
        for (a, b) in same {
            assert!(same_wording(a, b), "{a} / {b}");
            assert!(same_request(a, b, None), "{a} / {b}");
        }
        let different = [
            ("How do I enable 2FA?", "How do I disable 2FA?"),
            ("ship it to u", "ship it to me"),
            ("I'd like a refund", "I had like a refund"),
            ("John's account", "John is account"),
            ("Is it C++?", "Is it C?"),
            ("order #4821", "order #4812"),
            ("re-sign the form", "resign the form"),
            ("3.5", "35"),
            ("?!", "..."),
        ];
        for (a, b) in different {
            assert!(!same_wording(a, b), "{a} / {b}");
        }
    }

    #[test]
    fn typos_against_the_vocabulary_are_the_same_request() {
        let vocab = Vocabulary::new([
            "do",
            "you",
            "ship",
            "internationally",
            "international",
            "how",
            "reset",
            "password",
            "receive",
            "my",
            "order",
            "where",
            "is",
            "subscribe",
            "from",
            "form",
            "the",
            "can",
            "i",
            "delete",
            "account",
        ]);
        let v = Some(&vocab);
        let same = [
            ("do u ship internationaly", "do you ship internationally?"),
            ("How do I reset my pasword?", "How can I reset my password?"),
            ("Where is my ordr?", "where is my order"),
            ("how do i reset my passwrod", "How do I reset my password"),
        ];
        for (a, b) in same {
            assert!(same_request(a, b, v), "{a} / {b}");
            assert!(same_request(b, a, v), "{b} / {a}");
            assert!(
                !same_request(a, b, None),
                "no vocabulary, no typos: {a} / {b}"
            );
        }
        let different = [
            // Both words.
            ("Where is my form?", "Where is my from?"),
            // Another word, not a typo.
            ("How do I unsubscribe?", "How do I subscribe?"),
            // Too many, or nothing else in common.
            ("pasword", "password"),
            ("dlete my acount pasword", "delete my account password"),
        ];
        for (a, b) in different {
            assert!(!same_request(a, b, v), "{a} / {b}");
        }
    }
}
