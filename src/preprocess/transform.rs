//! [`preprocess_into`]: the whole eval transform of one image (decode, resize + center crop,
//! normalise).

use std::time::Instant;

use super::decode::decode_rgb8_with_format;
use super::normalize::normalize_into;
use super::resize::resize_center_crop;
use super::{PreprocessConfig, PreprocessError};

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
    let (img, format) = decode_rgb8_with_format(bytes, cfg)?;
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
