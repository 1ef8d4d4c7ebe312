//! The BERT encoder: weights loaded from `model.safetensors` and the f32 forward pass from
//! token ids to a pooled sentence vector.
//!
//! Sequences of a batch are packed back to back (no padding tokens): every dense layer works
//! per token, and attention is computed per sequence over that sequence's own tokens. This
//! gives exactly what sentence-transformers computes with pad-to-longest plus an attention
//! mask (masked keys get zero weight, and mean pooling skips padding), without the work on
//! padding. This module does not tokenize; see `bert.rs`.

use std::path::Path;
use std::sync::Arc;

use deja_core::EmbedError;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::kernels::{self, gemm, Isa};
use crate::packed::{PackedWeight, WeightFormat};

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    Mean,
    Cls,
}

#[derive(Debug, Clone)]
pub(crate) struct BertConfig {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub eps: f32,
    /// Longest token sequence (special tokens included) the model is run on.
    pub max_len: usize,
    pub pooling: Pooling,
}

struct Layer {
    /// Query, key and value projections fused and transposed to `[hidden, 3 * hidden]`;
    /// the query part is pre-scaled by `1 / sqrt(head_dim)`.
    wqkv: PackedWeight,
    bqkv: Vec<f32>,
    /// Attention output projection, transposed to `[hidden, hidden]`.
    wo: PackedWeight,
    bo: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    /// Feed-forward up projection, transposed to `[hidden, intermediate]`.
    wi: PackedWeight,
    bi: Vec<f32>,
    /// Feed-forward down projection, transposed to `[intermediate, hidden]`.
    wd: PackedWeight,
    bd: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

pub(crate) struct BertModel {
    pub cfg: BertConfig,
    /// Word embeddings, shared with a pair model built on the same base (`pair.rs`).
    word: Arc<[f32]>,
    /// Position embeddings with the token-type-0 embedding already added (a single sentence
    /// is all segment 0).
    pos_type: Vec<f32>,
    /// Token type 1 minus token type 0: added to the second segment's tokens of a pair.
    type1: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
    isa: Isa,
}

/// Work buffers of one forward pass, reused across calls so the hot path does not allocate
/// once they have grown to the largest batch seen.
#[derive(Default)]
pub(crate) struct Scratch {
    h: Vec<f32>,
    next: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    ff: Vec<f32>,
    scores: Vec<f32>,
}

fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> EmbedError {
    EmbedError::ModelInvalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_json(path: &Path) -> Result<Value, EmbedError> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))
}

impl BertConfig {
    /// Reads `config.json`, `1_Pooling/config.json` and (if present)
    /// `sentence_bert_config.json` from a sentence-transformers model directory.
    pub(crate) fn load(dir: &Path) -> Result<BertConfig, EmbedError> {
        let path = dir.join("config.json");
        let cfg = read_json(&path)?;
        let int = |key: &str| -> Result<usize, EmbedError> {
            cfg.get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| invalid(&path, format!("missing integer `{key}`")))
        };
        let hidden = int("hidden_size")?;
        let heads = int("num_attention_heads")?;
        if heads == 0 || hidden % heads != 0 {
            return Err(invalid(
                &path,
                "hidden_size is not a multiple of num_attention_heads",
            ));
        }
        let act = cfg
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu");
        if act != "gelu" {
            return Err(invalid(
                &path,
                format!("unsupported hidden_act `{act}` (want `gelu`)"),
            ));
        }
        let pet = cfg
            .get("position_embedding_type")
            .and_then(Value::as_str)
            .unwrap_or("absolute");
        if pet != "absolute" {
            return Err(invalid(
                &path,
                format!("unsupported position_embedding_type `{pet}` (want `absolute`)"),
            ));
        }
        let mut max_len = int("max_position_embeddings")?;
        let st_path = dir.join("sentence_bert_config.json");
        if st_path.exists() {
            if let Some(n) = read_json(&st_path)?
                .get("max_seq_length")
                .and_then(Value::as_u64)
            {
                max_len = max_len.min(n as usize);
            }
        }
        let pool_path = dir.join("1_Pooling").join("config.json");
        let pool = read_json(&pool_path)?;
        let flag = |key: &str| pool.get(key).and_then(Value::as_bool).unwrap_or(false);
        let pooling = if flag("pooling_mode_mean_tokens") {
            Pooling::Mean
        } else if flag("pooling_mode_cls_token") {
            Pooling::Cls
        } else {
            return Err(invalid(&pool_path, "only mean or cls pooling is supported"));
        };
        Ok(BertConfig {
            hidden,
            heads,
            layers: int("num_hidden_layers")?,
            intermediate: int("intermediate_size")?,
            vocab: int("vocab_size")?,
            eps: cfg
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12) as f32,
            max_len,
            pooling,
        })
    }
}

/// Tensor lookup in a safetensors file, tolerant of the naming variants of BERT checkpoints
/// (`bert.` prefix, `gamma`/`beta` for LayerNorm). With an overlay (a pair model's tuned
/// weights), a tensor the overlay has is taken from it, by its exact name.
struct Tensors<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
    path: &'a Path,
    overlay: Option<(&'a SafeTensors<'a>, &'a Path)>,
}

impl Tensors<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        if let Some((overlay, path)) = self.overlay {
            if let Ok(view) = overlay.tensor(name) {
                return values(&view, name, shape, path);
            }
        }
        let mut candidates = vec![format!("{}{name}", self.prefix)];
        if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
            candidates.push(format!("{}{stem}LayerNorm.gamma", self.prefix));
        }
        if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
            candidates.push(format!("{}{stem}LayerNorm.beta", self.prefix));
        }
        let view = candidates
            .iter()
            .find_map(|n| self.st.tensor(n).ok())
            .ok_or_else(|| invalid(self.path, format!("tensor `{name}` not found")))?;
        values(&view, name, shape, self.path)
    }

    /// A `[rows, cols]` weight (PyTorch `Linear` layout, `[out, in]`) transposed to
    /// `[cols, rows]` so that `x * w` is a plain row-major product.
    fn get_transposed(&self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>, EmbedError> {
        let w = self.get(name, &[rows, cols])?;
        let mut t = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = w[r * cols + c];
            }
        }
        Ok(t)
    }
}

/// A tensor's values as f32, checked against `shape`.
pub(crate) fn values(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>, EmbedError> {
    if view.shape() != shape {
        return Err(invalid(
            path,
            format!(
                "tensor `{name}` has shape {:?}, want {shape:?}",
                view.shape()
            ),
        ));
    }
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(invalid(
                path,
                format!("tensor `{name}` has unsupported dtype {other:?}"),
            ))
        }
    };
    Ok(values)
}

/// Weights a model is built from: the base directory's `model.safetensors`, and optionally
/// an overlay of tuned tensors and word embeddings already loaded by another model.
pub(crate) struct Source<'a> {
    pub overlay: Option<(&'a SafeTensors<'a>, &'a Path)>,
    pub word: Option<Arc<[f32]>>,
    /// How the dense weights are kept.
    pub weights: WeightFormat,
}

impl BertModel {
    pub(crate) fn load(
        dir: &Path,
        cfg: BertConfig,
        weights: WeightFormat,
    ) -> Result<BertModel, EmbedError> {
        BertModel::load_from(
            dir,
            cfg,
            Source {
                overlay: None,
                word: None,
                weights,
            },
        )
    }

    pub(crate) fn load_from(
        dir: &Path,
        cfg: BertConfig,
        source: Source<'_>,
    ) -> Result<BertModel, EmbedError> {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| invalid(&path, e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid(&path, e.to_string()))?;
        let prefix = if st.tensor("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else {
            "bert."
        };
        let t = Tensors {
            st,
            prefix,
            path: &path,
            overlay: source.overlay,
        };
        let (h, ff) = (cfg.hidden, cfg.intermediate);
        let word: Arc<[f32]> = match source.word {
            Some(w) if w.len() == cfg.vocab * h => w,
            Some(_) => return Err(invalid(&path, "shared word embeddings have the wrong size")),
            None => t
                .get("embeddings.word_embeddings.weight", &[cfg.vocab, h])?
                .into(),
        };
        let positions = t.tensor_rows("embeddings.position_embeddings.weight", h)?;
        if positions.len() / h < cfg.max_len {
            return Err(invalid(
                &path,
                "fewer position embeddings than max_seq_length",
            ));
        }
        let types = t.tensor_rows("embeddings.token_type_embeddings.weight", h)?;
        let mut pos_type = positions[..cfg.max_len * h].to_vec();
        for row in pos_type.chunks_exact_mut(h) {
            row.iter_mut().zip(&types[..h]).for_each(|(p, t)| *p += t);
        }
        let type1: Vec<f32> = match types.get(h..2 * h) {
            Some(t1) => t1.iter().zip(&types[..h]).map(|(a, b)| a - b).collect(),
            None => vec![0.0; h],
        };
        let scale = 1.0 / ((h / cfg.heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = format!("encoder.layer.{i}.");
            let lin = |name: &str, out: usize, inp: usize| {
                Ok::<_, EmbedError>((
                    t.get_transposed(&format!("{p}{name}.weight"), out, inp)?,
                    t.get(&format!("{p}{name}.bias"), &[out])?,
                ))
            };
            let (wq, bq) = lin("attention.self.query", h, h)?;
            let (wk, bk) = lin("attention.self.key", h, h)?;
            let (wv, bv) = lin("attention.self.value", h, h)?;
            let mut wqkv = vec![0.0f32; h * 3 * h];
            for r in 0..h {
                let dst = &mut wqkv[r * 3 * h..(r + 1) * 3 * h];
                for (d, s) in dst[..h].iter_mut().zip(&wq[r * h..(r + 1) * h]) {
                    *d = s * scale;
                }
                dst[h..2 * h].copy_from_slice(&wk[r * h..(r + 1) * h]);
                dst[2 * h..].copy_from_slice(&wv[r * h..(r + 1) * h]);
            }
            let mut bqkv: Vec<f32> = bq.iter().map(|b| b * scale).collect();
            bqkv.extend_from_slice(&bk);
            bqkv.extend_from_slice(&bv);
            let (wo, bo) = lin("attention.output.dense", h, h)?;
            let (wi, bi) = lin("intermediate.dense", ff, h)?;
            let (wd, bd) = lin("output.dense", h, ff)?;
            layers.push(Layer {
                wqkv: PackedWeight::new(wqkv, h, 3 * h, source.weights),
                bqkv,
                wo: PackedWeight::new(wo, h, h, source.weights),
                bo,
                ln1_g: t.get(&format!("{p}attention.output.LayerNorm.weight"), &[h])?,
                ln1_b: t.get(&format!("{p}attention.output.LayerNorm.bias"), &[h])?,
                wi: PackedWeight::new(wi, h, ff, source.weights),
                bi,
                wd: PackedWeight::new(wd, ff, h, source.weights),
                bd,
                ln2_g: t.get(&format!("{p}output.LayerNorm.weight"), &[h])?,
                ln2_b: t.get(&format!("{p}output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(BertModel {
            word,
            pos_type,
            type1,
            emb_ln_g: t.get("embeddings.LayerNorm.weight", &[h])?,
            emb_ln_b: t.get("embeddings.LayerNorm.bias", &[h])?,
            layers,
            isa: Isa::detect(),
            cfg,
        })
    }

    /// The word embeddings, to share with a model built on the same base.
    pub(crate) fn word(&self) -> Arc<[f32]> {
        Arc::clone(&self.word)
    }

    /// Writes one pooled, not yet normalised, vector per sequence to `out[i]`. Every id
    /// must be below `cfg.vocab` and every sequence non-empty and at most `cfg.max_len`
    /// long; the callers (`bert.rs`, `pair.rs`) guarantee both. `segments`, for pairs,
    /// gives where each sequence's second segment (token type 1) starts; without it every
    /// token is type 0.
    pub(crate) fn forward(
        &self,
        seqs: &[Vec<u32>],
        segments: Option<&[usize]>,
        s: &mut Scratch,
        out: &mut [Vec<f32>],
    ) {
        let cfg = &self.cfg;
        let (h, ff, isa) = (cfg.hidden, cfg.intermediate, self.isa);
        let dh = h / cfg.heads;
        let total: usize = seqs.iter().map(Vec::len).sum();
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if total == 0 {
            return;
        }
        grow(&mut s.h, total * h);
        grow(&mut s.next, total * h);
        grow(&mut s.qkv, total * 3 * h);
        grow(&mut s.ctx, total * h);
        grow(&mut s.ff, total * ff);
        grow(&mut s.scores, longest * longest);

        // Embeddings.
        let mut t = 0;
        for (k, seq) in seqs.iter().enumerate() {
            let second = segments
                .and_then(|s| s.get(k).copied())
                .unwrap_or(seq.len());
            for (i, &id) in seq.iter().enumerate() {
                let row = &mut s.h[t * h..(t + 1) * h];
                let w = &self.word[id as usize * h..(id as usize + 1) * h];
                let p = &self.pos_type[i * h..(i + 1) * h];
                for ((r, w), p) in row.iter_mut().zip(w).zip(p) {
                    *r = w + p;
                }
                if i >= second {
                    row.iter_mut().zip(&self.type1).for_each(|(r, d)| *r += d);
                }
                t += 1;
            }
        }
        kernels::layer_norm(
            isa,
            &mut s.h[..total * h],
            h,
            &self.emb_ln_g,
            &self.emb_ln_b,
            cfg.eps,
        );

        for layer in &self.layers {
            // Fused Q, K, V projection: qkv = h * wqkv + bqkv.
            let qkv = &mut s.qkv[..total * 3 * h];
            kernels::fill_rows(isa, qkv, &layer.bqkv, 3 * h);
            layer.wqkv.matmul_acc(total, &s.h, h, qkv, 3 * h);

            // Attention, per sequence and head, on strided views of qkv.
            let mut start = 0;
            for seq in seqs {
                let n = seq.len();
                let qkv = &s.qkv[start * 3 * h..(start + n) * 3 * h];
                let scores = &mut s.scores[..n * n];
                for head in 0..cfg.heads {
                    let off = head * dh;
                    // scores = Q_head * K_head^T (Q is pre-scaled).
                    gemm(
                        n,
                        dh,
                        n,
                        &qkv[off..],
                        3 * h,
                        &qkv[h + off..],
                        1,
                        3 * h,
                        0.0,
                        scores,
                        n,
                    );
                    kernels::softmax_rows(isa, scores, n);
                    // ctx_head = softmax(scores) * V_head.
                    let ctx = &mut s.ctx[start * h + off..(start + n) * h];
                    gemm(
                        n,
                        n,
                        dh,
                        scores,
                        n,
                        &qkv[2 * h + off..],
                        3 * h,
                        1,
                        0.0,
                        ctx,
                        h,
                    );
                }
                start += n;
            }

            // Attention output: next = LayerNorm(h + ctx * wo + bo).
            let next = &mut s.next[..total * h];
            kernels::residual_rows(isa, next, &s.h, &layer.bo, h);
            layer.wo.matmul_acc(total, &s.ctx, h, next, h);
            kernels::layer_norm(isa, next, h, &layer.ln1_g, &layer.ln1_b, cfg.eps);
            std::mem::swap(&mut s.h, &mut s.next);

            // Feed-forward: next = LayerNorm(h + gelu(h * wi + bi) * wd + bd).
            let inner = &mut s.ff[..total * ff];
            kernels::fill_rows(isa, inner, &layer.bi, ff);
            layer.wi.matmul_acc(total, &s.h, h, inner, ff);
            kernels::gelu(isa, inner);
            let next = &mut s.next[..total * h];
            kernels::residual_rows(isa, next, &s.h, &layer.bd, h);
            layer.wd.matmul_acc(total, &s.ff, ff, next, h);
            kernels::layer_norm(isa, next, h, &layer.ln2_g, &layer.ln2_b, cfg.eps);
            std::mem::swap(&mut s.h, &mut s.next);
        }

        let mut start = 0;
        for (seq, vec) in seqs.iter().zip(out.iter_mut()) {
            let n = seq.len();
            vec.resize(h, 0.0);
            let rows = &s.h[start * h..(start + n) * h];
            match cfg.pooling {
                Pooling::Mean => kernels::mean_rows(isa, rows, h, vec),
                Pooling::Cls => vec.copy_from_slice(&rows[..h]),
            }
            start += n;
        }
    }
}

impl Tensors<'_> {
    /// A 2-D tensor whose rows are `width` long, with any number of rows.
    fn tensor_rows(&self, name: &str, width: usize) -> Result<Vec<f32>, EmbedError> {
        let rows = self
            .st
            .tensor(&format!("{}{name}", self.prefix))
            .map(|v| v.shape().first().copied().unwrap_or(0))
            .map_err(|_| invalid(self.path, format!("tensor `{name}` not found")))?;
        self.get(name, &[rows, width])
    }
}
