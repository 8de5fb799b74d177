//! What building a backend yields: [`Engines`] (the instances) and their [`BackendInfo`], the same
//! shape for every backend.

use super::backend_kind::BackendKind;
use super::instance::{Engine, EngineDescription};
use super::plugin_check::PluginCheck;

/// Default number of engine instances (`--instances`).
pub const DEFAULT_INSTANCES: usize = 1;

/// Default largest batch an instance runs at once (`--max-batch`).
pub const DEFAULT_MAX_BATCH: usize = 8;

/// What the built model is, independent of the wire format (the server turns it into `ModelInfo`).
#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// Backend that runs it.
    pub kind: BackendKind,
    /// Model name (`swinv2_…` from the configuration, or the MagicMind file stem).
    pub model_name: String,
    /// Architecture, when the backend knows it (CPU: from the checkpoint; MLU: opaque model).
    pub config: Option<crate::model::SwinConfig>,
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
    /// Format, preprocessing and labels the checkpoint's files give (default for an opaque model).
    pub checkpoint: crate::model::CheckpointMetadata,
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
