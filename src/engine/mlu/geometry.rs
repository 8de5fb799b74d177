//! The model's input/output geometry, validated once at load time: one `[B, 3, S, S]` FLOAT32
//! input (batch `B` fixed or mutable, `S` square) and one FLOAT32 output; from it, the largest batch
//! `infer` accepts, the batch the slot buffers are sized for, whether inputs are padded to a fixed
//! model batch, and (checked against each slot's inferred output shape) the number of classes.

use super::runtime::{ModelIo, TensorDataType};

/// Input channels: [`Geometry::from_model`] accepts only `[B, 3, S, S]` models (or a mutable
/// channel dim, fed 3).
pub(super) const CHANNELS: usize = 3;

/// Largest batch used for a model with a mutable batch dimension when `max_batch` is 0 (the
/// `--max-batch` default of `models/generate_magicmind.py`, the top of its `dim_range`).
pub const DEFAULT_MUTABLE_MAX_BATCH: usize = 32;

/// Input side assumed when the model leaves H and W mutable (the lab's SwinV2 is 256×256).
pub const DEFAULT_INPUT_SIZE: usize = 256;

/// Input/output geometry of the model, as validated at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Geometry {
    /// Square input side.
    pub(super) input_size: usize,
    /// `Some(n)` when the model's batch dimension is fixed at `n` (inputs are padded to it).
    pub(super) fixed_batch: Option<usize>,
    /// Largest batch `infer` accepts.
    pub(super) max_batch: usize,
    /// Batch the slot buffers are sized for.
    pub(super) slot_batch: usize,
    /// Output classes (known after the first slot is created).
    pub(super) num_classes: usize,
}

impl Geometry {
    pub(super) fn from_model(info: &ModelIo, requested_max_batch: usize) -> Result<Self, String> {
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
    pub(super) fn classes_from_slot(
        &self,
        output_dims: &[i64],
        info: &ModelIo,
    ) -> Result<usize, String> {
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
