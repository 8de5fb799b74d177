use super::*;
use crate::preprocess::Interpolation;

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
fn keep_ratio_size_follows_timm() {
    // timm ResizeKeepRatio(longest=1): ratio = max(h / t, w / t), round(side / ratio).
    assert_eq!(keep_ratio_size(451, 300, 284), (284, 189)); // round(188.91)
    assert_eq!(keep_ratio_size(300, 451, 284), (189, 284));
    assert_eq!(keep_ratio_size(512, 512, 284), (284, 284));
    assert_eq!(keep_ratio_size(5, 2, 3), (3, 1)); // round(1.2)
    assert_eq!(keep_ratio_size(8, 5, 4), (4, 2)); // round(2.5) = 2, half to even
    assert_eq!(keep_ratio_size(8, 7, 4), (4, 4)); // round(3.5) = 4
    assert_eq!(keep_ratio_size(1, 5000, 284), (1, 284)); // round(0.057) = 0, kept at 1
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
fn floor_crop_offset_is_python_floor_division() {
    // Hugging Face: top = (size - crop) // 2; padding ceil((crop - size) / 2) before.
    assert_eq!(crop_offset(387, 256, CropRounding::Floor), 65);
    assert_eq!(crop_offset(219, 192, CropRounding::Floor), 13);
    assert_eq!(crop_offset(256, 256, CropRounding::Floor), 0);
    assert_eq!(crop_offset(201, 256, CropRounding::Floor), -28); // ceil(27.5) = 28 before
    assert_eq!(crop_offset(200, 256, CropRounding::Floor), -28);
    assert_eq!(crop_offset(5, 8, CropRounding::Floor), -2);
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
fn border_mode_pads_with_the_mean_colour() {
    // 6x3 -> longer side 4: 4x2; CenterCropOrPad(4): 1 row of fill above, 1 below.
    let cfg = PreprocessConfig {
        crop_size: 4,
        resize_size: 4,
        crop_mode: CropMode::Border,
        ..PreprocessConfig::for_image_size(4)
    };
    let img = RgbImage::from_pixel(6, 3, image::Rgb([10, 20, 30]));
    let crop = resize_center_crop(&img, &cfg);
    for (x, y, p) in crop.enumerate_pixels() {
        let inside = (1..3).contains(&y);
        assert_eq!(
            p.0,
            if inside {
                [10, 20, 30]
            } else {
                [124, 116, 104]
            },
            "({x}, {y})"
        );
    }
}

#[test]
fn crop_only_crops_the_decoded_image() {
    let cfg = PreprocessConfig {
        crop_size: 2,
        resize_size: 0,
        crop_mode: CropMode::CropOnly,
        crop_rounding: CropRounding::Floor,
        ..PreprocessConfig::for_image_size(2)
    };
    let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let crop = resize_center_crop(&img, &cfg);
    // (5 - 2) // 2 = 1 left, (3 - 2) // 2 = 0 top.
    let got: Vec<[u8; 3]> = crop.pixels().map(|p| p.0).collect();
    assert_eq!(got, vec![[1, 0, 0], [2, 0, 0], [1, 1, 0], [2, 1, 0]]);
}

#[test]
fn constant_image_stays_constant_through_any_scale_and_filter() {
    for interpolation in Interpolation::ALL {
        for crop_mode in [CropMode::Center, CropMode::Squash] {
            let cfg = PreprocessConfig {
                interpolation,
                crop_mode,
                ..PreprocessConfig::for_image_size(256)
            };
            for (w, h) in [(1, 1), (3, 700), (700, 3), (300, 451), (1000, 999)] {
                let img = RgbImage::from_pixel(w, h, image::Rgb([7, 128, 255]));
                let crop = resize_center_crop(&img, &cfg);
                assert!(
                    crop.pixels().all(|p| p.0 == [7, 128, 255]),
                    "{interpolation} {crop_mode} {w}x{h}"
                );
            }
        }
    }
}

#[test]
fn nearest_picks_source_pixels() {
    // 2x upscale of a 3x3 image, squash to 6, crop 6: each source pixel becomes a 2x2 block.
    let cfg = PreprocessConfig {
        crop_size: 6,
        resize_size: 6,
        crop_mode: CropMode::Squash,
        interpolation: Interpolation::Nearest,
        ..PreprocessConfig::for_image_size(6)
    };
    let img = RgbImage::from_fn(3, 3, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 1]));
    let crop = resize_center_crop(&img, &cfg);
    for (x, y, p) in crop.enumerate_pixels() {
        assert_eq!(
            p.0,
            [(x / 2) as u8 * 10, (y / 2) as u8 * 10, 1],
            "({x}, {y})"
        );
    }
}
