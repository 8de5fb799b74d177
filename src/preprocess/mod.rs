//! Decode + the eval transform of the checkpoint's source → NCHW f32, PIL-exact.
//!
//! The official transform is `build_transform(is_train=False)` of microsoft/Swin-Transformer
//! `data/build.py` with `TEST.CROP=True` and bicubic interpolation, as applied by
//! `torchvision.datasets.ImageFolder`:
//!
//! ```text
//! PIL Image.open(f).convert('RGB')                        -> decode::decode_rgb8
//! transforms.Resize(int(256 / 224 * img_size), BICUBIC)    -> resize::resize_center_crop
//! transforms.CenterCrop(img_size)                         -> (same pass: only the crop is computed)
//! transforms.ToTensor()                                   -> normalize::normalize_into
//! transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
//! ```
//!
//! [`PreprocessConfig`] describes that transform ([`PreprocessConfig::official`]) and the ones
//! timm ([`PreprocessConfig::from_timm_pretrained_cfg`]: `crop_pct`, `crop_mode`
//! center/squash/border) and Hugging Face ([`PreprocessConfig::from_hf_preprocessor`]: resize
//! straight to `{height, width}` or by the shortest edge, optional center crop, rescale,
//! normalise) prescribe; [`PreprocessOverrides`] applies the `serve` flags on top.
//!
//! * Decoding accepts JPEG, PNG, BMP, GIF (first frame), WebP and TIFF, and converts every pixel
//!   layout the way Pillow's `convert('RGB')` does (alpha dropped, not composited; palette looked up;
//!   16-bit samples reduced as Pillow reduces them, see [`decode`]). JPEG goes through
//!   libjpeg-turbo's decoder (the `mozjpeg` crate), the library Pillow uses, so JPEG pixels are
//!   bit-identical to Pillow's too; the other formats use the `image` crate. EXIF orientation is not
//!   applied (Pillow does not apply it on open either).
//! * The pixel count is checked from the header before any pixel is decoded, and the decoders run
//!   under an allocation limit, so a decompression bomb is refused cheaply.
//! * The resampler is a port of Pillow's resize (`Resample.c` for box, bilinear, hamming,
//!   bicubic and lanczos; `ImagingScaleAffine` for nearest), so the crop is bit-identical to PIL's
//!   for the same decoded pixels; only the output window of the crop is computed, so a 1×5000
//!   image (resized by torchvision to 292×1 460 000) costs no more than any other.
//! * [`working_set`](mod@working_set) estimates, from the header alone, the memory all of this
//!   takes for one image (every intermediate buffer), which the server charges to its memory
//!   budget before decoding.
//! * Normalisation computes `(v · rescale - mean) / std` in f32, in torchvision's order, so the
//!   tensor is bit-identical to torchvision's (and to Hugging Face's PIL backend's) for the same
//!   crop.

mod config;
pub mod decode;
mod error;
mod header;
mod hf_processor;
mod jpeg;
pub mod normalize;
mod overrides;
mod pipeline;
mod resample;
pub mod resize;
mod source_json;
mod timm_cfg;
mod transform;
pub mod working_set;

pub use config::{
    PreprocessConfig, CHANNELS, DEFAULT_MAX_DECODE_ALLOC, DEFAULT_RESCALE_FACTOR,
    IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, MAX_SIDE, OFFICIAL_SOURCE, PIL_MAX_IMAGE_PIXELS,
};
pub use decode::decode_rgb8;
pub use error::PreprocessError;
pub use header::DecodeCost;
pub use hf_processor::HF_SOURCE;
pub use normalize::normalize_into;
pub use overrides::{parse_crop_pct, parse_rgb, PreprocessOverrides};
pub use pipeline::{CropMode, CropRounding, Interpolation};
pub use resize::{
    center_crop_offset, crop_offset, keep_ratio_size, resize_center_crop, resized_dims,
    resized_size,
};
pub use timm_cfg::{TIMM_DEFAULT_CROP_PCT, TIMM_SOURCE};
pub use transform::{preprocess_into, ImageInfo};
pub use working_set::{working_set, WorkingSet};
