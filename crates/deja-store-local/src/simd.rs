//! Dot-product kernels for int8 vectors, chosen once at runtime.
//!
//! The bodies are plain Rust written so LLVM vectorises them; on x86-64 the same body is
//! also compiled with AVX2 (+FMA) enabled and picked when the CPU has it, which roughly
//! doubles throughput over the SSE2 baseline the crate is built for.

/// `a · b` over int8 codes in the quantiser's range, -127 to 127 (`codec::quantize_into`;
/// never -128), accumulated exactly in i32 (|sum| ≤ 127² × dim, fine for any realistic
/// dimension). The portable kernel is exact for -128 too; the AVX2 one is not.
pub(crate) type DotI8 = fn(&[i8], &[i8]) -> i32;
/// `q · c` for an f32 query and int8 codes.
pub(crate) type DotF32I8 = fn(&[f32], &[i8]) -> f32;

#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub(crate) dot_i8: DotI8,
    pub(crate) dot_f32_i8: DotF32I8,
    name: &'static str,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Kernels {
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Kernels {
                    dot_i8: x86::dot_i8_avx2,
                    dot_f32_i8: x86::dot_f32_i8_avx2,
                    name: "avx2",
                };
            }
        }
        Self::portable()
    }

    pub(crate) fn portable() -> Self {
        Kernels {
            dot_i8: dot_i8_portable,
            dot_f32_i8: dot_f32_i8_portable,
            name: "portable",
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

#[inline(always)]
fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Products of two int8 fit in i16 and pairs of them in i32: the shape of `pmaddwd`.
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..16 {
            let p0 = i32::from(i16::from(x[2 * i]) * i16::from(y[2 * i]));
            let p1 = i32::from(i16::from(x[2 * i + 1]) * i16::from(y[2 * i + 1]));
            acc[i] += p0 + p1;
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

#[inline(always)]
fn dot_f32_i8_body(q: &[f32], c: &[i8]) -> f32 {
    let n = q.len().min(c.len());
    let (q, c) = (&q[..n], &c[..n]);
    let mut acc = [0f32; 16];
    let mut cq = q.chunks_exact(16);
    let mut cc = c.chunks_exact(16);
    for (x, y) in (&mut cq).zip(&mut cc) {
        for i in 0..16 {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in cq.remainder().iter().zip(cc.remainder()) {
        sum += x * f32::from(*y);
    }
    sum
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_body(a, b)
}

fn dot_f32_i8_portable(q: &[f32], c: &[i8]) -> f32 {
    dot_f32_i8_body(q, c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Thirty-two codes of each side per step, multiplied as bytes: `vpmaddubsw` multiplies
    /// unsigned bytes by signed ones, so `a`'s magnitudes (`vpabsb`) meet `b` carrying
    /// `a`'s sign (`vpsignb`); each pair of products fits in 16 bits without saturating
    /// (2 × 127² = 32,258 < 32,767: the codes never hold -128, see [`super::DotI8`]), and
    /// `vpmaddwd` by ones adds the pairs into eight 32-bit sums; two chains in flight. Five
    /// operations per 32 codes where widening both sides to 16 bits took eight.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_i8_avx2_inner(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let ones = _mm256_set1_epi16(1);
        let step = |x: __m256i, y: __m256i| {
            let products = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
            _mm256_madd_epi16(products, ones)
        };
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY (loads): `i + 64 <= n` (then `i + 32 <= n`) bytes of both slices.
        while i + 64 <= n {
            unsafe {
                let x0 = _mm256_loadu_si256(pa.add(i).cast());
                let y0 = _mm256_loadu_si256(pb.add(i).cast());
                let x1 = _mm256_loadu_si256(pa.add(i + 32).cast());
                let y1 = _mm256_loadu_si256(pb.add(i + 32).cast());
                acc0 = _mm256_add_epi32(acc0, step(x0, y0));
                acc1 = _mm256_add_epi32(acc1, step(x1, y1));
            }
            i += 64;
        }
        if i + 32 <= n {
            unsafe {
                let x0 = _mm256_loadu_si256(pa.add(i).cast());
                let y0 = _mm256_loadu_si256(pb.add(i).cast());
                acc0 = _mm256_add_epi32(acc0, step(x0, y0));
            }
            i += 32;
        }
        let acc = _mm256_add_epi32(acc0, acc1);
        let sum128 = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let sum64 = _mm_add_epi32(sum128, _mm_unpackhi_epi64(sum128, sum128));
        let sum32 = _mm_add_epi32(sum64, _mm_shuffle_epi32::<0b01>(sum64));
        let mut sum = _mm_cvtsi128_si32(sum32);
        for j in i..n {
            sum += i32::from(a[j]) * i32::from(b[j]);
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_f32_i8_avx2_inner(q: &[f32], c: &[i8]) -> f32 {
        super::dot_f32_i8_body(q, c)
    }

    pub(super) fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: `Kernels::detect` hands out this function only after checking that the
        // CPU supports AVX2 and FMA; the body itself is safe Rust.
        unsafe { dot_i8_avx2_inner(a, b) }
    }

    pub(super) fn dot_f32_i8_avx2(q: &[f32], c: &[i8]) -> f32 {
        // SAFETY: as above, selected only on CPUs with AVX2 and FMA.
        unsafe { dot_f32_i8_avx2_inner(q, c) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_naive() {
        let k = Kernels::detect();
        let p = Kernels::portable();
        for n in [0usize, 1, 7, 31, 32, 33, 63, 64, 65, 96, 384, 385, 1536] {
            // Codes in -127..=127, the quantiser's range.
            let a: Vec<i8> = (0..n)
                .map(|i| ((i * 73 + 11) % 255) as i32 - 127)
                .map(|c| c as i8)
                .collect();
            let b: Vec<i8> = (0..n)
                .map(|i| ((i * 31 + 5) % 253) as i32 - 126)
                .map(|c| c as i8)
                .collect();
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).sin()).collect();
            let want: i32 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum();
            assert_eq!((k.dot_i8)(&a, &b), want, "n {n}");
            assert_eq!((p.dot_i8)(&a, &b), want, "n {n}");
            let wantf: f32 = q.iter().zip(&a).map(|(x, y)| x * f32::from(*y)).sum();
            assert!(((k.dot_f32_i8)(&q, &a) - wantf).abs() < 1e-2 * (1.0 + wantf.abs()));
            assert!(((p.dot_f32_i8)(&q, &a) - wantf).abs() < 1e-2 * (1.0 + wantf.abs()));
        }
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let k = Kernels::detect();
        let a = vec![-127i8; 4096];
        assert_eq!((k.dot_i8)(&a, &a), 127 * 127 * 4096);
        let b = vec![127i8; 4096];
        assert_eq!((k.dot_i8)(&a, &b), -127 * 127 * 4096);
        // The portable kernel is exact for -128 too.
        let c = vec![-128i8; 4096];
        assert_eq!((Kernels::portable().dot_i8)(&c, &c), 128 * 128 * 4096);
    }

    /// Every pair of codes in the quantiser's range, in every lane, against the sum of
    /// products: no pair saturates, zeros and signs come out right.
    #[test]
    fn every_pair_of_codes_is_exact() {
        let k = Kernels::detect();
        let codes: Vec<i8> = (-127i8..=127).collect();
        for &x in &codes {
            // 64 lanes, so both chains and every position of a step see every pair.
            let a: Vec<i8> = (0..320).map(|i| if i % 3 == 0 { x } else { -x }).collect();
            for shift in [0usize, 1, 77] {
                let b: Vec<i8> = (0..320).map(|i| codes[(i + shift) % codes.len()]).collect();
                let want: i32 = a
                    .iter()
                    .zip(&b)
                    .map(|(p, q)| i32::from(*p) * i32::from(*q))
                    .sum();
                assert_eq!((k.dot_i8)(&a, &b), want, "x {x} shift {shift}");
            }
        }
    }
}
