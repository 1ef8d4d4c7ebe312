//! The language a prompt is written in, when it is plain: by its script (Chinese,
//! Japanese, Korean, Cyrillic, Arabic, Devanagari, Thai, Greek, Hebrew), and for the Latin
//! script by its function words (English, French, Dutch, German, Spanish, Italian,
//! Portuguese, Polish, Turkish, Indonesian, Swedish).
//!
//! An answer cached for a prompt in one language is in that language: a multilingual
//! embedder puts "How do I reset my password?" and "Comment réinitialiser mon mot de
//! passe ?" side by side (cosine 0.9), yet the French user wants a French answer. Two
//! prompts whose languages are both plain and differ are never the same request. A prompt
//! too short or too mixed to tell is not judged.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Share of a prompt's letters a script must hold to name its language.
const SCRIPT_SHARE: f32 = 0.6;

/// Function words of each language. A Latin-script prompt is in a language when at least
/// two of its words are that language's alone (words of one letter, and words several
/// lists share, do not count) and at least twice as many as any other language's.
const WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "is", "are", "my", "your", "how", "what", "where", "when", "why", "which",
            "who", "can", "could", "should", "would", "do", "does", "did", "i", "you", "it", "to",
            "of", "and", "with", "for", "this", "that", "there", "have", "has", "please", "from",
            "about", "an", "be", "will", "me", "our", "not", "at",
        ],
    ),
    (
        "fr",
        &[
            "le", "la", "les", "des", "du", "un", "une", "est", "et", "je", "tu", "vous", "nous",
            "mon", "ma", "mes", "ton", "votre", "comment", "quel", "quelle", "pourquoi", "où",
            "ou", "qui", "que", "quoi", "pour", "avec", "dans", "sur", "pas", "ne", "ce", "cette",
            "il", "elle", "sont", "puis", "au", "aux", "faire", "peux", "suis",
        ],
    ),
    (
        "nl",
        &[
            "de", "het", "een", "is", "en", "ik", "jij", "je", "u", "wij", "mijn", "jouw", "uw",
            "hoe", "wat", "waar", "wanneer", "waarom", "welke", "wie", "kan", "kun", "kunt", "met",
            "voor", "van", "niet", "geen", "op", "dit", "dat", "er", "zijn", "wordt", "worden",
            "mag", "moet", "naar", "ook", "bij", "om", "te",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "ein", "eine", "ist", "und", "ich", "du", "sie", "wir", "mein",
            "meine", "dein", "ihr", "wie", "was", "wo", "wann", "warum", "welche", "wer", "kann",
            "können", "mit", "für", "von", "nicht", "kein", "auf", "dem", "den", "zu", "im", "es",
            "bei", "sind", "wird", "man", "auch", "oder",
        ],
    ),
    (
        "es",
        &[
            "el", "la", "los", "las", "un", "una", "es", "y", "yo", "tú", "usted", "mi", "mis",
            "tu", "cómo", "como", "qué", "que", "dónde", "donde", "cuándo", "por", "para", "con",
            "en", "no", "del", "al", "se", "puedo", "puede", "está", "esta", "son", "hay", "lo",
            "cuál", "cual", "mí", "muy", "pero",
        ],
    ),
    (
        "it",
        &[
            "il", "lo", "la", "gli", "le", "un", "una", "è", "e", "io", "tu", "mio", "mia", "miei",
            "come", "cosa", "che", "dove", "quando", "perché", "quale", "chi", "per", "con", "non",
            "del", "della", "di", "da", "nel", "sono", "posso", "può", "si", "ci", "questo",
            "questa", "anche", "ho",
        ],
    ),
    (
        "pt",
        &[
            "o", "a", "os", "as", "um", "uma", "é", "e", "eu", "você", "meu", "minha", "seu",
            "sua", "como", "que", "onde", "quando", "por", "porque", "qual", "quem", "para", "com",
            "não", "do", "da", "dos", "das", "no", "na", "em", "posso", "pode", "está", "são",
            "isso", "isto", "mais", "também",
        ],
    ),
    (
        "pl",
        &[
            "jest", "nie", "się", "jak", "co", "gdzie", "kiedy", "dlaczego", "który", "która",
            "mój", "moja", "moje", "mam", "czy", "dla", "na", "do", "i", "w", "z", "że", "to",
            "ten", "ta", "można", "jestem",
        ],
    ),
    (
        "tr",
        &[
            "bir", "ve", "bu", "ne", "nasıl", "nerede", "neden", "ne zaman", "için", "ile",
            "değil", "mı", "mu", "mü", "benim", "ben", "sen", "var", "yok", "çok", "olarak",
            "gibi",
        ],
    ),
    (
        "id",
        &[
            "yang",
            "dan",
            "di",
            "ke",
            "dari",
            "ini",
            "itu",
            "saya",
            "aku",
            "kamu",
            "anda",
            "bagaimana",
            "apa",
            "dimana",
            "kapan",
            "mengapa",
            "kenapa",
            "tidak",
            "untuk",
            "dengan",
            "bisa",
            "ada",
            "akan",
            "sudah",
            "cara",
        ],
    ),
    (
        "sv",
        &[
            "och", "är", "jag", "du", "det", "att", "en", "ett", "hur", "vad", "var", "när",
            "varför", "min", "mitt", "mina", "med", "för", "inte", "på", "av", "kan", "som",
            "till",
        ],
    ),
];

/// Each word of [`WORDS`] that tells its language, with that language's index: words of
/// one letter, and words several lists share ("de", "is", "en"), tell nothing.
static TELLING: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    let mut lists: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for (i, (_, words)) in WORDS.iter().enumerate() {
        for &w in *words {
            let langs = lists.entry(w).or_default();
            if langs.last() != Some(&i) {
                langs.push(i);
            }
        }
    }
    lists
        .into_iter()
        .filter(|(w, langs)| w.chars().nth(1).is_some() && langs.len() == 1)
        .map(|(w, langs)| (w, langs[0]))
        .collect()
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Han,
    Kana,
    Hangul,
    Cyrillic,
    Arabic,
    Devanagari,
    Thai,
    Greek,
    Hebrew,
    Other,
}

fn script(c: char) -> Script {
    match c as u32 {
        0x41..=0x5a | 0x61..=0x7a | 0xc0..=0x24f | 0x1e00..=0x1eff => Script::Latin,
        0x3040..=0x30ff | 0x31f0..=0x31ff | 0xff66..=0xff9f => Script::Kana,
        0x4e00..=0x9fff | 0x3400..=0x4dbf | 0xf900..=0xfaff | 0x20000..=0x2ffff => Script::Han,
        0xac00..=0xd7af | 0x1100..=0x11ff | 0x3130..=0x318f => Script::Hangul,
        0x400..=0x52f => Script::Cyrillic,
        0x600..=0x6ff | 0x750..=0x77f | 0xfb50..=0xfdff | 0xfe70..=0xfeff => Script::Arabic,
        0x900..=0x97f => Script::Devanagari,
        0xe00..=0xe7f => Script::Thai,
        0x370..=0x3ff | 0x1f00..=0x1fff => Script::Greek,
        0x590..=0x5ff => Script::Hebrew,
        _ => Script::Other,
    }
}

/// What can be told of a prompt's language: its script, and the language itself when
/// it is plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    script: Script,
    language: Option<&'static str>,
}

/// What one pass over a text tells of its language ([`read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Its language, when plain ([`language`]).
    pub language: Option<&'static str>,
    /// Most of its letters are Latin (or it has none).
    pub latin: bool,
    /// In Latin letters, with at least one English function word and more of them than of
    /// any other language's: "How good is BML Munjal University?" (too few for
    /// [`language`] to tell, which wants two, and twice any other's).
    pub leans_english: bool,
}

/// The script and function words of `text`, read once.
pub fn read(text: &str) -> Reading {
    let (written, latin, telling) = scan(text);
    let leans_english = telling.is_some_and(|counts| {
        let en = WORDS
            .iter()
            .position(|(l, _)| *l == "en")
            .map_or(0, |i| counts[i]);
        en > 0 && counts.iter().filter(|&&c| c >= en).count() == 1
    });
    Reading {
        language: written.and_then(|w| w.language),
        latin,
        leans_english,
    }
}

fn written(text: &str) -> Option<Written> {
    scan(text).0
}

/// `text`'s script and plain language, whether most of its letters are Latin (or it has
/// none), and, in Latin letters, how many telling words of each language it has.
fn scan(text: &str) -> (Option<Written>, bool, Option<[usize; WORDS.len()]>) {
    let mut counts = [0usize; 11];
    let mut letters = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        counts[script(c) as usize] += 1;
    }
    if letters == 0 {
        return (None, true, None);
    }
    let share = |s: Script| counts[s as usize] as f32 / letters as f32;
    let latin = share(Script::Latin) >= SCRIPT_SHARE;
    let plain = |script, language| (Some(Written { script, language }), latin, None);
    // Japanese mixes kana and kanji: any kana, with Han and kana together dominant.
    let cjk = counts[Script::Han as usize] + counts[Script::Kana as usize];
    if counts[Script::Kana as usize] > 0 && cjk as f32 / letters as f32 >= SCRIPT_SHARE {
        return plain(Script::Kana, Some("ja"));
    }
    let by_script = [
        (Script::Han, "zh"),
        (Script::Hangul, "ko"),
        (Script::Arabic, "ar"),
        (Script::Devanagari, "hi"),
        (Script::Thai, "th"),
        (Script::Greek, "el"),
        (Script::Hebrew, "he"),
    ];
    for (s, code) in by_script {
        if share(s) >= SCRIPT_SHARE {
            return plain(s, Some(code));
        }
    }
    if share(Script::Cyrillic) >= SCRIPT_SHARE {
        // Ukrainian has letters Russian lacks, and the reverse; many prompts have neither.
        let uk = text
            .chars()
            .any(|c| matches!(c, 'і' | 'ї' | 'є' | 'ґ' | 'І' | 'Ї' | 'Є' | 'Ґ'));
        let ru = text
            .chars()
            .any(|c| matches!(c, 'ы' | 'э' | 'ъ' | 'ё' | 'Ы' | 'Э' | 'Ъ' | 'Ё'));
        let language = match (uk, ru) {
            (true, false) => Some("uk"),
            (false, true) => Some("ru"),
            _ => None,
        };
        return plain(Script::Cyrillic, language);
    }
    if !latin {
        return (None, false, None);
    }
    let counts = telling(text);
    // The first language with the most words, and the most any other has.
    let top = (0..counts.len()).fold(0, |t, i| if counts[i] > counts[t] { i } else { t });
    let second = (0..counts.len())
        .filter(|&i| i != top)
        .map(|i| counts[i])
        .max()
        .unwrap_or(0);
    let n = counts[top];
    let language = (n >= 2 && n >= 2 * second).then_some(WORDS[top].0);
    (
        Some(Written {
            script: Script::Latin,
            language,
        }),
        true,
        Some(counts),
    )
}

/// `text` without what it quotes ("What does 'je ne sais quoi' mean?" is English): the
/// spans between `"…"`, `“…”`, `«…»`, `„…“`, and `'…'` opened at the start of a word.
fn unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing: Option<char> = None;
    let mut prev = ' ';
    for c in text.chars() {
        match closing {
            Some(close) if c == close => closing = None,
            Some(_) => {}
            None => {
                closing = match c {
                    '"' => Some('"'),
                    '“' => Some('”'),
                    '«' => Some('»'),
                    '„' => Some('“'),
                    '\'' if !prev.is_alphanumeric() => Some('\''),
                    _ => None,
                };
                if closing.is_none() {
                    out.push(c);
                } else {
                    out.push(' ');
                }
            }
        }
        prev = c;
    }
    out
}

/// The language of `text` when it is plain (see the module), as an ISO 639-1 code.
pub fn language(text: &str) -> Option<&'static str> {
    written(text).and_then(|w| w.language)
}

/// How many of each language's telling words `text` has (outside quotes), by [`WORDS`]'
/// order.
fn telling(text: &str) -> [usize; WORDS.len()] {
    let mut counts = [0usize; WORDS.len()];
    for w in unquoted(text)
        .split(|c: char| !c.is_alphabetic() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        if let Some(&i) = TELLING.get(w.to_lowercase().as_str()) {
            counts[i] += 1;
        }
    }
    counts
}

/// Whether the two prompts are plainly written in different languages: in different
/// scripts (each holding most of its prompt's letters), or both plain and not the same.
pub fn differ(a: &str, b: &str) -> bool {
    match (written(a), written(b)) {
        (Some(x), Some(y)) if x.script != y.script => true,
        (Some(x), Some(y)) => matches!((x.language, y.language), (Some(p), Some(q)) if p != q),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prompts_get_their_language() {
        for (text, lang) in [
            ("How do I reset my password?", Some("en")),
            ("Comment réinitialiser mon mot de passe ?", Some("fr")),
            ("ou est ma commande", Some("fr")),
            ("Hoe kan ik mijn wachtwoord wijzigen?", Some("nl")),
            ("Wie kann ich mein Passwort ändern?", Some("de")),
            ("¿Cómo cambio mi contraseña?", Some("es")),
            ("Come posso cambiare la mia password?", Some("it")),
            ("Como eu troco minha senha?", Some("pt")),
            ("我的订单在哪里？", Some("zh")),
            ("アカウントを削除するには？", Some("ja")),
            ("確定申告のやり方がわかりません", Some("ja")),
            ("비밀번호를 어떻게 바꾸나요?", Some("ko")),
            ("Как сбросить пароль?", None),
            ("Как сбросить пароль моей учётной записи?", Some("ru")),
            ("Як змінити пароль від свого акаунта?", Some("uk")),
            ("أين طلبي؟", Some("ar")),
            ("pizza recipe", None),
            ("Python CSV pandas", None),
            ("", None),
            ("12345", None),
        ] {
            assert_eq!(language(text), lang, "{text}");
        }
    }

    #[test]
    fn only_two_plain_and_different_languages_differ() {
        assert!(differ(
            "How do I reset my password?",
            "Comment réinitialiser mon mot de passe ?"
        ));
        assert!(differ("Where is my order?", "我的订单在哪里？"));
        assert!(differ("如何删除账户？", "アカウントを削除するには？"));
        assert!(differ(
            "¿Cómo cambio mi contraseña?",
            "Como eu troco minha senha?"
        ));
        assert!(!differ("How do I reset my password?", "how 2 reset pw"));
        assert!(!differ("Où est ma commande ?", "ou est ma comande"));
        assert!(!differ(
            "What does 'je ne sais quoi' mean?",
            "What is the meaning of « je ne sais quoi » please?"
        ));
        assert!(!differ(
            "Python で CSV を読む方法",
            "How to read a CSV in Python"
        ));
        assert!(differ("pizza recipe", "披萨食谱"));
        assert!(!differ(
            "Как сбросить пароль?",
            "Как сбросить пароль моей учётной записи?"
        ));
        // "a" is Portuguese too, "is" Dutch too: they do not count.
        assert!(!differ(
            "A man is playing a guitar.",
            "A man is playing the guitar."
        ));
        assert!(!differ(
            "A man plays a flute.",
            "a woman is slicing an onion"
        ));
        assert!(differ("Как сбросить пароль?", "How to reset a password?"));
    }
}
