//! Never-cache rules: requests whose prompt or answer must neither be served from nor
//! stored in the cache. Three families of rules:
//!
//! - **personal data** ([`PiiKind`]): emails, phone numbers, payment cards, IBANs and
//!   national identity numbers, in the prompt or in the answer. Detectors validate
//!   checksums and structure so that ordinary numbers (prices, years, order ids, maths) do
//!   not bypass the cache; see [`pii`] for each detector's rule.
//! - **time-sensitive prompts**: words such as "today", "latest version", "aujourd'hui",
//!   "最新", "vandaag", and explicit near-present dates; see [`time`]. Answers are never
//!   checked for time words (an answer saying "today" does not make the question stale).
//! - **configured patterns** ([`NamedPattern`]): regular expressions named by the operator,
//!   applied to the prompt, the answer or both.
//!
//! A match is reported as a [`NeverCache`] whose [`NeverCache::reason`] is a short
//! kebab-case label from a small fixed set (plus one per configured pattern), suitable for
//! the `x-deja-bypass-reason` header and a metric label.
//!
//! This module only classifies text. It does not decide what the server does with a
//! bypassed request, and it never sees HTTP types.
//!
//! Speed: the rules run on every request, before the exact lookup. One pass over the bytes
//! counts digits and notes `@` and `+`; the digit-based detectors only run when there are
//! enough digits for them to possibly match, and all time words are one regex scan. A
//! typical 200-character prompt without digits costs one keyword scan.

pub mod pii;
pub mod time;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use self::pii::PiiDetector;
use self::time::TimeDetector;

/// Which rules are on. Personal data and time-sensitive detection are on by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Bypass when the prompt or the answer contains personal data.
    pub personal_data: bool,
    /// Bypass when the prompt asks about the present (time words, near-present dates).
    pub time_sensitive: bool,
    /// Operator-defined patterns, checked in order; the first match names the reason.
    pub patterns: Vec<NamedPattern>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            personal_data: true,
            time_sensitive: true,
            patterns: Vec::new(),
        }
    }
}

/// An operator-defined never-cache pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPattern {
    /// `[a-z0-9-]+`; becomes the reason `rule:<name>`, so it must be a valid metric label
    /// and header value.
    pub name: String,
    /// A `regex` crate expression; `(?i)` makes it case-insensitive.
    pub regex: String,
    /// Which text the pattern is checked against.
    #[serde(default)]
    pub applies_to: AppliesTo,
}

/// Which text a configured pattern is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppliesTo {
    /// The prompt (checked before lookup).
    Prompt,
    /// The upstream answer (checked before storing).
    Answer,
    /// Both.
    #[default]
    Both,
}

/// Why a request must not use the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NeverCache {
    PersonalData(PiiKind),
    TimeSensitive,
    /// A configured pattern matched; holds the pattern's name.
    Rule(String),
}

impl NeverCache {
    /// The kebab-case label for the bypass header and metrics: `personal-data:<kind>`,
    /// `time-sensitive` or `rule:<name>`.
    pub fn reason(&self) -> String {
        match self {
            NeverCache::PersonalData(kind) => format!("personal-data:{}", kind.as_str()),
            NeverCache::TimeSensitive => "time-sensitive".to_owned(),
            NeverCache::Rule(name) => format!("rule:{name}"),
        }
    }
}

impl fmt::Display for NeverCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

/// The kinds of personal data the detectors recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    PaymentCard,
    Iban,
    NationalId,
}

impl PiiKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::PaymentCard => "payment-card",
            PiiKind::Iban => "iban",
            PiiKind::NationalId => "national-id",
        }
    }
}

/// A configuration that cannot be compiled. Every variant names the pattern.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(
        "never-cache pattern name `{name}` is invalid: use 1 to 64 lowercase letters, digits and dashes"
    )]
    InvalidName { name: String },
    #[error("never-cache pattern name `{name}` is used more than once")]
    DuplicateName { name: String },
    #[error("never-cache pattern `{name}` has an invalid regex")]
    InvalidRegex {
        name: String,
        #[source]
        source: regex::Error,
    },
    #[error("never-cache pattern `{name}` matches empty text, so it would bypass every request")]
    MatchesEmpty { name: String },
    #[error("never-cache patterns are too large to compile together")]
    TooLarge {
        #[source]
        source: regex::Error,
    },
}

/// Configured patterns for one kind of text, compiled into one [`RegexSet`] so that a check
/// is a single scan however many patterns there are.
#[derive(Debug)]
struct PatternSet {
    set: RegexSet,
    names: Vec<String>,
}

impl PatternSet {
    fn first_match(&self, text: &str) -> Option<&str> {
        if self.names.is_empty() {
            return None;
        }
        // Set indices come back in pattern order, so the first is the earliest-configured.
        let index = self.set.matches(text).iter().next()?;
        self.names.get(index).map(String::as_str)
    }
}

/// Compiled never-cache rules. Cheap to call, `Send + Sync`; build once at startup and
/// share.
#[derive(Debug)]
pub struct NeverCacheRules {
    pii: Option<PiiDetector>,
    time: Option<TimeDetector>,
    prompt_patterns: PatternSet,
    answer_patterns: PatternSet,
}

impl NeverCacheRules {
    /// Compiles `cfg`. Fails on a pattern with a bad name, a duplicate name, a regex that
    /// does not compile, or a regex that matches empty text (which would bypass everything).
    pub fn new(cfg: &RulesConfig) -> Result<NeverCacheRules, RulesError> {
        let mut seen = std::collections::HashSet::new();
        let mut prompt = (Vec::new(), Vec::new());
        let mut answer = (Vec::new(), Vec::new());
        for p in &cfg.patterns {
            if !valid_name(&p.name) {
                return Err(RulesError::InvalidName {
                    name: p.name.clone(),
                });
            }
            if !seen.insert(p.name.as_str()) {
                return Err(RulesError::DuplicateName {
                    name: p.name.clone(),
                });
            }
            let compiled = Regex::new(&p.regex).map_err(|source| RulesError::InvalidRegex {
                name: p.name.clone(),
                source,
            })?;
            if compiled.is_match("") {
                return Err(RulesError::MatchesEmpty {
                    name: p.name.clone(),
                });
            }
            if matches!(p.applies_to, AppliesTo::Prompt | AppliesTo::Both) {
                prompt.0.push(p.regex.as_str());
                prompt.1.push(p.name.clone());
            }
            if matches!(p.applies_to, AppliesTo::Answer | AppliesTo::Both) {
                answer.0.push(p.regex.as_str());
                answer.1.push(p.name.clone());
            }
        }
        let build = |(regexes, names): (Vec<&str>, Vec<String>)| {
            RegexSet::new(regexes)
                .map(|set| PatternSet { set, names })
                .map_err(|source| RulesError::TooLarge { source })
        };
        Ok(NeverCacheRules {
            pii: cfg.personal_data.then(PiiDetector::new),
            time: cfg.time_sensitive.then(TimeDetector::new),
            prompt_patterns: build(prompt)?,
            answer_patterns: build(answer)?,
        })
    }

    /// Checks a prompt (the normalised last user message, or the whole conversation) with
    /// the current calendar year from the system clock.
    pub fn check_prompt(&self, text: &str) -> Option<NeverCache> {
        self.check_prompt_at(text, current_year())
    }

    /// Checks a prompt as if the current calendar year were `year` (explicit dates within
    /// one year of it are time-sensitive). Precedence when several rules match: personal
    /// data, then configured patterns, then time-sensitivity.
    pub fn check_prompt_at(&self, text: &str, year: i32) -> Option<NeverCache> {
        if let Some(kind) = self.pii.as_ref().and_then(|p| p.detect(text)) {
            return Some(NeverCache::PersonalData(kind));
        }
        if let Some(name) = self.prompt_patterns.first_match(text) {
            return Some(NeverCache::Rule(name.to_owned()));
        }
        if self
            .time
            .as_ref()
            .is_some_and(|t| t.is_time_sensitive(text, year))
        {
            return Some(NeverCache::TimeSensitive);
        }
        None
    }

    /// Checks an upstream answer before it is stored: personal data and answer patterns.
    /// Time words are not checked (an answer mentioning "today" is not by itself stale).
    pub fn check_answer(&self, text: &str) -> Option<NeverCache> {
        if let Some(kind) = self.pii.as_ref().and_then(|p| p.detect(text)) {
            return Some(NeverCache::PersonalData(kind));
        }
        self.answer_patterns
            .first_match(text)
            .map(|name| NeverCache::Rule(name.to_owned()))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The calendar year (UTC) now. A clock before 1970 is a broken machine; it reads as 1970.
fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    year_from_unix_secs(secs)
}

/// The proleptic Gregorian year (UTC) of a Unix timestamp (Howard Hinnant's
/// `civil_from_days`).
fn year_from_unix_secs(secs: u64) -> i32 {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> NeverCacheRules {
        NeverCacheRules::new(&RulesConfig::default()).unwrap()
    }

    fn reason(r: Option<NeverCache>) -> Option<String> {
        r.map(|r| r.reason())
    }

    #[test]
    fn rules_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<NeverCacheRules>();
    }

    /// (prompt, expected reason) with the current year fixed at 2026. Covers every detector
    /// positive and negative; the detector modules hold finer-grained tables.
    #[test]
    fn prompt_table() {
        let cases: &[(&str, Option<&str>)] = &[
            // Ordinary text and numbers.
            ("What is 4111 plus 7?", None),
            ("Where is order 12345678?", None),
            ("What happened in the year 2024?", None),
            ("The price is $1,299.99 for 3 items", None),
            ("Compute 123456 * 789012", None),
            ("Explain photosynthesis", None),
            ("", None),
            // Email.
            (
                "Write to jane.doe@example.com please",
                Some("personal-data:email"),
            ),
            ("use the @decorator syntax in python", None),
            // Phone.
            ("Call me on +33 6 12 34 56 78", Some("personal-data:phone")),
            ("My number is (555) 123-4567", Some("personal-data:phone")),
            ("Appelle le 06 12 34 56 78", Some("personal-data:phone")),
            ("sort 12 34 56 78 90 ascending", None),
            // Payment card.
            (
                "card 4111 1111 1111 1111 exp 12/27",
                Some("personal-data:payment-card"),
            ),
            ("card 4111 1111 1111 1112", None),
            // IBAN.
            (
                "IBAN GB82 WEST 1234 5698 7654 32",
                Some("personal-data:iban"),
            ),
            ("IBAN GB82 WEST 1234 5698 7654 33", None),
            // National ids.
            ("my SSN is 536-90-4399", Some("personal-data:national-id")),
            ("my SSN is 666-90-4399", None),
            ("mijn BSN is 111222333", Some("personal-data:national-id")),
            ("ordernummer 111222333", None),
            (
                "身份证 11010519491231002X",
                Some("personal-data:national-id"),
            ),
            ("NINO AB 12 34 56 C", Some("personal-data:national-id")),
            // Time.
            ("What's the weather today?", Some("time-sensitive")),
            ("Quelle est la météo aujourd'hui ?", Some("time-sensitive")),
            ("今天天气怎么样", Some("time-sensitive")),
            ("Wat is het weer vandaag?", Some("time-sensitive")),
            ("How do I know if snow is coming?", None),
            ("What events are on 2026-11-25?", Some("time-sensitive")),
            ("What happened on July 20, 1969?", None),
        ];
        let r = rules();
        for (text, want) in cases {
            assert_eq!(
                reason(r.check_prompt_at(text, 2026)).as_deref(),
                *want,
                "prompt {text:?}"
            );
        }
    }

    #[test]
    fn answers_are_checked_for_personal_data_but_not_time_words() {
        let r = rules();
        let cases: &[(&str, Option<&str>)] = &[
            ("Today is a good day to learn Rust.", None),
            (
                "The latest version is whatever your package manager says.",
                None,
            ),
            ("Contact support@example.org.", Some("personal-data:email")),
            (
                "Her IBAN is NL91ABNA0417164300.",
                Some("personal-data:iban"),
            ),
            ("2 + 2 = 4", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                reason(r.check_answer(text)).as_deref(),
                *want,
                "answer {text:?}"
            );
        }
    }

    #[test]
    fn configured_patterns_apply_to_their_side() {
        let cfg = RulesConfig {
            patterns: vec![
                NamedPattern {
                    name: "internal-project".into(),
                    regex: "(?i)project\\s+falcon".into(),
                    applies_to: AppliesTo::Prompt,
                },
                NamedPattern {
                    name: "secret-marker".into(),
                    regex: "CONFIDENTIAL".into(),
                    applies_to: AppliesTo::Answer,
                },
                NamedPattern {
                    name: "ticket".into(),
                    regex: "\\bJIRA-[0-9]+\\b".into(),
                    applies_to: AppliesTo::Both,
                },
            ],
            ..RulesConfig::default()
        };
        let r = NeverCacheRules::new(&cfg).unwrap();
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            // (text, prompt reason, answer reason)
            (
                "Tell me about Project  Falcon",
                Some("rule:internal-project"),
                None,
            ),
            ("This is CONFIDENTIAL", None, Some("rule:secret-marker")),
            ("see JIRA-42", Some("rule:ticket"), Some("rule:ticket")),
            ("nothing here", None, None),
            // Personal data wins over a configured pattern.
            (
                "project falcon: mail bob@example.com",
                Some("personal-data:email"),
                Some("personal-data:email"),
            ),
            // A configured pattern wins over time words.
            (
                "project falcon status today",
                Some("rule:internal-project"),
                None,
            ),
        ];
        for (text, want_prompt, want_answer) in cases {
            assert_eq!(
                reason(r.check_prompt_at(text, 2026)).as_deref(),
                *want_prompt,
                "prompt {text:?}"
            );
            assert_eq!(
                reason(r.check_answer(text)).as_deref(),
                *want_answer,
                "answer {text:?}"
            );
        }
    }

    #[test]
    fn disabled_families_do_not_fire() {
        let r = NeverCacheRules::new(&RulesConfig {
            personal_data: false,
            time_sensitive: false,
            patterns: Vec::new(),
        })
        .unwrap();
        assert_eq!(r.check_prompt_at("email a@b.com today", 2026), None);
        assert_eq!(r.check_answer("email a@b.com today"), None);
    }

    #[test]
    fn invalid_configs_name_the_pattern() {
        let pattern = |name: &str, regex: &str| RulesConfig {
            patterns: vec![NamedPattern {
                name: name.into(),
                regex: regex.into(),
                applies_to: AppliesTo::Both,
            }],
            ..RulesConfig::default()
        };
        let cases: &[(RulesConfig, &str)] = &[
            (
                pattern("Bad Name", "x"),
                "never-cache pattern name `Bad Name` is invalid",
            ),
            (pattern("", "x"), "never-cache pattern name `` is invalid"),
            (
                pattern("a_b", "x"),
                "never-cache pattern name `a_b` is invalid",
            ),
            (
                pattern("broken", "(unclosed"),
                "never-cache pattern `broken` has an invalid regex",
            ),
            (
                pattern("everything", "a*"),
                "never-cache pattern `everything` matches empty text",
            ),
            (
                RulesConfig {
                    patterns: vec![
                        NamedPattern {
                            name: "dup".into(),
                            regex: "x".into(),
                            applies_to: AppliesTo::Prompt,
                        },
                        NamedPattern {
                            name: "dup".into(),
                            regex: "y".into(),
                            applies_to: AppliesTo::Answer,
                        },
                    ],
                    ..RulesConfig::default()
                },
                "never-cache pattern name `dup` is used more than once",
            ),
        ];
        for (cfg, want) in cases {
            let err = NeverCacheRules::new(cfg).unwrap_err();
            assert!(err.to_string().starts_with(want), "got {err}, want {want}");
        }
        let err = NeverCacheRules::new(&pattern("broken", "(unclosed")).unwrap_err();
        let source = std::error::Error::source(&err).expect("regex error as source");
        assert!(source.to_string().contains("unclosed"), "{source}");
    }

    #[test]
    fn reasons_are_kebab_case_labels() {
        let cases = [
            (
                NeverCache::PersonalData(PiiKind::Email),
                "personal-data:email",
            ),
            (
                NeverCache::PersonalData(PiiKind::Phone),
                "personal-data:phone",
            ),
            (
                NeverCache::PersonalData(PiiKind::PaymentCard),
                "personal-data:payment-card",
            ),
            (
                NeverCache::PersonalData(PiiKind::Iban),
                "personal-data:iban",
            ),
            (
                NeverCache::PersonalData(PiiKind::NationalId),
                "personal-data:national-id",
            ),
            (NeverCache::TimeSensitive, "time-sensitive"),
            (NeverCache::Rule("no-secrets".into()), "rule:no-secrets"),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.reason(), want);
        }
    }

    #[test]
    fn year_from_unix_secs_table() {
        let cases = [
            (0, 1970),
            (951_782_400, 2000),   // 2000-02-29
            (1_767_225_599, 2025), // 2025-12-31T23:59:59Z
            (1_767_225_600, 2026), // 2026-01-01T00:00:00Z
            (4_102_444_800, 2100), // 2100-01-01
        ];
        for (secs, want) in cases {
            assert_eq!(year_from_unix_secs(secs), want, "secs {secs}");
        }
    }

    #[test]
    fn config_deserialises_with_defaults_and_rejects_unknown_fields() {
        // serde_json is not a dependency of this crate; the value-based deserializer in
        // serde is enough to exercise the attributes.
        use serde::de::value::{Error, MapDeserializer};
        use serde::de::IntoDeserializer;
        let empty: Vec<(&str, bool)> = Vec::new();
        let cfg =
            RulesConfig::deserialize(MapDeserializer::<_, Error>::new(empty.into_iter())).unwrap();
        assert_eq!(cfg, RulesConfig::default());
        let unknown = vec![("personal_datas", true)];
        let err = RulesConfig::deserialize(MapDeserializer::<_, Error>::new(
            unknown.into_iter().map(|(k, v)| (k, v.into_deserializer())),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("personal_datas"), "{err}");
    }

    /// Minimal CSV reader for the dev pairs (quoted fields, doubled quotes, newlines inside
    /// quotes); only the first two columns are kept.
    fn csv_first_two_columns(data: &str) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = data.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    fields.push(std::mem::take(&mut field));
                    let mut row = std::mem::take(&mut fields).into_iter();
                    if let (Some(a), Some(b)) = (row.next(), row.next()) {
                        rows.push((a, b));
                    }
                }
                (false, '\r') => {}
                (false, c) => field.push(c),
            }
        }
        rows
    }

    /// How often `check_prompt` bypasses the cache on the dev prompts (the `a` and `b`
    /// texts of /work/shared/data/pairs/*.csv, or `$DEJA_PAIRS_DIR`), by reason, with
    /// samples, and the mean cost per call. Run with
    /// `cargo test -p deja-core --release --lib dev_pairs_flag_rates -- --ignored --nocapture`.
    #[test]
    #[ignore = "reads the dev data set outside the repository"]
    fn dev_pairs_flag_rates() {
        use std::collections::{BTreeMap, BTreeSet};
        let dir = std::env::var("DEJA_PAIRS_DIR").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/pairs").to_owned()
        });
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        let r = rules();
        let samples_per_reason = std::env::var("DEJA_SAMPLES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5usize);
        let (mut total_calls, mut total_time) = (0u64, std::time::Duration::ZERO);
        for path in files {
            let data = std::fs::read_to_string(&path).unwrap();
            let rows = csv_first_two_columns(&data);
            let texts: BTreeSet<&str> = rows
                .iter()
                .skip(1)
                .flat_map(|(a, b)| [a.as_str(), b.as_str()])
                .collect();
            let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            let mut by_word: BTreeMap<String, usize> = BTreeMap::new();
            let start = std::time::Instant::now();
            for text in &texts {
                let normalized = crate::key::normalize_prompt(text);
                if let Some(reason) = r.check_prompt_at(&normalized, 2026) {
                    by_reason.entry(reason.reason()).or_default().push(text);
                    let word = r.time.as_ref().and_then(|t| t.first_time_word(&normalized));
                    let word = word.map_or("(date)".to_owned(), str::to_lowercase);
                    if reason == NeverCache::TimeSensitive {
                        *by_word.entry(word).or_default() += 1;
                    }
                }
            }
            total_time += start.elapsed();
            total_calls += texts.len() as u64;
            let flagged: usize = by_reason.values().map(Vec::len).sum();
            println!(
                "{}: {} unique texts, {} flagged ({:.2}%)",
                path.file_name().unwrap().to_string_lossy(),
                texts.len(),
                flagged,
                100.0 * flagged as f64 / texts.len() as f64
            );
            let mut words: Vec<_> = by_word.into_iter().collect();
            words.sort_by_key(|w| std::cmp::Reverse(w.1));
            let top: Vec<String> = words
                .iter()
                .take(12)
                .map(|(w, n)| format!("{w} {n}"))
                .collect();
            println!("  time phrases: {}", top.join(", "));
            for (reason, hits) in &by_reason {
                println!(
                    "  {reason}: {} ({:.2}%)",
                    hits.len(),
                    100.0 * hits.len() as f64 / texts.len() as f64
                );
                let step = (hits.len() / samples_per_reason.max(1)).max(1);
                for text in hits.iter().step_by(step).take(samples_per_reason) {
                    println!("      {text}");
                }
            }
        }
        println!(
            "mean cost per check_prompt (incl. normalisation): {:.2} µs over {total_calls} texts",
            total_time.as_secs_f64() * 1e6 / total_calls as f64
        );
    }

    /// Cost of one call on a 200-character prompt. Run like `dev_pairs_flag_rates`.
    #[test]
    #[ignore = "timing; meaningful only in release builds"]
    fn cost_per_call() {
        let r = rules();
        let prompts = [
            "Could you explain in simple terms how the immune system recognises a virus it has never seen before, and why vaccines help it do that faster? Please keep it short and give one example.",
            "I ordered 3 items for $129.99 on order 12345678 and want to know when they ship; my previous order 87654321 took 5 days. Also what is 4111 plus 7, and how many days are in 2024?",
            "Je voudrais comprendre comment fonctionne le système immunitaire face à un virus inconnu, et pourquoi les vaccins l'aident à réagir plus vite. Donne un exemple concret, s'il te plaît.",
            "请用简单的语言解释免疫系统是如何识别从未见过的病毒的，以及为什么疫苗可以帮助它更快地做到这一点？请简短回答并举一个例子。这是一个关于生物学的问题，谢谢你的耐心解答。",
        ];
        for prompt in prompts {
            let n = 20_000;
            let start = std::time::Instant::now();
            let mut hits = 0;
            for _ in 0..n {
                hits += usize::from(
                    r.check_prompt_at(std::hint::black_box(prompt), 2026)
                        .is_some(),
                );
            }
            let per_call = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            let (pii, time) = (PiiDetector::new(), TimeDetector::new());
            let start = std::time::Instant::now();
            for _ in 0..n {
                hits += usize::from(pii.detect(std::hint::black_box(prompt)).is_some());
            }
            let pii_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            let start = std::time::Instant::now();
            for _ in 0..n {
                hits += usize::from(time.is_time_sensitive(std::hint::black_box(prompt), 2026));
            }
            let time_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            println!(
                "{per_call:.2} µs/call (personal data {pii_us:.2}, time {time_us:.2}), {} chars, flagged {}: {prompt:.40}",
                prompt.chars().count(),
                hits > 0
            );
        }
    }
}
