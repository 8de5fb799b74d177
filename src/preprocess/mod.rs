//! Decode + the official Swin eval transform → NCHW f32.
//!
//! This reproduces `build_transform(is_train=False)` of microsoft/Swin-Transformer `data/build.py`
//! with `TEST.CROP=True` and bicubic interpolation, as applied by `torchvision.datasets.ImageFolder`:
//!
//! ```text
//! PIL Image.open(f).convert('RGB')                        -> decode::decode_rgb8
//! transforms.Resize(int(256 / 224 * img_size), BICUBIC)    -> resize::resize_center_crop
//! transforms.CenterCrop(img_size)                         -> (same pass: only the crop is computed)
//! transforms.ToTensor()                                   -> normalize::normalize_into
//! transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
//! ```
//!
//! * Decoding accepts JPEG, PNG, BMP, GIF (first frame), WebP and TIFF, and converts every pixel
//!   layout the way Pillow's `convert('RGB')` does (alpha dropped, not composited; palette looked up;
//!   16-bit samples reduced as Pillow reduces them, see [`decode`]). JPEG goes through
//!   libjpeg-turbo's decoder (the `mozjpeg` crate), the library Pillow uses, so JPEG pixels are
//!   bit-identical to Pillow's too; the other formats use the `image` crate. EXIF orientation is not
//!   applied (Pillow does not apply it on open either).
//! * The pixel count is checked from the header before any pixel is decoded, and the decoders run
//!   under an allocation limit, so a decompression bomb is refused cheaply.
//! * The resampler is a port of Pillow's fixed-point convolution resampler (`Resample.c`), so the
//!   crop is bit-identical to PIL's for the same decoded pixels; only the output window of the
//!   crop is computed, so a 1×5000 image (resized by torchvision to 292×1 460 000) costs no more
//!   than any other.
//! * [`working_set`](mod@working_set) estimates, from the header alone, the memory all of this
//!   takes for one image (every intermediate buffer), which the server charges to its memory
//!   budget before decoding.
//! * Normalisation computes `(v / 255 - mean) / std` in f32, in torchvision's order, so the tensor
//!   is bit-identical to torchvision's for the same crop.

mod config;
pub mod decode;
mod error;
mod header;
mod jpeg;
pub mod normalize;
pub mod resize;
mod transform;
pub mod working_set;

pub use config::{
    PreprocessConfig, CHANNELS, DEFAULT_MAX_DECODE_ALLOC, IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD, PIL_MAX_IMAGE_PIXELS,
};
pub use decode::decode_rgb8;
pub use error::PreprocessError;
pub use header::DecodeCost;
pub use normalize::normalize_into;
pub use resize::{center_crop_offset, resize_center_crop, resized_size};
pub use transform::{preprocess_into, ImageInfo};
pub use working_set::{working_set, WorkingSet};
