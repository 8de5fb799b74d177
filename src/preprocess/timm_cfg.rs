//! [`PreprocessConfig::from_timm_pretrained_cfg`]: the eval transform timm builds for a model
//! from its `pretrained_cfg`, `create_transform(**resolve_data_config(pretrained_cfg=cfg),
//! is_training=False)` (timm 1.0 `data/config.py`, `data/transforms_factory.py`
//! `transforms_imagenet_eval`):
//!
//! ```text
//! scale_size = math.floor(img_size / crop_pct)
//! center:  Resize(scale_size, interpolation)                     + CenterCrop(img_size)
//! squash:  Resize((scale_size, scale_size), interpolation)       + CenterCrop(img_size)
//! border:  ResizeKeepRatio(scale_size, interpolation, longest=1) + CenterCropOrPad(img_size,
//!                                                                  fill=round(255 * mean))
//! ToTensor() + Normalize(mean, std)
//! ```
//!
//! Keys read, with timm's defaults where a key is absent or false-y (`if pretrained_cfg.get(k)`):
//! `input_size` (`(3, 224, 224)`; only when absent or null), `interpolation` (`bicubic`), `mean`
//! and `std` (ImageNet), `crop_pct` (0.875), `crop_mode` (`center`). `test_input_size` and
//! `test_crop_pct` are not read (`use_test_size=False`, timm's default).

use serde_json::Value;

use super::config::{
    PreprocessConfig, DEFAULT_RESCALE_FACTOR, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, MAX_SIDE,
};
use super::pipeline::{CropMode, CropRounding, Interpolation};
use super::source_json::{is_truthy, quote, Fields};
use super::PreprocessError;

/// [`PreprocessConfig::source`] of a timm `pretrained_cfg`.
pub const TIMM_SOURCE: &str = "timm pretrained_cfg";
/// timm's `DEFAULT_CROP_PCT`.
pub const TIMM_DEFAULT_CROP_PCT: f64 = 0.875;
/// The input side timm assumes without an `input_size` (`(3, 224, 224)`).
const TIMM_DEFAULT_INPUT_SIZE: u32 = 224;

impl PreprocessConfig {
    /// timm's eval transform for the `pretrained_cfg` object `cfg` (see the module docs), with
    /// Pillow's decode limits. Refuses a value of the wrong type, a non-square or non-RGB
    /// `input_size`, a non-positive `crop_pct` or one that makes the resize side 0 or over
    /// [`MAX_SIDE`], an unknown `interpolation` or `crop_mode`, a non-finite or zero `std`.
    pub fn from_timm_pretrained_cfg(cfg: &Value) -> Result<Self, PreprocessError> {
        let f = Fields::new(TIMM_SOURCE, cfg)?;
        let truthy = |key: &str| f.get(key).filter(|v| is_truthy(v));

        let img_size = match f.get("input_size") {
            None => TIMM_DEFAULT_INPUT_SIZE,
            Some(v) => input_side(&f, v)?,
        };
        let interpolation = match truthy("interpolation") {
            None => Interpolation::Bicubic,
            Some(v) => {
                let name = f.string("interpolation")?.unwrap_or_default();
                name.parse::<Interpolation>()
                    .map_err(|_| f.error("interpolation", unknown(v, &Interpolation::ALL)))?
            }
        };
        let crop_mode = match truthy("crop_mode") {
            None => CropMode::Center,
            Some(v) => match f.string("crop_mode")?.unwrap_or_default() {
                "center" => CropMode::Center,
                "squash" => CropMode::Squash,
                "border" => CropMode::Border,
                _ => {
                    let timm_modes = [CropMode::Center, CropMode::Squash, CropMode::Border];
                    return Err(f.error("crop_mode", unknown(v, &timm_modes)));
                }
            },
        };
        let mean = match truthy("mean") {
            None => IMAGENET_DEFAULT_MEAN,
            Some(_) => f.channels("mean", true)?.unwrap_or(IMAGENET_DEFAULT_MEAN),
        };
        let std = match truthy("std") {
            None => IMAGENET_DEFAULT_STD,
            Some(_) => f.channels("std", true)?.unwrap_or(IMAGENET_DEFAULT_STD),
        };
        if let Some(c) = std.iter().position(|&s| s == 0.0) {
            return Err(f.error("std", format!("[{c}] is 0")));
        }
        let crop_pct = match truthy("crop_pct") {
            None => TIMM_DEFAULT_CROP_PCT,
            Some(v) => {
                let pct = f.number_value("crop_pct", v)?;
                if pct <= 0.0 {
                    return Err(f.error("crop_pct", format!("= {pct} must be positive")));
                }
                pct
            }
        };
        let resize_size =
            scale_size(img_size, crop_pct).map_err(|message| f.error("crop_pct", message))?;
        Ok(Self {
            crop_size: img_size,
            resize_size,
            crop_mode,
            interpolation,
            crop_rounding: CropRounding::Torchvision,
            rescale_factor: DEFAULT_RESCALE_FACTOR,
            mean,
            std,
            source: TIMM_SOURCE.to_string(),
            ..Self::official(img_size)
        })
    }
}

/// timm's `scale_size = math.floor(img_size / crop_pct)`, which must be 1 to [`MAX_SIDE`].
pub(super) fn scale_size(img_size: u32, crop_pct: f64) -> Result<u32, String> {
    let scale = (f64::from(img_size) / crop_pct).floor();
    if (1.0..=f64::from(MAX_SIDE)).contains(&scale) {
        Ok(scale as u32)
    } else {
        Err(format!(
            "= {crop_pct} makes the resize side floor({img_size} / {crop_pct}) = {scale}, outside 1 to {MAX_SIDE}"
        ))
    }
}

/// The square side of timm's `input_size`: `[3, S, S]`, `[S, S]` or `S`.
fn input_side(f: &Fields<'_>, v: &Value) -> Result<u32, PreprocessError> {
    let key = "input_size";
    let bad = || {
        f.error(
            key,
            format!(
                "= {} must be [3, height, width] with positive integer sides",
                quote(v)
            ),
        )
    };
    let (channels, h, w) = match v {
        Value::Number(_) => (None, v, v),
        Value::Array(items) => match items.as_slice() {
            [c, h, w] => (Some(c), h, w),
            [h, w] => (None, h, w),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    if let Some(c) = channels {
        if c.as_u64() != Some(3) {
            return Err(f.error(
                key,
                format!("= {}: only 3 channels (RGB) are served", quote(v)),
            ));
        }
    }
    let (h, w) = (f.side_value(key, h)?, f.side_value(key, w)?);
    if h != w {
        return Err(f.error(
            key,
            format!(
                "= {}: the input is {h}x{w}, but Swin models take a square image",
                quote(v)
            ),
        ));
    }
    Ok(h)
}

/// `= "x" is not one of a, b or c`.
fn unknown<T: std::fmt::Display>(v: &Value, names: &[T]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("{n}")).collect();
    format!("= {} is not one of {}", quote(v), list.join(", "))
}

#[cfg(test)]
mod tests;
