//! The bf16 head kernel (`--precision bf16`, AVX512_BF16): the two attention products, `q·kᵀ` and
//! `P·v`, on `vdpbf16ps` (two bf16 products added to an FP32 accumulator: twice an FP32 FMA's work
//! an instruction), with their operands rounded to bf16 once per task (round to nearest even,
//! `vcvtne2ps2bf16`); the normalisation, bias, mask, softmax and the accumulation stay FP32.
//!
//! Operands, in 32-bit slots each holding a bf16 pair (low half the first), in the task's scratch:
//! * `qp` (`n × hd/2`, in `head.q`): row `i` holds `q[i, 2e], q[i, 2e + 1]` (q scaled as in FP32);
//! * `kp` (`hd/2 × n`, in `head.kt`): slot `(e, j)` holds `k[j, 2e], k[j, 2e + 1]` (k normalised),
//!   gathered from the k rows staged as pairs in the second half of `head.q`;
//! * `vp` (`n/2 × hd`, in `head.v`): slot `(f, d)` holds `v[2f, d], v[2f + 1, d]`;
//! * `pp` (`n × n/2`, in `head.pairs`): row `i` holds `P[i, 2f], P[i, 2f + 1]`.
//!
//! So a score tile broadcasts a q slot against `LANES` columns of `kp`, and a `P·v` tile a `pp`
//! slot against `LANES` columns of `vp`, as the bf16 GEMM microkernel does with its A and B.
//! Taken when `n` is a multiple of 16 and `hd` of 32 ([`takes`]; every Swin with 32-dimensional
//! heads and 8×8, 12×12 or 16×16 windows); other shapes run the FP32 kernel.

use std::arch::x86_64::*;

use super::super::packed_gemm::pack_rows_bf16;
use super::super::simd::{Avx512Simd, SimdF32};
use super::gather::{k_factor, token_qkv};
use super::head::Head;
use super::softmax::softmax_rows;

/// Lanes of a vector of FP32 accumulators (and of bf16 pairs).
const L: usize = 16;

/// Whether the bf16 kernel takes a task of `n` tokens and head dimension `hd`.
pub(super) fn takes(n: usize, hd: usize) -> bool {
    n > 0 && n.is_multiple_of(L) && hd > 0 && hd.is_multiple_of(2 * L)
}

/// `head` with both products in bf16 (see the module).
///
/// # Safety
/// The CPU must have AVX-512 F and AVX512_BF16, and [`takes`] must hold for `head.n()`, `head.hd`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn head_avx512_bf16(head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    debug_assert!(takes(n, hd));
    let s = Avx512Simd::here();
    // SAFETY: takes(n, hd) (caller); the scratch slices have the sizes `Head` documents (q, v n×hd,
    // kt hd×n, s n×n, pairs n×n/2 floats); AVX-512 F and AVX512_BF16 (caller).
    unsafe {
        gather_pairs(s, head);
        scores_softmax_pairs(s, head);
        pv_pairs(head);
    }
}

/// Round 32 floats at `x`, times `factor`, to 16 bf16 pairs (`x[2e]` low, `x[2e + 1]` high)
/// stored at `out`.
///
/// # Safety
/// `x` valid for 32 float reads, `out` for 16 slot writes; AVX-512 F and AVX512_BF16.
#[inline(always)]
unsafe fn store_pairs(x: *const f32, out: *mut u32, factor: __m512) {
    // SAFETY: as documented (caller).
    unsafe {
        let lo = _mm512_mul_ps(_mm512_loadu_ps(x), factor);
        let hi = _mm512_mul_ps(_mm512_loadu_ps(x.add(L)), factor);
        // Elements 0..16 from the second operand: the bf16s come out in order.
        let v = _mm512_cvtne2ps_pbh(hi, lo);
        _mm512_storeu_si512(out.cast(), std::mem::transmute::<__m512bh, __m512i>(v));
    }
}

/// Fill `qp`, `kp` and `vp` (see the module) from the window's qkv rows, read as whole vectors.
///
/// # Safety
/// As [`head_avx512_bf16`].
#[inline(always)]
unsafe fn gather_pairs(s: Avx512Simd, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    let half = hd / 2;
    let qp = head.q.as_mut_ptr().cast::<u32>();
    // The k rows as pairs, staged in the second half of head.q (n × hd/2 slots).
    let kr = qp.wrapping_add(n * half);
    let kp = head.kt.as_mut_ptr().cast::<u32>();
    let vp = head.v.as_mut_ptr().cast::<u32>();
    // v[2f, d..d+16] and v[2f+1, d..d+16] interleaved: lanes 0..8 of the pairs, then 8..16.
    // SAFETY: AVX-512 F (caller).
    let (first, second) = unsafe {
        (
            _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
            _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
        )
    };
    // SAFETY: q, k, v of a token are hd floats each (`token_qkv`); qp and kr stay within head.q
    // (2 × n·hd/2 slots), vp within head.v (n/2 · hd slots), kp within head.kt (hd/2 · n slots);
    // n even and hd a multiple of 32 (caller).
    unsafe {
        for f in 0..n / 2 {
            let mut v_rows = [std::ptr::null::<f32>(); 2];
            for (t, v_row) in v_rows.iter_mut().enumerate() {
                let p = 2 * f + t;
                let tok = token_qkv(s, head, p);
                let (qs, ks) = (s.splat(tok.q_factor), s.splat(k_factor(s, head, tok.k)));
                for d in (0..hd).step_by(2 * L) {
                    store_pairs(tok.q.as_ptr().add(d), qp.add(p * half + d / 2), qs);
                    store_pairs(tok.k.as_ptr().add(d), kr.add(p * half + d / 2), ks);
                }
                *v_row = tok.v.as_ptr();
            }
            for d in (0..hd).step_by(L) {
                let (a, b) = (s.load(v_rows[0].add(d)), s.load(v_rows[1].add(d)));
                let lo = _mm512_permutex2var_ps(a, first, b);
                let hi = _mm512_permutex2var_ps(a, second, b);
                let v = _mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512(
                    vp.add(f * hd + d).cast(),
                    std::mem::transmute::<__m512bh, __m512i>(v),
                );
            }
        }
        // kp[e, j..j+16] = kr[j..j+16, e]: gathers from the staged rows (in L1).
        let stride = _mm512_set1_epi32(half as i32);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for j in (0..n).step_by(L) {
            // Fits: (j + 15)·hd/2 + hd/2 <= n·hd/2 slots of a scratch far below i32::MAX.
            let rows =
                _mm512_mullo_epi32(_mm512_add_epi32(lanes, _mm512_set1_epi32(j as i32)), stride);
            for e in 0..half {
                let x = _mm512_i32gather_epi32::<4>(
                    _mm512_add_epi32(rows, _mm512_set1_epi32(e as i32)),
                    kr.cast::<i32>().cast_const(),
                );
                _mm512_storeu_si512(kp.add(e * n + j).cast(), x);
            }
        }
    }
}

/// The scores of rows `i..i+R` over columns `j..j + B·16`, `bias (+ mask) + q·kᵀ` in FP32
/// accumulators, stored to `head.s`.
///
/// # Safety
/// `i + R <= n`, `j + 16·B <= n`; the operands filled by [`gather_pairs`]; AVX-512 F and
/// AVX512_BF16.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn score_tile<const R: usize, const B: usize>(head: &mut Head<'_>, i: usize, j: usize) {
    let (n, half) = (head.n(), head.hd / 2);
    let qp = head.q.as_ptr().cast::<i32>();
    let kp = head.kt.as_ptr().cast::<i32>();
    let sc = head.s.as_mut_ptr();
    // SAFETY: AVX-512 F (caller).
    let mut acc = [[unsafe { _mm512_setzero_ps() }; B]; R];
    // SAFETY: rows i..i+R < n and columns j..j+16B <= n of the n×n bias, mask and scores; slots
    // (i+r)·hd/2 + e of qp and e·n + j.. of kp (caller).
    unsafe {
        for r in 0..R {
            for b in 0..B {
                let off = (i + r) * n + j + L * b;
                acc[r][b] = _mm512_loadu_ps(head.bias.as_ptr().add(off));
                if let Some(m) = head.mask {
                    acc[r][b] = _mm512_add_ps(acc[r][b], _mm512_loadu_ps(m.as_ptr().add(off)));
                }
            }
        }
        for e in 0..half {
            let mut kv = [_mm512_setzero_si512(); B];
            for (b, k) in kv.iter_mut().enumerate() {
                *k = _mm512_loadu_si512(kp.add(e * n + j + L * b).cast());
            }
            for r in 0..R {
                let q: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*qp.add((i + r) * half + e)));
                for b in 0..B {
                    acc[r][b] = _mm512_dpbf16_ps(
                        acc[r][b],
                        q,
                        std::mem::transmute::<__m512i, __m512bh>(kv[b]),
                    );
                }
            }
        }
        for r in 0..R {
            for b in 0..B {
                _mm512_storeu_ps(sc.add((i + r) * n + j + L * b), acc[r][b]);
            }
        }
    }
}

/// The scores of rows `i..i+R`, all columns (tiles of 4 vectors, then of 1), then their softmax
/// (interleaved) and `pp`'s rows `i..i+R`: P rounded to bf16 pairs ([`pack_rows_bf16`]).
///
/// # Safety
/// `i + R <= n`; as [`score_tile`].
#[inline(always)]
unsafe fn score_rows<const R: usize>(s: Avx512Simd, head: &mut Head<'_>, i: usize) {
    let n = head.n();
    let mut j = 0;
    // SAFETY: j + 64 <= n, resp. j + 16 <= n (n a multiple of 16); i + R <= n (caller); the pp
    // rows i..i+R (n/2 slots each) are within head.pairs (n·n/2 floats), a slice apart from
    // head.s's rows i..i+R (n floats each); AVX-512 F and AVX512_BF16 (caller).
    unsafe {
        while j + 4 * L <= n {
            score_tile::<R, 4>(head, i, j);
            j += 4 * L;
        }
        while j < n {
            score_tile::<R, 1>(head, i, j);
            j += L;
        }
        softmax_rows::<Avx512Simd, R>(s, &mut head.s[i * n..(i + R) * n], n);
        // P's rows as bf16 pairs, rounded as the bf16 GEMM rounds its activation rows.
        pack_rows_bf16(
            R,
            head.s.as_ptr().add(i * n),
            n,
            n,
            head.pairs.as_mut_ptr().cast::<u32>().add(i * n / 2),
            n / 2,
        );
    }
}

/// Scores, softmax and `pp` for every row: blocks of 4 rows, then the rows left one by one.
///
/// # Safety
/// As [`score_tile`] (operands filled).
#[inline(always)]
unsafe fn scores_softmax_pairs(s: Avx512Simd, head: &mut Head<'_>) {
    let n = head.n();
    let mut i = 0;
    // SAFETY: i + 4 <= n, resp. i + 1 <= n.
    unsafe {
        while i + 4 <= n {
            score_rows::<4>(s, head, i);
            i += 4;
        }
        while i < n {
            score_rows::<1>(s, head, i);
            i += 1;
        }
    }
}

/// `O[i, d..d + 16·B] = Σ_f pp[i, f] · vp[f, d..]` for rows `i..i+R`, stored at `out.row(i)`.
///
/// # Safety
/// `i + R <= n`, `d + 16·B <= hd`; `pp` and `vp` filled; AVX-512 F and AVX512_BF16.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn pv_tile<const R: usize, const B: usize>(head: &Head<'_>, i: usize, d: usize) {
    let (n, hd) = (head.n(), head.hd);
    let pp = head.pairs.as_ptr().cast::<i32>();
    let vp = head.v.as_ptr().cast::<i32>();
    // SAFETY: AVX-512 F (caller).
    let mut acc = [[unsafe { _mm512_setzero_ps() }; B]; R];
    // SAFETY: slots (i+r)·n/2 + f of pp and f·hd + d.. of vp (caller); out.row(r) is valid for hd
    // floats owned by this task.
    unsafe {
        for f in 0..n / 2 {
            let mut vv = [_mm512_setzero_si512(); B];
            for (b, x) in vv.iter_mut().enumerate() {
                *x = _mm512_loadu_si512(vp.add(f * hd + d + L * b).cast());
            }
            for r in 0..R {
                let p: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*pp.add((i + r) * n / 2 + f)));
                for b in 0..B {
                    acc[r][b] = _mm512_dpbf16_ps(
                        acc[r][b],
                        p,
                        std::mem::transmute::<__m512i, __m512bh>(vv[b]),
                    );
                }
            }
        }
        for r in 0..R {
            let o = head.out.row(i + r).add(d);
            for b in 0..B {
                _mm512_storeu_ps(o.add(L * b), acc[r][b]);
            }
        }
    }
}

/// `O = P·v` for rows `i..i+R`, all `hd` columns: tiles of 2 vectors, then of 1.
///
/// # Safety
/// `i + R <= n`; as [`pv_tile`] otherwise.
#[inline(always)]
unsafe fn pv_rows<const R: usize>(head: &Head<'_>, i: usize) {
    let hd = head.hd;
    let mut d = 0;
    // SAFETY: the loop bounds keep d + 16·B <= hd (hd a multiple of 16); i + R <= n (caller).
    unsafe {
        while d + 2 * L <= hd {
            pv_tile::<R, 2>(head, i, d);
            d += 2 * L;
        }
        while d < hd {
            pv_tile::<R, 1>(head, i, d);
            d += L;
        }
    }
}

/// `O = P·v` for every row: blocks of 8 rows, then the rows left one by one.
///
/// # Safety
/// As [`pv_tile`] (operands filled).
#[inline(always)]
unsafe fn pv_pairs(head: &Head<'_>) {
    let n = head.n();
    let mut i = 0;
    // SAFETY: the loop bounds keep i + 8 <= n, resp. i + 1 <= n.
    unsafe {
        while i + 8 <= n {
            pv_rows::<8>(head, i);
            i += 8;
        }
        while i < n {
            pv_rows::<1>(head, i);
            i += 1;
        }
    }
}
