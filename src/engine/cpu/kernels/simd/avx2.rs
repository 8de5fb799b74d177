//! [`SimdF32`] on AVX2 and FMA: 8 lanes in a `__m256`.

use std::arch::x86_64::*;

use super::super::isa::Isa;
use super::vector::SimdF32;

/// The token of AVX2 and FMA (see [`SimdF32`]): a value exists only where the CPU has both.
#[derive(Clone, Copy, Debug)]
pub struct Avx2Simd {
    _private: (),
}

impl Avx2Simd {
    /// The token, if the CPU has AVX2 and FMA.
    pub fn new() -> Option<Self> {
        Isa::Avx2.supported().then_some(Self { _private: () })
    }

    /// The token, unchecked.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[inline(always)]
    pub(super) unsafe fn new_unchecked() -> Self {
        Self { _private: () }
    }

    /// The token, inside code compiled for AVX2 and FMA (which runs only where the CPU has them:
    /// calling such code is the caller's promise).
    ///
    /// # Safety
    /// A safe `#[target_feature]` function: code compiled with AVX2 and FMA enabled calls it without
    /// `unsafe`; any other caller must make sure the CPU supports AVX2 and FMA (the only precondition).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub fn here() -> Self {
        Self { _private: () }
    }
}

impl SimdF32 for Avx2Simd {
    const ISA: Isa = Isa::Avx2;
    const LANES: usize = 8;
    type Reg = __m256;
    type I32s = __m256i;
    /// Lanes whose i32 is all ones (`-1`); the others `0`.
    type Mask = __m256i;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: `self` proves the CPU has AVX2 and FMA (all `unsafe` blocks below but the
        // pointer accesses rely on this alone).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`); `p` is valid for 8 floats (caller).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: AVX2 and FMA (`self`); `p` is valid for writes of 8 floats (caller).
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }

    /// Lane by lane from lane 0.
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: AVX2 and FMA (`self`); `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().sum()
    }
    #[inline(always)]
    fn reduce_add_pairwise(self, v: __m256) -> f32 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
    /// The lanes stored and folded from `-∞` with [`f32::max`] (a NaN lane is skipped).
    #[inline(always)]
    fn reduce_max(self, v: __m256) -> f32 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: AVX2 and FMA (`self`); `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))
    }

    #[inline(always)]
    fn first_lanes(self, count: usize) -> __m256i {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(count.min(8) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_masked(self, m: __m256i, p: *const f32) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`); the lanes of `m` are valid for reads (caller), and the
        // others are not accessed.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: AVX2 and FMA (`self`); the lanes of `m` are valid for writes (caller), and the
        // others are not accessed.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    fn sub_masked(self, m: __m256i, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_sub_ps(a, b)) }
    }

    #[inline(always)]
    fn splat_i32(self, x: i32) -> __m256i {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_set1_epi32(x) }
    }
    #[inline(always)]
    unsafe fn load_i32(self, p: *const i32) -> __m256i {
        // SAFETY: AVX2 and FMA (`self`); `p` is valid for 8 i32 (caller).
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    fn add_i32(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    fn to_i32(self, a: __m256) -> __m256i {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe { _mm256_cvtps_epi32(a) }
    }
    #[inline(always)]
    fn pow2(self, n: __m256i) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`).
        unsafe {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                n,
                _mm256_set1_epi32(127),
            )))
        }
    }
    #[inline(always)]
    unsafe fn gather(self, base: *const f32, idx: __m256i) -> __m256 {
        // SAFETY: AVX2 and FMA (`self`); every `base + idx[l]` is valid for reads (caller).
        unsafe { _mm256_i32gather_ps::<4>(base, idx) }
    }
}
