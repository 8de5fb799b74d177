//! The microkernels: `c[rows, nr] (+)= a[rows, kc] · b[kc, nr]` with the tile in registers, the
//! bias and GELU applied before it is stored. The SIMD one is written once ([`micro_simd`]) and
//! compiled for AVX2 (6 × 16) and AVX-512 (14 × 32); a portable one (4 × 16) runs elsewhere.

use super::super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::super::math::gelu_lanes;
#[cfg(target_arch = "x86_64")]
use super::super::simd::{Avx2Simd, Avx512Simd, SimdF32};
#[cfg(target_arch = "x86_64")]
use super::full_tile;

/// A microkernel: `c[rows, nr] (+)= a[rows, kc] · b[kc, nr]`, `a` rows `lda` floats apart (read in
/// place: broadcasting from the activations' own rows costs nothing more than from a packed copy, and
/// a copy would cost as much as the product on the narrow layers), `b` a panel slice `[kc][nr]`, `c`
/// rows `ldc` apart; `rows` ≤ the kernel's tile height; `store` says what happens to the tile in
/// registers before it is written, and what to prefetch meanwhile.
pub(super) type Microkernel =
    unsafe fn(usize, usize, *const f32, usize, *const f32, *mut f32, usize, Store);

/// How a microkernel writes its tile.
#[derive(Clone, Copy)]
pub(super) struct Store {
    /// Add the tile to what `c` holds (a later block of `k`).
    pub accumulate: bool,
    /// `nr` floats added to every row (null: none), then GELU when `gelu`: the last block of `k`.
    pub bias: *const f32,
    pub gelu: bool,
    /// What to prefetch meanwhile.
    pub pf: Prefetch,
}

/// What a microkernel call prefetches into L2: `steps` rows of `nr` floats from `ptr` (null: none),
/// one row per step of `k`.
#[derive(Clone, Copy)]
pub(super) struct Prefetch {
    pub ptr: *const f32,
    pub steps: usize,
}

impl Prefetch {
    pub const NONE: Prefetch = Prefetch {
        ptr: std::ptr::null(),
        steps: 0,
    };
}

/// The FP32 microkernel of `isa` (which the CPU must support for it to be called).
pub(super) fn microkernel(isa: Isa) -> Microkernel {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 => micro_avx512_rows,
            Isa::Avx2 => micro_avx2_rows,
            Isa::Scalar => micro_scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, format);
        micro_scalar
    }
}

/// `row += bias`, then GELU when `gelu` (the edge columns the vector stores do not cover).
pub(super) fn finish_scalar(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
    if let Some(b) = bias {
        row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
    }
    if gelu {
        row.iter_mut()
            .for_each(|v| *v = super::super::math::gelu(*v));
    }
}

/// Portable microkernel, up to 4 rows × 16.
///
/// # Safety
/// `a` valid for `rows` rows `lda` apart of `kc` floats, `b` for `kc · 16`, `c` for `rows` rows
/// `ldc` apart of 16 floats; `rows` ≤ 4.
#[allow(clippy::too_many_arguments)]
unsafe fn micro_scalar(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    const NR: usize = 16;
    debug_assert!(rows <= 4);
    // SAFETY: extents as documented (caller).
    let b = unsafe { std::slice::from_raw_parts(b, kc * NR) };
    for i in 0..rows {
        // SAFETY: row i of a holds kc floats (caller).
        let ai = unsafe { std::slice::from_raw_parts(a.add(i * lda), kc) };
        let mut acc = [0.0f32; NR];
        for (&av, bk) in ai.iter().zip(b.chunks_exact(NR)) {
            for (s, &bj) in acc.iter_mut().zip(bk) {
                *s += av * bj;
            }
        }
        // SAFETY: row i of c holds NR floats (caller).
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        if store.accumulate {
            dst.iter_mut().zip(&acc).for_each(|(d, s)| *d += s);
        } else {
            dst.copy_from_slice(&acc);
        }
        // SAFETY: a non-null bias holds NR floats (caller).
        let bias =
            (!store.bias.is_null()).then(|| unsafe { std::slice::from_raw_parts(store.bias, NR) });
        finish_scalar(dst, bias, store.gelu);
    }
}

/// Dispatch a row count to a kernel monomorphised for it (so the accumulators stay in registers).
macro_rules! by_rows {
    ($kernel:ident, $rows:expr, $max:literal, $args:tt, [$($r:literal)*]) => {
        match $rows {
            $($r => $kernel::<$r> $args,)*
            _ => unreachable!("{} rows > {}", $rows, $max),
        }
    };
}
pub(super) use by_rows;

/// AVX2+FMA microkernel, up to 6 rows × 16.
///
/// # Safety
/// As [`micro_scalar`] with `rows` ≤ 6; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx2_rows(
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
        by_rows!(
            micro_avx2,
            rows,
            6,
            (kc, a, lda, b, c, ldc, store),
            [1 2 3 4 5 6]
        )
    }
}

/// AVX2+FMA `R × 16` [`micro_simd`].
///
/// # Safety
/// As [`micro_scalar`] with `R` rows; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe { micro_simd::<_, R>(Avx2Simd::here(), kc, a, lda, b, c, ldc, store) }
}

/// AVX-512 microkernel, up to 14 rows × 32.
///
/// # Safety
/// As [`micro_scalar`] with `rows` ≤ 14 and 32 columns; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx512_rows(
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
            return micro_avx512_full(kc, a, lda, b, c, ldc, store);
        }
        by_rows!(
            micro_avx512,
            rows,
            13,
            (kc, a, lda, b, c, ldc, store),
            [1 2 3 4 5 6 7 8 9 10 11 12 13]
        )
    }
}

/// The full AVX-512 tile (14 × 32): the k loop of [`full_tile::fma_tile`], then [`store_tile`].
///
/// # Safety
/// As [`micro_scalar`] with 14 rows of 32 columns, `kc ≥ 1`; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512_full(
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
        let acc = full_tile::fma_tile(kc, a, lda, b, store.pf.ptr, store.pf.steps.min(kc));
        store_tile(Avx512Simd::here(), acc, c, ldc, store);
    }
}

/// AVX-512 `R × 32` [`micro_simd`].
///
/// # Safety
/// As [`micro_scalar`] with `R` rows of 32 columns; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe { micro_simd::<_, R>(Avx512Simd::here(), kc, a, lda, b, c, ldc, store) }
}

/// The `R × 2·LANES` microkernel on the vectors of `s` (panels of `2·LANES` floats: 2R
/// accumulators, 2 panel loads and R broadcasts a step; each step prefetches its row of the next
/// panel, one 64-byte line per 16 floats).
///
/// # Safety
/// As [`micro_scalar`] with `R` rows of `2·LANES` columns (`b` holds `kc · 2·LANES` floats, a
/// non-null bias `2·LANES`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_simd<S: SimdF32, const R: usize>(
    s: S,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    let lanes = S::LANES;
    let nr = 2 * lanes;
    let mut acc = [[s.zero(); 2]; R];
    // SAFETY: a holds R rows of kc floats lda apart, b kc·nr, c R rows of nr, a non-null bias nr
    // floats, pf.ptr pf.steps rows of the panel width (caller); a prefetch never faults.
    unsafe {
        let mut b = b;
        for kk in 0..kc {
            if kk < store.pf.steps {
                for line in 0..nr / 16 {
                    _mm_prefetch::<_MM_HINT_T1>(store.pf.ptr.add(kk * nr + 16 * line).cast());
                }
            }
            let b0 = s.load(b);
            let b1 = s.load(b.add(lanes));
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = s.splat(*a.add(i * lda + kk));
                acc[0] = s.mul_add(ai, b0, acc[0]);
                acc[1] = s.mul_add(ai, b1, acc[1]);
            }
            b = b.add(nr);
        }
        store_tile(s, acc, c, ldc, store);
    }
}

/// Write the `R × 2·LANES` tile `acc` to `c` (rows `ldc` apart) as `store` says: `+= c` when
/// accumulating, `+ bias`, GELU (the tile is still in registers).
///
/// `acc` comes by value and is moved into an uninitialised local that the row loop indexes: were
/// the loop to index the kernel's own accumulator array, LLVM would keep that array in memory and
/// zero it with a `memset` on every call (1.8 KB for a 14-row tile: 3% of a bf16 batch-8 pass in
/// `perf`), though the k loop keeps the accumulators in registers anyway.
///
/// # Safety
/// `c` valid for reads and writes of `R` rows of `2·LANES` floats `ldc` apart, a non-null
/// `store.bias` for `2·LANES` floats.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn store_tile<S: SimdF32, const R: usize>(
    s: S,
    acc: [[S::Reg; 2]; R],
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    let lanes = S::LANES;
    let mut tile = std::mem::MaybeUninit::<[[S::Reg; 2]; R]>::uninit();
    tile.write(acc);
    // SAFETY: `tile` was just written whole.
    let tile = unsafe { tile.assume_init_ref() };
    // SAFETY: extents as documented (caller).
    unsafe {
        let bias = if store.bias.is_null() {
            [s.zero(); 2]
        } else {
            [s.load(store.bias), s.load(store.bias.add(lanes))]
        };
        for (i, acc) in tile.iter().enumerate() {
            let ci = c.add(i * ldc);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if store.accumulate {
                v0 = s.add(v0, s.load(ci));
                v1 = s.add(v1, s.load(ci.add(lanes)));
            }
            if !store.bias.is_null() {
                v0 = s.add(v0, bias[0]);
                v1 = s.add(v1, bias[1]);
            }
            if store.gelu {
                v0 = gelu_lanes(s, v0);
                v1 = gelu_lanes(s, v1);
            }
            s.store(ci, v0);
            s.store(ci.add(lanes), v1);
        }
    }
}
