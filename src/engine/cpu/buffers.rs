//! [`Buffers`]: the activation buffers of one CPU engine instance, planned once for `max_batch`
//! images (no allocation per request); [`forward`](super::forward) runs on them.

use std::sync::Mutex;

use super::kernels::attention::WindowAttentionArgs;
use super::kernels::mlp;
use super::kernels::slab::HugeBuffer;
use super::modules::SwinModel;

/// Activation buffers of one instance, sized for the largest stage at `max_batch`.
pub(super) struct Buffers {
    /// Residual stream `[B*L, C]`.
    pub(super) x: HugeBuffer,
    /// `[B*L, 3C]` qkv; also the gathered 2×2 neighbours of patch merging `[B*L/4, 4C]`.
    pub(super) qkv: HugeBuffer,
    /// `[B*L, C]` attention output (before proj).
    pub(super) attn: HugeBuffer,
    /// `[B*L, C]` proj / fc2 output before the post-norm.
    pub(super) tmp: HugeBuffer,
    /// `[B*L, hidden]` MLP hidden; also the flattened patches `[B*L0, in_chans*p*p]`.
    pub(super) hidden: HugeBuffer,
    /// `[B, num_features]` pooled features.
    pub(super) pooled: Vec<f32>,
    /// One attention scratch per pool thread.
    pub(super) attn_scratch: Vec<Mutex<Vec<f32>>>,
    /// One fused-MLP scratch per pool thread (a chunk's hidden block and fc2 output).
    pub(super) mlp_scratch: Vec<Mutex<Vec<f32>>>,
}

impl Buffers {
    pub(super) fn plan(model: &SwinModel, max_batch: usize, threads: usize) -> Self {
        let cfg = &model.config;
        let (mut x, mut qkv, mut hidden, mut scratch, mut mlp) = (0, 0, 0, 0, 0);
        for layer in &model.layers {
            let l = layer.input_resolution * layer.input_resolution;
            x = x.max(l * layer.dim);
            qkv = qkv.max(3 * l * layer.dim);
            for b in &layer.blocks {
                hidden = hidden.max(l * b.mlp.fc1.out_features);
                mlp = mlp.max(mlp::scratch_len(
                    mlp::chunk_rows(&b.mlp.fc1.weight),
                    b.dim,
                    b.mlp.fc1.out_features,
                ));
                let n = b.window_size * b.window_size;
                scratch = scratch.max(WindowAttentionArgs::scratch_len(
                    n,
                    b.dim / b.attn.num_heads,
                ));
            }
        }
        let l0 = cfg.stage_resolution(0).pow(2);
        hidden = hidden.max(l0 * cfg.in_chans * cfg.patch_size * cfg.patch_size);
        let zeros = |n: usize| HugeBuffer::zeroed(n * max_batch);
        Self {
            x: zeros(x),
            qkv: zeros(qkv),
            attn: zeros(x),
            tmp: zeros(x),
            hidden: zeros(hidden),
            pooled: vec![0.0; cfg.num_features() * max_batch],
            attn_scratch: (0..threads)
                .map(|_| Mutex::new(vec![0.0; scratch]))
                .collect(),
            mlp_scratch: (0..threads).map(|_| Mutex::new(vec![0.0; mlp])).collect(),
        }
    }
}
