//! Features of a (cached prompt, query, cosine similarity) pair for the learned verifier
//! ([`super::model`]): how much and which wording the two prompts share, whether the
//! shared words come in the same order, and which verification rules fire.
//!
//! Everything here works in any language: words are Unicode alphanumeric runs after NFKC
//! and lowercasing, Chinese/Japanese characters count one token each, and "content" words
//! are told from function words by length, not by a stop list. Only the rule signals use
//! the four-language lexicons.
//!
//! Not here: weights or decisions. The order of [`NAMES`] is the order of the values a
//! model file's weights refer to; changing it requires a new model file.

use unicode_normalization::UnicodeNormalization;

use super::Rules;

/// Feature names, in the order [`extract`] returns them.
pub const NAMES: [&str; COUNT] = [
    "cosine",
    "cosine_above_0.9",
    "cosine_above_0.95",
    "token_jaccard",
    "char3_jaccard",
    "bigram_dice",
    "lcs_ratio",
    "order_discord",
    "order_discord_x_overlap",
    "one_side_content_share",
    "one_side_function_share",
    "one_side_content_max",
    "length_ratio",
    "log_tokens",
    "digits_differ",
    "capitalised_differ",
    "rule_number_changed",
    "rule_number_added",
    "rule_date",
    "rule_negation",
    "rule_antonym",
    "rule_direction",
    "rule_entity_changed",
    "rule_entity_added",
    "cosine_x_token_jaccard",
    "slot_exchange",
];

/// How many features [`extract`] returns.
pub const COUNT: usize = 26;

/// Prompts are compared on at most this many tokens each: the order features are
/// quadratic, and a prompt's first sentences say what it asks.
const MAX_TOKENS: usize = 96;

/// Words of at least this many characters count as content words (Chinese/Japanese
/// characters, numbers and words with digits always do).
const CONTENT_CHARS: usize = 4;

/// A prompt split for comparison.
struct Tokens {
    /// Hashes of the lowercased NFKC tokens, in order.
    words: Vec<u64>,
    /// Whether each token is a content word.
    content: Vec<bool>,
    /// Hashes of the digit runs.
    digits: Vec<u64>,
    /// Hashes of tokens written with a capital letter other than at a sentence start.
    capitalised: Vec<u64>,
    /// Hashes of the character 3-grams of the lowercased text (spaces collapsed).
    char3: Vec<u64>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hash_str(s: &str) -> u64 {
    fnv(s.bytes())
}

/// The word being read by [`Tokens::new`].
#[derive(Default)]
struct Word {
    /// Lowercased.
    text: String,
    chars: usize,
    /// Its first character is uppercase.
    capital: bool,
    digit: bool,
}

impl Word {
    /// Adds the word (if any) to `t` and starts a new one; `starts_sentence` keeps a
    /// sentence's first word out of the capitalised names.
    fn flush_into(&mut self, t: &mut Tokens, starts_sentence: bool) {
        if self.text.is_empty() {
            return;
        }
        if t.words.len() < MAX_TOKENS {
            let h = hash_str(&self.text);
            t.words.push(h);
            t.content.push(self.chars >= CONTENT_CHARS || self.digit);
            if self.capital && !starts_sentence {
                t.capitalised.push(h);
            }
            if self.digit {
                let digits: String = self.text.chars().filter(char::is_ascii_digit).collect();
                t.digits.push(hash_str(&digits));
            }
        }
        // The text's buffer is kept for the next word.
        self.text.clear();
        self.chars = 0;
        self.capital = false;
        self.digit = false;
    }
}

impl Tokens {
    fn new(text: &str) -> Tokens {
        let mut t = Tokens {
            words: Vec::new(),
            content: Vec::new(),
            digits: Vec::new(),
            capitalised: Vec::new(),
            char3: Vec::new(),
        };
        let mut word = Word::default();
        let mut sentence_start = true;
        let mut at_sentence_start = true;
        // The lowercased text with every run of non-token characters as one space.
        let mut flat = String::with_capacity(text.len());
        for c in text.nfkc() {
            if is_cjk(c) {
                word.flush_into(&mut t, at_sentence_start);
                if t.words.len() < MAX_TOKENS {
                    let mut buf = [0u8; 4];
                    let h = hash_str(c.encode_utf8(&mut buf));
                    t.words.push(h);
                    t.content.push(true);
                }
                flat.push(c);
                sentence_start = false;
                at_sentence_start = false;
            } else if c.is_alphanumeric() {
                if word.text.is_empty() {
                    at_sentence_start = sentence_start;
                    word.capital = c.is_uppercase();
                    if flat.ends_with(|x: char| !x.is_whitespace()) && !flat.is_empty() {
                        // A CJK character directly before: keep the n-grams apart.
                        flat.push(' ');
                    }
                }
                word.digit |= c.is_numeric();
                word.chars += 1;
                for l in c.to_lowercase() {
                    word.text.push(l);
                    flat.push(l);
                }
                sentence_start = false;
            } else {
                word.flush_into(&mut t, at_sentence_start);
                if matches!(c, '.' | '?' | '!' | '。' | '？' | '！' | ';' | ':') {
                    sentence_start = true;
                }
                if !flat.is_empty() && !flat.ends_with(' ') {
                    flat.push(' ');
                }
            }
        }
        word.flush_into(&mut t, at_sentence_start);
        let chars: Vec<char> = flat.trim_end().chars().collect();
        t.char3 = chars
            .windows(3)
            .map(|w| {
                let mut buf = [0u8; 12];
                let mut n = 0;
                for c in w {
                    n += c.encode_utf8(&mut buf[n..]).len();
                }
                fnv(buf[..n].iter().copied())
            })
            .collect();
        sort_dedup(&mut t.char3);
        sort_dedup(&mut t.digits);
        sort_dedup(&mut t.capitalised);
        t
    }
}

fn sort_dedup(v: &mut Vec<u64>) {
    v.sort_unstable();
    v.dedup();
}

/// Size of the intersection of two sorted, deduplicated lists.
fn common(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

fn jaccard(a: &[u64], b: &[u64]) -> f32 {
    let union = a.len() + b.len() - common(a, b);
    if union == 0 {
        return 1.0;
    }
    common(a, b) as f32 / union as f32
}

fn sorted_unique(v: &[u64]) -> Vec<u64> {
    let mut s = v.to_vec();
    sort_dedup(&mut s);
    s
}

/// Longest common subsequence of two token lists, in tokens.
fn lcs(a: &[u64], b: &[u64]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// Share of pairs of shared words (each once in either prompt) that come in opposite
/// orders in the two prompts: 0 when the order is kept, near 1 when reversed. "A beat B" /
/// "B beat A" share every word; only this tells them apart.
fn order_discord(a: &[u64], b: &[u64]) -> f32 {
    let once = |v: &[u64], h: u64| v.iter().filter(|&&x| x == h).count() == 1;
    let mut positions: Vec<(usize, usize)> = Vec::new();
    for (i, &h) in a.iter().enumerate() {
        if once(a, h) && once(b, h) {
            if let Some(j) = b.iter().position(|&x| x == h) {
                positions.push((i, j));
            }
        }
    }
    let n = positions.len();
    if n < 2 {
        return 0.0;
    }
    let mut discordant = 0usize;
    for x in 0..n {
        for y in x + 1..n {
            if positions[y].1 < positions[x].1 {
                discordant += 1;
            }
        }
    }
    discordant as f32 / (n * (n - 1) / 2) as f32
}

/// How many shared words took the place of another shared word: the word before or after
/// it in one prompt is the one that came before or after a different shared word in the
/// other ("born in Paris, raised in London" / "born in London, raised in Paris"). Moving
/// a whole clause keeps each word's neighbours apart from the clause's edges; swapping
/// two names gives each the other's. Capped at 4, scaled to 0..=1.
fn slot_exchange(a: &[u64], b: &[u64]) -> f32 {
    const EDGE: u64 = 0x5eed;
    let left = |v: &[u64], i: usize| if i == 0 { EDGE } else { v[i - 1] };
    let right = |v: &[u64], i: usize| v.get(i + 1).copied().unwrap_or(EDGE ^ 1);
    let once = |v: &[u64], h: u64| v.iter().filter(|&&x| x == h).count() == 1;
    let mut exchanged = 0usize;
    for (j, &u) in b.iter().enumerate() {
        if !once(b, u) || !once(a, u) {
            continue;
        }
        let Some(i) = a.iter().position(|&x| x == u) else {
            continue;
        };
        let (lb, rb) = (left(b, j), right(b, j));
        let took = |k: usize| a[k] != u && once(a, a[k]) && once(b, a[k]);
        // A new neighbour that is the text's edge says little: any moved clause has one.
        let left_taken =
            j > 0 && lb != left(a, i) && (0..a.len()).any(|k| took(k) && left(a, k) == lb);
        let right_taken = j + 1 < b.len()
            && rb != right(a, i)
            && (0..a.len()).any(|k| took(k) && right(a, k) == rb);
        if left_taken || right_taken {
            exchanged += 1;
        }
    }
    (exchanged.min(4) as f32) / 4.0
}

/// Words that join two alternatives or items whose order says nothing: "buy or lease",
/// "Java and Python", in the languages the rules know and a few more.
const COORDINATORS: &[&str] = &[
    "or", "and", "vs", "versus", "ou", "et", "of", "en", "oder", "und", "o", "y", "e", "или", "и",
    "或", "和", "与",
];

/// Articles that may stand before each alternative: "a fruit or a vegetable".
const ARTICLES: &[&str] = &[
    "a", "an", "the", "le", "la", "les", "l", "un", "une", "de", "het", "een", "der", "die", "das",
    "ein", "eine", "el", "los", "las", "il", "lo", "uno", "una",
];

/// "Should I buy or lease?" / "Should I lease or buy?": where `b` has "y or x" and `a` has
/// "x or y" (and not "y or x"), `b`'s two words are put in `a`'s order, so the order
/// features do not count a swap that changes nothing. Each alternative is one word,
/// optionally after an article ("an alligator and a crocodile"; the articles move with
/// their words). Words are only swapped to agree with `a`: a swap `a` does not show stays.
fn align_coordinations(a: &[u64], b: &mut [u64]) {
    static HASHES: std::sync::OnceLock<(Vec<u64>, Vec<u64>)> = std::sync::OnceLock::new();
    let (coordinators, articles) = HASHES.get_or_init(|| {
        let hash = |words: &[&str]| words.iter().map(|w| hash_str(w)).collect();
        (hash(COORDINATORS), hash(ARTICLES))
    });
    // Each "x c [article] y" as (x's index, c's index, y's index).
    let pairs = |t: &[u64]| -> Vec<(usize, usize, usize)> {
        (1..t.len().saturating_sub(1))
            .filter(|&i| coordinators.contains(&t[i]))
            .filter_map(|i| {
                let right = if articles.contains(&t[i + 1]) {
                    i + 2
                } else {
                    i + 1
                };
                (right < t.len()).then_some((i - 1, i, right))
            })
            .collect()
    };
    let in_a: Vec<(u64, u64, u64)> = pairs(a)
        .iter()
        .map(|&(x, c, y)| (a[x], a[c], a[y]))
        .collect();
    for (x, c, y) in pairs(b) {
        let (wx, wc, wy) = (b[x], b[c], b[y]);
        if wx != wy && in_a.contains(&(wy, wc, wx)) && !in_a.contains(&(wx, wc, wy)) {
            b.swap(x, y);
            // The articles before each word go with it.
            if y == c + 2 && x > 0 && articles.contains(&b[x - 1]) {
                b.swap(x - 1, c + 1);
            }
        }
    }
}

/// The features of a pair: `cached` is the stored prompt, `query` the new one (both
/// normalised), `cosine` their embeddings' similarity.
pub fn extract(cached: &str, query: &str, cosine: f32) -> [f32; COUNT] {
    extract_with(cached, query, cosine, super::fired(cached, query))
}

/// [`extract`] with the rules that fire on the pair already known ([`super::fired`]).
pub fn extract_with(cached: &str, query: &str, cosine: f32, rules: Rules) -> [f32; COUNT] {
    let a = Tokens::new(cached);
    let mut b = Tokens::new(query);
    align_coordinations(&a.words, &mut b.words);
    let (ua, ub) = (sorted_unique(&a.words), sorted_unique(&b.words));
    let token_jaccard = jaccard(&ua, &ub);
    let bigrams = |t: &Tokens| {
        let mut v: Vec<u64> = t
            .words
            .windows(2)
            .map(|w| w[0].rotate_left(17) ^ w[1])
            .collect();
        sort_dedup(&mut v);
        v
    };
    let (ba, bb) = (bigrams(&a), bigrams(&b));
    let bigram_dice = if ba.len() + bb.len() == 0 {
        1.0
    } else {
        2.0 * common(&ba, &bb) as f32 / (ba.len() + bb.len()) as f32
    };
    let (na, nb) = (a.words.len(), b.words.len());
    let lcs_ratio = if na.max(nb) == 0 {
        1.0
    } else {
        lcs(&a.words, &b.words) as f32 / na.max(nb) as f32
    };
    let discord = order_discord(&a.words, &b.words);
    // Tokens that only one prompt has, split into content and function words.
    let (mut content_only, mut content_all, mut function_only, mut function_all) = (0, 0, 0, 0);
    let (mut a_content_only, mut b_content_only) = (0usize, 0usize);
    for (t, other, side) in [(&a, &ub, 0), (&b, &ua, 1)] {
        for (w, &content) in t.words.iter().zip(&t.content) {
            let only = other.binary_search(w).is_err();
            if content {
                content_all += 1;
                if only {
                    content_only += 1;
                    if side == 0 {
                        a_content_only += 1;
                    } else {
                        b_content_only += 1;
                    }
                }
            } else {
                function_all += 1;
                function_only += usize::from(only);
            }
        }
    }
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f32 / d as f32 };
    let length_ratio = if na.max(nb) == 0 {
        1.0
    } else {
        na.min(nb) as f32 / na.max(nb) as f32
    };
    let digits_differ = a.digits != b.digits;
    let capitalised_differ =
        a.capitalised.len() + b.capitalised.len() - 2 * common(&a.capitalised, &b.capitalised);
    let flag = |r: Rules| if rules.contains(r) { 1.0 } else { 0.0 };
    let antonym = rules.contains(Rules::ANTONYM) || rules.contains(Rules::ANTONYM_PREFIX);
    let cosine = cosine.clamp(-1.0, 1.0);
    [
        cosine,
        (cosine - 0.9).max(0.0) * 10.0,
        (cosine - 0.95).max(0.0) * 20.0,
        token_jaccard,
        jaccard(&a.char3, &b.char3),
        bigram_dice,
        lcs_ratio,
        discord,
        discord * token_jaccard,
        share(content_only, content_all),
        share(function_only, function_all),
        (a_content_only.max(b_content_only) as f32).min(8.0) / 8.0,
        length_ratio,
        ((na + nb) as f32 / 2.0 + 1.0).ln(),
        if digits_differ { 1.0 } else { 0.0 },
        (capitalised_differ as f32).min(4.0) / 4.0,
        flag(Rules::NUMBER_CHANGED),
        flag(Rules::NUMBER_ADDED),
        flag(Rules::DATE),
        flag(Rules::NEGATION),
        if antonym { 1.0 } else { 0.0 },
        flag(Rules::DIRECTION),
        flag(Rules::ENTITY_CHANGED),
        flag(Rules::ENTITY_ADDED),
        cosine * token_jaccard,
        slot_exchange(&a.words, &b.words),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(f: &[f32; COUNT], name: &str) -> f32 {
        let i = NAMES
            .iter()
            .position(|n| *n == name)
            .expect("known feature");
        f[i]
    }

    #[test]
    fn names_match_count() {
        let mut sorted = NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), COUNT);
    }

    /// (cached, query, feature, least, most): the feature's value must lie in the range.
    #[test]
    fn table() {
        let cases: &[(&str, &str, &str, f32, f32)] = &[
            // Identical wording.
            (
                "How do I reset my password?",
                "how do i reset my password",
                "token_jaccard",
                1.0,
                1.0,
            ),
            (
                "How do I reset my password?",
                "how do i reset my password",
                "order_discord",
                0.0,
                0.0,
            ),
            (
                "How do I reset my password?",
                "how do i reset my password",
                "lcs_ratio",
                1.0,
                1.0,
            ),
            // Alternatives named in the other order are not a swap...
            (
                "Should I buy or lease a car?",
                "Should I lease or buy a car?",
                "order_discord",
                0.0,
                0.0,
            ),
            (
                "Is it better to rent or buy?",
                "Is it better to buy or rent?",
                "slot_exchange",
                0.0,
                0.0,
            ),
            (
                "What's the difference between a crocodile and an alligator?",
                "What's the difference between an alligator and a crocodile?",
                "order_discord",
                0.0,
                0.0,
            ),
            (
                "Is a tomato a fruit or a vegetable?",
                "Is a tomato a vegetable or a fruit?",
                "slot_exchange",
                0.0,
                0.0,
            ),
            // ... but the same words ordered differently elsewhere still are.
            (
                "Should I lease a car or buy one?",
                "Should I buy or lease a car?",
                "order_discord",
                0.1,
                1.0,
            ),
            // A swap keeps every word but reverses their order.
            (
                "Germany beat Brazil in the final",
                "Brazil beat Germany in the final",
                "token_jaccard",
                1.0,
                1.0,
            ),
            (
                "Germany beat Brazil in the final",
                "Brazil beat Germany in the final",
                "order_discord",
                0.05,
                0.5,
            ),
            (
                "Germany beat Brazil in the final",
                "Brazil beat Germany in the final",
                "bigram_dice",
                0.3,
                0.7,
            ),
            // French, Dutch: elisions and accents are word characters; NFKC folds widths.
            (
                "Comment activer le wifi ?",
                "Comment désactiver le wifi ?",
                "token_jaccard",
                0.5,
                0.7,
            ),
            (
                "Comment activer le wifi ?",
                "Comment désactiver le wifi ?",
                "rule_antonym",
                1.0,
                1.0,
            ),
            (
                "Waarom werkt mijn kaart niet?",
                "Waarom werkt mijn kaart?",
                "rule_negation",
                1.0,
                1.0,
            ),
            (
                "Waarom werkt mijn kaart niet?",
                "Waarom werkt mijn kaart?",
                "one_side_content_share",
                0.11,
                0.112,
            ),
            // Chinese: one token per character.
            (
                "从北京到上海怎么走",
                "从上海到北京怎么走",
                "token_jaccard",
                1.0,
                1.0,
            ),
            (
                "从北京到上海怎么走",
                "从上海到北京怎么走",
                "order_discord",
                0.2,
                0.8,
            ),
            (
                "从北京到上海怎么走",
                "从上海到北京怎么走",
                "rule_direction",
                1.0,
                1.0,
            ),
            ("如何打开文件", "怎么打开文件", "token_jaccard", 0.5, 0.5),
            (
                "ＡＢＣ１２３ 价格",
                "abc123 价格",
                "token_jaccard",
                1.0,
                1.0,
            ),
            // Numbers and names.
            (
                "Where is order 4821?",
                "Where is order 4812?",
                "digits_differ",
                1.0,
                1.0,
            ),
            (
                "Where is order 4821?",
                "where is order 4821",
                "digits_differ",
                0.0,
                0.0,
            ),
            (
                "What are the towns in Montana?",
                "What are the towns in Idaho?",
                "capitalised_differ",
                0.5,
                0.5,
            ),
            (
                "What are the towns in Montana?",
                "What are the towns in Idaho?",
                "one_side_content_max",
                0.125,
                0.125,
            ),
            // Lengths.
            ("a b c d", "a b", "length_ratio", 0.5, 0.5),
            ("", "", "token_jaccard", 1.0, 1.0),
            // Swapped names take each other's neighbours; a moved clause does not.
            (
                "He was born in Paris and raised in London",
                "He was born in London and raised in Paris",
                "slot_exchange",
                0.25,
                0.25,
            ),
            (
                "In 1990 he joined the band",
                "He joined the band in 1990",
                "slot_exchange",
                0.0,
                0.0,
            ),
            (
                "从北京到上海怎么走",
                "从上海到北京怎么走",
                "slot_exchange",
                0.5,
                1.0,
            ),
        ];
        let mut failures = Vec::new();
        for &(a, b, name, lo, hi) in cases {
            let v = feature(&extract(a, b, 0.95), name);
            if !(lo - 1e-4..=hi + 1e-4).contains(&v) {
                failures.push(format!("{a} / {b}: {name} = {v}, want {lo}..={hi}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_feature_is_finite_and_symmetric_where_it_should_be() {
        let pairs = [
            (
                "How do I read a CSV file in Python?",
                "How do I write a CSV file in Python?",
            ),
            ("", "something"),
            ("如何上传照片", "How to upload a photo"),
        ];
        for (a, b) in pairs {
            let x = extract(a, b, 0.9);
            let y = extract(b, a, 0.9);
            assert!(x.iter().all(|v| v.is_finite()), "{a} / {b}: {x:?}");
            for name in [
                "token_jaccard",
                "char3_jaccard",
                "bigram_dice",
                "lcs_ratio",
                "order_discord",
            ] {
                assert!(
                    (feature(&x, name) - feature(&y, name)).abs() < 1e-6,
                    "{name}: {a} / {b}"
                );
            }
        }
    }

    #[test]
    fn order_discord_counts_inversions() {
        assert_eq!(order_discord(&[1, 2, 3], &[1, 2, 3]), 0.0);
        assert_eq!(order_discord(&[1, 2, 3], &[3, 2, 1]), 1.0);
        assert!((order_discord(&[1, 2, 3], &[2, 1, 3]) - 1.0 / 3.0).abs() < 1e-6);
        // Repeated words are left out: their pairing is ambiguous.
        assert_eq!(order_discord(&[1, 1, 2], &[2, 1, 1]), 0.0);
        assert_eq!(lcs(&[1, 2, 3, 4], &[1, 3, 4, 2]), 3);
    }
}
