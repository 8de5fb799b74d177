use serde_json::json;

use super::*;
use crate::preprocess::{IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD};

fn parse(v: serde_json::Value) -> Result<PreprocessConfig, PreprocessError> {
    PreprocessConfig::from_hf_preprocessor(&v)
}

#[test]
fn microsoft_swinv2_tiny_current_keys() {
    // microsoft/swinv2-tiny-patch4-window8-256 preprocessor_config.json.
    let cfg = parse(json!({
        "do_normalize": true,
        "do_rescale": true,
        "do_resize": true,
        "image_mean": [0.485, 0.456, 0.406],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": 256, "width": 256}
    }))
    .unwrap();
    assert_eq!(
        (cfg.crop_mode, cfg.resize_size, cfg.crop_size),
        (CropMode::Squash, 256, 256)
    );
    assert_eq!(cfg.interpolation, Interpolation::Bicubic);
    assert_eq!(cfg.crop_rounding, CropRounding::Floor);
    assert_eq!(cfg.rescale_factor, 1.0 / 255.0);
    assert_eq!(
        (cfg.mean, cfg.std),
        (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    );
    assert_eq!(
        cfg.source,
        "Hugging Face preprocessor_config.json (ViTImageProcessor)"
    );
    assert!(cfg.validate().is_ok());
}

#[test]
fn legacy_vit_feature_extractor() {
    // microsoft/swin-tiny-patch4-window7-224: the legacy form, `size` an int, no do_rescale.
    let cfg = parse(json!({
        "do_normalize": true,
        "do_resize": true,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 224
    }))
    .unwrap();
    assert_eq!(
        (cfg.crop_mode, cfg.resize_size, cfg.crop_size),
        (CropMode::Squash, 224, 224)
    );
    assert_eq!(cfg.rescale_factor, DEFAULT_RESCALE_FACTOR);
    assert!(
        cfg.source.ends_with("(ViTFeatureExtractor)"),
        "{}",
        cfg.source
    );
}

#[test]
fn class_defaults_when_keys_are_absent() {
    // ViTImageProcessor: 224x224, bilinear, mean/std 0.5, rescale 1/255, no crop.
    for v in [
        json!({}),
        json!({"image_processor_type": "ViTImageProcessorFast", "size": null}),
    ] {
        let cfg = parse(v.clone()).unwrap();
        assert_eq!(
            (cfg.crop_mode, cfg.crop_size),
            (CropMode::Squash, 224),
            "{v}"
        );
        assert_eq!(cfg.interpolation, Interpolation::Bilinear, "{v}");
        assert_eq!((cfg.mean, cfg.std), ([0.5; 3], [0.5; 3]), "{v}");
    }
    // DeiTImageProcessor: 256x256 then crop 224, bicubic.
    let deit = parse(json!({"image_processor_type": "DeiTImageProcessor"})).unwrap();
    assert_eq!(
        (
            deit.crop_mode,
            deit.resize_size,
            deit.crop_size,
            deit.interpolation
        ),
        (CropMode::Squash, 256, 224, Interpolation::Bicubic)
    );
}

#[test]
fn every_size_form_and_step_switch() {
    for size in [
        json!(192),
        json!([192, 192]),
        json!({"height": 192, "width": 192}),
    ] {
        let cfg = parse(json!({"size": size})).unwrap();
        assert_eq!(
            (cfg.crop_mode, cfg.resize_size, cfg.crop_size),
            (CropMode::Squash, 192, 192)
        );
    }
    let shortest = parse(
        json!({"size": {"shortest_edge": 256}, "do_center_crop": true,
                                "crop_size": {"height": 224, "width": 224}}),
    )
    .unwrap();
    assert_eq!(
        (shortest.crop_mode, shortest.resize_size, shortest.crop_size),
        (CropMode::Center, 256, 224)
    );
    let crop_int = parse(json!({"size": 256, "do_center_crop": true, "crop_size": 224})).unwrap();
    assert_eq!((crop_int.resize_size, crop_int.crop_size), (256, 224));
    let no_resize =
        parse(json!({"do_resize": false, "do_center_crop": true, "crop_size": 64})).unwrap();
    assert_eq!(
        (no_resize.crop_mode, no_resize.crop_size),
        (CropMode::CropOnly, 64)
    );
    assert!(no_resize.validate().is_ok());
    let raw =
        parse(json!({"do_rescale": false, "do_normalize": false, "rescale_factor": 0.5})).unwrap();
    assert_eq!(
        (raw.rescale_factor, raw.mean, raw.std),
        (1.0, [0.0; 3], [1.0; 3])
    );
    let scalar =
        parse(json!({"image_mean": 0.4, "image_std": 0.2, "rescale_factor": 0.5})).unwrap();
    assert_eq!(
        (scalar.mean, scalar.std, scalar.rescale_factor),
        ([0.4; 3], [0.2; 3], 0.5)
    );
    for (code, name) in [
        (0, "nearest"),
        (1, "lanczos"),
        (2, "bilinear"),
        (4, "box"),
        (5, "hamming"),
    ] {
        assert_eq!(
            parse(json!({"resample": code}))
                .unwrap()
                .interpolation
                .as_str(),
            name
        );
    }
}

#[test]
fn hostile_or_unservable_values_are_refused_naming_the_key() {
    let cases = [
        (json!("ViTImageProcessor"), "expected a JSON object"),
        (
            json!({"image_processor_type": "CLIPImageProcessor"}),
            "image_processor_type",
        ),
        (json!({"image_processor_type": 7}), "image_processor_type"),
        (
            json!({"feature_extractor_type": "ConvNextFeatureExtractor"}),
            "feature_extractor_type",
        ),
        (json!({"size": 0}), "size"),
        (json!({"size": -3}), "size"),
        (json!({"size": 100000}), "size"),
        (json!({"size": 2.5}), "size"),
        (json!({"size": "224"}), "size"),
        (json!({"size": {"height": 224, "width": 256}}), "224x256"),
        (json!({"size": {"height": 224}}), "size"),
        (
            json!({"size": {"shortest_edge": 224, "longest_edge": 1333}}),
            "longest_edge",
        ),
        (
            json!({"size": {"max_height": 224, "max_width": 224}}),
            "max_height",
        ),
        (json!({"size": {"shortest_edge": 224}}), "shortest_edge"),
        (json!({"do_resize": false}), "do_resize"),
        (json!({"do_resize": "yes"}), "do_resize"),
        (json!({"do_center_crop": true}), "crop_size"),
        (
            json!({"do_center_crop": true, "crop_size": {"shortest_edge": 224}}),
            "crop_size",
        ),
        (
            json!({"do_center_crop": true, "crop_size": [224, 200]}),
            "crop_size",
        ),
        (json!({"resample": 6}), "resample"),
        (json!({"resample": "bicubic"}), "resample"),
        (json!({"rescale_factor": 0}), "rescale_factor"),
        (json!({"rescale_factor": "1/255"}), "rescale_factor"),
        (json!({"image_mean": [0.5, 0.5]}), "image_mean"),
        (json!({"image_mean": [0.5]}), "image_mean"),
        (json!({"image_std": [0.5, 0, 0.5]}), "image_std"),
        (json!({"image_std": [0.5, null, 0.5]}), "image_std"),
        (json!({"do_pad": true}), "do_pad"),
    ];
    for (v, key) in cases {
        let err = parse(v.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::InvalidSource {
                    origin: HF_SOURCE,
                    ..
                }
            ),
            "{v}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(key), "{v}: {text}");
    }
}
