use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<PreprocessConfig, PreprocessError> {
    PreprocessConfig::from_timm_pretrained_cfg(&v)
}

#[test]
fn swinv2_tiny_window8_256() {
    // timm's pretrained_cfg of swinv2_tiny_window8_256.ms_in1k.
    let cfg = parse(json!({
        "input_size": [3, 256, 256],
        "interpolation": "bicubic",
        "crop_pct": 0.9,
        "crop_mode": "center",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "num_classes": 1000,
        "label_names": ["tench"],
    }))
    .unwrap();
    assert_eq!(cfg.crop_size, 256);
    assert_eq!(cfg.resize_size, 284); // math.floor(256 / 0.9)
    assert_eq!(cfg.crop_mode, CropMode::Center);
    assert_eq!(cfg.interpolation, Interpolation::Bicubic);
    assert_eq!(cfg.crop_rounding, CropRounding::Torchvision);
    assert_eq!(cfg.mean, IMAGENET_DEFAULT_MEAN);
    assert_eq!(cfg.std, IMAGENET_DEFAULT_STD);
    assert_eq!(cfg.rescale_factor, DEFAULT_RESCALE_FACTOR);
    assert_eq!(cfg.source, "timm pretrained_cfg");
    assert!(cfg.validate().is_ok());
}

#[test]
fn absent_and_false_keys_take_timms_defaults() {
    for v in [
        json!({}),
        json!({"input_size": null, "crop_pct": null, "interpolation": "", "mean": [],
               "std": null, "crop_mode": ""}),
        json!({"crop_pct": 0, "crop_mode": null, "mean": null}),
    ] {
        let cfg = parse(v.clone()).unwrap();
        assert_eq!(
            (cfg.crop_size, cfg.resize_size),
            (224, 256),
            "{v}: floor(224 / 0.875)"
        );
        assert_eq!(cfg.interpolation, Interpolation::Bicubic, "{v}");
        assert_eq!(cfg.crop_mode, CropMode::Center, "{v}");
        assert_eq!(cfg.mean, IMAGENET_DEFAULT_MEAN, "{v}");
    }
}

#[test]
fn every_input_size_form_mode_and_filter() {
    for input in [json!([3, 192, 192]), json!([192, 192]), json!(192)] {
        assert_eq!(parse(json!({"input_size": input})).unwrap().crop_size, 192);
    }
    let squash = parse(json!({"input_size": [3, 224, 224], "crop_pct": 1.0,
                              "crop_mode": "squash", "interpolation": "bilinear"}))
    .unwrap();
    assert_eq!(
        (squash.crop_mode, squash.resize_size, squash.interpolation),
        (CropMode::Squash, 224, Interpolation::Bilinear)
    );
    let border = parse(
        json!({"crop_mode": "border", "crop_pct": 0.95, "mean": [0.5],
                              "std": 0.5}),
    )
    .unwrap();
    assert_eq!(
        (border.crop_mode, border.resize_size),
        (CropMode::Border, 235)
    ); // floor(224 / 0.95) = floor(235.79)
    assert_eq!((border.mean, border.std), ([0.5; 3], [0.5; 3]));
    assert_eq!(border.pad_fill(), [128; 3]);
    for name in ["nearest", "box", "hamming", "lanczos"] {
        let cfg = parse(json!({"interpolation": name})).unwrap();
        assert_eq!(cfg.interpolation.as_str(), name);
    }
    // crop_pct above 1: the resize is smaller than the crop (torchvision pads).
    assert_eq!(parse(json!({"crop_pct": 1.25})).unwrap().resize_size, 179);
}

#[test]
fn hostile_values_are_refused_naming_the_key() {
    let cases = [
        (json!([1, 2, 3]), "expected a JSON object"),
        (json!({"input_size": [3, 224, 256]}), "input_size"),
        (json!({"input_size": [1, 224, 224]}), "3 channels"),
        (json!({"input_size": [3, 0, 0]}), "input_size"),
        (json!({"input_size": [3, 1e12, 1e12]}), "input_size"),
        (
            json!({"input_size": [3, 4294967296u64, 4294967296u64]}),
            "input_size",
        ),
        (json!({"input_size": [3, 224.5, 224.5]}), "input_size"),
        (json!({"input_size": []}), "input_size"),
        (json!({"input_size": "224"}), "input_size"),
        (json!({"crop_pct": "0.9"}), "crop_pct"),
        (json!({"crop_pct": -0.9}), "crop_pct"),
        (json!({"crop_pct": 1e-9}), "crop_pct"),
        (json!({"crop_pct": 1e300}), "crop_pct"),
        (json!({"interpolation": "random"}), "interpolation"),
        (json!({"interpolation": 3}), "interpolation"),
        (json!({"crop_mode": "crop_only"}), "crop_mode"),
        (json!({"crop_mode": ["center"]}), "crop_mode"),
        (json!({"mean": [0.5, 0.5]}), "mean"),
        (json!({"mean": [0.5, "x", 0.5]}), "mean"),
        (json!({"mean": [1e39, 0.5, 0.5]}), "mean"),
        (json!({"std": [0.2, 0.0, 0.2]}), "std"),
        (json!({"std": {"r": 1}}), "std"),
    ];
    for (v, key) in cases {
        let err = parse(v.clone()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                PreprocessError::InvalidSource {
                    origin: TIMM_SOURCE,
                    ..
                }
            ),
            "{v}: {err:?}"
        );
        assert!(text.contains(key), "{v}: {text}");
    }
    // A long hostile string is quoted shortened and escaped.
    let long = "\u{1b}[31m".to_string() + &"x".repeat(10_000);
    let text = parse(json!({"crop_mode": long})).unwrap_err().to_string();
    assert!(text.len() < 300 && !text.contains('\u{1b}'), "{text}");
}
