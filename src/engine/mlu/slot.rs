//! One engine slot, [`MluEngine`]: an `IContext` with its own `cnrtQueue` and buffers on the
//! model shared by all slots. [`Engine::infer`] makes the slot's device current on the calling
//! thread and pads the batch for models with a fixed one; dropping the slot destroys it before
//! its reference to the shared model (engine, model, plugin libraries) goes.

use std::sync::Arc;

use super::error::{backend_error, BACKEND};
use super::geometry::{Geometry, CHANNELS};
use super::runtime::{MluRuntime, RuntimeError};
use super::shared::Shared;
use crate::engine::{Engine, EngineDescription, EngineError};

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
    /// Slot `index` (0-based) of `instances`, owning `slot`; its staging buffers start empty.
    pub(super) fn new(
        shared: Arc<Shared<R>>,
        slot: R::Slot,
        index: usize,
        instances: usize,
        geometry: Geometry,
    ) -> Self {
        Self {
            shared,
            slot: Some(slot),
            index,
            instances,
            geometry,
            staging_input: Vec::new(),
            staging_output: Vec::new(),
        }
    }

    /// Set once the slot's output shape has given the number of classes.
    pub(super) fn set_num_classes(&mut self, num_classes: usize) {
        self.geometry.num_classes = num_classes;
    }

    /// What one `infer` call takes and returns (`detail` left empty: no allocation per call).
    fn shape(&self) -> EngineDescription {
        EngineDescription {
            backend: BACKEND,
            channels: CHANNELS,
            input_size: self.geometry.input_size,
            num_classes: self.geometry.num_classes,
            max_batch: self.geometry.max_batch,
            // The lab's MagicMind model is built in FP32 (models/README.md).
            precision: crate::engine::Precision::Fp32,
            detail: String::new(),
        }
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
            ..self.shape()
        }
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        let shape = self.shape();
        shape.check_infer_args(input, batch, logits)?;
        let sample_len = shape.image_len();
        let classes = shape.num_classes;
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
