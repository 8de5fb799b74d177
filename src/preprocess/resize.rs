//! `transforms.Resize(size, BICUBIC)` followed by `transforms.CenterCrop(crop)` on a PIL RGB image,
//! computed as one windowed resample.
//!
//! The resampler is a port of Pillow's `src/libImaging/Resample.c` (`precompute_coeffs`,
//! `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc`, `ImagingResampleVertical_8bpc`,
//! `ImagingResampleInner`): bicubic filter with a = -0.5 and support 2, widened by the scale when
//! downscaling (antialiasing), weights normalised in f64 then rounded to 22-bit fixed point,
//! horizontal pass first into a uint8 intermediate, then the vertical pass. Each output pixel depends
//! only on its own weights, so computing just the pixels inside the crop gives exactly the values
//! of resizing the whole image and cropping it afterwards.

use std::ops::Range;

use image::RgbImage;

use super::PreprocessConfig;

/// Fixed-point precision of Pillow's 8-bit resampler: `32 - 8 - 2`.
const PRECISION_BITS: u32 = 22;
/// Rounding term the accumulators start from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);
/// Support of Pillow's bicubic filter (`static struct filter BICUBIC = {bicubic_filter, 2.0}`).
const BICUBIC_SUPPORT: f64 = 2.0;

/// Output size `(width, height)` of torchvision's `Resize(size)` with an int `size`: the shorter side
/// becomes `size`, the longer `int(size * long / short)` (`_compute_resized_output_size`).
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

/// Resizes the shorter side to `cfg.resize_size` with Pillow's bicubic (antialiased) resampling
/// and center-crops `cfg.crop_size × cfg.crop_size`, as `Resize` + `CenterCrop` of torchvision do
/// on a PIL image (zero padding where the resized image is smaller than the crop).
///
/// Only the pixels inside the crop are computed. An empty input gives an all-zero crop.
pub fn resize_center_crop(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    let crop = cfg.crop_size;
    let mut out = RgbImage::new(crop, crop);
    let (src_w, src_h) = (img.width(), img.height());
    let (new_w, new_h) = resized_size(src_w, src_h, cfg.resize_size);
    if new_w == 0 || new_h == 0 || crop == 0 {
        return out;
    }
    let cols = AxisWindow::new(new_w, crop);
    let rows = AxisWindow::new(new_h, crop);
    if cols.valid.is_empty() || rows.valid.is_empty() {
        return out;
    }

    let src = img.as_raw();
    let src_row_len = src_w as usize * 3;
    let out_w = cols.valid.end - cols.valid.start;
    let tmp_row_len = out_w as usize * 3;

    // Pillow skips a pass whose size does not change (it would be an exact identity anyway).
    let need_horizontal = new_w != u64::from(src_w);
    let need_vertical = new_h != u64::from(src_h);

    let vertical = need_vertical.then(|| Taps::bicubic(src_h, new_h, rows.valid.clone()));
    // Source rows the vertical pass reads (or copies).
    let src_rows = match &vertical {
        Some(taps) => taps.input_range(),
        None => rows.valid.start as usize..rows.valid.end as usize,
    };

    // Horizontal pass (or a copy of the columns in the window) into a uint8 intermediate.
    let mut tmp = vec![0u8; src_rows.len() * tmp_row_len];
    if need_horizontal {
        let horizontal = Taps::bicubic(src_w, new_w, cols.valid.clone());
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

    // Vertical pass (or a copy) into the crop, at the offset left by any zero padding.
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
                let first = first - src_rows.start;
                acc.fill(HALF);
                for (t, &w) in weights.iter().enumerate() {
                    let row = &tmp[(first + t) * tmp_row_len..(first + t + 1) * tmp_row_len];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a = a.wrapping_add(i32::from(v).wrapping_mul(w));
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
    let (new_w, new_h) = resized_size(width, height, cfg.resize_size);
    if new_w == 0 || new_h == 0 || crop == 0 {
        return out;
    }
    let cols = AxisWindow::new(new_w, cfg.crop_size);
    let rows = AxisWindow::new(new_h, cfg.crop_size);
    if cols.valid.is_empty() || rows.valid.is_empty() {
        return out;
    }
    let out_w = cols.valid.end - cols.valid.start;
    let tmp_row_len = out_w * 3;
    let taps_bytes = |in_size: u32, out_size: u64, outputs: &Range<u64>| {
        let n = outputs.end - outputs.start;
        let ksize = Taps::kernel_size(in_size, out_size) as u64;
        n * 16 + n * ksize * 4 + ksize * 8
    };
    let mut total = out;
    let src_rows = if new_h != u64::from(height) {
        total += taps_bytes(height, new_h, &rows.valid) + tmp_row_len * 4;
        let first = Taps::span(height, new_h, rows.valid.start).0;
        let last = Taps::span(height, new_h, rows.valid.end - 1).1;
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
    /// Indices of the resized image that fall inside the crop (the rest is zero padding).
    valid: Range<u64>,
    /// Where `valid.start` lands in the crop.
    dst_start: usize,
}

impl AxisWindow {
    fn new(size: u64, crop: u32) -> Self {
        let offset = center_crop_offset(size, crop);
        let start = offset.max(0) as u64;
        let end = ((offset + i64::from(crop)).max(0) as u64).min(size);
        Self {
            valid: start..end.max(start),
            dst_start: (start as i64 - offset) as usize,
        }
    }
}

/// Pillow's resampling weights for a range of output samples along one axis.
struct Taps {
    /// First input index read by each output sample.
    first: Vec<usize>,
    /// Number of inputs read by each output sample.
    count: Vec<usize>,
    /// Fixed-point weights, `stride` per output sample.
    weights: Vec<i32>,
    stride: usize,
}

impl Taps {
    /// `precompute_coeffs` + `normalize_coeffs_8bpc` of Pillow for the bicubic filter, box
    /// `(0, in_size)`, computed for the outputs in `outputs` only.
    fn bicubic(in_size: u32, out_size: u64, outputs: Range<u64>) -> Self {
        let FilterGeometry {
            scale,
            support,
            ksize,
            ss,
        } = FilterGeometry::new(in_size, out_size);

        let n = (outputs.end - outputs.start) as usize;
        let mut first = Vec::with_capacity(n);
        let mut count = Vec::with_capacity(n);
        let mut weights = vec![0i32; n * ksize];
        let mut k = vec![0f64; ksize];
        for (xx, row) in outputs.zip(weights.chunks_exact_mut(ksize)) {
            let center = (xx as f64 + 0.5) * scale;
            let (xmin, xmax) = span_at(center, support, in_size);
            let taps = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(taps) {
                let w = bicubic_filter(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (kx, out) in k.iter().zip(row.iter_mut()).take(taps) {
                let w = if ww != 0.0 { kx / ww } else { *kx };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *out = if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            first.push(xmin as usize);
            count.push(taps);
        }
        Self {
            first,
            count,
            weights,
            stride: ksize,
        }
    }

    /// Weights per output sample (the stride of the weight table) for this resize.
    fn kernel_size(in_size: u32, out_size: u64) -> usize {
        FilterGeometry::new(in_size, out_size).ksize
    }

    /// `(first, end)` input indices read by output `xx` (the same values [`Taps::bicubic`] uses).
    fn span(in_size: u32, out_size: u64, xx: u64) -> (usize, usize) {
        let g = FilterGeometry::new(in_size, out_size);
        let (xmin, xmax) = span_at((xx as f64 + 0.5) * g.scale, g.support, in_size);
        (xmin as usize, xmax.max(xmin) as usize)
    }

    /// First input index and weights of output `j` (relative to the requested range).
    fn get(&self, j: usize) -> (usize, &[i32]) {
        let w = &self.weights[j * self.stride..j * self.stride + self.count[j]];
        (self.first[j], w)
    }

    /// All input indices read by these outputs.
    fn input_range(&self) -> Range<usize> {
        let start = self.first.iter().copied().min().unwrap_or(0);
        let end = self
            .first
            .iter()
            .zip(&self.count)
            .map(|(f, c)| f + c)
            .max()
            .unwrap_or(start);
        start..end
    }
}

/// Pillow's `precompute_coeffs` geometry for the bicubic filter.
struct FilterGeometry {
    scale: f64,
    support: f64,
    ksize: usize,
    ss: f64,
}

impl FilterGeometry {
    fn new(in_size: u32, out_size: u64) -> Self {
        // Pillow passes the box as C floats: `(double)(in1 - in0) / outSize`.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filterscale;
        Self {
            scale,
            support,
            ksize: support.ceil() as usize * 2 + 1,
            ss: 1.0 / filterscale,
        }
    }
}

/// Pillow's `xmin`, `xmax` of the output sample centred on `center`.
fn span_at(center: f64, support: f64, in_size: u32) -> (i64, i64) {
    // `(int)` truncates toward zero; negative values are then clamped to 0 anyway.
    let xmin = ((center - support + 0.5) as i64).max(0);
    let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
    (xmin, xmax)
}

/// Pillow's `bicubic_filter` (Keys cubic convolution with a = -0.5).
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `clip8`: drop the fixed-point fraction, clamp to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One row of `ImagingResampleHorizontal_8bpc` for 3-band images, for the outputs in `taps`.
fn resample_row_horizontal(src_row: &[u8], taps: &Taps, out_row: &mut [u8]) {
    for (j, px) in out_row.chunks_exact_mut(3).enumerate() {
        let (first, weights) = taps.get(j);
        let window = &src_row[first * 3..(first + weights.len()) * 3];
        let (mut r, mut g, mut b) = (HALF, HALF, HALF);
        for (p, &w) in window.chunks_exact(3).zip(weights) {
            r = r.wrapping_add(i32::from(p[0]).wrapping_mul(w));
            g = g.wrapping_add(i32::from(p[1]).wrapping_mul(w));
            b = b.wrapping_add(i32::from(p[2]).wrapping_mul(w));
        }
        px[0] = clip8(r);
        px[1] = clip8(g);
        px[2] = clip8(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_torchvision() {
        // Values computed with torchvision's _compute_resized_output_size by hand.
        assert_eq!(resized_size(451, 300, 292), (438, 292)); // int(292 * 451 / 300) = int(438.97)
        assert_eq!(resized_size(300, 451, 292), (292, 438));
        assert_eq!(resized_size(512, 512, 292), (292, 292));
        assert_eq!(resized_size(1, 5000, 292), (292, 1_460_000));
        assert_eq!(resized_size(0, 5, 292), (0, 0));
    }

    #[test]
    fn center_crop_offset_rounds_half_to_even() {
        // Python: int(round((size - crop) / 2.0))
        assert_eq!(center_crop_offset(292, 256), 18);
        assert_eq!(center_crop_offset(385, 256), 64); // round(64.5) = 64
        assert_eq!(center_crop_offset(387, 256), 66); // round(65.5) = 66
        assert_eq!(center_crop_offset(219, 192), 14); // round(13.5) = 14
        assert_eq!(center_crop_offset(257, 256), 0); // round(0.5) = 0
        assert_eq!(center_crop_offset(256, 256), 0);
        // Padding: (crop - size) // 2 zeros before.
        assert_eq!(center_crop_offset(200, 256), -28);
        assert_eq!(center_crop_offset(201, 256), -27);
    }

    #[test]
    fn bicubic_filter_is_keys_cubic() {
        assert_eq!(bicubic_filter(0.0), 1.0);
        assert_eq!(bicubic_filter(1.0), 0.0);
        assert_eq!(bicubic_filter(-2.0), 0.0);
        assert!((bicubic_filter(0.5) - 0.5625).abs() < 1e-15);
        assert!((bicubic_filter(1.5) + 0.0625).abs() < 1e-15);
    }

    #[test]
    fn padding_when_resize_is_smaller_than_crop() {
        // torchvision pads with 0 when the resized image is smaller than the crop.
        let cfg = PreprocessConfig {
            crop_size: 8,
            resize_size: 4,
            ..PreprocessConfig::for_image_size(8)
        };
        let img = RgbImage::from_pixel(4, 6, image::Rgb([10, 20, 30]));
        let crop = resize_center_crop(&img, &cfg);
        // Resized 4x6 (identity), padded 2 left/right and 1 above/below.
        for (x, y, p) in crop.enumerate_pixels() {
            let inside = (2..6).contains(&x) && (1..7).contains(&y);
            assert_eq!(
                p.0,
                if inside { [10, 20, 30] } else { [0, 0, 0] },
                "({x}, {y})"
            );
        }
    }

    #[test]
    fn constant_image_stays_constant_through_any_scale() {
        let cfg = PreprocessConfig::for_image_size(256);
        for (w, h) in [(1, 1), (3, 700), (700, 3), (300, 451), (1000, 999)] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([7, 128, 255]));
            let crop = resize_center_crop(&img, &cfg);
            assert!(crop.pixels().all(|p| p.0 == [7, 128, 255]), "{w}x{h}");
        }
    }
}
