//! Tokenising a normalised prompt for the verification rules: words, numbers (with the
//! unit or currency attached to them) and runs of Han characters. This is not a general
//! tokenizer: it keeps exactly what the rules compare and nothing else.

use super::lexicon::{self, is_han, Unit};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Letters (and digits inside them: `ICND2`, `mp3`, `os.path`).
    Word,
    /// A run of digits, maybe with decimal or thousands separators and a suffix.
    Number,
    /// A run of Han characters; Chinese has no spaces, so rules search inside it.
    Han,
}

/// One token: where it is in the source and in the lowercased buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token {
    /// Byte range in the lowercased buffer.
    lower: (u32, u32),
    /// Byte range in the source text.
    orig: (u32, u32),
    pub kind: Kind,
    /// Hash of the lowercased text, for comparing words quickly.
    pub hash: u64,
    /// First token of a sentence (capitalisation there says nothing).
    pub sentence_start: bool,
    /// Inside double quotes or backticks.
    pub quoted: bool,
}

/// A number mentioned in the text: its normalised value and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Number {
    /// Hash of the normalised decimal text ("4,50" and "4.5" hash alike).
    pub key: u64,
    /// Whether the value is 1, which articles ("a", "un", "een", "一") often stand for.
    pub is_one: bool,
    pub unit: Unit,
}

/// A parsed prompt.
pub(super) struct Text<'a> {
    pub src: &'a str,
    lower: String,
    pub tokens: Vec<Token>,
    pub numbers: Vec<Number>,
    pub has_han: bool,
    /// Capitals do not mark names here: most words start with one, or the prompt is in
    /// German, which capitalises every noun ("Wie ändere ich mein Kennwort?").
    pub title_case: bool,
}

impl<'a> Text<'a> {
    pub fn lower(&self, t: &Token) -> &str {
        &self.lower[t.lower.0 as usize..t.lower.1 as usize]
    }

    pub fn orig(&self, t: &Token) -> &'a str {
        &self.src[t.orig.0 as usize..t.orig.1 as usize]
    }

    /// Whether a comma follows the token ("No, …").
    pub fn followed_by_comma(&self, t: &Token) -> bool {
        self.src[t.orig.1 as usize..].trim_start().starts_with(',')
    }

    /// Whether a hyphen joins the token to the next word ("non-binding").
    pub fn followed_by_hyphen(&self, t: &Token) -> bool {
        self.src[t.orig.1 as usize..].starts_with('-')
    }

    pub fn parse(src: &'a str) -> Text<'a> {
        let mut text = Text {
            src,
            lower: String::with_capacity(src.len() + 8),
            tokens: Vec::with_capacity(src.len() / 4 + 2),
            numbers: Vec::new(),
            has_han: false,
            title_case: false,
        };
        text.tokenize();
        text.find_numbers();
        let mut words = 0;
        let mut capitals = 0;
        for t in &text.tokens {
            if t.kind == Kind::Word {
                words += 1;
                if text.orig(t).chars().next().is_some_and(char::is_uppercase) {
                    capitals += 1;
                }
            }
        }
        text.title_case = (words >= 3 && capitals * 10 >= words * 8)
            || (capitals > 1 && super::lang::language(src) == Some("de"));
        text
    }

    fn push(&mut self, start: usize, end: usize, kind: Kind, sentence_start: bool, quoted: bool) {
        let lo = self.lower.len();
        // "U.S." and "US" are one word: dots go when every part is a single letter.
        let word = &self.src[start..end];
        let dotted = word.contains('.') && word.split('.').all(|p| p.chars().count() == 1);
        if word.is_ascii() && !dotted {
            self.lower.push_str(word);
            self.lower[lo..].make_ascii_lowercase();
        } else {
            for c in word.chars() {
                if dotted && c == '.' {
                    continue;
                }
                if c == '’' || c == '‘' {
                    self.lower.push('\'');
                } else {
                    self.lower.extend(c.to_lowercase());
                }
            }
        }
        self.tokens.push(Token {
            hash: hash_bytes(&self.lower.as_bytes()[lo..]),
            lower: (lo as u32, self.lower.len() as u32),
            orig: (start as u32, end as u32),
            kind,
            sentence_start,
            quoted,
        });
    }

    fn tokenize(&mut self) {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut i = 0;
        let mut sentence_start = true;
        let mut quoted = false;
        let mut quote_start = 0;
        while i < src.len() {
            let Some(c) = src[i..].chars().next() else {
                break;
            };
            if is_han(c) {
                self.has_han = true;
                let start = i;
                while let Some(c) = src[i..].chars().next().filter(|&c| is_han(c)) {
                    i += c.len_utf8();
                }
                self.push(start, i, Kind::Han, sentence_start, quoted);
                sentence_start = false;
                continue;
            }
            if c.is_ascii_digit() {
                let start = i;
                i = scan_number(bytes, i);
                // A suffix glued to the number: "3rd", "10am", "5GB", "6s".
                while let Some(c) = src[i..]
                    .chars()
                    .next()
                    .filter(|c| c.is_alphabetic() && !is_han(*c))
                {
                    i += c.len_utf8();
                }
                self.push(start, i, Kind::Number, sentence_start, quoted);
                sentence_start = false;
                continue;
            }
            if c.is_alphanumeric() {
                let start = i;
                i += c.len_utf8();
                loop {
                    // ASCII letters and digits are most of the text: step over them directly.
                    while bytes
                        .get(i)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    {
                        i += 1;
                    }
                    let Some(c) = src[i..].chars().next() else {
                        break;
                    };
                    let joins = matches!(c, '\'' | '’' | '.')
                        && src[i + c.len_utf8()..]
                            .chars()
                            .next()
                            .is_some_and(|n| n.is_alphanumeric() && !is_han(n));
                    if (c.is_alphanumeric() && !is_han(c)) || c == '_' || joins {
                        i += c.len_utf8();
                    } else {
                        break;
                    }
                }
                self.push_word(start, i, sentence_start, quoted);
                sentence_start = false;
                continue;
            }
            let was_quoted = quoted;
            match c {
                '.' | '?' | '!' | ';' | ':' | '。' | '？' | '！' | '；' => {
                    sentence_start = true
                }
                '"' | '`' => quoted = !quoted,
                '“' | '«' | '„' | '「' | '『' => quoted = true,
                '”' | '»' | '」' | '』' => quoted = false,
                _ => {}
            }
            if quoted && !was_quoted {
                quote_start = self.tokens.len();
            } else if was_quoted
                && !quoted
                && self.tokens.len() - quote_start > MAX_QUOTED_NAME_WORDS
            {
                // A quoted sentence is a citation, not a name.
                for t in &mut self.tokens[quote_start..] {
                    t.quoted = false;
                }
            }
            i += c.len_utf8();
        }
    }

    /// Pushes a word, splitting French elisions ("l'option", "n'est") and dropping the
    /// English possessive ("John's").
    fn push_word(&mut self, start: usize, end: usize, sentence_start: bool, quoted: bool) {
        let word = &self.src[start..end];
        if let Some(pos) = word.find(['\'', '’']) {
            let apostrophe = word[pos..].chars().next().map_or(1, char::len_utf8);
            let head = &word[..pos];
            let tail = &word[pos + apostrophe..];
            if lexicon::is_elision(head) {
                self.push(
                    start,
                    start + pos + apostrophe,
                    Kind::Word,
                    sentence_start,
                    quoted,
                );
                self.push(start + pos + apostrophe, end, Kind::Word, false, quoted);
                return;
            }
            if tail == "s" {
                self.push(start, start + pos, Kind::Word, sentence_start, quoted);
                return;
            }
        }
        self.push(start, end, Kind::Word, sentence_start, quoted);
    }

    /// Collects numbers: digit tokens, runs of number words, Chinese numerals.
    fn find_numbers(&mut self) {
        let mut i = 0;
        while i < self.tokens.len() {
            let t = self.tokens[i];
            match t.kind {
                Kind::Number => {
                    let (mut number, suffix_is_unit) =
                        digits_number(self.orig(&t), self.src, t.orig.0);
                    if !suffix_is_unit {
                        if let Some(next) = self.tokens.get(i + 1) {
                            number.unit = lexicon::unit_word(self.lower(next));
                        }
                    }
                    self.numbers.push(number);
                    i += 1;
                }
                Kind::Word => {
                    let mut value: u64 = 0;
                    let mut current: u64 = 0;
                    let mut j = i;
                    let mut any = false;
                    while let Some(t) = self.tokens.get(j) {
                        let Some(v) = lexicon::number_word(self.lower(t)) else {
                            break;
                        };
                        any = true;
                        match v {
                            100 => current = current.max(1) * 100,
                            v if v >= 1000 => {
                                value += current.max(1) * v;
                                current = 0;
                            }
                            // French "quatre-vingt(s)": multiplied, not added.
                            20 if (2..10).contains(&current) => current *= 20,
                            v => current += v,
                        }
                        j += 1;
                    }
                    if any {
                        value += current;
                        let unit = self
                            .tokens
                            .get(j)
                            .map_or(Unit::None, |n| lexicon::unit_word(self.lower(n)));
                        self.numbers.push(Number {
                            key: hash_u64(value),
                            is_one: value == 1,
                            unit,
                        });
                        i = j;
                    } else {
                        i += 1;
                    }
                }
                Kind::Han => {
                    let run = self.orig(&t);
                    chinese_numbers(run, &mut self.numbers);
                    i += 1;
                }
            }
        }
    }
}

/// Quoted spans up to this many words are names or literals ("What does 'foo' mean").
const MAX_QUOTED_NAME_WORDS: usize = 4;

/// End of a digit run with separators: "25,000", "4.5", "4:30".
fn scan_number(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit()
            || (matches!(b, b'.' | b',' | b':') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// FNV-1a: a stable, allocation-free key for a normalised number.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn hash_u64(mut v: u64) -> u64 {
    let mut buf = [0u8; 20];
    let mut n = buf.len();
    loop {
        n -= 1;
        buf[n] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    hash_bytes(&buf[n..])
}

/// Normalises a digit token: thousands separators dropped, "4,5" read as 4.5, leading
/// and trailing zeros dropped, "4:00" read as 4. Returns the number and whether its glued
/// suffix was a unit (otherwise the caller may look at the next word).
fn digits_number(token: &str, src: &str, start: u32) -> (Number, bool) {
    let digits_end = token
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | ':')))
        .unwrap_or(token.len());
    let (body, suffix) = token.split_at(digits_end);
    let mut buf = [0u8; 64];
    let mut n = 0;
    fn push(buf: &mut [u8; 64], b: u8, n: &mut usize) {
        if *n < buf.len() {
            buf[*n] = b;
            *n += 1;
        }
    }
    // Time of day "4:30": keep the minutes unless they are zero.
    let (body, minutes) = match body.split_once(':') {
        Some((h, m)) => (h, m.trim_start_matches('0')),
        None => (body, ""),
    };
    // Which separator, if any, is the decimal point: the last one, unless it is followed by
    // exactly three digits and is the only kind used (then it groups thousands).
    let last_sep = body.rfind(['.', ',']);
    let decimal_at = last_sep.filter(|&p| {
        let after = body.len() - p - 1;
        let sep = body.as_bytes()[p];
        let other = if sep == b'.' { b',' } else { b'.' };
        let mixed = body.as_bytes().contains(&other);
        let repeated = body.as_bytes().iter().filter(|&&b| b == sep).count() > 1;
        mixed || (after != 3 && !repeated)
    });
    let (int, frac) = match decimal_at {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, ""),
    };
    let int_digits = int
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0');
    let mut int_len = 0;
    for b in int_digits {
        push(&mut buf, b, &mut n);
        int_len += 1;
    }
    if int_len == 0 {
        push(&mut buf, b'0', &mut n);
    }
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        push(&mut buf, b'.', &mut n);
        for b in frac.bytes() {
            push(&mut buf, b, &mut n);
        }
    }
    if !minutes.is_empty() {
        push(&mut buf, b':', &mut n);
        for b in minutes.bytes() {
            push(&mut buf, b, &mut n);
        }
    }
    let is_one = &buf[..n] == b"1";
    let suffix_lower = suffix.to_ascii_lowercase();
    let mut unit = Unit::None;
    let mut suffix_is_unit = false;
    if !suffix.is_empty() && !lexicon::is_ordinal_suffix(&suffix_lower) {
        if suffix_lower == "k" {
            // "10k" is ten thousand.
            for _ in 0..3 {
                push(&mut buf, b'0', &mut n);
            }
            suffix_is_unit = true;
        } else {
            unit = lexicon::unit_word(&suffix_lower);
            suffix_is_unit = true;
            if unit == Unit::None {
                // An unknown suffix is part of the identity: "iPhone 6s" is not "6".
                push(&mut buf, b'/', &mut n);
                for b in suffix_lower.bytes() {
                    push(&mut buf, b, &mut n);
                }
            }
        }
    }
    // A currency sign or percent right next to the number.
    if let Some(c) = src[..start as usize].chars().next_back() {
        if let Some(u) = lexicon::unit_symbol(c) {
            unit = u;
        }
    }
    if let Some(c) = src[start as usize + token.len()..].chars().next() {
        if let Some(u) = lexicon::unit_symbol(c) {
            unit = u;
        }
    }
    let is_one = is_one && n == 1;
    (
        Number {
            key: hash_bytes(&buf[..n]),
            is_one,
            unit,
        },
        suffix_is_unit,
    )
}

/// Chinese numerals in a run of Han characters: "三天", "两个", "一千五百".
fn chinese_numbers(run: &str, out: &mut Vec<Number>) {
    let mut chars = run.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if lexicon::chinese_digit(c).is_none() {
            continue;
        }
        let rest = &run[i..];
        if let Some(skip) = lexicon::CHINESE_NUMBER_IDIOMS
            .iter()
            .find(|idiom| rest.starts_with(**idiom) && !rest[idiom.len()..].starts_with('钟'))
        {
            // Skip the idiom ("十分" = very, "百度" = Baidu).
            let end = i + skip.len();
            while chars.peek().is_some_and(|&(j, _)| j < end) {
                chars.next();
            }
            continue;
        }
        let mut total: u64 = 0;
        let mut section: u64 = 0;
        let mut digit: u64 = 0;
        let mut end = i + c.len_utf8();
        let apply = |c: char, total: &mut u64, section: &mut u64, digit: &mut u64| {
            match lexicon::chinese_digit(c) {
                Some(d @ 0..=9) => *digit = d,
                Some(m @ (10 | 100 | 1000)) => {
                    *section += (*digit).max(1) * m;
                    *digit = 0;
                }
                Some(m) => {
                    *total += (*section + *digit).max(1) * m;
                    *section = 0;
                    *digit = 0;
                }
                None => {}
            }
        };
        apply(c, &mut total, &mut section, &mut digit);
        while let Some(&(j, c)) = chars.peek() {
            if lexicon::chinese_digit(c).is_none() {
                break;
            }
            apply(c, &mut total, &mut section, &mut digit);
            end = j + c.len_utf8();
            chars.next();
        }
        let value = total + section + digit;
        let after = run[end..].strip_prefix('个').unwrap_or(&run[end..]);
        out.push(Number {
            key: hash_u64(value),
            is_one: value == 1,
            unit: lexicon::chinese_unit(after),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<u64> {
        Text::parse(s).numbers.iter().map(|n| n.key).collect()
    }

    #[test]
    fn numbers_normalise() {
        let same = [
            ("4,5", "4.5"),
            ("25,000", "25000"),
            ("1.000.000", "1,000,000"),
            ("4.50", "4.5"),
            ("3rd", "3"),
            ("four", "4"),
            ("vingt-cinq", "25"),
            ("quatre-vingts", "80"),
            ("twenty five", "25"),
            ("two hundred", "200"),
            ("10k", "10000"),
            ("三", "3"),
            ("一千五百", "1500"),
            ("十五", "15"),
            ("4:00", "4"),
            ("zeven", "7"),
        ];
        for (a, b) in same {
            assert_eq!(keys(a), keys(b), "{a} / {b}");
        }
        assert_ne!(keys("4:30"), keys("4"));
        assert_ne!(keys("6s"), keys("6"));
        assert!(keys("我十分喜欢").is_empty());
    }

    #[test]
    fn tokens() {
        let t = Text::parse("Comment l'ouvrir ? Why isn't John's \"Foo\" here");
        let words: Vec<&str> = t.tokens.iter().map(|x| t.lower(x)).collect();
        assert_eq!(
            words,
            ["comment", "l'", "ouvrir", "why", "isn't", "john", "foo", "here"]
        );
        assert!(t.tokens[3].sentence_start);
        assert!(t.tokens[6].quoted);
    }
}
