//! Element-wise math: exact-erf GELU (`nn.GELU()` default) and exp, scalar and in the lanes of any
//! [`SimdF32`](super::simd::SimdF32) (the GEMM's microkernels apply GELU as they store, the
//! attention's softmax uses exp).
//!
//! `erf` is the rational minimax approximation used by Eigen/XLA (`x·P(x²)/Q(x²)` on [-4, 4], ±1
//! outside): max absolute error ≈ 4e-7 in f32 arithmetic, below PyTorch's own GELU error (≈ 1e-6).
//! `exp` (vector lanes) is the Cephes `expf` scheme: range reduction by ln 2 and a degree-6
//! polynomial, ≈ 1 ulp.

#[cfg(target_arch = "x86_64")]
use super::simd::SimdF32;

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

/// [`erf`] in every lane (same coefficients, FMA evaluation).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn erf_lanes<S: SimdF32>(s: S, x: S::Reg) -> S::Reg {
    let x = s.min(s.max(x, s.splat(-4.0)), s.splat(4.0));
    let x2 = s.mul(x, x);
    let mut p = s.splat(ERF_ALPHA[6]);
    for &a in ERF_ALPHA[..6].iter().rev() {
        p = s.mul_add(p, x2, s.splat(a));
    }
    p = s.mul(p, x);
    let mut q = s.splat(ERF_BETA[4]);
    for &b in ERF_BETA[..4].iter().rev() {
        q = s.mul_add(q, x2, s.splat(b));
    }
    s.div(p, q)
}

/// [`gelu`] in every lane (the GEMM microkernels' epilogue).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn gelu_lanes<S: SimdF32>(s: S, x: S::Reg) -> S::Reg {
    let e = erf_lanes(s, s.mul(x, s.splat(std::f32::consts::FRAC_1_SQRT_2)));
    let half_x = s.mul(x, s.splat(0.5));
    s.mul_add(half_x, e, half_x)
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

/// `exp(x)` in every lane (Cephes scheme; inputs below -87.3 give ≈ 1e-38 instead of smaller
/// values, which only ever meets softmax after the max is subtracted).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn exp_lanes<S: SimdF32>(s: S, x: S::Reg) -> S::Reg {
    let x = s.min(s.max(x, s.splat(EXP_MIN_X)), s.splat(EXP_MAX_X));
    let fx = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
    let r = s.neg_mul_add(fx, s.splat(EXP_LN2_HI), x);
    let r = s.neg_mul_add(fx, s.splat(EXP_LN2_LO), r);
    let mut y = s.splat(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        y = s.mul_add(y, r, s.splat(c));
    }
    let r2 = s.mul(r, r);
    y = s.mul_add(y, r2, s.add(r, s.splat(1.0)));
    s.mul(y, s.pow2(s.to_i32(fx)))
}

#[cfg(test)]
mod tests {
    use super::super::isa::Isa;
    #[cfg(target_arch = "x86_64")]
    use super::super::simd::{Avx2Simd, Avx512Simd, MAX_LANES};
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

    /// GELU over `data` in place through [`gelu_lanes`] on `s` (whole vectors), the tail short
    /// of a vector through the scalar [`gelu`].
    #[cfg(target_arch = "x86_64")]
    fn gelu_in_place_simd<S: SimdF32>(s: S, data: &mut [f32]) {
        let mut chunks = data.chunks_exact_mut(S::LANES);
        for chunk in &mut chunks {
            // SAFETY: each chunk holds exactly one vector of floats.
            unsafe { s.store(chunk.as_mut_ptr(), gelu_lanes(s, s.load(chunk.as_ptr()))) };
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = gelu(*v));
    }

    /// GELU over `data` in place with `isa`'s lane function (the microkernels' epilogue).
    fn gelu_in_place(isa: Isa, data: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => return gelu_in_place_simd(Avx512Simd::new().unwrap(), data),
            Isa::Avx2 => return gelu_in_place_simd(Avx2Simd::new().unwrap(), data),
            Isa::Scalar => {}
        }
        let _ = isa;
        data.iter_mut().for_each(|v| *v = gelu(*v));
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

    /// [`exp_lanes`] on `s` over [-80, 80] (softmax only meets x <= 0, but the kernel is general).
    #[cfg(target_arch = "x86_64")]
    fn check_exp<S: SimdF32>(s: S) {
        let wide: Vec<f32> = (0..16_000).map(|i| (i as f32 - 8000.0) * 0.01).collect();
        for chunk in wide.chunks_exact(S::LANES) {
            let mut out = [0.0f32; MAX_LANES];
            // SAFETY: `chunk` holds one vector of floats, `out` at least one.
            unsafe { s.store(out.as_mut_ptr(), exp_lanes(s, s.load(chunk.as_ptr()))) };
            for (o, &x) in out.iter().zip(chunk) {
                let want = (x as f64).exp();
                assert!(
                    ((*o as f64) - want).abs() <= 3e-7 * want,
                    "{}: exp({x}) = {o}, want {want}",
                    S::ISA
                );
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn every_isa_exp_matches_exp() {
        if let Some(s) = Avx2Simd::new() {
            check_exp(s);
        }
        if let Some(s) = Avx512Simd::new() {
            check_exp(s);
        }
    }
}
