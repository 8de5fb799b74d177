//! GEMM on weights packed once at load: `y = x · Wᵀ` for the model's linear layers.
//!
//! Why our own: the `gemm` crate (and `matrixmultiply`, `faer`) pack the right-hand matrix on every
//! call; for this model that repacking is a large share of each linear layer (the weights outweigh the
//! activations in stages 2–3), and none of them accepts a matrix packed in advance. Here the weights are
//! packed at load into column panels of [`PackedMatrix::nr`] floats (`k` rows of `nr`, contiguous, the
//! last panel zero-padded), the layout the microkernel streams. The activations are read in place.
//!
//! Microkernels (`mr × nr` accumulators kept in registers): AVX-512 14 × 32 and AVX2+FMA 6 × 16 (one
//! kernel over [`SimdF32`](super::simd::SimdF32), two vectors wide), and a portable 4 × 16; the
//! instruction set is the one the matrix was packed for ([`Isa`](super::isa::Isa)). Blocking, in
//! GotoBLAS order: `KC` rows of `k` per pass; a block of activation rows (`MC_BYTES` of them, kept in
//! L2); then each weight panel in turn, its `kc × nr` slice kept in L1 while every tile of the row block
//! uses it. The weights come from memory once per pass (113 MB for SwinV2-T, more than any cache):
//! they live on transparent huge pages ([`super::slab`]) so that streaming them costs one TLB miss per
//! 2 MiB instead of one per 4 KiB; and while the tiles of a row block work on one panel, the
//! microkernels software-prefetch the next panel into L2, a share per tile, so the stream from DRAM
//! overlaps the arithmetic (the hardware prefetchers stop at every 4 KiB boundary).
//!
//! bf16 (`--precision bf16`, AVX512_BF16): the same blocking over panels of bf16 pairs, the
//! activation rows rounded to bf16 pairs once per call, a `vdpbf16ps` microkernel (`bf16`).
//!
//! Files: `matrix` (the packed layout, tile sizes per instruction set), `matmul` (the blocking and
//! the edge tiles), `micro` (the microkernels), `full_tile` (the k loop of a full AVX-512 tile, FP32
//! and bf16, in inline assembly), `bf16` (the bf16 microkernel and row rounding), `tests`.

#[cfg(target_arch = "x86_64")]
mod bf16;
#[cfg(target_arch = "x86_64")]
mod full_tile;
mod matmul;
mod matrix;
mod micro;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "x86_64")]
pub(crate) use bf16::pack_rows_bf16;
pub use matmul::{matmul_panels, TileOutput};
pub use matrix::{bf16_bits, bf16_value, panel_width, tile_rows, PackedMatrix, WeightFormat};
