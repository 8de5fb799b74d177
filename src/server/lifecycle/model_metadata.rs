//! What the checkpoint's files say about serving it, made into what is served: the eval
//! transform ([`serving_preprocess`]: the source's pipeline, then the `serve` flags) and the class
//! names ([`serving_labels`]: `--labels FILE`, else the checkpoint's, else ImageNet-1k for 1000
//! classes, else generic names).

use std::path::Path;

use crate::model::PreprocessingSpec;
use crate::postprocess::Labels;
use crate::preprocess::{PreprocessConfig, PreprocessOverrides};
use crate::server::log_text::untrusted;
use crate::server::serving_model::ModelLoadError;

/// [`ServingLabels::source`] of the checkpoint's own names.
pub const LABELS_FROM_CHECKPOINT: &str = "checkpoint";
/// [`ServingLabels::source`] of the embedded ImageNet-1k names.
pub const LABELS_IMAGENET: &str = "imagenet-1k";
/// [`ServingLabels::source`] of `class_<id>` names.
pub const LABELS_GENERIC: &str = "generic";

/// The eval transform a model of input side `img_size` is served with: the one `spec` (the
/// checkpoint's source) prescribes, with `overrides` (the flags) applied. Refuses a description
/// the source gives that cannot be served (naming the file and key), flags that cannot be
/// applied, and a transform whose output is not `img_size × img_size` (naming both sizes).
pub fn serving_preprocess(
    spec: &PreprocessingSpec,
    img_size: u32,
    overrides: &PreprocessOverrides,
) -> Result<PreprocessConfig, ModelLoadError> {
    let from_source = match spec {
        PreprocessingSpec::Official => PreprocessConfig::official(img_size),
        PreprocessingSpec::Timm(cfg) => PreprocessConfig::from_timm_pretrained_cfg(cfg)?,
        PreprocessingSpec::HuggingFace(cfg) => PreprocessConfig::from_hf_preprocessor(cfg)?,
    };
    let cfg = overrides.apply(from_source)?;
    if cfg.crop_size != img_size {
        return Err(format!(
            "the preprocessing ({}) produces {c}x{c} images, but the model takes {img_size}x{img_size}",
            cfg.source,
            c = cfg.crop_size
        )
        .into());
    }
    Ok(cfg)
}

/// Class names and where they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingLabels {
    /// The names, one per class.
    pub labels: Labels,
    /// `--labels FILE`, [`LABELS_FROM_CHECKPOINT`], [`LABELS_IMAGENET`] or [`LABELS_GENERIC`]
    /// (GetModelInfo's `labels_source`).
    pub source: String,
}

/// The class names of a model with `num_classes` outputs: the `--labels` file when given (it
/// must have `num_classes` names), else the checkpoint's own (which must too), else the embedded
/// ImageNet-1k names for 1000 classes, else `class_<id>` with a warning.
pub fn serving_labels(
    file: Option<&Path>,
    checkpoint: Option<&[String]>,
    num_classes: usize,
) -> Result<ServingLabels, ModelLoadError> {
    if let Some(path) = file {
        let labels = Labels::from_file(path)?;
        if labels.len() != num_classes {
            return Err(format!(
                "labels file {} has {} names but the model has {num_classes} classes",
                path.display(),
                labels.len()
            )
            .into());
        }
        return Ok(ServingLabels {
            labels,
            source: format!("--labels {}", path.display()),
        });
    }
    if let Some(names) = checkpoint {
        if names.len() != num_classes {
            return Err(format!(
                "the checkpoint names {} classes but the model has {num_classes}: pass --labels FILE",
                names.len()
            )
            .into());
        }
        return Ok(ServingLabels {
            labels: Labels::from_names(names.to_vec()),
            source: LABELS_FROM_CHECKPOINT.into(),
        });
    }
    let imagenet = Labels::imagenet();
    if imagenet.len() == num_classes {
        return Ok(ServingLabels {
            labels: imagenet,
            source: LABELS_IMAGENET.into(),
        });
    }
    tracing::warn!(
        num_classes,
        "the checkpoint names no classes, the model is not ImageNet-1k and no --labels file was given: labels are class_<id>"
    );
    Ok(ServingLabels {
        labels: Labels::generic(num_classes),
        source: LABELS_GENERIC.into(),
    })
}

/// Logs the transform and the labels in force (at startup).
pub fn log_pipeline(
    preprocess: &PreprocessConfig,
    labels: &ServingLabels,
    checkpoint_format: &str,
) {
    tracing::info!(
        checkpoint_format = %untrusted(checkpoint_format),
        source = %untrusted(&preprocess.source),
        resize_size = preprocess.resize_size,
        crop_size = preprocess.crop_size,
        crop_mode = %preprocess.crop_mode,
        interpolation = %preprocess.interpolation,
        "preprocessing: {}",
        preprocess.describe()
    );
    tracing::info!(
        labels_source = %untrusted(&labels.source),
        classes = labels.labels.len(),
        first = %untrusted(&labels.labels.name(0)),
        "labels"
    );
}

#[cfg(test)]
mod tests;
