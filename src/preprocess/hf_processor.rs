//! [`PreprocessConfig::from_hf_preprocessor`]: the eval transform of a Hugging Face
//! `preprocessor_config.json` as transformers 5's PIL backend applies it
//! (`image_processing_backends.PilBackend._preprocess`, with the class defaults of
//! `ViTImageProcessorPil` / `DeiTImageProcessorPil`):
//!
//! ```text
//! if do_resize:      PIL resize to size (resample)      {height, width}: both sides; {shortest_edge}:
//!                                                       the shorter side, the longer int(s · long / short)
//! if do_center_crop: center_crop(crop_size)             top = (h - crop) // 2, zero padding
//! if do_rescale:     image.astype(float64) * rescale_factor, then float32
//! if do_normalize:   (image - image_mean) / image_std   in float32
//! ```
//!
//! Current keys and the legacy ones (`feature_extractor_type: ViTFeatureExtractor`, `size` as an
//! int, no `do_rescale`) are read alike; `size`/`crop_size` may be an int, `{height, width}`,
//! `[height, width]` or (`size` only) `{shortest_edge}`; `resample` is a Pillow code (0 nearest,
//! 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming); `image_mean`/`image_std` a number or
//! three. A key absent or `null` takes the class default. transformers 5's default
//! `ViTImageProcessor` resizes with torchvision on tensors instead, which differs from PIL's
//! result by about one uint8 level on some pixels (docs/performance.md has the measured effect);
//! this service keeps PIL's values. `do_convert_rgb` is not read: images are always converted as
//! `Image.convert('RGB')` does (an alpha channel is dropped, not composited on white).

use serde_json::Value;

use super::config::{PreprocessConfig, DEFAULT_RESCALE_FACTOR, MAX_SIDE};
use super::pipeline::{CropMode, CropRounding, Interpolation};
use super::source_json::{quote, Fields};
use super::PreprocessError;

/// What a `preprocessor_config.json` is called in errors, and the start of
/// [`PreprocessConfig::source`] for one.
pub const HF_SOURCE: &str = "Hugging Face preprocessor_config.json";

/// transformers' `IMAGENET_STANDARD_MEAN` / `_STD`, the ViT and DeiT class defaults.
const IMAGENET_STANDARD: [f32; 3] = [0.5, 0.5, 0.5];

/// The processor classes read, and the names a file may give them.
const KNOWN_TYPES: [(&str, Family); 8] = [
    ("ViTImageProcessor", Family::Vit),
    ("ViTImageProcessorFast", Family::Vit),
    ("ViTImageProcessorPil", Family::Vit),
    ("ViTFeatureExtractor", Family::Vit),
    ("DeiTImageProcessor", Family::Deit),
    ("DeiTImageProcessorFast", Family::Deit),
    ("DeiTImageProcessorPil", Family::Deit),
    ("DeiTFeatureExtractor", Family::Deit),
];

/// A processor class: its defaults differ, its steps do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `ViTImageProcessor`: resize to 224×224, bilinear, no crop, mean/std 0.5.
    Vit,
    /// `DeiTImageProcessor`: resize to 256×256, bicubic, center crop 224, mean/std 0.5.
    Deit,
}

/// The resize `size` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    /// `{height, width}` (or an int, or `[height, width]`).
    Exact { height: u32, width: u32 },
    /// `{shortest_edge}`.
    ShortestEdge(u32),
}

impl PreprocessConfig {
    /// The eval transform of the `preprocessor_config.json` object `cfg` (see the module docs),
    /// with Pillow's decode limits. Refuses a value of the wrong type, a side of 0 or over
    /// [`MAX_SIDE`], a processor type other than ViT's or DeiT's, `size` forms with a longest edge
    /// or a maximum, a non-square resize or crop, a pipeline whose output size would depend on
    /// the image (`shortest_edge` or no resize, without a center crop), `do_pad`, a `resample`
    /// code Pillow does not have, a non-finite or zero `image_std`.
    pub fn from_hf_preprocessor(cfg: &Value) -> Result<Self, PreprocessError> {
        let f = Fields::new(HF_SOURCE, cfg)?;
        let (type_name, family) = processor_type(&f)?;
        let (default_size, default_resample, default_crop, default_do_crop) = match family {
            Family::Vit => (224, Interpolation::Bilinear, None, false),
            Family::Deit => (256, Interpolation::Bicubic, Some(224), true),
        };

        let do_resize = f.bool("do_resize")?.unwrap_or(true);
        let size = match f.get("size") {
            None => Size::Exact {
                height: default_size,
                width: default_size,
            },
            Some(v) => parse_size(&f, "size", v, true)?,
        };
        let interpolation = match f.get("resample") {
            None => default_resample,
            Some(v) => v
                .as_u64()
                .and_then(Interpolation::from_pil_code)
                .ok_or_else(|| {
                    f.error(
                        "resample",
                        format!(
                            "= {} is not a Pillow resampling code (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)",
                            quote(v)
                        ),
                    )
                })?,
        };
        let do_center_crop = f.bool("do_center_crop")?.unwrap_or(default_do_crop);
        let crop = if do_center_crop {
            let crop = match f.get("crop_size") {
                Some(v) => match parse_size(&f, "crop_size", v, false)? {
                    Size::Exact { height, width } => square(&f, "crop_size", v, height, width)?,
                    Size::ShortestEdge(_) => {
                        return Err(f.error("crop_size", "must be {\"height\": H, \"width\": W}"));
                    }
                },
                None => default_crop.ok_or_else(|| {
                    f.error("crop_size", "is missing but `do_center_crop` is true")
                })?,
            };
            Some(crop)
        } else {
            None
        };
        if f.bool("do_pad")?.unwrap_or(false) {
            return Err(f.error("do_pad", "= true is not supported (padding after the crop)"));
        }
        let do_rescale = f.bool("do_rescale")?.unwrap_or(true);
        let rescale_factor = match f.number("rescale_factor")? {
            Some(r) if do_rescale && r <= 0.0 => {
                return Err(f.error("rescale_factor", format!("= {r} must be positive")));
            }
            Some(r) if do_rescale => r,
            _ if do_rescale => DEFAULT_RESCALE_FACTOR,
            _ => 1.0,
        };
        let do_normalize = f.bool("do_normalize")?.unwrap_or(true);
        let (mean, std) = if do_normalize {
            let mean = f
                .channels("image_mean", false)?
                .unwrap_or(IMAGENET_STANDARD);
            let std = f.channels("image_std", false)?.unwrap_or(IMAGENET_STANDARD);
            if let Some(c) = std.iter().position(|&s| s == 0.0) {
                return Err(f.error("image_std", format!("[{c}] is 0")));
            }
            (mean, std)
        } else {
            ([0.0; 3], [1.0; 3])
        };

        // The steps as a crop mode, a resize side and the output side.
        let (crop_mode, resize_size, crop_size) = match (do_resize, size, crop) {
            (true, Size::Exact { height, width }, crop) => {
                let v = f.get("size").cloned().unwrap_or(Value::Null);
                let side = square(&f, "size", &v, height, width)?;
                (CropMode::Squash, side, crop.unwrap_or(side))
            }
            (true, Size::ShortestEdge(edge), Some(crop)) => (CropMode::Center, edge, crop),
            (true, Size::ShortestEdge(edge), None) => {
                return Err(f.error(
                    "size",
                    format!(
                        "= {{\"shortest_edge\": {edge}}} without `do_center_crop`: each image's tensor would keep its own aspect ratio, but the model takes a fixed square"
                    ),
                ));
            }
            (false, _, Some(crop)) => (CropMode::CropOnly, 0, crop),
            (false, _, None) => {
                return Err(f.error(
                    "do_resize",
                    "= false without `do_center_crop`: each image's tensor would keep its own size, but the model takes a fixed square",
                ));
            }
        };
        Ok(Self {
            crop_size,
            resize_size,
            crop_mode,
            interpolation,
            crop_rounding: CropRounding::Floor,
            rescale_factor,
            mean,
            std,
            source: format!("{HF_SOURCE} ({type_name})"),
            ..Self::official(crop_size)
        })
    }
}

/// The processor class named by `image_processor_type` (else `feature_extractor_type`; neither:
/// ViT's), as one of [`KNOWN_TYPES`].
fn processor_type(f: &Fields<'_>) -> Result<(&'static str, Family), PreprocessError> {
    let (key, given) = match f.string("image_processor_type")? {
        Some(name) => ("image_processor_type", name),
        None => match f.string("feature_extractor_type")? {
            Some(name) => ("feature_extractor_type", name),
            None => return Ok(("ViTImageProcessor", Family::Vit)),
        },
    };
    KNOWN_TYPES
        .iter()
        .find(|(name, _)| *name == given)
        .map(|&(name, family)| (name, family))
        .ok_or_else(|| {
            f.error(
                key,
                format!(
                    "= {} is not supported: ViTImageProcessor, ViTFeatureExtractor, DeiTImageProcessor and DeiTFeatureExtractor (and their Fast/Pil forms) are",
                    quote(&Value::String(given.to_string()))
                ),
            )
        })
}

/// A `size` or `crop_size` value: an int (square), `[height, width]`, `{height, width}`, or
/// (when `shortest_edge_allowed`) `{shortest_edge}`.
fn parse_size(
    f: &Fields<'_>,
    key: &str,
    v: &Value,
    shortest_edge_allowed: bool,
) -> Result<Size, PreprocessError> {
    let side = |x: &Value| f.side_value(key, x);
    match v {
        Value::Number(_) => {
            let s = side(v)?;
            Ok(Size::Exact {
                height: s,
                width: s,
            })
        }
        Value::Array(items) if items.len() == 2 => Ok(Size::Exact {
            height: side(&items[0])?,
            width: side(&items[1])?,
        }),
        Value::Object(map) => {
            let get = |k: &str| map.get(k).filter(|x| !x.is_null());
            let unsupported: Vec<&str> = ["longest_edge", "max_height", "max_width"]
                .into_iter()
                .filter(|k| get(k).is_some())
                .collect();
            if !unsupported.is_empty() {
                return Err(f.error(
                    key,
                    format!(
                        "= {}: {} is not supported (only {{height, width}} or {{shortest_edge}})",
                        quote(v),
                        unsupported.join(", ")
                    ),
                ));
            }
            match (get("height"), get("width"), get("shortest_edge")) {
                (Some(h), Some(w), None) => Ok(Size::Exact {
                    height: side(h)?,
                    width: side(w)?,
                }),
                (None, None, Some(s)) if shortest_edge_allowed => {
                    Ok(Size::ShortestEdge(side(s)?))
                }
                _ => Err(f.error(
                    key,
                    format!(
                        "= {} must be {{\"height\": H, \"width\": W}}{}",
                        quote(v),
                        if shortest_edge_allowed {
                            " or {\"shortest_edge\": S}"
                        } else {
                            ""
                        }
                    ),
                )),
            }
        }
        _ => Err(f.error(
            key,
            format!(
                "= {} must be an integer or {{\"height\": H, \"width\": W}} with sides 1 to {MAX_SIDE}",
                quote(v)
            ),
        )),
    }
}

/// The side of a square `height` × `width`, refusing another shape.
fn square(
    f: &Fields<'_>,
    key: &str,
    v: &Value,
    height: u32,
    width: u32,
) -> Result<u32, PreprocessError> {
    if height == width {
        Ok(height)
    } else {
        Err(f.error(
            key,
            format!(
                "= {} is {height}x{width}: only square sizes are served (Swin models take a square image)",
                quote(v)
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
