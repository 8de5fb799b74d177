//! [`CpuEngine`]: one execution instance of the native SwinV2 forward pass: its own rayon pool and its
//! own activation buffers, planned for `max_batch` at construction (no allocation per request).

use std::sync::Arc;

use super::buffers::Buffers;
use super::forward::forward;
use super::kernels::denormals;
use super::kernels::isa::Isa;
use super::modules::SwinModel;
use super::profile::Profile;
use crate::engine::{BackendKind, Engine, EngineDescription, EngineError, Precision};

/// The CPU engine instance: implements [`Engine`] on a shared [`SwinModel`].
pub struct CpuEngine {
    model: Arc<SwinModel>,
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
        model: Arc<SwinModel>,
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
            precision: model.precision,
            detail: format!(
                "threads={threads}, isa={}{}, precision={}, denormals={}",
                Isa::active(),
                if model.precision == Precision::Bf16 {
                    "+avx512bf16"
                } else {
                    ""
                },
                model.precision,
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
    pub fn model(&self) -> &Arc<SwinModel> {
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
