//! Where the weights come from: a local file, the released checkpoint (downloaded into a cache),
//! or deterministic random weights. [`WeightsSource::load`] reads them and settles the
//! configuration; [`WeightsSource::describe`] says where they came from for logs and GetModelInfo.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{download, ConfigHints, ModelError, SwinConfig, Weights};

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
            WeightsSource::File(path) => {
                let weights = Weights::load(path)?;
                let config = weights.infer_config(hints)?;
                (weights, config)
            }
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
            WeightsSource::Random { seed, .. } => format!("random(seed={seed})"),
        }
    }
}

/// Extensions a checkpoint in a model directory may have (CPU backend; the format itself is
/// detected from the content).
pub const CHECKPOINT_EXTENSIONS: [&str; 5] = ["pth", "pt", "bin", "ckpt", "safetensors"];

/// Why `--model` names no usable file.
#[derive(Debug, thiserror::Error)]
pub enum ModelPathError {
    /// The directory cannot be listed.
    #[error("cannot read the model directory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No file with one of the extensions.
    #[error("the model directory {path} holds no {wanted} file (found: {found})")]
    NoneFound {
        path: PathBuf,
        wanted: String,
        found: String,
    },
    /// Several candidates.
    #[error("the model directory {path} holds several {wanted} files ({found}): pass the one to serve as --model")]
    Several {
        path: PathBuf,
        wanted: String,
        found: String,
    },
}

/// `path` itself when it is not a directory; else the one file directly in it whose name ends in
/// `.EXT` for one of `extensions` (hidden files ignored). This is how `--model /mnt/models` finds
/// the checkpoint KServe's storage initializer put there.
pub fn model_file_in(path: &Path, extensions: &[&str]) -> Result<PathBuf, ModelPathError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let read_error = |source| ModelPathError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push((name, entry.path()));
        }
    }
    names.sort();
    let matches = |name: &str| {
        extensions.iter().any(|ext| {
            name.len() > ext.len() + 1 && name.to_ascii_lowercase().ends_with(&format!(".{ext}"))
        })
    };
    let candidates: Vec<&(String, PathBuf)> = names
        .iter()
        .filter(|(name, p)| matches(name) && p.is_file())
        .collect();
    let wanted = extensions
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(" / ");
    let list = |items: Vec<&String>| {
        let mut shown: Vec<String> = items.iter().take(8).map(|s| s.to_string()).collect();
        if items.len() > 8 {
            shown.push(format!("… {} more", items.len() - 8));
        }
        if shown.is_empty() {
            "nothing".into()
        } else {
            shown.join(", ")
        }
    };
    match candidates.as_slice() {
        [(_, file)] => Ok(file.clone()),
        [] => Err(ModelPathError::NoneFound {
            path: path.to_path_buf(),
            wanted,
            found: list(names.iter().map(|(n, _)| n).collect()),
        }),
        several => Err(ModelPathError::Several {
            path: path.to_path_buf(),
            wanted,
            found: list(several.iter().map(|(n, _)| n).collect()),
        }),
    }
}

#[cfg(test)]
mod model_dir_tests {
    use super::*;

    #[test]
    fn a_directory_with_one_checkpoint_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Not a directory: itself, whatever it is.
        assert_eq!(
            model_file_in(&d.join("x.pth"), &CHECKPOINT_EXTENSIONS).unwrap(),
            d.join("x.pth")
        );
        let err = model_file_in(d, &CHECKPOINT_EXTENSIONS).unwrap_err();
        assert!(matches!(err, ModelPathError::NoneFound { .. }), "{err}");
        std::fs::write(d.join("README"), "x").unwrap();
        std::fs::write(d.join(".hidden.pth"), "x").unwrap();
        std::fs::create_dir(d.join("sub.pth")).unwrap();
        let err = model_file_in(d, &CHECKPOINT_EXTENSIONS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("found: README, sub.pth"), "{err}");
        std::fs::write(d.join("swinv2.PTH"), "x").unwrap();
        assert_eq!(
            model_file_in(d, &CHECKPOINT_EXTENSIONS).unwrap(),
            d.join("swinv2.PTH")
        );
        std::fs::write(d.join("b.safetensors"), "x").unwrap();
        let err = model_file_in(d, &CHECKPOINT_EXTENSIONS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("several") && err.contains("b.safetensors, swinv2.PTH"),
            "{err}"
        );
        assert_eq!(
            model_file_in(d, &["safetensors"]).unwrap(),
            d.join("b.safetensors")
        );
    }
}
