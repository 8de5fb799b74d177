//! Finding the checkpoint a `--model` directory holds: the one file with a checkpoint extension
//! (how `--model /mnt/models` finds what KServe's storage initializer put there), or the directory
//! itself when it is a Hugging Face or timm model directory (it has a `config.json`).

use std::path::{Path, PathBuf};

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
    /// `hf://…` that names no Hub repository.
    #[error("{0}")]
    HubName(String),
    /// Several candidates.
    #[error("the model directory {path} holds several {wanted} files ({found}): pass the one to serve as --model")]
    Several {
        path: PathBuf,
        wanted: String,
        found: String,
    },
}

/// What `--model PATH` names for the CPU backend: `path` itself when it is a file or a library
/// directory (with a `config.json`), else the one checkpoint file in it ([`model_file_in`]).
pub fn model_path_in(path: &Path) -> Result<PathBuf, ModelPathError> {
    if path.is_dir() && path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    model_file_in(path, &CHECKPOINT_EXTENSIONS)
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
mod tests {
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
