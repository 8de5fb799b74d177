//! Pillow's resampling along one axis, for a range of output samples: the weights of its
//! convolution resampler (`Resample.c`: `precompute_coeffs`, `normalize_coeffs_8bpc`) for the
//! box, bilinear, hamming, bicubic and lanczos filters, and the source index of its nearest-neighbour
//! scaling (`_imaging.c` `_resize` → `ImagingScaleAffine` in `Geometry.c`), both as [`Taps`], plus
//! the fixed-point horizontal pass (`ImagingResampleHorizontal_8bpc`).
//!
//! Convolution: each filter's support is widened by the scale when downscaling (antialiasing),
//! the weights are normalised in f64, then rounded to 22-bit fixed point. Nearest: output `x`
//! reads source `int(xo)` where `xo` starts at `scale / 2` and grows by `scale` per output, summed
//! in f64 one output after the other as Pillow does (so that an index on an exact integer boundary
//! rounds the way Pillow's running sum does); it is one tap of weight 1.0 in fixed point, which the
//! same passes apply exactly.

use std::ops::Range;

use super::pipeline::Interpolation;

/// Fixed-point precision of Pillow's 8-bit resampler: `32 - 8 - 2`.
pub(super) const PRECISION_BITS: u32 = 22;
/// Rounding term the accumulators start from.
pub(super) const HALF: i32 = 1 << (PRECISION_BITS - 1);
/// Weight 1.0 in fixed point (nearest neighbour's one tap).
const ONE: i32 = 1 << PRECISION_BITS;
/// Outputs along one axis up to which the nearest-neighbour index is Pillow's running sum; beyond
/// (an axis Pillow could not allocate: 2^24 pixels by 292 rows is 14 GiB), `(x + 0.5) · scale`.
const NEAREST_RUNNING_SUM_LIMIT: u64 = 1 << 24;

/// Pillow's support of a convolution filter (`static struct filter BOX = {box_filter, 0.5}`, …).
fn support(filter: Interpolation) -> f64 {
    match filter {
        Interpolation::Box => 0.5,
        Interpolation::Bilinear | Interpolation::Hamming => 1.0,
        Interpolation::Bicubic => 2.0,
        Interpolation::Lanczos => 3.0,
        // Not a convolution: one tap.
        Interpolation::Nearest => 0.0,
    }
}

/// Pillow's filter functions (`box_filter`, `bilinear_filter`, `hamming_filter`,
/// `bicubic_filter`, `lanczos_filter`).
fn weight(filter: Interpolation, x: f64) -> f64 {
    match filter {
        Interpolation::Box => {
            if x > -0.5 && x <= 0.5 {
                1.0
            } else {
                0.0
            }
        }
        Interpolation::Bilinear => {
            let x = x.abs();
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        }
        Interpolation::Hamming => {
            let x = x.abs();
            if x == 0.0 {
                1.0
            } else if x >= 1.0 {
                0.0
            } else {
                let x = x * std::f64::consts::PI;
                // `0.54f + 0.46f * cos(x)`: float literals, promoted to double.
                x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
            }
        }
        Interpolation::Bicubic => bicubic(x),
        Interpolation::Lanczos => {
            if (-3.0..3.0).contains(&x) {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            }
        }
        Interpolation::Nearest => 0.0,
    }
}

/// Pillow's `bicubic_filter` (Keys cubic convolution with a = -0.5).
fn bicubic(x: f64) -> f64 {
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

/// Pillow's `sinc_filter`.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Pillow's `clip8`: drop the fixed-point fraction, clamp to 0..=255.
#[inline]
pub(super) fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's resampling weights for a range of output samples along one axis.
pub(super) struct Taps {
    /// First input index read by each output sample.
    first: Vec<usize>,
    /// Number of inputs read by each output sample.
    count: Vec<usize>,
    /// Fixed-point weights, `stride` per output sample.
    weights: Vec<i32>,
    stride: usize,
}

impl Taps {
    /// The taps of `filter` resizing `in_size` samples to `out_size` (box `(0, in_size)`), for the
    /// outputs in `outputs` only.
    pub(super) fn new(
        filter: Interpolation,
        in_size: u32,
        out_size: u64,
        outputs: Range<u64>,
    ) -> Self {
        if filter == Interpolation::Nearest {
            return Self::nearest(in_size, out_size, outputs);
        }
        let FilterGeometry {
            scale,
            support,
            ksize,
            ss,
        } = FilterGeometry::new(filter, in_size, out_size);

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
                let w = weight(filter, ((x as i64 + xmin) as f64 - center + 0.5) * ss);
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

    /// `ImagingScaleAffine`'s source index of each output in `outputs`, as one tap of weight 1
    /// (no tap where the index falls outside the image: Pillow leaves that pixel 0).
    fn nearest(in_size: u32, out_size: u64, outputs: Range<u64>) -> Self {
        let n = (outputs.end - outputs.start) as usize;
        let mut first = Vec::with_capacity(n);
        let mut count = Vec::with_capacity(n);
        for xin in nearest_indices(in_size, out_size, outputs) {
            match xin {
                Some(x) => {
                    first.push(x);
                    count.push(1);
                }
                None => {
                    first.push(0);
                    count.push(0);
                }
            }
        }
        Self {
            first,
            count,
            weights: vec![ONE; n],
            stride: 1,
        }
    }

    /// Weights per output sample (the stride of the weight table) for this resize.
    pub(super) fn kernel_size(filter: Interpolation, in_size: u32, out_size: u64) -> usize {
        FilterGeometry::new(filter, in_size, out_size).ksize
    }

    /// `(first, end)` input indices read by output `xx` (the same values [`Taps::new`] uses).
    pub(super) fn span(
        filter: Interpolation,
        in_size: u32,
        out_size: u64,
        xx: u64,
    ) -> (usize, usize) {
        if filter == Interpolation::Nearest {
            return match nearest_indices(in_size, out_size, xx..xx + 1)
                .next()
                .flatten()
            {
                Some(x) => (x, x + 1),
                None => (0, 0),
            };
        }
        let g = FilterGeometry::new(filter, in_size, out_size);
        let (xmin, xmax) = span_at((xx as f64 + 0.5) * g.scale, g.support, in_size);
        (xmin as usize, xmax.max(xmin) as usize)
    }

    /// First input index and weights of output `j` (relative to the requested range).
    pub(super) fn get(&self, j: usize) -> (usize, &[i32]) {
        let w = &self.weights[j * self.stride..j * self.stride + self.count[j]];
        (self.first[j], w)
    }

    /// All input indices read by these outputs.
    pub(super) fn input_range(&self) -> Range<usize> {
        let used = || self.first.iter().zip(&self.count).filter(|(_, &c)| c > 0);
        let start = used().map(|(&f, _)| f).min().unwrap_or(0);
        let end = used().map(|(f, c)| f + c).max().unwrap_or(start);
        start..end
    }
}

/// Pillow's nearest-neighbour source index of each output in `outputs` (`None`: outside the
/// image). `_resize` passes `a[0] = (double)(box[2] - box[0]) / xsize` with a float box;
/// `ImagingScaleAffine` starts at `xo = a[2] + a[0] * 0.5` and adds `a[0]` per output, taking
/// `COORD(xo)` (`(int)xo`, -1 below 0).
fn nearest_indices(
    in_size: u32,
    out_size: u64,
    outputs: Range<u64>,
) -> impl Iterator<Item = Option<usize>> {
    let scale = f64::from(in_size as f32) / out_size as f64;
    let in_range = move |xo: f64| {
        let xin = if xo < 0.0 { -1 } else { xo as i64 };
        (xin >= 0 && xin < i64::from(in_size)).then_some(xin as usize)
    };
    let running_sum = outputs.end <= NEAREST_RUNNING_SUM_LIMIT;
    let mut xo = scale * 0.5;
    let mut next = 0u64;
    outputs.map(move |x| {
        if running_sum {
            while next < x {
                xo += scale;
                next += 1;
            }
            in_range(xo)
        } else {
            in_range((x as f64 + 0.5) * scale)
        }
    })
}

/// Pillow's `precompute_coeffs` geometry for a convolution filter.
struct FilterGeometry {
    scale: f64,
    support: f64,
    ksize: usize,
    ss: f64,
}

impl FilterGeometry {
    fn new(filter: Interpolation, in_size: u32, out_size: u64) -> Self {
        // Pillow passes the box as C floats: `(double)(in1 - in0) / outSize`.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = support(filter) * filterscale;
        Self {
            scale,
            support,
            ksize: if filter == Interpolation::Nearest {
                1
            } else {
                support.ceil() as usize * 2 + 1
            },
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

/// One row of `ImagingResampleHorizontal_8bpc` for 3-band images, for the outputs in `taps`.
pub(super) fn resample_row_horizontal(src_row: &[u8], taps: &Taps, out_row: &mut [u8]) {
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
    fn bicubic_filter_is_keys_cubic() {
        let f = |x| weight(Interpolation::Bicubic, x);
        assert_eq!(f(0.0), 1.0);
        assert_eq!(f(1.0), 0.0);
        assert_eq!(f(-2.0), 0.0);
        assert!((f(0.5) - 0.5625).abs() < 1e-15);
        assert!((f(1.5) + 0.0625).abs() < 1e-15);
    }

    #[test]
    fn filters_have_pillows_shapes() {
        assert_eq!(weight(Interpolation::Box, 0.5), 1.0);
        assert_eq!(weight(Interpolation::Box, -0.5), 0.0);
        assert_eq!(weight(Interpolation::Bilinear, -0.25), 0.75);
        assert_eq!(weight(Interpolation::Hamming, 0.0), 1.0);
        assert_eq!(weight(Interpolation::Hamming, 1.0), 0.0);
        assert_eq!(weight(Interpolation::Lanczos, 0.0), 1.0);
        assert_eq!(weight(Interpolation::Lanczos, 3.0), 0.0);
        assert!(weight(Interpolation::Lanczos, -3.0).abs() < 1e-15);
        assert!(weight(Interpolation::Lanczos, 1.5) < 0.0);
    }

    #[test]
    fn weights_of_each_output_sum_to_one_in_fixed_point() {
        for filter in Interpolation::ALL {
            for (inp, out) in [(451u32, 292u64), (7, 292), (1000, 219), (3, 3)] {
                let taps = Taps::new(filter, inp, out, 0..out);
                for j in 0..out as usize {
                    let (_, w) = taps.get(j);
                    let sum: i64 = w.iter().map(|&v| i64::from(v)).sum();
                    assert!(
                        (sum - i64::from(ONE)).abs() <= w.len() as i64,
                        "{filter} {inp}->{out} output {j}: {sum}"
                    );
                }
            }
        }
    }

    #[test]
    fn nearest_is_a_running_sum_and_agrees_with_span() {
        // 4 -> 6: xo = 1/3, 1, 5/3, ... in reals; Pillow's running sum decides the boundaries.
        let all: Vec<Option<usize>> = nearest_indices(4, 6, 0..6).collect();
        let mut xo = (4.0f64 / 6.0) * 0.5;
        let mut expected = Vec::new();
        for _ in 0..6 {
            expected.push(Some(xo as usize));
            xo += 4.0 / 6.0;
        }
        assert_eq!(all, expected);
        for x in 0..6u64 {
            let (a, b) = Taps::span(Interpolation::Nearest, 4, 6, x);
            assert_eq!((Some(a), b), (all[x as usize], a + 1));
        }
        // A window gives the same indices as the whole axis.
        let window: Vec<Option<usize>> = nearest_indices(200, 292, 36..40).collect();
        let whole: Vec<Option<usize>> = nearest_indices(200, 292, 0..292).collect();
        assert_eq!(window, whole[36..40]);
    }
}
