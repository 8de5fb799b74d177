//! The one error type of the model module.

/// Errors while reading, checking or fetching a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// I/O on a model file.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint we can parse.
    #[error("cannot parse checkpoint {path}: {message}")]
    Format {
        /// File concerned.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A tensor the model needs is absent.
    #[error("checkpoint is missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// Official state-dict key.
        name: String,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Official state-dict key.
        name: String,
        /// Shape in the file.
        actual: Vec<usize>,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// The configuration is inconsistent (given or inferred).
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// Fetching the released checkpoint failed.
    #[error("{0}")]
    Download(String),
}
