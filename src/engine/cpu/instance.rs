//! [`CpuEngine`]: one execution instance of the native SwinV2 forward pass: its own rayon pool and its
//! own activation buffers, planned for `max_batch` at construction (no allocation per request).

use std::sync::{Arc, Mutex};

use super::forward::forward;
use super::kernels::attention::WindowAttentionArgs;
use super::kernels::isa::Isa;
use super::kernels::slab::HugeBuffer;
use super::kernels::{denormals, mlp};
use super::modules::SwinV2Model;
use super::profile::Profile;
use crate::engine::{BackendKind, Engine, EngineDescription, EngineError};

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
    fn plan(model: &SwinV2Model, max_batch: usize, threads: usize) -> Self {
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

/// The CPU engine instance: implements [`Engine`] on a shared [`SwinV2Model`].
pub struct CpuEngine {
    model: Arc<SwinV2Model>,
    pool: rayon::ThreadPool,
    threads: usize,
    description: EngineDescription,
    buffers: Buffers,
}

impl std::fmt::Debug for CpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEngine")
            .field("model", &self.model.config.name())
            .field("threads", &self.threads)
            .field("max_batch", &self.description.max_batch)
            .finish()
    }
}

impl CpuEngine {
    /// An instance with its own pool of `threads` threads and buffers for batches up to `max_batch`.
    pub fn new(
        model: Arc<SwinV2Model>,
        threads: usize,
        max_batch: usize,
    ) -> Result<Self, EngineError> {
        if threads == 0 || max_batch == 0 {
            return Err(EngineError::Options(format!(
                "threads ({threads}) and max_batch ({max_batch}) must be at least 1"
            )));
        }
        // Every kernel runs on these threads: flush denormals there (see `kernels::denormals`).
        let flush = denormals::flush_requested();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("swin-cpu-{i}"))
            .start_handler(move |_| {
                if flush {
                    denormals::flush_denormals_in_this_thread();
                }
            })
            .build()
            .map_err(|e| EngineError::Backend {
                backend: BackendKind::Cpu,
                message: format!("cannot start {threads} engine threads: {e}"),
            })?;
        let buffers = Buffers::plan(&model, max_batch, threads);
        let description = EngineDescription {
            backend: BackendKind::Cpu,
            channels: model.config.in_chans,
            input_size: model.config.img_size,
            num_classes: model.config.num_classes,
            max_batch,
            detail: format!(
                "threads={threads}, isa={}, denormals={}",
                Isa::active(),
                if flush { "flushed" } else { "kept" }
            ),
        };
        Ok(Self {
            model,
            pool,
            threads,
            description,
            buffers,
        })
    }

    /// Run one forward pass like [`Engine::infer`] and return the wall time spent per kind of
    /// operation (patch embed, qkv, attention, proj + norm1, fc1 + GELU, fc2 + norm2, merging, head).
    pub fn profile(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<Profile, EngineError> {
        self.description.check_infer_args(input, batch, logits)?;
        let model = &*self.model;
        let buffers = &mut self.buffers;
        let mut prof = Some(Profile::default());
        self.pool
            .install(|| forward(model, buffers, input, batch, logits, &mut prof));
        Ok(prof.unwrap_or_default())
    }

    /// The model this instance runs.
    pub fn model(&self) -> &Arc<SwinV2Model> {
        &self.model
    }
}

impl Engine for CpuEngine {
    fn describe(&self) -> EngineDescription {
        self.description.clone()
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        self.description.check_infer_args(input, batch, logits)?;
        let model = &*self.model;
        let buffers = &mut self.buffers;
        self.pool
            .install(|| forward(model, buffers, input, batch, logits, &mut None));
        Ok(())
    }

    /// On this instance's pool: a batch's images are decoded by the threads that will run its
    /// forward pass, before it, never beside it.
    fn run_on_engine_threads(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        use rayon::prelude::*;
        // Decoding keeps IEEE semantics (no FTZ/DAZ), as on any other thread.
        self.pool.install(|| {
            (0..n)
                .into_par_iter()
                .with_max_len(1)
                .for_each(|i| denormals::with_ieee_denormals(|| task(i)))
        });
    }
}
