//! [`MluOptions`]: what the MLU backend is built from (`--backend mlu --model … --plugin-lib …
//! --device … --instances …`).

use std::path::PathBuf;

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
