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

use crate::kernels::gemm;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of `a` per block: one block of `a` (up to 64 x 1536 floats) stays in L2 while every
/// weight panel streams past it.
const MC: usize = 64;

/// How many `k` steps ahead of the micro-kernel the weight panel is prefetched.
const PREFETCH_K: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// `matrixmultiply` on the row-major `[k, n]` matrix.
    Generic,
    /// Panels of 32 columns, 8 x 32 micro-tiles.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// Panels of 16 columns, 6 x 16 micro-tiles.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = crate::kernels::isa_cap();
            if cap == crate::kernels::IsaCap::Generic {
                return Kernel::Generic;
            }
            if cap == crate::kernels::IsaCap::None && is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Generic
    }

    fn panel_width(self) -> usize {
        match self {
            Kernel::Generic => 1,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 32,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 16,
        }
    }
}

/// A `[k, n]` weight matrix laid out for [`PackedWeight::matmul_acc`].
pub(crate) struct PackedWeight {
    k: usize,
    n: usize,
    kernel: Kernel,
    /// Panels for the SIMD kernels, or the row-major matrix for `Kernel::Generic`.
    data: Vec<f32>,
}

impl PackedWeight {
    /// Packs a row-major `[k, n]` matrix (`x * w` maps `k` inputs to `n` outputs).
    pub(crate) fn new(w: Vec<f32>, k: usize, n: usize) -> PackedWeight {
        Self::with_kernel(w, k, n, Kernel::detect())
    }

    /// `kernel` must be supported by this CPU.
    fn with_kernel(w: Vec<f32>, k: usize, n: usize, mut kernel: Kernel) -> PackedWeight {
        assert_eq!(w.len(), k * n, "weight size");
        if (n / kernel.panel_width()) * kernel.panel_width() != n {
            kernel = Kernel::Generic;
        }
        let nr = kernel.panel_width();
        let data = if nr == 1 {
            w
        } else {
            let mut data = vec![0.0f32; k * n];
            for p in 0..n / nr {
                for kk in 0..k {
                    let dst = &mut data[(p * k + kk) * nr..(p * k + kk + 1) * nr];
                    dst.copy_from_slice(&w[kk * n + p * nr..kk * n + (p + 1) * nr]);
                }
            }
            data
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
        match self.kernel {
            Kernel::Generic => gemm(m, k, n, a, lda, &self.data, n, 1, 1.0, c, ldc),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel was chosen after detecting AVX-512F; the asserts above and
            // `data.len() == k * n` (panels cover n / 32 * 32 == n columns) bound every access.
            Kernel::Avx512 => unsafe {
                avx512::gemm(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    lda,
                    self.data.as_ptr(),
                    c.as_mut_ptr(),
                    ldc,
                )
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, after detecting AVX2 and FMA.
            Kernel::Avx2 => unsafe {
                avx2::gemm(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    lda,
                    self.data.as_ptr(),
                    c.as_mut_ptr(),
                    ldc,
                )
            },
        }
    }
}

/// Generates the blocked driver and the micro-kernel for one instruction set.
/// `$nv` vectors of `$lanes` floats make a panel; `$mr` rows make a micro-tile.
macro_rules! simd_gemm {
    ($module:ident, $feature:literal, $vec:ty, $lanes:literal, $nv:literal, $mr:literal,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use super::*;

            const NR: usize = $lanes * $nv;

            /// # Safety
            /// The CPU supports the feature; `a` holds `m` rows of `k` floats at stride `lda`,
            /// `b` holds `n / NR` packed panels of `k * NR` floats, `c` holds `m` rows of `n`
            /// floats at stride `ldc`, and `n` is a multiple of `NR`.
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const f32,
                lda: usize,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
            ) {
                let mut m0 = 0;
                while m0 < m {
                    let mc = MC.min(m - m0);
                    for p in 0..n / NR {
                        // SAFETY (all offsets below): within the bounds the caller promised.
                        let bp = unsafe { b.add(p * k * NR) };
                        // Rows split evenly over the fewest tiles: 17 rows run as 6+6+5, not
                        // 8+8+1, whose one-row tile would wait on FMA latency.
                        let tiles = mc.div_ceil($mr);
                        let mut r = m0;
                        for t in 0..tiles {
                            let rows = mc / tiles + usize::from(t < mc % tiles);
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
                            r += rows;
                        }
                    }
                    m0 += mc;
                }
            }

            /// `c[0..R][0..NR] += a[0..R][0..k] * panel`, accumulators held in registers.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn tile<const R: usize>(
                k: usize,
                a: *const f32,
                lda: usize,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
            ) {
                let mut acc: [[$vec; $nv]; R] = [[$zero(); $nv]; R];
                for kk in 0..k {
                    // The panel streams from L3 or memory on the first tile of a block;
                    // hardware prefetch alone leaves the FMAs waiting for it.
                    for line in 0..NR / 16 {
                        let ahead = b.wrapping_add((kk + PREFETCH_K) * NR + line * 16);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.cast::<i8>());
                    }
                    let mut bv: [$vec; $nv] = [$zero(); $nv];
                    for (j, v) in bv.iter_mut().enumerate() {
                        *v = unsafe { $load(b.add(kk * NR + j * $lanes)) };
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

simd_gemm!(
    avx512,
    "avx512f",
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
    avx2,
    "avx2,fma",
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
            }
            if is_x86_feature_detected!("avx512f") {
                kernels.push(Kernel::Avx512);
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
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] += (0..k).map(|p| a[i * k + p] * w[p * n + j]).sum::<f32>();
                }
            }
            let packed = PackedWeight::with_kernel(w, k, n, kernel);
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
}
