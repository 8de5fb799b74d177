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
//! Status: built and tested against stand-in headers and a fake runtime; **not run on an MLU370**.

pub mod runtime;

#[cfg(feature = "mlu")]
mod ffi;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{BackendKind, Engine, EngineDescription, EngineError, PluginCheck};
use runtime::{MluRuntime, ModelInfo, RuntimeError, SelfTestOutcome, SlotConfig, TensorDataType};

/// The plugin ops the SwinV2 MagicMind model uses: (registered op name, short name for logs).
pub const PLUGIN_OPS: [(&str, &str); 2] = [
    ("MyPlugin::CnnlRoll", "roll"),
    ("MyPlugin::PluginReLU", "relu"),
];

/// Largest batch used for a model with a mutable batch dimension when `max_batch` is 0 (the
/// `--max-batch` default of `models/generate_magicmind.py`, the top of its `dim_range`).
pub const DEFAULT_MUTABLE_MAX_BATCH: usize = 32;

/// Input side assumed when the model leaves H and W mutable (the lab's SwinV2 is 256×256).
pub const DEFAULT_INPUT_SIZE: usize = 256;

const BACKEND: BackendKind = BackendKind::Mlu;

/// Input channels: [`Geometry`] accepts only `[B, 3, S, S]` models (or a mutable channel dim, fed 3).
const CHANNELS: usize = 3;

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

/// [`create_engines`] on any [`MluRuntime`] (the real one, or a fake in tests).
pub fn create_engines_with<R: MluRuntime>(
    runtime: Arc<R>,
    opts: &MluOptions,
) -> Result<MluEngines, EngineError> {
    if opts.instances == 0 {
        return Err(EngineError::InvalidInput(
            "--instances must be at least 1".into(),
        ));
    }
    if opts.device_id < 0 {
        return Err(EngineError::InvalidInput(format!(
            "MLU device id must be >= 0, got {}",
            opts.device_id
        )));
    }
    if !opts.model_path.is_file() {
        return Err(backend_error(format!(
            "MagicMind model file not found: {}",
            opts.model_path.display()
        )));
    }

    // Everything below is released by Shared's Drop, in reverse order, on any early return.
    let mut shared = Shared {
        runtime: Arc::clone(&runtime),
        device_id: opts.device_id,
        model_path: opts.model_path.clone(),
        plugins: Vec::new(),
        model: None,
        engine: None,
    };
    for path in &opts.plugin_libs {
        let path = resolve_library_path(path);
        let library = runtime.open_plugin_library(&path).map_err(|e| {
            backend_error(format!(
                "cannot load MagicMind plugin library {}: {e}",
                path.display()
            ))
        })?;
        tracing::info!(library = %path.display(), "MLU plugin library loaded");
        shared.plugins.push((path, library));
    }

    let count = runtime.device_count().map_err(|e| {
        backend_error(format!("cannot query MLU devices (is the Cambricon driver loaded, /dev/cambricon_dev* visible?): {e}"))
    })?;
    if opts.device_id as u32 >= count {
        return Err(backend_error(format!(
            "MLU device {} does not exist: {count} device(s) visible",
            opts.device_id
        )));
    }
    runtime
        .set_device(opts.device_id)
        .map_err(|e| backend_error(format!("cannot select MLU device {}: {e}", opts.device_id)))?;

    let model = runtime.load_model(&opts.model_path).map_err(|e| {
        backend_error(format!(
            "cannot load MagicMind model {}: {e}{}",
            opts.model_path.display(),
            if opts.plugin_libs.is_empty() {
                " (no --plugin-lib given: the SwinV2 model needs libmagicmind_plugin.so)"
            } else {
                ""
            }
        ))
    })?;
    let info = runtime.model_info(&model);
    shared.model = Some(model);
    let info = info.map_err(|e| {
        backend_error(format!(
            "cannot read the inputs/outputs of {}: {e}",
            opts.model_path.display()
        ))
    })?;
    let mut geometry = Geometry::from_model(&info, opts.max_batch).map_err(|e| {
        backend_error(format!(
            "unsupported MagicMind model {}: {e}",
            opts.model_path.display()
        ))
    })?;

    let engine = runtime
        .create_engine(shared.model.as_ref().expect("model set above"))
        .map_err(|e| backend_error(format!("cannot create the MagicMind engine: {e}")))?;
    shared.engine = Some(engine);

    let plugin_checks = run_plugin_checks(&*runtime, &shared.plugins);
    let shared = Arc::new(shared);

    let config = SlotConfig {
        device_id: opts.device_id,
        max_batch: geometry.slot_batch,
        sample_dims: [3, geometry.input_size as i64, geometry.input_size as i64],
    };
    let mut slots: Vec<MluEngine<R>> = Vec::with_capacity(opts.instances);
    for index in 0..opts.instances {
        let engine = shared.engine.as_ref().expect("engine set above");
        let (slot, slot_info) = runtime.create_slot(engine, &config).map_err(|e| {
            backend_error(format!(
                "cannot create MLU slot {} of {} (IContext + queue + buffers for batch {}): {e}",
                index + 1,
                opts.instances,
                geometry.slot_batch
            ))
        })?;
        let mut engine = MluEngine {
            shared: Arc::clone(&shared),
            slot: Some(slot),
            index,
            instances: opts.instances,
            geometry: geometry.clone(),
            staging_input: Vec::new(),
            staging_output: Vec::new(),
        };
        let num_classes = geometry
            .classes_from_slot(&slot_info.output_dims, &info)
            .map_err(|e| {
                backend_error(format!(
                    "unsupported MagicMind model {}: {e}",
                    opts.model_path.display()
                ))
            })?;
        geometry.num_classes = num_classes;
        engine.geometry.num_classes = num_classes;
        slots.push(engine);
    }

    tracing::info!(
        model = %opts.model_path.display(),
        device = opts.device_id,
        slots = opts.instances,
        max_batch = geometry.max_batch,
        fixed_batch = ?geometry.fixed_batch,
        input_size = geometry.input_size,
        num_classes = geometry.num_classes,
        "MLU engines ready"
    );
    Ok(MluEngines {
        engines: slots
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .collect(),
        plugin_checks,
        input_size: geometry.input_size,
        num_classes: geometry.num_classes,
    })
}

fn backend_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}

/// A plugin path naming an existing file is made absolute: `dlopen` only searches the library
/// path for bare names, so `--plugin-lib libmagicmind_plugin.so` in the current directory would not
/// be found otherwise. Other names are passed on unchanged for the library search.
fn resolve_library_path(path: &Path) -> PathBuf {
    if path.is_file() {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    }
}

fn run_plugin_checks<R: MluRuntime>(
    runtime: &R,
    plugins: &[(PathBuf, R::PluginLibrary)],
) -> Vec<PluginCheck> {
    PLUGIN_OPS
        .iter()
        .map(|&(op, short_name)| {
            let mut outcome = None;
            for (path, library) in plugins {
                match runtime.plugin_self_test(library, op) {
                    SelfTestOutcome::NotAvailable => continue,
                    SelfTestOutcome::Passed(detail) => {
                        outcome = Some((true, format!("{detail} ({})", path.display())));
                    }
                    SelfTestOutcome::Failed(detail) => {
                        outcome = Some((false, format!("device self-test failed: {detail} ({})", path.display())));
                    }
                }
                break;
            }
            let (ok, detail) = outcome.unwrap_or_else(|| {
                let detail = if plugins.is_empty() {
                    "not checked: no plugin library given (--plugin-lib)".to_string()
                } else {
                    format!(
                        "not checked: no loaded plugin library exports swin_plugin_self_test for this op ({})",
                        plugins.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    )
                };
                (false, detail)
            });
            if ok {
                tracing::info!(op, %detail, "MLU plugin self-test passed");
            } else {
                tracing::warn!(op, %detail, "MLU plugin self-test did not pass");
            }
            PluginCheck { op: op.to_string(), short_name: short_name.to_string(), ok, detail }
        })
        .collect()
}

/// Input/output geometry of the model, as validated at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Geometry {
    /// Square input side.
    input_size: usize,
    /// `Some(n)` when the model's batch dimension is fixed at `n` (inputs are padded to it).
    fixed_batch: Option<usize>,
    /// Largest batch `infer` accepts.
    max_batch: usize,
    /// Batch the slot buffers are sized for.
    slot_batch: usize,
    /// Output classes (known after the first slot is created).
    num_classes: usize,
}

impl Geometry {
    fn from_model(info: &ModelInfo, requested_max_batch: usize) -> Result<Self, String> {
        if info.inputs.len() != 1 || info.outputs.len() != 1 {
            return Err(format!(
                "expected 1 input and 1 output, found {} and {}",
                info.inputs.len(),
                info.outputs.len()
            ));
        }
        let input = &info.inputs[0];
        if input.data_type != TensorDataType::Float32 {
            return Err(format!(
                "input '{}' must be FLOAT32, it is {:?}",
                input.name, input.data_type
            ));
        }
        if info.outputs[0].data_type != TensorDataType::Float32 {
            return Err(format!(
                "output '{}' must be FLOAT32, it is {:?}",
                info.outputs[0].name, info.outputs[0].data_type
            ));
        }
        let [batch, channels, height, width] = input.dims[..] else {
            return Err(format!(
                "input '{}' must be NCHW [B, 3, S, S], it has dims {:?}",
                input.name, input.dims
            ));
        };
        if channels != 3 && channels != -1 {
            return Err(format!(
                "input '{}' must have 3 channels (NCHW), dims {:?}",
                input.name, input.dims
            ));
        }
        let input_size = match (height, width) {
            (-1, -1) => {
                tracing::warn!(
                    "model input H and W are mutable; assuming {DEFAULT_INPUT_SIZE}x{DEFAULT_INPUT_SIZE}"
                );
                DEFAULT_INPUT_SIZE
            }
            (h, w) if h > 0 && h == w => h as usize,
            _ => {
                return Err(format!(
                    "input '{}' must be square [B, 3, S, S], dims {:?}",
                    input.name, input.dims
                ));
            }
        };
        let (fixed_batch, max_batch, slot_batch) = match batch {
            -1 => {
                let max = if requested_max_batch == 0 {
                    DEFAULT_MUTABLE_MAX_BATCH
                } else {
                    requested_max_batch
                };
                (None, max, max)
            }
            n if n > 0 => {
                let n = n as usize;
                if requested_max_batch > n {
                    return Err(format!(
                        "the model's batch is fixed at {n}; the requested max batch {requested_max_batch} exceeds it"
                    ));
                }
                let max = if requested_max_batch == 0 {
                    n
                } else {
                    requested_max_batch
                };
                (Some(n), max, n)
            }
            _ => {
                return Err(format!(
                    "input '{}' has an invalid batch dimension {batch}",
                    input.name
                ))
            }
        };
        Ok(Self {
            input_size,
            fixed_batch,
            max_batch,
            slot_batch,
            num_classes: 0,
        })
    }

    /// Number of classes from the output shape `InferOutputShape` gave for `slot_batch` images:
    /// `[slot_batch, K]` (trailing 1s allowed), consistent with the model's declared output and
    /// with the slots created before.
    fn classes_from_slot(&self, output_dims: &[i64], info: &ModelInfo) -> Result<usize, String> {
        let valid = output_dims.len() >= 2
            && output_dims[0] == self.slot_batch as i64
            && output_dims[1] > 0
            && output_dims[2..].iter().all(|&d| d == 1);
        if !valid {
            return Err(format!(
                "output shape for batch {} is {:?}; expected [{}, classes]",
                self.slot_batch, output_dims, self.slot_batch
            ));
        }
        let classes = output_dims[1] as usize;
        let declared = &info.outputs[0].dims;
        if declared.len() >= 2 && declared[1] > 0 && declared[1] as usize != classes {
            return Err(format!(
                "the model declares output {declared:?} but infers {output_dims:?}"
            ));
        }
        if self.num_classes != 0 && self.num_classes != classes {
            return Err(format!(
                "slots disagree on the number of classes: {} vs {classes}",
                self.num_classes
            ));
        }
        Ok(classes)
    }
}

/// Model, engine and plugin libraries shared by the slots of one model. Dropped with the last
/// slot; tears down in the order the MagicMind samples require.
struct Shared<R: MluRuntime> {
    runtime: Arc<R>,
    device_id: i32,
    model_path: PathBuf,
    plugins: Vec<(PathBuf, R::PluginLibrary)>,
    model: Option<R::Model>,
    engine: Option<R::Engine>,
}

impl<R: MluRuntime> Drop for Shared<R> {
    fn drop(&mut self) {
        if self.engine.is_some() || self.model.is_some() {
            if let Err(e) = self.runtime.set_device(self.device_id) {
                tracing::warn!(device = self.device_id, error = %e, "cannot select the MLU for teardown");
            }
        }
        if let Some(engine) = self.engine.take() {
            self.runtime.destroy_engine(engine);
        }
        if let Some(model) = self.model.take() {
            self.runtime.destroy_model(model);
            tracing::debug!(model = %self.model_path.display(), "MagicMind model destroyed");
        }
        while let Some((path, library)) = self.plugins.pop() {
            self.runtime.close_plugin_library(library);
            tracing::debug!(library = %path.display(), "MLU plugin library closed");
        }
    }
}

/// One engine slot: an `IContext` with its own `cnrtQueue` and buffers, on a shared model.
pub struct MluEngine<R: MluRuntime> {
    shared: Arc<Shared<R>>,
    slot: Option<R::Slot>,
    index: usize,
    instances: usize,
    geometry: Geometry,
    /// Padded input/output for models with a fixed batch (allocated on first use).
    staging_input: Vec<f32>,
    staging_output: Vec<f32>,
}

impl<R: MluRuntime> MluEngine<R> {
    fn sample_len(&self) -> usize {
        CHANNELS * self.geometry.input_size * self.geometry.input_size
    }

    fn runtime_error(&self, what: &str, e: RuntimeError) -> EngineError {
        backend_error(format!(
            "{what} on MLU {} slot {}/{} failed: {e}",
            self.shared.device_id,
            self.index + 1,
            self.instances
        ))
    }
}

impl<R: MluRuntime> Engine for MluEngine<R> {
    fn describe(&self) -> EngineDescription {
        EngineDescription {
            backend: BACKEND,
            channels: CHANNELS,
            input_size: self.geometry.input_size,
            num_classes: self.geometry.num_classes,
            max_batch: self.geometry.max_batch,
            detail: format!(
                "MagicMind model {}, MLU {}, slot {}/{}{}",
                self.shared.model_path.display(),
                self.shared.device_id,
                self.index + 1,
                self.instances,
                match self.geometry.fixed_batch {
                    Some(n) => format!(", fixed model batch {n}"),
                    None => String::new(),
                }
            ),
        }
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        let sample_len = self.sample_len();
        let classes = self.geometry.num_classes;
        EngineDescription {
            backend: BACKEND,
            channels: CHANNELS,
            input_size: self.geometry.input_size,
            num_classes: classes,
            max_batch: self.geometry.max_batch,
            detail: String::new(),
        }
        .check_infer_args(input, batch, logits)?;
        let device_id = self.shared.device_id;
        let runtime = Arc::clone(&self.shared.runtime);
        runtime
            .set_device(device_id)
            .map_err(|e| self.runtime_error("cnrtSetDevice", e))?;
        let size = self.geometry.input_size as i64;
        let slot = self.slot.as_mut().expect("slot lives until drop");
        let result = match self.geometry.fixed_batch {
            Some(n) if n != batch => {
                self.staging_input.resize(n * sample_len, 0.0);
                self.staging_input[..input.len()].copy_from_slice(input);
                self.staging_input[input.len()..].fill(0.0);
                self.staging_output.resize(n * classes, 0.0);
                let result = runtime.infer(
                    slot,
                    &self.staging_input,
                    [n as i64, 3, size, size],
                    &mut self.staging_output,
                );
                if result.is_ok() {
                    logits.copy_from_slice(&self.staging_output[..batch * classes]);
                }
                result
            }
            _ => runtime.infer(slot, input, [batch as i64, 3, size, size], logits),
        };
        result.map_err(|e| self.runtime_error("inference", e))
    }
}

impl<R: MluRuntime> Drop for MluEngine<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let runtime = &self.shared.runtime;
            if let Err(e) = runtime.set_device(self.shared.device_id) {
                tracing::warn!(device = self.shared.device_id, error = %e, "cannot select the MLU to destroy a slot");
            }
            runtime.destroy_slot(slot);
        }
        // `shared` drops after this: the last slot takes the engine, the model and the libraries with it.
    }
}

/// The backend's entry point (called by [`crate::engine::build`]): [`create_engines`], its plugin
/// self-checks required to pass, described like every backend.
pub fn build(opts: &MluOptions) -> Result<crate::engine::Engines, EngineError> {
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
    Ok(crate::engine::Engines {
        instances: mlu.engines,
        info: crate::engine::BackendInfo {
            kind: crate::engine::BackendKind::Mlu,
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
