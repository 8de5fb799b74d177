//! What the window attention is given: the shapes and folded tables of one block, and the checked
//! (window, position) → token map.

use crate::engine::Precision;

/// A (window, position) → token map that is a permutation of `0..tokens`, checked once when made,
/// so that the attention kernel can scatter every task's output through it without checks (no row
/// out of range, no two tasks on one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPermutation(Vec<u32>);

impl TokenPermutation {
    /// `map` if it holds every value of `0..map.len()` exactly once.
    pub fn new(map: Vec<u32>) -> Option<Self> {
        let mut seen = vec![false; map.len()];
        for &t in &map {
            let slot = seen.get_mut(t as usize)?;
            if std::mem::replace(slot, true) {
                return None;
            }
        }
        Some(Self(map))
    }

    /// The map.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Tokens it permutes.
    pub fn tokens(&self) -> usize {
        self.0.len()
    }
}

/// Shapes and folded tables of one block's window attention.
#[derive(Clone, Copy)]
pub struct WindowAttentionArgs<'a> {
    /// Images in the batch.
    pub batch: usize,
    /// Tokens per image (`H*W`).
    pub tokens: usize,
    /// Channels `C` (`num_heads * head_dim`).
    pub dim: usize,
    /// Heads.
    pub num_heads: usize,
    /// Tokens per window (`window_size²`).
    pub window_tokens: usize,
    /// `[nW * window_tokens]` token row of each (window, position): a permutation of `0..tokens`
    /// (outputs are written through it, from several threads).
    pub token_index: &'a TokenPermutation,
    /// Scores of cosine attention (SwinV2: `normalize(q)·normalize(k)ᵀ`) or of scaled dot-product
    /// attention (Swin V1: `q·kᵀ`, q and k as they are).
    pub cosine: bool,
    /// `[num_heads]` factor q is multiplied by: the folded `exp(clamp(logit_scale, max = ln 100))`
    /// (V2) or `head_dim^-0.5` (V1).
    pub logit_scale: &'a [f32],
    /// `[num_heads, N, N]` folded relative position bias: `16·sigmoid(cpb_mlp(…))` gathered (V2) or
    /// `relative_position_bias_table` gathered (V1).
    pub bias: &'a [f32],
    /// `[nW, N, N]` shifted-window mask (0 / -100), if the block is shifted.
    pub mask: Option<&'a [f32]>,
    /// `[nW]`: whether window `w`'s mask has a non-zero entry (interior windows have none, and
    /// skip the add); `None`: every window is masked.
    pub masked_windows: Option<&'a [bool]>,
    /// What `q·kᵀ` and `P·v` multiply in: FP32, or (bf16, where the CPU has AVX512_BF16 and the
    /// shapes suit the bf16 kernel) bf16 operands with FP32 accumulation.
    pub products: Precision,
}

impl WindowAttentionArgs<'_> {
    /// Scratch floats one task needs: q, kᵀ, v, the score matrix and the probabilities as bf16
    /// pairs.
    pub fn scratch_len(window_tokens: usize, head_dim: usize) -> usize {
        window_tokens * (3 * head_dim + window_tokens + window_tokens.div_ceil(2))
    }
}
