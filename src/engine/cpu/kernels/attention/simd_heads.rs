//! The SIMD head kernels: two recipes, each written once over [`SimdF32`], and the entry point of
//! each instruction set (where the recipe is inlined with the instruction set enabled).
//!
//! * [`head_q_rows`] (AVX2): [`gather`] (kᵀ by scalar transposing stores); score tiles of 2 rows,
//!   each row's softmax on its own; `P·v` tiles of 2 rows × 4 vectors.
//! * [`head_staged`] (AVX-512, twice the lanes): [`gather_staged`] (kᵀ transposed from rows staged
//!   in L1, `LANES` tokens at a time) where it applies; score tiles of 4 rows, their softmax
//!   interleaved; `P·v` tiles of 8 rows × 2 vectors.

use super::super::simd::{Avx2Simd, Avx512Simd, SimdF32};
use super::gather::{gather, gather_staged, stages};
use super::head::Head;
use super::pv::pv;
use super::scores::scores_softmax;

/// The AVX2+FMA head kernel: [`head_q_rows`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(super) fn head_avx2(head: &mut Head<'_>) {
    head_q_rows(Avx2Simd::here(), head);
}

/// The AVX-512 head kernel: [`head_staged`] on 16 lanes.
#[target_feature(enable = "avx512f")]
pub(super) fn head_avx512(head: &mut Head<'_>) {
    head_staged(Avx512Simd::here(), head);
}

/// [`head_staged`] on AVX2's 8 lanes: the AVX-512 recipe, for tests on CPUs without AVX-512.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) fn head_staged_avx2(head: &mut Head<'_>) {
    head_staged(Avx2Simd::here(), head);
}

/// One task: [`gather`], [`scores_softmax`] in 2-row blocks (each row's softmax alone), [`pv`] in
/// 2-row × 4-vector tiles.
#[inline(always)]
fn head_q_rows<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    gather(s, head);
    // SAFETY: q, kt, v and s were split from the scratch at n×hd, hd×n, n×hd and n×n floats, bias
    // and mask sliced at n×n (`Head`); `out` has n rows of hd floats.
    unsafe {
        scores_softmax::<S, 2, false>(s, head.q, head.kt, head.s, head.bias, head.mask, n, hd);
        pv::<S, 2, 4>(s, head.s, head.v, &head.out, n, hd);
    }
}

/// One task: [`gather_staged`] where [`stages`] holds (else [`gather`]), [`scores_softmax`] in
/// 4-row blocks with their softmax interleaved, [`pv`] in 8-row × 2-vector tiles.
#[inline(always)]
fn head_staged<S: SimdF32>(s: S, head: &mut Head<'_>) {
    let (n, hd) = (head.n(), head.hd);
    if stages::<S>(head) {
        // SAFETY: `stages` holds (checked).
        unsafe { gather_staged(s, head) };
    } else {
        gather(s, head);
    }
    // SAFETY: as in `head_q_rows`.
    unsafe {
        scores_softmax::<S, 4, true>(s, head.q, head.kt, head.s, head.bias, head.mask, n, hd);
        pv::<S, 8, 2>(s, head.s, head.v, &head.out, n, hd);
    }
}
