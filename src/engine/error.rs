//! [`EngineError`]: what building or running an engine failed at.

use super::backend_kind::BackendKind;
use crate::model::ModelError;

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
