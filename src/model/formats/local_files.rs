//! `--model PATH` on the local disk: a checkpoint file (official, timm or Hugging Face key names;
//! a `.safetensors` written by `swin-serve convert` carries its configuration), a Hugging Face
//! model directory (`config.json` with `model_type`, `model.safetensors` or `pytorch_model.bin`,
//! sharded through `*.index.json`, `preprocessor_config.json`), a timm hub directory (`config.json`
//! with `architecture` and `pretrained_cfg`), or a directory holding one checkpoint file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::declared_config::settle;
use super::key_layout::{to_official, KeyLayout};
use super::{hugging_face, timm};
use crate::model::checkpoint::{read_checkpoint, safetensors_metadata};
use crate::model::config_json::{
    config_from_json, preprocessing_from_json, METADATA_CONFIG_KEY, METADATA_FORMAT,
    METADATA_FORMAT_KEY, METADATA_LABELS_KEY, METADATA_PREPROCESSING_KEY,
};
use crate::model::model_dir::{model_file_in, CHECKPOINT_EXTENSIONS};
use crate::model::{
    CheckpointMetadata, ConfigHints, ModelError, PreprocessingSpec, SwinConfig, Tensor, Weights,
};

/// Largest JSON file (config, preprocessor config, shard index) read: 16 MiB.
const MAX_JSON_BYTES: u64 = 16 << 20;
/// Most shards an index may name.
const MAX_SHARDS: usize = 4096;

fn format_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Read and parse a JSON file of at most [`MAX_JSON_BYTES`].
fn read_json(path: &Path) -> Result<Value, ModelError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut text = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(format_error(path, "larger than 16 MiB: not a config file"));
    }
    serde_json::from_slice(&text).map_err(|e| format_error(path, format!("not valid JSON: {e}")))
}

/// Load the model at `path` (file or directory) into the official layout, with its configuration
/// (declared by its files, else inferred from the tensors; `hints` override either) and what its
/// files say about preprocessing and labels.
pub fn load_local(path: &Path, hints: &ConfigHints) -> Result<(Weights, SwinConfig), ModelError> {
    if let Some(yaml) = &hints.yacs_config {
        return load_with_yacs(path, yaml, hints);
    }
    if path.is_dir() && path.join("config.json").is_file() {
        return load_library_dir(path, hints);
    }
    let file = if path.is_dir() {
        model_file_in(path, &CHECKPOINT_EXTENSIONS)
            .map_err(|e| format_error(path, e.to_string()))?
    } else {
        path.to_path_buf()
    };
    load_file(&file, hints)
}

/// `path` (a file, or a directory holding one) with the architecture `--config FILE.yaml` declares.
fn load_with_yacs(
    path: &Path,
    yaml: &Path,
    hints: &ConfigHints,
) -> Result<(Weights, SwinConfig), ModelError> {
    let declared = crate::model::yacs_config::config_from_yacs(yaml)?;
    let file = if path.is_dir() {
        model_file_in(path, &CHECKPOINT_EXTENSIONS)
            .map_err(|e| format_error(path, e.to_string()))?
    } else {
        path.to_path_buf()
    };
    let mut weights = Weights::load(&file)?;
    let (layout, tensors) =
        to_official(std::mem::take(&mut weights.tensors), Some(declared.version))
            .map_err(|m| format_error(&file, m))?;
    weights.tensors = tensors;
    let config = settle(
        &weights,
        declared,
        hints,
        &format!("--config {}", yaml.display()),
    )?;
    weights.metadata.preprocessing = crate::model::yacs_config::preprocessing_from_yacs(yaml)?;
    weights.metadata.format = format!(
        "{} checkpoint ({}) with the yacs config {}",
        layout.describe(),
        file_kind(&file),
        yaml.display()
    );
    Ok((weights, config))
}

/// One checkpoint file.
fn load_file(path: &Path, hints: &ConfigHints) -> Result<(Weights, SwinConfig), ModelError> {
    let meta = safetensors_metadata(path)?;
    let mut weights = Weights::load(path)?;
    if let Some(meta) =
        meta.filter(|m| m.get(METADATA_FORMAT_KEY).map(String::as_str) == Some(METADATA_FORMAT))
    {
        return load_converted(weights, &meta, hints, path);
    }
    let (layout, tensors) = to_official(std::mem::take(&mut weights.tensors), None)
        .map_err(|m| format_error(path, m))?;
    weights.tensors = tensors;
    let config = weights.infer_config(hints)?;
    weights.metadata.format = format!(
        "{} {} checkpoint ({})",
        layout.describe(),
        match config.version {
            crate::model::SwinVersion::V1 => "Swin",
            crate::model::SwinVersion::V2 => "SwinV2",
        },
        file_kind(path)
    );
    Ok((weights, config))
}

fn file_kind(path: &Path) -> String {
    path.extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_else(|| "file".into())
}

/// A `.safetensors` written by `swin-serve convert`: official keys, the configuration, labels and
/// preprocessing in its metadata.
fn load_converted(
    mut weights: Weights,
    meta: &std::collections::HashMap<String, String>,
    hints: &ConfigHints,
    path: &Path,
) -> Result<(Weights, SwinConfig), ModelError> {
    let parse = |key: &str| -> Result<Option<Value>, ModelError> {
        meta.get(key)
            .map(|text| {
                serde_json::from_str(text).map_err(|e| {
                    format_error(path, format!("metadata `{key}` is not valid JSON: {e}"))
                })
            })
            .transpose()
    };
    let config = parse(METADATA_CONFIG_KEY)?.ok_or_else(|| {
        format_error(path, "a swin-serve file without a `config` in its metadata")
    })?;
    let declared = config_from_json(&config).map_err(|m| format_error(path, m))?;
    if let Some(spec) = parse(METADATA_PREPROCESSING_KEY)? {
        weights.metadata.preprocessing =
            preprocessing_from_json(&spec).map_err(|m| format_error(path, m))?;
    }
    if let Some(labels) = parse(METADATA_LABELS_KEY)? {
        weights.metadata.labels = Some(
            serde_json::from_value(labels)
                .map_err(|e| format_error(path, format!("metadata `labels`: {e}")))?,
        );
    }
    let config = settle(&weights, declared, hints, "the file's metadata")?;
    weights.metadata.format = "swin-serve converted .safetensors".into();
    Ok((weights, config))
}

/// The weight files of a library directory: `model.safetensors`, else its shard index, else
/// `pytorch_model.bin`, else its shard index.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    for (single, index) in [
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ] {
        if dir.join(single).is_file() {
            return Ok(vec![dir.join(single)]);
        }
        let index_path = dir.join(index);
        if index_path.is_file() {
            let index = read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| format_error(&index_path, "no `weight_map` object"))?;
            let mut shards = BTreeSet::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    format_error(
                        &index_path,
                        format!("the shard of `{tensor}` is not a file name"),
                    )
                })?;
                // Shards live beside the index: no paths.
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(format_error(
                        &index_path,
                        format!("shard {file:?} is not a plain file name"),
                    ));
                }
                shards.insert(file.to_string());
            }
            if shards.is_empty() || shards.len() > MAX_SHARDS {
                return Err(format_error(
                    &index_path,
                    format!("names {} shards (1 to {MAX_SHARDS} expected)", shards.len()),
                ));
            }
            return Ok(shards.into_iter().map(|f| dir.join(f)).collect());
        }
    }
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| ModelError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found.truncate(12);
    Err(format_error(
        dir,
        format!(
            "config.json is there but no model.safetensors, pytorch_model.bin or shard index \
             (found: {})",
            found.join(", ")
        ),
    ))
}

/// Every tensor of `files`, merged; a name in two shards is an error.
fn read_tensors(files: &[PathBuf]) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let mut all = BTreeMap::new();
    for file in files {
        let (_, tensors) = read_checkpoint(file)?;
        for (name, tensor) in tensors {
            if all.insert(name.clone(), tensor).is_some() {
                return Err(format_error(
                    file,
                    format!("tensor `{name}` is in two shards"),
                ));
            }
        }
    }
    Ok(all)
}

/// A Hugging Face or timm directory (told apart by its `config.json`).
fn load_library_dir(dir: &Path, hints: &ConfigHints) -> Result<(Weights, SwinConfig), ModelError> {
    let config_path = dir.join("config.json");
    let config = read_json(&config_path)?;
    let hugging_face = config.get("model_type").is_some();
    if !hugging_face && config.get("architecture").is_none() {
        return Err(format_error(
            &config_path,
            "neither a Hugging Face config (`model_type`) nor a timm one (`architecture`)",
        ));
    }
    // The declaration first: an unsupported model type is refused before any weights are read.
    let declared_version = if hugging_face {
        Some(hugging_face::version_of(&config).map_err(|m| format_error(&config_path, m))?)
    } else {
        None
    };
    let timm_config = if hugging_face {
        None
    } else {
        Some(timm::config_from_timm_json(&config).map_err(|m| format_error(&config_path, m))?)
    };
    let files = weight_files(dir)?;
    let tensors = read_tensors(&files)?;
    let (layout, tensors) =
        to_official(tensors, declared_version).map_err(|m| format_error(&files[0], m))?;
    let mut weights = Weights {
        tensors,
        source: dir.display().to_string(),
        metadata: CheckpointMetadata::default(),
    };
    let declared = match timm_config {
        Some(c) => c,
        None => {
            let head_rows = weights.tensors.get("head.weight").map(|t| t.shape[0]);
            hugging_face::config_from_hf_json(&config, head_rows)
                .map_err(|m| format_error(&config_path, m))?
        }
    };
    let config_swin = settle(&weights, declared, hints, "config.json")?;
    let weights_name = files[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if hugging_face {
        let class = config
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or(match config_swin.version {
                crate::model::SwinVersion::V1 => "SwinForImageClassification",
                crate::model::SwinVersion::V2 => "Swinv2ForImageClassification",
            });
        weights.metadata.format = format!(
            "Hugging Face {} directory ({weights_name}{})",
            class.chars().take(60).collect::<String>(),
            if files.len() > 1 {
                format!(", {} shards", files.len())
            } else {
                String::new()
            }
        );
        weights.metadata.labels =
            hugging_face::labels(&config).map_err(|m| format_error(&config_path, m))?;
        let processor = dir.join("preprocessor_config.json");
        weights.metadata.preprocessing = if processor.is_file() {
            PreprocessingSpec::HuggingFace(read_json(&processor)?)
        } else {
            tracing::warn!(
                dir = %dir.display(),
                "no preprocessor_config.json: using the official Swin eval transform"
            );
            PreprocessingSpec::Official
        };
    } else {
        weights.metadata.format = format!(
            "timm hub directory ({}, {weights_name}, {} layout)",
            config
                .get("architecture")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(80)
                .collect::<String>(),
            layout.describe()
        );
        weights.metadata.labels =
            timm::label_names(&config).map_err(|m| format_error(&config_path, m))?;
        weights.metadata.preprocessing = match config.get("pretrained_cfg") {
            Some(cfg) => PreprocessingSpec::Timm(cfg.clone()),
            None => PreprocessingSpec::Official,
        };
    }
    if layout == KeyLayout::HuggingFace && !hugging_face {
        tracing::warn!("a timm directory whose weights use Hugging Face names");
    }
    Ok((weights, config_swin))
}
