//! timm's Swin and SwinV2 (`timm/models/swin_transformer{,_v2}.py`): its 2023 state-dict layout
//! mapped back to the official one (the inverse of timm's `checkpoint_filter_fn`), and the
//! configuration of a timm hub directory's `config.json` (`architecture`, `num_classes`,
//! `model_args`, `pretrained_cfg.input_size`), the architecture's depths, widths and windows taken
//! from its registered name.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{SwinConfig, SwinVersion, Tensor};

/// `layers.{i}.downsample.*` (start of stage i) → `layers.{i-1}.downsample.*` (end of stage i−1)
/// and `head.fc.*` → `head.*`.
pub fn timm_to_official(
    tensors: BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, Tensor>, String> {
    let mut out = BTreeMap::new();
    for (name, tensor) in tensors {
        let mapped = if let Some(rest) = name.strip_prefix("head.fc.") {
            format!("head.{rest}")
        } else if let Some(rest) = name.strip_prefix("layers.") {
            match rest.split_once('.') {
                Some((index, tail)) if tail.starts_with("downsample.") => {
                    let stage: usize = index
                        .parse()
                        .map_err(|_| format!("tensor `{name}`: stage index is not a number"))?;
                    if stage == 0 {
                        return Err(format!(
                            "tensor `{name}`: timm's layout has no downsample in stage 0"
                        ));
                    }
                    format!("layers.{}.{tail}", stage - 1)
                }
                _ => name.clone(),
            }
        } else {
            name.clone()
        };
        if out.insert(mapped.clone(), tensor).is_some() {
            return Err(format!("two timm tensors map to `{mapped}`"));
        }
    }
    Ok(out)
}

/// Embed dim, depths and heads of a size name as timm and the official code register them.
fn size_of(size: &str) -> Option<(usize, Vec<usize>, Vec<usize>)> {
    Some(match size {
        "tiny" => (96, vec![2, 2, 6, 2], vec![3, 6, 12, 24]),
        "small" => (96, vec![2, 2, 18, 2], vec![3, 6, 12, 24]),
        "base" => (128, vec![2, 2, 18, 2], vec![4, 8, 16, 32]),
        "large" => (192, vec![2, 2, 18, 2], vec![6, 12, 24, 48]),
        _ => return None,
    })
}

/// The architectures this reader knows, for error messages.
pub const SUPPORTED_ARCHITECTURES: &str = "swin_{tiny,small,base,large}_patch4_window{7,12}_{224,384} \
     and swinv2_{tiny,small,base,large}_window{8,12,16,24}_{192,256,384} (also …_window12to16_192to256, \
     …_window12to24_192to384)";

/// The configuration timm's registered `architecture` builds (at its default classes, 1000).
pub fn architecture_config(architecture: &str) -> Result<SwinConfig, String> {
    let unknown = || {
        format!(
            "timm architecture {:?} is not supported (supported: {SUPPORTED_ARCHITECTURES}; \
             swinv2_cr_* and swin_s3_* are other networks)",
            architecture.chars().take(80).collect::<String>()
        )
    };
    let parts: Vec<&str> = architecture.split('_').collect();
    let (version, size, rest) = match parts.as_slice() {
        ["swin", size, rest @ ..] => (SwinVersion::V1, *size, rest),
        ["swinv2", size, rest @ ..] if *size != "cr" => (SwinVersion::V2, *size, rest),
        _ => return Err(unknown()),
    };
    let (embed_dim, depths, num_heads) = size_of(size).ok_or_else(unknown)?;
    let mut patch_size = 4;
    let mut window = None;
    let mut img = None;
    let mut pretrained_window = 0;
    for part in rest {
        if let Some(p) = part.strip_prefix("patch") {
            patch_size = p.parse().map_err(|_| unknown())?;
        } else if let Some(w) = part.strip_prefix("window") {
            // `window12to16`: pre-trained at 12, fine-tuned at 16.
            let (from, to) = w.split_once("to").unwrap_or(("", w));
            window = Some(to.parse::<usize>().map_err(|_| unknown())?);
            if !from.is_empty() {
                pretrained_window = from.parse::<usize>().map_err(|_| unknown())?;
            }
        } else if part.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            let (_, to) = part.split_once("to").unwrap_or(("", part));
            img = Some(to.parse::<usize>().map_err(|_| unknown())?);
        } else {
            return Err(unknown());
        }
    }
    let (Some(window_size), Some(img_size)) = (window, img) else {
        return Err(unknown());
    };
    // timm's `…_window12to16_…` and `…_window12to24_…` models: pretrained_window_sizes (12, 12, 12, 6).
    let pretrained_window_sizes = if pretrained_window > 0 {
        vec![
            pretrained_window,
            pretrained_window,
            pretrained_window,
            pretrained_window / 2,
        ]
    } else {
        vec![0; depths.len()]
    };
    Ok(SwinConfig {
        version,
        img_size,
        patch_size,
        in_chans: 3,
        num_classes: 1000,
        embed_dim,
        depths,
        num_heads,
        window_size,
        mlp_ratio: 4.0,
        qkv_bias: true,
        ape: false,
        patch_norm: true,
        pretrained_window_sizes,
    })
}

fn uint(value: &Value, what: &str) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v <= 1 << 24)
        .ok_or_else(|| format!("`{what}` is not a sensible non-negative integer"))
}

fn uint_list(value: &Value, what: &str) -> Result<Vec<usize>, String> {
    let items = value
        .as_array()
        .filter(|a| a.len() <= 16)
        .ok_or_else(|| format!("`{what}` is not a list of at most 16 integers"))?;
    items.iter().map(|v| uint(v, what)).collect()
}

/// A side given as an int or `[h, w]` / `[c, h, w]` (square only).
fn square_side(value: &Value, what: &str) -> Result<usize, String> {
    if let Some(list) = value.as_array() {
        let sides: Vec<usize> = list
            .iter()
            .map(|v| uint(v, what))
            .collect::<Result<_, _>>()?;
        return match sides.as_slice() {
            [h, w] | [_, h, w] if h == w => Ok(*h),
            _ => Err(format!("`{what}` {sides:?} is not a square size")),
        };
    }
    uint(value, what)
}

/// The configuration a timm hub `config.json` (`timm.models._hub.save_for_hf`) describes:
/// `architecture`, then `model_args` (the keyword arguments the model was created with), then
/// `num_classes` and `pretrained_cfg.input_size`.
pub fn config_from_timm_json(config: &Value) -> Result<SwinConfig, String> {
    let architecture = config
        .get("architecture")
        .and_then(Value::as_str)
        .ok_or("config.json has no `architecture` string")?;
    let mut swin = architecture_config(architecture)?;
    if let Some(classes) = config.get("num_classes") {
        swin.num_classes = uint(classes, "num_classes")?;
    }
    if let Some(size) = config
        .get("pretrained_cfg")
        .and_then(|p| p.get("input_size"))
    {
        swin.img_size = square_side(size, "pretrained_cfg.input_size")?;
    }
    if let Some(args) = config.get("model_args").and_then(Value::as_object) {
        for (key, value) in args {
            let what = format!("model_args.{key}");
            match key.as_str() {
                "num_classes" => swin.num_classes = uint(value, &what)?,
                "img_size" => swin.img_size = square_side(value, &what)?,
                "patch_size" => swin.patch_size = uint(value, &what)?,
                "in_chans" => swin.in_chans = uint(value, &what)?,
                "embed_dim" => swin.embed_dim = uint(value, &what)?,
                "depths" => swin.depths = uint_list(value, &what)?,
                "num_heads" => swin.num_heads = uint_list(value, &what)?,
                "window_size" => swin.window_size = square_side(value, &what)?,
                "pretrained_window_sizes" => {
                    swin.pretrained_window_sizes = uint_list(value, &what)?
                }
                "mlp_ratio" => {
                    swin.mlp_ratio = value
                        .as_f64()
                        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 64.0)
                        .ok_or_else(|| format!("`{what}` is not a ratio"))?
                }
                "qkv_bias" => {
                    swin.qkv_bias = value
                        .as_bool()
                        .ok_or_else(|| format!("`{what}` is not true or false"))?
                }
                "ape" | "absolute_pos_embed" => {
                    swin.ape = value
                        .as_bool()
                        .ok_or_else(|| format!("`{what}` is not true or false"))?
                }
                "patch_norm" => {
                    swin.patch_norm = value
                        .as_bool()
                        .ok_or_else(|| format!("`{what}` is not true or false"))?
                }
                // Training-only or pooling settings that do not change the eval forward.
                "global_pool" | "drop_rate" | "drop_path_rate" | "attn_drop_rate"
                | "proj_drop_rate" | "pretrained" | "features_only" => {}
                _ => return Err(format!("`{what}` is not a setting this reader knows")),
            }
        }
    }
    if swin.pretrained_window_sizes.len() != swin.depths.len() {
        swin.pretrained_window_sizes = vec![0; swin.depths.len()];
    }
    Ok(swin)
}

/// The class names of a timm `config.json`: `label_names` (where `save_for_hf` writes them), else
/// `pretrained_cfg.label_names`; a list, or an object of class ids (all of 0..n) to names.
pub fn label_names(config: &Value) -> Result<Option<Vec<String>>, String> {
    let Some(names) = config
        .get("label_names")
        .or_else(|| config.get("pretrained_cfg")?.get("label_names"))
    else {
        return Ok(None);
    };
    let bad =
        || "config.json's `label_names` is not a list of names or a map of class ids to names";
    match names {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(str::to_string),
        Value::Object(map) => {
            if map.len() > 1 << 20 {
                return Err(bad().into());
            }
            let mut out = vec![None; map.len()];
            for (key, value) in map {
                let id: usize = key
                    .parse()
                    .ok()
                    .filter(|&id| id < out.len())
                    .ok_or_else(bad)?;
                out[id] = Some(value.as_str().ok_or_else(bad)?.to_string());
            }
            Ok(Some(
                out.into_iter().map(Option::unwrap_or_default).collect(),
            ))
        }
        _ => Err(bad().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_names_give_the_released_shapes() {
        let t = architecture_config("swin_tiny_patch4_window7_224").unwrap();
        assert_eq!(
            (t.version, t.embed_dim, t.window_size, t.img_size),
            (SwinVersion::V1, 96, 7, 224)
        );
        let b = architecture_config("swin_base_patch4_window12_384").unwrap();
        assert_eq!((b.embed_dim, b.num_heads[0], b.window_size), (128, 4, 12));
        let v2 = architecture_config("swinv2_tiny_window8_256").unwrap();
        assert_eq!(v2, SwinConfig::tiny_window8_256());
        let ft = architecture_config("swinv2_base_window12to16_192to256").unwrap();
        assert_eq!(
            (ft.window_size, ft.img_size, ft.pretrained_window_sizes),
            (16, 256, vec![12, 12, 12, 6])
        );
        for bad in [
            "swinv2_cr_tiny_ns_224",
            "vit_base_patch16_224",
            "swin_huge_patch4_window7_224",
            "",
        ] {
            let err = architecture_config(bad).unwrap_err();
            assert!(err.contains("not supported"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_staged_layout_maps_back() {
        let t = |v: f32| Tensor {
            shape: vec![1],
            data: vec![v],
        };
        let tensors: BTreeMap<String, Tensor> = [
            ("layers.1.downsample.norm.weight", 1.0),
            ("layers.0.blocks.0.norm1.weight", 2.0),
            ("head.fc.weight", 3.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), t(v)))
        .collect();
        let out = timm_to_official(tensors).unwrap();
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "head.weight",
                "layers.0.blocks.0.norm1.weight",
                "layers.0.downsample.norm.weight"
            ]
        );
    }
}
