//! The loaded model the services answer from, and the slot it is put in once loaded.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::postprocess::Labels;
use crate::preprocess::PreprocessConfig;
use crate::proto;
use crate::scheduler::EnginePool;
use crate::server::statistics::InferenceStats;

/// A loaded, warmed-up model ready to serve.
pub struct ServingModel {
    /// The engine instances and their queue.
    pub pool: EnginePool,
    /// Decode limits and the eval transform.
    pub preprocess: PreprocessConfig,
    /// Class names.
    pub labels: Labels,
    /// What GetModelInfo answers (also gives the model name and class count).
    pub info: proto::ModelInfo,
    /// What the model has done (OIP ModelStatistics).
    pub stats: InferenceStats,
    /// The pool's dynamic-batching delay (`--max-queue-delay`; OIP ModelConfig reports it).
    pub max_queue_delay: Duration,
}

/// Why the model loader given to [`crate::server::serve`] could not produce a [`ServingModel`].
pub type ModelLoadError = Box<dyn std::error::Error + Send + Sync>;

/// The model slot shared by the services and the loader: empty until loading is done.
pub type ModelSlot = Arc<OnceLock<Arc<ServingModel>>>;
