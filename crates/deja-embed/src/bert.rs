//! [`BertEmbedder`]: a local sentence-transformers model run on dedicated compute threads
//! (`pool.rs` queues and batches; this module tokenizes and runs `model.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use deja_core::verify::Vocabulary;
use deja_core::{EmbedError, Embedder};
use tokenizers::{NormalizedString, Normalizer, Tokenizer, TruncationParams};

use crate::model::{BertConfig, BertModel, Scratch};
use crate::packed::WeightFormat;
use crate::pair::PairModel;
use crate::pool::{Compute, LocalPairScorer, PairReply, Pool};
use crate::INSTALL_HINT;

/// A word the vocabulary splits into pieces averaging fewer characters than this, and
/// whose first piece is shorter than [`STEM_CHARS`], is seen only as fragments (see
/// [`BertEmbedder`]'s `unseen`).
const FRAGMENT_CHARS: usize = 3;

/// A first piece this long is a word the model knows, and the rest its ending.
const STEM_CHARS: usize = 4;

/// Settings of a [`BertEmbedder`].
#[derive(Debug, Clone)]
pub struct BertOptions {
    /// Number of compute threads, each running whole forward passes (default 1).
    pub threads: usize,
    /// Most texts run in one forward pass (default 32).
    pub max_batch: usize,
    /// A pair model to load over this base model ([`crate::PAIR_FILE`], made by
    /// `training/`); its pairs run on the same compute threads.
    pub pair_model: Option<PathBuf>,
    /// How the encoder's dense weights are kept (default [`WeightFormat::Auto`]: int8 where
    /// the CPU has AVX2 and FMA). The pair model keeps f16 whatever this says.
    pub weights: WeightFormat,
}

impl Default for BertOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            max_batch: 32,
            pair_model: None,
            weights: WeightFormat::Auto,
        }
    }
}

/// The model a [`BertEmbedder`]'s compute threads run.
pub(crate) struct Bert {
    model: BertModel,
    pair: Option<PairModel>,
    tokenizer: Tokenizer,
    /// The tokenizer's unknown token, if it has one.
    unk: Option<u32>,
    /// Whether every printable ASCII character is in the vocabulary, alone and as a
    /// word continuation: then printable-ASCII text can be checked word by word.
    ascii_seen: bool,
    /// Whether the tokenizer lowercases (an uncased model) before looking words up.
    lowercase: bool,
}

/// Embeds with a BERT-family sentence-transformers model directory (`config.json`,
/// `tokenizer.json`, `model.safetensors`, `1_Pooling/config.json`), as sentence-transformers
/// does: tokens truncated at the model's max sequence length, BERT encoder, mean (or CLS)
/// pooling, L2 normalisation.
pub struct BertEmbedder {
    id: String,
    dim: usize,
    pool: Pool<Bert>,
    /// The pair model's handle on the same compute threads, when one is loaded.
    pair: Option<Arc<LocalPairScorer>>,
    /// The tokenizer's whole words (no `##` pieces), to tell typos from other words.
    vocabulary: Vocabulary,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("id", &self.id)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

fn missing(path: &Path) -> EmbedError {
    EmbedError::ModelMissing {
        path: path.display().to_string(),
        install_hint: INSTALL_HINT.into(),
    }
}

impl BertEmbedder {
    /// Loads the model in `dir` and starts `opts.threads` compute threads.
    pub fn load(dir: &Path, opts: BertOptions) -> Result<BertEmbedder, EmbedError> {
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            if !dir.join(file).is_file() {
                return Err(missing(dir));
            }
        }
        if !dir.join("1_Pooling").join("config.json").is_file() {
            return Err(missing(dir));
        }
        let cfg = BertConfig::load(dir)?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), cfg.max_len)?;
        let model = BertModel::load(dir, cfg, opts.weights)?;
        let fingerprint = fingerprint(dir)?;
        let pair = match &opts.pair_model {
            Some(file) => Some(PairModel::load(
                dir,
                file,
                &fingerprint,
                model.word(),
                &tokenizer,
            )?),
            None => None,
        };
        let pair_id = pair.as_ref().map(|p| p.id.clone());
        let dim = model.cfg.hidden;
        let vocabulary = Vocabulary::new(
            tokenizer
                .get_vocab(false)
                .into_keys()
                .filter(|w| !w.starts_with("##")),
        );
        let bert = Bert {
            model,
            pair,
            unk: tokenizer.token_to_id("[UNK]"),
            ascii_seen: ascii_in_vocab(&tokenizer),
            lowercase: lowercases(&tokenizer),
            tokenizer,
        };
        let pool = Pool::start(bert, opts.threads, opts.max_batch).map_err(|e| {
            EmbedError::ModelInvalid {
                path: dir.display().to_string(),
                reason: format!("cannot start compute thread: {e}"),
            }
        })?;
        let pair = pair_id.map(|id| Arc::new(LocalPairScorer::new(id, false, &pool)));
        Ok(BertEmbedder {
            id: format!("local:bert{dim}-{fingerprint}"),
            dim,
            pool,
            pair,
            vocabulary,
        })
    }

    /// The pair model loaded with this embedder ([`BertOptions::pair_model`]), running on
    /// its compute threads.
    pub fn pair_scorer(&self) -> Option<Arc<LocalPairScorer>> {
        self.pair.clone()
    }

    /// The pair model's token ids for a pair and where the second segment starts.
    #[cfg(test)]
    pub(crate) fn pair_encode(&self, a: &str, b: &str) -> Result<(Vec<u32>, usize), EmbedError> {
        match &self.bert().pair {
            Some(model) => model.encode(a, b),
            None => Err(EmbedError::WorkerGone),
        }
    }

    /// [`PairScorer::score`], blocking the calling thread (benchmarks, command-line tools).
    pub fn score_pairs_blocking(&self, pairs: &[(&str, &str)]) -> PairReply {
        self.pool.score_pairs_blocking(pairs)
    }

    /// Embeds on the compute threads and waits for the result, blocking the calling thread.
    /// For benchmarks and command-line tools; async code should use [`Embedder::embed`].
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pool.embed_blocking(texts)
    }

    /// Model directory's maximum sequence length in tokens, special tokens included; longer
    /// texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.bert().model.cfg.max_len
    }

    /// [`Embedder::unseen`] for printable ASCII, word by word: a word in the vocabulary
    /// is one token and seen, a number is left to the number rules, and only the other
    /// words are tokenized, each on its own (the tokenizer splits ASCII text into words at
    /// spaces and punctuation, so a word's pieces do not depend on its neighbours). `None`
    /// for any other text, and when the text may be longer than the model reads: then the
    /// whole text is tokenized to find where it is cut off.
    fn ascii_unseen(&self, text: &str) -> Option<Vec<String>> {
        if !self.bert().ascii_seen
            || !text
                .bytes()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x21..=0x7e))
        {
            return None;
        }
        // [CLS] and [SEP] take two of the model's positions; a punctuation mark is a token.
        let room = self.bert().model.cfg.max_len.saturating_sub(2);
        let mut tokens = text.bytes().filter(u8::is_ascii_punctuation).count();
        let mut parts = Vec::new();
        let mut buf = [0u8; 32];
        for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            if tokens > room {
                return None;
            }
            if w.is_empty() {
                continue;
            }
            if w.bytes().all(|b| b.is_ascii_digit()) {
                // At most one token per digit.
                tokens += w.len();
                continue;
            }
            if let Some(word) = buf.get_mut(..w.len()) {
                word.copy_from_slice(w.as_bytes());
                if self.bert().lowercase {
                    word.make_ascii_lowercase();
                }
                let known = std::str::from_utf8(word)
                    .is_ok_and(|word| self.bert().tokenizer.token_to_id(word).is_some());
                if known {
                    tokens += 1;
                    continue;
                }
            }
            let enc = self.bert().tokenizer.encode(w, false).ok()?;
            tokens += enc.get_ids().len();
            // A word too long for the vocabulary's word pieces is one unknown token.
            let unknown = enc.get_ids().iter().any(|&id| Some(id) == self.bert().unk);
            if unknown || fragmented(enc.get_tokens()) {
                parts.push(if self.bert().lowercase {
                    w.to_ascii_lowercase()
                } else {
                    w.to_string()
                });
            }
        }
        (tokens <= room).then_some(parts)
    }

    /// [`Embedder::unseen`] by tokenizing the whole text.
    fn unseen_tokenized(&self, text: &str) -> Vec<String> {
        let enc = match self.bert().tokenizer.encode(text, true) {
            Ok(enc) => enc,
            Err(_) => return vec![text.to_string()],
        };
        let mut parts = Vec::new();
        let (ids, offsets, tokens, words) = (
            enc.get_ids(),
            enc.get_offsets(),
            enc.get_tokens(),
            enc.get_word_ids(),
        );
        let mut at = 0;
        while at < ids.len() {
            // One word's pieces: `at..end`.
            let mut end = at + 1;
            while end < ids.len() && words[at].is_some() && words[end] == words[at] {
                end += 1;
            }
            let unknown = |i: &usize| Some(ids[*i]) == self.bert().unk;
            if (at..end).any(|i| unknown(&i)) {
                parts.extend(
                    (at..end)
                        .filter(unknown)
                        .map(|i| with_marks(text, offsets[i].0, offsets[i].1).to_string()),
                );
            } else if fragmented(&tokens[at..end]) {
                let word = with_marks(text, offsets[at].0, offsets[end - 1].1);
                if !word.chars().all(|c| c.is_ascii_digit()) {
                    parts.push(word.to_string());
                }
            }
            at = end;
        }
        if !enc.get_overflowing().is_empty() {
            let seen_to = offsets.iter().map(|o| o.1).max().unwrap_or(0);
            parts.push(text.get(seen_to..).unwrap_or_default().to_string());
        }
        // As the model reads them: an uncased model does not see "Liceo" and "liceo" apart.
        if self.bert().lowercase {
            for part in &mut parts {
                *part = part.to_lowercase();
            }
        }
        parts
    }
}

impl BertEmbedder {
    fn bert(&self) -> &Bert {
        self.pool.compute()
    }
}

#[async_trait]
impl Embedder for BertEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// The text of each unknown token, each word the model only sees as fragments, then
    /// whatever truncation cut off. A text the tokenizer refuses is unseen as a whole.
    ///
    /// A fragmented word is one the vocabulary splits into short pieces (fewer than
    /// [`FRAGMENT_CHARS`] characters on average, the first under [`STEM_CHARS`]): a
    /// Russian, Greek or Hebrew word spelled out letter by letter, "sc ##ri ##ve" (Italian
    /// "writes"), "me ##o" (Vietnamese "cat"), but not "peel ##s". The model learned next
    /// to nothing about such pieces, so two texts that differ in them come out nearly the
    /// same (measured: "включить"/"отключить", enable/disable, cosine 0.98). Numbers are
    /// left to the verifier's number rules. Parts are lowercased for an uncased model.
    /// The tokenizer's whole words: for all-MiniLM-L6-v2, about 22,000 lowercase words of
    /// WordPiece's 30,522 entries.
    fn vocabulary(&self) -> Option<&Vocabulary> {
        Some(&self.vocabulary)
    }

    fn unseen(&self, text: &str) -> Vec<String> {
        match self.ascii_unseen(text) {
            Some(parts) => parts,
            None => self.unseen_tokenized(text),
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pool.embed(texts).await
    }
}

/// Whether every printable ASCII character, as the tokenizer normalises it (lowercased,
/// for an uncased model), is a vocabulary entry both alone and as a continuation (`##c`):
/// then WordPiece can spell any ASCII word without its unknown token.
fn ascii_in_vocab(tokenizer: &Tokenizer) -> bool {
    (0x21u8..=0x7e).all(|b| {
        let mut n = NormalizedString::from((b as char).to_string());
        if let Some(normalizer) = tokenizer.get_normalizer() {
            if normalizer.normalize(&mut n).is_err() {
                return false;
            }
        }
        let c = n.get();
        c.chars().count() == 1
            && tokenizer.token_to_id(c).is_some()
            && tokenizer.token_to_id(&format!("##{c}")).is_some()
    })
}

/// Whether one word's pieces are fragments: at least two, averaging fewer than
/// [`FRAGMENT_CHARS`] characters, the first shorter than [`STEM_CHARS`] (a known word with
/// an ending, "peel ##s", "wolverine ##s", is seen).
fn fragmented(pieces: &[String]) -> bool {
    let chars = |t: &String| t.trim_start_matches("##").chars().count();
    let total: usize = pieces.iter().map(chars).sum();
    pieces.len() >= 2
        && total < FRAGMENT_CHARS * pieces.len()
        && pieces.first().is_some_and(|p| chars(p) < STEM_CHARS)
}

/// Whether the tokenizer's normalizer lowercases ("A" becomes "a").
fn lowercases(tokenizer: &Tokenizer) -> bool {
    let mut n = NormalizedString::from("A");
    tokenizer
        .get_normalizer()
        .is_some_and(|normalizer| normalizer.normalize(&mut n).is_ok() && n.get() == "a")
}

/// `text[start..end]` and the combining marks right after it: an uncased tokenizer strips
/// them (Thai vowel signs, accents) before the offsets are taken, and the model does not
/// see them either.
fn with_marks(text: &str, start: usize, end: usize) -> &str {
    let Some(rest) = text.get(end..) else {
        return text.get(start..).unwrap_or_default();
    };
    let marks: usize = rest
        .chars()
        .take_while(|c| unicode_normalization::char::is_combining_mark(*c))
        .map(char::len_utf8)
        .sum();
    text.get(start..end + marks).unwrap_or_default()
}

/// The shipped tokenizer.json pads every input to 128 tokens and truncates at 128; the model
/// takes up to `max_len`, and padding is useless here (sequences are packed, see `model.rs`).
fn load_tokenizer(path: &Path, max_len: usize) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| EmbedError::ModelInvalid {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| EmbedError::ModelInvalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(tokenizer)
}

impl Compute for Bert {
    type Scratch = Scratch;

    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let cfg = &self.model.cfg;
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(EmbedError::Tokenizer)?;
        let ids = enc.get_ids();
        // Invariants `BertModel::forward` relies on: in-vocabulary ids, 1..=max_len tokens.
        if ids.is_empty() || ids.len() > cfg.max_len || ids.iter().any(|&i| i as usize >= cfg.vocab)
        {
            return Err(EmbedError::Tokenizer(
                format!(
                    "tokenizer produced {} ids outside the model's range",
                    ids.len()
                )
                .into(),
            ));
        }
        Ok(ids.to_vec())
    }

    fn forward(&self, seqs: &[Vec<u32>], scratch: &mut Scratch, out: &mut [Vec<f32>]) {
        self.model.forward(seqs, None, scratch, out);
    }

    fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        max_batch: usize,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, EmbedError> {
        match &self.pair {
            Some(model) => model.logits(pairs, max_batch, scratch),
            None => Err(EmbedError::ModelInvalid {
                path: String::new(),
                reason: "no pair model loaded".into(),
            }),
        }
    }
}

/// Identity of a model directory's content (weights, tokenizer, configuration), so stored
/// vectors stay usable when the directory moves and are never mixed with another model's,
/// even one installed under the same name: the first 12 hex digits of a BLAKE3 hash.
fn fingerprint(dir: &Path) -> Result<String, EmbedError> {
    let mut hasher = blake3::Hasher::new();
    for name in [
        "config.json",
        "tokenizer.json",
        "1_Pooling/config.json",
        "model.safetensors",
    ] {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).map_err(|e| EmbedError::ModelInvalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        hasher.update(name.as_bytes());
        hasher
            .update_reader(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|e| EmbedError::ModelInvalid {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
    }
    Ok(hasher.finalize().to_hex()[..12].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real model; `None` (the test is skipped, with a note) when it is not installed,
    /// unless `DEJA_REQUIRE_MODEL=1`.
    fn model() -> Option<BertEmbedder> {
        match BertEmbedder::load(&crate::default_model_dir(), BertOptions::default()) {
            Ok(e) => Some(e),
            Err(err) => {
                assert_ne!(
                    std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
                    Ok("1"),
                    "DEJA_REQUIRE_MODEL=1 but the model cannot be loaded: {err}"
                );
                eprintln!("skipped: {err}");
                None
            }
        }
    }

    /// The vocabulary holds the tokenizer's whole words, and tells common typos from
    /// words. Needs the real model (skipped without it, unless `DEJA_REQUIRE_MODEL=1`).
    #[test]
    fn the_vocabulary_tells_typos_from_words() {
        let Some(e) = model() else {
            return;
        };
        let v = e.vocabulary().unwrap();
        assert!(v.len() > 15_000, "{} words", v.len());
        for w in ["internationally", "password", "receive", "address", "the"] {
            assert!(v.contains(w), "{w}");
        }
        assert!(!v.contains("##ing") && !v.contains("[UNK]"));
        for (typo, word) in [
            ("internationaly", "internationally"),
            ("recieve", "receive"),
            ("pasword", "password"),
        ] {
            assert!(v.is_typo_of(typo, word), "{typo} / {word}");
        }
        for (other, word) in [
            ("from", "form"),
            ("unsubscribe", "subscribe"),
            ("teh", "the"),
        ] {
            assert!(!v.is_typo_of(other, word), "{other} / {word}");
        }
    }

    /// The word-by-word answer for ASCII text is the whole-text tokenizer's, or none when
    /// the text may be cut off. Needs the real model (skipped without it, unless
    /// `DEJA_REQUIRE_MODEL=1`).
    #[test]
    fn ascii_word_by_word_agrees_with_tokenizing_the_whole_text() {
        let Some(e) = model() else {
            return;
        };
        let csv = include_str!("../../../bench/quality/near-misses.csv");
        let long_word = "a".repeat(120);
        let mut texts: Vec<String> = csv
            .lines()
            .flat_map(|l| l.split(','))
            .filter(|t| t.is_ascii())
            .map(str::to_string)
            .collect();
        texts.extend(
            [
                "How do I reset my Gmail password? My inbox is empty!",
                "Wie lese ich eine CSV-Datei in Python?",
                "Come si scrive un file CSV in Python?",
                "wlaczyc / wylaczyc, hoe zet ik tweestapsverificatie aan",
                "order #4821 shipped on 2026-11-25 for $1,299.99 (qty: 3)",
                "C++ vs C# vs F#: which is faster?",
                long_word.as_str(),
            ]
            .map(str::to_string),
        );
        // Near the model's 256 tokens, on both sides of it.
        for n in [40, 60, 62, 63, 64, 80] {
            texts.push("please help me with my inbox ".repeat(n / 5 + 1) + &"x ".repeat(n));
        }
        let mut word_by_word = 0;
        for text in &texts {
            let whole = e.unseen_tokenized(text);
            if let Some(parts) = e.ascii_unseen(text) {
                assert_eq!(parts, whole, "{text}");
                word_by_word += 1;
            } else {
                assert!(
                    !text.is_ascii() || text.len() > 200,
                    "word by word gave up on a short ASCII text: {text}"
                );
            }
        }
        assert!(word_by_word > 100, "{word_by_word} of {}", texts.len());
    }
}
