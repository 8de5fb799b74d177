//! Cambricon MLU370 backend through MagicMind (cargo feature `mlu`).
//! OWNER: mlu helper — to be written.
#![allow(missing_docs)]
// TEMPORARY compile stub (lead); replaced by the mlu helper's module at merge.
use std::path::PathBuf;
pub struct MluOptions {
    pub model_path: PathBuf,
    pub plugin_libs: Vec<PathBuf>,
    pub device_id: i32,
    pub instances: usize,
    pub max_batch: usize,
}
pub struct MluEngines {
    pub engines: Vec<Box<dyn crate::engine::Engine>>,
    pub plugin_checks: Vec<crate::engine::PluginCheck>,
    pub input_size: usize,
    pub num_classes: usize,
}
pub fn create_engines(_opts: &MluOptions) -> Result<MluEngines, crate::engine::EngineError> {
    Err(crate::engine::EngineError::Backend {
        backend: "mlu",
        message: "stub".into(),
    })
}
