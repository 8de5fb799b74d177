//! Inference backends behind one trait: a batch of preprocessed images in, logits out.
//!
//! * [`cpu`]: the native SwinV2 forward pass (default, embedded).
//! * [`mlu`]: Cambricon MLU370 through MagicMind (cargo feature `mlu`).
//!
//! Backend selection lives here and nowhere else: [`build`] turns [`BackendOptions`] into
//! [`Engines`], the same shape for every backend (the instances, plus a plain [`BackendInfo`] that
//! the server converts into its GetModelInfo message), after the plugin self-checks and a warm-up.

pub mod cpu;
pub mod mlu;

use std::time::Instant;

use crate::model::ModelError;

/// Default number of engine instances (`--instances`).
pub const DEFAULT_INSTANCES: usize = 1;

/// Default largest batch an instance runs at once (`--max-batch`).
pub const DEFAULT_MAX_BATCH: usize = 8;

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum BackendKind {
    /// The native CPU engine (default).
    Cpu,
    /// Cambricon MLU370 through MagicMind (needs a build with `--features mlu`).
    Mlu,
}

impl BackendKind {
    /// `cpu` or `mlu`, as logs, errors and GetModelInfo spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Mlu => "mlu",
        }
    }

    /// Whether the forward pass computes on the host's own cores. Then inputs are prepared
    /// (decoded) on the engine's threads between forward passes rather than beside them: a decode
    /// that preempts one engine thread stalls the others at their next join, so decoding beside a
    /// busy CPU engine cost about twice its own CPU time (Intel SPR, 2 vCPUs: 6% of the cores sat
    /// idle at saturation). An accelerator's host threads mostly wait, and decoding overlaps them.
    pub fn computes_on_host_cores(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Mlu => false,
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to build: one variant per backend, each with only the options that backend reads.
#[derive(Debug, Clone)]
pub enum BackendOptions {
    /// The native CPU engine.
    Cpu(cpu::CpuOptions),
    /// MagicMind on an MLU370.
    Mlu(mlu::MluOptions),
}

impl BackendOptions {
    /// Engine instances to create.
    pub fn instances(&self) -> usize {
        match self {
            BackendOptions::Cpu(o) => o.instances,
            BackendOptions::Mlu(o) => o.instances,
        }
    }

    /// Largest batch per instance.
    pub fn max_batch(&self) -> usize {
        match self {
            BackendOptions::Cpu(o) => o.max_batch,
            BackendOptions::Mlu(o) => o.max_batch,
        }
    }
}

/// What the built model is, independent of the wire format (the server turns it into `ModelInfo`).
#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// Backend that runs it.
    pub kind: BackendKind,
    /// Model name (`swinv2_…` from the configuration, or the MagicMind file stem).
    pub model_name: String,
    /// Architecture, when the backend knows it (CPU: from the checkpoint; MLU: opaque model).
    pub config: Option<crate::model::SwinV2Config>,
    /// What every instance accepts and returns.
    pub description: EngineDescription,
    /// Threads per instance (CPU); `None` where the backend has no such setting (MLU).
    pub threads_per_instance: Option<usize>,
    /// Result of each plugin op's self-check.
    pub plugin_checks: Vec<PluginCheck>,
    /// Where the weights came from (file, URL, `random(seed=N)`, MagicMind file).
    pub weights_source: String,
    /// Whether the weights are deterministic random ones.
    pub random_weights: bool,
}

/// Built, self-checked and warmed-up engine instances, the same shape for every backend.
pub struct Engines {
    /// One per `--instances`, each ready to run.
    pub instances: Vec<Box<dyn Engine>>,
    /// What they run.
    pub info: BackendInfo,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("instances", &self.instances.len())
            .field("info", &self.info)
            .finish()
    }
}

/// Build the engines `opts` selects: read the model, self-check the plugin ops, create the
/// instances, and warm each one up with zero batches (batch 1 on the CPU, every batch size
/// 1..=max_batch on the MLU; see [`warm_up_batches`]) so first requests do not pay for page
/// faults or shape planning, and broken weights are found before serving.
pub fn build(opts: &BackendOptions) -> Result<Engines, EngineError> {
    if opts.instances() == 0 || opts.max_batch() == 0 {
        return Err(EngineError::Options(
            "--instances and --max-batch must be at least 1".into(),
        ));
    }
    let mut engines = match opts {
        BackendOptions::Cpu(o) => cpu::build(o)?,
        BackendOptions::Mlu(o) => mlu::build(o)?,
    };
    warm_up(&mut engines.instances)?;
    Ok(engines)
}

/// Log every plugin self-check; the first failure is an error.
pub fn require_plugin_checks(checks: &[PluginCheck]) -> Result<(), EngineError> {
    for c in checks {
        if c.ok {
            tracing::info!(op = %c.op, detail = %c.detail, "plugin {}: ok", c.short_name);
        } else {
            tracing::error!(op = %c.op, detail = %c.detail, "plugin {}: FAILED", c.short_name);
        }
    }
    match checks.iter().find(|c| !c.ok) {
        Some(bad) => Err(EngineError::PluginCheck {
            op: bad.op.clone(),
            detail: bad.detail.clone(),
        }),
        None => Ok(()),
    }
}

/// Batch sizes the warm-up runs on an instance of `d`. The MagicMind model has a mutable batch:
/// the first `infer` of each input shape makes the runtime plan that shape (shape inference,
/// plugin `SetLocalVar`/`GetWorkspaceSize`, workspace), so every batch size the pool may hand an
/// MLU instance (1..=max_batch) runs once here instead of in the first request of that size. The
/// CPU engine plans its buffers for `max_batch` when the instance is built (cpu/instance.rs), so
/// batch 1 is enough there: it touches the weights' pages and checks the weights.
fn warm_up_batches(d: &EngineDescription) -> std::ops::RangeInclusive<usize> {
    match d.backend {
        BackendKind::Mlu => 1..=d.max_batch,
        BackendKind::Cpu => 1..=1,
    }
}

/// Run zero batches of every size [`warm_up_batches`] names through every instance.
fn warm_up(engines: &mut [Box<dyn Engine>]) -> Result<(), EngineError> {
    for (i, engine) in engines.iter_mut().enumerate() {
        let d = engine.describe();
        let started = Instant::now();
        for batch in warm_up_batches(&d) {
            let input = vec![0f32; batch * d.image_len()];
            let mut logits = vec![0f32; batch * d.num_classes];
            engine.infer(&input, batch, &mut logits)?;
            if logits.iter().any(|v| !v.is_finite()) {
                return Err(EngineError::WarmUp(format!(
                    "warm-up of instance {i} (batch {batch}) produced non-finite logits: the weights are broken"
                )));
            }
        }
        tracing::info!(
            instance = i,
            batches = ?warm_up_batches(&d),
            ms = started.elapsed().as_secs_f32() * 1e3,
            "warm-up done"
        );
    }
    Ok(())
}

/// What an engine failed at.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The caller passed a batch the engine cannot take (wrong length, batch 0 or over the maximum).
    #[error("invalid engine input: {0}")]
    InvalidInput(String),
    /// Options no engine can be built with (zero instances, zero threads, …).
    #[error("{0}")]
    Options(String),
    /// The backend itself failed (device error, runtime error).
    #[error("{backend} engine failed: {message}")]
    Backend {
        /// Backend that failed.
        backend: BackendKind,
        /// What went wrong.
        message: String,
    },
    /// The model (checkpoint, configuration, download) could not be read.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A plugin op failed its self-check.
    #[error("plugin op {op} failed its self-check: {detail}")]
    PluginCheck {
        /// Registered op name.
        op: String,
        /// Why it failed.
        detail: String,
    },
    /// The warm-up batch showed the model is unusable.
    #[error("{0}")]
    WarmUp(String),
}

/// The result of one plugin op's self-check (run at load time, reported in logs and GetModelInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCheck {
    /// Registered op name, e.g. `MyPlugin::CnnlRoll`.
    pub op: String,
    /// Short name used in logs: `roll`, `relu`.
    pub short_name: String,
    /// Whether the check passed.
    pub ok: bool,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// Static description of an engine instance: what one `infer` call accepts and returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineDescription {
    /// Backend of the instance.
    pub backend: BackendKind,
    /// Input channels (3 for every model the server can feed: preprocessing makes RGB).
    pub channels: usize,
    /// Square input side in pixels (e.g. 256).
    pub input_size: usize,
    /// Number of output classes.
    pub num_classes: usize,
    /// Largest batch one `infer` call accepts.
    pub max_batch: usize,
    /// Free-form details (threads, device id, ...).
    pub detail: String,
}

impl EngineDescription {
    /// Values one input image has: `channels · input_size · input_size` (NCHW f32).
    pub fn image_len(&self) -> usize {
        self.channels * self.input_size * self.input_size
    }

    /// The argument check every backend runs before touching its buffers: `InvalidInput` (never a
    /// panic) unless `1 <= batch <= max_batch`, `input.len() == batch · image_len()` and
    /// `logits.len() == batch · num_classes`.
    pub fn check_infer_args(
        &self,
        input: &[f32],
        batch: usize,
        logits: &[f32],
    ) -> Result<(), EngineError> {
        let per_image = self.image_len();
        if batch == 0 || batch > self.max_batch {
            return Err(EngineError::InvalidInput(format!(
                "batch {batch} is outside 1..={}",
                self.max_batch
            )));
        }
        if input.len() != batch * per_image {
            return Err(EngineError::InvalidInput(format!(
                "input has {} values, a batch of {batch} images of {per_image} values needs {}",
                input.len(),
                batch * per_image
            )));
        }
        if logits.len() != batch * self.num_classes {
            return Err(EngineError::InvalidInput(format!(
                "logits buffer has {} values, a batch of {batch} with {} classes needs {}",
                logits.len(),
                self.num_classes,
                batch * self.num_classes
            )));
        }
        Ok(())
    }
}

/// One execution instance: the CPU analogue of a MagicMind `IContext` + `cnrtQueue`.
///
/// Instances are owned by the [`crate::scheduler`] pool, which hands each request batch to a free one.
pub trait Engine: Send {
    /// Static description.
    fn describe(&self) -> EngineDescription;

    /// Run the model on `batch` images.
    ///
    /// `input` is NCHW f32, normalized, `batch * describe().image_len()` values.
    /// `logits` receives `batch * num_classes` values, row-major.
    fn infer(&mut self, input: &[f32], batch: usize, logits: &mut [f32])
        -> Result<(), EngineError>;

    /// Run `task(i)` for every `i` in `0..n`, in any order, on the threads this engine computes
    /// on, and return when all have run. The scheduler prepares a batch's inputs this way (decodes
    /// its images) right before [`Self::infer`] when the backend
    /// [computes on the host's cores](BackendKind::computes_on_host_cores). The default runs them
    /// one after another on the calling thread.
    fn run_on_engine_threads(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..n).for_each(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Batch sizes one fake instance was asked to run, in order.
    type Seen = Arc<Mutex<Vec<usize>>>;

    /// Records the batch sizes it is asked to run; `nan_at` makes that batch size return NaN.
    struct FakeEngine {
        backend: BackendKind,
        max_batch: usize,
        seen: Seen,
        nan_at: Option<usize>,
    }

    impl Engine for FakeEngine {
        fn describe(&self) -> EngineDescription {
            EngineDescription {
                backend: self.backend,
                channels: 3,
                input_size: 2,
                num_classes: 5,
                max_batch: self.max_batch,
                detail: String::new(),
            }
        }

        fn infer(
            &mut self,
            input: &[f32],
            batch: usize,
            logits: &mut [f32],
        ) -> Result<(), EngineError> {
            self.describe().check_infer_args(input, batch, logits)?;
            self.seen.lock().unwrap().push(batch);
            let v = if self.nan_at == Some(batch) {
                f32::NAN
            } else {
                0.5
            };
            logits.fill(v);
            Ok(())
        }
    }

    fn pool(
        backend: BackendKind,
        max_batch: usize,
        n: usize,
        nan_at: Option<usize>,
    ) -> (Vec<Box<dyn Engine>>, Vec<Seen>) {
        let seen: Vec<_> = (0..n).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let engines = seen
            .iter()
            .map(|s| {
                Box::new(FakeEngine {
                    backend,
                    max_batch,
                    seen: Arc::clone(s),
                    nan_at,
                }) as Box<dyn Engine>
            })
            .collect();
        (engines, seen)
    }

    #[test]
    fn mlu_instances_warm_up_every_batch_size() {
        let (mut engines, seen) = pool(BackendKind::Mlu, 4, 2, None);
        warm_up(&mut engines).unwrap();
        for s in &seen {
            assert_eq!(*s.lock().unwrap(), vec![1, 2, 3, 4]);
        }
    }

    #[test]
    fn cpu_instances_warm_up_batch_one_only() {
        let (mut engines, seen) = pool(BackendKind::Cpu, 8, 3, None);
        warm_up(&mut engines).unwrap();
        for s in &seen {
            assert_eq!(*s.lock().unwrap(), vec![1]);
        }
    }

    #[test]
    fn non_finite_logits_at_any_batch_size_fail_the_warm_up() {
        let (mut engines, _) = pool(BackendKind::Mlu, 3, 1, Some(3));
        let err = warm_up(&mut engines).unwrap_err();
        assert!(err.to_string().contains("batch 3"), "{err}");
    }
}
