//! Weight matrices packed at load time for the dense layers, and the matrix product
//! `c += a * w` over them.
//!
//! With few tokens (a single query is ~16) the dense layers are matrix products with a short
//! `a` and a large weight `w`. A general-purpose GEMM such as `matrixmultiply` repacks `w` on
//! every call, which costs more than the arithmetic. Here `w` is packed once into column
//! panels of `NR` floats (`panel[k][0..NR]` contiguous), so the product streams each weight
//! exactly once per block of rows. Hand-written AVX-512 and AVX2+FMA micro-kernels are chosen
//! at run time; other CPUs (or shapes that do not fit the panel width) use `matrixmultiply`
//! on the plain transposed matrix.
//!
//! With so few rows the product is bound by reading the weights, not by arithmetic: the six
//! layers of MiniLM hold 42 MB of dense weights in f32, more than this machine's L3, so every
//! query streams them from memory. Where the CPU converts half floats in hardware (F16C, and
//! every AVX-512 CPU), the panels are kept as IEEE f16 (rounded to nearest, even) and widened
//! to f32 in registers: half the bytes to stream (21 MB, which fits in L3), the arithmetic
//! still f32. Then the FMA units are the bound; wherever the CPU has AVX2 and FMA the
//! default is int8 weights multiplied with integer instructions that do twice the work
//! per instruction ([`crate::int8`]). [`WeightFormat`] (or `DEJA_EMBED_WEIGHTS`) chooses;
//! f32 panels are the reference.

use crate::kernels::gemm;
#[cfg(target_arch = "x86_64")]
use crate::kernels::{row_blocks, row_tiles};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// How many `k` steps ahead of the micro-kernel the weight panel is prefetched.
const PREFETCH_K: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// `matrixmultiply` on the row-major `[k, n]` matrix.
    Generic,
    /// Panels of 32 columns, 8 x 32 micro-tiles.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// As `Avx512`, the panels in f16.
    #[cfg(target_arch = "x86_64")]
    Avx512F16,
    /// Panels of 16 columns, 6 x 16 micro-tiles.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// As `Avx2`, the panels in f16 (needs F16C).
    #[cfg(target_arch = "x86_64")]
    Avx2F16,
    /// Int8 panels of 16 columns, 16-bit activations, `vpmaddwd` ([`crate::int8`]).
    #[cfg(target_arch = "x86_64")]
    Avx2I8,
}

/// How a model's dense weights are kept in memory and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// `DEJA_EMBED_WEIGHTS` (`f32`, `f16` or `int8`) if it is set; else int8 (which needs
    /// AVX2 and FMA; f16, then f32, where the CPU lacks them): measured fastest on AVX2 CPUs
    /// and on this project's AVX-512 one, whose 512-bit units are no wider than two 256-bit
    /// ones, at the accuracy the reference tests check; the integer sums are exact, so every
    /// x86 CPU computes the same vectors.
    #[default]
    Auto,
    /// f32: the reference.
    F32,
    /// f16, widened to f32 in registers where the CPU converts in hardware (F16C,
    /// AVX-512); f32 elsewhere.
    F16,
    /// Int8 with a scale per output, multiplied with AVX2 integer arithmetic
    /// ([`crate::int8`]); f32 on CPUs without AVX2 and FMA.
    Int8,
}

impl WeightFormat {
    /// What `DEJA_EMBED_WEIGHTS` asks for, if anything.
    pub fn from_env() -> Option<WeightFormat> {
        static SETTING: std::sync::OnceLock<Option<WeightFormat>> = std::sync::OnceLock::new();
        *SETTING.get_or_init(|| match std::env::var("DEJA_EMBED_WEIGHTS").as_deref() {
            Ok("f32") => Some(WeightFormat::F32),
            Ok("f16") => Some(WeightFormat::F16),
            Ok("int8") => Some(WeightFormat::Int8),
            _ => None,
        })
    }
}

impl Kernel {
    /// The kernel for `weights` on this CPU.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn detect(weights: WeightFormat) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::IsaCap;
            let cap = crate::kernels::isa_cap();
            if cap == IsaCap::Generic {
                return Kernel::Generic;
            }
            let avx512 = cap == IsaCap::None && is_x86_feature_detected!("avx512f");
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let weights = match weights {
                WeightFormat::Auto => WeightFormat::from_env().unwrap_or(WeightFormat::Int8),
                w => w,
            };
            if weights == WeightFormat::Int8 && avx2 {
                return Kernel::Avx2I8;
            }
            let f16 = weights == WeightFormat::F16;
            if avx512 {
                return if f16 {
                    Kernel::Avx512F16
                } else {
                    Kernel::Avx512
                };
            }
            if avx2 {
                return if f16 && is_x86_feature_detected!("f16c") {
                    Kernel::Avx2F16
                } else {
                    Kernel::Avx2
                };
            }
        }
        Kernel::Generic
    }

    fn panel_width(self) -> usize {
        match self {
            Kernel::Generic => 1,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Avx512F16 => 32,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 | Kernel::Avx2F16 => 16,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2I8 => crate::int8::NR,
        }
    }

    fn f16(self) -> bool {
        match self {
            Kernel::Generic => false,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Avx2 | Kernel::Avx2I8 => false,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512F16 | Kernel::Avx2F16 => true,
        }
    }
}

/// The packed matrix: f32, f16 bit patterns, or int8 with column scales.
enum Panels {
    F32(Vec<f32>),
    F16(Vec<u16>),
    #[cfg(target_arch = "x86_64")]
    I8(crate::int8::Int8Panels),
}

/// A `[k, n]` weight matrix laid out for [`PackedWeight::matmul_acc`].
pub(crate) struct PackedWeight {
    k: usize,
    n: usize,
    kernel: Kernel,
    /// Panels for the SIMD kernels, or the row-major matrix for `Kernel::Generic`.
    data: Panels,
}

impl PackedWeight {
    /// Packs a row-major `[k, n]` matrix (`x * w` maps `k` inputs to `n` outputs), its
    /// weights kept as `weights` says.
    pub(crate) fn new(w: Vec<f32>, k: usize, n: usize, weights: WeightFormat) -> PackedWeight {
        Self::with_kernel(w, k, n, Kernel::detect(weights))
    }

    /// `kernel` must be supported by this CPU.
    fn with_kernel(w: Vec<f32>, k: usize, n: usize, mut kernel: Kernel) -> PackedWeight {
        assert_eq!(w.len(), k * n, "weight size");
        if (n / kernel.panel_width()) * kernel.panel_width() != n {
            kernel = Kernel::Generic;
        }
        let nr = kernel.panel_width();
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx2I8 {
            let data = Panels::I8(crate::int8::Int8Panels::new(&w, k, n));
            return PackedWeight { k, n, kernel, data };
        }
        let data = if nr == 1 {
            Panels::F32(w)
        } else {
            let mut data = vec![0.0f32; k * n];
            for p in 0..n / nr {
                for kk in 0..k {
                    let dst = &mut data[(p * k + kk) * nr..(p * k + kk + 1) * nr];
                    dst.copy_from_slice(&w[kk * n + p * nr..kk * n + (p + 1) * nr]);
                }
            }
            if kernel.f16() {
                Panels::F16(data.iter().map(|&x| f32_to_f16(x)).collect())
            } else {
                Panels::F32(data)
            }
        };
        PackedWeight { k, n, kernel, data }
    }

    /// Inputs per output.
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Outputs.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Bytes the packed weights take.
    pub(crate) fn bytes(&self) -> usize {
        match &self.data {
            Panels::F32(w) => w.len() * 4,
            Panels::F16(w) => w.len() * 2,
            #[cfg(target_arch = "x86_64")]
            Panels::I8(w) => w.bytes(),
        }
    }

    /// `c += a * w` for row-major `a` (`m x k`, row stride `lda`) and `c` (`m x n`, row
    /// stride `ldc`).
    pub(crate) fn matmul_acc(&self, m: usize, a: &[f32], lda: usize, c: &mut [f32], ldc: usize) {
        let (k, n) = (self.k, self.n);
        if m == 0 {
            return;
        }
        assert!(
            lda >= k && a.len() >= (m - 1) * lda + k,
            "matmul_acc: a too short"
        );
        assert!(
            ldc >= n && c.len() >= (m - 1) * ldc + n,
            "matmul_acc: c too short"
        );
        match (self.kernel, &self.data) {
            (Kernel::Generic, Panels::F32(w)) => gemm(m, k, n, a, lda, w, n, 1, 1.0, c, ldc),
            // SAFETY (every arm below): the kernel was chosen after detecting its features
            // (AVX-512F; AVX2 and FMA, also for int8; and F16C for the f16 AVX2 panels, which
            // every AVX-512 CPU has); the asserts above and `data.len() == k * n` (panels cover
            // n / NR * NR == n columns) bound every access.
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx512, Panels::F32(w)) => unsafe {
                avx512::gemm(m, k, n, a.as_ptr(), lda, w.as_ptr(), c.as_mut_ptr(), ldc)
            },
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx512F16, Panels::F16(w)) => unsafe {
                avx512_f16::gemm(m, k, n, a.as_ptr(), lda, w.as_ptr(), c.as_mut_ptr(), ldc)
            },
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx2, Panels::F32(w)) => unsafe {
                avx2::gemm(m, k, n, a.as_ptr(), lda, w.as_ptr(), c.as_mut_ptr(), ldc)
            },
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx2F16, Panels::F16(w)) => unsafe {
                avx2_f16::gemm(m, k, n, a.as_ptr(), lda, w.as_ptr(), c.as_mut_ptr(), ldc)
            },
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx2I8, Panels::I8(w)) => unsafe {
                w.matmul_acc(m, a.as_ptr(), lda, c.as_mut_ptr(), ldc)
            },
            _ => unreachable!("the panels are built for their kernel"),
        }
    }
}

/// Generates the blocked driver and the micro-kernel for one instruction set.
/// `$nv` vectors of `$lanes` floats make a panel; `$mr` rows make a micro-tile.
macro_rules! simd_gemm {
    ($module:ident, $feature:literal, $elem:ty, $loadw:path, $vec:ty, $lanes:literal, $nv:literal,
     $mr:literal, $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident,
     $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use super::*;

            const NR: usize = $lanes * $nv;

            /// # Safety
            /// The CPU supports the feature; `a` holds `m` rows of `k` floats at stride `lda`,
            /// `b` holds `n / NR` packed panels of `k * NR` weights, `c` holds `m` rows of `n`
            /// floats at stride `ldc`, and `n` is a multiple of `NR`.
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const f32,
                lda: usize,
                b: *const $elem,
                c: *mut f32,
                ldc: usize,
            ) {
                for (m0, mc) in row_blocks(m) {
                    for p in 0..n / NR {
                        // SAFETY (all offsets below): within the bounds the caller promised.
                        let bp = unsafe { b.add(p * k * NR) };
                        for (r, rows) in row_tiles(mc, $mr) {
                            let r = m0 + r;
                            let ap = unsafe { a.add(r * lda) };
                            let cp = unsafe { c.add(r * ldc + p * NR) };
                            unsafe {
                                match rows {
                                    1 => tile::<1>(k, ap, lda, bp, cp, ldc),
                                    2 => tile::<2>(k, ap, lda, bp, cp, ldc),
                                    3 => tile::<3>(k, ap, lda, bp, cp, ldc),
                                    4 => tile::<4>(k, ap, lda, bp, cp, ldc),
                                    5 => tile::<5>(k, ap, lda, bp, cp, ldc),
                                    6 => tile::<6>(k, ap, lda, bp, cp, ldc),
                                    7 => tile::<7>(k, ap, lda, bp, cp, ldc),
                                    _ => tile::<$mr>(k, ap, lda, bp, cp, ldc),
                                }
                            }
                        }
                    }
                }
            }

            /// `c[0..R][0..NR] += a[0..R][0..k] * panel`, accumulators held in registers.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn tile<const R: usize>(
                k: usize,
                a: *const f32,
                lda: usize,
                b: *const $elem,
                c: *mut f32,
                ldc: usize,
            ) {
                /// Cache lines one `k` step of the panel spans.
                const LINES: usize = (NR * std::mem::size_of::<$elem>()).div_ceil(64);
                let mut acc: [[$vec; $nv]; R] = [[$zero(); $nv]; R];
                for kk in 0..k {
                    // The panel streams from L3 or memory on the first tile of a block;
                    // hardware prefetch alone leaves the FMAs waiting for it.
                    for line in 0..LINES {
                        let ahead = b
                            .wrapping_add((kk + PREFETCH_K) * NR)
                            .cast::<i8>()
                            .wrapping_add(line * 64);
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                    }
                    let mut bv: [$vec; $nv] = [$zero(); $nv];
                    for (j, v) in bv.iter_mut().enumerate() {
                        *v = unsafe { $loadw(b.add(kk * NR + j * $lanes)) };
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = $set1(unsafe { *a.add(r * lda + kk) });
                        for (acc, bv) in row.iter_mut().zip(&bv) {
                            *acc = $fma(av, *bv, *acc);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        unsafe {
                            let p = c.add(r * ldc + j * $lanes);
                            $store(p, $add($load(p), *v));
                        }
                    }
                }
            }
        }
    };
}

/// Widening loads of `lanes` f16 weights (F16C, and AVX-512F's own conversion).
#[cfg(target_arch = "x86_64")]
mod widen {
    use super::*;

    /// # Safety
    /// AVX2, FMA and F16C; `p` points at 8 readable `u16`s.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(super) unsafe fn f16x8(p: *const u16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// # Safety
    /// AVX-512F; `p` points at 16 readable `u16`s.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn f16x16(p: *const u16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
}

/// The nearest f16 to `x` (ties to even), as its bit pattern; beyond f16's range, infinity.
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        // Infinity, or NaN (kept a NaN).
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    // The f16 exponent, unbiased by 127 and biased by 15.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal in f16 (or zero): the implicit bit joins the mantissa, shifted out.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut h = m >> shift;
        if rest > half || (rest == half && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let rest = man & 0x1fff;
    let mut h = ((e as u32) << 10) | (man >> 13);
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        // May carry into the exponent, up to infinity: both are the right rounding.
        h += 1;
    }
    sign | h as u16
}

simd_gemm!(
    avx512,
    "avx512f",
    f32,
    _mm512_loadu_ps,
    __m512,
    16,
    2,
    8,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);
simd_gemm!(
    avx512_f16,
    "avx512f",
    u16,
    widen::f16x16,
    __m512,
    16,
    2,
    8,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);
simd_gemm!(
    avx2_f16,
    "avx2,fma,f16c",
    u16,
    widen::f16x8,
    __m256,
    8,
    2,
    6,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);
simd_gemm!(
    avx2,
    "avx2,fma",
    f32,
    _mm256_loadu_ps,
    __m256,
    8,
    2,
    6,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);

#[cfg(test)]
mod tests {
    use super::*;

    fn supported_kernels() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut kernels = vec![Kernel::Generic];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                kernels.push(Kernel::Avx2);
                if is_x86_feature_detected!("f16c") {
                    kernels.push(Kernel::Avx2F16);
                }
                kernels.push(Kernel::Avx2I8);
            }
            if is_x86_feature_detected!("avx512f") {
                kernels.push(Kernel::Avx512);
                kernels.push(Kernel::Avx512F16);
            }
        }
        kernels
    }

    /// Every kernel this CPU supports agrees with a naive product, for shapes with partial
    /// row blocks and tiles.
    #[test]
    fn packed_product_matches_naive() {
        for kernel in supported_kernels() {
            check_kernel(kernel);
        }
    }

    fn check_kernel(kernel: Kernel) {
        for &(m, k, n) in &[
            (1, 8, 32),
            (5, 7, 64),
            (17, 384, 96),
            (70, 33, 32),
            (3, 5, 20),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) / 7.0)
                .collect();
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
            let mut want = c0.clone();
            let packed = PackedWeight::with_kernel(w.clone(), k, n, kernel);
            // An f16 or int8 kernel computes with the weights as stored.
            let stored: Vec<f32> = match &packed.data {
                Panels::F16(_) => w
                    .iter()
                    .map(|&x| crate::q4::f16_to_f32(f32_to_f16(x)))
                    .collect(),
                #[cfg(target_arch = "x86_64")]
                Panels::I8(p) => (0..k * n).map(|i| p.dequantized(i / n, i % n)).collect(),
                Panels::F32(_) => w.clone(),
            };
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] += (0..k)
                        .map(|p| a[i * k + p] * stored[p * n + j])
                        .sum::<f32>();
                }
            }
            let mut got = c0;
            packed.matmul_acc(m, &a, k, &mut got, n);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-3 * (1.0 + w.abs()),
                    "{m}x{k}x{n}: {g} vs {w}"
                );
            }
        }
    }

    /// Every finite f16 survives the trip through f32 and back; halfway cases round to
    /// even; out of range is infinity; and on random floats the conversion agrees with the
    /// CPU's own (F16C), when it has one.
    #[test]
    fn f16_rounding_is_ieee() {
        for h in 0..=u16::MAX {
            if h & 0x7c00 == 0x7c00 {
                continue;
            }
            assert_eq!(f32_to_f16(crate::q4::f16_to_f32(h)), h, "{h:#06x}");
        }
        // 1 + 2^-11 is halfway between 1 and the next f16: ties to even (down); 1 + 3 * 2^-11
        // is halfway above an odd one: up.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(-1e6), 0xfc00);
        assert_eq!(f32_to_f16(1e-9), 0);
        assert!(crate::q4::f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("f16c") {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..200_000 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let x = f32::from_bits((seed >> 32) as u32);
                if !x.is_finite() {
                    continue;
                }
                // SAFETY: F16C was detected.
                let hw = unsafe { hardware_f16(x) };
                assert_eq!(f32_to_f16(x), hw, "{x:e}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "f16c")]
    unsafe fn hardware_f16(x: f32) -> u16 {
        _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(x))) as u16
    }
}
