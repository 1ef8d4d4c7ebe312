//! Categories: kinds of traffic with their own similarity threshold, TTL and cacheability
//! (FAQ-style questions tolerate a different threshold than transactions). A request's
//! category comes from, in order: an explicit hint (request header), keyword rules on the
//! prompt, the nearest labelled example prompt (embedded once at start), else `default`.
//!
//! This module only decides; the engine applies the decision (threshold, freshness,
//! bypass) and records the category with each entry.

use serde::{Deserialize, Serialize};

/// The name of the category that applies when nothing else does.
pub const DEFAULT_CATEGORY: &str = "default";

/// One category as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    /// In a config file, the name is the table's key (`[categories.faq]`) and may be left
    /// out here.
    #[serde(default)]
    pub name: String,
    /// Least cosine similarity for a semantic hit in this category (with the learned
    /// verifier: for a candidate to be judged at all).
    pub min_similarity: f32,
    /// Least probability from the learned verifier for a semantic hit in this category
    /// (unset: the model's recommendation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f32>,
    /// This category's error budget: the largest share of its semantic hits that may be
    /// wrong (unset: `cache.max_false_hit_rate`). See [`crate::budget`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_false_hit_rate: Option<f64>,
    /// Entries of this category older than this are not served (`None`: no limit).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// `false`: requests of this category always bypass the cache (e.g. transactions).
    #[serde(default = "yes")]
    pub cacheable: bool,
    /// Words or phrases that put a prompt in this category (case-insensitive; whole words
    /// in space-separated scripts, substrings in Chinese/Japanese).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Example prompts; a prompt whose embedding is close to one of them (cosine ≥
    /// `examples_min_similarity`) belongs to this category.
    #[serde(default)]
    pub examples: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Index of a category in its [`Policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CategoryId(pub u16);

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("category {name:?}: {message}")]
    Invalid { name: String, message: String },
}

/// The configured categories, compiled for classification.
#[derive(Debug, Clone)]
pub struct Policy {
    categories: Vec<CategorySpec>,
    /// Lowercased keywords with their category, longest first (a longer phrase wins).
    keywords: Vec<(String, CategoryId)>,
    /// Every keyword in one automaton (pattern `i` is `keywords[i]`), so a prompt is read
    /// once, not once per keyword; `None` without keywords.
    keyword_matcher: Option<aho_corasick::AhoCorasick>,
    /// The examples' embeddings and the least similarity to one of them, per embedding
    /// space (the engine's embedders: `0` the first, see `CacheOptions::other_languages`):
    /// a prompt is compared with the examples its own embedder embedded.
    examples: Vec<SpaceExamples>,
}

/// One embedding space's example vectors and the least similarity to one of them.
#[derive(Debug, Clone, Default)]
struct SpaceExamples {
    vectors: Vec<(CategoryId, Vec<f32>)>,
    min_similarity: f32,
}

/// The thresholds and the category a lookup applies ([`Policy::tightened`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied<'a> {
    /// The category stored with the answer (its TTL applies).
    pub name: &'a str,
    pub min_similarity: f32,
    /// Each category's own least confidence (`None`: the model's).
    min_confidence: [Option<f32>; 2],
}

impl Applied<'_> {
    /// The least verifier confidence: the higher of the categories', each defaulting to
    /// the model's own.
    pub fn min_confidence(&self, model_default: f32) -> f32 {
        self.min_confidence
            .iter()
            .map(|c| c.unwrap_or(model_default))
            .fold(f32::MIN, f32::max)
    }
}

impl Policy {
    /// `default` applies when no category matches; `others` are checked for keywords in
    /// order, and by nearest example.
    pub fn new(
        default_min_similarity: f32,
        default_min_confidence: Option<f32>,
        default_ttl_secs: Option<u64>,
        others: Vec<CategorySpec>,
    ) -> Result<Policy, PolicyError> {
        if default_min_confidence.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            return Err(PolicyError::Invalid {
                name: DEFAULT_CATEGORY.to_string(),
                message: "min_confidence must be between 0 and 1".into(),
            });
        }
        let mut categories = vec![CategorySpec {
            name: DEFAULT_CATEGORY.to_string(),
            min_similarity: default_min_similarity,
            min_confidence: default_min_confidence,
            max_false_hit_rate: None,
            ttl_secs: default_ttl_secs,
            cacheable: true,
            keywords: Vec::new(),
            examples: Vec::new(),
        }];
        for c in others {
            let bad = |message: &str| PolicyError::Invalid {
                name: c.name.clone(),
                message: message.to_string(),
            };
            let valid_name = !c.name.is_empty()
                && c.name.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
                });
            if !valid_name {
                return Err(bad("names use a-z, 0-9, '_' and '-'"));
            }
            if !(0.0..=1.0).contains(&c.min_similarity) {
                return Err(bad("min_similarity must be between 0 and 1"));
            }
            if c.min_confidence.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
                return Err(bad("min_confidence must be between 0 and 1"));
            }
            if categories.iter().any(|e| e.name == c.name) {
                return Err(bad("is defined twice (or redefines the default)"));
            }
            categories.push(c);
        }
        if categories.len() > u16::MAX as usize {
            return Err(PolicyError::Invalid {
                name: String::new(),
                message: "too many categories".into(),
            });
        }
        let mut keywords: Vec<(String, CategoryId)> = categories
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.keywords
                    .iter()
                    .filter(|k| !k.trim().is_empty())
                    .map(move |k| (k.trim().to_lowercase(), CategoryId(i as u16)))
            })
            .collect();
        keywords.sort_by_key(|k| std::cmp::Reverse(k.0.chars().count()));
        let keyword_matcher = if keywords.is_empty() {
            None
        } else {
            let built = aho_corasick::AhoCorasick::new(keywords.iter().map(|k| &k.0));
            Some(built.map_err(|e| PolicyError::Invalid {
                name: String::new(),
                message: format!("the categories' keywords cannot be matched: {e}"),
            })?)
        };
        Ok(Policy {
            categories,
            keywords,
            keyword_matcher,
            examples: Vec::new(),
        })
    }

    /// One default category and nothing else.
    pub fn single(min_similarity: f32, ttl_secs: Option<u64>) -> Policy {
        Policy {
            categories: vec![CategorySpec {
                name: DEFAULT_CATEGORY.to_string(),
                min_similarity,
                min_confidence: None,
                max_false_hit_rate: None,
                ttl_secs,
                cacheable: true,
                keywords: Vec::new(),
                examples: Vec::new(),
            }],
            keywords: Vec::new(),
            keyword_matcher: None,
            examples: Vec::new(),
        }
    }

    pub fn default_id(&self) -> CategoryId {
        CategoryId(0)
    }

    pub fn get(&self, id: CategoryId) -> &CategorySpec {
        // Ids are only made by this policy, so the index is in range; fall back to the
        // default rather than panic if one from another policy slips in.
        self.categories
            .get(id.0 as usize)
            .unwrap_or(&self.categories[0])
    }

    /// What a lookup applies when the client named `hint` and the prompt was classified as
    /// `classified` (`None`: the default category): a hint may only tighten, so the higher
    /// similarity and confidence thresholds of the two, and the name (hence the TTL) of the
    /// one that keeps the answer for less time. (Cacheability is checked before: either
    /// being uncacheable bypasses.)
    pub fn tightened(
        &self,
        hint: Option<CategoryId>,
        classified: Option<CategoryId>,
    ) -> Applied<'_> {
        let base = self.get(classified.unwrap_or(self.default_id()));
        let Some(hint) = hint.map(|h| self.get(h)).filter(|h| h.name != base.name) else {
            return Applied {
                name: &base.name,
                min_similarity: base.min_similarity,
                min_confidence: [base.min_confidence, base.min_confidence],
            };
        };
        // `None` is no TTL of the category's own, which keeps an entry longest.
        let shorter = match (hint.ttl_secs, base.ttl_secs) {
            (Some(h), Some(b)) => h <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        Applied {
            name: if shorter { &hint.name } else { &base.name },
            min_similarity: hint.min_similarity.max(base.min_similarity),
            min_confidence: [hint.min_confidence, base.min_confidence],
        }
    }

    pub fn by_name(&self, name: &str) -> Option<CategoryId> {
        self.categories
            .iter()
            .position(|c| c.name == name)
            .map(|i| CategoryId(i as u16))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.name.as_str())
    }

    /// The example prompts to embed at start, with their category.
    pub fn example_texts(&self) -> Vec<(CategoryId, String)> {
        self.categories
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.examples
                    .iter()
                    .map(move |e| (CategoryId(i as u16), e.clone()))
            })
            .collect()
    }

    /// Installs the embeddings of [`Policy::example_texts`] by embedding space `space`'s
    /// embedder, and the least similarity to one of them for that embedder (whose cosines
    /// may sit elsewhere).
    pub fn set_space_examples(
        &mut self,
        space: usize,
        min_similarity: f32,
        vectors: Vec<(CategoryId, Vec<f32>)>,
    ) {
        if self.examples.len() <= space {
            self.examples.resize_with(space + 1, SpaceExamples::default);
        }
        self.examples[space] = SpaceExamples {
            vectors,
            min_similarity,
        };
    }

    /// Keyword rules. `None` when no keyword matches.
    pub fn classify_text(&self, prompt: &str) -> Option<CategoryId> {
        let matcher = self.keyword_matcher.as_ref()?;
        let lower = prompt.to_lowercase();
        // The first keyword in order (the longest) found as a whole word, as if each were
        // searched for in turn.
        let mut first: Option<usize> = None;
        for m in matcher.find_overlapping_iter(&lower) {
            let i = m.pattern().as_usize();
            if first.is_none_or(|f| i < f) && word_at(&lower, m.start(), m.end()) {
                first = Some(i);
            }
        }
        first.map(|i| self.keywords[i].1)
    }

    /// Nearest labelled example embedded by embedding space `space`'s embedder, if close
    /// enough for it.
    pub fn classify_vector_in(&self, space: usize, v: &[f32]) -> Option<CategoryId> {
        let examples = self.examples.get(space)?;
        let mut best: Option<(f32, CategoryId)> = None;
        for (id, e) in &examples.vectors {
            if e.len() != v.len() {
                continue;
            }
            let s: f32 = e.iter().zip(v).map(|(a, b)| a * b).sum();
            if s >= examples.min_similarity && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, *id));
            }
        }
        best.map(|(_, id)| id)
    }
}

/// Whether `needle` occurs in `haystack` as a whole word (see [`word_at`]), searching for
/// it alone: what the one-pass automaton of [`Policy::classify_text`] must agree with.
#[cfg(test)]
fn contains_word(haystack: &str, needle: &str) -> bool {
    let mut start = 0;
    while let Some(pos) = haystack[start..].find(needle) {
        let at = start + pos;
        if word_at(haystack, at, at + needle.len()) {
            return true;
        }
        start = at + needle.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Whether the match `haystack[at..end]` stands as a whole word (both lowercased): around it
/// a non-alphanumeric character or the text's edge — except next to CJK characters, which
/// are not separated by spaces.
fn word_at(haystack: &str, at: usize, end: usize) -> bool {
    let is_cjk = |c: char| matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF);
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() || is_cjk(c));
    let needle = &haystack[at..end];
    let before = haystack[..at].chars().next_back();
    let after = haystack[end..].chars().next();
    let ok_before = needle.chars().next().is_some_and(is_cjk) || boundary(before);
    let ok_after = needle.chars().next_back().is_some_and(is_cjk) || boundary(after);
    ok_before && ok_after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, keywords: &[&str]) -> CategorySpec {
        CategorySpec {
            name: name.into(),
            min_similarity: 0.9,
            min_confidence: None,
            max_false_hit_rate: None,
            ttl_secs: None,
            cacheable: true,
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            examples: Vec::new(),
        }
    }

    #[test]
    fn a_hint_only_tightens() {
        let cat = |name: &str, min: f32, conf: Option<f32>, ttl: Option<u64>| CategorySpec {
            min_similarity: min,
            min_confidence: conf,
            max_false_hit_rate: None,
            ttl_secs: ttl,
            ..spec(name, &[])
        };
        let p = Policy::new(
            0.95,
            None,
            None,
            vec![
                cat("loose", 0.80, Some(0.5), Some(60)),
                cat("strict", 0.99, Some(0.99), Some(3_600)),
            ],
        )
        .unwrap();
        let (loose, strict) = (p.by_name("loose"), p.by_name("strict"));
        let plain = p.tightened(None, None);
        assert_eq!((plain.name, plain.min_similarity), ("default", 0.95));
        // Named for a default prompt, "loose" keeps the default's similarity and the
        // model's confidence, but its own shorter TTL.
        let a = p.tightened(loose, None);
        assert_eq!((a.name, a.min_similarity), ("loose", 0.95));
        assert_eq!(a.min_confidence(0.8), 0.8);
        // "strict" raises both; the classified "loose" keeps its shorter TTL.
        let b = p.tightened(strict, loose);
        assert_eq!((b.name, b.min_similarity), ("loose", 0.99));
        assert_eq!(b.min_confidence(0.8), 0.99);
        let same = p.tightened(strict, strict);
        assert_eq!((same.name, same.min_similarity), ("strict", 0.99));
    }

    #[test]
    fn keywords_match_whole_words_in_four_languages() {
        let p = Policy::new(
            0.95,
            None,
            None,
            vec![
                spec("pricing", &["price", "prix", "价格", "prijs"]),
                spec("transactional", &["transfer money", "virement"]),
            ],
        )
        .unwrap();
        let cases = [
            ("What is the price of the pro plan?", Some("pricing")),
            ("Quel est le prix ?", Some("pricing")),
            ("这个的价格是多少", Some("pricing")),
            ("Wat is de prijs?", Some("pricing")),
            ("priceless art", None),
            ("Please TRANSFER MONEY to Bob", Some("transactional")),
            ("Faire un virement de 10 €", Some("transactional")),
            ("How do I reset my password?", None),
        ];
        for (text, want) in cases {
            let got = p.classify_text(text).map(|id| p.get(id).name.as_str());
            assert_eq!(got, want, "{text}");
        }
    }

    /// The automaton finds what searching for each keyword in turn finds: the longest
    /// keyword standing as a whole word, wherever an overlapping or shorter one matched
    /// first.
    #[test]
    fn one_pass_over_the_prompt_finds_what_each_keyword_in_turn_finds() {
        let p = Policy::new(
            0.95,
            None,
            None,
            vec![
                spec("a", &["price", "price list", "list", "转账", "下单"]),
                spec("b", &["send money", "money", "pricelist", "ice"]),
                spec("c", &["send", "envoyer de l'argent", "l'argent"]),
            ],
        )
        .unwrap();
        let pieces = [
            "price",
            "list",
            "send",
            "money",
            "ice",
            "pricelist",
            "转账",
            "下单",
            "l'argent",
            "envoyer de",
            " ",
            ", ",
            "x",
            "é",
            "über",
            "",
            "PRICE ",
            "-",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b} {c}{b}{a}");
                    let lower = text.to_lowercase();
                    let each_in_turn = p
                        .keywords
                        .iter()
                        .find(|(k, _)| contains_word(&lower, k))
                        .map(|(_, id)| *id);
                    assert_eq!(p.classify_text(&text), each_in_turn, "{text:?}");
                    checked += usize::from(each_in_turn.is_some());
                }
            }
        }
        assert!(checked > 1_000, "{checked}");
    }

    #[test]
    fn nearest_example_needs_enough_similarity() {
        let mut p = Policy::new(0.95, None, None, vec![spec("faq", &[])]).unwrap();
        let faq = p.by_name("faq").unwrap();
        p.set_space_examples(0, 0.8, vec![(faq, vec![1.0, 0.0])]);
        assert_eq!(p.classify_vector_in(0, &[0.9, 0.436]), Some(faq));
        assert_eq!(p.classify_vector_in(0, &[0.5, 0.866]), None);
    }

    #[test]
    fn invalid_categories_are_named() {
        for (c, want) in [
            (spec("Bad Name", &[]), "Bad Name"),
            (spec("default", &[]), "default"),
            (
                CategorySpec {
                    min_similarity: 1.5,
                    ..spec("faq", &[])
                },
                "faq",
            ),
            (
                CategorySpec {
                    min_confidence: Some(-0.1),
                    max_false_hit_rate: None,
                    ..spec("support", &[])
                },
                "min_confidence",
            ),
        ] {
            let err = Policy::new(0.95, None, None, vec![c])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = Policy::new(0.95, Some(1.5), None, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("default") && err.contains("min_confidence"),
            "{err}"
        );
    }
}
