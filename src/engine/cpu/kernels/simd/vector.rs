//! The operations the SIMD kernels compute with, over one instruction set's f32 vectors.

use super::super::isa::Isa;

/// Lanes of the widest vector of any implementation (the size of a buffer that holds one vector of
/// whichever [`SimdF32`]).
pub const MAX_LANES: usize = 16;

/// f32 vectors of one instruction set, and the operations on them the kernels use.
///
/// A value of an implementing type is a token: it exists only where the CPU runs the instruction
/// set ([`Avx2Simd::new`](super::Avx2Simd::new) checks, `here()` is callable only from code with the
/// set's target features), so the arithmetic is safe to call; what reads or writes memory through a
/// raw pointer is `unsafe`, for the pointer's sake. The implementations are `#[inline(always)]`, one
/// intrinsic (or a fixed short sequence) each; see the [module](super) for how kernels get them
/// inlined with the instruction set enabled.
pub trait SimdF32: Copy {
    /// The instruction set the token stands for.
    const ISA: Isa;
    /// f32 lanes of [`Self::Reg`] (at most [`MAX_LANES`]).
    const LANES: usize;
    /// A vector of [`Self::LANES`] f32.
    type Reg: Copy;
    /// A vector of [`Self::LANES`] i32.
    type I32s: Copy;
    /// A predicate on the lanes (which lanes a masked operation touches).
    type Mask: Copy;

    /// All lanes `0.0`.
    fn zero(self) -> Self::Reg;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::Reg;
    /// The `LANES` floats at `p` (no alignment needed).
    ///
    /// # Safety
    /// `p` must be valid for reads of `LANES` floats.
    unsafe fn load(self, p: *const f32) -> Self::Reg;
    /// Store `v` to the `LANES` floats at `p` (no alignment needed).
    ///
    /// # Safety
    /// `p` must be valid for writes of `LANES` floats.
    unsafe fn store(self, p: *mut f32, v: Self::Reg);

    /// `a + b`.
    fn add(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// `a - b`.
    fn sub(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// `a · b`.
    fn mul(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// `a / b`.
    fn div(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// Lane-wise minimum (the instruction's rule: `b` where either is NaN).
    fn min(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// Lane-wise maximum (the instruction's rule: `b` where either is NaN).
    fn max(self, a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// Lane-wise square root.
    fn sqrt(self, a: Self::Reg) -> Self::Reg;
    /// `a · b + c`, fused (one rounding).
    fn mul_add(self, a: Self::Reg, b: Self::Reg, c: Self::Reg) -> Self::Reg;
    /// `c - a · b`, fused (one rounding).
    fn neg_mul_add(self, a: Self::Reg, b: Self::Reg, c: Self::Reg) -> Self::Reg;
    /// Each lane rounded to the nearest integer (ties to even), no exceptions raised.
    fn round(self, a: Self::Reg) -> Self::Reg;

    /// Sum of the lanes, in the order this instruction set's kernels have always used: lane by
    /// lane from lane 0 on AVX2 (as a scalar loop over the stored lanes), halves first on AVX-512
    /// (`_mm512_reduce_add_ps`). (Float addition is not associative: keeping each order keeps every
    /// kernel's results bit for bit.)
    fn reduce_add(self, v: Self::Reg) -> f32;
    /// Sum of the lanes halves first on every instruction set: the upper half of the vector added
    /// to the lower, and again, down to one lane.
    fn reduce_add_pairwise(self, v: Self::Reg) -> f32;
    /// The largest lane.
    fn reduce_max(self, v: Self::Reg) -> f32;

    /// The first `min(count, LANES)` lanes.
    fn first_lanes(self, count: usize) -> Self::Mask;
    /// The floats at `p` in the lanes of `m`, `0.0` in the others (which are not read).
    ///
    /// # Safety
    /// `p.add(l)` must be valid for reads for every lane `l` of `m`.
    unsafe fn load_masked(self, m: Self::Mask, p: *const f32) -> Self::Reg;
    /// Store the lanes of `m` of `v` at `p` (the other floats at `p` are not touched).
    ///
    /// # Safety
    /// `p.add(l)` must be valid for writes for every lane `l` of `m`.
    unsafe fn store_masked(self, p: *mut f32, m: Self::Mask, v: Self::Reg);
    /// `a - b` in the lanes of `m`, `0.0` in the others.
    fn sub_masked(self, m: Self::Mask, a: Self::Reg, b: Self::Reg) -> Self::Reg;

    /// All lanes `x`.
    fn splat_i32(self, x: i32) -> Self::I32s;
    /// The `LANES` i32 at `p` (no alignment needed).
    ///
    /// # Safety
    /// `p` must be valid for reads of `LANES` i32.
    unsafe fn load_i32(self, p: *const i32) -> Self::I32s;
    /// `a + b` (wrapping).
    fn add_i32(self, a: Self::I32s, b: Self::I32s) -> Self::I32s;
    /// Each lane converted to i32 in the current rounding mode (to nearest, ties to even, unless
    /// MXCSR says otherwise; the kernels pass integral values).
    fn to_i32(self, a: Self::Reg) -> Self::I32s;
    /// `2^n` for each lane `n` in `-126..=127`: `n + 127` shifted into the exponent field.
    fn pow2(self, n: Self::I32s) -> Self::Reg;
    /// `base[idx[l]]` in each lane `l` (a gather; the indices count floats).
    ///
    /// # Safety
    /// `base.offset(idx[l])` must be valid for reads of one float for every lane `l`.
    unsafe fn gather(self, base: *const f32, idx: Self::I32s) -> Self::Reg;
}
