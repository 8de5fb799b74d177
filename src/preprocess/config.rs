//! [`PreprocessConfig`]: the parameters of the eval transform and the decode limits, with the
//! defaults of the official Swin code and of Pillow.

use super::PreprocessError;

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
