//! Matrix products on 4-bit weights and 8-bit activations, the arithmetic of a Q4_0 model
//! (the multilingual encoder, `e5/`).
//!
//! A weight row is stored in blocks of [`QK`] weights, each block one f16 scale `d_w` and
//! 32 unsigned nibbles `q` (weight = `d_w * (q - 8)`). Before each product the activations
//! are quantised the same way per block of 32 (`Q8Rows`: scale `d_a = max|x| / 127`, values
//! rounded to the nearest integer, ties to even), so every block's dot product is an
//! integer one:
//!
//! `y = bias + sum over blocks of d_w * d_a * (sum(q * a) - 8 * sum(a))`
//!
//! With AVX2 the integer part runs 32 multiply-adds per `vpmaddubsw` (unsigned nibbles
//! times signed bytes; no overflow, since 15 * 128 * 2 fits an i16). The weights are
//! expanded once at load to one byte per nibble, so the hot loop does no unpacking. The
//! generic copy computes the same sums with plain integers; they agree exactly up to the
//! order of the float additions.

use crate::kernels::Isa;

/// Weights per quantisation block.
pub(crate) const QK: usize = 32;

/// Bytes of one Q4_0 block in a file: an f16 scale and 16 bytes of nibbles.
pub(crate) const Q4_BLOCK_BYTES: usize = 2 + QK / 2;

/// IEEE half to single precision.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: the value is man * 2^-24.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (31, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// One Q4_0 block: its scale and its 32 nibble values (0..=15) in weight order. Byte `j`
/// holds weight `j` in its low nibble and weight `j + 16` in its high one.
fn block(bytes: &[u8]) -> (f32, [u8; QK]) {
    let d = f16_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]));
    let mut q = [0u8; QK];
    for (j, &b) in bytes[2..Q4_BLOCK_BYTES].iter().enumerate() {
        q[j] = b & 0x0f;
        q[j + 16] = b >> 4;
    }
    (d, q)
}

/// Dequantises one row of Q4_0 blocks (`out.len()` weights) into `out`, adding to what is
/// there.
pub(crate) fn add_row(blocks: &[u8], out: &mut [f32]) {
    for (chunk, o) in blocks
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let (d, q) = block(chunk);
        for (o, &q) in o.iter_mut().zip(&q) {
            *o += (f32::from(q) - 8.0) * d;
        }
    }
}

/// A `[rows, cols]` weight matrix of Q4_0 blocks, expanded to one byte per weight.
pub(crate) struct Q4Matrix {
    rows: usize,
    cols: usize,
    /// `rows * cols` nibble values, row-major.
    q: Vec<u8>,
    /// `rows * cols / QK` block scales, row-major.
    d: Vec<f32>,
}

impl Q4Matrix {
    /// From `rows * cols / QK` Q4_0 blocks, row-major. `cols` must be a multiple of [`QK`]
    /// and `bytes` exactly the blocks' size (the loader checks both).
    pub(crate) fn from_blocks(bytes: &[u8], rows: usize, cols: usize) -> Q4Matrix {
        debug_assert_eq!(cols % QK, 0);
        debug_assert_eq!(bytes.len(), rows * cols / QK * Q4_BLOCK_BYTES);
        let mut q = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(rows * cols / QK);
        for chunk in bytes.chunks_exact(Q4_BLOCK_BYTES) {
            let (scale, nibbles) = block(chunk);
            d.push(scale);
            q.extend_from_slice(&nibbles);
        }
        Q4Matrix { rows, cols, q, d }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes this matrix takes in memory.
    pub(crate) fn bytes(&self) -> usize {
        self.q.len() + self.d.len() * 4
    }
}

/// Rows of activations quantised per block of [`QK`]: the integer values, each block's
/// scale and the sum of its integers. Reused across products (it only grows).
#[derive(Default)]
pub(crate) struct Q8Rows {
    rows: usize,
    cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<i32>,
}

impl Q8Rows {
    /// Quantises `x`, `rows` rows of `cols` (a multiple of [`QK`]).
    pub(crate) fn quantize(&mut self, isa: Isa, x: &[f32], rows: usize, cols: usize) {
        debug_assert_eq!(cols % QK, 0);
        let blocks = rows * cols / QK;
        self.rows = rows;
        self.cols = cols;
        self.q.resize(rows * cols, 0);
        self.d.resize(blocks, 0.0);
        self.s.resize(blocks, 0);
        let x = &x[..rows * cols];
        let (q, d, s) = (&mut self.q[..], &mut self.d[..], &mut self.s[..]);
        match isa {
            Isa::Generic => quantize_blocks(x, q, d, s),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only constructed after detecting AVX2 and FMA.
            Isa::Avx2 => unsafe { quantize_blocks_avx2(x, q, d, s) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quantize_blocks_avx2(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [i32]) {
    quantize_blocks(x, q, d, s);
}

/// [`Q8Rows::quantize`]'s arithmetic, written so LLVM vectorises it: the block maximum in
/// 8 lanes, the rounding without a library call.
#[inline(always)]
fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [i32]) {
    for (((x, q), d), s) in x
        .chunks_exact(QK)
        .zip(q.chunks_exact_mut(QK))
        .zip(d.iter_mut())
        .zip(s.iter_mut())
    {
        let mut lanes = [0.0f32; 8];
        for c in x.chunks_exact(8) {
            for (m, v) in lanes.iter_mut().zip(c) {
                *m = m.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0.0f32, |m, &v| m.max(v));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0;
        for (q, &v) in q.iter_mut().zip(x) {
            let r = round_even(v * inv).clamp(-128.0, 127.0) as i32;
            *q = r as i8;
            sum += r;
        }
        *d = scale;
        *s = sum;
    }
}

/// `x` rounded to the nearest integer, ties to even, for |x| < 2^22: adding 1.5 * 2^23
/// leaves no fraction bits, so the addition itself rounds (as the default rounding mode
/// does, to even). Unlike `round_ties_even` it needs no library call, so it vectorises.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Output rows computed together, so each activation block is loaded once for them (8
/// against 4, alternated runs of `benches/e5.rs`: 12.4 against 12.9 ms for a 16-token
/// query, the same for a batch of 16).
pub(crate) const ROWS: usize = 8;

/// `y[t, o] = bias[o] + sum_k a[t, k] * w[o, k]` for every activation row `t`; `y` is
/// `[a.rows, w.rows]`, row-major.
pub(crate) fn matmul(isa: Isa, w: &Q4Matrix, bias: &[f32], a: &Q8Rows, y: &mut [f32]) {
    assert_eq!(w.cols, a.cols, "q4 matmul: inner dimensions differ");
    assert_eq!(w.rows % ROWS, 0, "q4 matmul: rows not a multiple of {ROWS}");
    assert!(bias.len() >= w.rows && y.len() >= a.rows * w.rows);
    match isa {
        Isa::Generic => matmul_generic(w, bias, a, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only constructed after detecting AVX2 and FMA; the asserts
        // above and the invariants of `Q4Matrix` and `Q8Rows` bound every access.
        Isa::Avx2 => unsafe { avx2::matmul(w, bias, a, y) },
    }
}

fn matmul_generic(w: &Q4Matrix, bias: &[f32], a: &Q8Rows, y: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    let nb = k / QK;
    for t in 0..a.rows {
        let aq = &a.q[t * k..(t + 1) * k];
        let (ad, asum) = (&a.d[t * nb..(t + 1) * nb], &a.s[t * nb..(t + 1) * nb]);
        for o in 0..n {
            let wq = &w.q[o * k..(o + 1) * k];
            let wd = &w.d[o * nb..(o + 1) * nb];
            let mut acc = 0.0f32;
            for b in 0..nb {
                let dot: i32 = wq[b * QK..(b + 1) * QK]
                    .iter()
                    .zip(&aq[b * QK..(b + 1) * QK])
                    .map(|(&w, &a)| i32::from(w) * i32::from(a))
                    .sum();
                acc += wd[b] * ad[b] * (dot - 8 * asum[b]) as f32;
            }
            y[t * n + o] = bias[o] + acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Q4Matrix, Q8Rows, QK, ROWS};

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// See [`super::matmul`]. Safety: AVX2 and FMA are available; `w.rows` is a multiple
    /// of `ROWS`, `bias` has `w.rows` entries, `y` has `a.rows * w.rows`, and `a.cols ==
    /// w.cols`, a multiple of `QK`.
    ///
    /// For each group of `ROWS` output rows and each activation row, the products of the
    /// weight and activation block scales are computed first, in one vectorised pass; the
    /// block loop then loads each as a broadcast and keeps `ROWS` accumulators busy. (Tiles
    /// of 2 or 4 activation rows per weight load measured slower on the EPYC: 15.5 and
    /// 14.9 ms against 13.2 ms for a 16-token query.)
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn matmul(w: &Q4Matrix, bias: &[f32], a: &Q8Rows, y: &mut [f32]) {
        let (n, k) = (w.rows, w.cols);
        let nb = k / QK;
        let ones = _mm256_set1_epi16(1);
        let (wq, aq) = (w.q.as_ptr(), a.q.as_ptr());
        let mut scale = vec![0.0f32; ROWS * nb];
        for o in (0..n).step_by(ROWS) {
            let wd = &w.d[o * nb..(o + ROWS) * nb];
            for t in 0..a.rows {
                let ad = &a.d[t * nb..(t + 1) * nb];
                for (s, w) in scale.chunks_exact_mut(nb).zip(wd.chunks_exact(nb)) {
                    s.iter_mut()
                        .zip(w.iter().zip(ad))
                        .for_each(|(s, (w, a))| *s = w * a);
                }
                let sp = scale.as_ptr();
                let mut acc = [_mm256_setzero_ps(); ROWS];
                for b in 0..nb {
                    // SAFETY: t < a.rows and b < nb: the bytes lie in `a.q`.
                    let av = unsafe { _mm256_loadu_si256(aq.add(t * k + b * QK).cast()) };
                    for (r, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: o + r < w.rows and b < nb: the bytes lie in `w.q`, the
                        // scale in `scale` (ROWS rows of nb).
                        let (wv, s) = unsafe {
                            (
                                _mm256_loadu_si256(wq.add((o + r) * k + b * QK).cast()),
                                _mm256_broadcast_ss(&*sp.add(r * nb + b)),
                            )
                        };
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones);
                        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, *acc);
                    }
                }
                let asum = &a.s[t * nb..(t + 1) * nb];
                for (r, (acc, s)) in acc.iter().zip(scale.chunks_exact(nb)).enumerate() {
                    // The nibbles' offset of 8, through the activations' block sums.
                    let corr: f32 = s.iter().zip(asum).map(|(s, &n)| s * n as f32).sum();
                    y[t * n + o + r] = bias[o + r] + hsum(*acc) - 8.0 * corr;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*seed >> 33) as u32
    }

    /// Random Q4_0 blocks for a `[rows, cols]` matrix, and the same weights as f32.
    fn random_matrix(rows: usize, cols: usize, seed: &mut u64) -> (Vec<u8>, Vec<f32>) {
        let mut bytes = Vec::new();
        let mut dense = vec![0.0; rows * cols];
        for row in dense.chunks_exact_mut(cols) {
            let mut blocks = Vec::new();
            for _ in 0..cols / QK {
                // A scale between 2^-8 and 2^-5 as an f16 (exponent 7..=10, random mantissa).
                let h = ((7 + lcg(seed) % 4) << 10 | (lcg(seed) & 0x3ff)) as u16;
                blocks.extend_from_slice(&h.to_le_bytes());
                blocks.extend((0..QK / 2).map(|_| lcg(seed) as u8));
            }
            add_row(&blocks, row);
            bytes.extend(blocks);
        }
        (bytes, dense)
    }

    #[test]
    fn f16_conversion_is_exact() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(h), f, "{h:#x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    /// The quantised product matches the f32 product of the same weights up to the
    /// activations' rounding, and the generic and AVX2 copies agree.
    #[test]
    fn quantised_product_matches_dense_and_kernels_agree() {
        let mut seed = 7;
        let (rows, cols, tokens) = (64, 96, 5);
        let (bytes, dense) = random_matrix(rows, cols, &mut seed);
        let w = Q4Matrix::from_blocks(&bytes, rows, cols);
        let x: Vec<f32> = (0..tokens * cols)
            .map(|_| (lcg(&mut seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let bias: Vec<f32> = (0..rows).map(|i| i as f32 * 0.01).collect();
        let mut a = Q8Rows::default();
        a.quantize(Isa::Generic, &x, tokens, cols);
        let mut generic = vec![0.0; tokens * rows];
        matmul(Isa::Generic, &w, &bias, &a, &mut generic);
        for t in 0..tokens {
            for o in 0..rows {
                let exact: f32 = bias[o]
                    + (0..cols)
                        .map(|c| x[t * cols + c] * dense[o * cols + c])
                        .sum::<f32>();
                let got = generic[t * rows + o];
                assert!((got - exact).abs() < 0.02, "{t},{o}: {got} vs {exact}");
            }
        }
        let isa = Isa::detect();
        let mut fast = vec![0.0; tokens * rows];
        matmul(isa, &w, &bias, &a, &mut fast);
        for (g, f) in generic.iter().zip(&fast) {
            assert!((g - f).abs() <= 1e-5 * g.abs().max(1.0), "{g} vs {f}");
        }
    }

    #[test]
    fn quantisation_rounds_ties_to_even_and_keeps_sums() {
        let mut x = vec![0.0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        let mut a = Q8Rows::default();
        a.quantize(Isa::detect(), &x, 1, QK);
        assert_eq!(&a.q[..4], &[127, 2, -4, 0]);
        assert_eq!(a.s[0], 127 + 2 - 4);
        assert_eq!(a.d[0], 1.0);
        a.quantize(Isa::detect(), &[0.0; QK], 1, QK);
        assert!(a.q.iter().all(|&q| q == 0) && a.d[0] == 0.0);
    }
}
