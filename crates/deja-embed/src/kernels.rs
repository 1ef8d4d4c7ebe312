//! Element-wise numeric kernels of the BERT forward pass (LayerNorm, erf-GELU, softmax,
//! pooling), the matrix product wrapper, and how the packed products cut rows into blocks
//! and tiles.
//!
//! The element-wise kernels are written as plain loops that LLVM vectorises; each is compiled
//! twice, once for the baseline target and once with AVX2+FMA enabled, and the AVX2 copy is
//! chosen at run time when the CPU has it. Nothing here allocates.

/// Rows of `a` per block of the packed products (`packed.rs`, `int8.rs`): one block of `a`
/// (up to 64 x 1536 values) stays in L2 while every weight panel streams past it.
#[cfg(target_arch = "x86_64")]
const MC: usize = 64;

/// The blocks `m` rows of `a` are cut into for the packed products, as `(first row, rows)`.
#[cfg(target_arch = "x86_64")]
pub(crate) fn row_blocks(m: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..m).step_by(MC).map(move |m0| (m0, MC.min(m - m0)))
}

/// A block of `rows` rows cut into micro-tiles of at most `mr` rows, as `(first row, rows)`,
/// the rows split evenly over the fewest tiles: 17 rows in tiles of up to 8 run as 6+6+5,
/// not 8+8+1, whose one-row tile would wait on the multiply units' latency.
#[cfg(target_arch = "x86_64")]
pub(crate) fn row_tiles(rows: usize, mr: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = rows.div_ceil(mr);
    (0..tiles).scan(0, move |first, t| {
        let n = rows / tiles + usize::from(t < rows % tiles);
        let at = *first;
        *first += n;
        Some((at, n))
    })
}

/// `c = a * b + beta * c` for row-major `a` (m x k, row stride `lda`), `b` given by strides,
/// and row-major `c` (m x n, row stride `ldc`).
///
/// All slices are checked to cover the accessed elements, so callers cannot make the
/// underlying pointer-based `sgemm` read or write out of bounds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || a.len() >= (m - 1) * lda + k, "gemm: a too short");
    assert!(
        k == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb,
        "gemm: b too short"
    );
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: c too short");
    // SAFETY: the asserts above prove every element sgemm touches (a[i*lda + p],
    // b[p*rsb + j*csb], c[i*ldc + j] for i < m, p < k, j < n) lies inside its slice, and `c`
    // is borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// Which compiled copy of the element-wise kernels to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Isa {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if isa_cap() != IsaCap::Generic
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
        Isa::Generic
    }
}

/// `DEJA_EMBED_ISA`: the most capable instructions the kernels may use, below what the
/// CPU has — `avx2` (no AVX-512 even where the CPU has it) or `generic` (no SIMD
/// kernels) — so one machine can measure what others will run. Unset or anything else:
/// the CPU's best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsaCap {
    None,
    Avx2,
    Generic,
}

pub(crate) fn isa_cap() -> IsaCap {
    static CAP: std::sync::OnceLock<IsaCap> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("DEJA_EMBED_ISA").as_deref() {
        Ok("avx2") => IsaCap::Avx2,
        Ok("generic") => IsaCap::Generic,
        _ => IsaCap::None,
    })
}

/// Defines `pub(crate) fn $name(isa, args..)` that runs `$body` compiled for the chosen ISA.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident : $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name(isa: Isa, $($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                imp($($arg),*)
            }
            match isa {
                Isa::Generic => imp($($arg),*),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::Avx2` is only constructed after detecting AVX2 and FMA.
                Isa::Avx2 => unsafe { avx2($($arg),*) },
            }
        }
    };
}

multiversion! {
    /// In-place LayerNorm of each `width`-long row of `x`.
    fn layer_norm(x: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
        let gamma = &gamma[..width];
        let beta = &beta[..width];
        for row in x.chunks_exact_mut(width) {
            let mean = sum(row) / width as f32;
            let mut var = 0.0f32;
            let mut acc = [0.0f32; 16];
            for chunk in row.chunks_exact(16) {
                for (a, v) in acc.iter_mut().zip(chunk) {
                    let d = v - mean;
                    *a += d * d;
                }
            }
            for v in row.chunks_exact(16).remainder() {
                let d = v - mean;
                var += d * d;
            }
            var += acc.iter().sum::<f32>();
            let inv = 1.0 / (var / width as f32 + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

multiversion! {
    /// In-place exact (erf-based) GELU: `x * (1 + erf(x / sqrt 2)) / 2`.
    fn gelu(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// In-place softmax of each `width`-long row of `x`.
    fn softmax_rows(x: &mut [f32], width: usize) {
        for row in x.chunks_exact_mut(width) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            for v in row.iter_mut() {
                *v = exp(*v - max);
            }
            let inv = 1.0 / sum(row);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

multiversion! {
    /// `out = mean of the width-long rows of x`.
    fn mean_rows(x: &[f32], width: usize, out: &mut [f32]) {
        let out = &mut out[..width];
        out.fill(0.0);
        let rows = x.len() / width;
        for row in x.chunks_exact(width) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        let inv = 1.0 / rows.max(1) as f32;
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

multiversion! {
    /// `x[r] = a[r] + bias` for each `width`-long row: starts a residual sum (`a` = the
    /// residual, `bias` = the dense layer's bias) that the matrix product then adds to.
    fn residual_rows(x: &mut [f32], a: &[f32], bias: &[f32], width: usize) {
        let bias = &bias[..width];
        for (xr, ar) in x.chunks_exact_mut(width).zip(a.chunks_exact(width)) {
            for ((x, a), c) in xr.iter_mut().zip(ar).zip(bias) {
                *x = a + c;
            }
        }
    }
}

multiversion! {
    /// Copies `bias` into every `width`-long row of `x`.
    fn fill_rows(x: &mut [f32], bias: &[f32], width: usize) {
        let bias = &bias[..width];
        for row in x.chunks_exact_mut(width) {
            row.copy_from_slice(bias);
        }
    }
}

/// Sum with 16 independent accumulators, so it vectorises without reassociation flags.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `e^x` for f32 with relative error below 2e-7, branch-free so loops over it vectorise.
/// Inputs below -87 give (nearly) 0, as softmax needs.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2.
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 split in a high part exact in f32 and a low correction (Cody-Waite).
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    // Minimax polynomial for e^r on [-ln2/2, ln2/2] (Cephes expf).
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n built in the exponent bits. Adding 2^23 puts the integer n + 127 (in 1..=254 after
    // the clamp) in the low mantissa bits, avoiding a float-to-int cast that does not
    // vectorise.
    let biased = (n + (127.0 + 8_388_608.0)).to_bits();
    let scale = f32::from_bits(biased << 23);
    er * scale
}

/// erf for f32, absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26), branch-free.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn rows_are_split_evenly_into_blocks_and_tiles() {
        let tiles = |rows, mr| row_tiles(rows, mr).collect::<Vec<_>>();
        assert_eq!(tiles(17, 8), [(0, 6), (6, 6), (12, 5)]);
        assert_eq!(tiles(16, 6), [(0, 6), (6, 5), (11, 5)]);
        assert_eq!(tiles(3, 6), [(0, 3)]);
        assert!(tiles(0, 6).is_empty());
        let blocks: Vec<_> = row_blocks(150).collect();
        assert_eq!(blocks, [(0, 64), (64, 64), (128, 22)]);
        assert!(row_blocks(0).next().is_none());
    }

    fn erf64(x: f64) -> f64 {
        // Maclaurin series: accurate to ~1e-15 for |x| <= 3, the range tested below.
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate() {
        for i in -8000..8000 {
            let x = i as f32 / 100.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn erf_is_accurate() {
        for i in -300..=300 {
            let x = i as f32 / 100.0;
            let want = erf64(x as f64);
            let got = erf(x) as f64;
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn generic_and_simd_kernels_agree() {
        let x: Vec<f32> = (0..384 * 3)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 13.0)
            .collect();
        let g: Vec<f32> = (0..384).map(|i| 1.0 + i as f32 / 1000.0).collect();
        let b: Vec<f32> = (0..384).map(|i| i as f32 / 500.0).collect();
        let mut a1 = x.clone();
        let mut a2 = x.clone();
        layer_norm(Isa::Generic, &mut a1, 384, &g, &b, 1e-12);
        layer_norm(Isa::detect(), &mut a2, 384, &g, &b, 1e-12);
        let mut g1 = x.clone();
        let mut g2 = x.clone();
        gelu(Isa::Generic, &mut g1);
        gelu(Isa::detect(), &mut g2);
        let mut s1 = x.clone();
        let mut s2 = x;
        softmax_rows(Isa::Generic, &mut s1, 48);
        softmax_rows(Isa::detect(), &mut s2, 48);
        for (p, q) in a1
            .iter()
            .zip(&a2)
            .chain(g1.iter().zip(&g2))
            .chain(s1.iter().zip(&s2))
        {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
        let row_sum: f32 = s1[..48].iter().sum();
        assert!((row_sum - 1.0).abs() < 1e-5);
    }
}
