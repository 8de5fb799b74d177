//! Decompression bombs and other costly images, made in the test (no fixtures): each small on the
//! wire and large once decoded.

use std::io::Cursor;

/// A GIF of `screen`×`screen` logical screen whose only frame is 1×1 at (0, 0): ~40 bytes that
/// make the `image` crate's decoder allocate and write the whole screen as RGBA.
pub fn gif_screen_bomb(screen: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend(screen.to_le_bytes());
    gif.extend(screen.to_le_bytes());
    gif.extend([0x80, 0, 0]); // global colour table of 2 entries
    gif.extend([0, 0, 0, 255, 255, 255]);
    gif.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor: 1×1 at (0, 0)
    gif.extend([2, 2, 0x44, 0x01, 0]); // LZW min code size 2; clear, 0, end
    gif.push(0x3B);
    gif
}

/// `img` encoded as `format` with the `image` crate's encoders (PNG: fast compression).
pub fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    if format == image::ImageFormat::Png {
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::NoFilter,
        );
        img.write_with_encoder(encoder).unwrap();
    } else {
        img.write_to(&mut out, format).unwrap();
    }
    out.into_inner()
}

/// A black `w`×`h` 8-bit RGB PNG (9400×9400 is ~250 KB and 265 MB decoded).
pub fn png_rgb8(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::new(w, h)),
        image::ImageFormat::Png,
    )
}

/// A black `w`×`h` 16-bit RGBA PNG (8 bytes per pixel decoded, then an RGB copy).
pub fn png_rgba16(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgba16(image::ImageBuffer::new(w, h)),
        image::ImageFormat::Png,
    )
}

/// A `w`×`h` CMYK JPEG (libjpeg-turbo), `progressive` or baseline (one scan).
pub fn jpeg_cmyk(w: u32, h: u32, progressive: bool) -> Vec<u8> {
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
    // libjpeg's defaults: mozjpeg's own make every file progressive.
    c.set_fastest_defaults();
    c.set_size(w as usize, h as usize);
    c.set_quality(80.0);
    if progressive {
        c.set_progressive_mode();
    }
    let mut started = c.start_compress(Vec::new()).unwrap();
    let row: Vec<u8> = (0..w as usize * 4).map(|i| (i % 251) as u8).collect();
    for _ in 0..h {
        started.write_scanlines(&row).unwrap();
    }
    started.finish().unwrap()
}

/// A `w`×`h` 16-bit RGBA TIFF (uncompressed: as large on the wire as decoded).
pub fn tiff_rgba16(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgba16(image::ImageBuffer::new(w, h)),
        image::ImageFormat::Tiff,
    )
}

/// A black `w`×`h` lossless RGBA WebP.
pub fn webp_rgba(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgba8(image::RgbaImage::new(w, h)),
        image::ImageFormat::WebP,
    )
}

/// A black `w`×`h` 24-bit BMP.
pub fn bmp_rgb(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::new(w, h)),
        image::ImageFormat::Bmp,
    )
}
