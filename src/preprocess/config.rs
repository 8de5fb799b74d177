//! [`PreprocessConfig`]: the parameters of the eval transform and the decode limits, with the
//! defaults of the official Swin code and of Pillow.

use super::pipeline::{CropMode, CropRounding, Interpolation};
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
/// `ToTensor`'s scaling of uint8 values, `1 / 255` (Hugging Face's `rescale_factor` default).
pub const DEFAULT_RESCALE_FACTOR: f64 = 1.0 / 255.0;
/// Largest resize or crop side a configuration may ask for (a hostile config cannot make the
/// transform allocate more than a few such rows).
pub const MAX_SIDE: u32 = 16_384;
/// [`PreprocessConfig::source`] of the official transform.
pub const OFFICIAL_SOURCE: &str = "official";

/// Parameters of the eval transform and of the decode limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Side of the square crop fed to the model (`img_size`, e.g. 256).
    pub crop_size: u32,
    /// The size the image is resized to before the crop, as [`Self::crop_mode`] reads it: the
    /// shorter side (`center`: `int(256 / 224 * img_size)`, e.g. 292, officially), both sides
    /// (`squash`), the longer side (`border`); unused by `crop_only`.
    pub resize_size: u32,
    /// How the image is brought to the crop.
    pub crop_mode: CropMode,
    /// Pillow's resampling filter of the resize.
    pub interpolation: Interpolation,
    /// Where the crop starts on an odd margin (torchvision's or Hugging Face's rule).
    pub crop_rounding: CropRounding,
    /// uint8 values are multiplied by this (in f64, then rounded to f32) before the mean is
    /// subtracted: `1 / 255` (`ToTensor`, Hugging Face `do_rescale`), 1 for `do_rescale: false`.
    pub rescale_factor: f64,
    /// Per-channel mean (RGB) subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB) divided by after subtracting the mean.
    pub std: [f32; 3],
    /// What prescribed this pipeline, for logs and GetModelInfo: [`OFFICIAL_SOURCE`],
    /// `timm pretrained_cfg`, `Hugging Face preprocessor_config.json (ViTImageProcessor)`, with
    /// ` + --flag value` for each flag that overrode it.
    pub source: String,
    /// Images with more pixels (width × height, read from the header) are refused before decoding.
    pub max_image_pixels: u64,
    /// Most bytes a decoder may allocate for one image (`image::Limits::max_alloc`).
    pub max_decode_alloc: u64,
}

impl PreprocessConfig {
    /// The official eval transform for a model of input size `img_size`: resize the shorter side
    /// to `int(256 / 224 * img_size)` (292 for 256, 256 for 224, 219 for 192) with Pillow's
    /// bicubic, center-crop `img_size` (torchvision's rounding), ImageNet mean/std, Pillow's pixel
    /// limit and a 512 MiB decode allocation limit.
    pub fn official(img_size: u32) -> Self {
        // Python: int((256 / 224) * img_size), evaluated in f64 exactly as CPython does.
        let resize_size = ((256.0_f64 / 224.0) * f64::from(img_size)) as u32;
        Self {
            crop_size: img_size,
            resize_size,
            crop_mode: CropMode::Center,
            interpolation: Interpolation::Bicubic,
            crop_rounding: CropRounding::Torchvision,
            rescale_factor: DEFAULT_RESCALE_FACTOR,
            mean: IMAGENET_DEFAULT_MEAN,
            std: IMAGENET_DEFAULT_STD,
            source: OFFICIAL_SOURCE.to_string(),
            max_image_pixels: PIL_MAX_IMAGE_PIXELS,
            max_decode_alloc: DEFAULT_MAX_DECODE_ALLOC,
        }
    }

    /// [`Self::official`] (the name this constructor had first).
    pub fn for_image_size(img_size: u32) -> Self {
        Self::official(img_size)
    }

    /// Length of the NCHW tensor of one image: `CHANNELS × crop_size × crop_size`.
    pub fn tensor_len(&self) -> usize {
        CHANNELS * self.crop_size as usize * self.crop_size as usize
    }

    /// The colour of pixels the crop adds outside the image: `round(255 · mean)` per channel in
    /// `border` mode (timm's `CenterCropOrPad` fill), black otherwise (torchvision's and Hugging
    /// Face's zero padding).
    pub fn pad_fill(&self) -> [u8; 3] {
        if self.crop_mode == CropMode::Border {
            // Python: round(255 * v), half to even; clamped for a mean outside [0, 1].
            self.mean
                .map(|m| (255.0 * f64::from(m)).round_ties_even().clamp(0.0, 255.0) as u8)
        } else {
            [0; 3]
        }
    }

    /// One line for logs: `resize shorter side to 292 (bicubic), center crop 256, ...`.
    pub fn describe(&self) -> String {
        let resize = match self.crop_mode {
            CropMode::Center => format!("resize shorter side to {}", self.resize_size),
            CropMode::Squash => format!("resize to {0}x{0}", self.resize_size),
            CropMode::Border => format!("resize longer side to {}", self.resize_size),
            CropMode::CropOnly => "no resize".to_string(),
        };
        let filter = match self.crop_mode {
            CropMode::CropOnly => String::new(),
            _ => format!(" ({})", self.interpolation),
        };
        let pad = match self.crop_mode {
            CropMode::Border => format!(" (padded with {:?})", self.pad_fill()),
            _ => String::new(),
        };
        format!(
            "{resize}{filter}, center crop {crop}{pad} ({mode}), x{rescale}, mean {mean:?}, std {std:?}, from {source}",
            crop = self.crop_size,
            mode = self.crop_mode,
            rescale = self.rescale_factor,
            mean = self.mean,
            std = self.std,
            source = self.source,
        )
    }

    /// Checks that the parameters describe a transform that can run.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let invalid = |what: String| Err(PreprocessError::InvalidConfig(what));
        if self.crop_size == 0 || self.crop_size > MAX_SIDE {
            return invalid(format!(
                "crop_size = {} must be 1 to {MAX_SIDE}",
                self.crop_size
            ));
        }
        if self.crop_mode != CropMode::CropOnly
            && (self.resize_size == 0 || self.resize_size > MAX_SIDE)
        {
            return invalid(format!(
                "resize_size = {} must be 1 to {MAX_SIDE}",
                self.resize_size
            ));
        }
        if !(self.rescale_factor.is_finite() && self.rescale_factor > 0.0) {
            return invalid(format!(
                "rescale_factor = {} must be finite and positive",
                self.rescale_factor
            ));
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
        Self::official(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_fill_is_round_255_mean() {
        let mut cfg = PreprocessConfig::official(224);
        assert_eq!(cfg.pad_fill(), [0, 0, 0]);
        cfg.crop_mode = CropMode::Border;
        // timm: [round(255 * v) for v in IMAGENET_DEFAULT_MEAN] = [124, 116, 104].
        assert_eq!(cfg.pad_fill(), [124, 116, 104]);
        cfg.mean = [0.5, 0.0, 2.0]; // round(127.5) = 128 (half to even), clamped above
        assert_eq!(cfg.pad_fill(), [128, 0, 255]);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let ok = PreprocessConfig::official(256);
        assert!(ok.validate().is_ok());
        let cases: [(PreprocessConfig, &str); 5] = [
            (
                PreprocessConfig {
                    crop_size: MAX_SIDE + 1,
                    ..ok.clone()
                },
                "crop_size",
            ),
            (
                PreprocessConfig {
                    resize_size: 0,
                    ..ok.clone()
                },
                "resize_size",
            ),
            (
                PreprocessConfig {
                    rescale_factor: f64::NAN,
                    ..ok.clone()
                },
                "rescale_factor",
            ),
            (
                PreprocessConfig {
                    std: [1.0, 0.0, 1.0],
                    ..ok.clone()
                },
                "std[1]",
            ),
            (
                PreprocessConfig {
                    mean: [1.0, 1.0, f32::INFINITY],
                    ..ok.clone()
                },
                "mean[2]",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let crop_only = PreprocessConfig {
            crop_mode: CropMode::CropOnly,
            resize_size: 0,
            ..ok
        };
        assert!(crop_only.validate().is_ok());
    }
}
