//! `--config FILE.yaml`: the official training code's yacs configuration
//! (microsoft/Swin-Transformer `config.py` @ d19503d7 and its `configs/**/*.yaml`), as the lab
//! generates its model from. Read: `MODEL.TYPE` (`swin` / `swinv2`), `MODEL.NUM_CLASSES`,
//! `DATA.IMG_SIZE`, and under `MODEL.SWIN` / `MODEL.SWINV2`: `PATCH_SIZE`, `IN_CHANS`, `EMBED_DIM`,
//! `DEPTHS`, `NUM_HEADS`, `WINDOW_SIZE`, `MLP_RATIO`, `QKV_BIAS`, `APE`, `PATCH_NORM` and (V2)
//! `PRETRAINED_WINDOW_SIZES`; what a file leaves out takes `config.py`'s default. `BASE: [...]`
//! files are read first, relative to the including file, as `_update_config_from_file` does.

use std::path::Path;

use serde_json::Value;

use super::{ModelError, PreprocessingSpec, SwinConfig, SwinVersion};

/// Largest configuration file read: 1 MiB.
const MAX_BYTES: u64 = 1 << 20;
/// Deepest chain of `BASE` includes followed.
const MAX_DEPTH: usize = 8;

fn error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// `overlay` merged into `base`, mapping by mapping (yacs's `merge_from_other_cfg`).
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// The file at `path` with its `BASE` files merged under it.
fn read_merged(path: &Path, depth: usize) -> Result<Value, ModelError> {
    use std::io::Read;
    if depth > MAX_DEPTH {
        return Err(error(
            path,
            format!("more than {MAX_DEPTH} nested BASE files"),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if text.len() as u64 > MAX_BYTES {
        return Err(error(path, "larger than 1 MiB: not a model configuration"));
    }
    let mut own: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| error(path, format!("not a YAML configuration: {e}")))?
    };
    if !own.is_object() {
        return Err(error(path, "not a YAML mapping"));
    }
    let mut merged = Value::Object(Default::default());
    if let Some(bases) = own.as_object_mut().and_then(|o| o.remove("BASE")) {
        let bases = match bases {
            Value::Array(items) => items,
            other => vec![other],
        };
        for base in bases {
            let name = base
                .as_str()
                .ok_or_else(|| error(path, "a BASE entry is not a file name"))?;
            if name.is_empty() {
                continue;
            }
            let base_path = path.parent().unwrap_or(Path::new(".")).join(name);
            merge(&mut merged, read_merged(&base_path, depth + 1)?);
        }
    }
    merge(&mut merged, own);
    Ok(merged)
}

/// The architecture `path` configures.
pub fn config_from_yacs(path: &Path) -> Result<SwinConfig, ModelError> {
    let root = read_merged(path, 0)?;
    let model = root.get("MODEL");
    let version = match model.and_then(|m| m.get("TYPE")) {
        None => SwinVersion::V1,
        Some(t) => match t.as_str() {
            Some("swin") => SwinVersion::V1,
            Some("swinv2") => SwinVersion::V2,
            _ => {
                return Err(error(
                    path,
                    format!("MODEL.TYPE {t} is not supported: swin (V1) or swinv2 (V2)"),
                ))
            }
        },
    };
    let section_name = match version {
        SwinVersion::V1 => "SWIN",
        SwinVersion::V2 => "SWINV2",
    };
    let section = model.and_then(|m| m.get(section_name));
    let get = |key: &str| section.and_then(|s| s.get(key));
    let what = |key: &str| format!("MODEL.{section_name}.{key}");
    let uint = |v: &Value, name: &str| -> Result<usize, ModelError> {
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .filter(|&x| x <= 1 << 24)
            .ok_or_else(|| {
                error(
                    path,
                    format!("{name} is not a sensible non-negative integer"),
                )
            })
    };
    let uint_or = |key: &str, default: usize| -> Result<usize, ModelError> {
        get(key).map_or(Ok(default), |v| uint(v, &what(key)))
    };
    let list_or = |key: &str, default: &[usize]| -> Result<Vec<usize>, ModelError> {
        match get(key) {
            None => Ok(default.to_vec()),
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 16 => {
                items.iter().map(|v| uint(v, &what(key))).collect()
            }
            Some(_) => Err(error(
                path,
                format!("{} is not a list of 1 to 16 integers", what(key)),
            )),
        }
    };
    let flag_or = |key: &str, default: bool| -> Result<bool, ModelError> {
        get(key).map_or(Ok(default), |v| {
            v.as_bool()
                .ok_or_else(|| error(path, format!("{} is not true or false", what(key))))
        })
    };
    let depths = list_or("DEPTHS", &[2, 2, 6, 2])?;
    let pretrained_window_sizes = match version {
        SwinVersion::V2 => list_or("PRETRAINED_WINDOW_SIZES", &[0, 0, 0, 0])?,
        SwinVersion::V1 => vec![0; depths.len()],
    };
    Ok(SwinConfig {
        version,
        img_size: match root.get("DATA").and_then(|d| d.get("IMG_SIZE")) {
            Some(v) => uint(v, "DATA.IMG_SIZE")?,
            None => 224,
        },
        patch_size: uint_or("PATCH_SIZE", 4)?,
        in_chans: uint_or("IN_CHANS", 3)?,
        num_classes: match model.and_then(|m| m.get("NUM_CLASSES")) {
            Some(v) => uint(v, "MODEL.NUM_CLASSES")?,
            None => 1000,
        },
        embed_dim: uint_or("EMBED_DIM", 96)?,
        num_heads: list_or("NUM_HEADS", &[3, 6, 12, 24])?,
        window_size: uint_or("WINDOW_SIZE", 7)?,
        mlp_ratio: match get("MLP_RATIO") {
            None => 4.0,
            Some(v) => v
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0 && *r <= 64.0)
                .ok_or_else(|| error(path, format!("{} is not a ratio", what("MLP_RATIO"))))?,
        },
        qkv_bias: flag_or("QKV_BIAS", true)?,
        ape: flag_or("APE", false)?,
        patch_norm: flag_or("PATCH_NORM", true)?,
        depths,
        pretrained_window_sizes,
    })
}

/// The eval transform `path` configures, as the official `data/build.py` builds it: with
/// `TEST.CROP` (the default) short side to `int(256/224·S)` and a center crop, without it a resize
/// to `S×S`; `DATA.INTERPOLATION` (default `bicubic`; `random` evaluates as bilinear, as timm's
/// `_pil_interp` maps it); ImageNet mean/std. The defaults give [`PreprocessingSpec::Official`].
pub fn preprocessing_from_yacs(path: &Path) -> Result<PreprocessingSpec, ModelError> {
    let root = read_merged(path, 0)?;
    let crop = match root.get("TEST").and_then(|t| t.get("CROP")) {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| error(path, "TEST.CROP is not True or False"))?,
    };
    let data = root.get("DATA");
    let interpolation = match data.and_then(|d| d.get("INTERPOLATION")) {
        None => "bicubic",
        Some(v) => match v.as_str() {
            Some("bicubic") => "bicubic",
            Some("bilinear") | Some("random") => "bilinear",
            _ => {
                return Err(error(
                    path,
                    format!("DATA.INTERPOLATION {v} is not bicubic, bilinear or random"),
                ))
            }
        },
    };
    if crop && interpolation == "bicubic" {
        return Ok(PreprocessingSpec::Official);
    }
    let img_size = data
        .and_then(|d| d.get("IMG_SIZE"))
        .and_then(Value::as_u64)
        .unwrap_or(224);
    // timm's pretrained_cfg says the same: `center` at crop_pct 224/256 is the official crop,
    // `squash` at 1.0 a resize to S×S.
    Ok(PreprocessingSpec::Timm(serde_json::json!({
        "input_size": [3, img_size, img_size],
        "crop_pct": if crop { 0.875 } else { 1.0 },
        "crop_mode": if crop { "center" } else { "squash" },
        "interpolation": interpolation,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_transform_follows_test_crop_and_data_interpolation() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let plain = write(
            "plain.yaml",
            "DATA:\n  IMG_SIZE: 384\nMODEL:\n  TYPE: swin\n",
        );
        assert_eq!(
            preprocessing_from_yacs(&plain).unwrap(),
            PreprocessingSpec::Official
        );
        let no_crop = write(
            "no_crop.yaml",
            "BASE: ['plain.yaml']\nTEST:\n  CROP: False\n",
        );
        let PreprocessingSpec::Timm(cfg) = preprocessing_from_yacs(&no_crop).unwrap() else {
            panic!("expected an explicit transform");
        };
        assert_eq!(cfg["crop_mode"], "squash");
        assert_eq!(cfg["crop_pct"], 1.0);
        assert_eq!(cfg["input_size"], serde_json::json!([3, 384, 384]));
        let bilinear = write(
            "bilinear.yaml",
            "DATA:\n  IMG_SIZE: 224\n  INTERPOLATION: random\n",
        );
        let PreprocessingSpec::Timm(cfg) = preprocessing_from_yacs(&bilinear).unwrap() else {
            panic!("expected an explicit transform");
        };
        assert_eq!(cfg["crop_mode"], "center");
        assert_eq!(cfg["interpolation"], "bilinear");
        let bad = write("bad.yaml", "TEST:\n  CROP: maybe\n");
        assert!(preprocessing_from_yacs(&bad)
            .unwrap_err()
            .to_string()
            .contains("TEST.CROP"));
    }

    #[test]
    fn official_configs_and_their_bases() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.yaml");
        std::fs::write(
            &base,
            "DATA:\n  IMG_SIZE: 256\nMODEL:\n  TYPE: swinv2\n  SWINV2:\n    EMBED_DIM: 96\n    DEPTHS: [ 2, 2, 6, 2 ]\n    NUM_HEADS: [ 3, 6, 12, 24 ]\n    WINDOW_SIZE: 8\n",
        )
        .unwrap();
        assert_eq!(
            config_from_yacs(&base).unwrap(),
            SwinConfig::tiny_window8_256()
        );
        let child = dir.path().join("child.yaml");
        std::fs::write(
            &child,
            "BASE: ['base.yaml']\nMODEL:\n  NUM_CLASSES: 21841\n  SWINV2:\n    PRETRAINED_WINDOW_SIZES: [12, 12, 12, 6]\n",
        )
        .unwrap();
        let c = config_from_yacs(&child).unwrap();
        assert_eq!((c.num_classes, c.window_size), (21841, 8));
        assert_eq!(c.pretrained_window_sizes, vec![12, 12, 12, 6]);
        // V1 defaults: config.py's.
        let v1 = dir.path().join("v1.yaml");
        std::fs::write(
            &v1,
            "MODEL:\n  TYPE: swin\n  NAME: swin_tiny_patch4_window7_224\n",
        )
        .unwrap();
        let c = config_from_yacs(&v1).unwrap();
        assert_eq!(
            (c.version, c.img_size, c.window_size, c.embed_dim),
            (SwinVersion::V1, 224, 7, 96)
        );
        for (text, wanted) in [
            ("MODEL:\n  TYPE: vit\n", "MODEL.TYPE"),
            ("MODEL:\n  SWIN:\n    DEPTHS: 3\n", "MODEL.SWIN.DEPTHS"),
            (
                "MODEL:\n  SWIN:\n    EMBED_DIM: -4\n",
                "MODEL.SWIN.EMBED_DIM",
            ),
            ("- a\n- b\n", "mapping"),
            ("BASE: ['loop.yaml']\n", "nested BASE"),
        ] {
            let p = dir.path().join("loop.yaml");
            std::fs::write(&p, text).unwrap();
            let err = config_from_yacs(&p).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }
}
