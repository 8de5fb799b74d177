//! The native CPU engine: the SwinV2 forward pass on a GEMM with weights packed at load + fused kernels,
//! buffers planned at load.
//!
//! * [`build`] is the backend's entry point (called by [`crate::engine::build`]): it reads the
//!   weights ([`CpuOptions::weights`]), self-checks the plugin ops, folds the model once and makes
//!   `instances` engines sharing it.
//! * [`SwinModel::new`] reads the official state-dict tensors and folds what does not depend on the
//!   image (CPB bias tables, logit scales, shift masks, roll/partition index maps, qkv bias); it is
//!   immutable and shared through `Arc` by all instances.
//! * [`CpuEngine::new`] makes one instance: its own rayon pool of `threads` threads and activation
//!   buffers for `max_batch` images; it implements [`crate::engine::Engine`].
//! * [`ops`] holds the lab's plugin ops (`MyPlugin::CnnlRoll`, `MyPlugin::PluginReLU`) and
//!   [`ops::self_check`].
//!
//! Module map, side by side with the official `models/swin_transformer_v2.py`:
//! [`modules`] (module structs and load-time folding), [`tables`] (buffers of the `__init__`s),
//! [`forward`] (`forward` of each module), [`instance`] (one engine instance: its thread pool),
//! `buffers.rs` (its activation buffers, planned for `max_batch`), [`profile`] (time per
//! operation), [`kernels`] (GEMM + epilogues, LayerNorm, GELU, attention).

mod buffers;
pub mod forward;
pub mod instance;
pub mod kernels;
pub mod modules;
pub mod ops;
pub mod profile;
pub mod tables;

use std::sync::Arc;

pub use instance::CpuEngine;
pub use kernels::isa::{bf16_refusal, Isa, ISA_ENV};
pub use modules::SwinModel;
pub use profile::Profile;

use super::{
    require_plugin_checks, BackendInfo, BackendKind, Engine, EngineError, Engines, Precision,
    DEFAULT_INSTANCES, DEFAULT_MAX_BATCH,
};
use crate::model::{ConfigHints, WeightsSource};

/// Default threads per instance (`--threads`): every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Options of the CPU backend.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuOptions {
    /// Where the weights come from.
    pub weights: WeightsSource,
    /// Image and window size, when the checkpoint lacks the buffers they are inferred from.
    pub hints: ConfigHints,
    /// Engine instances (model replicas sharing one copy of the weights).
    pub instances: usize,
    /// Threads per instance.
    pub threads: usize,
    /// Largest batch one instance runs at once.
    pub max_batch: usize,
    /// What the linear layers compute in (`--precision`).
    pub precision: Precision,
}

impl CpuOptions {
    /// The defaults (`--instances`, `--threads`, `--max-batch`) for the given weights.
    pub fn new(weights: WeightsSource) -> Self {
        Self {
            weights,
            hints: ConfigHints::default(),
            instances: DEFAULT_INSTANCES,
            threads: default_threads(),
            max_batch: DEFAULT_MAX_BATCH,
            precision: Precision::Fp32,
        }
    }
}

/// Read the weights, self-check the plugin ops, fold the model and create the instances.
pub fn build(opts: &CpuOptions) -> Result<Engines, EngineError> {
    if opts.threads == 0 {
        return Err(EngineError::Options("--threads must be at least 1".into()));
    }
    if opts.instances == 0 {
        return Err(EngineError::Options(
            "--instances must be at least 1".into(),
        ));
    }
    if opts.precision == Precision::Bf16 && !kernels::isa::bf16_supported() {
        return Err(EngineError::Options(bf16_refusal()));
    }
    let cores = default_threads();
    if opts.instances.saturating_mul(opts.threads) > cores {
        tracing::warn!(
            instances = opts.instances,
            threads = opts.threads,
            cores,
            "--instances × --threads exceeds the cores this process may use: the engine threads \
             will contend for them (slower than --threads cores/instances); see README"
        );
    }
    let (weights, config) = opts.weights.load(&opts.hints)?;
    let plugin_checks = ops::self_check();
    require_plugin_checks(&plugin_checks)?;
    let model = Arc::new(SwinModel::with_precision(
        &weights,
        &config,
        opts.precision,
    )?);
    let checkpoint = weights.metadata.clone();
    drop(weights);
    let instances = (0..opts.instances)
        .map(|_| {
            CpuEngine::new(Arc::clone(&model), opts.threads, opts.max_batch)
                .map(|e| Box::new(e) as Box<dyn Engine>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Not empty: `opts.instances >= 1` was checked above.
    let description = instances[0].describe();
    Ok(Engines {
        instances,
        info: BackendInfo {
            kind: BackendKind::Cpu,
            model_name: config.name(),
            config: Some(config),
            description,
            threads_per_instance: Some(opts.threads),
            plugin_checks,
            weights_source: opts.weights.describe(),
            random_weights: opts.weights.is_random(),
            checkpoint,
        },
    })
}
