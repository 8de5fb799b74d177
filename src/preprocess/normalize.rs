//! `transforms.ToTensor()` + `transforms.Normalize(mean, std)` on a uint8 RGB crop (Hugging Face's
//! `rescale` + `normalize` of its PIL backend compute the same values).

use image::RgbImage;

use super::PreprocessConfig;

/// Writes the crop as a normalised NCHW f32 tensor (N = 1) into `out`.
///
/// Each value is `(v · rescale_factor - mean[c]) / std[c]`: the product in f64 rounded to f32 (as
/// Hugging Face's `rescale` does: `image.astype(float64) * scale`, then `float32`), then the
/// subtraction and the division in f32 in that order (torchvision's `tensor.sub_(mean).div_(std)`,
/// NumPy's `(image - mean) / std` in float32). For the default factor `1 / 255` the rounded
/// product equals torchvision's f32 `img.float().div(255)` for every uint8 value (a unit test
/// checks all 256), so the result is bit-identical to torchvision's for the same crop. The 256
/// possible values per channel are computed once.
///
/// # Panics
/// If `crop` is not `crop_size × crop_size` or `out.len() != 3 × crop_size × crop_size`
/// (both are caller bugs; [`super::preprocess_into`] checks them and returns an error instead).
pub fn normalize_into(crop: &RgbImage, cfg: &PreprocessConfig, out: &mut [f32]) {
    let side = cfg.crop_size as usize;
    assert_eq!(
        (crop.width() as usize, crop.height() as usize),
        (side, side),
        "crop must be crop_size x crop_size"
    );
    assert_eq!(
        out.len(),
        cfg.tensor_len(),
        "output must hold 3 x crop_size x crop_size floats"
    );

    let table = lookup_table(cfg);
    let plane = side * side;
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    for (i, px) in crop.as_raw().chunks_exact(3).enumerate() {
        red[i] = table[0][px[0] as usize];
        green[i] = table[1][px[1] as usize];
        blue[i] = table[2][px[2] as usize];
    }
}

/// `table[c][v] = (f32(v · rescale_factor) - mean[c]) / std[c]`.
fn lookup_table(cfg: &PreprocessConfig) -> [[f32; 256]; 3] {
    let mut table = [[0.0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        for (v, value) in row.iter_mut().enumerate() {
            let scaled = (v as f64 * cfg.rescale_factor) as f32;
            *value = (scaled - cfg.mean[c]) / cfg.std[c];
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rescale_is_torchvisions_division_by_255() {
        let cfg = PreprocessConfig {
            mean: [0.0; 3],
            std: [1.0; 3],
            ..PreprocessConfig::for_image_size(2)
        };
        let table = lookup_table(&cfg);
        for (v, value) in table[0].iter().enumerate() {
            assert_eq!(value.to_bits(), (v as f32 / 255.0).to_bits(), "{v}");
        }
    }

    #[test]
    fn rescale_one_keeps_raw_values() {
        let cfg = PreprocessConfig {
            rescale_factor: 1.0,
            mean: [0.0; 3],
            std: [2.0; 3],
            ..PreprocessConfig::for_image_size(2)
        };
        let table = lookup_table(&cfg);
        assert_eq!(table[1][255], 127.5);
    }

    #[test]
    fn planes_are_channel_major_and_match_the_formula() {
        let cfg = PreprocessConfig {
            crop_size: 2,
            ..PreprocessConfig::for_image_size(256)
        };
        let crop =
            RgbImage::from_raw(2, 2, vec![0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]).unwrap();
        let mut out = vec![0.0; 12];
        normalize_into(&crop, &cfg, &mut out);
        for (i, px) in crop.pixels().enumerate() {
            for c in 0..3 {
                // f64 reference: the f32 result must be its correctly rounded neighbourhood.
                let expected =
                    (f64::from(px[c]) / 255.0 - f64::from(cfg.mean[c])) / f64::from(cfg.std[c]);
                assert!(
                    (f64::from(out[c * 4 + i]) - expected).abs() < 1e-6,
                    "c {c} i {i}"
                );
            }
        }
    }
}
