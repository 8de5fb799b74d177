//! The MLU backend's errors: every failure of the backend is an [`EngineError::Backend`] of
//! [`BackendKind::Mlu`].

use crate::engine::{BackendKind, EngineError};

/// The backend every error of this module tree names.
pub(super) const BACKEND: BackendKind = BackendKind::Mlu;

/// An [`EngineError::Backend`] of the MLU backend.
pub(super) fn backend_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}
