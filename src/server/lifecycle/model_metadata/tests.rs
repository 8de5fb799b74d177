use serde_json::json;

use super::*;
use crate::preprocess::{CropMode, Interpolation};

#[test]
fn each_source_gives_its_pipeline() {
    let none = PreprocessOverrides::default();
    let official = serving_preprocess(&PreprocessingSpec::Official, 256, &none).unwrap();
    assert_eq!(official, PreprocessConfig::official(256));
    let timm = PreprocessingSpec::Timm(json!({"input_size": [3, 256, 256], "crop_pct": 0.9}));
    let cfg = serving_preprocess(&timm, 256, &none).unwrap();
    assert_eq!(
        (cfg.resize_size, cfg.source.as_str()),
        (284, "timm pretrained_cfg")
    );
    let hf = PreprocessingSpec::HuggingFace(json!({"size": 256, "resample": 3}));
    let cfg = serving_preprocess(&hf, 256, &none).unwrap();
    assert_eq!(
        (cfg.crop_mode, cfg.interpolation),
        (CropMode::Squash, Interpolation::Bicubic)
    );
}

#[test]
fn a_transform_of_another_size_is_refused_naming_both() {
    let none = PreprocessOverrides::default();
    let hf = PreprocessingSpec::HuggingFace(json!({"size": {"height": 224, "width": 224}}));
    let err = serving_preprocess(&hf, 256, &none).unwrap_err().to_string();
    assert!(err.contains("224x224") && err.contains("256x256"), "{err}");
    let bad = PreprocessingSpec::Timm(json!({"crop_pct": "x"}));
    let err = serving_preprocess(&bad, 224, &none)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timm pretrained_cfg") && err.contains("crop_pct"),
        "{err}"
    );
}

#[test]
fn flags_override_the_source() {
    let hf = PreprocessingSpec::HuggingFace(json!({"size": 64, "resample": 2}));
    let flags = PreprocessOverrides {
        interpolation: Some(Interpolation::Bicubic),
        crop_pct: Some(0.875),
        crop_mode: Some(CropMode::Center),
        ..Default::default()
    };
    let cfg = serving_preprocess(&hf, 64, &flags).unwrap();
    assert_eq!(
        (cfg.crop_mode, cfg.resize_size, cfg.interpolation),
        (CropMode::Center, 73, Interpolation::Bicubic)
    );
    assert!(cfg
        .source
        .ends_with("+ --crop-mode center --crop-pct 0.875 --interpolation bicubic"));
}

#[test]
fn labels_precedence() {
    let dir = std::env::temp_dir().join(format!("swin-serve-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("labels.txt");
    std::fs::write(&file, "a\nb\nc\n").unwrap();
    let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();

    let from_file = serving_labels(Some(&file), Some(&names), 3).unwrap();
    assert_eq!(from_file.labels.name(0), "a");
    assert_eq!(from_file.source, format!("--labels {}", file.display()));
    let from_checkpoint = serving_labels(None, Some(&names), 3).unwrap();
    assert_eq!(
        (
            from_checkpoint.labels.name(2).as_ref(),
            from_checkpoint.source.as_str()
        ),
        ("z", LABELS_FROM_CHECKPOINT)
    );
    let imagenet = serving_labels(None, None, 1000).unwrap();
    assert_eq!(imagenet.source, LABELS_IMAGENET);
    assert_eq!(imagenet.labels, Labels::imagenet());
    let generic = serving_labels(None, None, 3).unwrap();
    assert_eq!(
        (generic.labels.name(1).as_ref(), generic.source.as_str()),
        ("class_1", LABELS_GENERIC)
    );

    let err = serving_labels(None, Some(&names), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 classes") && err.contains("has 4"), "{err}");
    let err = serving_labels(Some(&file), None, 1000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has 3 names"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
