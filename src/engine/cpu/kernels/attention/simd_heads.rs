//! The SIMD head kernels: two recipes, each written once over [`SimdF32`], and the entry point of
//! each instruction set (where the recipe is inlined with the instruction set enabled).
//!
//! * [`head_q_rows`] (AVX2): q gathered row-major; score tiles of 2 rows, each row's softmax on
//!   its own; `P·v` tiles of 2 rows × 4 vectors.
//! * [`head_q_transposed`] (AVX-512, twice the lanes): q gathered transposed like kᵀ, `LANES`
//!   tokens at a time with vector gathers; score tiles of 4 rows, their softmax interleaved; `P·v`
//!   tiles of 8 rows × 2 vectors.

use super::super::simd::{Avx2Simd, Avx512Simd, SimdF32};
use super::gather::{gather, gather_transposed};
use super::head::Head;
use super::pv::pv;
use super::scores::scores_softmax;

/// The AVX2+FMA head kernel: [`head_q_rows`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(super) fn head_avx2(head: &mut Head<'_>) {
    head_q_rows(Avx2Simd::here(), head);
}

/// The AVX-512 head kernel: [`head_q_transposed`] on 16 lanes (the fallback gather on 8).
#[target_feature(enable = "avx512f")]
pub(super) fn head_avx512(head: &mut Head<'_>) {
    let s = Avx512Simd::here();
    head_q_transposed(s, s.avx2(), head);
}

/// [`head_q_transposed`] on AVX2's 8 lanes: the AVX-512 recipe, for tests on CPUs without
/// AVX-512.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) fn head_transposed_avx2(head: &mut Head<'_>) {
    let s = Avx2Simd::here();
    head_q_transposed(s, s, head);
}

/// One task with q row-major (`n×hd`): [`gather`], [`scores_softmax`] in 2-row blocks (each row's
/// softmax alone), [`pv`] in 2-row × 4-vector tiles.
#[inline(always)]
fn head_q_rows<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    gather::<S, false>(s, head);
    // SAFETY: q, kt, v and s were split from the scratch at n×hd, hd×n, n×hd and n×n floats, bias
    // and mask sliced at n×n (`Head`); `out` has n rows of hd floats.
    unsafe {
        scores_softmax::<S, false, 2, false>(
            s, head.q, head.kt, head.s, head.bias, head.mask, n, hd,
        );
        pv::<S, 2, 4>(s, head.s, head.v, &head.out, n, hd);
    }
}

/// One task with q transposed (`qt`, `hd×n`: the score tiles broadcast q[i, d] from it):
/// [`gather_transposed`] when `n` is a multiple of `LANES` (else [`gather`] on the vectors of
/// `narrow`), [`scores_softmax`] in 4-row blocks with their softmax interleaved, [`pv`] in 8-row ×
/// 2-vector tiles.
#[inline(always)]
fn head_q_transposed<S: SimdF32, N: SimdF32>(s: S, narrow: N, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    if n.is_multiple_of(S::LANES) && head.qkv.len() <= i32::MAX as usize {
        // SAFETY: n % LANES == 0 and qkv.len() <= i32::MAX (checked); every row base + map[p] <
        // batch*tokens is a row of the [_, 3c] qkv (map is a permutation of 0..tokens, qkv.len()
        // asserted by `window_attention_on`).
        unsafe { gather_transposed(s, head) };
    } else {
        gather::<N, true>(narrow, head);
    }
    // SAFETY: as in `head_q_rows` (qt holds hd×n floats like kt).
    unsafe {
        scores_softmax::<S, true, 4, true>(s, head.q, head.kt, head.s, head.bias, head.mask, n, hd);
        pv::<S, 8, 2>(s, head.s, head.v, &head.out, n, hd);
    }
}
