//! What every decoder settles from an image's header before decoding a pixel: the checks it
//! makes ([`check_header`]) and what decoding will allocate ([`DecodeCost`], which
//! [`super::working_set`](mod@super::working_set) adds up).

use super::{PreprocessConfig, PreprocessError};

/// Allowance for a decoder's tables and small buffers (inflate window, LZW dictionary, Huffman
/// tables, libjpeg's pools).
pub const DECODER_FIXED_BYTES: u64 = 1 << 20;

/// What decoding one image allocates (see [`super::working_set`](mod@super::working_set)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCost {
    /// Width the decoder outputs (GIF: the logical screen).
    pub width: u32,
    /// Height the decoder outputs.
    pub height: u32,
    /// `jpeg`, `png`, `bmp`, `gif`, `webp` or `tiff`.
    pub format: &'static str,
    /// The decoder's own buffers (a bound).
    pub decoder: u64,
    /// The decoded image at its native layout.
    pub output: u64,
    /// The copy converted to 8-bit RGB (0 when the output already is RGB8).
    pub conversion: u64,
}

/// The header checks every decoder makes before decoding pixels.
pub(super) fn check_header(
    format: &str,
    width: u32,
    height: u32,
    cfg: &PreprocessConfig,
) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSize {
            format: format.to_string(),
            width,
            height,
        });
    }
    if u64::from(width) * u64::from(height) > cfg.max_image_pixels {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            max_pixels: cfg.max_image_pixels,
        });
    }
    Ok(())
}
