//! One (image, window, head) task of the window attention: what its kernel reads, its scratch, and
//! where its output rows go.

use super::super::SendPtr;

/// `F.normalize` epsilon.
pub(super) const NORM_EPS: f32 = 1e-12;

/// The inputs, scratch and output of one (image, window, head) task. Every head kernel
/// (`scalar::head_scalar`, `simd_heads::head_avx2`, `simd_heads::head_avx512`) fills `q`, `kt`,
/// `v` from `qkv`, the scores and probabilities into `s`, and writes `O = P·v` through `out`.
pub(super) struct Head<'a> {
    /// The block's `[batch*tokens, 3*c]` qkv rows.
    pub qkv: &'a [f32],
    /// The window's `n` token rows within the image (window partition and roll, folded).
    pub map: &'a [u32],
    /// The image's first row (`b * tokens`).
    pub base: usize,
    /// Channels (`num_heads * hd`).
    pub c: usize,
    /// The head.
    pub h: usize,
    /// Head dimension.
    pub hd: usize,
    /// Whether q and k are normalised (cosine attention, V2) or taken as they are (V1).
    pub cosine: bool,
    /// The head's factor for q (V2's folded logit scale, V1's `head_dim^-0.5`).
    pub scale: f32,
    /// The head's `n×n` relative position bias.
    pub bias: &'a [f32],
    /// The window's `n×n` shift mask, if it has a non-zero entry.
    pub mask: Option<&'a [f32]>,
    /// `n×hd` scratch: q (row-major), scaled by `scale / |q|` (cosine) or `scale`.
    pub q: &'a mut [f32],
    /// `hd×n` scratch: kᵀ, `k / |k|` (cosine) or k.
    pub kt: &'a mut [f32],
    /// `n×hd` scratch: v.
    pub v: &'a mut [f32],
    /// `n×n` scratch: the scores, then the probabilities.
    pub s: &'a mut [f32],
    /// `n×⌈n/2⌉` scratch: the probabilities as bf16 pairs (the bf16 kernel).
    pub pairs: &'a mut [f32],
    /// Where row `p` of the output goes.
    pub out: HeadOutput<'a>,
}

impl Head<'_> {
    /// Tokens of the window.
    pub fn n(&self) -> usize {
        self.map.len()
    }
}

/// The output rows of one task: for each window position `p`, the `hd` columns of head `h` of
/// the row of its token in the `[batch*tokens, c]` output (window reverse and roll back, folded).
#[derive(Clone, Copy)]
pub(super) struct HeadOutput<'a> {
    out: SendPtr<f32>,
    map: &'a [u32],
    base: usize,
    c: usize,
    col: usize,
}

impl<'a> HeadOutput<'a> {
    /// The rows `base + map[p]` of `out` (`c` floats each), columns `col..col + hd`.
    ///
    /// # Safety
    /// For every `p < map.len()`, row `base + map[p]` of `out` must be valid for writes of its
    /// columns `col..col + hd`, and nothing else may access them while the value is in use.
    pub unsafe fn new(
        out: SendPtr<f32>,
        map: &'a [u32],
        base: usize,
        c: usize,
        col: usize,
    ) -> Self {
        Self {
            out,
            map,
            base,
            c,
            col,
        }
    }

    /// The first of the `hd` floats of window position `p`'s output (`p < n`), valid for writes
    /// and used by no one else (see [`HeadOutput::new`]).
    #[inline(always)]
    pub fn row(&self, p: usize) -> *mut f32 {
        // SAFETY: row base + map[p] exists and its columns col.. belong to this task (`new`).
        unsafe {
            self.out
                .get()
                .add((self.base + self.map[p] as usize) * self.c + self.col)
        }
    }
}
