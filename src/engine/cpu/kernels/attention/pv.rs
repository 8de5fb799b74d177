//! Step 3 of a head on SIMD vectors: `O = P·v` in register tiles of `R` rows × `B` vectors, stored
//! straight to the tokens' output rows.

use super::super::simd::SimdF32;
use super::head::HeadOutput;

/// `O[i, d..d+B·LANES] = Σ_j P[i, j] v[j, d..d+B·LANES]` for rows `i..i+R`, stored at `out.row(i)`.
///
/// # Safety
/// `i + R <= n` and `d + B·LANES <= hd`; `p` must hold at least `n*n` floats and `v` at least
/// `n*hd`; `out` has `n` rows of `hd` floats.
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
#[inline(always)]
unsafe fn pv_tile<S: SimdF32, const R: usize, const B: usize>(
    s: S,
    p: &[f32],
    v: &[f32],
    out: &HeadOutput<'_>,
    n: usize,
    hd: usize,
    i: usize,
    d: usize,
) {
    let l = S::LANES;
    let mut acc = [[s.zero(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n of the n×n P, rows j < n and columns
    // d..d+B·LANES <= hd of the n×hd v; out.row(r) is valid for hd floats owned by this task.
    unsafe {
        for j in 0..n {
            let mut vv = [s.zero(); B];
            for (b, x) in vv.iter_mut().enumerate() {
                *x = s.load(v.as_ptr().add(j * hd + d + l * b));
            }
            for r in 0..R {
                let pb = s.splat(*p.get_unchecked((i + r) * n + j));
                for b in 0..B {
                    acc[r][b] = s.mul_add(pb, vv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            let o = out.row(i + r).add(d);
            for b in 0..B {
                s.store(o.add(l * b), acc[r][b]);
            }
        }
    }
}

/// `O = P·v` for rows `i..i+R`, all `hd` columns: tiles of `B` vectors, then of 1, then scalar.
///
/// # Safety
/// As [`pv_tile`], with `i + R <= n` and no condition on the columns.
#[inline(always)]
unsafe fn pv_rows<S: SimdF32, const R: usize, const B: usize>(
    s: S,
    p: &[f32],
    v: &[f32],
    out: &HeadOutput<'_>,
    n: usize,
    hd: usize,
    i: usize,
) {
    let l = S::LANES;
    let mut d = 0;
    // SAFETY: the loop bounds keep d + B·LANES <= hd, resp. d + LANES <= hd, and the tail writes
    // columns dd < hd of out.row(r), valid for hd floats; the rest comes from the caller.
    unsafe {
        while d + B * l <= hd {
            pv_tile::<S, R, B>(s, p, v, out, n, hd, i, d);
            d += B * l;
        }
        while d + l <= hd {
            pv_tile::<S, R, 1>(s, p, v, out, n, hd, i, d);
            d += l;
        }
        for r in i..i + R {
            let o = out.row(r);
            for dd in d..hd {
                let mut x = 0.0;
                for j in 0..n {
                    x += p[r * n + j] * v[j * hd + dd];
                }
                *o.add(dd) = x;
            }
        }
    }
}

/// `O = P·v` for all `n` rows, row `r` stored at `out.row(r)`: blocks of `R` rows, then the rows
/// left one by one, each in tiles of `B` vectors.
///
/// # Safety
/// `p` must hold at least `n*n` floats and `v` at least `n*hd`; `out` has `n` rows of `hd` floats.
#[inline(always)]
pub(super) unsafe fn pv<S: SimdF32, const R: usize, const B: usize>(
    s: S,
    p: &[f32],
    v: &[f32],
    out: &HeadOutput<'_>,
    n: usize,
    hd: usize,
) {
    let mut i = 0;
    // SAFETY: the loop bounds keep i + R <= n, resp. i + 1 <= n; the rest comes from the caller.
    unsafe {
        while i + R <= n {
            pv_rows::<S, R, B>(s, p, v, out, n, hd, i);
            i += R;
        }
        while i < n {
            pv_rows::<S, 1, B>(s, p, v, out, n, hd, i);
            i += 1;
        }
    }
}
