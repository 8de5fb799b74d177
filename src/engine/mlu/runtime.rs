//! The seam between the MLU pool logic and the MagicMind runtime.
//!
//! [`MluRuntime`] is implemented by the real FFI runtime (`ffi::FfiRuntime`, over the C++ shim
//! `mm_shim.h`, feature `mlu` + Neuware SDK) and by in-process fakes in the tests, so that slot
//! creation order, teardown order, concurrent slot use and every error path of the pool can be
//! tested on machines without an MLU.
//!
//! The methods map one-to-one onto the MagicMind / CNRT steps of the official samples:
//! `dlopen(plugin)` → `cnrtSetDevice` → `CreateIModel` + `DeserializeFromFile` → `CreateIEngine` →
//! per slot `CreateIContext` + `cnrtQueueCreate` + tensors + buffers; teardown in reverse.

use std::path::Path;

/// Element type of a model tensor, as the serialized model declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorDataType {
    /// `magicmind::DataType::FLOAT32`.
    Float32,
    /// `magicmind::DataType::FLOAT16`.
    Float16,
    /// `magicmind::DataType::INT32`.
    Int32,
    /// `magicmind::DataType::INT64`.
    Int64,
    /// Any other type.
    Other,
}

/// A model input or output: name, element type and dimensions (`-1` = mutable dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name in the model.
    pub name: String,
    /// Element type.
    pub data_type: TensorDataType,
    /// Dimensions; `-1` marks a dimension that is only known at run time.
    pub dims: Vec<i64>,
}

/// The inputs and outputs of a deserialized model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIo {
    /// Model inputs, in order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs, in order.
    pub outputs: Vec<TensorSpec>,
}

/// What one slot (IContext + queue + buffers) is created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    /// MLU the slot runs on (already current on the calling thread).
    pub device_id: i32,
    /// Batch the buffers are sized for; every inference uses a batch ≤ this.
    pub max_batch: usize,
    /// Per-image input dimensions `[C, H, W]`.
    pub sample_dims: [i64; 3],
}

/// What the runtime learned while creating a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Output dimensions that `InferOutputShape` reported for an input of `max_batch` images.
    pub output_dims: Vec<i64>,
}

/// Result of a plugin library's device self-test for one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTestOutcome {
    /// The op ran on the device and matched the host reference.
    Passed(String),
    /// The op ran but did not match, or a device call failed.
    Failed(String),
    /// The library has no self-test entry point, or does not know this op.
    NotAvailable,
}

/// Which layer an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// A CNRT call (device, queue, memory) failed.
    Device,
    /// A MagicMind call failed (deserialize, engine, context, enqueue).
    MagicMind,
    /// A plugin library could not be loaded.
    Library,
    /// The caller passed something the runtime cannot take.
    InvalidArgument,
    /// Anything else (C++ exception, broken invariant).
    Internal,
}

/// An error reported by an [`MluRuntime`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    /// Which layer failed.
    pub kind: RuntimeErrorKind,
    /// What failed, with the runtime's own message.
    pub message: String,
}

impl RuntimeError {
    /// An error of `kind` with `message`.
    pub fn new(kind: RuntimeErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The MagicMind runtime as the pool uses it. Handles are owned values: the pool passes each one
/// back exactly once to the matching `destroy_*` / `close_*` call, in the documented order
/// (slots, then the engine, then the model, then the plugin libraries, in reverse load order).
pub trait MluRuntime: Send + Sync + 'static {
    /// A loaded plugin library (`dlopen` handle).
    type PluginLibrary: Send + Sync + 'static;
    /// A deserialized model (`magicmind::IModel`).
    type Model: Send + Sync + 'static;
    /// The engine of a model (`magicmind::IEngine`), shared by all slots.
    type Engine: Send + Sync + 'static;
    /// One execution slot: `IContext` + `cnrtQueue_t` + tensors + device and pinned host buffers.
    type Slot: Send + 'static;

    /// `dlopen` a MagicMind plugin library (registers its ops). Must precede [`Self::deserialize_model`].
    fn open_plugin_library(&self, path: &Path) -> Result<Self::PluginLibrary, RuntimeError>;
    /// Run the library's device self-test of `op` (current device of the calling thread).
    fn plugin_self_test(&self, library: &Self::PluginLibrary, op: &str) -> SelfTestOutcome;
    /// `dlclose` a plugin library. Called only after the model is destroyed.
    fn close_plugin_library(&self, library: Self::PluginLibrary);

    /// Number of MLUs visible to this process.
    fn device_count(&self) -> Result<u32, RuntimeError>;
    /// `cnrtSetDevice` on the calling thread.
    fn set_device(&self, device_id: i32) -> Result<(), RuntimeError>;

    /// `CreateIModel` + `DeserializeFromFile`.
    fn deserialize_model(&self, path: &Path) -> Result<Self::Model, RuntimeError>;
    /// Inputs and outputs the model declares.
    fn model_info(&self, model: &Self::Model) -> Result<ModelIo, RuntimeError>;
    /// `IModel::Destroy`.
    fn destroy_model(&self, model: Self::Model);

    /// `IModel::CreateIEngine`.
    fn create_engine(&self, model: &Self::Model) -> Result<Self::Engine, RuntimeError>;
    /// `IEngine::Destroy`. Called only after every slot is destroyed.
    fn destroy_engine(&self, engine: Self::Engine);

    /// Create one slot and size its buffers for `config.max_batch` images.
    fn create_slot(
        &self,
        engine: &Self::Engine,
        config: &SlotConfig,
    ) -> Result<(Self::Slot, SlotInfo), RuntimeError>;
    /// One inference on `slot`: `input` has shape `input_dims` (NCHW f32), `output` receives the
    /// whole output tensor. The slot's device is current on the calling thread.
    fn infer(
        &self,
        slot: &mut Self::Slot,
        input: &[f32],
        input_dims: [i64; 4],
        output: &mut [f32],
    ) -> Result<(), RuntimeError>;
    /// Destroy a slot (tensors, context, queue, buffers).
    fn destroy_slot(&self, slot: Self::Slot);
}
