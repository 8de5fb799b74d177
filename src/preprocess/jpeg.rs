//! JPEG decoding with libjpeg-turbo's decoder (through the `mozjpeg` crate), the library Pillow uses,
//! with Pillow's defaults (integer "slow" IDCT, fancy upsampling), so the pixels are bit-identical
//! to `Image.open(f).convert('RGB')`. Pure-Rust decoders differ from it by up to 4 levels on
//! 4:2:0 photos (chroma upsampling and IDCT rounding), which is why this one is used.
//!
//! Pillow's behaviour is kept where it matters for the result:
//! * grey JPEGs are replicated to RGB;
//! * CMYK and YCCK JPEGs are read as CMYK, inverted (Pillow always assumes Adobe polarity,
//!   rawmode `CMYK;I`) and converted with Pillow's `cmyk2rgb`;
//! * a file that ends before the image data does is refused (Pillow raises "image file is
//!   truncated"); other libjpeg warnings (e.g. extraneous bytes) are ignored, as in Pillow.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::RgbImage;
use mozjpeg::Decompress;
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, JWRN_JPEG_EOF, J_COLOR_SPACE};

use super::header::{check_header, DecodeCost, DECODER_FIXED_BYTES};
use super::{PreprocessConfig, PreprocessError};

/// Why libjpeg stopped; carried by the unwind out of libjpeg's error handler.
struct LibjpegFailure(String);

/// Decodes a JPEG to RGB like Pillow, refusing it from the header when it is over the limits.
pub(super) fn decode_jpeg(
    bytes: &[u8],
    cfg: &PreprocessConfig,
) -> Result<RgbImage, PreprocessError> {
    // libjpeg reports fatal errors by unwinding out of `error_exit` (see `fail`).
    match catch_unwind(AssertUnwindSafe(|| decode_jpeg_unwinding(bytes, cfg))) {
        Ok(result) => result,
        Err(payload) => Err(decode_error(
            if let Some(f) = payload.downcast_ref::<LibjpegFailure>() {
                f.0.clone()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else {
                "the decoder failed on malformed data".to_string()
            },
        )),
    }
}

/// What decoding this JPEG allocates, from its header (see
/// [`super::working_set`](mod@super::working_set)): libjpeg's output (3 bytes per pixel, 4 for
/// CMYK/YCCK), the CMYK → RGB copy, and libjpeg's own memory — its whole-image buffer of 16-bit
/// DCT coefficients when the image has several scans (progressive, or sequential with components
/// in separate scans: `has_multiple_scans`), each component padded to whole blocks of its
/// sampling factors, plus row buffers (≤ 64 rows of the padded width per component) and a fixed
/// allowance for tables.
pub(super) fn decode_cost(
    bytes: &[u8],
    cfg: &PreprocessConfig,
) -> Result<DecodeCost, PreprocessError> {
    match catch_unwind(AssertUnwindSafe(|| decode_cost_unwinding(bytes, cfg))) {
        Ok(result) => result,
        Err(payload) => Err(decode_error(
            if let Some(f) = payload.downcast_ref::<LibjpegFailure>() {
                f.0.clone()
            } else {
                "the decoder failed on malformed data".to_string()
            },
        )),
    }
}

fn decode_cost_unwinding(
    bytes: &[u8],
    cfg: &PreprocessConfig,
) -> Result<DecodeCost, PreprocessError> {
    let decoder = Decompress::builder()
        .with_err(error_manager())
        .from_mem(bytes)
        .map_err(|e| decode_error(e.to_string()))?;
    let (w, h) = (
        u32::try_from(decoder.width()).unwrap_or(u32::MAX),
        u32::try_from(decoder.height()).unwrap_or(u32::MAX),
    );
    check_header("jpeg", w, h, cfg)?;
    let pixels = u64::from(w) * u64::from(h);
    let cmyk = matches!(
        decoder.color_space(),
        J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
    );
    let components = decoder.components();
    let max_h = components
        .iter()
        .map(|c| c.h_samp_factor.clamp(1, 4) as u64)
        .max()
        .unwrap_or(1);
    let max_v = components
        .iter()
        .map(|c| c.v_samp_factor.clamp(1, 4) as u64)
        .max()
        .unwrap_or(1);
    let blocks = |size: u32, samp: u64, max: u64| {
        (u64::from(size) * samp)
            .div_ceil(max * 8)
            .next_multiple_of(samp)
    };
    let coefficients: u64 = if has_multiple_scans(bytes, components.len()) {
        components
            .iter()
            .map(|c| {
                let (hs, vs) = (
                    c.h_samp_factor.clamp(1, 4) as u64,
                    c.v_samp_factor.clamp(1, 4) as u64,
                );
                blocks(w, hs, max_h) * blocks(h, vs, max_v) * 64 * 2
            })
            .sum()
    } else {
        0
    };
    let padded_width = u64::from(w).next_multiple_of(32) + 64;
    let rows = 64 * padded_width * components.len().max(1) as u64;
    let output = pixels * if cmyk { 4 } else { 3 };
    Ok(DecodeCost {
        width: w,
        height: h,
        format: "jpeg",
        decoder: coefficients + rows + DECODER_FIXED_BYTES,
        output,
        conversion: if cmyk { pixels * 3 } else { 0 },
    })
}

/// libjpeg's `has_multiple_scans`: progressive, or a first scan that does not carry every
/// component. Read from the markers up to the first SOS; `true` when they cannot be read (the
/// larger estimate).
fn has_multiple_scans(bytes: &[u8], components: usize) -> bool {
    let mut i = 2; // after SOI
    let mut progressive = false;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return true;
        }
        match bytes[i + 1] {
            0xFF => i += 1, // fill byte
            0xC2 | 0xC6 | 0xCA | 0xCE => {
                progressive = true;
                i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            }
            0xDA => {
                let scan_components = bytes.get(i + 4).map_or(0, |&n| usize::from(n));
                return progressive || scan_components < components;
            }
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            _ => i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])),
        }
    }
    true
}

fn decode_error(message: String) -> PreprocessError {
    PreprocessError::Decode {
        format: "jpeg".to_string(),
        message,
    }
}

fn decode_jpeg_unwinding(
    bytes: &[u8],
    cfg: &PreprocessConfig,
) -> Result<RgbImage, PreprocessError> {
    let io_error = |e: std::io::Error| decode_error(e.to_string());
    // Reads the header only (up to the first SOS).
    let decoder = Decompress::builder()
        .with_err(error_manager())
        .from_mem(bytes)
        .map_err(io_error)?;
    let (width, height) = (decoder.width(), decoder.height());
    let (w, h) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    if w == 0 || h == 0 {
        return Err(PreprocessError::ZeroSize {
            format: "jpeg".to_string(),
            width: w,
            height: h,
        });
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > cfg.max_image_pixels {
        return Err(PreprocessError::TooLarge {
            width: w,
            height: h,
            max_pixels: cfg.max_image_pixels,
        });
    }
    // Output (≤ 4 bytes per pixel) plus, for progressive files, libjpeg's whole-image buffer of
    // 16-bit DCT coefficients.
    let components = decoder.components().len() as u64;
    let coefficients = if is_progressive(bytes) {
        2 * components * pixels
    } else {
        0
    };
    if 4 * pixels + coefficients > cfg.max_decode_alloc {
        return Err(PreprocessError::MemoryLimit {
            format: "jpeg".to_string(),
            limit_bytes: cfg.max_decode_alloc,
        });
    }

    let cmyk = matches!(
        decoder.color_space(),
        J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
    );
    let out_space = if cmyk {
        J_COLOR_SPACE::JCS_CMYK
    } else {
        J_COLOR_SPACE::JCS_RGB
    };
    let mut started = decoder.to_colorspace(out_space).map_err(io_error)?;
    let samples = started.read_scanlines::<u8>().map_err(io_error)?;
    // Not calling `finish`: whatever follows the last scan line is not looked at, as in Pillow.
    let channels = if cmyk { 4 } else { 3 };
    if samples.len() != width * height * channels {
        return Err(decode_error("the image data is incomplete".to_string()));
    }
    let rgb = if cmyk {
        cmyk_to_rgb_like_pil(&samples)
    } else {
        samples
    };
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| decode_error("unexpected output size".to_string()))
}

/// Pillow: CMYK JPEG data is read with rawmode `CMYK;I` (inverted), then `cmyk2rgb`:
/// `nk = 255 - k; out = CLIP8(nk - MULDIV255(c, nk))`.
fn cmyk_to_rgb_like_pil(samples: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    // Exactly 3 bytes per pixel, allocated once (what `working_set` counts for this copy).
    let mut rgb = Vec::with_capacity(samples.len() / 4 * 3);
    rgb.extend(samples.chunks_exact(4).flat_map(|p| {
        let [c, m, y, k] = [p[0], p[1], p[2], p[3]].map(|v| i32::from(255 - v));
        let nk = 255 - k;
        [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
    }));
    rgb
}

/// Whether the frame is progressive (SOF2/6/10/14), found by walking the marker segments.
fn is_progressive(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        match bytes[i + 1] {
            0xFF => i += 1, // fill byte
            0xC2 | 0xC6 | 0xCA | 0xCE => return true,
            0xC0 | 0xC1 | 0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xD9 | 0xDA => return false,
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            _ => i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])),
        }
    }
    false
}

/// libjpeg's standard error manager with two handlers replaced: fatal errors unwind back to
/// [`decode_jpeg`] instead of calling `exit()`, and warnings are silent except the one that says
/// the data ended early.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_error_mgr` is a C struct of integers, raw pointers and optional function
    // pointers, for all of which all-zero bytes are a valid value; `jpeg_std_error` then fills in
    // every field.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: `err` is a valid, exclusively borrowed error manager.
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(fail);
    err.emit_message = Some(warn);
    err
}

/// `error_exit`: must not return to libjpeg. Unwinds (without the panic hook) with the message.
extern "C-unwind" fn fail(cinfo: &mut jpeg_common_struct) {
    let message = libjpeg_message(cinfo);
    resume_unwind(Box::new(LibjpegFailure(message)));
}

/// `emit_message`: level -1 is a warning, higher levels are traces.
extern "C-unwind" fn warn(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: `cinfo.err` points to the error manager installed by `error_manager`, which the
    // `Decompress` owns for as long as libjpeg can call back.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == JWRN_JPEG_EOF as c_int {
        resume_unwind(Box::new(LibjpegFailure(
            "the data ends before the image is complete (truncated file?)".to_string(),
        )));
    }
}

/// libjpeg's message for the current error code, with its printf parameters filled in.
fn libjpeg_message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: as in `warn`, `cinfo.err` is our live error manager.
    let err = unsafe { &mut *cinfo.err };
    let code = err.msg_code;
    let template = if code > 0 && code <= err.last_jpeg_message && !err.jpeg_message_table.is_null()
    {
        // SAFETY: libjpeg's message table has `last_jpeg_message + 1` entries, each null or a
        // static NUL-terminated string.
        let text = unsafe { *err.jpeg_message_table.add(code as usize) };
        (!text.is_null()).then(|| {
            // SAFETY: checked non-null; static NUL-terminated string.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        })
    } else {
        None
    };
    let Some(template) = template else {
        return format!("libjpeg error {code}");
    };
    // SAFETY: the union is 80 bytes, valid both as 8 ints and as a NUL-padded string buffer.
    let ints = unsafe { *err.msg_parm.i() };
    // SAFETY: as above.
    let chars = unsafe { *err.msg_parm.s() };
    let text: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    fill_printf(&template, &ints, &String::from_utf8_lossy(&text))
}

/// Substitutes `%d %u %x %02x %s %%` (the conversions libjpeg's messages use) from `ints`/`text`.
fn fill_printf(template: &str, ints: &[c_int; 8], text: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut next_int = ints.iter();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == 'l' || d == '-' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let width: usize = spec
            .trim_start_matches('0')
            .trim_end_matches('l')
            .parse()
            .unwrap_or(0);
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') => out.push_str(text),
            Some('x') | Some('X') => out.push_str(&format!(
                "{:0width$x}",
                next_int.next().copied().unwrap_or(0),
                width = width
            )),
            Some(_) => out.push_str(&next_int.next().copied().unwrap_or(0).to_string()),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_matches_pillow() {
        // Pillow 13: Image.frombytes('CMYK', (1, 1), bytes([255 - c, ...])).convert('RGB'), where
        // the JPEG decoder output is (c, m, y, k) and Pillow inverts it on reading.
        // Expected values from Pillow's cmyk2rgb formula evaluated by hand.
        assert_eq!(cmyk_to_rgb_like_pil(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb_like_pil(&[0, 0, 0, 255]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb_like_pil(&[255, 0, 128, 0]), [0, 0, 0]);
        // k = 200 (nk = 200), c = 100 (inverted 155): 200 - muldiv255(155, 200) = 200 - 122 = 78.
        assert_eq!(cmyk_to_rgb_like_pil(&[100, 255, 0, 200]), [78, 200, 0]);
    }

    #[test]
    fn printf_fill() {
        let ints = [0x12, 7, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            fill_printf("SOF type 0x%02x, %d bytes", &ints, ""),
            "SOF type 0x12, 7 bytes"
        );
        assert_eq!(fill_printf("%s: 100%%", &ints, "x"), "x: 100%");
    }

    #[test]
    fn progressive_marker_walk() {
        assert!(is_progressive(&[
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC2, 0, 0
        ]));
        assert!(!is_progressive(&[
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 0
        ]));
        assert!(!is_progressive(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF]));
        assert!(!is_progressive(&[0xFF, 0xD8]));
    }
}
