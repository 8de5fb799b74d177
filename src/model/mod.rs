//! What describes a Swin (V1 or V2) network independent of where it runs: its configuration ([`config`],
//! recovered from a checkpoint by [`config_from_shapes`]), the official state-dict layout
//! ([`layout`]), its weights ([`weights`]: official `.pth` checkpoints read by [`checkpoint`],
//! `.safetensors`, deterministic [`random`] weights) and where they come from ([`source`]: a file,
//! the released checkpoint fetched by [`download`], or random).
//!
//! With the `test-util` feature (and in the crate's own tests), [`pth_writer`] builds `torch.save`
//! files (pickles and their ZIP archives) for tests and the fuzz corpus.

pub mod checkpoint;
pub mod config;
pub mod config_from_shapes;
pub mod config_json;
pub mod download;
mod error;
pub mod formats;
pub mod hub;
pub mod keys;
pub mod layout;
pub mod metadata;
pub mod model_dir;
pub mod official_safetensors;
pub mod random;
pub mod source;
mod tensor;
mod torch;
pub mod weights;
pub mod yacs_config;

pub use config::{SwinConfig, SwinVersion};
pub use config_from_shapes::ConfigHints;
pub use error::ModelError;
pub use metadata::{CheckpointMetadata, PreprocessingSpec};
pub use source::WeightsSource;
pub use tensor::Tensor;
#[cfg(any(test, feature = "test-util"))]
pub use torch::pth_writer;
pub use weights::{Weights, WeightsView};
