//! A configuration a checkpoint's files declare (a `config.json`, a yacs yaml, `convert`'s
//! metadata), completed by the command line's hints and checked against the tensors: a field that
//! disagrees with a tensor's shape is an error naming both.

use crate::model::{ConfigHints, ModelError, SwinConfig, SwinVersion, Weights};

/// The tensor (official name) whose shape decides `field`.
fn deciding_tensor(field: &str, version: SwinVersion) -> &'static str {
    match (field, version) {
        ("embed_dim" | "in_chans" | "patch_size", _) => "patch_embed.proj.weight",
        ("depths", _) => "layers.{i}.blocks.{j}.*",
        ("num_heads", SwinVersion::V1) => "layers.{i}.blocks.0.attn.relative_position_bias_table",
        ("num_heads", SwinVersion::V2) => "layers.{i}.blocks.0.attn.logit_scale",
        ("num_classes", _) => "head.weight",
        ("mlp_ratio", _) => "layers.0.blocks.0.mlp.fc1.weight",
        ("qkv_bias", SwinVersion::V1) => "layers.0.blocks.0.attn.qkv.bias",
        ("qkv_bias", SwinVersion::V2) => "layers.0.blocks.0.attn.q_bias",
        ("ape", _) => "absolute_pos_embed",
        ("patch_norm", _) => "patch_embed.norm.weight",
        ("version", _) => "layers.0.blocks.0.attn.logit_scale / relative_position_bias_table",
        _ => "the tensors",
    }
}

/// `declared` (from `what`, e.g. `config.json`) with `hints` applied, checked against `weights`.
pub fn settle(
    weights: &Weights,
    mut declared: SwinConfig,
    hints: &ConfigHints,
    what: &str,
) -> Result<SwinConfig, ModelError> {
    if let Some(s) = hints.img_size {
        declared.img_size = s;
    }
    if let Some(w) = hints.window_size {
        declared.window_size = w;
    }
    if let Some(k) = hints.num_classes {
        declared.num_classes = k;
    }
    if let Some(p) = &hints.pretrained_window_sizes {
        declared.pretrained_window_sizes = p.clone();
    }
    declared.validate()?;
    // What the tensors say, with the sizes no tensor holds taken from the declaration.
    let from_shapes = weights.infer_config(&ConfigHints {
        img_size: Some(declared.img_size),
        window_size: Some(declared.window_size),
        num_classes: None,
        pretrained_window_sizes: Some(declared.pretrained_window_sizes.clone()),
        yacs_config: None,
    })?;
    let v = from_shapes.version;
    let mut differ = Vec::new();
    let mut compare = |field: &str, said: String, found: String| {
        if said != found {
            differ.push(format!(
                "{what} says {field} = {said}, but the tensors say {found} (`{}`)",
                deciding_tensor(field, v)
            ));
        }
    };
    compare(
        "version",
        declared.version.model_type().into(),
        v.model_type().into(),
    );
    compare(
        "embed_dim",
        declared.embed_dim.to_string(),
        from_shapes.embed_dim.to_string(),
    );
    compare(
        "in_chans",
        declared.in_chans.to_string(),
        from_shapes.in_chans.to_string(),
    );
    compare(
        "patch_size",
        declared.patch_size.to_string(),
        from_shapes.patch_size.to_string(),
    );
    compare(
        "depths",
        format!("{:?}", declared.depths),
        format!("{:?}", from_shapes.depths),
    );
    compare(
        "num_heads",
        format!("{:?}", declared.num_heads),
        format!("{:?}", from_shapes.num_heads),
    );
    compare(
        "num_classes",
        declared.num_classes.to_string(),
        from_shapes.num_classes.to_string(),
    );
    compare(
        "mlp_ratio",
        declared.mlp_ratio.to_string(),
        from_shapes.mlp_ratio.to_string(),
    );
    compare(
        "qkv_bias",
        declared.qkv_bias.to_string(),
        from_shapes.qkv_bias.to_string(),
    );
    compare("ape", declared.ape.to_string(), from_shapes.ape.to_string());
    compare(
        "patch_norm",
        declared.patch_norm.to_string(),
        from_shapes.patch_norm.to_string(),
    );
    if !differ.is_empty() {
        return Err(ModelError::Format {
            path: weights.source.clone(),
            message: differ.join("; "),
        });
    }
    weights.check(&declared)?;
    Ok(declared)
}
