//! Int8 weights for the dense layers, and their product with AVX2 integer arithmetic.
//!
//! At a query's handful of tokens an f32 (or f16-widened) AVX2 kernel runs near the FMA
//! units' peak: eight multiply-adds per instruction. `vpmaddwd` does sixteen — two adjacent
//! `k` of sixteen 16-bit products summed into eight 32-bit lanes — so with integers the same
//! units do twice the work:
//!
//! - each weight column is quantised once, at load, to int8 with its own scale (the largest
//!   magnitude in the column maps to 127), and packed in panels of 16 columns whose `k` run
//!   in pairs, so one 16-byte load widened to 16-bit (`vpmovsxbw`) feeds eight lanes; the
//!   rare weights far above the rest of their column ([`OUTLIER_RMS`]) are kept in f32
//!   beside the panels, so they do not coarsen the column's steps;
//! - each row of activations is quantised on every call to 16-bit with its own scale: 15
//!   bits and more, so the activations lose next to nothing (BERT's few outlier dimensions,
//!   which make 8-bit activations lose accuracy, fit) and `vpmaddwd`'s pairs never saturate;
//!   the 32-bit sums cannot overflow either, since the row's largest value is chosen so
//!   that `k * 127 * largest < 2^31`;
//! - the 32-bit sums are scaled back to f32 once per output, by the row's scale times the
//!   column's.
//!
//! The weights take a quarter of their f32 bytes (MiniLM's six layers: 10.6 MB, which stays
//! in L3 between queries). Accuracy is the int8 weights': see the reference test.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use crate::kernels::{row_blocks, row_tiles};

/// Columns per panel: two AVX2 vectors of eight 32-bit sums.
pub(crate) const NR: usize = 16;

/// How many `k` pairs ahead of the micro-kernel the panel is prefetched (32 bytes a pair).
const PREFETCH_PAIRS: usize = 32;

/// A `[k, n]` weight matrix as int8 panels with a scale per column (`n` a multiple of
/// [`NR`]).
pub(crate) struct Int8Panels {
    k: usize,
    n: usize,
    /// Panel `p`, pair `q`: columns `p*16 .. p*16+8` as (k = 2q, k = 2q+1) byte pairs, then
    /// columns `p*16+8 .. p*16+16` likewise; `k` is padded to even with zeros.
    data: Vec<i8>,
    /// Per column: the weight is `data * scale`.
    scale: Vec<f32>,
    /// The few weights far larger than the rest of their column, exact, by `k`: they are
    /// zero in `data`, so that they do not set the column's scale.
    outliers: Vec<Outlier>,
}

/// A weight kept in f32 beside the int8 panels.
#[derive(Debug, Clone, Copy)]
struct Outlier {
    k: u32,
    j: u32,
    w: f32,
}

/// A weight more than this many times its column's root mean square is an outlier. BERT's
/// feed-forward outputs have a few (MiniLM: about one weight in 10,000), feeding the
/// outlier dimensions of the hidden state; with them setting the scale, the rest of their
/// column lost up to 8% of its precision and a short query's vector fell to cosine 0.998.
const OUTLIER_RMS: f32 = 6.0;

impl Int8Panels {
    /// Quantises and packs a row-major `[k, n]` matrix; `n` must be a multiple of [`NR`].
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Int8Panels {
        assert_eq!(w.len(), k * n, "weight size");
        assert_eq!(n % NR, 0, "int8 panels need n to be a multiple of {NR}");
        let mut outliers = Vec::new();
        // Per column: beyond this magnitude a weight is an outlier.
        let bound: Vec<f32> = (0..n)
            .map(|j| {
                let squares = (0..k).map(|kk| w[kk * n + j] * w[kk * n + j]).sum::<f32>();
                OUTLIER_RMS * (squares / k.max(1) as f32).sqrt()
            })
            .collect();
        let scale: Vec<f32> = (0..n)
            .map(|j| {
                let mut max = 0.0f32;
                for kk in 0..k {
                    let x = w[kk * n + j];
                    if x.abs() > bound[j] {
                        outliers.push(Outlier {
                            k: kk as u32,
                            j: j as u32,
                            w: x,
                        });
                    } else {
                        max = max.max(x.abs());
                    }
                }
                if max > 0.0 && max.is_finite() {
                    max / 127.0
                } else {
                    1.0
                }
            })
            .collect();
        outliers.sort_by_key(|o| (o.k, o.j));
        let pairs = k.div_ceil(2);
        let mut data = vec![0i8; n * pairs * 2];
        for p in 0..n / NR {
            for q in 0..pairs {
                let base = (p * pairs + q) * NR * 2;
                for c in 0..NR {
                    let j = p * NR + c;
                    let slot = base + (c / 8) * 16 + (c % 8) * 2;
                    for half in 0..2 {
                        let kk = 2 * q + half;
                        // An outlier is in `outliers`, and zero here.
                        if kk < k && w[kk * n + j].abs() <= bound[j] {
                            let v = (w[kk * n + j] / scale[j]).round().clamp(-127.0, 127.0);
                            data[slot + half] = v as i8;
                        }
                    }
                }
            }
        }
        Int8Panels {
            k,
            n,
            data,
            scale,
            outliers,
        }
    }

    /// The weight as stored: what the kernel computes with.
    #[cfg(test)]
    pub(crate) fn dequantized(&self, kk: usize, j: usize) -> f32 {
        let pairs = self.k.div_ceil(2);
        let (p, c) = (j / NR, j % NR);
        let slot = (p * pairs + kk / 2) * NR * 2 + (c / 8) * 16 + (c % 8) * 2 + kk % 2;
        self.outlier(kk, j)
            .unwrap_or(f32::from(self.data[slot]) * self.scale[j])
    }

    /// The weight at `[kk, j]` if it is kept exact.
    #[cfg(test)]
    fn outlier(&self, kk: usize, j: usize) -> Option<f32> {
        let found = self
            .outliers
            .iter()
            .find(|o| (o.k as usize, o.j as usize) == (kk, j));
        found.map(|o| o.w)
    }

    /// Bytes the panels, scales and outliers take.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() + self.scale.len() * 4 + self.outliers.len() * 12
    }

    /// `c += a * w` for row-major `a` (`m x k`, stride `lda`) and `c` (`m x n`, stride `ldc`).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `a` holds `m` rows of `k` floats at stride `lda` and `c`
    /// holds `m` rows of `n` floats at stride `ldc`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn matmul_acc(
        &self,
        m: usize,
        a: *const f32,
        lda: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        thread_local! {
            static ROWS: std::cell::RefCell<(Vec<i16>, Vec<f32>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let (k, n) = (self.k, self.n);
        let pairs = k.div_ceil(2);
        // The largest magnitude a row may take: k products of it with 127 stay below 2^31,
        // and it fits 16 bits.
        let limit = (i32::MAX as usize / (127 * 2 * pairs).max(1)).min(32767) as f32;
        ROWS.with(|rows| {
            let mut rows = rows.borrow_mut();
            let (q, row_scale) = &mut *rows;
            q.clear();
            q.resize(m * pairs * 2, 0);
            row_scale.clear();
            row_scale.resize(m, 0.0);
            for r in 0..m {
                // SAFETY: row `r` of `a` is `k` readable floats (the caller's promise).
                let row = unsafe { std::slice::from_raw_parts(a.add(r * lda), k) };
                let dst = &mut q[r * pairs * 2..(r * pairs * 2) + k];
                // SAFETY: AVX2 (this function's own features).
                row_scale[r] = unsafe { quantize_row(row, dst, limit) };
            }
            for (m0, mc) in row_blocks(m) {
                for p in 0..n / NR {
                    // SAFETY (offsets below): panel `p` is `pairs * 32` bytes of `data`;
                    // rows `m0 .. m0 + mc` of `q` and `c` exist.
                    let bp = unsafe { self.data.as_ptr().add(p * pairs * NR * 2) };
                    let sp = unsafe { self.scale.as_ptr().add(p * NR) };
                    for (r, rows) in row_tiles(mc, 6) {
                        let r = m0 + r;
                        let ap = unsafe { q.as_ptr().add(r * pairs * 2) };
                        let sa = &row_scale[r..r + rows];
                        let cp = unsafe { c.add(r * ldc + p * NR) };
                        unsafe {
                            match rows {
                                1 => tile::<1>(pairs, ap, bp, sp, sa, cp, ldc),
                                2 => tile::<2>(pairs, ap, bp, sp, sa, cp, ldc),
                                3 => tile::<3>(pairs, ap, bp, sp, sa, cp, ldc),
                                4 => tile::<4>(pairs, ap, bp, sp, sa, cp, ldc),
                                5 => tile::<5>(pairs, ap, bp, sp, sa, cp, ldc),
                                _ => tile::<6>(pairs, ap, bp, sp, sa, cp, ldc),
                            }
                        }
                    }
                }
            }
        });
        for o in &self.outliers {
            for r in 0..m {
                // SAFETY: `o.k < k` and `o.j < n`, within row `r` of `a` and of `c`.
                unsafe { *c.add(r * ldc + o.j as usize) += *a.add(r * lda + o.k as usize) * o.w };
            }
        }
    }
}

/// Quantises `row` into `dst` (as long as `row`) so that its largest magnitude becomes
/// `limit`; returns the scale (`row ≈ dst * scale`), 0 for a row of zeros.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row(row: &[f32], dst: &mut [i16], limit: f32) -> f32 {
    let k = row.len();
    let chunks = k / 16;
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut vmax = _mm256_setzero_ps();
    for i in 0..k / 8 {
        // SAFETY: `i * 8 + 8 <= k`.
        let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(i * 8)) };
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(x, abs_mask));
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` is 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let mut max = lanes.iter().fold(0.0f32, |m, &x| m.max(x));
    for &x in &row[k / 8 * 8..] {
        max = max.max(x.abs());
    }
    if max == 0.0 || !max.is_finite() {
        dst.fill(0);
        return if max == 0.0 { 0.0 } else { f32::NAN };
    }
    let inv = limit / max;
    let vinv = _mm256_set1_ps(inv);
    for i in 0..chunks {
        // SAFETY: `i * 16 + 16 <= k` for both `row` and `dst`.
        unsafe {
            let lo = _mm256_cvtps_epi32(_mm256_mul_ps(
                _mm256_loadu_ps(row.as_ptr().add(i * 16)),
                vinv,
            ));
            let hi = _mm256_cvtps_epi32(_mm256_mul_ps(
                _mm256_loadu_ps(row.as_ptr().add(i * 16 + 8)),
                vinv,
            ));
            // `packs` interleaves the 128-bit halves; the permute puts them back in order.
            let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(lo, hi));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i * 16).cast(), packed);
        }
    }
    for i in chunks * 16..k {
        dst[i] = (row[i] * inv).round_ties_even() as i16;
    }
    max / limit
}

/// `c[0..R][0..16] += (a[0..R] · panel) * row scale * column scale`, the 32-bit sums held
/// in registers.
///
/// # Safety
/// AVX2 and FMA; `a` holds `R` rows of `2 * pairs` 16-bit values, `b` a panel of
/// `pairs * 32` bytes, `scale` 16 floats, `c` `R` rows of 16 floats at stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize>(
    pairs: usize,
    a: *const i16,
    b: *const i8,
    scale: *const f32,
    sa: &[f32],
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for q in 0..pairs {
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add((q + PREFETCH_PAIRS) * 32));
        // SAFETY (loads below): within the panel and the rows, as the caller promised.
        let (w0, w1) = unsafe {
            (
                _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(q * 32).cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(q * 32 + 16).cast())),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            let pair = unsafe { a.add(r * pairs * 2 + q * 2).cast::<i32>().read_unaligned() };
            let av = _mm256_set1_epi32(pair);
            row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(av, w0));
            row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(av, w1));
        }
    }
    // SAFETY: 16 column scales.
    let (s0, s1) = unsafe { (_mm256_loadu_ps(scale), _mm256_loadu_ps(scale.add(8))) };
    for (r, row) in acc.iter().enumerate() {
        let sr = _mm256_set1_ps(sa[r]);
        unsafe {
            let p = c.add(r * ldc);
            let v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(row[0]), s0);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(v0, sr, _mm256_loadu_ps(p)));
            let p = c.add(r * ldc + 8);
            let v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(row[1]), s1);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(v1, sr, _mm256_loadu_ps(p)));
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// Deterministic values in [-1, 1) with a few large ones, like BERT's outlier dimensions.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let x = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                if i % 97 == 5 {
                    x * 12.0
                } else {
                    x
                }
            })
            .collect()
    }

    /// The kernel computes exactly the product of the quantised operands (the integer sums
    /// are exact; only the final scaling rounds), for shapes with odd `k`, partial tiles and
    /// blocks of more than 64 rows; and that product is close to the float one.
    #[test]
    fn int8_product_matches_its_quantised_operands_and_the_float_one() {
        if !avx2() {
            eprintln!("skipped: no AVX2");
            return;
        }
        for &(m, k, n) in &[
            (1, 8, 16),
            (5, 7, 32),
            (17, 384, 96),
            (70, 33, 16),
            (16, 1536, 32),
        ] {
            let a = values(m * k, (m * 31 + k) as u64);
            let w = values(k * n, (k * 17 + n) as u64);
            let panels = Int8Panels::new(&w, k, n);
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
            let mut got = c0.clone();
            // SAFETY: AVX2 and FMA detected; `a` and `got` are m x k and m x n.
            unsafe { panels.matmul_acc(m, a.as_ptr(), k, got.as_mut_ptr(), n) };
            let pairs = k.div_ceil(2);
            let limit = (i32::MAX as usize / (127 * 2 * pairs)).min(32767) as f64;
            for r in 0..m {
                let row = &a[r * k..(r + 1) * k];
                let max = row.iter().fold(0.0f32, |x, v| x.max(v.abs())) as f64;
                let inv = (limit as f32 / max as f32) as f64;
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|kk| match panels.outlier(kk, j) {
                            // Outliers multiply the activation itself.
                            Some(o) => row[kk] as f64 * o as f64,
                            None => {
                                let aq = ((row[kk] as f64 * inv) as f32).round_ties_even() as f64;
                                aq * (max / limit) * panels.dequantized(kk, j) as f64
                            }
                        })
                        .sum::<f64>()
                        + c0[r * n + j] as f64;
                    let float: f64 = (0..k)
                        .map(|kk| row[kk] as f64 * w[kk * n + j] as f64)
                        .sum::<f64>()
                        + c0[r * n + j] as f64;
                    let g = got[r * n + j] as f64;
                    assert!(
                        (g - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                        "{m}x{k}x{n} [{r},{j}]: {g} vs quantised {exact}"
                    );
                    // Int8 weights: an error of about half a step of each weight's column,
                    // summed with random signs over k.
                    let step =
                        (0..k).map(|kk| w[kk * n + j].abs()).fold(0.0f32, f32::max) as f64 / 127.0;
                    let bound =
                        4.0 * step * (row.iter().map(|x| (x * x) as f64).sum::<f64>()).sqrt()
                            + 1e-4;
                    assert!(
                        (g - float).abs() < bound,
                        "{m}x{k}x{n} [{r},{j}]: {g} vs float {float} (bound {bound})"
                    );
                }
            }
        }
    }

    /// Rows of zeros give zeros; the largest value takes the limit; the packed order is
    /// what `dequantized` reads.
    #[test]
    fn quantisation_edges() {
        if !avx2() {
            return;
        }
        let mut dst = vec![7i16; 20];
        // SAFETY: AVX2 detected.
        assert_eq!(unsafe { quantize_row(&[0.0; 20], &mut dst, 32767.0) }, 0.0);
        assert!(dst.iter().all(|&x| x == 0));
        let row: Vec<f32> = (0..20).map(|i| i as f32 - 10.0).collect();
        let s = unsafe { quantize_row(&row, &mut dst, 32767.0) };
        assert_eq!(dst[0], -32767);
        assert_eq!(dst[10], 0);
        assert_eq!(dst[19], (9.0f32 * 32767.0 / 10.0).round() as i16);
        assert!((s - 10.0 / 32767.0).abs() < 1e-9);
        let w: Vec<f32> = (0..3 * 32).map(|i| i as f32).collect();
        let p = Int8Panels::new(&w, 3, 32);
        for kk in 0..3 {
            for j in 0..32 {
                let want = w[kk * 32 + j];
                let got = p.dequantized(kk, j);
                assert!((got - want).abs() <= p.scale[j] / 2.0 + 1e-5, "{kk},{j}");
            }
        }
    }
}
