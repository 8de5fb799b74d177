//! Inference backends behind one trait: a batch of preprocessed images in, logits out.
//!
//! * [`cpu`]: the native SwinV2 forward pass (default, embedded).
//! * [`mlu`]: Cambricon MLU370 through MagicMind (cargo feature `mlu`).

pub mod cpu;
pub mod mlu;

/// What an engine failed at.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The caller passed a batch the engine cannot take (wrong length, batch 0 or over the maximum).
    #[error("invalid engine input: {0}")]
    InvalidInput(String),
    /// The backend itself failed (device error, runtime error).
    #[error("{backend} engine failed: {message}")]
    Backend {
        /// "cpu" or "mlu".
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
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

/// Static description of an engine instance.
#[derive(Debug, Clone)]
pub struct EngineDescription {
    /// `cpu` or `mlu`.
    pub backend: &'static str,
    /// Square input side in pixels (e.g. 256).
    pub input_size: usize,
    /// Number of output classes.
    pub num_classes: usize,
    /// Largest batch one `infer` call accepts.
    pub max_batch: usize,
    /// Free-form details (threads, device id, ...).
    pub detail: String,
}

/// One execution instance: the CPU analogue of a MagicMind `IContext` + `cnrtQueue`.
///
/// Instances are owned by the [`crate::scheduler`] pool, which hands each request batch to a free one.
pub trait Engine: Send {
    /// Static description.
    fn describe(&self) -> EngineDescription;

    /// Run the model on `batch` images.
    ///
    /// `input` is NCHW f32, normalized, `batch * 3 * input_size * input_size` values.
    /// `logits` receives `batch * num_classes` values, row-major.
    fn infer(&mut self, input: &[f32], batch: usize, logits: &mut [f32])
        -> Result<(), EngineError>;
}

/// The shapes an engine's `infer` accepts; [`InferShape::check`] is the argument check both
/// backends run before touching their buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferShape {
    /// Values per input image (`channels · size · size`).
    pub per_image: usize,
    /// Logits per image.
    pub num_classes: usize,
    /// Largest batch.
    pub max_batch: usize,
}

impl InferShape {
    /// `InvalidInput` (never a panic) unless `1 <= batch <= max_batch`,
    /// `input.len() == batch · per_image` and `logits.len() == batch · num_classes`.
    pub fn check(&self, input: &[f32], batch: usize, logits: &[f32]) -> Result<(), EngineError> {
        if batch == 0 || batch > self.max_batch {
            return Err(EngineError::InvalidInput(format!(
                "batch {batch} is outside 1..={}",
                self.max_batch
            )));
        }
        if input.len() != batch * self.per_image {
            return Err(EngineError::InvalidInput(format!(
                "input has {} values, a batch of {batch} images of {} values needs {}",
                input.len(),
                self.per_image,
                batch * self.per_image
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
