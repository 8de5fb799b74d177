//! Element-wise math: exact-erf GELU (`nn.GELU()` default) and exp, scalar, AVX2+FMA and AVX-512
//! lanes (the GEMM's microkernels apply GELU as they store, the attention's softmax uses exp).
//!
//! `erf` is the rational minimax approximation used by Eigen/XLA (`x·P(x²)/Q(x²)` on [-4, 4], ±1
//! outside): max absolute error ≈ 4e-7 in f32 arithmetic, below PyTorch's own GELU error (≈ 1e-6).
//! `exp` (AVX2, AVX-512) is the Cephes `expf` scheme: range reduction by ln 2 and a degree-6
//! polynomial, ≈ 1 ulp.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

const ERF_ALPHA: [f32; 7] = [
    -1.609_603_3e-2,
    -2.954_6e-3,
    -7.349_906_3e-4,
    -5.692_506_4e-5,
    -2.101_024e-6,
    2.770_681_4e-8,
    -2.726_142_3e-10,
];
const ERF_BETA: [f32; 5] = [
    -1.426_473_9e-2,
    -7.373_329e-3,
    -1.682_827e-3,
    -2.133_740_6e-4,
    -1.456_607_2e-5,
];

/// `erf(x)` in f32 (rational approximation, |error| ≲ 4e-7).
#[inline]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ERF_ALPHA[6];
    for &a in ERF_ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    p *= x;
    let mut q = ERF_BETA[4];
    for &b in ERF_BETA[..4].iter().rev() {
        q = q * x2 + b;
    }
    p / q
}

/// Exact GELU: `x/2 · (1 + erf(x/√2))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Sixteen lanes of [`gelu`] (same coefficients as [`erf`], FMA evaluation).
///
/// # Safety
/// A safe `#[target_feature]` function: callers that enable AVX-512 F themselves call it without
/// `unsafe`; any other caller must make sure the CPU supports AVX-512 F (the only precondition).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn gelu_avx512(x: __m512) -> __m512 {
    let u = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let u = _mm512_min_ps(_mm512_max_ps(u, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
    let u2 = _mm512_mul_ps(u, u);
    let mut p = _mm512_set1_ps(ERF_ALPHA[6]);
    for &a in ERF_ALPHA[..6].iter().rev() {
        p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(a));
    }
    p = _mm512_mul_ps(p, u);
    let mut q = _mm512_set1_ps(ERF_BETA[4]);
    for &b in ERF_BETA[..4].iter().rev() {
        q = _mm512_fmadd_ps(q, u2, _mm512_set1_ps(b));
    }
    let e = _mm512_div_ps(p, q);
    let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
    _mm512_fmadd_ps(half_x, e, half_x)
}

/// Eight lanes of [`erf`] (same coefficients, FMA evaluation).
///
/// # Safety
/// A safe `#[target_feature]` function: callers that enable AVX2 and FMA themselves call it without
/// `unsafe`; any other caller must make sure the CPU supports AVX2 and FMA (the only precondition).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn erf_avx2(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
    let x2 = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(ERF_ALPHA[6]);
    for &a in ERF_ALPHA[..6].iter().rev() {
        p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(a));
    }
    p = _mm256_mul_ps(p, x);
    let mut q = _mm256_set1_ps(ERF_BETA[4]);
    for &b in ERF_BETA[..4].iter().rev() {
        q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(b));
    }
    _mm256_div_ps(p, q)
}

/// Eight lanes of [`gelu`].
///
/// # Safety
/// A safe `#[target_feature]` function: callers that enable AVX2 and FMA themselves call it without
/// `unsafe`; any other caller must make sure the CPU supports AVX2 and FMA (the only precondition).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn gelu_avx2(x: __m256) -> __m256 {
    let e = erf_avx2(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
    ));
    let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
    _mm256_fmadd_ps(half_x, e, half_x)
}

/// `exp`'s input clamp: below it `2^n` would underflow the exponent field, above it overflow.
const EXP_MIN_X: f32 = -87.336_54;
const EXP_MAX_X: f32 = 88.376_26;
/// ln 2 split in two (Cody–Waite) for the range reduction `r = x - n·ln 2`.
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// The polynomial for `(exp(r) - 1 - r) / r²`, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// Eight lanes of `exp(x)` (Cephes scheme; inputs below -87.3 give ≈ 1e-38 instead of smaller values,
/// which only ever meets softmax after the max is subtracted).
///
/// # Safety
/// A safe `#[target_feature]` function: callers that enable AVX2 and FMA themselves call it without
/// `unsafe`; any other caller must make sure the CPU supports AVX2 and FMA (the only precondition).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp_avx2(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN_X)),
        _mm256_set1_ps(EXP_MAX_X),
    );
    let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_LN2_HI), x);
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_LN2_LO), r);
    let mut y = _mm256_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(fx),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
}

/// Sixteen lanes of `exp(x)`: [`exp_avx2`]'s scheme, the same constants.
///
/// # Safety
/// A safe `#[target_feature]` function: callers that enable AVX-512 F themselves call it without
/// `unsafe`; any other caller must make sure the CPU supports AVX-512 F (the only precondition).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn exp_avx512(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN_X)),
        _mm512_set1_ps(EXP_MAX_X),
    );
    let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_LN2_HI), x);
    let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_LN2_LO), r);
    let mut y = _mm512_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    y = _mm512_fmadd_ps(y, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    let pow2 = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(fx),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(pow2))
}

#[cfg(test)]
mod tests {
    use super::super::isa::Isa;
    use super::*;

    /// erf in f64 by its Maclaurin series (exact enough on [-4, 4]: terms stay below 1e6, f64 keeps
    /// ≥ 1e-10), 1 beyond (erfc(4) = 1.5e-8, under half an f32 ulp of 1).
    fn erf_f64(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let mut sum = 0.0;
        let mut term = x; // x^(2n+1) (-1)^n / n!
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let err = (erf(x) as f64 - erf_f64(x as f64)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "erf max abs error {worst}");
        assert!((erf_f64(1.0) - 0.842_700_792_949_714_9).abs() < 1e-14);
    }

    /// GELU over `data` in place with `isa`'s lane function (the microkernels' epilogue), the tail
    /// short of a vector through the scalar [`gelu`].
    fn gelu_in_place(isa: Isa, data: &mut [f32]) {
        let lanes = match isa {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Scalar => 1,
        };
        let mut chunks = data.chunks_exact_mut(lanes);
        for chunk in &mut chunks {
            // SAFETY: the CPU has `isa` (the caller iterates over `Isa::available`); each chunk
            // holds exactly one vector of floats.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                match isa {
                    Isa::Avx512 => _mm512_storeu_ps(
                        chunk.as_mut_ptr(),
                        gelu_avx512(_mm512_loadu_ps(chunk.as_ptr())),
                    ),
                    Isa::Avx2 => _mm256_storeu_ps(
                        chunk.as_mut_ptr(),
                        gelu_avx2(_mm256_loadu_ps(chunk.as_ptr())),
                    ),
                    Isa::Scalar => chunk[0] = gelu(chunk[0]),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            chunk.iter_mut().for_each(|v| *v = gelu(*v));
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = gelu(*v));
    }

    #[test]
    fn every_isa_gelu_matches_exact_gelu() {
        // 8006 and 74 values (whole vectors and tails) spread over [-28.4, 28.4].
        for n in [4003usize, 37] {
            let bias: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.01).collect();
            let xs: Vec<f32> = (0..2 * n)
                .map(|i| (i as f32 - n as f32) * 0.0071 * 4003.0 / n as f32 + bias[i % n])
                .collect();
            for isa in Isa::available() {
                let mut a = xs.clone();
                gelu_in_place(isa, &mut a);
                for (&got, &x) in a.iter().zip(&xs) {
                    let v = x as f64;
                    let want = 0.5 * v * (1.0 + erf_f64(v / std::f64::consts::SQRT_2));
                    assert!(
                        (got as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                        "{isa}: gelu({v}) = {got}, want {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn avx2_exp_matches_exp() {
        if !Isa::Avx2.supported() {
            return;
        }
        // exp over [-80, 80] (softmax only meets x <= 0, but the kernel is general).
        let wide: Vec<f32> = (0..16_000).map(|i| (i as f32 - 8000.0) * 0.01).collect();
        for chunk in wide.chunks_exact(8) {
            let mut out = [0.0f32; 8];
            // SAFETY: AVX2 and FMA were detected at run time (above); `chunk` and `out` hold 8 floats.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), exp_avx2(_mm256_loadu_ps(chunk.as_ptr())))
            };
            for (o, &x) in out.iter().zip(chunk) {
                let want = (x as f64).exp();
                assert!(
                    ((*o as f64) - want).abs() <= 3e-7 * want,
                    "exp({x}) = {o}, want {want}"
                );
            }
        }
    }

    #[test]
    fn avx512_exp_matches_exp() {
        if !Isa::Avx512.supported() {
            return;
        }
        let wide: Vec<f32> = (0..16_000).map(|i| (i as f32 - 8000.0) * 0.01).collect();
        for chunk in wide.chunks_exact(16) {
            let mut out = [0.0f32; 16];
            // SAFETY: AVX-512 F was detected at run time (above); `chunk` and `out` hold 16 floats.
            unsafe {
                _mm512_storeu_ps(
                    out.as_mut_ptr(),
                    exp_avx512(_mm512_loadu_ps(chunk.as_ptr())),
                )
            };
            for (o, &x) in out.iter().zip(chunk) {
                let want = (x as f64).exp();
                assert!(
                    ((*o as f64) - want).abs() <= 3e-7 * want,
                    "exp({x}) = {o}, want {want}"
                );
            }
        }
    }
}
