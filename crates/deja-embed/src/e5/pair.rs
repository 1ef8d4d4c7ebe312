//! The multilingual pair model: a cross-encoder on multilingual-e5-small (made by
//! `training/train.py --base e5`). It reads `<s> cached </s> query </s>` (token type 1 for
//! the query and its `</s>`, no `query: ` prefix), mean-pools the last layer over every
//! token and scores the pooled vector with the same head as the MiniLM pair model
//! (`crate::pair`): one logit, the log-odds that the answer cached for the first prompt
//! answers the second.
//!
//! Only what fine-tuning changed ships (`deja-pair-model-e5.safetensors`, f16): every
//! trunk tensor but the word embeddings, under the E5S1 file's names, and the head. The
//! word embeddings stay the E5S1 file's 4-bit rows; every other tensor runs in f32. A
//! file made for another E5S1 file (by its BLAKE3), of another format, or damaged is
//! refused with the reason (`crate::pair::PairFile`).

use std::path::Path;
use std::sync::Arc;

use deja_core::EmbedError;

use super::blob::Blob;
use super::encoder::{Encoder, Precision, Scratch};
use super::unigram::Unigram;
use crate::model::invalid;
use crate::pair::{Head, PairFile};

/// File name of the multilingual pair model beside `e5-small-q4.bin`
/// (`scripts/install-model.sh multilingual-e5-small` puts it there).
pub const E5_PAIR_FILE: &str = "deja-pair-model-e5.safetensors";

pub(crate) struct E5PairModel {
    encoder: Encoder,
    head: Head,
    /// Longest pair in tokens, `<s>` and both `</s>` included.
    max_len: usize,
    /// `pair:` and the first 12 hex digits of the file's payload hash.
    pub id: String,
}

impl E5PairModel {
    /// Loads the pair model in `file` over the E5S1 file `blob` (its `bytes`, whose
    /// fingerprint is `base_fingerprint`), sharing the embedder's word embeddings `word`.
    pub(crate) fn load(
        file: &Path,
        blob: &Blob,
        bytes: &[u8],
        base_fingerprint: &str,
        word: Arc<[u8]>,
    ) -> Result<E5PairModel, EmbedError> {
        let data = std::fs::read(file).map_err(|e| invalid(file, e.to_string()))?;
        let pf = PairFile::open(&data, file, base_fingerprint)?;
        let cfg = &blob.header;
        // Every tuned trunk tensor must be in the file: a partial file would silently mix
        // base and tuned weights.
        let mut want: Vec<String> = ["emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
            .map(String::from)
            .into();
        for l in 0..cfg.layers {
            for t in ["q", "k", "v", "ao", "aln", "fi", "fo", "oln"] {
                want.push(format!("l{l}.{t}.w"));
                want.push(format!("l{l}.{t}.b"));
            }
        }
        if let Some(missing) = want.iter().find(|n| pf.st.tensor(n).is_err()) {
            return Err(invalid(file, format!("tensor `{missing}` not found")));
        }
        if pf.st.tensor("emb.word").is_ok() {
            return Err(invalid(
                file,
                "holds word embeddings; they come from the base model",
            ));
        }
        let overlay = |name: &str, shape: &[usize]| {
            pf.st.tensor(name).ok().map(|_| {
                pf.get(name, shape, file)
                    .map_err(|e| format!("pair model: {e}"))
            })
        };
        let encoder = Encoder::load_with(
            blob,
            bytes,
            Precision::Dense(crate::pair::weights()),
            &overlay,
            Some(word),
        )
        .map_err(|e| invalid(file, e))?;
        let head = Head::load(&pf, file, cfg.hidden)?;
        Ok(E5PairModel {
            max_len: pf.max_tokens.min(cfg.positions),
            encoder,
            head,
            id: pf.id,
        })
    }

    /// Bytes its weights take in memory (the word embeddings are the embedder's).
    pub(crate) fn bytes(&self) -> usize {
        self.encoder.bytes() - self.encoder.word_bytes()
    }

    /// Token ids of a pair and where its second segment starts: `<s> a </s> b </s>`, the
    /// longer side cut first to fit `max_len`.
    pub(crate) fn encode(&self, tokenizer: &Unigram, a: &str, b: &str) -> (Vec<u32>, usize) {
        // Only a prefix of each prompt is tokenized, as the embedder does.
        let ids_of = |t: &str| tokenizer.encode(tokenizer.prefix(t, self.max_len)).ids;
        let (pa, pb) = (ids_of(a), ids_of(b));
        let room = self.max_len.saturating_sub(3);
        let (mut la, mut lb) = (pa.len(), pb.len());
        while la + lb > room {
            if la > lb {
                la -= 1;
            } else {
                lb -= 1;
            }
        }
        let mut ids = Vec::with_capacity(la + lb + 3);
        ids.push(tokenizer.bos);
        ids.extend_from_slice(&pa[..la]);
        ids.push(tokenizer.eos);
        let second = ids.len();
        ids.extend_from_slice(&pb[..lb]);
        ids.push(tokenizer.eos);
        (ids, second)
    }

    /// One logit per pair.
    pub(crate) fn logits(
        &self,
        tokenizer: &Unigram,
        pairs: &[(&str, &str)],
        max_batch: usize,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, EmbedError> {
        let vocab = self.encoder.cfg.vocab;
        self.head.logits(
            pairs,
            max_batch,
            |a, b| {
                let (ids, second) = self.encode(tokenizer, a, b);
                // The invariant `Encoder::forward` relies on.
                if ids.iter().any(|&id| id as usize >= vocab) {
                    return Err(EmbedError::Tokenizer(
                        "tokenizer produced an id outside the model's range".into(),
                    ));
                }
                Ok((ids, second))
            },
            |seqs, segments, pooled| self.encoder.forward(seqs, Some(segments), scratch, pooled),
        )
    }
}
