//! Verification of semantic candidates: after the vector search finds a cached prompt
//! similar enough, decide whether it really asks the same thing. Embedding similarity
//! cannot tell "order #4821" from "order #4812", "enable" from "disable" or "from Paris to
//! London" from "from London to Paris"; these cheap, explainable checks can. A rejected
//! candidate is not served, and the reason is reported.
//!
//! Every rule compares what differs between the two prompts, never what one of them
//! merely contains: a word both prompts use cannot make them differ. The rules know
//! English, French, Dutch and Chinese words; numbers, names and code identifiers work in
//! any language written with Latin letters.
//!
//! This is not a paraphrase detector: it only vetoes candidates the embedding already
//! found similar, and it errs towards serving (a missed veto costs a wrong answer the
//! threshold already allowed; a false veto costs one upstream call).

pub mod answer;
pub mod features;
mod frames;
pub mod lang;
mod lexicon;
pub mod model;
mod text;
pub mod vocab;

use std::ops::BitOr;

pub use frames::{same_request, same_wording};
use lexicon::{Negator, Slot};
use text::{Kind, Text};
pub use vocab::Vocabulary;

/// Why a semantic candidate was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Numbers, amounts, IDs, dates, weekdays or units differ.
    Number,
    /// One prompt negates what the other affirms.
    Negation,
    /// One prompt says a term where the other says its opposite (enable / disable).
    Antonym,
    /// The same two things in opposite directions ("from A to B" / "from B to A").
    Direction,
    /// A name, product, identifier or quoted string was replaced by another.
    Entity,
    /// The learned verifier ([`model`]) is not confident enough that they ask the same.
    Model,
    /// The prompts differ where the embedder cannot see (its unknown token, or past its
    /// longest input), so their similarity does not vouch for that difference
    /// ([`crate::Embedder::unseen`]).
    Unseen,
    /// The pair model read both prompts and the verifier stacked on it was not confident
    /// enough (the second path, after the features alone were not sure).
    Pair,
    /// The prompts are plainly written in different languages ([`lang::differ`]): the
    /// cached answer is in the other one.
    Language,
}

impl RejectReason {
    /// Every reason, in declaration order: `ALL[r.index()] == r`, so per-reason tables
    /// (metrics, the dashboard's counts) are arrays indexed by [`RejectReason::index`].
    pub const ALL: [RejectReason; 9] = [
        RejectReason::Number,
        RejectReason::Negation,
        RejectReason::Antonym,
        RejectReason::Direction,
        RejectReason::Entity,
        RejectReason::Model,
        RejectReason::Unseen,
        RejectReason::Pair,
        RejectReason::Language,
    ];

    /// This reason's place in [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::Number => "number",
            RejectReason::Negation => "negation",
            RejectReason::Antonym => "antonym",
            RejectReason::Direction => "direction",
            RejectReason::Entity => "entity",
            RejectReason::Model => "model",
            RejectReason::Unseen => "unseen",
            RejectReason::Pair => "pair",
            RejectReason::Language => "language",
        }
    }
}

/// A set of verification rules, for measuring them one by one; [`verify`] uses
/// [`Rules::SHIPPED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rules(u32);

impl Rules {
    /// Both prompts mention numbers, and they differ.
    pub const NUMBER_CHANGED: Rules = Rules(1);
    /// Only one prompt mentions a number (other than one).
    pub const NUMBER_ADDED: Rules = Rules(1 << 1);
    /// Different weekdays, months, days (today / tomorrow) or times of day.
    pub const DATE: Rules = Rules(1 << 2);
    /// Negation polarity differs.
    pub const NEGATION: Rules = Rules(1 << 3);
    /// A term against its opposite from the antonym tables.
    pub const ANTONYM: Rules = Rules(1 << 4);
    /// A word against itself with a negating prefix ("possible" / "impossible").
    pub const ANTONYM_PREFIX: Rules = Rules(1 << 5);
    /// The same pair in opposite directions.
    pub const DIRECTION: Rules = Rules(1 << 6);
    /// Each prompt names an entity the other does not.
    pub const ENTITY_CHANGED: Rules = Rules(1 << 7);
    /// Only one prompt names an entity the other does not.
    pub const ENTITY_ADDED: Rules = Rules(1 << 8);

    pub const NONE: Rules = Rules(0);
    /// The rules that paid on the development data without costing more true hits than
    /// the wrong answers they prevent.
    pub const SHIPPED: Rules = Rules(
        Self::NUMBER_CHANGED.0
            | Self::DATE.0
            | Self::NEGATION.0
            | Self::ANTONYM.0
            | Self::ANTONYM_PREFIX.0
            | Self::DIRECTION.0,
    );

    /// Every rule with its name, for reports.
    pub const EACH: [(Rules, &'static str); 9] = [
        (Self::NUMBER_CHANGED, "number-changed"),
        (Self::NUMBER_ADDED, "number-added"),
        (Self::DATE, "date"),
        (Self::NEGATION, "negation"),
        (Self::ANTONYM, "antonym"),
        (Self::ANTONYM_PREFIX, "antonym-prefix"),
        (Self::DIRECTION, "direction"),
        (Self::ENTITY_CHANGED, "entity-changed"),
        (Self::ENTITY_ADDED, "entity-added"),
    ];

    pub const fn contains(self, other: Rules) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Rules) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for Rules {
    type Output = Rules;
    fn bitor(self, rhs: Rules) -> Rules {
        Rules(self.0 | rhs.0)
    }
}

/// Checks whether the answer cached for `cached` may answer `query`. Both are normalised
/// prompts.
pub fn verify(cached: &str, query: &str) -> Result<(), RejectReason> {
    verify_with(cached, query, Rules::SHIPPED)
}

/// [`verify`] with a chosen set of rules.
pub fn verify_with(cached: &str, query: &str, rules: Rules) -> Result<(), RejectReason> {
    if cached == query {
        return Ok(());
    }
    if lang::differ(cached, query) {
        return Err(RejectReason::Language);
    }
    let a = Text::parse(cached);
    let b = Text::parse(query);
    let diff = Diff::new(&a, &b);
    check(&a, &b, &diff, rules)
}

/// Every rule of [`Rules::EACH`] that would reject `query` for `cached`, each checked on
/// its own: the learned verifier ([`model`]) uses them as features.
pub fn fired(cached: &str, query: &str) -> Rules {
    if cached == query {
        return Rules::NONE;
    }
    let a = Text::parse(cached);
    let b = Text::parse(query);
    let diff = Diff::new(&a, &b);
    Rules::EACH
        .iter()
        .filter(|(rule, _)| check(&a, &b, &diff, *rule).is_err())
        .fold(Rules::NONE, |acc, (rule, _)| acc | *rule)
}

/// The rules that still veto a candidate outright when the learned verifier decides; the
/// others are only features. Measured on the development dumps (pairs at cosine ≥ 0.8 on
/// which one of these fires): 95% of HWU64's, 89% of STS-B's, 85% of PAWS's and 68% of
/// Quora's are different questions, but only half of BANKING77's (18 pairs) and 37% of
/// MRPC's (news sentences whose numbers are written differently). They stay vetoes because
/// a false veto costs one upstream call while a missed one serves a wrong answer, and the
/// training files have too few firings to weigh them as features; turning some into
/// features is the next thing to measure.
pub const MODEL_VETOES: Rules = Rules::SHIPPED;

/// The learned verifier's decision on a candidate the vector search found: a veto rule
/// ([`MODEL_VETOES`]) rejects it with that rule's reason; otherwise the model's probability
/// that it asks the same thing must reach `min_confidence`, or the two prompts must differ
/// only in their question frames ([`same_request`]: "How do I …" / "What is the best way
/// to …"). On success, returns that probability. A model rejection names a rule that fired when one did (a feature the
/// model weighed), else [`RejectReason::Model`].
pub fn verify_model(
    model: &model::Model,
    cached: &str,
    query: &str,
    cosine: f32,
    pair_logit: Option<f32>,
    min_confidence: f32,
    vocab: Option<&Vocabulary>,
) -> Result<f32, RejectReason> {
    if cached == query {
        return Ok(1.0);
    }
    let rules = vetoed(cached, query)?;
    let p = model.probability_with(
        &features::extract_with(cached, query, cosine, rules),
        pair_logit,
    );
    if p >= min_confidence || same_request(cached, query, vocab) {
        Ok(p)
    } else {
        Err(reason_of(rules).unwrap_or(RejectReason::Model))
    }
}

/// The veto rules the learned verifier applies first ([`MODEL_VETOES`]): the reason of
/// the first that fires, if any.
pub fn vetoes(cached: &str, query: &str) -> Result<(), RejectReason> {
    vetoed(cached, query).map(|_| ())
}

/// The prompts in two languages, or the first veto rule that fires; otherwise every rule
/// that fired (the verifier weighs the others as features).
fn vetoed(cached: &str, query: &str) -> Result<Rules, RejectReason> {
    if lang::differ(cached, query) {
        return Err(RejectReason::Language);
    }
    let rules = fired(cached, query);
    match reason_of(Rules(rules.0 & MODEL_VETOES.0)) {
        Some(reason) => Err(reason),
        None => Ok(rules),
    }
}

/// The reason to report for the first rule of `rules`, if any.
fn reason_of(rules: Rules) -> Option<RejectReason> {
    Rules::EACH
        .iter()
        .find(|(r, _)| rules.contains(*r))
        .map(|(r, _)| match *r {
            Rules::NEGATION => RejectReason::Negation,
            Rules::ANTONYM | Rules::ANTONYM_PREFIX => RejectReason::Antonym,
            Rules::DIRECTION => RejectReason::Direction,
            Rules::ENTITY_CHANGED | Rules::ENTITY_ADDED => RejectReason::Entity,
            _ => RejectReason::Number,
        })
}

fn check(a: &Text, b: &Text, diff: &Diff, rules: Rules) -> Result<(), RejectReason> {
    if rules.intersects(Rules::NUMBER_CHANGED | Rules::NUMBER_ADDED) {
        numbers(a, b, rules)?;
    }
    if rules.intersects(Rules::DATE | Rules::ANTONYM) {
        groups(a, b, diff, rules)?;
    }
    if rules.contains(Rules::NEGATION)
        && negations(a) % 2 != negations(b) % 2
        && mostly_same(a, b, diff)
    {
        return Err(RejectReason::Negation);
    }
    if rules.contains(Rules::ANTONYM_PREFIX) {
        prefixed_opposites(a, b, diff)?;
    }
    if rules.contains(Rules::ANTONYM) {
        question_words(a, b, diff)?;
    }
    if rules.contains(Rules::DIRECTION) {
        direction(a, b)?;
        pronoun_roles(a, b, diff)?;
    }
    if rules.intersects(Rules::ENTITY_CHANGED | Rules::ENTITY_ADDED) {
        entities(a, b, diff, rules)?;
    }
    Ok(())
}

/// The words one prompt has more often than the other (case-insensitive), as token
/// indices into each text.
struct Diff {
    a_only: Vec<usize>,
    b_only: Vec<usize>,
}

impl Diff {
    fn new(a: &Text, b: &Text) -> Diff {
        // Sorted by hash, not text: only equality matters, and integers compare fast.
        let words = |t: &Text| {
            let mut w: Vec<(u64, usize)> = (0..t.tokens.len())
                .filter(|&i| t.tokens[i].kind == Kind::Word)
                .map(|i| (t.tokens[i].hash, i))
                .collect();
            w.sort_unstable();
            w
        };
        let (wa, wb) = (words(a), words(b));
        let mut diff = Diff {
            a_only: Vec::new(),
            b_only: Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < wa.len() || j < wb.len() {
            let order = match (wa.get(i), wb.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    diff.a_only.push(wa[i].1);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    diff.b_only.push(wb[j].1);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
            }
        }
        diff
    }
}

/// Numbers must match one to one (by value, with compatible units). A lone "one" left
/// over on one side is forgiven: "an hour" and "1 hour" ask the same.
fn numbers(a: &Text, b: &Text, rules: Rules) -> Result<(), RejectReason> {
    if a.numbers.is_empty() && b.numbers.is_empty() {
        return Ok(());
    }
    let mut used = vec![false; b.numbers.len()];
    let (mut a_left, mut a_left_big) = (0, 0);
    for na in &a.numbers {
        let found = b
            .numbers
            .iter()
            .enumerate()
            .position(|(j, nb)| !used[j] && nb.key == na.key && nb.unit.compatible(na.unit));
        match found {
            Some(j) => used[j] = true,
            None => {
                a_left += 1;
                a_left_big += usize::from(!na.is_one);
            }
        }
    }
    let (mut b_left, mut b_left_big) = (0, 0);
    for (nb, _) in b.numbers.iter().zip(&used).filter(|(_, u)| !**u) {
        b_left += 1;
        b_left_big += usize::from(!nb.is_one);
    }
    let changed = a_left > 0 && b_left > 0;
    let added = (a_left_big > 0 && b_left == 0) || (b_left_big > 0 && a_left == 0);
    if (changed && rules.contains(Rules::NUMBER_CHANGED))
        || (added && rules.contains(Rules::NUMBER_ADDED))
    {
        return Err(RejectReason::Number);
    }
    Ok(())
}

/// Mutually exclusive terms: reject when one prompt says one class of a group more often
/// and the other prompt says another class more often ("open" / "close", "monday" /
/// "tuesday"). A prompt that merely adds a term ("open and close") is not rejected.
fn groups(a: &Text, b: &Text, diff: &Diff, rules: Rules) -> Result<(), RejectReason> {
    let mut net: Vec<(Slot, i32)> = Vec::new();
    let mut add = |slot: Slot, n: i32| match net.iter_mut().find(|(s, _)| *s == slot) {
        Some((_, count)) => *count += n,
        None => net.push((slot, n)),
    };
    for (text, only, sign) in [(a, &diff.a_only, 1), (b, &diff.b_only, -1)] {
        for &i in only {
            if let Some(slots) = lexicon::WORD_SLOTS.get(text.lower(&text.tokens[i])) {
                for &slot in slots {
                    add(slot, sign);
                }
            }
        }
    }
    if a.has_han || b.has_han {
        for &(term, slot) in lexicon::HAN_TERMS.iter() {
            let n = a.src.matches(term).count() as i32 - b.src.matches(term).count() as i32;
            if n != 0 {
                add(slot, n);
            }
        }
    }
    for &(s1, n1) in net.iter().filter(|(_, n)| *n > 0) {
        for &(s2, _) in net.iter().filter(|(_, n)| *n < 0) {
            if s1.0 == s2.0 && s1.1 != s2.1 {
                let reason = lexicon::GROUPS[s1.0 as usize].reason;
                let enabled = match reason {
                    RejectReason::Number => Rules::DATE,
                    _ => Rules::ANTONYM,
                };
                if rules.contains(enabled) && n1 > 0 {
                    return Err(reason);
                }
            }
        }
    }
    Ok(())
}

/// A question word traded for one that asks for something else, and nothing else changed:
/// "Where was the wheel invented?" / "When was the wheel invented?" (a place, a time, a
/// person or a reason: [`lexicon::question_word`]). With other words changed too, the
/// other prompt often asks the same in another frame ("Why hasn't my card arrived?" /
/// "When will my card arrive?"), so only the one-word swap is refused.
fn question_words(a: &Text, b: &Text, diff: &Diff) -> Result<(), RejectReason> {
    if let ([i], [j]) = (diff.a_only.as_slice(), diff.b_only.as_slice()) {
        let x = lexicon::question_word(a.lower(&a.tokens[*i]));
        let y = lexicon::question_word(b.lower(&b.tokens[*j]));
        if matches!((x, y), (Some(x), Some(y)) if x != y) {
            return Err(RejectReason::Antonym);
        }
    }
    Ok(())
}

/// Whether the prompts say nearly the same thing apart from negation words: then a flip of
/// polarity is what differs. When much else differs too, the other side often says the
/// same thing without a negation word ("is broken" / "does not work"): on the development
/// data an unrestricted polarity check lost four true matches for each wrong one stopped.
fn mostly_same(a: &Text, b: &Text, diff: &Diff) -> bool {
    let words = |t: &Text| t.tokens.iter().filter(|x| x.kind == Kind::Word).count();
    let differing =
        unpaired(a, &diff.a_only, b, &diff.b_only) + unpaired(b, &diff.b_only, a, &diff.a_only);
    let total = words(a) + words(b);
    // Chinese has no word tokens to compare; trust the polarity there.
    total < 4
        || (differing <= NEGATION_MAX_DIFFERING
            && differing * 100 <= total * NEGATION_MAX_DIFFERING_PCT)
}

/// Differing words of `t` that are not negations, auxiliaries (contracted onto a pronoun
/// too: "I've" / "I haven't"), the adverbs that go with a polarity ("already" / "yet"), or
/// inflections of a differing word of `other` ("work" / "working").
fn unpaired(t: &Text, only: &[usize], other: &Text, other_only: &[usize]) -> usize {
    only.iter()
        .map(|&i| t.lower(&t.tokens[i]))
        .filter(|w| {
            lexicon::negator(w).is_none()
                && !lexicon::is_auxiliary(w)
                && !lexicon::is_polarity_adverb(w)
                && lexicon::contracted_pronoun(w).is_none()
        })
        // A pronoun the other prompt has with an auxiliary contracted onto it.
        .filter(|w| {
            !other_only
                .iter()
                .any(|&j| lexicon::contracted_pronoun(other.lower(&other.tokens[j])) == Some(*w))
        })
        .filter(|w| {
            !other_only.iter().any(|&j| {
                let o = other.lower(&other.tokens[j]);
                let common = w.bytes().zip(o.bytes()).take_while(|(x, y)| x == y).count();
                common >= 4 || (common >= 3 && common == w.len().min(o.len()))
            })
        })
        .count()
}

/// At most this many other words may differ for a polarity flip to count.
const NEGATION_MAX_DIFFERING: usize = 2;

/// The share of differing words (negations aside) above which a polarity flip is not
/// trusted, in percent.
const NEGATION_MAX_DIFFERING_PCT: usize = 25;

/// How many negations a prompt makes. Only the parity matters: "not impossible" is
/// possible. A negated English auxiliary opening a sentence ("Can't I …?", "Don't you
/// think …?") asks a question rather than negating; "non-" is a prefix; and A-not-A questions (是不是, 有没有) do not
/// negate either.
fn negations(t: &Text) -> u32 {
    let (mut plain, mut ne, mut pas) = (0u32, 0u32, 0u32);
    let word = |i: usize| t.tokens.get(i).map_or("", |x| t.lower(x));
    for (i, tok) in t.tokens.iter().enumerate() {
        match tok.kind {
            Kind::Word => {
                let w = t.lower(tok);
                match lexicon::negator(w) {
                    Some(Negator::Plain) => {
                        let question = tok.sentence_start && lexicon::is_negated_auxiliary(w);
                        let idiom = (w == "not" && matches!(word(i + 1), "only" | "just"))
                            || (w == "non" && t.followed_by_hyphen(tok))
                            || (w == "not" && i > 0 && word(i - 1) == "or")
                            || (w == "no" && (word(i + 1) == "matter" || t.followed_by_comma(tok)));
                        if !question && !idiom {
                            plain += 1;
                        }
                    }
                    Some(Negator::FrenchNe) => {
                        // "n'est-ce pas ?" is a tag question.
                        if (word(i + 1), word(i + 2), word(i + 3)) != ("est", "ce", "pas") {
                            ne += 1;
                        }
                    }
                    Some(Negator::FrenchPas)
                        if !(i >= 3
                            && (word(i - 3), word(i - 2), word(i - 1)) == ("n'", "est", "ce")) =>
                    {
                        pas += 1;
                    }
                    Some(Negator::FrenchPas) | None => {}
                }
            }
            Kind::Han => plain += chinese_negations(t.orig(tok)),
            Kind::Number => {}
        }
    }
    plain + ne.max(pas)
}

fn chinese_negations(run: &str) -> u32 {
    let mut count = 0;
    let mut prev: Option<char> = None;
    for (i, c) in run.char_indices() {
        let here = prev;
        prev = Some(c);
        if !lexicon::CHINESE_NEGATORS.contains(&c) {
            continue;
        }
        let next = run[i + c.len_utf8()..].chars().next();
        if matches!(c, '不' | '没') && here.is_some() && here == next {
            continue;
        }
        let lexicalised = lexicon::CHINESE_NOT_NEGATION.iter().any(|w| {
            w.char_indices()
                .filter(|&(_, wc)| wc == c)
                .any(|(o, _)| i >= o && run.get(i - o..).is_some_and(|r| r.starts_with(w)))
        });
        if !lexicalised {
            count += 1;
        }
    }
    count
}

/// "lock" / "unlock", "possible" / "impossible", "activer" / "désactiver",
/// "mogelijk" / "onmogelijk": one prompt has a word, the other the word with a negating
/// prefix (allowing for inflection on either side).
///
/// Not when the base word is itself negated ("not clear" / "unclear") or preceded by the
/// prefix as a separate word ("non-binding" / "nonbinding").
fn prefixed_opposites(a: &Text, b: &Text, diff: &Diff) -> Result<(), RejectReason> {
    let (a_negated, b_negated) = (negations(a) % 2 == 1, negations(b) % 2 == 1);
    for &i in &diff.a_only {
        let x = a.lower(&a.tokens[i]);
        for &j in &diff.b_only {
            let y = b.lower(&b.tokens[j]);
            let a_base = !a_negated && is_prefixed_opposite(x, y) && !split_prefix(a, i, y);
            let b_base = !b_negated && is_prefixed_opposite(y, x) && !split_prefix(b, j, x);
            if a_base || b_base {
                return Err(RejectReason::Antonym);
            }
        }
    }
    Ok(())
}

/// Whether the word before token `i` plus the token spell `joined` ("non" "binding").
fn split_prefix(t: &Text, i: usize, joined: &str) -> bool {
    i > 0 && joined.strip_prefix(t.lower(&t.tokens[i - 1])) == Some(t.lower(&t.tokens[i]))
}

fn is_prefixed_opposite(base: &str, word: &str) -> bool {
    if word.len() <= base.len() {
        return false;
    }
    let opposite = lexicon::NEGATING_PREFIXES.iter().any(|p| {
        word.strip_prefix(p).is_some_and(|rest| {
            let common = rest
                .char_indices()
                .zip(base.chars())
                .take_while(|((_, x), y)| x == y)
                .last()
                .map_or(0, |((i, c), _)| i + c.len_utf8());
            rest[..common].chars().count() >= 4
                && lexicon::INFLECTIONS.contains(&&rest[common..])
                && lexicon::INFLECTIONS.contains(&&base[common..])
        })
    });
    opposite && !lexicon::FALSE_PREFIXED.iter().any(|f| word.starts_with(f))
}

/// Direction: both prompts relate the same two things, in opposite directions.
fn direction(a: &Text, b: &Text) -> Result<(), RejectReason> {
    let (pa, pb) = (arrows(a), arrows(b));
    let swapped = pa
        .iter()
        .any(|&(x, y)| x != y && pb.contains(&(y, x)) && !pb.contains(&(x, y)));
    if swapped {
        return Err(RejectReason::Direction);
    }
    Ok(())
}

/// A role reversal told by the case of a pronoun: one prompt has a person as object
/// ("My manager keeps interrupting me"), the other as subject ("I keep interrupting my
/// manager"), and no other content word differs. With another word changed too, the
/// other prompt usually asks the same in another frame ("Can you help me reset …" / "How
/// can I reset …").
fn pronoun_roles(a: &Text, b: &Text, diff: &Diff) -> Result<(), RejectReason> {
    const CASES: &[(&str, &str)] = &[("i", "me"), ("we", "us"), ("he", "him"), ("they", "them")];
    let has = |t: &Text, only: &[usize], w: &str| only.iter().any(|&i| t.lower(&t.tokens[i]) == w);
    let role = |w: &str| CASES.iter().any(|&(s, o)| w == s || w == o);
    let reversed = CASES.iter().any(|&(subject, object)| {
        let a_object = has(a, &diff.a_only, object) && !has(a, &diff.a_only, subject);
        let b_subject = has(b, &diff.b_only, subject) && !has(b, &diff.b_only, object);
        let a_subject = has(a, &diff.a_only, subject) && !has(a, &diff.a_only, object);
        let b_object = has(b, &diff.b_only, object) && !has(b, &diff.b_only, subject);
        (a_object && b_subject) || (a_subject && b_object)
    });
    if !reversed {
        return Ok(());
    }
    let without = |t: &Text, only: &[usize]| -> Vec<usize> {
        only.iter()
            .copied()
            .filter(|&i| !role(t.lower(&t.tokens[i])))
            .collect()
    };
    let (a_rest, b_rest) = (without(a, &diff.a_only), without(b, &diff.b_only));
    let others = unpaired(a, &a_rest, b, &b_rest) + unpaired(b, &b_rest, a, &a_rest);
    if others == 0 {
        return Err(RejectReason::Direction);
    }
    Ok(())
}

/// The directed pairs a prompt mentions: "from X to Y", "X to Y", "convert X into Y",
/// "de X à Y", "van X naar Y", "da X a Y", "de X a Y", "von X nach Y", "convierto X en Y",
/// "converto X in Y", "converter X em Y", "wandle X in Y um", "从X到Y", "把X转换成Y".
fn arrows<'t>(t: &'t Text) -> Vec<(&'t str, &'t str)> {
    const FROM: &[&str] = &[
        "from", "de", "du", "des", "d'", "depuis", "van", "vanaf", "da", "dal", "dalla", "dallo",
        "dai", "dagli", "dalle", "del", "desde", "do", "dos", "das", "von", "vom", "aus",
    ];
    // Openers of Italian, Spanish, Portuguese and German, and the words that close them
    // ("da PayPal al conto", "de Madrid a Barcelona", "von Berlin nach Wien"): only after
    // such an opener, since "a" and "in" mean something else in English.
    const FROM_ROMANCE_GERMAN: &[&str] = &[
        "de", "da", "dal", "dalla", "dallo", "dai", "dagli", "dalle", "del", "desde", "do", "dos",
        "das", "von", "vom", "aus",
    ];
    const TO_ROMANCE_GERMAN: &[&str] = &[
        "a", "al", "alla", "allo", "ai", "agli", "alle", "hacia", "hasta", "para", "ao", "aos",
        "nach", "zum", "zur",
    ];
    const TO: &[&str] = &[
        "to", "into", "à", "au", "aux", "vers", "naar", "tot", "en", "in",
    ];
    const CONVERT: &[&str] = &[
        "convert",
        "converting",
        "translate",
        "translating",
        "transform",
        "change",
        "convertir",
        "convertis",
        "convertissez",
        "traduire",
        "traduis",
        "traduisez",
        "transformer",
        "omzetten",
        "zet",
        "converteren",
        "converteer",
        "vertalen",
        "vertaal",
        // Spanish, Italian, Portuguese, German.
        "convierto",
        "convierte",
        "conviertes",
        "convertimos",
        "transformar",
        "transformo",
        "traducir",
        "traduzco",
        "traduce",
        "convertire",
        "converto",
        "converti",
        "trasformare",
        "tradurre",
        "traduco",
        "converter",
        "converte",
        "traduzir",
        "traduzo",
        "umwandeln",
        "wandle",
        "wandelt",
        "konvertieren",
        "konvertiere",
        "übersetzen",
        "übersetze",
    ];
    const SKIP: &[&str] = &[
        "the", "a", "an", "my", "your", "this", "des", "du", "le", "la", "les", "l'", "un", "une",
        "mon", "ma", "mes", "ce", "cette", "het", "de", "een", "mijn", "dit", "deze", "il", "lo",
        "gli", "el", "los", "las", "o", "os", "as", "der", "die", "dem", "den", "mio", "mia", "mi",
        "mis", "meu", "minha", "mein", "meine", "meinem", "meinen", "meiner", "una", "uno", "um",
        "uma", "ein", "eine", "einen", "ich", "man",
    ];
    let mut out = Vec::new();
    let toks = &t.tokens;
    let content = |from: usize| {
        (from..toks.len().min(from + 3))
            .find(|&k| !SKIP.contains(&t.lower(&toks[k])))
            .map(|k| t.lower(&toks[k]))
    };
    for (i, tok) in toks.iter().enumerate() {
        let w = t.lower(tok);
        let opener = FROM.contains(&w) || CONVERT.contains(&w);
        if opener {
            let Some(src) = content(i + 1) else { continue };
            // "en", "in" and "em" only close a conversion ("convertir X en Y", "omzetten
            // in", "converter X em Y").
            let to = (i + 2..toks.len().min(i + 8)).find(|&k| {
                let m = t.lower(&toks[k]);
                matches!(
                    m,
                    "to" | "into" | "à" | "au" | "aux" | "vers" | "naar" | "tot"
                ) || (CONVERT.contains(&w) && matches!(m, "en" | "in" | "em"))
                    || (FROM_ROMANCE_GERMAN.contains(&w) && TO_ROMANCE_GERMAN.contains(&m))
            });
            if let Some(dst) = to.and_then(|k| content(k + 1)) {
                out.push((src, dst));
            }
        } else if matches!(w, "to" | "into" | "naar") && i > 0 {
            let before = t.lower(&toks[i - 1]);
            if let Some(dst) = content(i + 1) {
                if !SKIP.contains(&before) && !TO.contains(&before) {
                    out.push((before, dst));
                }
            }
        }
    }
    if t.has_han {
        han_arrows(t.src, &mut out);
    }
    out
}

fn han_arrows<'t>(src: &'t str, out: &mut Vec<(&'t str, &'t str)>) {
    const OPENERS: &[(&str, &[&str])] = &[
        ("从", &["到", "去", "至"]),
        (
            "把",
            &[
                "转换成",
                "转换为",
                "转成",
                "转为",
                "换成",
                "翻译成",
                "改成",
                "变成",
            ],
        ),
        (
            "将",
            &[
                "转换成",
                "转换为",
                "转成",
                "转为",
                "换成",
                "翻译成",
                "改成",
                "变成",
            ],
        ),
    ];
    let stop = |c: char| {
        c.is_whitespace()
            || c.is_ascii_punctuation()
            || "的怎如需要多吗呢？，。、有是坐走飞最再并呀啊了哪和及".contains(c)
    };
    for &(open, closers) in OPENERS {
        for (i, _) in src.match_indices(open) {
            let rest = &src[i + open.len()..];
            let Some((at, close)) = closers
                .iter()
                .filter_map(|c| rest.find(c).map(|at| (at, *c)))
                .min_by_key(|&(at, _)| at)
            else {
                continue;
            };
            let x = &rest[..at];
            let after = &rest[at + close.len()..];
            let end = after.find(stop).unwrap_or(after.len());
            let y = &after[..end];
            if !x.is_empty() && !y.is_empty() && x.chars().count() <= 12 && y.chars().count() <= 12
            {
                out.push((x.trim(), y.trim()));
            }
        }
    }
}

/// Entities: words only one prompt has that look like names (capitalised inside a
/// sentence, CamelCase, acronyms, letters mixed with digits, code identifiers, quoted).
///
/// A changed entity counts only when it fills the same slot: the word before or after it
/// is the same in both prompts ("towns in Montana" / "towns in Idaho"). Rewordings that
/// move or rename things ("Hussein" / "Saddam", "US troops" / "American troops") are left
/// to the embedding.
fn entities(a: &Text, b: &Text, diff: &Diff, rules: Rules) -> Result<(), RejectReason> {
    let short = |t: &Text| t.tokens.len() <= ENTITY_MAX_WORDS;
    if rules.contains(Rules::ENTITY_CHANGED) && short(a) && short(b) {
        for &i in diff.a_only.iter().filter(|&&i| is_entity(a, i)) {
            for &j in diff.b_only.iter().filter(|&&j| is_entity(b, j)) {
                if same_slot(a, i, b, j) && !spells_out(a, i, b) && !spells_out(b, j, a) {
                    return Err(RejectReason::Entity);
                }
            }
        }
    }
    if rules.contains(Rules::ENTITY_ADDED) {
        let ea = diff.a_only.iter().any(|&i| is_entity(a, i));
        let eb = diff.b_only.iter().any(|&i| is_entity(b, i));
        if ea != eb {
            return Err(RejectReason::Entity);
        }
    }
    Ok(())
}

/// Entity changes count in prompts up to this many words. A question or command names
/// what it is about in one slot; longer prose restates names freely ("Hussein" /
/// "Saddam"), and there the rule cost more true matches than it saved.
const ENTITY_MAX_WORDS: usize = 16;

/// Whether token `i` of `t` is an acronym the other text spells out ("SEC" /
/// "Securities and Exchange Commission").
fn spells_out(t: &Text, i: usize, other: &Text) -> bool {
    let acronym = t.orig(&t.tokens[i]);
    let letters = acronym.chars().count();
    if !(2..=6).contains(&letters) || !acronym.chars().all(|c| c.is_uppercase()) {
        return false;
    }
    let initials: Vec<char> = other
        .tokens
        .iter()
        .filter(|x| x.kind == Kind::Word)
        .map(|x| other.orig(x))
        .filter(|w| {
            !matches!(
                *w,
                "of" | "and" | "the" | "for" | "de" | "du" | "des" | "van" | "en" | "et"
            )
        })
        .filter_map(|w| w.chars().next())
        .collect();
    let target: Vec<char> = acronym.chars().collect();
    initials.windows(letters).any(|w| w == target.as_slice())
}

/// Whether token `i` of `a` and token `j` of `b` have the same neighbour on either side
/// (the start or end of the text counts as a neighbour).
fn same_slot(a: &Text, i: usize, b: &Text, j: usize) -> bool {
    let before = neighbour(a, i.checked_sub(1)) == neighbour(b, j.checked_sub(1));
    let after = neighbour(a, Some(i + 1)) == neighbour(b, Some(j + 1));
    before || after
}

fn neighbour<'t>(t: &'t Text, k: Option<usize>) -> Option<&'t str> {
    k.and_then(|k| t.tokens.get(k)).map(|x| t.lower(x))
}

fn is_entity(t: &Text, i: usize) -> bool {
    let tok = &t.tokens[i];
    let word = t.orig(tok);
    if tok.quoted {
        return true;
    }
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if chars.clone().next().is_none() {
        return false;
    }
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let has_letter = word.chars().any(char::is_alphabetic);
    if (has_digit && has_letter) || word.contains('_') || word.contains('.') {
        return true;
    }
    if t.title_case {
        return false;
    }
    let inner_capital = chars.any(char::is_uppercase);
    if inner_capital && !word.contains('\'') {
        return true;
    }
    first.is_uppercase() && !tok.sentence_start && !word.starts_with("I'")
}

#[cfg(test)]
mod tests;
