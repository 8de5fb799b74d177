//! Model weights keyed by the official state-dict names
//! (e.g. `layers.0.blocks.1.attn.qkv.weight`), as f32.
//!
//! Sources: [`Weights::load`] (official `.pth` or `.safetensors`, see [`super::checkpoint`] for
//! the formats and conversions) and [`Weights::random`] (deterministic, see [`super::random`]).
//! [`Weights::check`] checks every tensor a [`SwinConfig`] implies; [`Weights::infer_config`]
//! (in [`super::config_from_shapes`]) recovers the configuration from the tensor shapes first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::keys::ModulePath;
use super::layout::{is_buffer_name, official_state_dict, EntryKind};
use super::{ModelError, SwinConfig, Tensor};

/// All tensors of a checkpoint, by official key, plus where they came from.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    /// Tensors by state-dict key.
    pub tensors: BTreeMap<String, Tensor>,
    /// Human description of the source (file path, or `random(seed=N)`).
    pub source: String,
    /// Format, preprocessing and labels as the source's files give them.
    pub metadata: super::CheckpointMetadata,
}

impl Weights {
    /// Load an official `.pth` (zip + pickle; `{'model': state_dict, ...}` or a bare state dict)
    /// or a `.safetensors` file (format detected from content, not extension).
    ///
    /// The state dict is taken from the top-level key `model`, else `state_dict`, else the root;
    /// a `module.` prefix is stripped; every tensor is converted to f32 (integer buffers such as
    /// `relative_position_index` included); non-tensor entries are ignored. Errors name the file
    /// and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let start = Instant::now();
        let (format, tensors) = super::checkpoint::read_checkpoint(path)?;
        let weights = Self {
            tensors,
            source: path.display().to_string(),
            metadata: Default::default(),
        };
        tracing::info!(
            path = %path.display(),
            %format,
            tensors = weights.tensors.len(),
            parameters = weights.num_parameters(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "loaded checkpoint"
        );
        Ok(weights)
    }

    /// Deterministic random weights for `config`: every parameter the official model has, named and
    /// shaped as in its state dict (buffers, which the engines derive from the configuration, are
    /// left out). The same seed gives the same bits on any machine. `source` is `random(seed=N)`.
    pub fn random(config: &SwinConfig, seed: u64) -> Self {
        Self {
            tensors: super::random::random_parameters(config, seed),
            source: format!("random(seed={seed})"),
            metadata: Default::default(),
        }
    }

    /// Number of learned values (buffers such as `relative_position_index` not counted).
    pub fn num_parameters(&self) -> usize {
        self.tensors
            .iter()
            .filter(|(name, _)| !is_buffer_name(name))
            .map(|(_, t)| t.data.len())
            .sum()
    }

    /// Check that every tensor `config` implies is present with the right shape (buffers only when
    /// present: they are optional). The error names the first missing or mis-shaped tensor.
    /// Tensors the configuration does not use are ignored (logged as a warning).
    pub fn check(&self, config: &SwinConfig) -> Result<(), ModelError> {
        config.validate()?;
        let layout = official_state_dict(config);
        let known: std::collections::HashSet<&str> =
            layout.iter().map(|e| e.name.as_str()).collect();
        let unexpected: Vec<&str> = self
            .tensors
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if !unexpected.is_empty() {
            tracing::warn!(
                count = unexpected.len(),
                first = ?&unexpected[..unexpected.len().min(5)],
                source = %self.source,
                "ignoring tensors the model configuration does not use"
            );
        }
        for entry in layout {
            match entry.kind {
                EntryKind::Parameter => {
                    self.get(&entry.name, &entry.shape)?;
                }
                EntryKind::Buffer if self.tensors.contains_key(&entry.name) => {
                    self.get(&entry.name, &entry.shape)?;
                }
                EntryKind::Buffer => {}
            }
        }
        Ok(())
    }

    /// The tensor `name`, checked to have `shape`; the error names the tensor.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, ModelError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                expected: shape.to_vec(),
            })?;
        if t.shape != shape {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                actual: t.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        Ok(t)
    }

    /// A view of every tensor, from the root module (see [`WeightsView::pp`]).
    pub fn view(&self) -> WeightsView<'_> {
        WeightsView {
            weights: self,
            path: ModulePath::root(),
        }
    }
}

/// The tensors under one module path: candle's `VarBuilder::pp` for a state dict. A module's loader
/// receives the view of its own path and names only its leaves (`view.get("weight", &[o, i])`).
#[derive(Debug, Clone)]
pub struct WeightsView<'a> {
    weights: &'a Weights,
    path: ModulePath,
}

impl<'a> WeightsView<'a> {
    /// The view of the child module `name` (a submodule name or a `ModuleList` index).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            weights: self.weights,
            path: self.path.pp(name),
        }
    }

    /// The module path of this view.
    pub fn path(&self) -> &ModulePath {
        &self.path
    }

    /// The tensor `leaf` of this module, checked to have `shape`; the error names the full key.
    pub fn get(&self, leaf: &str, shape: &[usize]) -> Result<&'a Tensor, ModelError> {
        self.weights.get(&self.path.key(leaf), shape)
    }

    /// The tensor `leaf` of this module, whatever its shape, if present.
    pub fn tensor(&self, leaf: &str) -> Option<&'a Tensor> {
        self.weights.tensors.get(&self.path.key(leaf))
    }

    /// Where the weights came from.
    pub fn source(&self) -> &'a str {
        &self.weights.source
    }
}
