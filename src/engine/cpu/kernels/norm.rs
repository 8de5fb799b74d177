//! LayerNorm over the last dimension (eps 1e-5, as `nn.LayerNorm` defaults), in place or fused with the
//! post-norm residual of SwinV2 (`x = x + norm(y)`). Two-pass mean/variance (biased, as PyTorch).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::isa::Isa;

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

/// Lanes `i..min(i + 16, n)` as an AVX-512 mask.
#[cfg(target_arch = "x86_64")]
#[inline]
fn tail_mask(n: usize, i: usize) -> __mmask16 {
    let lanes = (n - i).min(16);
    if lanes == 16 {
        0xffff
    } else {
        (1u16 << lanes) - 1
    }
}

/// AVX-512 version of [`moments`] (tails through masked loads).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn moments_avx512(row: &[f32]) -> (f32, f32) {
    let n = row.len();
    let p = row.as_ptr();
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        // SAFETY: the mask enables only lanes below n = row.len().
        acc = _mm512_add_ps(acc, unsafe {
            _mm512_maskz_loadu_ps(tail_mask(n, i), p.add(i))
        });
        i += 16;
    }
    let mean = _mm512_reduce_add_ps(acc) / n as f32;
    let m = _mm512_set1_ps(mean);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let k = tail_mask(n, i);
        // SAFETY: as above; masked-off lanes are zero after the subtraction too.
        let d = _mm512_maskz_sub_ps(k, unsafe { _mm512_maskz_loadu_ps(k, p.add(i)) }, m);
        acc = _mm512_fmadd_ps(d, d, acc);
        i += 16;
    }
    let sq = _mm512_reduce_add_ps(acc);
    (mean, 1.0 / (sq / n as f32 + LN_EPS).sqrt())
}

/// AVX-512 version of [`add_normed_avx2`].
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
    let n = w.len();
    let m = _mm512_set1_ps(mean);
    let s = _mm512_set1_ps(rstd);
    let mut i = 0;
    while i < n {
        let k = tail_mask(n, i);
        // SAFETY: the mask enables only lanes below n = w.len(); res, y and b hold at least n
        // values (caller).
        unsafe {
            let v = _mm512_mul_ps(
                _mm512_sub_ps(_mm512_maskz_loadu_ps(k, y.as_ptr().add(i)), m),
                s,
            );
            let v = _mm512_fmadd_ps(
                v,
                _mm512_maskz_loadu_ps(k, w.as_ptr().add(i)),
                _mm512_maskz_loadu_ps(k, b.as_ptr().add(i)),
            );
            let r = res.as_mut_ptr().add(i);
            _mm512_mask_storeu_ps(r, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, r), v));
        }
        i += 16;
    }
}

/// Scalar version of [`moments`].
pub fn moments_scalar(row: &[f32]) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + LN_EPS).sqrt())
}

/// Sum of the eight lanes of `v`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// AVX2+FMA version of [`moments`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn moments_avx2(row: &[f32]) -> (f32, f32) {
    let n = row.len();
    let end = n - n % 8;
    let p = row.as_ptr();
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < end {
        // SAFETY: i + 8 <= end <= n = row.len().
        acc = _mm256_add_ps(acc, unsafe { _mm256_loadu_ps(p.add(i)) });
        i += 8;
    }
    let mut sum = hsum(acc);
    for &v in &row[end..] {
        sum += v;
    }
    let mean = sum / n as f32;
    let m = _mm256_set1_ps(mean);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < end {
        // SAFETY: as above.
        let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(p.add(i)) }, m);
        acc = _mm256_fmadd_ps(d, d, acc);
        i += 8;
    }
    let mut sq = hsum(acc);
    for &v in &row[end..] {
        sq += (v - mean) * (v - mean);
    }
    (mean, 1.0 / (sq / n as f32 + LN_EPS).sqrt())
}

/// `res[j] += (y[j] - mean) · rstd · w[j] + b[j]` for `j < w.len()`.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `res`, `y` and `b` must each hold at least `w.len()`
/// values (the vector loop reads and writes them unchecked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_normed_avx2(res: &mut [f32], y: &[f32], w: &[f32], b: &[f32], mean: f32, rstd: f32) {
    let n = w.len();
    let end = n - n % 8;
    let m = _mm256_set1_ps(mean);
    let s = _mm256_set1_ps(rstd);
    let mut i = 0;
    while i < end {
        // SAFETY: i + 8 <= end <= n = w.len(), and res, y and b hold at least n values (caller).
        unsafe {
            let v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(y.as_ptr().add(i)), m), s);
            let v = _mm256_fmadd_ps(
                v,
                _mm256_loadu_ps(w.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
            );
            let r = res.as_mut_ptr().add(i);
            _mm256_storeu_ps(r, _mm256_add_ps(_mm256_loadu_ps(r), v));
        }
        i += 8;
    }
    for j in end..n {
        res[j] += (y[j] - mean) * rstd * w[j] + b[j];
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
}
