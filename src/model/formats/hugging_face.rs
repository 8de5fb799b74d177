//! Hugging Face transformers' Swin (`models/swin/modeling_swin.py`) and SwinV2
//! (`models/swinv2/modeling_swinv2.py`): their module names mapped onto the official ones, and the
//! configuration and class names of a `config.json`.
//!
//! | Hugging Face (under `swin.` / `swinv2.`) | official |
//! |---|---|
//! | `embeddings.patch_embeddings.projection.*`, `embeddings.norm.*` | `patch_embed.proj.*`, `patch_embed.norm.*` |
//! | `embeddings.position_embeddings` | `absolute_pos_embed` |
//! | `encoder.layers.i.blocks.j.layernorm_before` / `layernorm_after` | `layers.i.blocks.j.norm1` / `norm2` |
//! | `attention.self.{query,key,value}` or `attention.{q,k,v}_proj` | `attn.qkv` (concatenated; V2: `q_bias`, `v_bias`) |
//! | `attention.output.dense` or `attention.o_proj` | `attn.proj` |
//! | `attention.self.logit_scale`, `…continuous_position_bias_mlp.{0,2}` | `attn.logit_scale`, `attn.cpb_mlp.{0,2}` |
//! | `attention.self.relative_position_bias_table` (or `…relative_position_bias.relative_position_bias_table`) | `attn.relative_position_bias_table` |
//! | `intermediate.dense` / `output.dense` (or `mlp.fc1` / `mlp.fc2`) | `mlp.fc1` / `mlp.fc2` |
//! | `encoder.layers.i.downsample.*` | `layers.i.downsample.*` |
//! | `layernorm.*`, `classifier.*` | `norm.*`, `head.*` |
//!
//! Buffers (`relative_position_index`, `relative_coords_table`, masks) are dropped.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{SwinConfig, SwinVersion, Tensor};

/// q, k and v of one block, gathered before concatenation.
#[derive(Default)]
struct Projections {
    weight: [Option<Tensor>; 3],
    bias: [Option<Tensor>; 3],
}

/// The official name of a block-local Hugging Face name, or `None` for a dropped buffer; q/k/v
/// parts go to `qkv` instead.
fn block_leaf(
    rest: &str,
    qkv: &mut Projections,
    tensor: Tensor,
) -> Result<Option<(String, Tensor)>, String> {
    const RENAMES: [(&str, &str); 12] = [
        ("layernorm_before.", "norm1."),
        ("layernorm_after.", "norm2."),
        ("attention.output.dense.", "attn.proj."),
        ("attention.o_proj.", "attn.proj."),
        ("attention.self.logit_scale", "attn.logit_scale"),
        ("attention.logit_scale", "attn.logit_scale"),
        (
            "attention.self.continuous_position_bias_mlp.",
            "attn.cpb_mlp.",
        ),
        ("attention.continuous_position_bias_mlp.", "attn.cpb_mlp."),
        ("intermediate.dense.", "mlp.fc1."),
        ("output.dense.", "mlp.fc2."),
        ("mlp.", "mlp."),
        (
            "attention.self.relative_position_bias_table",
            "attn.relative_position_bias_table",
        ),
    ];
    if rest.ends_with("relative_position_index")
        || rest.ends_with("relative_coords_table")
        || rest.ends_with("attn_mask")
    {
        return Ok(None);
    }
    if rest == "attention.relative_position_bias.relative_position_bias_table" {
        return Ok(Some(("attn.relative_position_bias_table".into(), tensor)));
    }
    for (i, names) in [
        ["attention.self.query.", "attention.q_proj."],
        ["attention.self.key.", "attention.k_proj."],
        ["attention.self.value.", "attention.v_proj."],
    ]
    .iter()
    .enumerate()
    {
        for prefix in names {
            if let Some(leaf) = rest.strip_prefix(prefix) {
                let slot = match leaf {
                    "weight" => &mut qkv.weight[i],
                    "bias" => &mut qkv.bias[i],
                    _ => return Err(format!("unexpected attention tensor `{rest}`")),
                };
                *slot = Some(tensor);
                return Ok(None);
            }
        }
    }
    for (from, to) in RENAMES {
        if let Some(tail) = rest.strip_prefix(from) {
            return Ok(Some((format!("{to}{tail}"), tensor)));
        }
        if rest == from.trim_end_matches('.') {
            return Ok(Some((to.trim_end_matches('.').to_string(), tensor)));
        }
    }
    Err(format!("unexpected block tensor `{rest}`"))
}

/// Concatenate `parts` on their first dimension (each `[n, …]` with the same trailing shape).
fn cat(parts: [&Tensor; 3], name: &str) -> Result<Tensor, String> {
    let tail = &parts[0].shape[1.min(parts[0].shape.len())..];
    if parts
        .iter()
        .any(|p| p.shape.is_empty() || &p.shape[1..] != tail)
    {
        return Err(format!(
            "the q, k and v tensors of `{name}` have shapes {:?}, {:?}, {:?}",
            parts[0].shape, parts[1].shape, parts[2].shape
        ));
    }
    let mut shape = parts[0].shape.clone();
    shape[0] = parts.iter().map(|p| p.shape[0]).sum();
    let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
    for p in parts {
        data.extend_from_slice(&p.data);
    }
    Ok(Tensor { shape, data })
}

/// Hugging Face names → official names. `version`: V1 concatenates q/k/v biases into
/// `qkv.bias`, V2 keeps q and v as `q_bias`/`v_bias` (its key has none); detected from the keys
/// (`logit_scale` is V2's) when `None`.
pub fn hugging_face_to_official(
    tensors: BTreeMap<String, Tensor>,
    version: Option<SwinVersion>,
) -> Result<BTreeMap<String, Tensor>, String> {
    let version = version.unwrap_or_else(|| {
        if tensors.keys().any(|k| k.contains("logit_scale")) {
            SwinVersion::V2
        } else {
            SwinVersion::V1
        }
    });
    let mut out = BTreeMap::new();
    let mut projections: BTreeMap<String, Projections> = BTreeMap::new();
    for (name, tensor) in tensors {
        let bare = name
            .strip_prefix("swinv2.")
            .or_else(|| name.strip_prefix("swin."))
            .unwrap_or(&name);
        let mapped = if let Some(rest) = bare.strip_prefix("embeddings.") {
            match rest {
                r if r.starts_with("patch_embeddings.projection.") => Some(format!(
                    "patch_embed.proj.{}",
                    &r["patch_embeddings.projection.".len()..]
                )),
                r if r.starts_with("norm.") => Some(format!("patch_embed.{r}")),
                "position_embeddings" => Some("absolute_pos_embed".to_string()),
                // SimMIM's mask token: not part of the classifier.
                "mask_token" => None,
                _ => return Err(format!("unexpected tensor `{name}`")),
            }
            .map(|n| (n, tensor))
        } else if let Some(rest) = bare.strip_prefix("encoder.layers.") {
            let (stage, rest) = rest
                .split_once('.')
                .ok_or_else(|| format!("unexpected tensor `{name}`"))?;
            let stage: usize = stage
                .parse()
                .map_err(|_| format!("tensor `{name}`: stage index is not a number"))?;
            if let Some(tail) = rest.strip_prefix("downsample.") {
                Some((format!("layers.{stage}.downsample.{tail}"), tensor))
            } else if let Some(rest) = rest.strip_prefix("blocks.") {
                let (block, rest) = rest
                    .split_once('.')
                    .ok_or_else(|| format!("unexpected tensor `{name}`"))?;
                let block: usize = block
                    .parse()
                    .map_err(|_| format!("tensor `{name}`: block index is not a number"))?;
                let prefix = format!("layers.{stage}.blocks.{block}");
                let qkv = projections.entry(prefix.clone()).or_default();
                block_leaf(rest, qkv, tensor)
                    .map_err(|e| format!("{e} (in `{name}`)"))?
                    .map(|(leaf, t)| (format!("{prefix}.{leaf}"), t))
            } else {
                return Err(format!("unexpected tensor `{name}`"));
            }
        } else if let Some(rest) = bare.strip_prefix("layernorm.") {
            Some((format!("norm.{rest}"), tensor))
        } else if let Some(rest) = name.strip_prefix("classifier.") {
            Some((format!("head.{rest}"), tensor))
        } else if bare.starts_with("pooler") {
            None
        } else {
            return Err(format!("unexpected tensor `{name}`"));
        };
        if let Some((key, tensor)) = mapped {
            if out.insert(key.clone(), tensor).is_some() {
                return Err(format!("two tensors map to `{key}`"));
            }
        }
    }
    for (prefix, p) in projections {
        let qkv_name = format!("{prefix}.attn.qkv");
        match &p.weight {
            [Some(q), Some(k), Some(v)] => {
                out.insert(format!("{qkv_name}.weight"), cat([q, k, v], &qkv_name)?);
            }
            [None, None, None] => continue,
            _ => {
                return Err(format!(
                    "`{prefix}`: the attention's query, key and value weights are not all there"
                ))
            }
        }
        match (version, &p.bias) {
            (_, [None, None, None]) => {}
            (SwinVersion::V1, [Some(q), Some(k), Some(v)]) => {
                out.insert(format!("{qkv_name}.bias"), cat([q, k, v], &qkv_name)?);
            }
            (SwinVersion::V2, [Some(q), _, Some(v)]) => {
                if p.bias[1]
                    .as_ref()
                    .is_some_and(|k| k.data.iter().any(|&x| x != 0.0))
                {
                    return Err(format!(
                        "`{prefix}`: SwinV2's key projection has no bias, but this checkpoint's is non-zero"
                    ));
                }
                out.insert(format!("{prefix}.attn.q_bias"), q.clone());
                out.insert(format!("{prefix}.attn.v_bias"), v.clone());
            }
            _ => {
                return Err(format!(
                    "`{prefix}`: the attention's query, key and value biases do not match {}'s",
                    if version == SwinVersion::V1 {
                        "Swin"
                    } else {
                        "SwinV2"
                    }
                ))
            }
        }
    }
    Ok(out)
}

/// Model types this reader takes, for error messages.
pub const SUPPORTED_MODEL_TYPES: &str = "\"swin\" (Swin V1) and \"swinv2\" (SwinV2)";

fn field<'a>(config: &'a Value, key: &str) -> Result<&'a Value, String> {
    config
        .get(key)
        .ok_or_else(|| format!("config.json has no `{key}`"))
}

fn uint(value: &Value, key: &str) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v <= 1 << 24)
        .ok_or_else(|| format!("config.json's `{key}` is not a sensible non-negative integer"))
}

fn uint_list(config: &Value, key: &str) -> Result<Vec<usize>, String> {
    field(config, key)?
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 16)
        .ok_or_else(|| format!("config.json's `{key}` is not a list of 1 to 16 integers"))?
        .iter()
        .map(|v| uint(v, key))
        .collect()
}

/// The Swin version of a `config.json`'s `model_type`.
pub fn version_of(config: &Value) -> Result<SwinVersion, String> {
    match config.get("model_type").and_then(Value::as_str) {
        Some("swin") => Ok(SwinVersion::V1),
        Some("swinv2") => Ok(SwinVersion::V2),
        other => Err(format!(
            "config.json's `model_type` is {}: supported are {SUPPORTED_MODEL_TYPES}",
            other.map_or("missing or not a string".to_string(), |s| format!(
                "{:?}",
                s.chars().take(60).collect::<String>()
            ))
        )),
    }
}

/// The configuration a Hugging Face `config.json` declares (`num_classes` from `id2label` when
/// present, else `num_labels`, else `head_classes`: the classifier's rows, which the caller knows).
pub fn config_from_hf_json(
    config: &Value,
    head_classes: Option<usize>,
) -> Result<SwinConfig, String> {
    let version = version_of(config)?;
    if let Some(act) = config.get("hidden_act") {
        if act.as_str() != Some("gelu") {
            return Err(format!(
                "config.json's `hidden_act` is {act}: only \"gelu\" (the official MLP) is supported"
            ));
        }
    }
    if let Some(eps) = config.get("layer_norm_eps").and_then(Value::as_f64) {
        if (eps - 1e-5).abs() > 1e-12 {
            return Err(format!(
                "config.json's `layer_norm_eps` is {eps}: the engines use nn.LayerNorm's 1e-5"
            ));
        }
    }
    let flag = |key: &str, default: bool| -> Result<bool, String> {
        match config.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("config.json's `{key}` is not true or false")),
        }
    };
    let depths = uint_list(config, "depths")?;
    let num_classes = match (labels(config)?, config.get("num_labels"), head_classes) {
        (Some(names), _, _) => names.len(),
        (None, Some(n), _) => uint(n, "num_labels")?,
        (None, None, Some(n)) => n,
        (None, None, None) => {
            return Err("config.json has neither `id2label` nor `num_labels`".into())
        }
    };
    // transformers' default is [0, 0, 0, 0] whatever the depth: zeros of another length are none.
    let pretrained_window_sizes = match (version, config.get("pretrained_window_sizes")) {
        (SwinVersion::V2, Some(_)) => {
            let sizes = uint_list(config, "pretrained_window_sizes")?;
            if sizes.len() != depths.len() && sizes.iter().all(|&s| s == 0) {
                vec![0; depths.len()]
            } else {
                sizes
            }
        }
        _ => vec![0; depths.len()],
    };
    Ok(SwinConfig {
        version,
        img_size: uint(field(config, "image_size")?, "image_size")?,
        patch_size: uint(field(config, "patch_size")?, "patch_size")?,
        in_chans: match config.get("num_channels") {
            Some(v) => uint(v, "num_channels")?,
            None => 3,
        },
        num_classes,
        embed_dim: uint(field(config, "embed_dim")?, "embed_dim")?,
        num_heads: uint_list(config, "num_heads")?,
        window_size: uint(field(config, "window_size")?, "window_size")?,
        mlp_ratio: match config.get("mlp_ratio") {
            Some(v) => v
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0 && *r <= 64.0)
                .ok_or("config.json's `mlp_ratio` is not a ratio")?,
            None => 4.0,
        },
        qkv_bias: flag("qkv_bias", true)?,
        ape: match (version, flag("use_absolute_embeddings", false)?) {
            // transformers' Swinv2Embeddings keep num_patches + 1 positions (a class-token slot the
            // official model has not) and cannot add them to the patches without interpolation.
            (SwinVersion::V2, true) => {
                return Err(
                    "config.json's `use_absolute_embeddings` is true for a SwinV2 model: \
                     transformers' SwinV2 absolute embeddings ([1, num_patches + 1, C]) have no \
                     official counterpart and are not supported (V1's are)"
                        .into(),
                )
            }
            (_, ape) => ape,
        },
        // The Hugging Face embeddings always normalise the patches.
        patch_norm: true,
        depths,
        pretrained_window_sizes,
    })
}

/// `id2label` in class order: its keys must be exactly "0" … "n-1".
pub fn labels(config: &Value) -> Result<Option<Vec<String>>, String> {
    let Some(map) = config.get("id2label") else {
        return Ok(None);
    };
    let map = map
        .as_object()
        .ok_or("config.json's `id2label` is not an object")?;
    if map.len() > 1 << 20 {
        return Err("config.json's `id2label` has over a million entries".into());
    }
    let mut names = vec![None; map.len()];
    for (key, value) in map {
        let id: usize = key
            .parse()
            .ok()
            .filter(|&id| id < names.len())
            .ok_or_else(|| {
                format!(
                    "config.json's `id2label` key {:?} is not a class id below {}",
                    key.chars().take(40).collect::<String>(),
                    names.len()
                )
            })?;
        let name = value
            .as_str()
            .ok_or_else(|| format!("config.json's `id2label[{id}]` is not a string"))?;
        names[id] = Some(name.to_string());
    }
    // n distinct keys below n: every id is there.
    Ok(Some(
        names.into_iter().map(Option::unwrap_or_default).collect(),
    ))
}
