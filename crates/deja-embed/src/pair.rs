//! The pair model: a cross-encoder built on the embedder's own base model. It reads
//! `[CLS] cached [SEP] query [SEP]` (token type 1 for the query and its `[SEP]`), mean-pools
//! the last layer and scores the pooled vector with `score · tanh(dense · x + b) + c`: one
//! logit, the log-odds that the answer cached for the first prompt answers the second.
//!
//! Only what fine-tuning changed ships with deja (`models/pair-model.safetensors`, made by
//! `training/`): every trunk tensor but the word embeddings, in f16, and the head. The word
//! embeddings and the tokenizer come from the base model directory, which the file names
//! by fingerprint; a file made for other base weights, of another format, or whose tensors
//! do not hash to the recorded BLAKE3 is refused with the reason.
//!
//! Not here: the worker threads and batching (`bert.rs` runs pair jobs on the embedding
//! workers), or what the engine does with the score.

use std::path::Path;
use std::sync::Arc;

use deja_core::EmbedError;
use safetensors::{Dtype, SafeTensors};
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use crate::model::{invalid, values, BertConfig, BertModel, Scratch, Source};
use crate::packed::WeightFormat;

/// The file format this build reads (`format` in the file's metadata).
pub const PAIR_FORMAT: &str = "deja-pair-model/1";

/// File name of the pair model in a model directory (`scripts/install-model.sh` puts it
/// there).
pub const PAIR_FILE: &str = "deja-pair-model.safetensors";

/// Names of the head's tensors in the file.
const DENSE_W: &str = "pair.dense.weight";
const DENSE_B: &str = "pair.dense.bias";
const SCORE_W: &str = "pair.score.weight";
const SCORE_B: &str = "pair.score.bias";

pub(crate) struct PairModel {
    model: BertModel,
    head: Head,
    tokenizer: Tokenizer,
    /// `pair:` and the first 12 hex digits of the file's payload hash.
    pub id: String,
}

/// The head is 384 × 384 multiply-adds per pair, next to millions in the trunk: a plain
/// loop (which the compiler vectorises) is enough.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// BLAKE3 over every tensor in name order: its name, a zero byte, its raw bytes (what
/// `training/export.py` records as `payload_blake3`).
fn payload_hash(st: &SafeTensors<'_>) -> String {
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut h = blake3::Hasher::new();
    for name in &names {
        h.update(name.as_bytes());
        h.update(&[0]);
        if let Ok(view) = st.tensor(name) {
            h.update(view.data());
        }
    }
    h.finalize().to_hex().to_string()
}

/// A pair-model file, checked: its format, the base model it was made for, the BLAKE3 of
/// its tensors, f16 tensors only, the pooling and head this build runs.
pub(crate) struct PairFile<'a> {
    pub st: SafeTensors<'a>,
    /// Longest pair, in tokens, the model was trained on.
    pub max_tokens: usize,
    /// `pair:` and the first 12 hex digits of the payload hash.
    pub id: String,
}

impl<'a> PairFile<'a> {
    /// Checks the pair-model file `file` (its bytes) made for the base model whose
    /// fingerprint is `base_fingerprint`.
    pub(crate) fn open(
        bytes: &'a [u8],
        file: &Path,
        base_fingerprint: &str,
    ) -> Result<PairFile<'a>, EmbedError> {
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| invalid(file, e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |k: &str| meta.get(k).map(String::as_str).unwrap_or("");
        if field("format") != PAIR_FORMAT {
            return Err(invalid(
                file,
                format!(
                    "format `{}`, this build reads `{PAIR_FORMAT}`",
                    field("format")
                ),
            ));
        }
        if field("base") != base_fingerprint {
            return Err(invalid(
                file,
                format!(
                    "made for base model {}, the installed one is {base_fingerprint}",
                    field("base")
                ),
            ));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| invalid(file, e.to_string()))?;
        let hash = payload_hash(&st);
        if field("payload_blake3") != hash {
            return Err(invalid(
                file,
                "tensors do not match their recorded BLAKE3 (damaged file)",
            ));
        }
        if let Some(name) = st
            .names()
            .into_iter()
            .find(|n| st.tensor(n).is_ok_and(|v| v.dtype() != Dtype::F16))
        {
            return Err(invalid(file, format!("tensor `{name}` is not f16")));
        }
        if field("pooling") != "mean" || field("head") != "tanh" {
            return Err(invalid(file, "unsupported pooling or head"));
        }
        let max_tokens: usize = field("max_tokens")
            .parse()
            .map_err(|_| invalid(file, "max_tokens is not a number"))?;
        Ok(PairFile {
            st,
            max_tokens,
            id: format!("pair:{}", &hash[..12]),
        })
    }

    /// The tensor `name` of `shape`, as f32.
    pub(crate) fn get(
        &self,
        name: &str,
        shape: &[usize],
        file: &Path,
    ) -> Result<Vec<f32>, EmbedError> {
        let view = self
            .st
            .tensor(name)
            .map_err(|_| invalid(file, format!("tensor `{name}` not found")))?;
        values(&view, name, shape, file)
    }
}

/// How a pair model's dense weights are kept: f16 unless `DEJA_EMBED_WEIGHTS` says
/// otherwise, never int8 by default. The pair model's logit decides the candidates cosine
/// leaves open, and int8 weights move it by up to 0.03 on the reference pairs (f16: 0.002).
pub(crate) fn weights() -> WeightFormat {
    WeightFormat::from_env().unwrap_or(WeightFormat::F16)
}

/// The pair head: `score · tanh(dense · x + b) + c` over the pooled vector.
pub(crate) struct Head {
    /// `dense` in PyTorch layout `[out, in]`.
    dense_w: Vec<f32>,
    dense_b: Vec<f32>,
    score_w: Vec<f32>,
    score_b: f32,
}

impl Head {
    pub(crate) fn load(pf: &PairFile<'_>, file: &Path, h: usize) -> Result<Head, EmbedError> {
        Ok(Head {
            dense_w: pf.get(DENSE_W, &[h, h], file)?,
            dense_b: pf.get(DENSE_B, &[h], file)?,
            score_w: pf.get(SCORE_W, &[1, h], file)?,
            score_b: pf.get(SCORE_B, &[1], file)?[0],
        })
    }

    /// The logit of one pooled vector (`hidden`: a work buffer of the hidden size).
    pub(crate) fn logit(&self, pooled: &[f32], hidden: &mut [f32]) -> f32 {
        let h = self.dense_b.len();
        for (o, (row, b)) in hidden
            .iter_mut()
            .zip(self.dense_w.chunks_exact(h).zip(&self.dense_b))
        {
            *o = (dot(row, pooled) + b).tanh();
        }
        dot(&self.score_w, hidden) + self.score_b
    }

    /// One logit per pair, in batches of at most `max_batch` pairs: `encode` gives a
    /// pair's ids and where its second prompt starts, `forward` pools a batch — the
    /// encoder's, whichever base model it is.
    pub(crate) fn logits(
        &self,
        pairs: &[(&str, &str)],
        max_batch: usize,
        mut encode: impl FnMut(&str, &str) -> Result<(Vec<u32>, usize), EmbedError>,
        mut forward: impl FnMut(&[Vec<u32>], &[usize], &mut [Vec<f32>]),
    ) -> Result<Vec<f32>, EmbedError> {
        let mut out = Vec::with_capacity(pairs.len());
        let mut hidden = vec![0.0f32; self.dense_b.len()];
        for chunk in pairs.chunks(max_batch.max(1)) {
            let mut seqs = Vec::with_capacity(chunk.len());
            let mut segments = Vec::with_capacity(chunk.len());
            for (a, b) in chunk {
                let (ids, second) = encode(a, b)?;
                seqs.push(ids);
                segments.push(second);
            }
            let mut pooled = vec![Vec::new(); chunk.len()];
            forward(&seqs, &segments, &mut pooled);
            out.extend(pooled.iter().map(|x| self.logit(x, &mut hidden)));
        }
        Ok(out)
    }
}

impl PairModel {
    /// Loads the pair model in `file` over the base model in `dir` (whose fingerprint is
    /// `base_fingerprint`, whose word embeddings are `word` and whose tokenizer is
    /// `tokenizer`).
    pub(crate) fn load(
        dir: &Path,
        file: &Path,
        base_fingerprint: &str,
        word: Arc<[f32]>,
        tokenizer: &Tokenizer,
    ) -> Result<PairModel, EmbedError> {
        let bytes = std::fs::read(file).map_err(|e| invalid(file, e.to_string()))?;
        let pf = PairFile::open(&bytes, file, base_fingerprint)?;
        let st = &pf.st;
        let mut cfg = BertConfig::load(dir)?;
        cfg.max_len = cfg.max_len.min(pf.max_tokens);
        let h = cfg.hidden;
        // Every tuned trunk tensor must be in the file: a partial file would silently mix
        // base and tuned weights.
        let mut want = vec![
            "embeddings.position_embeddings.weight".to_string(),
            "embeddings.token_type_embeddings.weight".to_string(),
            "embeddings.LayerNorm.weight".to_string(),
            "embeddings.LayerNorm.bias".to_string(),
        ];
        for i in 0..cfg.layers {
            for t in [
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ] {
                want.push(format!("encoder.layer.{i}.{t}.weight"));
                want.push(format!("encoder.layer.{i}.{t}.bias"));
            }
        }
        if let Some(missing) = want.iter().find(|n| st.tensor(n).is_err()) {
            return Err(invalid(file, format!("tensor `{missing}` not found")));
        }
        let model = BertModel::load_from(
            dir,
            cfg,
            Source {
                overlay: Some((st, file)),
                word: Some(word),
                weights: weights(),
            },
        )?;
        let head = Head::load(&pf, file, h)?;
        // The embedder's own tokenizer (no padding), cutting pairs at the pair model's
        // length, longest side first.
        let mut tokenizer = tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: model.cfg.max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| invalid(file, e.to_string()))?;
        Ok(PairModel {
            model,
            head,
            tokenizer,
            id: pf.id,
        })
    }

    /// Token ids of a pair and where its second segment starts.
    pub(crate) fn encode(&self, a: &str, b: &str) -> Result<(Vec<u32>, usize), EmbedError> {
        let enc = self
            .tokenizer
            .encode((a, b), true)
            .map_err(EmbedError::Tokenizer)?;
        let ids = enc.get_ids();
        let cfg = &self.model.cfg;
        if ids.is_empty() || ids.len() > cfg.max_len || ids.iter().any(|&i| i as usize >= cfg.vocab)
        {
            return Err(EmbedError::Tokenizer(
                format!(
                    "tokenizer produced {} ids outside the pair model's range",
                    ids.len()
                )
                .into(),
            ));
        }
        let second = enc
            .get_type_ids()
            .iter()
            .position(|&t| t == 1)
            .unwrap_or(ids.len());
        Ok((ids.to_vec(), second))
    }

    /// One logit per pair.
    pub(crate) fn logits(
        &self,
        pairs: &[(&str, &str)],
        max_batch: usize,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, EmbedError> {
        self.head.logits(
            pairs,
            max_batch,
            |a, b| self.encode(a, b),
            |seqs, segments, pooled| self.model.forward(seqs, Some(segments), scratch, pooled),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{BertEmbedder, BertOptions};

    /// The pair model shipped in the repository, and the reference its trainer wrote.
    fn shipped() -> (PathBuf, PathBuf) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
        (
            dir.join(super::PAIR_FILE),
            dir.join("deja-pair-model.fixture.json"),
        )
    }

    fn embedder(pair: Option<PathBuf>) -> Option<Result<BertEmbedder, deja_core::EmbedError>> {
        let dir = crate::default_model_dir();
        if !dir.join("model.safetensors").is_file() {
            assert_ne!(
                std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
                Ok("1"),
                "DEJA_REQUIRE_MODEL=1 but no model at {}",
                dir.display()
            );
            eprintln!("skipped: no model at {}", dir.display());
            return None;
        }
        Some(BertEmbedder::load(
            &dir,
            BertOptions {
                pair_model: pair,
                ..BertOptions::default()
            },
        ))
    }

    /// Token ids and logits agree with the PyTorch model the file was exported from (run
    /// once by `training/export.py`, its output committed): the tokenizer's pair encoding
    /// with truncation, token types, the f16 weights over the base model and the head.
    #[test]
    fn the_pair_model_matches_its_reference() {
        let (file, fixture) = shipped();
        let Some(e) = embedder(Some(file)) else {
            return;
        };
        let e = e.unwrap();
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        let mut worst = 0.0f32;
        for case in cases {
            let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
            let want_ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            let types: Vec<u32> = serde_json::from_value(case["type_ids"].clone()).unwrap();
            let (ids, second) = e.pair_encode(a, b).unwrap();
            assert_eq!(ids, want_ids, "{a} / {b}");
            assert_eq!(
                second,
                types.iter().position(|&t| t == 1).unwrap_or(types.len())
            );
            let got = e.score_pairs_blocking(&[(a, b)]).unwrap()[0];
            let want = case["logit"].as_f64().unwrap() as f32;
            worst = worst.max((got - want).abs());
            // 2e-3 with f32 panels; the f16 panels (`packed.rs`) move a logit by up to 2.1e-3
            // on these cases (a probability by less than 1e-3).
            assert!((got - want).abs() < 4e-3, "{a} / {b}: {got} against {want}");
        }
        // Batched with others, a pair scores as it does alone.
        let pairs: Vec<(&str, &str)> = cases
            .iter()
            .map(|c| (c["a"].as_str().unwrap(), c["b"].as_str().unwrap()))
            .collect();
        let together = e.score_pairs_blocking(&pairs).unwrap();
        for (c, got) in cases.iter().zip(together) {
            assert!((got - c["logit"].as_f64().unwrap() as f32).abs() < 4e-3);
        }
        eprintln!("largest logit difference from the reference: {worst}");
    }

    /// A file that is damaged, made for other base weights, or of another format is refused
    /// with the reason, never half-loaded.
    #[test]
    fn a_damaged_or_foreign_pair_file_is_refused() {
        let (file, _) = shipped();
        let bytes = std::fs::read(&file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        // One bit of one weight flipped.
        let mut flipped = bytes.clone();
        let at = flipped.len() - 1000;
        flipped[at] ^= 0x10;
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let base = header["__metadata__"]["base"].as_str().unwrap().to_string();
        let other = format!(
            "{}{}",
            if base.starts_with('0') { '1' } else { '0' },
            &base[1..]
        );
        let foreign = replace_meta(&bytes, &base, &other);
        let old = replace_meta(&bytes, "deja-pair-model/1", "deja-pair-model/0");
        for (name, data, want) in [
            ("flipped", flipped, "BLAKE3"),
            ("foreign", foreign, "base model"),
            ("old", old, "format"),
            ("short", bytes[..bytes.len() / 2].to_vec(), ""),
        ] {
            let Some(got) = embedder(Some(write(name, &data))) else {
                return;
            };
            let err = got.map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    /// Replaces the first `from` in the JSON header by `to`, of the same length.
    fn replace_meta(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
        assert!(header.contains(from), "{from} not in the header");
        let mut out = bytes[..8].to_vec();
        out.extend_from_slice(header.replacen(from, to, 1).as_bytes());
        out.extend_from_slice(&bytes[8 + n..]);
        out
    }
}
