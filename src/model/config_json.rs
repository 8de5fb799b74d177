//! The JSON form of a [`SwinConfig`] and of a [`CheckpointMetadata`], as `swin-serve convert`
//! writes them into a `.safetensors` file's `__metadata__` (string values) and as readers take them
//! back: the official constructor's argument names plus `model_type` (`swin` / `swinv2`), so the
//! MagicMind generation script can build the official model from them.

use serde_json::{json, Value};

use super::{CheckpointMetadata, PreprocessingSpec, SwinConfig, SwinVersion};

/// `__metadata__` key whose value says the file is in the official layout as written by `convert`.
pub const METADATA_FORMAT_KEY: &str = "format";
/// The value of [`METADATA_FORMAT_KEY`].
pub const METADATA_FORMAT: &str = "swin-serve";
/// `__metadata__` key holding [`config_to_json`] as a string.
pub const METADATA_CONFIG_KEY: &str = "config";
/// `__metadata__` key holding the class names as a JSON array of strings (optional).
pub const METADATA_LABELS_KEY: &str = "labels";
/// `__metadata__` key holding [`preprocessing_to_json`] as a string (optional).
pub const METADATA_PREPROCESSING_KEY: &str = "preprocessing";

/// `config` as a JSON object: `model_type` plus every field under its official argument name.
pub fn config_to_json(config: &SwinConfig) -> Value {
    json!({
        "model_type": config.version.model_type(),
        "img_size": config.img_size,
        "patch_size": config.patch_size,
        "in_chans": config.in_chans,
        "num_classes": config.num_classes,
        "embed_dim": config.embed_dim,
        "depths": config.depths,
        "num_heads": config.num_heads,
        "window_size": config.window_size,
        "mlp_ratio": config.mlp_ratio,
        "qkv_bias": config.qkv_bias,
        "ape": config.ape,
        "patch_norm": config.patch_norm,
        "pretrained_window_sizes": config.pretrained_window_sizes,
    })
}

/// The inverse of [`config_to_json`]; the message names the missing or malformed field.
/// `pretrained_window_sizes` may be absent (zeros), as it is for V1.
pub fn config_from_json(value: &Value) -> Result<SwinConfig, String> {
    let object = value
        .as_object()
        .ok_or_else(|| "the model config is not a JSON object".to_string())?;
    let field = |name: &str| {
        object
            .get(name)
            .ok_or_else(|| format!("the model config has no `{name}`"))
    };
    let uint = |name: &str| -> Result<usize, String> {
        field(name)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| format!("the model config's `{name}` is not a non-negative integer"))
    };
    let boolean = |name: &str| -> Result<bool, String> {
        field(name)?
            .as_bool()
            .ok_or_else(|| format!("the model config's `{name}` is not true or false"))
    };
    let list = |v: &Value, name: &str| -> Result<Vec<usize>, String> {
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                format!("the model config's `{name}` is not a list of non-negative integers")
            })
    };
    let version = match field("model_type")?.as_str() {
        Some("swin") => SwinVersion::V1,
        Some("swinv2") => SwinVersion::V2,
        other => {
            return Err(format!(
                "the model config's `model_type` is {}: supported are \"swin\" (V1) and \"swinv2\" (V2)",
                other.map_or_else(|| "not a string".to_string(), |s| format!("{s:?}"))
            ))
        }
    };
    let depths = list(field("depths")?, "depths")?;
    let pretrained_window_sizes = match object.get("pretrained_window_sizes") {
        None | Some(Value::Null) => vec![0; depths.len()],
        Some(v) => list(v, "pretrained_window_sizes")?,
    };
    Ok(SwinConfig {
        version,
        img_size: uint("img_size")?,
        patch_size: uint("patch_size")?,
        in_chans: uint("in_chans")?,
        num_classes: uint("num_classes")?,
        embed_dim: uint("embed_dim")?,
        num_heads: list(field("num_heads")?, "num_heads")?,
        depths,
        window_size: uint("window_size")?,
        mlp_ratio: field("mlp_ratio")?
            .as_f64()
            .ok_or_else(|| "the model config's `mlp_ratio` is not a number".to_string())?,
        qkv_bias: boolean("qkv_bias")?,
        ape: boolean("ape")?,
        patch_norm: boolean("patch_norm")?,
        pretrained_window_sizes,
    })
}

/// `spec` as JSON: `{"source": "official"}`, `{"source": "timm", "pretrained_cfg": {…}}` or
/// `{"source": "huggingface", "preprocessor_config": {…}}`.
pub fn preprocessing_to_json(spec: &PreprocessingSpec) -> Value {
    match spec {
        PreprocessingSpec::Official => json!({"source": "official"}),
        PreprocessingSpec::Timm(cfg) => json!({"source": "timm", "pretrained_cfg": cfg}),
        PreprocessingSpec::HuggingFace(cfg) => {
            json!({"source": "huggingface", "preprocessor_config": cfg})
        }
    }
}

/// The inverse of [`preprocessing_to_json`].
pub fn preprocessing_from_json(value: &Value) -> Result<PreprocessingSpec, String> {
    let inner = |key: &str| {
        value
            .get(key)
            .cloned()
            .ok_or_else(|| format!("the preprocessing metadata has no `{key}`"))
    };
    match value.get("source").and_then(Value::as_str) {
        Some("official") => Ok(PreprocessingSpec::Official),
        Some("timm") => Ok(PreprocessingSpec::Timm(inner("pretrained_cfg")?)),
        Some("huggingface") => Ok(PreprocessingSpec::HuggingFace(inner(
            "preprocessor_config",
        )?)),
        _ => {
            Err("the preprocessing metadata's `source` is not official, timm or huggingface".into())
        }
    }
}

/// The `__metadata__` map `convert` writes for `config` and `metadata` (string values).
pub fn safetensors_metadata(
    config: &SwinConfig,
    metadata: &CheckpointMetadata,
) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    map.insert(METADATA_FORMAT_KEY.into(), METADATA_FORMAT.into());
    map.insert(
        METADATA_CONFIG_KEY.into(),
        config_to_json(config).to_string(),
    );
    map.insert(
        METADATA_PREPROCESSING_KEY.into(),
        preprocessing_to_json(&metadata.preprocessing).to_string(),
    );
    if let Some(labels) = &metadata.labels {
        map.insert(
            METADATA_LABELS_KEY.into(),
            Value::Array(labels.iter().cloned().map(Value::String).collect()).to_string(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_round_trips_for_both_versions() {
        let v2 = SwinConfig::tiny_window8_256();
        assert_eq!(config_from_json(&config_to_json(&v2)).unwrap(), v2);
        let mut v1 = v2.clone();
        v1.version = SwinVersion::V1;
        v1.window_size = 7;
        v1.img_size = 224;
        let mut value = config_to_json(&v1);
        assert_eq!(value["model_type"], "swin");
        value
            .as_object_mut()
            .unwrap()
            .remove("pretrained_window_sizes");
        assert_eq!(config_from_json(&value).unwrap(), v1);
        value["model_type"] = json!("vit");
        let err = config_from_json(&value).unwrap_err();
        assert!(err.contains("\"vit\"") && err.contains("swinv2"), "{err}");
        let mut value = config_to_json(&v1);
        value.as_object_mut().unwrap().remove("depths");
        assert!(config_from_json(&value).unwrap_err().contains("`depths`"));
    }

    #[test]
    fn preprocessing_json_round_trips() {
        for spec in [
            PreprocessingSpec::Official,
            PreprocessingSpec::Timm(json!({"crop_pct": 0.9})),
            PreprocessingSpec::HuggingFace(json!({"size": 256})),
        ] {
            assert_eq!(
                preprocessing_from_json(&preprocessing_to_json(&spec)).unwrap(),
                spec
            );
        }
    }
}
