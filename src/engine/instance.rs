//! The contract of one engine instance: the [`Engine`] trait every backend implements, and the
//! [`EngineDescription`] of what one `infer` call accepts and returns.

use super::backend_kind::BackendKind;
use super::error::EngineError;

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
    /// What the linear layers compute in (FP32 unless `--precision bf16` on the CPU engine).
    pub precision: super::Precision,
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
