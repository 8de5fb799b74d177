//! f32 vectors of one instruction set, so that each SIMD kernel is written once for every vector
//! width: [`SimdF32`] is what the kernels compute with, [`Avx2Simd`] (AVX2+FMA, 8 lanes) and
//! [`Avx512Simd`] (AVX-512 F, 16 lanes) implement it.
//!
//! How a kernel uses it: its body is a generic `#[inline(always)]` function over `S: SimdF32` that
//! takes the token `s: S` and computes with `s.add(a, b)`, `s.load(p)`, … For each instruction set a
//! thin `#[target_feature]` function (the kernel's entry point for that set) makes the token with
//! `here()` and calls the body: the body, and every primitive in it, is inlined there, where the
//! instruction set is enabled, so each primitive compiles to its one instruction (no calls, no
//! dispatch in the loops). Where the instruction sets differ in what a kernel should do (tile
//! sizes, data layout, masked or scalar tails), the entry point chooses, through the body's const
//! parameters; the primitives differ only in the instructions they map to.

mod avx2;
mod avx512;
mod vector;

pub use avx2::Avx2Simd;
pub use avx512::Avx512Simd;
pub use vector::{SimdF32, MAX_LANES};
