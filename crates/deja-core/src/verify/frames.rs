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

/// Punctuation that closes a clause inside a sentence: what a phrase moved to the front
/// is set off by ("In Python, how do I …").
fn is_clause_break(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '，' | '；' | '：' | '、' | '،')
}

/// Lowercase tokens: runs of letters, digits and apostrophes (’ read as '), numbers with
/// their inner points, commas and colons, and every other symbol on its own (`c++` and
/// `c#`, `$5` and `€5` stay apart), each Chinese or Japanese character on its own;
/// sentence punctuation, whitespace and hyphens between letters are left out; each with
/// whether a clause break ([`is_clause_break`]) follows it.
fn marked_words(text: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<(String, bool)>| {
        if !word.is_empty() {
            out.push((std::mem::take(word).to_lowercase(), false));
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
            out.push((c.to_string(), false));
        } else if c.is_alphanumeric() || c == '\'' || c == '’' || inside_number {
            word.push(if c == '’' { '\'' } else { c });
        } else if joining_hyphen {
            flush(&mut word, &mut out);
        } else {
            flush(&mut word, &mut out);
            if is_clause_break(c) {
                if let Some(last) = out.last_mut() {
                    last.1 = true;
                }
            } else if !c.is_whitespace() && !is_sentence_punctuation(c) {
                out.push((c.to_lowercase().collect(), false));
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Contractions written without their apostrophe, as chat often does ("whats", "dont"),
/// where the word without it is not another English word ("its", "lets", "well", "were",
/// "ill" and "id" are, and stay as they are).
const APOSTROPHE_DROPPED: &[(&str, &str)] = &[
    ("dont", "don't"),
    ("doesnt", "doesn't"),
    ("didnt", "didn't"),
    ("isnt", "isn't"),
    ("arent", "aren't"),
    ("wasnt", "wasn't"),
    ("werent", "weren't"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("hadnt", "hadn't"),
    ("couldnt", "couldn't"),
    ("shouldnt", "shouldn't"),
    ("wouldnt", "wouldn't"),
    ("cant", "can't"),
    ("wont", "won't"),
    ("aint", "ain't"),
    ("im", "i'm"),
    ("ive", "i've"),
    ("youre", "you're"),
    ("youve", "you've"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("weve", "we've"),
    ("whats", "what's"),
    ("wheres", "where's"),
    ("whos", "who's"),
    ("hows", "how's"),
    ("thats", "that's"),
    ("theres", "there's"),
];

/// English contractions written out, so "what's" / "what is" and "don't" / "do not" read
/// alike (with or without the apostrophe: [`APOSTROPHE_DROPPED`]). Only forms with one
/// reading: "'s" after the words listed (not a possessive), "'d" is left as it is (had or
/// would). A clause break after a word stays after the last word it is written out as.
fn expand(words: Vec<(String, bool)>) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::with_capacity(words.len() + 2);
    for (w, marked) in words {
        let w = match APOSTROPHE_DROPPED.iter().find(|(bare, _)| *bare == w) {
            Some((_, full)) => full.to_string(),
            None => w,
        };
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
            "btw" => &["by", "the", "way"],
            "idk" => &["i", "do", "not", "know"],
            "imo" | "imho" => &["in", "my", "opinion"],
            "asap" => &["as", "soon", "as", "possible"],
            _ => &[],
        };
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
        if !parts.is_empty() {
            out.extend(parts.iter().map(|p| (p.to_string(), false)));
        } else if let Some((stem, full)) = expanded {
            out.push((stem, false));
            out.push((full.to_string(), false));
        } else {
            out.push((w, false));
        }
        if let Some(last) = out.last_mut() {
            last.1 = marked;
        }
    }
    out
}

/// A prompt's words as [`same_request`] compares them ([`marked_words`], contractions written
/// out), and after which of them a clause breaks.
fn request_words(text: &str) -> (Vec<String>, Vec<usize>) {
    let expanded = expand(marked_words(text));
    let breaks = expanded
        .iter()
        .enumerate()
        .filter(|(_, (_, marked))| *marked)
        .map(|(i, _)| i + 1)
        .collect();
    (expanded.into_iter().map(|(w, _)| w).collect(), breaks)
}

/// Whether two prompts are the same request written differently: they differ only in
/// case, whitespace, sentence punctuation and English contractions ("what is the capital
/// of France" / "What's the capital of France?").
pub fn same_wording(cached: &str, query: &str) -> bool {
    let (a, b) = (request_words(cached).0, request_words(query).0);
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

/// Chat shorthand that stands for one word only where the other prompt has that word
/// in its place ("do u know y …" / "do you know why …"); alone, "y", "r" and "n" are
/// also letters, variables and a language's name.
const SHORTHAND: &[(&str, &str)] = &[
    ("y", "why"),
    ("r", "are"),
    ("n", "and"),
    ("ur", "your"),
    ("b4", "before"),
    ("bc", "because"),
    ("cuz", "because"),
    ("coz", "because"),
    ("abt", "about"),
    ("ppl", "people"),
    ("msg", "message"),
    ("tmrw", "tomorrow"),
    ("tho", "though"),
    ("thru", "through"),
    ("pic", "picture"),
    ("pwd", "password"),
    ("acct", "account"),
];

/// Whether `short` is chat shorthand ([`SHORTHAND`]) for `word`.
fn is_shorthand_of(short: &str, word: &str) -> bool {
    SHORTHAND.iter().any(|&(s, w)| s == short && w == word)
}

/// Most words two prompts may differ in by typos alone.
const MAX_TYPOS: usize = 2;

/// Whether two word lists are the same but for at most [`MAX_TYPOS`] slips — a typo (a
/// word the vocabulary lacks in place of the one word it has that close) or chat
/// shorthand in place of its word ([`SHORTHAND`]) — with at least two words the same.
fn alike(a: &[String], b: &[String], vocab: Option<&Vocabulary>) -> bool {
    if a == b {
        return !a.is_empty();
    }
    if a.len() != b.len() {
        return false;
    }
    let differing: Vec<(&String, &String)> = a.iter().zip(b).filter(|(x, y)| x != y).collect();
    let slip = |x: &str, y: &str| {
        is_shorthand_of(x, y)
            || is_shorthand_of(y, x)
            || vocab.is_some_and(|v| v.is_typo_of(x, y) || v.is_typo_of(y, x))
    };
    differing.len() <= MAX_TYPOS
        && a.len() - differing.len() >= 2
        && differing.iter().all(|(x, y)| slip(x, y))
}

/// Whether the two prompts ask the same thing in other words: they differ only in their
/// wording ([`same_wording`]) and, given the embedder's vocabulary, in typos
/// ("internationaly" / "internationally"), or also in their opening question frames; and
/// the same once a phrase one of them sets off at the front with a clause break is put
/// back at the end ("In Python, how do I sort a list?" / "How do I sort a list in
/// Python?"), which moves no word across another and so swaps no roles; or each sets off
/// the phrase the other ends with ([`fronted_phrases_traded`]).
pub fn same_request(cached: &str, query: &str, vocab: Option<&Vocabulary>) -> bool {
    let ((a, a_breaks), (b, b_breaks)) = (request_words(cached), request_words(query));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if same_words(&a, &b, vocab) {
        return true;
    }
    let rotated = |w: &[String], at: usize| -> Vec<String> {
        w[at..].iter().chain(&w[..at]).cloned().collect()
    };
    a_breaks
        .iter()
        .filter(|&&at| at < a.len())
        .any(|&at| same_words(&rotated(&a, at), &b, vocab))
        || b_breaks
            .iter()
            .filter(|&&at| at < b.len())
            .any(|&at| same_words(&a, &rotated(&b, at), vocab))
        || a_breaks.iter().any(|&x| {
            b_breaks
                .iter()
                .any(|&z| fronted_phrases_traded(&a, x, &b, z, vocab))
        })
}

/// Whether each prompt sets off at its front the phrase the other ends with, the rest
/// being the same: "When traveling to Japan, do I need a visa as a US citizen?" / "As a
/// US citizen, do I need a visa when traveling to Japan?" (`a` = X, M Z and `b` = Z, M X,
/// X the first `x` words of `a`, Z the first `z` of `b`). The two phrases must open with
/// different words: two of the same kind traded ("For my son, … for my wife?" / "For my
/// wife, … for my son?") trade roles.
fn fronted_phrases_traded(
    a: &[String],
    x: usize,
    b: &[String],
    z: usize,
    vocab: Option<&Vocabulary>,
) -> bool {
    let n = a.len();
    if n != b.len() || x == 0 || z == 0 || x + z >= n {
        return false;
    }
    let (front_a, front_b) = (&a[..x], &b[..z]);
    front_a[0] != front_b[0]
        && a[n - z..] == *front_b
        && b[n - x..] == *front_a
        && same_words(&a[x..n - z], &b[z..n - x], vocab)
}

/// [`alike`], or alike once their opening question frames are taken off.
fn same_words(a: &[String], b: &[String], vocab: Option<&Vocabulary>) -> bool {
    if alike(a, b, vocab) {
        return true;
    }
    let ((ra, fa), (rb, fb)) = (strip(a), strip(b));
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
    fn contractions_without_their_apostrophe_are_written_out() {
        let same = [
            (
                "whats the capital of france",
                "What's the capital of France?",
            ),
            ("why doesnt my code compile", "Why doesn't my code compile?"),
            ("im locked out", "I am locked out"),
            ("wheres my order", "Where is my order?"),
            (
                "do u know why my refund hasnt arrived",
                "Do you know why my refund hasn't arrived?",
            ),
            ("btw is the store open", "By the way, is the store open?"),
        ];
        for (a, b) in same {
            assert!(same_wording(a, b), "{a} / {b}");
        }
        let different = [
            // Words of their own.
            ("its battery", "it is battery"),
            ("lets go", "let us go"),
            ("well done", "we will done"),
            ("were you there", "we are you there"),
            // The negation stays.
            ("why does it work", "why doesnt it work"),
        ];
        for (a, b) in different {
            assert!(!same_wording(a, b), "{a} / {b}");
        }
    }

    #[test]
    fn chat_shorthand_stands_for_its_word_in_the_same_place() {
        let same = [
            (
                "do u know y my refund hasnt arrived yet",
                "Do you know why my refund hasn't arrived yet?",
            ),
            (
                "what time does ur store close",
                "What time does your store close?",
            ),
            (
                "idk how to reset my pwd",
                "I don't know how to reset my password",
            ),
        ];
        for (a, b) in same {
            assert!(same_request(a, b, None), "{a} / {b}");
            assert!(same_request(b, a, None), "{b} / {a}");
        }
        let different = [
            // Not in the other's place: a letter, a variable.
            ("solve for y", "solve for x"),
            ("how do I install r", "how do I install python"),
            ("y is my order late", "why is my order late and lost"),
            // Shorthand for another word.
            ("ur order", "our order"),
            // Too many slips at once.
            ("y r u n ur", "why are you and your"),
        ];
        for (a, b) in different {
            assert!(!same_request(a, b, None), "{a} / {b}");
        }
    }

    #[test]
    fn a_phrase_set_off_at_the_front_is_the_same_request_at_the_end() {
        let same = [
            (
                "In Python, how do I check if a key exists in a dictionary?",
                "How do I check if a key exists in a dictionary in Python?",
            ),
            (
                "How long should I roast a whole chicken at 200°C?",
                "At 200°C, how long should I roast a whole chicken?",
            ),
            (
                "On my iPhone, how do I cancel my Spotify subscription?",
                "How do I cancel my Spotify subscription on my iPhone?",
            ),
            // With a frame and a contraction besides.
            (
                "On my iPhone, what's the best way to cancel Spotify?",
                "how do i cancel spotify on my iphone",
            ),
            // Each sets off the phrase the other ends with.
            (
                "When traveling to Japan, do I need a visa as a US citizen?",
                "As a US citizen, do I need a visa when traveling to Japan?",
            ),
            // Chinese sets it off with a full-width comma.
            ("在北京，明天天气怎么样？", "明天天气怎么样在北京"),
        ];
        for (a, b) in same {
            assert!(same_request(a, b, None), "{a} / {b}");
            assert!(same_request(b, a, None), "{b} / {a}");
            assert!(!same_wording(a, b), "{a} / {b}");
        }
        let different = [
            // Roles swapped: words move across each other, not a phrase to the front.
            (
                "Does the seller pay the buyer's fees?",
                "Does the buyer pay the seller's fees?",
            ),
            (
                "From Paris to London, how long?",
                "How long from London to Paris?",
            ),
            // Moved without a clause break.
            ("dogs chase cats", "cats dogs chase"),
            // Two phrases of the same kind traded: roles traded.
            (
                "For my son, what gift should I buy for my wife?",
                "For my wife, what gift should I buy for my son?",
            ),
            // Moved, and something else changed.
            (
                "In Python, how do I sort a list?",
                "How do I sort a list in Java?",
            ),
            (
                "At 200°C, how long should I roast a chicken?",
                "How long should I roast a chicken at 180°C?",
            ),
            // Only the break, nothing moved.
            ("Hello,", "hello"),
        ];
        for (a, b) in different[..6].iter() {
            assert!(!same_request(a, b, None), "{a} / {b}");
            assert!(!same_request(b, a, None), "{b} / {a}");
        }
        // The same words with only a break between them are the same wording already.
        let (a, b) = different[6];
        assert!(same_request(a, b, None), "{a} / {b}");
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
