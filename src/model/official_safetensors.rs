//! Writing a model in the official layout as `.safetensors`, its configuration, labels and
//! preprocessing in the header's `__metadata__` ([`super::config_json`]): what
//! `swin-serve convert` produces, so that other tools (the MagicMind generation script first) read
//! one format whatever the checkpoint came as.

use std::io::Write as _;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::config_json::safetensors_metadata;
use super::layout::{official_state_dict, EntryKind};
use super::{ModelError, SwinConfig, Weights};

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write every parameter of `config`'s official state dict (buffers left out: readers recompute
/// them) from `weights` to `path` as little-endian f32, atomically (a temporary file beside it,
/// then a rename). Returns the number of tensors written.
pub fn write_official_safetensors(
    weights: &Weights,
    config: &SwinConfig,
    path: &Path,
) -> Result<usize, ModelError> {
    weights.check(config)?;
    let entries: Vec<_> = official_state_dict(config)
        .into_iter()
        .filter(|e| e.kind == EntryKind::Parameter)
        .collect();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|e| {
            let t = weights.get(&e.name, &e.shape)?;
            let data = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((e.name.clone(), e.shape.clone(), data))
        })
        .collect::<Result<_, ModelError>>()?;
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.as_str(), v))
                .map_err(|e| ModelError::Config(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serialized = safetensors::tensor::serialize(
        views,
        Some(safetensors_metadata(config, &weights.metadata)),
    )
    .map_err(|e| ModelError::Config(format!("cannot serialize the tensors: {e}")))?;
    // Beside the destination, so that the rename stays on one file system.
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".partial-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&serialized).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    Ok(bytes.len())
}
