//! Where the weights come from: a local file, the released checkpoint (downloaded into a cache),
//! or deterministic random weights. [`WeightsSource::load`] reads them and settles the
//! configuration; [`WeightsSource::describe`] says where they came from for logs and GetModelInfo.

use std::path::PathBuf;
use std::time::Instant;

use super::hub::{HubRepo, HubSettings};
use super::{download, hub, ConfigHints, ModelError, SwinConfig, Weights};

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightsSource {
    /// A local `.pth` or `.safetensors` file.
    File(PathBuf),
    /// The released checkpoint at `url`, cached in `cache_dir`.
    Download {
        /// Checkpoint URL.
        url: String,
        /// Cache directory.
        cache_dir: PathBuf,
        /// Expected SHA-256 of the file (`--model-sha256`).
        sha256: Option<[u8; 32]>,
    },
    /// A model repository on the Hugging Face Hub (`--model hf://ORG/NAME[@REVISION]`), fetched
    /// into its cache (see [`hub`]).
    Hub {
        /// Repository and revision.
        repo: HubRepo,
        /// Endpoint, token, offline mode and cache, from the environment.
        settings: HubSettings,
    },
    /// Deterministic random weights of the given config (smoke tests, benchmarks).
    Random {
        /// Seed.
        seed: u64,
        /// Architecture.
        config: SwinConfig,
    },
}

impl WeightsSource {
    /// Read the weights and settle the configuration: inferred from the tensor shapes and
    /// completed by `hints` for a checkpoint (every tensor checked), the given one for random
    /// weights. The configuration is validated either way.
    pub fn load(&self, hints: &ConfigHints) -> Result<(Weights, SwinConfig), ModelError> {
        let started = Instant::now();
        let (weights, config) = match self {
            WeightsSource::File(path) => super::formats::load_local(path, hints)?,
            WeightsSource::Download {
                url,
                cache_dir,
                sha256,
            } => {
                let options = download::FetchOptions {
                    sha256: *sha256,
                    ..Default::default()
                };
                // Without a digest the file was verified by loading it: use that load.
                let weights = match download::fetch_verified(url, cache_dir, &options)? {
                    (_, Some(weights)) => weights,
                    (path, None) => Weights::load(&path)?,
                };
                let config = weights.infer_config(hints)?;
                (weights, config)
            }
            WeightsSource::Hub { repo, settings } => {
                let snapshot =
                    hub::fetch_snapshot(repo, settings, &download::FetchOptions::default())?;
                tracing::info!(repo = %repo, commit = %snapshot.commit, dir = %snapshot.dir.display(), "Hugging Face Hub snapshot");
                let (mut weights, config) = super::formats::load_local(&snapshot.dir, hints)?;
                weights.source = format!("{repo} (commit {})", snapshot.commit);
                (weights, config)
            }
            WeightsSource::Random { seed, config } => {
                tracing::warn!(
                    seed,
                    "serving RANDOM weights (--random-weights): predictions are meaningless"
                );
                (Weights::random(config, *seed), config.clone())
            }
        };
        config.validate()?;
        tracing::info!(
            model = %config.name(),
            source = %weights.source,
            seconds = started.elapsed().as_secs_f32(),
            "weights read"
        );
        Ok((weights, config))
    }

    /// The source `--model` names: `hf://ORG/NAME[@REVISION]` (the Hub, settings from the
    /// environment), else a local file or model directory.
    pub fn from_model_arg(model: &std::path::Path) -> Result<Self, ModelPathError> {
        if let Some(repo) = model.to_str().and_then(HubRepo::parse) {
            return Ok(WeightsSource::Hub {
                repo: repo.map_err(ModelPathError::HubName)?,
                settings: HubSettings::from_env(),
            });
        }
        Ok(WeightsSource::File(model_path_in(model)?))
    }

    /// Whether these are deterministic random weights.
    pub fn is_random(&self) -> bool {
        matches!(self, WeightsSource::Random { .. })
    }

    /// Where the weights come from, for logs and GetModelInfo (a URL without its credentials and
    /// query string: see [`download::redact_url`]).
    pub fn describe(&self) -> String {
        match self {
            WeightsSource::File(p) => p.display().to_string(),
            WeightsSource::Download { url, cache_dir, .. } => {
                format!(
                    "{} (cached in {})",
                    download::redact_url(url),
                    cache_dir.display()
                )
            }
            WeightsSource::Hub { repo, settings } => format!(
                "{repo} ({}{}, cached in {})",
                settings.endpoint,
                if settings.offline { ", offline" } else { "" },
                settings.cache_dir.display()
            ),
            WeightsSource::Random { seed, .. } => format!("random(seed={seed})"),
        }
    }
}

pub use super::model_dir::{model_file_in, model_path_in, ModelPathError, CHECKPOINT_EXTENSIONS};
