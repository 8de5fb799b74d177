//! The resize and center crop of the eval transform on a PIL RGB image — torchvision's
//! `Resize` + `CenterCrop`, timm's `ResizeKeepRatio` + `CenterCropOrPad`, Hugging Face's
//! `resize` + `center_crop` — computed as one windowed resample with Pillow's filters
//! ([`super::resample`]).
//!
//! Pillow resizes in two passes, horizontal first into a uint8 intermediate, then vertical, and
//! skips a pass whose size does not change. Each output pixel depends only on its own weights, so
//! computing just the pixels inside the crop gives exactly the values of resizing the whole image
//! and cropping it afterwards, and a 1×5000 image (resized by torchvision to 292×1 460 000) costs
//! no more than any other.

use std::ops::Range;

use image::RgbImage;

use super::pipeline::{CropMode, CropRounding};
use super::resample::{clip8, resample_row_horizontal, Taps, HALF};
use super::PreprocessConfig;

/// Output size `(width, height)` of torchvision's `Resize(size)` with an int `size`: the shorter side
/// becomes `size`, the longer `int(size * long / short)` (`_compute_resized_output_size`; Hugging
/// Face's `get_resize_output_image_size` with `default_to_square=False` computes the same).
///
/// 64-bit because an extreme aspect ratio makes the long side huge (1×5000 → 292×1 460 000).
/// A zero side gives `(0, 0)`.
pub fn resized_size(width: u32, height: u32, size: u32) -> (u64, u64) {
    let (w, h) = (u64::from(width), u64::from(height));
    if w == 0 || h == 0 {
        return (0, 0);
    }
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_short = u64::from(size);
    // Python: int(requested_new_short * long / short) — exact integer product, then a correctly
    // rounded true division (exact in f64 for products below 2^53), then truncation.
    let new_long = ((new_short * long) as f64 / short as f64) as u64;
    if w <= h {
        (new_short, new_long)
    } else {
        (new_long, new_short)
    }
}

/// Output size `(width, height)` of timm's `ResizeKeepRatio(size, longest=1.0)`: the ratio is the
/// larger of `height / size` and `width / size`, each side becomes `round(side / ratio)` (half to
/// even), at least 1 (timm would ask PIL for a zero side, which PIL refuses).
pub fn keep_ratio_size(width: u32, height: u32, size: u32) -> (u64, u64) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let target = f64::from(size);
    let ratio = (f64::from(height) / target).max(f64::from(width) / target);
    let side = |s: u32| ((f64::from(s) / ratio).round_ties_even() as u64).max(1);
    (side(width), side(height))
}

/// The size `(width, height)` the image is resized to before the crop under `cfg.crop_mode`.
pub fn resized_dims(width: u32, height: u32, cfg: &PreprocessConfig) -> (u64, u64) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    match cfg.crop_mode {
        CropMode::Center => resized_size(width, height, cfg.resize_size),
        CropMode::Squash => (u64::from(cfg.resize_size), u64::from(cfg.resize_size)),
        CropMode::Border => keep_ratio_size(width, height, cfg.resize_size),
        CropMode::CropOnly => (u64::from(width), u64::from(height)),
    }
}

/// Start of torchvision's `CenterCrop(crop)` window along one side of length `size`.
///
/// `int(round((size - crop) / 2.0))` with Python's round-half-to-even when `size >= crop`;
/// when `size < crop` torchvision first pads with `(crop - size) // 2` zeros before (and the rest
/// after), so the window starts that many pixels before the image: the result is negative.
pub fn center_crop_offset(size: u64, crop: u32) -> i64 {
    let crop = u64::from(crop);
    if crop > size {
        -(((crop - size) / 2) as i64)
    } else {
        let margin = size - crop;
        let half = margin / 2;
        // x.5 rounds to the even neighbour.
        let rounded = if margin % 2 == 1 && half % 2 == 1 {
            half + 1
        } else {
            half
        };
        rounded as i64
    }
}

/// Start of the crop window under `rounding` (negative: padding before the image).
pub fn crop_offset(size: u64, crop: u32, rounding: CropRounding) -> i64 {
    match rounding {
        CropRounding::Torchvision => center_crop_offset(size, crop),
        // Python: (size - crop) // 2, floor division also below zero.
        CropRounding::Floor => (size as i64 - i64::from(crop)).div_euclid(2),
    }
}

/// Resizes as `cfg.crop_mode` says with `cfg.interpolation` (Pillow's resampling, antialiased)
/// and center-crops `cfg.crop_size × cfg.crop_size` with `cfg.crop_rounding`, padding with
/// [`PreprocessConfig::pad_fill`] where the resized image is smaller than the crop.
///
/// Only the pixels inside the crop are computed. An empty input gives a crop of padding only.
pub fn resize_center_crop(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    let crop = cfg.crop_size;
    let mut out = RgbImage::from_pixel(crop, crop, image::Rgb(cfg.pad_fill()));
    let (src_w, src_h) = (img.width(), img.height());
    let (new_w, new_h) = resized_dims(src_w, src_h, cfg);
    if new_w == 0 || new_h == 0 || crop == 0 {
        return out;
    }
    let cols = AxisWindow::new(new_w, crop, cfg.crop_rounding);
    let rows = AxisWindow::new(new_h, crop, cfg.crop_rounding);
    if cols.valid.is_empty() || rows.valid.is_empty() {
        return out;
    }
    let filter = cfg.interpolation;

    let src = img.as_raw();
    let src_row_len = src_w as usize * 3;
    let out_w = cols.valid.end - cols.valid.start;
    let tmp_row_len = out_w as usize * 3;

    // Pillow skips a pass whose size does not change (it would be an exact identity anyway).
    let need_horizontal = new_w != u64::from(src_w);
    let need_vertical = new_h != u64::from(src_h);

    let vertical = need_vertical.then(|| Taps::new(filter, src_h, new_h, rows.valid.clone()));
    // Source rows the vertical pass reads (or copies).
    let src_rows = match &vertical {
        Some(taps) => taps.input_range(),
        None => rows.valid.start as usize..rows.valid.end as usize,
    };

    // Horizontal pass (or a copy of the columns in the window) into a uint8 intermediate.
    let mut tmp = vec![0u8; src_rows.len() * tmp_row_len];
    if need_horizontal {
        let horizontal = Taps::new(filter, src_w, new_w, cols.valid.clone());
        for (src_row, tmp_row) in src
            .chunks_exact(src_row_len)
            .skip(src_rows.start)
            .zip(tmp.chunks_exact_mut(tmp_row_len))
        {
            resample_row_horizontal(src_row, &horizontal, tmp_row);
        }
    } else {
        let x0 = cols.valid.start as usize * 3;
        for (src_row, tmp_row) in src
            .chunks_exact(src_row_len)
            .skip(src_rows.start)
            .zip(tmp.chunks_exact_mut(tmp_row_len))
        {
            tmp_row.copy_from_slice(&src_row[x0..x0 + tmp_row_len]);
        }
    }

    // Vertical pass (or a copy) into the crop, at the offset left by any padding.
    let out_row_len = crop as usize * 3;
    let dst_x = cols.dst_start * 3;
    let out_rows = out
        .chunks_exact_mut(out_row_len)
        .skip(rows.dst_start)
        .take((rows.valid.end - rows.valid.start) as usize);
    match &vertical {
        Some(taps) => {
            let mut acc = vec![0i32; tmp_row_len];
            for (j, out_row) in out_rows.enumerate() {
                let (first, weights) = taps.get(j);
                acc.fill(HALF);
                if !weights.is_empty() {
                    let first = first - src_rows.start;
                    for (t, &w) in weights.iter().enumerate() {
                        let row = &tmp[(first + t) * tmp_row_len..(first + t + 1) * tmp_row_len];
                        for (a, &v) in acc.iter_mut().zip(row) {
                            *a = a.wrapping_add(i32::from(v).wrapping_mul(w));
                        }
                    }
                }
                for (o, &a) in out_row[dst_x..dst_x + tmp_row_len].iter_mut().zip(&acc) {
                    *o = clip8(a);
                }
            }
        }
        None => {
            for (out_row, tmp_row) in out_rows.zip(tmp.chunks_exact(tmp_row_len)) {
                out_row[dst_x..dst_x + tmp_row_len].copy_from_slice(tmp_row);
            }
        }
    }
    out
}

/// Bytes [`resize_center_crop`] allocates for a `width`×`height` image under `cfg`, all alive at
/// once at its peak: the `crop_size`² RGB crop, the uint8 intermediate of the horizontal pass (the
/// source rows the vertical pass reads × the crop columns), the vertical accumulator row and both
/// passes' weight tables (the 8-byte `first`/`count` entries, the 4-byte weights, the f64 kernel).
/// Computed without allocating, from the same windows and tap spans the resampler uses.
pub fn working_bytes(width: u32, height: u32, cfg: &PreprocessConfig) -> u64 {
    let crop = u64::from(cfg.crop_size);
    let out = crop * crop * 3;
    let (new_w, new_h) = resized_dims(width, height, cfg);
    if new_w == 0 || new_h == 0 || crop == 0 {
        return out;
    }
    let cols = AxisWindow::new(new_w, cfg.crop_size, cfg.crop_rounding);
    let rows = AxisWindow::new(new_h, cfg.crop_size, cfg.crop_rounding);
    if cols.valid.is_empty() || rows.valid.is_empty() {
        return out;
    }
    let filter = cfg.interpolation;
    let out_w = cols.valid.end - cols.valid.start;
    let tmp_row_len = out_w * 3;
    let taps_bytes = |in_size: u32, out_size: u64, outputs: &Range<u64>| {
        let n = outputs.end - outputs.start;
        let ksize = Taps::kernel_size(filter, in_size, out_size) as u64;
        n * 16 + n * ksize * 4 + ksize * 8
    };
    let mut total = out;
    let src_rows = if new_h != u64::from(height) {
        total += taps_bytes(height, new_h, &rows.valid) + tmp_row_len * 4;
        let first = Taps::span(filter, height, new_h, rows.valid.start).0;
        let last = Taps::span(filter, height, new_h, rows.valid.end - 1).1;
        last.saturating_sub(first) as u64
    } else {
        rows.valid.end - rows.valid.start
    };
    if new_w != u64::from(width) {
        total += taps_bytes(width, new_w, &cols.valid);
    }
    total + src_rows * tmp_row_len
}

/// The crop window along one axis of the resized image.
struct AxisWindow {
    /// Indices of the resized image that fall inside the crop (the rest is padding).
    valid: Range<u64>,
    /// Where `valid.start` lands in the crop.
    dst_start: usize,
}

impl AxisWindow {
    fn new(size: u64, crop: u32, rounding: CropRounding) -> Self {
        let offset = crop_offset(size, crop, rounding);
        let start = offset.max(0) as u64;
        let end = ((offset + i64::from(crop)).max(0) as u64).min(size);
        Self {
            valid: start..end.max(start),
            dst_start: (start as i64 - offset) as usize,
        }
    }
}

#[cfg(test)]
mod tests;
