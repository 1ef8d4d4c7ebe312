//! The multilingual-e5-small encoder (XLM-R's BERT layout: 12 layers, hidden 384, 12 heads)
//! over Q4_0 weights: word embeddings stay 4-bit and are expanded a row at a time, every
//! linear layer runs as an int8 × int4 product (`q4.rs`), attention, LayerNorm and GELU in
//! f32. Sequences of a batch are packed back to back as in `model.rs`. Mean pooling over
//! every token, `<s>` and `</s>` included, as sentence-transformers does for this model.

use std::sync::Arc;

use crate::kernels::{self, gemm, Isa};
use crate::packed::{PackedWeight, WeightFormat};
use crate::q4::{self, Q4Matrix, Q8Rows, Q4_BLOCK_BYTES, QK};

use super::blob::{Blob, Dtype, Header};

/// A linear layer's weights as the products run them.
enum Linear {
    /// 4-bit weights against activations quantised to 8 bits (`q4.rs`).
    Int8(Q4Matrix),
    /// Weights dequantised at load, f32 activations (`packed.rs`).
    F32(PackedWeight),
}

impl Linear {
    fn rows(&self) -> usize {
        match self {
            Linear::Int8(m) => m.rows(),
            Linear::F32(p) => p.n(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Linear::Int8(m) => m.bytes(),
            Linear::F32(p) => p.bytes(),
        }
    }

    /// `y = x * w^T + bias` for `rows` rows of `x`; `acts` holds `x` quantised when the
    /// layer is `Int8`.
    fn apply(&self, isa: Isa, x: &[f32], rows: usize, acts: &Q8Rows, bias: &[f32], y: &mut [f32]) {
        match self {
            Linear::Int8(m) => q4::matmul(isa, m, bias, acts, y),
            Linear::F32(p) => {
                let (k, n) = (p.k(), p.n());
                for row in y[..rows * n].chunks_exact_mut(n) {
                    row.copy_from_slice(&bias[..n]);
                }
                p.matmul_acc(rows, x, k, y, n);
            }
        }
    }
}

/// How the linear layers run ([`Encoder::load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// The file's 4-bit weights, activations quantised to 8 bits ([`Q4Matrix`]).
    Int8,
    /// Weights dequantised at load and kept as the format says ([`PackedWeight`]).
    Dense(WeightFormat),
}

struct Layer {
    q: Linear,
    qb: Vec<f32>,
    k: Linear,
    kb: Vec<f32>,
    v: Linear,
    vb: Vec<f32>,
    o: Linear,
    ob: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    up: Linear,
    up_b: Vec<f32>,
    down: Linear,
    down_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

pub(crate) struct Encoder {
    pub cfg: Header,
    /// Word embeddings, `vocab` rows of Q4_0 blocks (shared with a pair model's encoder).
    word: Arc<[u8]>,
    /// Position embeddings (the file's row 0 is the first token's) plus token type 0.
    pos_type: Vec<f32>,
    /// Token type 1 minus token type 0: what a pair's second segment adds (the embedder
    /// reads type 0 only; the pair model was trained with both).
    type_delta: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
    precision: Precision,
    isa: Isa,
}

/// Work buffers of one forward pass, reused across calls.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    out: Vec<f32>,
    mid: Vec<f32>,
    scores: Vec<f32>,
    acts: Q8Rows,
}

fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `[rows, cols]` weights transposed to the `[cols, rows]` the packed product takes.
fn packed(w: &[f32], rows: usize, cols: usize, weights: WeightFormat) -> Linear {
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    Linear::F32(PackedWeight::new(t, cols, rows, weights))
}

/// Tensors that replace the file's (a pair model's fine-tuned weights): the values of a
/// tensor by its name in the file and its shape (`[rows, cols]` or `[n]`), `None` when
/// the file's own stay.
pub(crate) type Overlay<'a> = dyn Fn(&str, &[usize]) -> Option<Result<Vec<f32>, String>> + 'a;

impl Encoder {
    pub(crate) fn load(blob: &Blob, bytes: &[u8], precision: Precision) -> Result<Encoder, String> {
        Encoder::load_with(blob, bytes, precision, &|_, _| None, None)
    }

    /// [`Encoder::load`] with some tensors replaced by `overlay`'s (the replaced linear
    /// layers run dense, in f16 if `precision` is 4-bit), and with `word` the word embeddings
    /// of another encoder of the same file instead of a copy of its own.
    pub(crate) fn load_with(
        blob: &Blob,
        bytes: &[u8],
        precision: Precision,
        overlay: &Overlay<'_>,
        word: Option<Arc<[u8]>>,
    ) -> Result<Encoder, String> {
        let cfg = blob.header.clone();
        let (h, ff) = (cfg.hidden, cfg.intermediate);
        let dense = match precision {
            Precision::Dense(weights) => weights,
            Precision::Int8 => WeightFormat::F16,
        };
        let f32_tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let v = match overlay(name, shape) {
                Some(v) => v?,
                None => {
                    let t = blob.tensor(name, Dtype::F32, shape.iter().product())?;
                    f32s(&bytes[t.range.clone()])
                }
            };
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor `{name}` has a value that is not finite"));
            }
            Ok(v)
        };
        let q4_tensor = |name: &str, rows: usize, cols: usize| -> Result<Linear, String> {
            if let Some(w) = overlay(name, &[rows, cols]) {
                return Ok(packed(&w?, rows, cols, dense));
            }
            let t = blob.tensor(name, Dtype::Q4, rows * cols)?;
            let blocks = &bytes[t.range.clone()];
            Ok(match precision {
                Precision::Int8 => Linear::Int8(Q4Matrix::from_blocks(blocks, rows, cols)),
                Precision::Dense(weights) => {
                    // `[rows, cols]` dequantised.
                    let row_bytes = cols / QK * Q4_BLOCK_BYTES;
                    let mut w = vec![0.0f32; rows * cols];
                    for (r, out) in w.chunks_exact_mut(cols).enumerate() {
                        q4::add_row(&blocks[r * row_bytes..(r + 1) * row_bytes], out);
                    }
                    packed(&w, rows, cols, weights)
                }
            })
        };
        let word = match word {
            Some(word) => word,
            None => bytes[blob
                .tensor("emb.word", Dtype::Q4, cfg.vocab * h)?
                .range
                .clone()]
            .into(),
        };
        let positions = f32_tensor("emb.pos", &[cfg.positions, h])?;
        let types = blob
            .tensors
            .get("emb.type")
            .filter(|t| t.dtype == Dtype::F32 && t.elements >= h && t.elements % h == 0)
            .ok_or("tensor `emb.type` missing or of the wrong shape")?;
        let types = f32_tensor("emb.type", &[types.elements / h, h])?;
        let (type0, type1) = (&types[..h], types.get(h..2 * h));
        let type_delta = match type1 {
            Some(t1) => t1.iter().zip(type0).map(|(a, b)| a - b).collect(),
            None => vec![0.0; h],
        };
        let mut pos_type = positions;
        for row in pos_type.chunks_exact_mut(h) {
            row.iter_mut().zip(type0).for_each(|(p, t)| *p += t);
        }
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let n = |s: &str| format!("l{l}.{s}");
            layers.push(Layer {
                q: q4_tensor(&n("q.w"), h, h)?,
                qb: f32_tensor(&n("q.b"), &[h])?,
                k: q4_tensor(&n("k.w"), h, h)?,
                kb: f32_tensor(&n("k.b"), &[h])?,
                v: q4_tensor(&n("v.w"), h, h)?,
                vb: f32_tensor(&n("v.b"), &[h])?,
                o: q4_tensor(&n("ao.w"), h, h)?,
                ob: f32_tensor(&n("ao.b"), &[h])?,
                ln1_g: f32_tensor(&n("aln.w"), &[h])?,
                ln1_b: f32_tensor(&n("aln.b"), &[h])?,
                up: q4_tensor(&n("fi.w"), ff, h)?,
                up_b: f32_tensor(&n("fi.b"), &[ff])?,
                down: q4_tensor(&n("fo.w"), h, ff)?,
                down_b: f32_tensor(&n("fo.b"), &[h])?,
                ln2_g: f32_tensor(&n("oln.w"), &[h])?,
                ln2_b: f32_tensor(&n("oln.b"), &[h])?,
            });
        }
        // The products compute q4::ROWS output rows at a time (the header's sizes are
        // multiples of 32, so this holds for any file the parser accepts).
        if layers.iter().any(|l| !l.up.rows().is_multiple_of(q4::ROWS))
            || !h.is_multiple_of(q4::ROWS)
        {
            return Err(format!("layer sizes must be multiples of {}", q4::ROWS));
        }
        Ok(Encoder {
            emb_ln_g: f32_tensor("emb.ln.w", &[h])?,
            emb_ln_b: f32_tensor("emb.ln.b", &[h])?,
            word,
            pos_type,
            type_delta,
            layers,
            precision,
            isa: Isa::detect(),
            cfg,
        })
    }

    /// The 4-bit word embeddings, to share with another encoder of the same file.
    pub(crate) fn word(&self) -> Arc<[u8]> {
        Arc::clone(&self.word)
    }

    /// Bytes the 4-bit word embeddings take.
    pub(crate) fn word_bytes(&self) -> usize {
        self.word.len()
    }

    /// Bytes the weights take in memory.
    pub(crate) fn bytes(&self) -> usize {
        let mats: usize = self
            .layers
            .iter()
            .map(|l| l.q.bytes() + l.k.bytes() + l.v.bytes() + l.o.bytes())
            .chain(self.layers.iter().map(|l| l.up.bytes() + l.down.bytes()))
            .sum();
        self.word.len() + self.pos_type.len() * 4 + mats
    }

    /// Writes one mean-pooled, not yet normalised, vector per sequence to `out[i]`. Every
    /// id must be below `cfg.vocab`, every sequence non-empty and at most `cfg.positions`
    /// long (the caller, `mod.rs`, guarantees both). With `segments`, sequence `i`'s tokens
    /// from `segments[i]` on are token type 1 (a pair's second prompt).
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
        let scale = 1.0 / (dh as f32).sqrt();
        let total: usize = seqs.iter().map(Vec::len).sum();
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if total == 0 {
            return;
        }
        let row_bytes = h / QK * Q4_BLOCK_BYTES;
        let x = grow(&mut s.x, total * h);
        let mut t = 0;
        for (k, seq) in seqs.iter().enumerate() {
            let second = segments
                .and_then(|s| s.get(k))
                .copied()
                .unwrap_or(seq.len());
            for (i, &id) in seq.iter().enumerate() {
                let row = &mut x[t * h..(t + 1) * h];
                row.copy_from_slice(&self.pos_type[i * h..(i + 1) * h]);
                if i >= second {
                    row.iter_mut()
                        .zip(&self.type_delta)
                        .for_each(|(r, d)| *r += d);
                }
                let at = id as usize * row_bytes;
                q4::add_row(&self.word[at..at + row_bytes], row);
                t += 1;
            }
        }
        kernels::layer_norm(isa, x, h, &self.emb_ln_g, &self.emb_ln_b, cfg.eps);
        grow(&mut s.q, total * h);
        grow(&mut s.k, total * h);
        grow(&mut s.v, total * h);
        grow(&mut s.ctx, total * h);
        grow(&mut s.out, total * h);
        grow(&mut s.mid, total * ff);
        grow(&mut s.scores, longest * longest);

        for layer in &self.layers {
            let int8 = self.precision == Precision::Int8;
            if int8 {
                s.acts.quantize(isa, &s.x, total, h);
            }
            layer
                .q
                .apply(isa, &s.x, total, &s.acts, &layer.qb, &mut s.q);
            layer
                .k
                .apply(isa, &s.x, total, &s.acts, &layer.kb, &mut s.k);
            layer
                .v
                .apply(isa, &s.x, total, &s.acts, &layer.vb, &mut s.v);
            let mut start = 0;
            for seq in seqs {
                let n = seq.len();
                let scores = &mut s.scores[..n * n];
                for head in 0..cfg.heads {
                    let off = start * h + head * dh;
                    // scores = Q_head * K_head^T / sqrt(dh).
                    gemm(n, dh, n, &s.q[off..], h, &s.k[off..], 1, h, 0.0, scores, n);
                    scores.iter_mut().for_each(|v| *v *= scale);
                    kernels::softmax_rows(isa, scores, n);
                    gemm(
                        n,
                        n,
                        dh,
                        scores,
                        n,
                        &s.v[off..],
                        h,
                        1,
                        0.0,
                        &mut s.ctx[off..],
                        h,
                    );
                }
                start += n;
            }
            if int8 {
                s.acts.quantize(isa, &s.ctx, total, h);
            }
            layer
                .o
                .apply(isa, &s.ctx, total, &s.acts, &layer.ob, &mut s.out);
            add_norm(
                isa,
                &mut s.x[..total * h],
                &s.out,
                h,
                &layer.ln1_g,
                &layer.ln1_b,
                cfg.eps,
            );

            if int8 {
                s.acts.quantize(isa, &s.x, total, h);
            }
            layer
                .up
                .apply(isa, &s.x, total, &s.acts, &layer.up_b, &mut s.mid);
            kernels::gelu(isa, &mut s.mid[..total * ff]);
            if int8 {
                s.acts.quantize(isa, &s.mid, total, ff);
            }
            layer
                .down
                .apply(isa, &s.mid, total, &s.acts, &layer.down_b, &mut s.out);
            add_norm(
                isa,
                &mut s.x[..total * h],
                &s.out,
                h,
                &layer.ln2_g,
                &layer.ln2_b,
                cfg.eps,
            );
        }

        let mut start = 0;
        for (seq, vec) in seqs.iter().zip(out.iter_mut()) {
            let n = seq.len();
            vec.resize(h, 0.0);
            kernels::mean_rows(isa, &s.x[start * h..(start + n) * h], h, vec);
            start += n;
        }
    }
}

/// `x = LayerNorm(x + y)`, row by row.
fn add_norm(isa: Isa, x: &mut [f32], y: &[f32], width: usize, g: &[f32], b: &[f32], eps: f32) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
    kernels::layer_norm(isa, x, width, g, b, eps);
}
