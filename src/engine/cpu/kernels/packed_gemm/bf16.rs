//! bf16 linear layers (`--precision bf16`) on AVX512_BF16: the weights were packed once at load as
//! bf16 pairs ([`WeightFormat::Bf16Pairs`](super::matrix::WeightFormat)); each call rounds its
//! activation rows to bf16 pairs the same way ([`pack_rows_bf16`], `vcvtne2ps2bf16`), and the
//! 14 × 32 microkernel multiplies them with `vdpbf16ps`, which adds the two products of a pair to an
//! FP32 accumulator: 64 multiply-adds an instruction, twice an FP32 FMA's, from half the bytes of
//! weights. The tile's epilogue (accumulate, bias, GELU) is the FP32 kernel's, on the FP32 tile.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::full_tile;
use super::matrix::bf16_bits;
#[cfg(target_arch = "x86_64")]
use super::micro::{by_rows, store_tile, Store};
#[cfg(target_arch = "x86_64")]
use crate::engine::cpu::kernels::simd::{Avx512Simd, SimdF32};

/// `out[r, i] = bf16(x[r, 2i]) | bf16(x[r, 2i + 1]) << 16` for rows `0..m` (`⌈k/2⌉` slots a row,
/// `ldo` apart; a missing last column is zero), the A operand of the bf16 microkernel.
///
/// # Safety
/// `x` valid for reads of `m` rows of `k` floats `ldx` apart, `out` for writes of `m` rows of
/// `⌈k/2⌉` slots `ldo` apart, not overlapping `x`; the CPU must have AVX-512 F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn pack_rows_bf16(
    m: usize,
    x: *const f32,
    ldx: usize,
    k: usize,
    out: *mut u32,
    ldo: usize,
) {
    // SAFETY: extents as documented (caller); AVX-512 F and AVX512_BF16 (caller).
    unsafe {
        for r in 0..m {
            let src = x.add(r * ldx);
            let dst = out.add(r * ldo);
            let mut i = 0;
            while i + 32 <= k {
                // Elements 0..16 from the second operand: the bf16s come out in order, so slot j
                // holds columns 2j (low half) and 2j + 1.
                let v = _mm512_cvtne2ps_pbh(
                    _mm512_loadu_ps(src.add(i + 16)),
                    _mm512_loadu_ps(src.add(i)),
                );
                _mm512_storeu_si512(
                    dst.add(i / 2).cast(),
                    std::mem::transmute::<__m512bh, __m512i>(v),
                );
                i += 32;
            }
            while i < k {
                let lo = u32::from(bf16_bits(*src.add(i)));
                let hi = if i + 1 < k {
                    u32::from(bf16_bits(*src.add(i + 1)))
                } else {
                    0
                };
                *dst.add(i / 2) = lo | (hi << 16);
                i += 2;
            }
        }
    }
}

/// The bf16 microkernel, up to 14 rows × 32 columns: `c (+)= a · b` where `a` holds `rows` rows of
/// `kc` bf16 pairs (`lda` slots apart, as 32-bit slots behind a float pointer) and `b` a panel
/// slice of `kc` pair rows of 32 slots. Same contract as the FP32 microkernels otherwise.
///
/// # Safety
/// As the FP32 AVX-512 microkernel with `kc` pair rows; the CPU must have AVX-512 F and
/// AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn micro_bf16_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe {
        if rows == 14 {
            return micro_bf16_full(kc, a, lda, b, c, ldc, store);
        }
        by_rows!(
            micro_bf16,
            rows,
            13,
            (kc, a, lda, b, c, ldc, store),
            [1 2 3 4 5 6 7 8 9 10 11 12 13]
        )
    }
}

/// The full bf16 tile (14 × 32): the k loop of [`full_tile::dpbf16_tile`], then [`store_tile`].
///
/// # Safety
/// As [`micro_bf16_rows`] with 14 rows, `kc ≥ 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro_bf16_full(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller); the prefetch steps never exceed kc (`blocked`).
    unsafe {
        let acc = full_tile::dpbf16_tile(kc, a, lda, b, store.pf.ptr, store.pf.steps.min(kc));
        store_tile(Avx512Simd::here(), acc, c, ldc, store);
    }
}

/// `R × 32` bf16 tile: a step is one pair row, 2 panel loads, `R` broadcasts of a pair and `2R`
/// `vdpbf16ps`; each step prefetches its row of the next panel (two 64-byte lines).
///
/// # Safety
/// As [`micro_bf16_rows`] with `R` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro_bf16<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    const NR: usize = 32;
    let s = Avx512Simd::here();
    let mut acc = [[s.zero(); 2]; R];
    let a = a.cast::<i32>();
    // SAFETY: a holds R rows of kc slots lda apart, b kc·32 slots, pf.ptr pf.steps rows of 32
    // (caller); a prefetch never faults; AVX-512 F and AVX512_BF16 (caller).
    unsafe {
        let mut b = b;
        for kk in 0..kc {
            if kk < store.pf.steps {
                _mm_prefetch::<_MM_HINT_T1>(store.pf.ptr.add(kk * NR).cast());
                _mm_prefetch::<_MM_HINT_T1>(store.pf.ptr.add(kk * NR + 16).cast());
            }
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(b));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(b.add(16)));
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i * lda + kk)));
                acc[0] = _mm512_dpbf16_ps(acc[0], ai, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], ai, b1);
            }
            b = b.add(NR);
        }
        store_tile(s, acc, c, ldc, store);
    }
}
