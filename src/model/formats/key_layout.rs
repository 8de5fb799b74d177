//! Which library's key names a state dict uses, told from the names alone, and the mapping of any
//! of them into the official ones.

use std::collections::BTreeMap;

use super::hugging_face::hugging_face_to_official;
use super::timm::timm_to_official;
use crate::model::{SwinVersion, Tensor};

/// The naming of a state dict's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// microsoft/Swin-Transformer's (and timm's before its 2023 change).
    Official,
    /// timm since 2023: each `downsample` at the start of the next stage, the head at `head.fc`.
    TimmStaged,
    /// Hugging Face transformers' `Swin(v2)ForImageClassification` / `Swin(v2)Model`.
    HuggingFace,
}

impl KeyLayout {
    /// The layout of `tensors`' keys.
    pub fn detect(tensors: &BTreeMap<String, Tensor>) -> Self {
        let hf = tensors.keys().any(|k| {
            k.starts_with("swin.")
                || k.starts_with("swinv2.")
                || k.starts_with("embeddings.patch_embeddings.")
                || k.contains("encoder.layers.")
        });
        if hf {
            return KeyLayout::HuggingFace;
        }
        // timm's staged layout: `head.fc.*`, or downsamples with none in stage 0 (in the official
        // layout every stage but the last ends with one, so `layers.0.downsample` is there).
        let staged_head = tensors.contains_key("head.fc.weight");
        let downsample_in_first = tensors
            .keys()
            .any(|k| k.starts_with("layers.0.downsample."));
        let any_downsample = tensors.keys().any(|k| k.contains(".downsample."));
        if staged_head || (any_downsample && !downsample_in_first) {
            KeyLayout::TimmStaged
        } else {
            KeyLayout::Official
        }
    }

    /// A short name for logs.
    pub fn describe(self) -> &'static str {
        match self {
            KeyLayout::Official => "official",
            KeyLayout::TimmStaged => "timm",
            KeyLayout::HuggingFace => "Hugging Face",
        }
    }
}

/// `tensors` in the official layout, whatever their [`KeyLayout`]; `version` is needed for the
/// Hugging Face names (V1 and V2 map q/k/v biases differently; detected from the keys when
/// `None`). Returns the layout it came in.
pub fn to_official(
    tensors: BTreeMap<String, Tensor>,
    version: Option<SwinVersion>,
) -> Result<(KeyLayout, BTreeMap<String, Tensor>), String> {
    let layout = KeyLayout::detect(&tensors);
    let mapped = match layout {
        KeyLayout::Official => tensors,
        KeyLayout::TimmStaged => timm_to_official(tensors)?,
        KeyLayout::HuggingFace => hugging_face_to_official(tensors, version)?,
    };
    Ok((layout, mapped))
}
