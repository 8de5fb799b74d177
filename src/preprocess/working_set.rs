//! How much memory preprocessing one encoded image takes, estimated from its header alone (no
//! pixel is decoded): what the server's memory budget (`--memory-budget`) is charged before the
//! image is decoded.
//!
//! [`preprocess_into`](super::preprocess_into) goes through two phases; its peak is the larger:
//!
//! * **decode**: the decoder's output at its native pixel format and bit depth
//!   ([`DecodeCost::output`]: `ImageDecoder::total_bytes`, or libjpeg's 3/4 bytes per pixel), the
//!   decoder's own buffers ([`DecodeCost::decoder`], per format below) and the conversion copy to
//!   8-bit RGB ([`DecodeCost::conversion`], `w·h·3`, none when the decoder already gives RGB8);
//! * **resize**: the RGB image, the intermediate rows of the horizontal pass, the weight tables and
//!   the crop ([`super::resize::working_bytes`]).
//!
//! Both phases also hold the output tensor (`3 · crop² · 4` bytes) the caller allocated.
//!
//! Decoder buffers counted (read from the decoders of `image` 0.25, `gif` 0.14, `png` 0.18,
//! `tiff` 0.11, `image-webp` 0.2 and libjpeg-turbo):
//!
//! | format | counted |
//! |---|---|
//! | JPEG | DCT coefficients of the whole image when it has several scans, 64 padded rows per component |
//! | PNG | 4 rows at the output's bytes per pixel (current/previous row, unfiltering, expansion) |
//! | GIF | output is the **logical screen** (RGBA8), whatever the frame's size; plus the frame's palette indices and, when the first frame does not span the screen's width from its left edge, a separate RGBA frame buffer (`gif` caps it at 50 MB) |
//! | TIFF | the whole image at its stored sample layout (`tiff` decodes into it, then copies), twice (one chunk's buffer), plus the encoded size |
//! | WebP | twice the image as 4 bytes per pixel, padded to 16×16 macroblocks (VP8L staging or canvas, VP8 YUV planes, transforms) |
//! | BMP | 2 rows of 4 bytes per pixel |
//!
//! Each also gets [`DECODER_FIXED_BYTES`] (tables, inflate windows, LZW dictionaries). The output
//! and conversion buffers are exact; the decoders' own are bounds. Not modelled: Huffman tables of
//! a hostile lossless WebP with very many prefix-code groups (bounded by the per-image
//! `max_decode_alloc` only through the output).

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};

use super::header::check_header;
pub use super::header::{DecodeCost, DECODER_FIXED_BYTES};
use super::{PreprocessConfig, PreprocessError};

/// The `gif` crate's default cap on one frame's buffer.
const GIF_FRAME_LIMIT: u64 = 50_000_000;

/// The peak memory of preprocessing one image, and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingSet {
    /// What decoding allocates.
    pub decode: DecodeCost,
    /// The RGB image (`w·h·3`).
    pub rgb: u64,
    /// What the resize + crop allocates ([`super::resize::working_bytes`]).
    pub resize: u64,
    /// The output tensor (`3 · crop² · 4`).
    pub tensor: u64,
}

impl WorkingSet {
    /// Peak bytes alive at once: the tensor plus the larger of the decode phase (output, decoder
    /// buffers, RGB copy) and the resize phase (RGB image, resize buffers).
    pub fn peak(&self) -> u64 {
        let d = &self.decode;
        let decode = d.output + d.decoder + d.conversion;
        let resize = self.rgb + self.resize;
        self.tensor + decode.max(resize)
    }
}

/// The memory [`super::preprocess_into`] needs for `bytes` under `cfg`, from the header only.
///
/// Refuses what decoding would refuse from the header (empty, unknown or unsupported format, a
/// zero side, more than `max_image_pixels`, a decoder output over `max_decode_alloc`, a header the
/// decoder cannot read) with the same error, before any pixel is decoded.
pub fn working_set(bytes: &[u8], cfg: &PreprocessConfig) -> Result<WorkingSet, PreprocessError> {
    cfg.validate()?;
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let (format, name) = super::decode::detect_image_format(bytes)?;
    let decode = if format == ImageFormat::Jpeg {
        super::jpeg::decode_cost(bytes, cfg)?
    } else {
        // As in decoding: a decoder that panics on a malformed header is a decode error.
        match catch_unwind(AssertUnwindSafe(|| {
            image_crate_cost(bytes, format, name, cfg)
        })) {
            Ok(result) => result?,
            Err(_) => {
                return Err(PreprocessError::Decode {
                    format: name.to_string(),
                    message: "the decoder failed on malformed data".to_string(),
                })
            }
        }
    };
    let rgb = u64::from(decode.width) * u64::from(decode.height) * 3;
    Ok(WorkingSet {
        decode,
        rgb,
        resize: super::resize::working_bytes(decode.width, decode.height, cfg),
        tensor: cfg.tensor_len() as u64 * 4,
    })
}

fn image_crate_cost(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
    cfg: &PreprocessConfig,
) -> Result<DecodeCost, PreprocessError> {
    if format == ImageFormat::Png {
        super::decode::check_png_palette(bytes).map_err(|message| PreprocessError::Decode {
            format: name.to_string(),
            message,
        })?;
    }
    let to_error = |e| super::decode::map_image_error(e, name, cfg);
    let mut limits = Limits::default();
    limits.max_alloc = Some(cfg.max_decode_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(to_error)?;
    let (width, height) = decoder.dimensions();
    check_header(name, width, height, cfg)?;
    let output = decoder.total_bytes();
    if output > cfg.max_decode_alloc {
        return Err(PreprocessError::MemoryLimit {
            format: name.to_string(),
            limit_bytes: cfg.max_decode_alloc,
        });
    }
    let (w, h) = (u64::from(width), u64::from(height));
    let pixels = w * h;
    let bytes_per_pixel = u64::from(decoder.color_type().bytes_per_pixel());
    let native = decoder.original_color_type();
    let conversion = if decoder.color_type() == image::ColorType::Rgb8 {
        0
    } else {
        pixels * 3
    };
    let decoder_bytes = match format {
        ImageFormat::Png => 4 * w * bytes_per_pixel,
        ImageFormat::Gif => gif_frame_bytes(bytes, width, height),
        ImageFormat::Tiff => {
            let stored = (w * u64::from(native.bits_per_pixel())).div_ceil(8) * h;
            2 * stored + bytes.len() as u64
        }
        ImageFormat::WebP => 2 * w.next_multiple_of(16) * h.next_multiple_of(16) * 4,
        _ => 2 * w * 4,
    };
    Ok(DecodeCost {
        width,
        height,
        format: name,
        decoder: decoder_bytes + DECODER_FIXED_BYTES,
        output,
        conversion,
    })
}

/// The GIF decoder's buffers besides the screen-sized output: the first frame's palette indices
/// (1 byte per pixel) and, unless the frame starts at the left edge and spans the screen's width
/// (then it is decoded in place), an RGBA buffer of the frame. The frame's size comes from its
/// image descriptor (a frame may be larger than the screen); when the descriptor cannot be
/// found, the largest frame buffer the decoder would allocate.
fn gif_frame_bytes(bytes: &[u8], screen_width: u32, screen_height: u32) -> u64 {
    let screen = u64::from(screen_width) * u64::from(screen_height);
    match gif_first_frame(bytes) {
        Some((left, top, width, height)) => {
            let pixels = u64::from(width) * u64::from(height);
            let in_place = left == 0
                && u32::from(width) == screen_width
                && u64::from(top) + u64::from(height) <= u64::from(screen_height);
            pixels
                + if in_place {
                    0
                } else {
                    (pixels * 4).min(GIF_FRAME_LIMIT)
                }
        }
        None => screen + GIF_FRAME_LIMIT,
    }
}

/// `(left, top, width, height)` of the first image descriptor, skipping the global colour table
/// and extension blocks.
fn gif_first_frame(bytes: &[u8]) -> Option<(u16, u16, u16, u16)> {
    let flags = *bytes.get(10)?;
    let mut i = 13usize;
    if flags & 0x80 != 0 {
        i += 3 << ((flags & 7) + 1);
    }
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    };
    loop {
        match *bytes.get(i)? {
            0x2C => {
                return Some((
                    u16_at(i + 1)?,
                    u16_at(i + 3)?,
                    u16_at(i + 5)?,
                    u16_at(i + 7)?,
                ));
            }
            0x21 => {
                i += 2;
                loop {
                    let n = usize::from(*bytes.get(i)?);
                    i += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_descriptor_is_found_after_palette_and_extensions() {
        let mut gif = b"GIF89a".to_vec();
        gif.extend([0x10, 0x27, 0x10, 0x27, 0x80, 0, 0]); // 10000x10000, 2-colour global table
        gif.extend([0; 6]);
        gif.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]); // graphic control extension
        gif.extend([0x2C, 5, 0, 6, 0, 1, 0, 2, 0, 0]);
        assert_eq!(gif_first_frame(&gif), Some((5, 6, 1, 2)));
        // 1x2 frame not in place: its indices plus its RGBA buffer.
        assert_eq!(gif_frame_bytes(&gif, 10000, 10000), 2 + 8);
        assert_eq!(gif_first_frame(&gif[..20]), None);
        assert_eq!(gif_frame_bytes(&gif[..20], 10, 10), 100 + GIF_FRAME_LIMIT);
    }
}
