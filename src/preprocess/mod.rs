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
//! * [`working_set`] estimates, from the header alone, the memory all of this takes for one image
//!   (every intermediate buffer), which the server charges to its memory budget before decoding.
//! * Normalisation computes `(v / 255 - mean) / std` in f32, in torchvision's order, so the tensor
//!   is bit-identical to torchvision's for the same crop.

pub mod decode;
mod jpeg;
pub mod normalize;
pub mod resize;
pub mod working_set;

use std::time::Instant;

pub use decode::decode_rgb8;
pub use normalize::normalize_into;
pub use resize::{center_crop_offset, resize_center_crop, resized_size};
pub use working_set::{working_set, DecodeCost, WorkingSet};

/// ImageNet mean of timm's `IMAGENET_DEFAULT_MEAN`, used by the official Swin code.
pub const IMAGENET_DEFAULT_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std of timm's `IMAGENET_DEFAULT_STD`, used by the official Swin code.
pub const IMAGENET_DEFAULT_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Channels of the tensor preprocessing produces (RGB).
pub const CHANNELS: usize = 3;
/// Pillow's `Image.MAX_IMAGE_PIXELS` (`int(1024 * 1024 * 1024 // 4 // 3)`).
pub const PIL_MAX_IMAGE_PIXELS: u64 = 89_478_485;
/// Default cap on what a decoder may allocate for one image: 512 MiB (enough for
/// [`PIL_MAX_IMAGE_PIXELS`] RGB pixels at 8 bits).
pub const DEFAULT_MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Parameters of the eval transform and of the decode limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Side of the square crop fed to the model (`img_size`, e.g. 256).
    pub crop_size: u32,
    /// The shorter image side is resized to this (`int(256 / 224 * img_size)`, e.g. 292).
    pub resize_size: u32,
    /// Per-channel mean (RGB) subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB) divided by after subtracting the mean.
    pub std: [f32; 3],
    /// Images with more pixels (width × height, read from the header) are refused before decoding.
    pub max_image_pixels: u64,
    /// Most bytes a decoder may allocate for one image (`image::Limits::max_alloc`).
    pub max_decode_alloc: u64,
}

impl PreprocessConfig {
    /// The official eval transform for a model of input size `img_size`: resize to
    /// `int(256 / 224 * img_size)` (292 for 256, 256 for 224, 219 for 192), crop `img_size`,
    /// ImageNet mean/std, Pillow's pixel limit and a 512 MiB decode allocation limit.
    pub fn for_image_size(img_size: u32) -> Self {
        // Python: int((256 / 224) * img_size), evaluated in f64 exactly as CPython does.
        let resize_size = ((256.0_f64 / 224.0) * f64::from(img_size)) as u32;
        Self {
            crop_size: img_size,
            resize_size,
            mean: IMAGENET_DEFAULT_MEAN,
            std: IMAGENET_DEFAULT_STD,
            max_image_pixels: PIL_MAX_IMAGE_PIXELS,
            max_decode_alloc: DEFAULT_MAX_DECODE_ALLOC,
        }
    }

    /// Length of the NCHW tensor of one image: `CHANNELS × crop_size × crop_size`.
    pub fn tensor_len(&self) -> usize {
        CHANNELS * self.crop_size as usize * self.crop_size as usize
    }

    /// Checks that the parameters describe a transform that can run.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let invalid = |what: String| Err(PreprocessError::InvalidConfig(what));
        if self.crop_size == 0 {
            return invalid("crop_size must be at least 1".into());
        }
        if self.resize_size == 0 {
            return invalid("resize_size must be at least 1".into());
        }
        if let Some(c) = (0..3).find(|&c| !(self.std[c].is_finite() && self.std[c] != 0.0)) {
            return invalid(format!(
                "std[{c}] = {} must be finite and non-zero",
                self.std[c]
            ));
        }
        if let Some(c) = (0..3).find(|&c| !self.mean[c].is_finite()) {
            return invalid(format!("mean[{c}] = {} must be finite", self.mean[c]));
        }
        Ok(())
    }
}

impl Default for PreprocessConfig {
    /// The transform of SwinV2-T/S/B at 256×256.
    fn default() -> Self {
        Self::for_image_size(256)
    }
}

/// Why an image could not be preprocessed. Messages are meant for the client that sent it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Zero bytes were sent.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The bytes start with no signature of a known image format.
    #[error("the data is not a recognised image: expected JPEG, PNG, BMP, GIF, WebP or TIFF")]
    UnknownFormat,
    /// A known image format that this service does not decode (e.g. ICO, AVIF).
    #[error("{format} images are not supported: send JPEG, PNG, BMP, GIF, WebP or TIFF")]
    UnsupportedFormat {
        /// The format recognised from the signature.
        format: String,
    },
    /// The file is damaged, truncated or uses a feature the decoder does not handle.
    #[error("cannot decode the {format} image: {message}")]
    Decode {
        /// `jpeg`, `png`, `bmp`, `gif`, `webp` or `tiff`.
        format: String,
        /// What the decoder reported.
        message: String,
    },
    /// The header announces a width or a height of zero.
    #[error("the {format} image has no pixels ({width}x{height})")]
    ZeroSize {
        /// Format of the image.
        format: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// More pixels than `max_image_pixels` (refused from the header, before decoding).
    #[error(
        "the image is {width}x{height} = {} pixels, over the limit of {max_pixels} pixels",
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// Decoding would allocate more than `max_decode_alloc` bytes.
    #[error("decoding the {format} image needs more memory than the limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// Format of the image.
        format: String,
        /// The limit in force.
        limit_bytes: u64,
    },
    /// The output slice does not have `3 × crop_size × crop_size` elements (a caller bug).
    #[error("output buffer has {actual} floats, expected {expected}")]
    OutputLength {
        /// `3 × crop_size × crop_size`.
        expected: usize,
        /// Length of the slice passed.
        actual: usize,
    },
    /// The configuration cannot be used.
    #[error("invalid preprocessing configuration: {0}")]
    InvalidConfig(String),
}

/// What was decoded, for logs and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width of the decoded image in pixels.
    pub width: u32,
    /// Height of the decoded image in pixels.
    pub height: u32,
    /// `jpeg`, `png`, `bmp`, `gif`, `webp` or `tiff`.
    pub format: &'static str,
}

/// The whole transform: decodes `bytes`, resizes, center-crops and normalises into `out`
/// (`3 × crop_size × crop_size` floats, NCHW with N = 1: channel planes R, G, B, rows top to bottom).
pub fn preprocess_into(
    bytes: &[u8],
    cfg: &PreprocessConfig,
    out: &mut [f32],
) -> Result<ImageInfo, PreprocessError> {
    cfg.validate()?;
    if out.len() != cfg.tensor_len() {
        return Err(PreprocessError::OutputLength {
            expected: cfg.tensor_len(),
            actual: out.len(),
        });
    }
    let started = Instant::now();
    let (img, format) = decode::decode_rgb8_with_format(bytes, cfg)?;
    let decoded = started.elapsed();
    let crop = resize_center_crop(&img, cfg);
    normalize_into(&crop, cfg, out);
    tracing::debug!(
        format,
        width = img.width(),
        height = img.height(),
        bytes = bytes.len(),
        decode_us = decoded.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "preprocessed image"
    );
    Ok(ImageInfo {
        width: img.width(),
        height: img.height(),
        format,
    })
}
