//! Cambricon MLU370 backend through MagicMind (cargo feature `mlu`).
//!
//! One serialized MagicMind model (built by `models/generate_magicmind.py`, with the
//! `MyPlugin::CnnlRoll` / `MyPlugin::PluginReLU` plugin ops of `plugins/`) is opened once per
//! process; [`create_engines`] turns it into `instances` engine slots, one [`MluEngine`] each, that
//! the scheduler pool hands requests to:
//!
//! 1. `dlopen` every plugin library (before the model: the model refers to their ops);
//! 2. check the device exists, `cnrtSetDevice`;
//! 3. `CreateIModel` + `DeserializeFromFile`, validate its input (`[B, 3, S, S]` float32, `B`
//!    fixed or mutable) and output;
//! 4. `CreateIEngine` once;
//! 5. run each plugin library's device self-test (`swin_plugin_self_test`) → [`PluginCheck`]s;
//! 6. per slot: `IContext` + `cnrtQueue` + tensors + device and pinned host buffers for the largest
//!    batch (`InferOutputShape` at that batch gives the number of classes).
//!
//! Each [`MluEngine::infer`] call makes the slot's device current on the calling thread, then runs
//! host → device copy, `InferOutputShape`, `Enqueue`, device → host copy and `cnrtQueueSync`
//! (models with a fixed batch get their batch padded). Teardown runs in the order the samples
//! require: every slot (contexts) first — when its engine is dropped —, then, with the last one,
//! the engine, the model, and finally `dlclose` of the plugin libraries in reverse order.
//!
//! The MagicMind calls sit behind the [`runtime::MluRuntime`] trait: the real implementation is a
//! thin `extern "C"` C++ shim (`mm_shim.h`/`mm_shim.cc`, bindgen bindings) compiled when the crate
//! is built with `--features mlu` and `NEUWARE_HOME` set; tests drive the same pool logic with an
//! in-process fake runtime ([`create_engines_with`]).
//!
//! Files: `pool.rs` (the setup steps above, in order, and the teardown of what the slots share),
//! `plugins.rs` (plugin libraries and their self-tests), `geometry.rs` (model input/output
//! validation, batch sizes, padding), `slot.rs` ([`MluEngine`]), `runtime.rs` (the
//! [`runtime::MluRuntime`] seam), `ffi.rs` (the real runtime over the C++ shim).
//!
//! Status: built and tested against stand-in headers and a fake runtime; **not run on an MLU370**.

pub mod runtime;

#[cfg(feature = "mlu")]
mod ffi;
mod geometry;
mod plugins;
mod pool;
mod slot;

use std::path::PathBuf;

use crate::engine::{BackendInfo, BackendKind, Engine, EngineError, Engines, PluginCheck};

pub use geometry::{DEFAULT_INPUT_SIZE, DEFAULT_MUTABLE_MAX_BATCH};
pub use plugins::PLUGIN_OPS;
pub use pool::create_engines_with;
pub use slot::MluEngine;

const BACKEND: BackendKind = BackendKind::Mlu;

/// Input channels: [`geometry`] accepts only `[B, 3, S, S]` models (or a mutable channel dim, fed 3).
const CHANNELS: usize = 3;

/// Default MLU device ordinal (`--device`).
pub const DEFAULT_DEVICE: i32 = 0;

/// Options of the MLU backend (`--backend mlu --model … --plugin-lib … --device … --instances …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MluOptions {
    /// Serialized MagicMind model (`*.magicmind`).
    pub model_path: PathBuf,
    /// MagicMind plugin libraries to `dlopen` before the model (e.g. `libmagicmind_plugin.so`).
    pub plugin_libs: Vec<PathBuf>,
    /// MLU device ordinal.
    pub device_id: i32,
    /// Number of engine slots (IContext + queue + buffers each).
    pub instances: usize,
    /// Largest batch per inference; 0 = the model's maximum.
    pub max_batch: usize,
}

/// The slots created from one model, plus what the scheduler and the server need to know.
pub struct MluEngines {
    /// One engine per slot; dropping the last one tears the model down.
    pub engines: Vec<Box<dyn Engine>>,
    /// Device self-test of each plugin op.
    pub plugin_checks: Vec<PluginCheck>,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Number of output classes.
    pub num_classes: usize,
}

/// Open the model once and create `opts.instances` slots on `opts.device_id`.
///
/// Needs a binary built with `--features mlu` and `NEUWARE_HOME` pointing at a Neuware SDK;
/// otherwise it returns an error that says which of the two is missing.
pub fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
    #[cfg(feature = "mlu")]
    {
        sdk::create_engines(opts)
    }
    #[cfg(not(feature = "mlu"))]
    {
        let _ = opts;
        Err(backend_error(
            "this binary was built without --features mlu; rebuild with \
             `NEUWARE_HOME=/usr/local/neuware cargo build --release --features mlu` on a Cambricon host",
        ))
    }
}

/// `cfg(neuware)` (set by build.rs when it linked the shim) only exists with the `mlu` feature.
#[cfg(feature = "mlu")]
mod sdk {
    use super::{MluEngines, MluOptions};
    use crate::engine::EngineError;

    #[cfg(neuware)]
    pub(super) fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
        super::create_engines_with(std::sync::Arc::new(super::ffi::FfiRuntime::new()), opts)
    }

    #[cfg(not(neuware))]
    pub(super) fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
        let _ = opts;
        Err(super::backend_error(
            "this binary was built with --features mlu but without the Neuware SDK \
             (set NEUWARE_HOME when building): the MagicMind runtime is not linked in",
        ))
    }
}

fn backend_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}

/// The backend's entry point (called by [`crate::engine::build`]): [`create_engines`], its plugin
/// self-checks required to pass, described like every backend.
pub fn build(opts: &MluOptions) -> Result<Engines, EngineError> {
    let mlu = create_engines(opts)?;
    crate::engine::require_plugin_checks(&mlu.plugin_checks)?;
    let description = mlu
        .engines
        .first()
        .map(|e| e.describe())
        .ok_or_else(|| backend_error("no engine slot was created"))?;
    let model_name = opts
        .model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "magicmind".into());
    Ok(Engines {
        instances: mlu.engines,
        info: BackendInfo {
            kind: BackendKind::Mlu,
            model_name,
            config: None,
            description,
            threads_per_instance: None,
            plugin_checks: mlu.plugin_checks,
            weights_source: opts.model_path.display().to_string(),
            random_weights: false,
        },
    })
}
