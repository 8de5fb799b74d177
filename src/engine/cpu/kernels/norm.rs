//! LayerNorm over the last dimension (eps 1e-5, as `nn.LayerNorm` defaults), in place or fused with the
//! post-norm residual of SwinV2 (`x = x + norm(y)`). Two-pass mean/variance (biased, as PyTorch).

use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2Simd, Avx512Simd, SimdF32};

/// `nn.LayerNorm` default epsilon, used by every norm in SwinV2.
pub const LN_EPS: f32 = 1e-5;

/// Rows of `data` (length `weight.len()` each) normalized in place.
pub fn layer_norm_rows(data: &mut [f32], weight: &[f32], bias: &[f32]) {
    let isa = Isa::active();
    for row in data.chunks_exact_mut(weight.len()) {
        let (mean, rstd) = moments_with(isa, row);
        for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * rstd * w + b;
        }
    }
}

/// `residual[r] += layer_norm(y[r])` for every row `r` (post-norm residual of a SwinV2 block).
pub fn add_layer_norm_rows(residual: &mut [f32], y: &[f32], weight: &[f32], bias: &[f32]) {
    add_layer_norm_rows_with(Isa::active(), residual, y, weight, bias)
}

/// [`add_layer_norm_rows`] on the kernels of `isa` (scalar where the CPU lacks it).
pub fn add_layer_norm_rows_with(
    isa: Isa,
    residual: &mut [f32],
    y: &[f32],
    weight: &[f32],
    bias: &[f32],
) {
    let c = weight.len();
    assert!(bias.len() >= c, "LayerNorm bias shorter than its weight");
    let isa = if isa.supported() { isa } else { Isa::Scalar };
    for (res, row) in residual.chunks_exact_mut(c).zip(y.chunks_exact(c)) {
        let (mean, rstd) = moments_with(isa, row);
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => {
                // SAFETY: the CPU has AVX-512 F (checked above); `res`, `row` (chunks of c) and
                // `weight` have length c, `bias` at least c (asserted above).
                unsafe { add_normed_avx512(res, row, weight, bias, mean, rstd) };
                continue;
            }
            Isa::Avx2 => {
                // SAFETY: the CPU has AVX2 and FMA (checked above); lengths as above.
                unsafe { add_normed_avx2(res, row, weight, bias, mean, rstd) };
                continue;
            }
            Isa::Scalar => {}
        }
        for (((r, &v), &w), &b) in res.iter_mut().zip(row).zip(weight).zip(bias) {
            *r += (v - mean) * rstd * w + b;
        }
    }
}

/// Mean and `1/sqrt(var + eps)` of one row.
#[inline]
pub fn moments(row: &[f32]) -> (f32, f32) {
    moments_with(Isa::active(), row)
}

/// [`moments`] on the kernels of `isa` (scalar where the CPU lacks it).
pub fn moments_with(isa: Isa, row: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if isa.supported() {
        match isa {
            // SAFETY: the CPU has AVX-512 F (checked above).
            Isa::Avx512 => return unsafe { moments_avx512(row) },
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            Isa::Avx2 => return unsafe { moments_avx2(row) },
            Isa::Scalar => {}
        }
    }
    moments_scalar(row)
}

/// Scalar version of [`moments`].
pub fn moments_scalar(row: &[f32]) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + LN_EPS).sqrt())
}

/// AVX-512 [`moments`]: the tail through masked loads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn moments_avx512(row: &[f32]) -> (f32, f32) {
    moments_simd::<_, true>(Avx512Simd::here(), row)
}

/// AVX2+FMA [`moments`]: the tail in scalar code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn moments_avx2(row: &[f32]) -> (f32, f32) {
    moments_simd::<_, false>(Avx2Simd::here(), row)
}

/// AVX-512 [`add_normed_simd`]: the tail through masked loads and stores.
///
/// # Safety
/// The CPU must support AVX-512 F, and `res`, `y` and `b` must each hold at least `w.len()` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_normed_avx512(
    res: &mut [f32],
    y: &[f32],
    w: &[f32],
    b: &[f32],
    mean: f32,
    rstd: f32,
) {
    // SAFETY: the lengths come from the caller.
    unsafe { add_normed_simd::<_, true>(Avx512Simd::here(), res, y, w, b, mean, rstd) }
}

/// AVX2+FMA [`add_normed_simd`]: the tail in scalar code.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `res`, `y` and `b` must each hold at least `w.len()`
/// values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_normed_avx2(res: &mut [f32], y: &[f32], w: &[f32], b: &[f32], mean: f32, rstd: f32) {
    // SAFETY: the lengths come from the caller.
    unsafe { add_normed_simd::<_, false>(Avx2Simd::here(), res, y, w, b, mean, rstd) }
}

/// [`moments`] on the vectors of `s`: whole vectors, then the lanes past the last one through a
/// masked load (`MASKED_TAIL`) or in scalar code after the horizontal sum.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn moments_simd<S: SimdF32, const MASKED_TAIL: bool>(s: S, row: &[f32]) -> (f32, f32) {
    let n = row.len();
    let end = n - n % S::LANES;
    let p = row.as_ptr();
    let mut acc = s.zero();
    let mut i = 0;
    while i < end {
        // SAFETY: i + LANES <= end <= n = row.len().
        acc = s.add(acc, unsafe { s.load(p.add(i)) });
        i += S::LANES;
    }
    let mut sum;
    if MASKED_TAIL {
        if end < n {
            // SAFETY: the mask enables only lanes end..n of the row.
            acc = s.add(acc, unsafe {
                s.load_masked(s.first_lanes(n - end), p.add(end))
            });
        }
        sum = s.reduce_add_pairwise(acc);
    } else {
        sum = s.reduce_add_pairwise(acc);
        for &v in &row[end..] {
            sum += v;
        }
    }
    let mean = sum / n as f32;
    let m = s.splat(mean);
    let mut acc = s.zero();
    let mut i = 0;
    while i < end {
        // SAFETY: as above.
        let d = s.sub(unsafe { s.load(p.add(i)) }, m);
        acc = s.mul_add(d, d, acc);
        i += S::LANES;
    }
    let mut sq;
    if MASKED_TAIL {
        if end < n {
            let k = s.first_lanes(n - end);
            // SAFETY: as above; masked-off lanes are zero after the subtraction too.
            let d = s.sub_masked(k, unsafe { s.load_masked(k, p.add(end)) }, m);
            acc = s.mul_add(d, d, acc);
        }
        sq = s.reduce_add_pairwise(acc);
    } else {
        sq = s.reduce_add_pairwise(acc);
        for &v in &row[end..] {
            sq += (v - mean) * (v - mean);
        }
    }
    (mean, 1.0 / (sq / n as f32 + LN_EPS).sqrt())
}

/// `res[j] += (y[j] - mean) · rstd · w[j] + b[j]` for `j < w.len()` on the vectors of `s`: whole
/// vectors, then the rest through masked loads and stores (`MASKED_TAIL`) or in scalar code.
///
/// # Safety
/// `res`, `y` and `b` must each hold at least `w.len()` values (the vector code reads and writes
/// them unchecked).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_normed_simd<S: SimdF32, const MASKED_TAIL: bool>(
    s: S,
    res: &mut [f32],
    y: &[f32],
    w: &[f32],
    b: &[f32],
    mean: f32,
    rstd: f32,
) {
    let n = w.len();
    let end = n - n % S::LANES;
    let m = s.splat(mean);
    let sc = s.splat(rstd);
    let normed = |yv, wv, bv| s.mul_add(s.mul(s.sub(yv, m), sc), wv, bv);
    let mut i = 0;
    while i < end {
        // SAFETY: i + LANES <= end <= n = w.len(), and res, y and b hold at least n values (caller).
        unsafe {
            let v = normed(
                s.load(y.as_ptr().add(i)),
                s.load(w.as_ptr().add(i)),
                s.load(b.as_ptr().add(i)),
            );
            let r = res.as_mut_ptr().add(i);
            s.store(r, s.add(s.load(r), v));
        }
        i += S::LANES;
    }
    if end == n {
        return;
    }
    if MASKED_TAIL {
        let k = s.first_lanes(n - end);
        // SAFETY: the mask enables only lanes end..n; res, y and b hold at least n values (caller).
        unsafe {
            let v = normed(
                s.load_masked(k, y.as_ptr().add(end)),
                s.load_masked(k, w.as_ptr().add(end)),
                s.load_masked(k, b.as_ptr().add(end)),
            );
            let r = res.as_mut_ptr().add(end);
            s.store_masked(r, k, s.add(s.load_masked(k, r), v));
        }
    } else {
        for j in end..n {
            res[j] += (y[j] - mean) * rstd * w[j] + b[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_residual_norm_matches_plain_formula_on_every_isa() {
        for isa in Isa::available() {
            for c in [45, 96, 7] {
                check_fused_residual_norm(isa, c);
            }
        }
    }

    fn check_fused_residual_norm(isa: Isa, c: usize) {
        let rows = 7;
        let y: Vec<f32> = (0..rows * c)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
            .collect();
        let w: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * -0.02).collect();
        let x0: Vec<f32> = (0..rows * c).map(|i| i as f32 * 0.001).collect();
        let mut x = x0.clone();
        add_layer_norm_rows_with(isa, &mut x, &y, &w, &b);
        for r in 0..rows {
            let row = &y[r * c..(r + 1) * c];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            for j in 0..c {
                let want = x0[r * c + j] as f64
                    + (row[j] as f64 - mean) / (var + 1e-5).sqrt() * w[j] as f64
                    + b[j] as f64;
                assert!(
                    (x[r * c + j] as f64 - want).abs() < 1e-5,
                    "{isa} c={c} row {r} col {j}"
                );
            }
        }
    }

    /// The AVX-512 recipe (masked tails) on AVX2 registers against the scalar formula: the logic
    /// of the AVX-512 path, checked on CPUs with AVX2 only. Nothing past the row is written.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn masked_tails_match_scalar_on_avx2_lanes() {
        let Some(s) = Avx2Simd::new() else { return };
        for c in [1, 7, 8, 45, 96] {
            let y: Vec<f32> = (0..c)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
                .collect();
            let w: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.01).collect();
            let b: Vec<f32> = (0..c).map(|i| i as f32 * -0.02).collect();
            let (mean, rstd) = moments_simd::<_, true>(s, &y);
            let (want_mean, want_rstd) = moments_scalar(&y);
            assert!(
                (mean - want_mean).abs() <= 1e-5 * (1.0 + want_mean.abs()),
                "c={c}"
            );
            assert!((rstd - want_rstd).abs() <= 1e-5 * want_rstd, "c={c}");
            let mut res: Vec<f32> = (0..c + 3).map(|i| i as f32 * 0.001).collect();
            let res0 = res.clone();
            // SAFETY: res (c + 3), y and b (c) hold at least w.len() = c values.
            unsafe { add_normed_simd::<_, true>(s, &mut res, &y, &w, &b, mean, rstd) };
            for j in 0..c {
                let want = res0[j] + (y[j] - mean) * rstd * w[j] + b[j];
                assert!(
                    (res[j] - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "c={c} col {j}"
                );
            }
            assert_eq!(res[c..], res0[c..], "c={c}: past the row");
        }
    }
}
