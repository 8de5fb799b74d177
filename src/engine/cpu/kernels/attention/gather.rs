//! Step 1 of a head on SIMD vectors: gather q, k, v of the window's tokens from the qkv rows, with
//! the cosine normalisation (`q · logit_scale / |q|`, `k / |k|`; V2) or the scale alone
//! (`q · head_dim^-0.5`, k as it is; V1), and kᵀ transposed.

use super::super::simd::{SimdF32, MAX_LANES};
use super::head::{Head, NORM_EPS};

/// Sum of squares of `x`: whole vectors of `s`, [`SimdF32::reduce_add`], then the scalar tail.
#[inline(always)]
fn sum_sq<S: SimdF32>(s: S, x: &[f32]) -> f32 {
    let end = x.len() - x.len() % S::LANES;
    let mut acc = s.zero();
    let mut i = 0;
    while i < end {
        // SAFETY: i + LANES <= end <= x.len().
        let v = unsafe { s.load(x.as_ptr().add(i)) };
        acc = s.mul_add(v, v, acc);
        i += S::LANES;
    }
    let mut sum = s.reduce_add(acc);
    for &v in &x[end..] {
        sum += v * v;
    }
    sum
}

/// Gather `head.q` (scaled by `logit_scale / |q|`; `hd×n`, transposed, when `Q_T`, else `n×hd`),
/// `head.kt` (`k / |k|`) and `head.v` token by token: the norms on vectors of `s`, row-major q
/// scaled in vectors, the transposing stores one float at a time.
#[inline(always)]
pub(super) fn gather<S: SimdF32, const Q_T: bool>(s: S, head: &mut Head<'_>) {
    let (n, c, h, hd, scale) = (head.n(), head.c, head.h, head.hd, head.scale);
    let (q, kt, v) = (&mut *head.q, &mut *head.kt, &mut *head.v);
    let end = hd - hd % S::LANES;
    for (p, &tok) in head.map.iter().enumerate() {
        let row = &head.qkv[(head.base + tok as usize) * 3 * c..][..3 * c];
        let qr = &row[h * hd..(h + 1) * hd];
        let kr = &row[c + h * hd..c + (h + 1) * hd];
        let (qs, ks) = if head.cosine {
            (
                scale / sum_sq(s, qr).sqrt().max(NORM_EPS),
                1.0 / sum_sq(s, kr).sqrt().max(NORM_EPS),
            )
        } else {
            (scale, 1.0)
        };
        if Q_T {
            for (d, &x) in qr.iter().enumerate() {
                q[d * n + p] = x * qs;
            }
        } else {
            let qdst = &mut q[p * hd..(p + 1) * hd];
            let vq = s.splat(qs);
            let mut d = 0;
            while d < end {
                // SAFETY: d + LANES <= end <= hd = qr.len() = qdst.len().
                unsafe {
                    s.store(
                        qdst.as_mut_ptr().add(d),
                        s.mul(s.load(qr.as_ptr().add(d)), vq),
                    )
                };
                d += S::LANES;
            }
            for d in end..hd {
                qdst[d] = qr[d] * qs;
            }
        }
        for (d, &x) in kr.iter().enumerate() {
            kt[d * n + p] = x * ks;
        }
        v[p * hd..(p + 1) * hd].copy_from_slice(&row[2 * c + h * hd..2 * c + (h + 1) * hd]);
    }
}

/// [`gather`] with q transposed (`hd×n`, like kᵀ) for `n` a multiple of `LANES`: each row `d` of
/// qᵀ and kᵀ is gathered `LANES` tokens at a time ([`SimdF32::gather`]), and the norms are summed
/// over `d` for `LANES` tokens at once, with no horizontal sums and no scalar transposing stores.
///
/// # Safety
/// `n = head.n()` must be a multiple of `S::LANES` and `head.qkv.len()` at most `i32::MAX`; every
/// row `head.base + head.map[p]` must be a row of the `[_, 3c]` `head.qkv` (so that its columns
/// `h*hd..(h+1)*hd` of each third exist).
#[inline(always)]
pub(super) unsafe fn gather_transposed<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, c, h, hd, scale) = (head.n(), head.c, head.h, head.hd, head.scale);
    let (qkv, map, base, cosine) = (head.qkv, head.map, head.base, head.cosine);
    let (qt, kt, v) = (&mut *head.q, &mut *head.kt, &mut *head.v);
    debug_assert!(n.is_multiple_of(S::LANES) && qkv.len() <= i32::MAX as usize);
    for (p, &tok) in map.iter().enumerate() {
        let row = (base + tok as usize) * 3 * c;
        v[p * hd..(p + 1) * hd].copy_from_slice(&qkv[row + 2 * c + h * hd..][..hd]);
    }
    let eps = s.splat(NORM_EPS);
    for j in (0..n).step_by(S::LANES) {
        let mut rows = [0i32; MAX_LANES];
        for (l, r) in rows[..S::LANES].iter_mut().enumerate() {
            // Fits: below qkv.len() <= i32::MAX (caller).
            *r = ((base + map[j + l] as usize) * 3 * c + h * hd) as i32;
        }
        // SAFETY: rows has LANES i32; every gathered index row + d (+ c) for d < hd is an element
        // of qkv (caller); stores at d*n + j with j + LANES <= n stay inside the hd×n qt and kt
        // (split from the scratch at hd*n floats each).
        unsafe {
            let rows = s.load_i32(rows.as_ptr());
            for (xt, offset, num) in [(&mut *qt, 0, scale), (&mut *kt, c as i32, 1.0)] {
                let at = s.add_i32(rows, s.splat_i32(offset));
                let mut ss = s.zero();
                for d in 0..hd {
                    let idx = s.add_i32(at, s.splat_i32(d as i32));
                    let x = s.gather(qkv.as_ptr(), idx);
                    s.store(xt.as_mut_ptr().add(d * n + j), x);
                    ss = s.mul_add(x, x, ss);
                }
                // num / max(|x|, eps), LANES tokens at once (num alone without the cosine).
                let inv = if cosine {
                    s.div(s.splat(num), s.max(s.sqrt(ss), eps))
                } else {
                    s.splat(num)
                };
                for d in 0..hd {
                    let at = xt.as_mut_ptr().add(d * n + j);
                    s.store(at, s.mul(s.load(at), inv));
                }
            }
        }
    }
}
