//! [`SimdF32`] on AVX-512 F: 16 lanes in a `__m512`, lane masks in a `__mmask16`.

use std::arch::x86_64::*;

use super::super::isa::Isa;
use super::avx2::Avx2Simd;
use super::vector::SimdF32;

/// The token of AVX-512 F (see [`SimdF32`]): a value exists only where the CPU has it, and AVX2
/// and FMA ([`Isa::Avx512`] requires all three).
#[derive(Clone, Copy, Debug)]
pub struct Avx512Simd {
    _private: (),
}

impl Avx512Simd {
    /// The token, if the CPU has AVX-512 F (and AVX2 and FMA).
    pub fn new() -> Option<Self> {
        Isa::Avx512.supported().then_some(Self { _private: () })
    }

    /// The token, inside code compiled for AVX-512 F (which runs only where the CPU has it, and
    /// AVX2 and FMA: calling such code is the caller's promise).
    ///
    /// # Safety
    /// A safe `#[target_feature]` function: code compiled with AVX-512 F enabled calls it without
    /// `unsafe`; any other caller must make sure the CPU supports AVX-512 F (the only precondition).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn here() -> Self {
        Self { _private: () }
    }

    /// The AVX2 token: a CPU with [`Isa::Avx512`] has AVX2 and FMA too.
    #[inline(always)]
    pub fn avx2(self) -> Avx2Simd {
        // SAFETY: `self` proves the CPU has `Isa::Avx512`, which `Isa::detected` reports only
        // with AVX2 and FMA.
        unsafe { Avx2Simd::new_unchecked() }
    }
}

impl SimdF32 for Avx512Simd {
    const ISA: Isa = Isa::Avx512;
    const LANES: usize = 16;
    type Reg = __m512;
    type I32s = __m512i;
    type Mask = __mmask16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: `self` proves the CPU has AVX-512 F (all `unsafe` blocks below but the pointer
        // accesses rely on this alone).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: AVX-512 F (`self`); `p` is valid for 16 floats (caller).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: AVX-512 F (`self`); `p` is valid for writes of 16 floats (caller).
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }

    /// Halves first (`_mm512_reduce_add_ps`).
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_add_pairwise(self, v: __m512) -> f32 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m512) -> f32 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_reduce_max_ps(v) }
    }

    #[inline(always)]
    fn first_lanes(self, count: usize) -> __mmask16 {
        let lanes = count.min(16);
        if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        }
    }
    #[inline(always)]
    unsafe fn load_masked(self, m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: AVX-512 F (`self`); the lanes of `m` are valid for reads (caller), and the
        // others are not accessed.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: AVX-512 F (`self`); the lanes of `m` are valid for writes (caller), and the
        // others are not accessed.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    fn sub_masked(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_maskz_sub_ps(m, a, b) }
    }

    #[inline(always)]
    fn splat_i32(self, x: i32) -> __m512i {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_set1_epi32(x) }
    }
    #[inline(always)]
    unsafe fn load_i32(self, p: *const i32) -> __m512i {
        // SAFETY: AVX-512 F (`self`); `p` is valid for 16 i32 (caller).
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    fn add_i32(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn to_i32(self, a: __m512) -> __m512i {
        // SAFETY: AVX-512 F (`self`).
        unsafe { _mm512_cvtps_epi32(a) }
    }
    #[inline(always)]
    fn pow2(self, n: __m512i) -> __m512 {
        // SAFETY: AVX-512 F (`self`).
        unsafe {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                n,
                _mm512_set1_epi32(127),
            )))
        }
    }
    #[inline(always)]
    unsafe fn gather(self, base: *const f32, idx: __m512i) -> __m512 {
        // SAFETY: AVX-512 F (`self`); every `base + idx[l]` is valid for reads (caller).
        unsafe { _mm512_i32gather_ps::<4>(idx, base) }
    }
}
