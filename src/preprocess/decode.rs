//! `PIL.Image.open(f).convert('RGB')`: decode an encoded image to 8-bit RGB, under limits.
//!
//! Formats: JPEG (baseline, progressive, arithmetic, grey, CMYK/YCCK; decoded by libjpeg-turbo as
//! in Pillow, see `preprocess/jpeg.rs`), PNG (all bit depths and colour types,
//! palette with or without tRNS), BMP, GIF (first frame), WebP (lossy, lossless, first frame), TIFF
//! (first page). The format is recognised from the content, as Pillow does, not from a name.
//!
//! Conversion to RGB follows Pillow's `convert('RGB')`:
//!
//! | decoded as                          | Pillow mode        | RGB                                |
//! |-------------------------------------|--------------------|------------------------------------|
//! | grey 1/2/4/8-bit                    | `1` / `L`          | grey replicated (scaled to 0..255) |
//! | grey + alpha (PNG LA 8)             | `LA`               | grey replicated, alpha dropped     |
//! | palette (± tRNS / GIF transparency) | `P`                | palette colour, transparency dropped |
//! | RGBA                                | `RGBA`             | alpha dropped, **not** composited  |
//! | RGB/RGBA 16-bit (PNG, TIFF)         | `RGB` / `RGBA`     | high byte (`v >> 8`)               |
//! | grey+alpha 16-bit (PNG LA 16)       | `RGBA`             | high byte of grey                  |
//! | grey 16-bit (PNG, TIFF)             | `I;16`             | `min(v, 255)` — Pillow clamps, it does not rescale |
//! | CMYK / YCCK JPEG                    | `CMYK`             | inverted, then Pillow's `cmyk2rgb` |
//!
//! The grey 16-bit row reproduces a Pillow quirk on purpose (a 16-bit grey photo comes out nearly
//! white, exactly as in the official pipeline). Float TIFFs use the `image` crate's [0, 1] → 0..255
//! scaling (Pillow has no float RGB mode to compare with).
//!
//! Limits: the header is read first; a zero side, more than `max_image_pixels` pixels, or an
//! output buffer over `max_decode_alloc` bytes is refused before any pixel is decoded, and the
//! decoder itself runs under the remaining allocation budget (`image::Limits::max_alloc`).

use std::io::Cursor;

use image::error::LimitErrorKind;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use super::header::check_header;
use super::{PreprocessConfig, PreprocessError};

/// Decodes `bytes` (JPEG, PNG, BMP, GIF, WebP or TIFF, recognised from the content) to 8-bit RGB
/// the way `PIL.Image.open(f).convert('RGB')` does, refusing images over the limits of `cfg`
/// before decoding their pixels.
pub fn decode_rgb8(bytes: &[u8], cfg: &PreprocessConfig) -> Result<RgbImage, PreprocessError> {
    decode_rgb8_with_format(bytes, cfg).map(|(img, _)| img)
}

/// [`decode_rgb8`], also returning the short name of the format.
pub(crate) fn decode_rgb8_with_format(
    bytes: &[u8],
    cfg: &PreprocessConfig,
) -> Result<(RgbImage, &'static str), PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let (format, name) = detect_image_format(bytes)?;
    // The decoders are written not to panic on malformed data; should one do so anyway, the
    // request fails with a decode error instead of taking the worker down.
    match std::panic::catch_unwind(|| decode_known_format(bytes, format, name, cfg)) {
        Ok(result) => result.map(|img| (img, name)),
        Err(_) => Err(PreprocessError::Decode {
            format: name.to_string(),
            message: "the decoder failed on malformed data".to_string(),
        }),
    }
}

/// The accepted formats, recognised from their signature like Pillow does.
pub(super) fn detect_image_format(
    bytes: &[u8],
) -> Result<(ImageFormat, &'static str), PreprocessError> {
    let format = image::guess_format(bytes).map_err(|_| PreprocessError::UnknownFormat)?;
    let name = match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Tiff => "tiff",
        other => {
            return Err(PreprocessError::UnsupportedFormat {
                format: other
                    .extensions_str()
                    .first()
                    .unwrap_or(&"this")
                    .to_uppercase(),
            })
        }
    };
    Ok((format, name))
}

fn decode_known_format(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
    cfg: &PreprocessConfig,
) -> Result<RgbImage, PreprocessError> {
    if format == ImageFormat::Jpeg {
        return super::jpeg::decode_jpeg(bytes, cfg);
    }
    if format == ImageFormat::Png {
        check_png_palette(bytes).map_err(|message| PreprocessError::Decode {
            format: name.to_string(),
            message,
        })?;
    }
    let to_error = |e: ImageError| map_image_error(e, name, cfg);
    let mut limits = Limits::default();
    limits.max_alloc = Some(cfg.max_decode_alloc);

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.clone());
    // Reads the header only.
    let mut decoder = reader.into_decoder().map_err(to_error)?;
    let (width, height) = decoder.dimensions();
    check_header(name, width, height, cfg)?;
    // The output buffer counts against the budget; the decoder gets what is left.
    limits.reserve(decoder.total_bytes()).map_err(to_error)?;
    decoder.set_limits(limits).map_err(to_error)?;
    let img = DynamicImage::from_decoder(decoder).map_err(to_error)?;
    Ok(convert_rgb8_like_pil(img))
}

/// Refuse a palette PNG whose `PLTE` chunk is not 1 to 256 RGB entries (a length that is not a
/// multiple of 3, or over 768 bytes): libpng refuses it ("invalid palette length"), and the `png`
/// crate (0.18) panics on it (found by fuzzing, see `fuzz/README.md`). Only the chunks before the
/// image data are read; a file cut short there is left to the decoder to report.
pub(super) fn check_png_palette(bytes: &[u8]) -> Result<(), String> {
    const SIGNATURE: usize = 8;
    let mut at = SIGNATURE;
    let mut indexed = false;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        match kind {
            // Colour type (IHDR byte 9) 3: indexed.
            b"IHDR" => indexed = bytes.get(at + 8 + 9) == Some(&3),
            b"PLTE" if indexed && (len == 0 || !len.is_multiple_of(3) || len > 3 * 256) => {
                return Err(format!(
                    "invalid palette length {len} bytes (PLTE holds 1 to 256 RGB entries)"
                ));
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        // Length, type, data, CRC.
        at = match at.checked_add(12).and_then(|a| a.checked_add(len)) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

pub(super) fn map_image_error(
    e: ImageError,
    format: &'static str,
    cfg: &PreprocessConfig,
) -> PreprocessError {
    let decode = |message: String| PreprocessError::Decode {
        format: format.to_string(),
        message,
    };
    match e {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::InsufficientMemory => PreprocessError::MemoryLimit {
                format: format.to_string(),
                limit_bytes: cfg.max_decode_alloc,
            },
            _ => decode(format!(
                "image dimensions exceed the decoder limits ({limit})"
            )),
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            decode("the data ends before the image is complete (truncated file?)".to_string())
        }
        ImageError::Unsupported(u) => decode(format!("unsupported feature: {u}")),
        other => decode(other.to_string()),
    }
}

/// Pillow's `convert('RGB')` for each pixel layout the decoders produce (see the module table).
fn convert_rgb8_like_pil(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    // One allocation of exactly `w·h·3` bytes (no growth, no reallocation copies): the size
    // [`super::working_set`] counts for this copy.
    let rgb = |samples: &mut dyn Iterator<Item = u8>| {
        let mut raw = Vec::with_capacity(w as usize * h as usize * 3);
        raw.extend(samples);
        RgbImage::from_raw(w, h, raw).expect("3 bytes per pixel")
    };
    match img {
        DynamicImage::ImageRgb8(rgb8) => rgb8,
        DynamicImage::ImageLuma8(l) => rgb(&mut l.as_raw().iter().flat_map(|&v| [v, v, v])),
        DynamicImage::ImageLumaA8(la) => {
            rgb(&mut la.as_raw().chunks_exact(2).flat_map(|p| [p[0]; 3]))
        }
        DynamicImage::ImageRgba8(rgba) => rgb(&mut rgba
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])),
        // Pillow opens 16-bit grey as `I;16`; its conversion to 8 bits clamps instead of scaling.
        DynamicImage::ImageLuma16(l) => {
            rgb(&mut l.as_raw().iter().flat_map(|&v| [v.min(255) as u8; 3]))
        }
        // Pillow unpacks 16-bit LA / RGB / RGBA PNGs keeping the most significant byte.
        DynamicImage::ImageLumaA16(la) => rgb(&mut la
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| [(p[0] >> 8) as u8; 3])),
        DynamicImage::ImageRgb16(rgb16) => rgb(&mut rgb16.as_raw().iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(rgba) => rgb(&mut rgba
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])),
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PreprocessConfig {
        PreprocessConfig::for_image_size(256)
    }

    /// A 1×1 palette PNG (index 0) whose PLTE chunk holds `palette`.
    fn palette_png(palette: &[u8]) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            out.extend(kind);
            out.extend(data);
            let mut h = crc32fast::Hasher::new();
            h.update(kind);
            h.update(data);
            out.extend(h.finalize().to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        // 1×1, 8 bits, colour type 3 (palette).
        chunk(&mut png, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 3, 0, 0, 0]);
        chunk(&mut png, b"PLTE", palette);
        // zlib, one stored block of the row [filter 0, index 0]; Adler-32 of it is 0x00020001.
        let idat = [0x78, 0x01, 0x01, 2, 0, 0xfd, 0xff, 0, 0, 0, 2, 0, 1];
        chunk(&mut png, b"IDAT", &idat);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn palette_pngs_with_a_bad_plte_length_are_refused_not_panicking() {
        // Found by fuzzing: the png crate panics on a PLTE chunk whose length is not a multiple of 3.
        let img = decode_rgb8(&palette_png(&[10, 20, 30]), &cfg()).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [10, 20, 30]);
        // 4 and 5 bytes: the png crate panics; under 3 or over 768 it refuses them itself (our
        // check answers first, with one message for all).
        for palette in [
            &[1u8, 2, 3, 4][..],
            &[1, 2, 3, 4, 5],
            &[10, 20],
            &[1],
            &[],
            &[7; 771],
        ] {
            match decode_rgb8(&palette_png(palette), &cfg()) {
                Err(PreprocessError::Decode { format, message }) => {
                    assert_eq!(format, "png");
                    assert_eq!(
                        message,
                        format!(
                            "invalid palette length {} bytes (PLTE holds 1 to 256 RGB entries)",
                            palette.len()
                        )
                    );
                }
                other => panic!("PLTE of {}: {other:?}", palette.len()),
            }
        }
    }

    #[test]
    fn grey16_clamps_and_rgb16_keeps_high_byte_like_pillow() {
        // Pillow 13: I;16 [0, 1, 255, 256, 300, 65535] -> RGB [0, 1, 255, 255, 255, 255];
        // RGB;16B -> high byte.
        let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
            6,
            1,
            vec![0, 1, 255, 256, 300, 65535],
        )
        .unwrap();
        let rgb = convert_rgb8_like_pil(DynamicImage::ImageLuma16(grey));
        let r: Vec<u8> = rgb.pixels().map(|p| p[0]).collect();
        assert_eq!(r, [0, 1, 255, 255, 255, 255]);
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));

        let rgb16 =
            image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![2732, 43567, 255])
                .unwrap();
        let rgb = convert_rgb8_like_pil(DynamicImage::ImageRgb16(rgb16));
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 170, 0]);
    }

    #[test]
    fn alpha_is_dropped_not_composited() {
        let rgba = image::RgbaImage::from_raw(2, 1, vec![10, 20, 30, 0, 40, 50, 60, 128]).unwrap();
        let rgb = convert_rgb8_like_pil(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.as_raw(), &[10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn unknown_and_unsupported_formats_are_named() {
        assert!(matches!(
            decode_rgb8(b"hello world", &cfg()),
            Err(PreprocessError::UnknownFormat)
        ));
        assert!(matches!(
            decode_rgb8(&[], &cfg()),
            Err(PreprocessError::Empty)
        ));
        // ICO signature: recognised, not served.
        let err = decode_rgb8(&[0, 0, 1, 0, 1, 0, 16, 16], &cfg()).unwrap_err();
        assert!(
            matches!(err, PreprocessError::UnsupportedFormat { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ICO"), "{err}");
    }
}
