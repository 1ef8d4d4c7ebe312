//! Time-sensitive prompts: questions whose right answer depends on when they are asked,
//! in English, French, Chinese and Dutch, and in their plainest words ("today",
//! "yesterday", "tomorrow", "now", "currently", "this week", "latest news") in German,
//! Spanish, Italian, Portuguese, Polish, Swedish/Danish/Norwegian, Turkish, Indonesian,
//! Vietnamese, Russian, Greek, Hebrew, Arabic, Hindi, Japanese and Korean. One case-insensitive regex finds every time
//! phrase in a single scan; explicit dates are only looked for when the text has a digit.
//!
//! Decisions (measured on the dev pairs; see `dev_pairs_flag_rates` in `super::tests`):
//!
//! - Latin-script words match on word boundaries checked with Unicode letters, so "now"
//!   does not match "know", "snow" or "nowhere", and "nu" does not match "menu".
//! - Words that are ambiguous alone only count with a noun that makes them about the
//!   present: "current" needs e.g. "price", "version", "president" (optionally one word
//!   between: "current exchange rate"), so "the current in a wire" and "current account"
//!   are not time-sensitive; "recent" likewise ("most recent" counts alone); "live" needs
//!   "score", "stream", "updates" …; "breaking" needs "news"; French "dernier/dernière"
//!   and Dutch "laatste" need "nouvelles", "version", "prix" / "nieuws", "versie", "prijs"
//!   (so "le dernier roi de France" is not). "latest" and "newest" always count.
//! - "now" (and Dutch "nu", French "maintenant") is mostly narrative in real prompts ("I
//!   made a transfer and now it is pending", "what should I do now?", "X, now known as Y":
//!   about 1,200 of the English dev prompts contain "now", few of them about the present).
//!   It counts only when it ends a sentence and does not follow "do", "from", "until" …
//!   ("How is Venezuela doing now?", "Hoe laat is het nu?"); "right now", "as of now",
//!   "is now a good time" and "what time is it" always count.
//! - "currently" (and "actuellement", "momenteel") does not count after a first-person
//!   subject ("I am currently working at …" describes the asker, not the world).
//! - French "hier" (yesterday) is Dutch for "here". It counts when the text has more
//!   French than Dutch function words ("le", "la", "est", "qui" … vs "het", "een", "is",
//!   "van" …), or when written "hier soir" / "hier matin".
//! - Chinese has no word boundaries; the words are matched as substrings. "最近" can also
//!   mean "nearest"; it is accepted as time-sensitive (its usual sense in questions).
//! - A time word inside a quoted phrase of two or more words ("Translate 'see you
//!   tomorrow' into Spanish") is what the prompt talks about, not when it asks.
//! - Dates: a day and month without a year ("on November 25", "le 25 novembre",
//!   "25 november", "11月25日") refer to a near occurrence and are time-sensitive; a full
//!   date is time-sensitive only when its year is within one year of the current year
//!   ("2026-11-25" in 2026; not "July 20, 1969"). A year alone ("the year 2024") or a
//!   month with a year ("November 2025") is not a date. English "may" only counts as a
//!   month when capitalised ("May 5", not "5 may be").

use regex::{Captures, Regex, RegexSet};

/// Compiled time-sensitivity detectors.
#[derive(Debug)]
pub struct TimeDetector {
    words: Regex,
    /// The five date patterns below in one set (same order), so that text with numbers but
    /// no date costs one scan.
    dates: RegexSet,
    iso_date: Regex,
    numeric_date: Regex,
    month_day: Regex,
    day_month: Regex,
    cjk_date: Regex,
}

/// Nouns that make "current", "recent" and "live" about the present.
const EN_NOUNS: &str = "news|headlines?|prices?|version|versions|release|releases|weather|forecast|scores?|rates?|status|events?|time|date|day|year|month|week|president|prime minister|ceo|leaders?|champions?|standings|rankings?|results?|stock|stocks|market|markets|value|temperature|trends?|updates?|situation|state|polls?|elections?|season|leaderboard|traffic|developments|affairs|valuation|population|record|holder|world record";

const LIVE_NOUNS: &str = "scores?|stream|streams|streaming|updates?|coverage|results?|feed|data|prices?|traffic|weather|news|blog|match|game|events?|tv|broadcast|ticker|uitzending|verslag|uitslagen|stand";

const FR_NOUNS: &str = "nouvelles|version|versions|prix|actualités|actualites|infos|informations|résultats|resultats|news|scores?|mises? à jour|mises? a jour|cours|taux|tendances|chiffres|sondages?|élections|elections";

const NL_NOUNS: &str = "nieuws|versie|versies|prijs|prijzen|stand|koers|koersen|updates?|uitslag|uitslagen|berichten|ontwikkelingen|cijfers|peilingen?";

const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|sept|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec|janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre|januari|februari|maart|mei|juni|juli|augustus|oktober";

/// Compiles a pattern written in this file. The patterns are constants covered by the
/// tests, so a failure is a programming error, not a runtime condition.
fn re(pattern: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("built-in pattern compiles")
}

impl Default for TimeDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeDetector {
    pub fn new() -> TimeDetector {
        let english = [
            "right now".to_owned(),
            "today".into(),
            "tonight".into(),
            "yesterday".into(),
            "tomorrow".into(),
            "nowadays".into(),
            "now (?:is )?(?:a|the) (?:good|right|best|bad) time".into(),
            "now".into(),
            "what(?: i|'| i)s the (?:time|date)".into(),
            "what time is it".into(),
            "what day is it".into(),
            "currently".into(),
            "as of".into(),
            "at the moment".into(),
            "this (?:weekend|week|month|year|morning|afternoon|evening)".into(),
            "latest".into(),
            "newest".into(),
            "most recent".into(),
            format!("(?:current|recent) (?:[a-z0-9\\-]+ )?(?:{EN_NOUNS})"),
            format!("live (?:{LIVE_NOUNS})"),
            "breaking news".into(),
        ];
        let french = [
            "aujourd['’ ]?hui".to_owned(),
            "maintenant".into(),
            "quelle heure est-il".into(),
            "actuellement".into(),
            "en ce moment".into(),
            // "à l'heure actuelle"; the "à" is left out because the ASCII word boundary
            // cannot sit before a non-ASCII letter.
            "l['’]heure actuelle".into(),
            format!("derni(?:er|ère|ere)s? (?:[a-zà-ÿ\\-]+ )?(?:{FR_NOUNS})"),
            format!("(?:{FR_NOUNS}) (?:actuel|actuelle|actuels|actuelles|du jour)"),
            "cette (?:semaine|année|annee)".into(),
            "ce (?:soir|matin|mois-ci|mois|week-end|weekend)".into(),
            "hier".into(),
            "demain".into(),
            "en direct".into(),
        ];
        let chinese = [
            "今天",
            "今日",
            "现在",
            "目前",
            "当前",
            "最新",
            "本周",
            "这周",
            "这个星期",
            "今晚",
            "昨天",
            "明天",
            "实时",
            "最近",
            "今年",
            "本月",
            "这个月",
            "此刻",
        ]
        .map(str::to_owned);
        let dutch = [
            "vandaag".to_owned(),
            "hoe laat is het".into(),
            "nu".into(),
            "momenteel".into(),
            "op dit moment".into(),
            "op het moment".into(),
            format!("laatste (?:[a-z\\-]+ )?(?:{NL_NOUNS})"),
            "deze (?:week|maand)".into(),
            "dit jaar".into(),
            "vanavond".into(),
            "vannacht".into(),
            "gisteren".into(),
            "morgen".into(),
            "actueel".into(),
            "actuele".into(),
        ];
        // Other languages, in unambiguous words only: German, Spanish, Italian,
        // Portuguese, Polish, the Scandinavian languages, Turkish, Indonesian and
        // Vietnamese. ("mañana" is also "morning", "ora" also "hour": left out.)
        let more = [
            "heute",
            "gestern",
            "jetzt",
            "derzeit",
            "zurzeit",
            "diese woche",
            "dieses jahr",
            "neueste",
            "neuesten",
            "aktuelle (?:nachrichten|preise?|version|lage)",
            "hoy",
            "ayer",
            "ahora",
            "actualmente",
            "en este momento",
            "esta (?:semana|noche)",
            "este (?:año|ano|fin de semana)",
            "oggi",
            "ieri",
            "domani",
            "adesso",
            "attualmente",
            "in questo momento",
            "questa settimana",
            "quest['’]anno",
            "stasera",
            "ultime notizie",
            "hoje",
            "ontem",
            "agora",
            "neste momento",
            "dzisiaj",
            "wczoraj",
            "jutro",
            "teraz",
            "obecnie",
            "idag",
            "i dag",
            "igår",
            "i går",
            "imorgon",
            "i morgon",
            "just nu",
            "yarın",
            "hari ini",
            "kemarin",
            "besok",
            "sekarang",
            "hôm nay",
            "hôm qua",
            "ngày mai",
            "bây giờ",
        ]
        .map(str::to_owned);
        // Words that begin or end with a letter outside ASCII, or in other alphabets: the
        // regex's ASCII word boundaries cannot sit next to them, so only the Unicode
        // check bounds them ("сегодня", not "завтрак" for "завтра").
        let unicode = [
            "amanhã",
            "últimas (?:noticias|notícias)",
            "más reciente",
            "dziś",
            "bugün",
            "dün",
            "şu anda",
            "şimdi",
            "сегодня",
            "вчера",
            "завтра",
            "сейчас",
            "в данный момент",
            "на этой неделе",
            "в этом году",
            "последние новости",
            "σήμερα",
            "χθες",
            "αύριο",
            "τώρα",
            "היום",
            "אתמול",
            "מחר",
            "עכשיו",
            "اليوم",
            "أمس",
            "غدا",
            "الآن",
            "आज",
            "कल",
            "अभी",
        ]
        .map(str::to_owned);
        // Japanese and Korean, matched as substrings like Chinese (Korean attaches
        // particles: "오늘은").
        let cjk_more = [
            "現在",
            "昨日",
            "明日",
            "今週",
            "今夜",
            "今朝",
            "오늘",
            "어제",
            "내일",
            "지금",
            "현재",
            "이번 주",
            "최신",
        ]
        .map(str::to_owned);
        let latin: Vec<String> = english
            .into_iter()
            .chain(french)
            .chain(dutch)
            .chain(more)
            .collect();
        let chinese: Vec<String> = chinese.into_iter().chain(cjk_more).collect();
        // ASCII word boundaries in the regex keep the scan on the fast DFA engines and make
        // it prefer the right alternative ("live streams", not "live stream"); the
        // Unicode check in `on_word_boundaries` then rejects matches glued to accented
        // letters ("nu" in "nuée").
        let words = format!(
            "(?i)(?-u:\\b)(?:{})(?-u:\\b)|{}|{}",
            latin.join("|"),
            unicode.join("|"),
            chinese.join("|")
        );
        let dates = [
            r"(?-u:\b)([0-9]{4})[\-/.]([0-9]{1,2})[\-/.]([0-9]{1,2})(?-u:\b)".to_owned(),
            r"(?-u:\b)([0-9]{1,2})[\-/.]([0-9]{1,2})[\-/.]([0-9]{4})(?-u:\b)".to_owned(),
            format!(
                r"(?i)(?-u:\b)({MONTHS})\.? ?([0-9]{{1,2}})(?:st|nd|rd|th)?(?-u:\b)(?: ?,? ?([0-9]{{4}})(?-u:\b))?"
            ),
            format!(
                r"(?i)(?-u:\b)([0-9]{{1,2}})(?:st|nd|rd|th|er|e)? (?:of )?({MONTHS})(?-u:\b)\.?(?: ?,? ?([0-9]{{4}})(?-u:\b))?"
            ),
            r"(?:([0-9]{4}) ?年 ?)?([0-9]{1,2}) ?月 ?([0-9]{1,2}) ?[日号]".to_owned(),
        ];
        #[allow(clippy::expect_used)]
        let set = RegexSet::new(&dates).expect("built-in patterns compile");
        let [iso_date, numeric_date, month_day, day_month, cjk_date] = dates.map(|d| re(&d));
        TimeDetector {
            words: re(&words),
            dates: set,
            iso_date,
            numeric_date,
            month_day,
            day_month,
            cjk_date,
        }
    }

    /// Whether `text` asks about the present, with `year` as the current calendar year.
    pub fn is_time_sensitive(&self, text: &str, year: i32) -> bool {
        self.has_time_word(text)
            || (text.bytes().any(|b| b.is_ascii_digit()) && self.has_near_date(text, year))
    }

    fn has_time_word(&self, text: &str) -> bool {
        self.first_time_word(text).is_some()
    }

    /// The first time phrase in `text`, as written.
    pub(crate) fn first_time_word<'t>(&self, text: &'t str) -> Option<&'t str> {
        let mut from = 0;
        let mut quoted: Option<Vec<(usize, usize)>> = None;
        while let Some(m) = self.words.find_at(text, from) {
            let mut in_quote = || {
                quoted
                    .get_or_insert_with(|| quoted_phrases(text))
                    .iter()
                    .any(|&(s, e)| s <= m.start() && m.end() <= e)
            };
            if on_word_boundaries(text, m.start(), m.end()) && !in_quote() {
                let word = m.as_str();
                if present_sense(text, m.start(), m.end()) {
                    return Some(word);
                }
            }
            // Look again one character later: a rejected match ("now" in "snow") may
            // overlap a real one.
            from = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
        }
        None
    }

    fn has_near_date(&self, text: &str, year: i32) -> bool {
        let near = |y: Option<i32>| y.is_none_or(|y| (y - year).abs() <= 1);
        let num = |c: &Captures, i: usize| c.get(i).and_then(|m| m.as_str().parse::<i32>().ok());
        let day_ok = |d: Option<i32>| d.is_some_and(|d| (1..=31).contains(&d));
        let month_ok = |m: Option<i32>| m.is_some_and(|m| (1..=12).contains(&m));

        let found = self.dates.matches(text);
        if !found.matched_any() {
            return false;
        }
        if found.matched(0)
            && self
                .iso_date
                .captures_iter(text)
                .any(|c| month_ok(num(&c, 2)) && day_ok(num(&c, 3)) && near(num(&c, 1)))
        {
            return true;
        }
        if found.matched(1)
            && self.numeric_date.captures_iter(text).any(|c| {
                let (a, b) = (num(&c, 1), num(&c, 2));
                // Day-first or month-first: either reading must be a real date.
                let valid = (day_ok(a) && month_ok(b)) || (month_ok(a) && day_ok(b));
                valid && near(num(&c, 3))
            })
        {
            return true;
        }
        if found.matched(2)
            && self.month_day.captures_iter(text).any(|c| {
                named_month(c.get(1).map_or("", |m| m.as_str()))
                    && day_ok(num(&c, 2))
                    && near(num(&c, 3))
            })
        {
            return true;
        }
        if found.matched(3)
            && self.day_month.captures_iter(text).any(|c| {
                named_month(c.get(2).map_or("", |m| m.as_str()))
                    && day_ok(num(&c, 1))
                    && near(num(&c, 3))
            })
        {
            return true;
        }
        found.matched(4)
            && self
                .cjk_date
                .captures_iter(text)
                .any(|c| month_ok(num(&c, 2)) && day_ok(num(&c, 3)) && near(num(&c, 1)))
    }
}

/// The byte spans of phrases of two or more words in quotation marks ("Translate 'see
/// you tomorrow' into Spanish", « à demain », 「明天见」): words a prompt talks about
/// (to translate, explain, correct), not the time it asks about. A single quoted word
/// ("the 'latest' version") is emphasis and stays. A straight single quote opens only
/// after a space or at the start and closes only before a space, punctuation or the end,
/// so apostrophes ("don't", "the users' list") are never quotes.
fn quoted_phrases(text: &str) -> Vec<(usize, usize)> {
    const PAIRS: &[(char, char)] = &[
        ('"', '"'),
        ('“', '”'),
        ('„', '“'),
        ('«', '»'),
        ('‹', '›'),
        ('「', '」'),
        ('『', '』'),
        ('\'', '\''),
        ('‘', '’'),
    ];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let Some(&(_, close)) = PAIRS.iter().find(|(open, _)| *open == c) else {
            i += 1;
            continue;
        };
        let straight = c == '\'' || c == '‘';
        if straight && i > 0 && !chars[i - 1].1.is_whitespace() && !"([{".contains(chars[i - 1].1) {
            i += 1;
            continue;
        }
        let closing = chars[i + 1..].iter().enumerate().find(|&(k, &(_, d))| {
            d == close
                && (!straight
                    || chars
                        .get(i + 2 + k)
                        .is_none_or(|&(_, n)| !n.is_alphanumeric()))
        });
        match closing {
            Some((k, &(stop, _))) => {
                let inner = &text[start + c.len_utf8()..stop];
                let cjk = inner.chars().filter(|&ch| is_cjk(ch)).count();
                if inner.split_whitespace().count() >= 2 || cjk >= 2 {
                    spans.push((start, stop));
                }
                i += k + 2;
            }
            None => i += 1,
        }
    }
    spans
}

/// A month name as matched. English "may" is a modal verb far more often than a month, so
/// it only counts capitalised.
fn named_month(word: &str) -> bool {
    !word.eq_ignore_ascii_case("may") || word.starts_with('M')
}

/// Han and other CJK characters (and anything above them) have no word boundaries.
fn is_cjk(c: char) -> bool {
    c >= '\u{2E80}'
}

/// A Latin-script match must not continue a word on either side.
fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let matched = &text[start..end];
    let first = matched.chars().next();
    let last = matched.chars().next_back();
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let joins = |edge: Option<char>, neighbour: Option<char>| {
        edge.is_some_and(|e| e.is_alphanumeric() && !is_cjk(e))
            && neighbour.is_some_and(|n| n.is_alphanumeric() && !is_cjk(n))
    };
    !joins(first, before) && !joins(last, after)
}

/// Context rules for words that are often not about the present (see the module docs):
/// "hier" must be French; "now", "nu" and "maintenant" must end a sentence and not follow
/// "do"/"from"/"until" …; "currently", "actuellement" and "momenteel" must not follow a
/// first-person subject.
fn present_sense(text: &str, start: usize, end: usize) -> bool {
    let word = text[start..end].to_lowercase();
    match word.as_str() {
        "hier" => french_hier(text, end),
        "now" | "nu" | "maintenant" | "jetzt" | "ahora" | "adesso" | "agora" | "teraz"
        | "sekarang" | "bây giờ" | "şimdi" | "сейчас" | "τώρα" | "עכשיו" | "الآن" | "अभी" =>
        {
            const NOT_AFTER: &[&str] = &[
                "do", "from", "until", "till", "by", "than", "doen", "faire", "tot", "dès",
                "jusqu'à", "jusqu'a",
            ];
            let rest = text[end..].trim_start();
            let ends_sentence = rest.is_empty() || rest.starts_with(['?', '!', '.', '？', '。']);
            ends_sentence && !NOT_AFTER.contains(&previous_word(text, start).as_str())
        }
        "currently" | "actuellement" | "momenteel" | "derzeit" | "zurzeit" | "actualmente"
        | "attualmente" | "obecnie" => {
            const FIRST_PERSON: &[&str] = &[
                "i",
                "i'm",
                "im",
                "am",
                "we",
                "we're",
                "je",
                "suis",
                "nous",
                "sommes",
                "j'suis",
                "ik",
                "ben",
                "wij",
                "zijn",
                "ich",
                "bin",
                "wir",
                "sind",
                "estoy",
                "soy",
                "estamos",
                "somos",
                "sto",
                "sono",
                "siamo",
                "estou",
                "sou",
                "jestem",
                "jesteśmy",
            ];
            !FIRST_PERSON.contains(&previous_word(text, start).as_str())
        }
        _ => true,
    }
}

/// The word before byte `start`, lowercased, with apostrophes kept ("i'm").
fn previous_word(text: &str, start: usize) -> String {
    let before = text[..start].trim_end();
    let from = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    before[from..].replace('’', "'").to_lowercase()
}

/// Whether "hier" (ending at `end`) is French "yesterday" rather than Dutch "here".
fn french_hier(text: &str, end: usize) -> bool {
    const FRENCH: &[&str] = &[
        "le",
        "la",
        "les",
        "est",
        "une",
        "des",
        "du",
        "au",
        "aux",
        "qui",
        "que",
        "quoi",
        "quel",
        "quelle",
        "quels",
        "quelles",
        "était",
        "été",
        "c'est",
        "il",
        "elle",
        "ils",
        "nous",
        "vous",
        "je",
        "j'ai",
        "pour",
        "dans",
        "avec",
        "sur",
        "pas",
        "ce",
        "cette",
        "ont",
        "sont",
        "s'est",
        "passé",
        "qu'est-ce",
        "d'hier",
    ];
    const DUTCH: &[&str] = &[
        "het", "een", "ik", "is", "van", "wat", "waar", "hoe", "niet", "en", "met", "voor", "op",
        "zijn", "dit", "deze", "dat", "er", "kan", "wordt", "bij", "kom", "woon", "wij", "we",
        "jij", "naar", "ben", "heb",
    ];
    let next_word: String = text[end..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    if next_word == "soir" || next_word == "matin" {
        return true;
    }
    let (mut french, mut dutch) = (0usize, 0usize);
    for word in text
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        french += usize::from(FRENCH.contains(&word.as_str()));
        dutch += usize::from(DUTCH.contains(&word.as_str()));
    }
    french > dutch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, time-sensitive?) with the current year 2026.
    #[test]
    fn time_table() {
        let cases: &[(&str, bool)] = &[
            // English.
            ("What's the weather today?", true),
            // Quoted words are what the prompt talks about, not when.
            ("Translate 'see you tomorrow' into Spanish", false),
            ("How do I say “see you tomorrow” in French?", false),
            ("Que veut dire « à demain » ?", false),
            ("「明天见」用英语怎么说？", false),
            ("What does \"right now\" mean in Jamaican English?", false),
            ("What did he mean by 'see you tomorrow' today?", true),
            ("What's the 'latest' version of Rust?", true),
            (
                "Don't tell me the users' list, what's the weather today?",
                true,
            ),
            ("who won the game last night or tonight", true),
            ("What is happening right now in Paris", true),
            ("what time is it now", true),
            ("what's the time in London", true),
            ("Who is the best leader in India now?", true),
            ("How is Venezuela doing now", true),
            ("Is now a good time to invest in gold?", true),
            ("What shall I do now?", false),
            ("It is now deprecated; use config_name", false),
            ("Now that Trump is president, what changes?", false),
            ("set alarm for one hour from now", false),
            (
                "I am currently working at Amdocs, should I do a masters?",
                false,
            ),
            ("I'm currently living in Amsterdam", false),
            ("What are currently the hot topics in AI?", true),
            ("Wat moet ik nu doen?", false),
            ("Que dois-je faire maintenant ?", false),
            ("Is the store currently open?", true),
            ("What was the score yesterday?", true),
            ("Will it rain tomorrow?", true),
            ("Population as of this year", true),
            ("What is the latest version of Rust?", true),
            ("newest iPhone specs", true),
            ("current price of bitcoin", true),
            ("Who is the current US president?", true),
            ("What's the current exchange rate for EUR/USD", true),
            ("recent news about SpaceX", true),
            ("live scores for the match", true),
            ("Breaking news in Japan", true),
            ("Any events this weekend?", true),
            ("How do I know when my card arrives?", false),
            ("Why is snow white?", false),
            ("It is nowhere to be found", false),
            ("the current in a wire", false),
            ("How does a current account work?", false),
            ("Where do you live?", false),
            ("Breaking Bad plot summary", false),
            ("Who was the last king of France?", false),
            ("Acknowledge the request", false),
            // More languages, plain words.
            ("Wie wird das Wetter heute?", true),
            ("Wie spät ist es jetzt?", true),
            (
                "Was soll ich jetzt tun, wenn die Karte gesperrt ist?",
                false,
            ),
            (
                "Ich bin derzeit Student, welche Versicherung brauche ich?",
                false,
            ),
            ("Wer ist derzeit Bundeskanzler?", true),
            ("¿Qué tiempo hace hoy?", true),
            ("¿Quién ganó el partido ayer?", true),
            ("las últimas noticias de España", true),
            ("Che tempo fa domani a Roma?", true),
            ("Qual é a previsão do tempo para amanhã?", true),
            ("Jaka jest dziś pogoda?", true),
            ("Hur blir vädret idag?", true),
            ("Yarın hava nasıl olacak?", true),
            ("Bugün hava nasıl?", true),
            ("Apa berita hari ini?", true),
            ("Thời tiết hôm nay thế nào?", true),
            ("Какая погода сегодня?", true),
            ("Что приготовить на завтрак?", false),
            ("Какая погода завтра?", true),
            ("Τι καιρό κάνει σήμερα;", true),
            ("מה מזג האוויר היום?", true),
            ("ما هو الطقس اليوم؟", true),
            ("आज मौसम कैसा है?", true),
            ("今日の天気は？", true),
            ("明日の天気は？", true),
            ("오늘 날씨 어때?", true),
            ("오늘은 무슨 요일이야?", true),
            ("Wie setze ich mein Passwort zurück?", false),
            ("¿Cómo restablezco mi contraseña?", false),
            // French.
            ("Quel temps fait-il aujourd'hui ?", true),
            ("Quel temps fait-il aujourd’hui ?", true),
            ("Qu'est-ce qui se passe maintenant ?", true),
            ("Qui est actuellement président ?", true),
            ("Que se passe-t-il en ce moment ?", true),
            ("les dernières nouvelles", true),
            ("la dernière version de Python", true),
            ("le prix actuel de l'or", true),
            ("les matchs de cette semaine", true),
            ("Que faire ce soir ?", true),
            ("Qu'est-ce qui s'est passé hier ?", true),
            ("Il va pleuvoir demain ?", true),
            ("le match en direct", true),
            ("le dernier roi de France", false),
            ("la courant dans un fil", false),
            // Chinese.
            ("今天天气怎么样", true),
            ("现在几点", true),
            ("目前的汇率是多少", true),
            ("最新的iPhone", true),
            ("本周有什么新闻", true),
            ("昨天发生了什么", true),
            ("明天会下雨吗", true),
            ("实时比分", true),
            ("地球为什么是圆的", false),
            ("如何学习编程", false),
            // Dutch.
            ("Wat is het weer vandaag?", true),
            ("Hoe laat is het nu?", true),
            ("Hoe laat is het in Tokio", true),
            ("Wie is momenteel premier?", true),
            ("Wat gebeurt er op dit moment?", true),
            ("het laatste nieuws", true),
            ("de laatste versie van Java", true),
            ("Wat is er deze week te doen?", true),
            ("Wat eten we vanavond?", true),
            ("Wat gebeurde er gisteren?", true),
            ("Regent het morgen?", true),
            ("Wat staat er op het menu?", false),
            ("Ik woon hier al tien jaar", false),
            ("Kom hier", false),
            // Dates.
            ("What events are on 2026-11-25?", true),
            ("deadline 25/11/2026", true),
            ("What happens on November 25?", true),
            ("Nov 25th, 2027 plans", true),
            ("Que se passe-t-il le 25 novembre ?", true),
            ("Wat gebeurt er op 25 november?", true),
            ("the 25th of December", true),
            ("11月25日有什么活动", true),
            ("2026年11月25日", true),
            ("What happened on July 20, 1969?", false),
            ("Born 4 July 1776", false),
            ("12 January , 1978 : a manager is appointed", false),
            ("born December 13 , 1973", false),
            ("born 28th July,1987", false),
            ("What happened on 1969-07-20?", false),
            ("the year 2024", false),
            ("Windows 10 May 2019 update", false),
            ("numbers divisible by 5 may be even", false),
            ("What is 4111 plus 7?", false),
            ("version 1.2.3", false),
            ("2025年的计划", false),
        ];
        let d = TimeDetector::new();
        for (text, want) in cases {
            assert_eq!(d.is_time_sensitive(text, 2026), *want, "text {text:?}");
        }
    }

    #[test]
    fn year_window_is_one_year_either_side() {
        let d = TimeDetector::new();
        let cases = [
            (2024, false),
            (2025, true),
            (2026, true),
            (2027, true),
            (2028, false),
        ];
        for (year, want) in cases {
            assert_eq!(
                d.is_time_sensitive(&format!("agenda for {year}-03-14"), 2026),
                want,
                "{year}"
            );
        }
    }
}
