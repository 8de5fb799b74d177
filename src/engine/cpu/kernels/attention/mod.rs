//! Fused window attention of SwinV2 (`WindowAttention.forward` after the qkv linear, before proj), one
//! task per (image, window, head):
//!
//! 1. gather q, k, v of the window's tokens from the `[B*L, 3C]` qkv rows through the block's
//!    (window, position) → token map (roll + window partition, folded);
//! 2. cosine attention (V2): `S = normalize(q)·normalize(k)ᵀ · logit_scale[h] + bias[h] (+ mask[w])`, with
//!    the clamped/exp'd logit scale and the `16·sigmoid(cpb_mlp(…))` table folded at load; or scaled
//!    dot-product attention (V1): `S = (q · head_dim^-0.5)·kᵀ + bias[h] (+ mask[w])`, the bias being
//!    the gathered `relative_position_bias_table`;
//! 3. softmax over rows, `O = S·v`;
//! 4. scatter O to the window tokens' rows of the `[B*L, C]` output, columns of head `h`
//!    (window reverse + roll back, folded).
//!
//! Files: `args` (what a block passes in), `driver` (the tasks over the pool, the kernel per
//! instruction set), `head` (one task's inputs, scratch and output rows), `scalar` (the portable
//! kernel), and the SIMD kernel, written once over [`SimdF32`](super::simd::SimdF32):
//! `simd_heads` (the two recipes and each instruction set's entry point) on `gather` (step 1),
//! `scores` and `softmax` (step 2–3) and `pv` (steps 3–4); and `bf16_head` (`--precision bf16`:
//! both products on AVX512_BF16 `vdpbf16ps`, where the shapes suit it).

mod args;
#[cfg(target_arch = "x86_64")]
mod bf16_head;
mod driver;
#[cfg(target_arch = "x86_64")]
mod gather;
mod head;
#[cfg(target_arch = "x86_64")]
mod pv;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod scores;
#[cfg(target_arch = "x86_64")]
mod simd_heads;
#[cfg(target_arch = "x86_64")]
mod softmax;
#[cfg(test)]
mod tests;

pub use args::{TokenPermutation, WindowAttentionArgs};
pub use driver::window_attention;
