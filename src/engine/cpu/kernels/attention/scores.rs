//! Step 2 of a head on SIMD vectors: `S = softmax(bias (+ mask) + q·kᵀ)`, in register tiles of
//! `R` rows × `B` vectors, each block of rows' softmax right after its scores.

use super::super::simd::SimdF32;
use super::softmax::softmax_rows;

/// Scores of `R` consecutive rows starting at `i` over columns `j..j + B·LANES`:
/// `S = bias (+ mask) + q·kᵀ`, accumulated in `R·B` registers.
///
/// # Safety
/// `i + R <= n` and `j + B·LANES <= n`; `bias`, `s` (and `mask`) must hold at least `n*n` floats,
/// `q` at least `n*hd` and `kt` at least `hd*n` (all are read or written unchecked).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn score_tile<S: SimdF32, const R: usize, const B: usize>(
    s: S,
    q: &[f32],
    kt: &[f32],
    sc: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
    j: usize,
) {
    let l = S::LANES;
    debug_assert!(i + R <= n && j + l * B <= n);
    let mut acc = [[s.zero(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n, columns j..j+B·LANES <= n of the n×n bias, mask
    // and scores; rows d < hd of the hd×n kt; q[i+r, d] of the n×hd q (caller).
    unsafe {
        for r in 0..R {
            for b in 0..B {
                let off = (i + r) * n + j + l * b;
                acc[r][b] = s.load(bias.as_ptr().add(off));
                if let Some(m) = mask {
                    acc[r][b] = s.add(acc[r][b], s.load(m.as_ptr().add(off)));
                }
            }
        }
        for d in 0..hd {
            let mut kv = [s.zero(); B];
            for (b, k) in kv.iter_mut().enumerate() {
                *k = s.load(kt.as_ptr().add(d * n + j + l * b));
            }
            for r in 0..R {
                let qb = s.splat(*q.get_unchecked((i + r) * hd + d));
                for b in 0..B {
                    acc[r][b] = s.mul_add(qb, kv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            for b in 0..B {
                s.store(sc.as_mut_ptr().add((i + r) * n + j + l * b), acc[r][b]);
            }
        }
    }
}

/// Scores for rows `i..i+R` (all columns: tiles of 4 vectors, then of 1, then scalar), then the
/// softmax of each row: the `R` rows interleaved (`INTERLEAVE`) or one after another.
///
/// # Safety
/// `i + R <= n`; the slices are sized as [`score_tile`] requires.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn score_rows<S: SimdF32, const R: usize, const INTERLEAVE: bool>(
    s: S,
    q: &[f32],
    kt: &[f32],
    sc: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
) {
    let l = S::LANES;
    let mut j = 0;
    // SAFETY: i + R <= n and the slice sizes come from the caller; the loop bounds keep
    // j + 4·LANES <= n, resp. j + LANES <= n.
    unsafe {
        while j + 4 * l <= n {
            score_tile::<S, R, 4>(s, q, kt, sc, bias, mask, n, hd, i, j);
            j += 4 * l;
        }
        while j + l <= n {
            score_tile::<S, R, 1>(s, q, kt, sc, bias, mask, n, hd, i, j);
            j += l;
        }
    }
    for r in i..i + R {
        for jj in j..n {
            let mut x = bias[r * n + jj] + mask.map_or(0.0, |m| m[r * n + jj]);
            for d in 0..hd {
                x += q[r * hd + d] * kt[d * n + jj];
            }
            sc[r * n + jj] = x;
        }
    }
    let rows = &mut sc[i * n..(i + R) * n];
    if INTERLEAVE {
        softmax_rows::<S, R>(s, rows, n);
    } else {
        for row in rows.chunks_exact_mut(n) {
            softmax_rows::<S, 1>(s, row, n);
        }
    }
}

/// `S = softmax(bias (+ mask) + q·kᵀ)` over the rows of the `n×n` score matrix `sc`: blocks of `R`
/// rows (softmax interleaved over the block when `INTERLEAVE`), then the rows left one by one.
/// `q` is `n×hd`, `kt` `hd×n`.
///
/// # Safety
/// `bias`, `sc` (and `mask`) must hold at least `n*n` floats, `q` at least `n*hd` and `kt` at least
/// `hd*n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn scores_softmax<S: SimdF32, const R: usize, const INTERLEAVE: bool>(
    s: S,
    q: &[f32],
    kt: &[f32],
    sc: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
) {
    let mut i = 0;
    // SAFETY: the loop bounds keep i + R <= n, resp. i + 1 <= n; slice sizes from the caller.
    unsafe {
        while i + R <= n {
            score_rows::<S, R, INTERLEAVE>(s, q, kt, sc, bias, mask, n, hd, i);
            i += R;
        }
        while i < n {
            score_rows::<S, 1, INTERLEAVE>(s, q, kt, sc, bias, mask, n, hd, i);
            i += 1;
        }
    }
}
