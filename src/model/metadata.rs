//! What a checkpoint's own files say about serving it besides its tensors: the format it came in,
//! its eval transform as the source states it (kept uninterpreted here: `preprocess` reads it) and
//! its class names.

/// Format, preprocessing and labels of a checkpoint, as its files give them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointMetadata {
    /// The format read, for logs and GetModelInfo (e.g. `official SwinV2 .pth`,
    /// `timm hub directory (swinv2_tiny_window8_256)`, `Hugging Face Swinv2ForImageClassification`);
    /// empty when unknown (random weights).
    pub format: String,
    /// The eval transform the source prescribes.
    pub preprocessing: PreprocessingSpec,
    /// Class names in class-id order, when the source names them (Hugging Face `id2label`, timm
    /// `pretrained_cfg.label_names`).
    pub labels: Option<Vec<String>>,
}

/// The eval transform a checkpoint's source prescribes, uninterpreted.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PreprocessingSpec {
    /// The official Swin eval transform at the model's `img_size` (short side to
    /// `int(256/224·S)`, center crop, bicubic, ImageNet mean/std): official checkpoints, and any
    /// source that states nothing.
    #[default]
    Official,
    /// timm's `pretrained_cfg` object (from a timm hub directory's `config.json`).
    Timm(serde_json::Value),
    /// The contents of a Hugging Face `preprocessor_config.json`.
    HuggingFace(serde_json::Value),
}
