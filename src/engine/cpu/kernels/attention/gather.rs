//! Step 1 of a head on SIMD vectors: gather q, k, v of the window's tokens from the qkv rows, with
//! the cosine normalisation (`q · logit_scale / |q|`, `k / |k|`; V2) or the scale alone
//! (`q · head_dim^-0.5`, k as it is; V1), q row-major (`n×hd`) and kᵀ transposed (`hd×n`).
//!
//! Both variants read each token's q, k and v as whole contiguous vectors of its qkv row: the
//! window's rows are scattered (roll + partition) and, at the first stage, mostly not in cache, and
//! contiguous loads let their misses overlap. (Gathering kᵀ and qᵀ straight from the qkv rows with
//! vector gathers cost 13.6 µs per window-head at stage 0 against 10.3 µs for row loads;
//! `attention::tests::speed`, AMD EPYC Zen 4.)

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

/// `dst = src · factor`: whole vectors of `s`, then the scalar tail.
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
fn copy_scaled<S: SimdF32>(s: S, src: &[f32], dst: &mut [f32], factor: f32) {
    assert_eq!(src.len(), dst.len(), "copy of another length");
    let end = src.len() - src.len() % S::LANES;
    let f = s.splat(factor);
    let mut i = 0;
    while i < end {
        // SAFETY: i + LANES <= end <= src.len() = dst.len().
        unsafe {
            s.store(
                dst.as_mut_ptr().add(i),
                s.mul(s.load(src.as_ptr().add(i)), f),
            )
        };
        i += S::LANES;
    }
    for i in end..src.len() {
        dst[i] = src[i] * factor;
    }
}

/// `dst = src`: whole vectors of `s`, then the scalar tail (no call to `memcpy` for a few vectors).
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
fn copy<S: SimdF32>(s: S, src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "copy of another length");
    let end = src.len() - src.len() % S::LANES;
    let mut i = 0;
    while i < end {
        // SAFETY: i + LANES <= end <= src.len() = dst.len().
        unsafe { s.store(dst.as_mut_ptr().add(i), s.load(src.as_ptr().add(i))) };
        i += S::LANES;
    }
    dst[end..].copy_from_slice(&src[end..]);
}

/// Token `p`'s q, k and v in the qkv rows (`hd` floats each), and q's factor: `logit_scale / |q|`
/// (cosine) or the scale alone.
pub(super) struct TokenQkv<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub q_factor: f32,
}

/// [`TokenQkv`] of window position `p` (q's norm on vectors of `s`, with a horizontal sum).
#[inline(always)]
pub(super) fn token_qkv<'a, S: SimdF32>(s: S, head: &Head<'a>, p: usize) -> TokenQkv<'a> {
    let (c, h, hd) = (head.c, head.h, head.hd);
    let qkv: &'a [f32] = head.qkv;
    let row = &qkv[(head.base + head.map[p] as usize) * 3 * c..][..3 * c];
    let q = &row[h * hd..][..hd];
    TokenQkv {
        q,
        k: &row[c + h * hd..][..hd],
        v: &row[2 * c + h * hd..][..hd],
        q_factor: factor(s, head, q, head.scale),
    }
}

/// k's factor for a row `k`: `1 / |k|` (cosine) or 1.
#[inline(always)]
pub(super) fn k_factor<S: SimdF32>(s: S, head: &Head<'_>, k: &[f32]) -> f32 {
    factor(s, head, k, 1.0)
}

/// `num / max(|x|, eps)` (cosine; the norm on vectors of `s`, with a horizontal sum) or `num`.
#[inline(always)]
fn factor<S: SimdF32>(s: S, head: &Head<'_>, x: &[f32], num: f32) -> f32 {
    if head.cosine {
        num / sum_sq(s, x).sqrt().max(NORM_EPS)
    } else {
        num
    }
}

/// Gather `head.q` (`n×hd`, scaled by `logit_scale / |q|`), `head.kt` (`k / |k|`, `hd×n`) and
/// `head.v` token by token: q and v in vectors, the norms on vectors with a horizontal sum each,
/// kᵀ's transposing stores one float at a time. Any `n` and `hd`.
#[inline(always)]
pub(super) fn gather<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    for p in 0..n {
        let t = token_qkv(s, head, p);
        copy_scaled(s, t.q, &mut head.q[p * hd..(p + 1) * hd], t.q_factor);
        let ks = k_factor(s, head, t.k);
        for (d, &x) in t.k.iter().enumerate() {
            head.kt[d * n + p] = x * ks;
        }
        copy(s, t.v, &mut head.v[p * hd..(p + 1) * hd]);
    }
}

/// Whether [`gather_staged`] takes `head`: `n` a multiple of `LANES` and the `n×hd` k rows fitting in
/// the `n×n` score scratch (`hd <= n`).
pub(super) fn stages<S: SimdF32>(head: &Head<'_>) -> bool {
    let n = head.n();
    n.is_multiple_of(S::LANES) && head.hd <= n && n * head.hd <= i32::MAX as usize
}

/// [`gather`] with kᵀ made in two steps: the k rows are copied (whole vectors) into the score
/// scratch, which is not yet in use, then each row `d` of kᵀ is gathered from there `LANES` tokens at
/// a time ([`SimdF32::gather`], from L1) with the norms summed over `d` for `LANES` tokens at once:
/// no horizontal sums and no scalar transposing stores for k.
///
/// # Safety
/// [`stages`] must hold for `head` (with `S`).
#[inline(always)]
pub(super) unsafe fn gather_staged<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    debug_assert!(stages::<S>(head));
    for p in 0..n {
        let t = token_qkv(s, head, p);
        copy_scaled(s, t.q, &mut head.q[p * hd..(p + 1) * hd], t.q_factor);
        copy(s, t.k, &mut head.s[p * hd..(p + 1) * hd]);
        copy(s, t.v, &mut head.v[p * hd..(p + 1) * hd]);
    }
    let (rows, kt) = (&head.s[..n * hd], &mut *head.kt);
    let eps = s.splat(NORM_EPS);
    for j in (0..n).step_by(S::LANES) {
        let mut at = [0i32; MAX_LANES];
        for (l, r) in at[..S::LANES].iter_mut().enumerate() {
            // Fits: below n*hd <= i32::MAX (caller).
            *r = ((j + l) * hd) as i32;
        }
        // SAFETY: `at` has LANES i32; every gathered index (j + l)*hd + d < n*hd is an element of
        // `rows`; stores at d*n + j with j + LANES <= n (n a multiple of LANES: caller) stay inside
        // the hd×n kt.
        unsafe {
            let at = s.load_i32(at.as_ptr());
            let mut ss = s.zero();
            for d in 0..hd {
                let x = s.gather(rows.as_ptr().add(d), at);
                s.store(kt.as_mut_ptr().add(d * n + j), x);
                ss = s.mul_add(x, x, ss);
            }
            if head.cosine {
                // 1 / max(|k|, eps), LANES tokens at once.
                let inv = s.div(s.splat(1.0), s.max(s.sqrt(ss), eps));
                for d in 0..hd {
                    let at = kt.as_mut_ptr().add(d * n + j);
                    s.store(at, s.mul(s.load(at), inv));
                }
            }
        }
    }
}
