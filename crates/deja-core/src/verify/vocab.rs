//! A vocabulary of whole words, to tell a typo from another word: "internationaly" is no
//! word and "internationally" is the only word one letter away, so a prompt that differs
//! from another only there asks the same thing; "form" and "from" are both words, so a
//! difference between them is never a typo.
//!
//! An embedder supplies the words it knows ([`crate::Embedder::vocabulary`]); the checks
//! here are deliberately narrow, because a word taken for a typo is served as if it were
//! the other one.

use std::collections::HashSet;

/// Whole words, lowercase, by length for the nearest-word search.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    words: HashSet<String>,
    /// `by_len[n]`: the words of `n` characters.
    by_len: Vec<Vec<String>>,
}

/// Which model should read a prompt ([`Vocabulary::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// An English model (else one of every language).
    pub english: bool,
    /// Whether the prompt's script or function words said so (else it is guessed from
    /// its words).
    pub told: bool,
}

/// Shortest word a typo is looked for in, or corrected to: shorter words are too close to
/// each other ("cat" / "car" / "cap") for one letter to tell a typo.
const MIN_TYPO_LEN: usize = 4;

/// A prompt too short for its language to be told is taken for English when at most one
/// word in this many is outside the vocabulary ("How do I get a refund?": one in six;
/// "Come trasferisco soldi da PayPal al conto in banca?": five in nine).
const MOSTLY_KNOWN_OF: usize = 4;

/// Shortest pair of unknown words taken for one another's slip: both unknown, so nothing
/// says which is the word; a little longer than [`MIN_TYPO_LEN`].
const MIN_SLIP_LEN: usize = 5;

impl Vocabulary {
    /// The words of `words` made of lowercase letters (apostrophes allowed), at least two
    /// characters long; others (pieces, punctuation, numbers) are left out.
    pub fn new<I, S>(words: I) -> Vocabulary
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v = Vocabulary::default();
        for w in words {
            let w = w.as_ref();
            let ok = w.chars().count() >= 2
                && w.chars().all(|c| c.is_lowercase() || c == '\'')
                && w.chars().any(char::is_alphabetic);
            if ok && v.words.insert(w.to_string()) {
                let n = w.chars().count();
                if v.by_len.len() <= n {
                    v.by_len.resize(n + 1, Vec::new());
                }
                v.by_len[n].push(w.to_string());
            }
        }
        v
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn contains(&self, word: &str) -> bool {
        self.words.contains(word)
    }

    /// Whether a model with this vocabulary reads every word of both prompts as a word it
    /// learned: each word (lowercased; split at anything but letters and digits) is in the
    /// vocabulary, is a single Latin letter, is a number, or is a typo of a word of the
    /// other prompt. A French or Indonesian verb the vocabulary only spells in pieces
    /// ("augmenter" / "baisser", "mengaktifkan" / "menonaktifkan") is not read: a model
    /// trained on English would judge the difference blind.
    ///
    /// In two English prompts (by `english`), a word the vocabulary spells in pieces is
    /// read too when the other prompt accounts for it (`accounts_for`): the same word
    /// ("refund" / "refund": the same pieces on both sides hide no difference), a slip of
    /// it ("refund" / "refnud"), and so on.
    pub fn reads_both(&self, a: &str, b: &str) -> bool {
        let (wa, wb) = (words(a), words(b));
        let english = self.english(a, &wa) && self.english(b, &wb);
        let read = |own: &[String], i: usize, other: &[String]| {
            let w = &own[i];
            self.contains(w)
                || (w.len() == 1 && w.chars().all(|c| c.is_ascii_alphabetic()))
                || w.chars().all(|c| c.is_ascii_digit())
                || other.iter().any(|o| self.is_typo_of(w, o))
                || (english
                    && w.chars().all(|c| c.is_ascii_alphabetic())
                    && (self.accounts_for(w, other) || joined_with_neighbour(own, i, other)))
        };
        (0..wa.len()).all(|i| read(&wa, i, &wb)) && (0..wb.len()).all(|i| read(&wb, i, &wa))
    }

    /// Whether an English model should read `text` ([`Vocabulary::route`]).
    pub fn is_english(&self, text: &str) -> bool {
        self.route(text).english
    }

    /// Which model should read `text`, an English one (with this vocabulary) or one of
    /// every language, and whether its language was told or only guessed:
    ///
    /// - told English by its function words ([`super::lang::language`]): English, told;
    /// - in another script (Chinese, Cyrillic, Arabic …): not English, told;
    /// - told another language in Latin letters: not English, told, unless every word
    ///   (two letters or more, not a number) is a word of this vocabulary — the function
    ///   words of languages overlap ("He was born in Carter County" counts as German, "as
    ///   soon as possible" as Portuguese) — then English, guessed;
    /// - too short to be told: English, guessed, with one English function word and no
    ///   other language as many ("How good is BML Munjal University?"), or with at most
    ///   one word in [`MOSTLY_KNOWN_OF`] outside the vocabulary, not counting capitalised
    ///   words after the first (names: "Waqar Younis back as Pakistan coach"); else not
    ///   English, guessed ("como se hace una tortilla de patatas", "wachtwoord vergeten").
    ///
    /// What decides which embedder embeds a prompt when the other languages have their
    /// own; a guessed prompt is looked for with the other one too.
    pub fn route(&self, text: &str) -> Route {
        use super::lang;
        let told = |english| Route {
            english,
            told: true,
        };
        let guessed = |english| Route {
            english,
            told: false,
        };
        let reading = lang::read(text);
        let latin = reading.latin;
        match reading.language {
            Some("en") => told(true),
            Some(_) if !latin => told(false),
            Some(_) => {
                let (counted, unknown) = self.unknown_words(text, false);
                if counted > 0 && unknown == 0 {
                    guessed(true)
                } else {
                    told(false)
                }
            }
            None if !latin => told(false),
            None => {
                let (counted, unknown) = self.unknown_words(text, true);
                guessed(reading.leans_english || unknown * MOSTLY_KNOWN_OF <= counted)
            }
        }
    }

    /// How many words of `text` count (two letters or more, not a number) and how many of
    /// those are outside the vocabulary; with `names`, capitalised words after the first
    /// are not counted.
    fn unknown_words(&self, text: &str, names: bool) -> (usize, usize) {
        let (mut counted, mut unknown) = (0usize, 0usize);
        let mut first = true;
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let name = names && !first && w.chars().next().is_some_and(char::is_uppercase);
            first = false;
            if name || w.chars().count() < 2 || w.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            counted += 1;
            unknown += usize::from(!self.contains(&w.to_lowercase()));
        }
        (counted, unknown)
    }

    /// Whether `text` (its `words`) is English: told so by its function words
    /// ([`super::lang::language`]), or, too short for that, with at most one word in
    /// [`MOSTLY_KNOWN_OF`] outside the vocabulary.
    fn english(&self, text: &str, words: &[String]) -> bool {
        match super::lang::language(text) {
            Some(l) => l == "en",
            None => {
                let unknown = words
                    .iter()
                    .filter(|x| {
                        x.chars().count() > 1
                            && !x.chars().all(|c| c.is_ascii_digit())
                            && !self.contains(x)
                    })
                    .count();
                unknown * MOSTLY_KNOWN_OF <= words.len()
            }
        }
    }

    /// Whether `part`, a word or an unseen part of one prompt (any case, hyphens and
    /// apostrophes aside), is accounted for by the other prompt's `words`: the same word,
    /// a slip or typo of one of them, two neighbouring ones written as one ("wifi" /
    /// "Wi-Fi", "whats" / "what's"), or chat shorthand ("pls", "thx").
    fn accounts_for(&self, part: &str, words: &[String]) -> bool {
        let p: String = part
            .chars()
            .filter(|c| !matches!(c, '-' | '\'' | '\u{2019}'))
            .flat_map(char::to_lowercase)
            .collect();
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric())
            && (words.contains(&p)
                || CHAT_SHORTHAND.contains(&p.as_str())
                || words
                    .windows(2)
                    .any(|n| n[0].len() + n[1].len() == p.len() && p == n.concat())
                || words
                    .iter()
                    .any(|o| self.is_typo_of(&p, o) || self.is_slip_of(&p, o)))
    }

    /// Whether the parts one prompt's embedding did not see and the other's did (its
    /// [`crate::Embedder::unseen`] parts, `a_unseen` and `b_unseen`) are all slips of a
    /// word of the other prompt ("how do i get a refnud" / "How do I get a refund?"): then
    /// a reader of word pieces (the pair model) sees what differs, and judges it.
    pub fn unseen_are_slips(
        &self,
        a: &str,
        a_unseen: &[String],
        b: &str,
        b_unseen: &[String],
    ) -> bool {
        let (wa, wb) = (words(a), words(b));
        let only = |mine: &[String], theirs: &[String], other: &[String]| {
            mine.iter()
                .filter(|p| !theirs.contains(p))
                .all(|p| self.accounts_for(p, other))
        };
        only(a_unseen, b_unseen, &wb) && only(b_unseen, a_unseen, &wa)
    }

    /// Whether two words the vocabulary does not hold (it spells them in pieces) are one
    /// slip apart: ASCII letters, at least [`MIN_SLIP_LEN`] long, neither starting or
    /// ending the other, one edit apart (two for words of 8 letters or more; a swap of
    /// neighbours is one edit). Neither is known, so neither can be the nearer word to
    /// something else, as [`Vocabulary::is_typo_of`] requires.
    pub fn is_slip_of(&self, typo: &str, word: &str) -> bool {
        let ascii = |w: &str| w.chars().all(|c| c.is_ascii_alphabetic());
        let (nt, nw) = (typo.len(), word.len());
        if typo == word
            || nt < MIN_SLIP_LEN
            || nw < MIN_SLIP_LEN
            || !ascii(typo)
            || !ascii(word)
            || self.contains(typo)
            || self.contains(word)
        {
            return false;
        }
        let (short, long) = if nt <= nw { (typo, word) } else { (word, typo) };
        if long.starts_with(short) || long.ends_with(short) {
            return false;
        }
        distance(typo, word, if nt.min(nw) >= 8 { 2 } else { 1 }).is_some()
    }

    /// Whether `typo` is a misspelling of `word`: `typo` is no word of the vocabulary,
    /// `word` is, both are letters only and at least [`MIN_TYPO_LEN`] long, neither starts
    /// or ends the other ("subscribe" / "unsubscribe" is another word, not a typo), they
    /// are one edit apart (two for words of 8 letters or more; a swap of neighbours is one
    /// edit), and no other word of the vocabulary is as close to `typo`.
    pub fn is_typo_of(&self, typo: &str, word: &str) -> bool {
        let letters = |w: &str| w.chars().all(char::is_alphabetic);
        let (nt, nw) = (typo.chars().count(), word.chars().count());
        if nt < MIN_TYPO_LEN
            || nw < MIN_TYPO_LEN
            || !letters(typo)
            || !letters(word)
            || self.contains(typo)
            || !self.contains(word)
        {
            return false;
        }
        let (short, long) = if nt <= nw { (typo, word) } else { (word, typo) };
        if long.starts_with(short) || long.ends_with(short) {
            return false;
        }
        let lo = nt.saturating_sub(1);
        let hi = (nt + 1).min(self.by_len.len().saturating_sub(1));
        if slip(typo, word) {
            // The commonest typos (a doubled letter written once or twice, two neighbours
            // swapped): the correction only needs to be the one word that slip reaches.
            return (lo..=hi).all(|n| {
                self.by_len
                    .get(n)
                    .into_iter()
                    .flatten()
                    .all(|other| other == word || !slip(typo, other))
            });
        }
        let budget = if nw >= 8 { 2 } else { 1 };
        let Some(d) = distance(typo, word, budget) else {
            return false;
        };
        // The correction must be the only word that close.
        let lo = nt.saturating_sub(d);
        let hi = (nt + d).min(self.by_len.len().saturating_sub(1));
        for n in lo..=hi {
            for other in self.by_len.get(n).into_iter().flatten() {
                if other != word && distance(typo, other, d).is_some() {
                    return false;
                }
            }
        }
        true
    }
}

/// Chat shorthand a reader of word pieces learned as such (the pair model's training
/// writes prompts in it): not words of the vocabulary, not typos of anything.
const CHAT_SHORTHAND: &[&str] = &[
    "u", "ur", "pls", "plz", "thx", "thnx", "btw", "idk", "bc", "tmrw", "msg", "ppl", "asap",
    "tho", "rly", "smth", "tonite", "wat", "r", "y",
];

/// Whether `own[i]` and a neighbour are one word of `other` written in two ("what's" read
/// as "what" and "s" / "whats"; "wi-fi" / "wifi").
fn joined_with_neighbour(own: &[String], i: usize, other: &[String]) -> bool {
    let joined = |x: &String, y: &String| {
        other.iter().any(|o| {
            o.len() == x.len() + y.len() && o.starts_with(x.as_str()) && o.ends_with(y.as_str())
        })
    };
    (i + 1 < own.len() && joined(&own[i], &own[i + 1])) || (i > 0 && joined(&own[i - 1], &own[i]))
}

/// The words of `t`, lowercase (split at anything but letters and digits).
fn words(t: &str) -> Vec<String> {
    t.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `typo` is `word` with one slip of the fingers: a doubled letter written once
/// ("adress"), a letter doubled ("adresss"), or two neighbours swapped ("recieve").
fn slip(typo: &str, word: &str) -> bool {
    let t: Vec<char> = typo.chars().collect();
    let w: Vec<char> = word.chars().collect();
    let (short, long) = if t.len() <= w.len() {
        (&t, &w)
    } else {
        (&w, &t)
    };
    if long.len() == short.len() + 1 {
        // `long` has one letter more, doubling its neighbour.
        return (0..long.len()).any(|i| {
            let doubled =
                (i > 0 && long[i] == long[i - 1]) || (i + 1 < long.len() && long[i] == long[i + 1]);
            doubled && long[..i] == short[..i] && long[i + 1..] == short[i..]
        });
    }
    if t.len() == w.len() {
        let diff: Vec<usize> = (0..t.len()).filter(|&i| t[i] != w[i]).collect();
        return diff.len() == 2
            && diff[1] == diff[0] + 1
            && t[diff[0]] == w[diff[1]]
            && t[diff[1]] == w[diff[0]];
    }
    false
}

/// The optimal-string-alignment distance (insertions, deletions, substitutions and swaps
/// of neighbours) between `a` and `b`, if it is at most `max`.
fn distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        let mut row_min = usize::MAX;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
    }
    let v = d[a.len() * w + b.len()];
    (v <= max).then_some(v)
}

#[cfg(test)]
mod reads_tests {
    use super::*;

    #[test]
    fn a_vocabulary_reads_its_own_words_and_their_typos_only() {
        let v = Vocabulary::new([
            "how",
            "do",
            "you",
            "ship",
            "internationally",
            "comment",
            "le",
            "volume",
            "reset",
            "my",
            "password",
        ]);
        assert!(v.reads_both("do you ship internationally?", "do u ship internationaly"));
        assert!(v.reads_both("How do I reset my password 2?", "reset my password"));
        assert!(!v.reads_both(
            "Comment augmenter le volume ?",
            "Comment baisser le volume ?"
        ));
        assert!(!v.reads_both("如何重置我的密码", "怎么重置我的密码"));
    }

    #[test]
    fn english_words_spelled_in_pieces_are_read_when_both_prompts_have_them_or_a_slip() {
        let v = Vocabulary::new(["how", "do", "get", "a", "my", "the", "is", "where", "order"]);
        // "refund" is no word of the vocabulary (WordPiece spells it "ref ##und").
        assert!(v.reads_both("How do I get a refund?", "how do i get my refund"));
        assert!(v.reads_both("How do I get a refund?", "how do i get a refnud"));
        // A word only one prompt has, unrelated to the other's: a blind difference.
        assert!(!v.reads_both("Is Zyrtec safe?", "Is Zantac safe?"));
        assert!(!v.reads_both("How do I get a refund?", "How do I get a rebate?"));
        // Another language: pieces of the same word are not trusted to mean the same.
        assert!(!v.reads_both(
            "Comment annuler mon abonnement ?",
            "Comment je peux annuler mon abonnement ?"
        ));
        // Too few function words to tell the language: not trusted either.
        assert!(!v.reads_both(
            "Come trasferisco soldi da PayPal al conto in banca?",
            "Come trasferisco soldi dal conto in banca a PayPal?"
        ));
    }

    #[test]
    fn unseen_parts_that_are_slips_of_the_other_prompts_words() {
        let v = Vocabulary::new([
            "how", "do", "get", "a", "is", "safe", "you", "know", "why", "my", "arrived", "yet",
            "please", "tell", "me", "to", "fix", "thanks",
        ]);
        let s = |x: &[&str]| x.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(v.unseen_are_slips(
            "How do I get a refund?",
            &s(&["refund"]),
            "how do i get a refnud",
            &s(&["refnud"]),
        ));
        assert!(v.unseen_are_slips("refund", &s(&["refund"]), "refund", &s(&["refund"])));
        assert!(!v.unseen_are_slips(
            "Is Zyrtec safe?",
            &s(&["Zyrtec"]),
            "Is Zantac safe?",
            &s(&["Zantac"]),
        ));
        // What no piece reads (an unknown token) is never a slip.
        assert!(!v.unseen_are_slips("猫粮", &s(&["猫"]), "狗粮", &s(&["狗"])));
        // Too short to tell a slip from another word.
        assert!(!v.is_slip_of("abcd", "abdc"));
        assert!(v.is_slip_of("refnud", "refund"));
        assert!(!v.is_slip_of("refund", "refunds"));
        // Shorthand, a word written as two, an apostrophe left out.
        assert!(v.unseen_are_slips(
            "Please tell me how to fix my Wi-Fi, thanks",
            &s(&["Wi-Fi"]),
            "pls tell me how to fix my wifi thx",
            &s(&["pls", "wifi", "thx"]),
        ));
        assert!(v.reads_both(
            "Do you know why my refund hasn't arrived yet?",
            "do u know y my refund hasnt arrived yet"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary::new([
            "internationally",
            "internationals",
            "international",
            "receive",
            "address",
            "subscribe",
            "form",
            "from",
            "the",
            "ten",
            "account",
            "accounts",
            "password",
            "##ing",
            "Paris",
            "42",
            "ship",
            "shop",
        ])
    }

    #[test]
    fn english_prompts_are_told_from_the_others() {
        let v = Vocabulary::new([
            "how",
            "good",
            "is",
            "university",
            "pizza",
            "recipe",
            "order",
            "two",
            "from",
            "reset",
            "my",
            "password",
            "pain",
            "au",
            "he",
            "was",
            "born",
            "in",
            "carter",
            "county",
            "back",
            "as",
        ]);
        for (text, english) in [
            ("How do I reset my password?", true),
            ("pizza recipe", true),
            // Names and rare words, with an English function word.
            ("How good is BML Munjal University?", true),
            ("order two pizzas from dominoes", true),
            ("", true),
            ("42 + 17", true),
            ("como se hace una tortilla de patatas jugoza", false),
            ("xq se me descarga tan rapido la bateria del movil", false),
            ("Comment réinitialiser mon mot de passe ?", false),
            ("Hoe kan ik mijn wachtwoord wijzigen?", false),
            ("Как сбросить пароль?", false),
            ("我的订单在哪里？", false),
            ("비밀번호를 어떻게 바꾸나요?", false),
            // Too short for its language to be told: by how many words are unknown.
            ("wachtwoord vergeten", false),
            ("pizza au levain", false),
            // Names do not count; a sentence whose every word is English is English.
            ("Waqar Younis back as Munjal pizza", true),
            ("He was born in Carter County", true),
        ] {
            assert_eq!(v.is_english(text), english, "{text}");
        }
        let route = |english, told| Route { english, told };
        assert_eq!(v.route("How do I reset my password?"), route(true, true));
        assert_eq!(v.route("Как сбросить пароль?"), route(false, true));
        assert_eq!(
            v.route("Hoe kan ik mijn wachtwoord wijzigen?"),
            route(false, true)
        );
        assert_eq!(v.route("pizza recipe"), route(true, false));
        assert_eq!(v.route("He was born in Carter County"), route(true, false));
        assert_eq!(v.route("wachtwoord vergeten"), route(false, false));
    }

    #[test]
    fn distances() {
        assert_eq!(
            distance("recieve", "receive", 2),
            Some(1),
            "a swap is one edit"
        );
        assert_eq!(distance("adress", "address", 2), Some(1));
        assert_eq!(distance("kitten", "sitting", 3), Some(3));
        assert_eq!(distance("kitten", "sitting", 2), None);
        assert_eq!(distance("same", "same", 0), Some(0));
    }

    #[test]
    fn slips() {
        for (t, w) in [
            ("adress", "address"),
            ("addresss", "address"),
            ("recieve", "receive"),
            ("internationaly", "internationally"),
        ] {
            assert!(slip(t, w), "{t} / {w}");
        }
        for (t, w) in [
            ("adres", "address"),
            ("internationals", "internationally"),
            ("ab", "ab"),
        ] {
            assert!(!slip(t, w), "{t} / {w}");
        }
    }

    #[test]
    fn typos_are_unknown_words_with_one_close_known_word() {
        let v = vocab();
        assert!(!v.contains("##ing") && !v.contains("paris") && !v.contains("42"));
        for (typo, word) in [
            ("internationaly", "internationally"),
            ("recieve", "receive"),
            ("adress", "address"),
            ("pasword", "password"),
            ("passwrod", "password"),
        ] {
            assert!(v.is_typo_of(typo, word), "{typo} / {word}");
        }
        for (typo, word) in [
            // Both are words.
            ("form", "from"),
            ("ship", "shop"),
            // Too short to tell.
            ("teh", "the"),
            // Another word, not a typo: one starts or ends the other.
            ("unsubscribe", "subscribe"),
            ("accountz", "account"),
            // Too far.
            ("adrs", "address"),
            ("intrnatnaly", "internationally"),
            // Not a word of the vocabulary.
            ("recieve", "recieved"),
            // Digits are numbers, not typos.
            ("pass1word", "password"),
        ] {
            assert!(!v.is_typo_of(typo, word), "{typo} / {word}");
        }
        // Ambiguous: two words one edit away.
        let v = Vocabulary::new(["cart", "card"]);
        assert!(!v.is_typo_of("carx", "cart"));
    }
}
