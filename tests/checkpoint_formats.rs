//! Checkpoints as each library saves them (`tests/fixtures/make_library_checkpoints.py`: random
//! weights through transformers' `save_pretrained`, timm's `save_for_hf` and `torch.save`) load
//! with no flag but the path, map into the official layout, and give that library's own logits
//! (float64 reference) through the CPU engine; their labels and preprocessing come along.

mod common {
    pub mod fixtures;
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use swin_serve::engine::cpu::{CpuEngine, SwinModel};
use swin_serve::engine::Engine;
use swin_serve::model::formats::load_local;
use swin_serve::model::{ConfigHints, PreprocessingSpec, SwinConfig, SwinVersion, Weights};

use common::fixtures::f32s;

const TOLERANCE: f64 = 1e-4;

fn dir() -> PathBuf {
    common::fixtures::fixture_dir("library")
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let d = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    d / want.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max)
}

/// The logits of `weights` on the fixture `io`'s input against the library's.
fn check_logits(weights: &Weights, config: &SwinConfig, io: &str) {
    let bytes = std::fs::read(dir().join(format!("{io}.io.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (shape, input) = f32s(&st, "input");
    let (_, want) = f32s(&st, "logits");
    let model = Arc::new(SwinModel::new(weights, config).unwrap());
    let mut engine = CpuEngine::new(model, 2, shape[0]).unwrap();
    let mut got = vec![f32::NAN; want.len()];
    engine.infer(&input, shape[0], &mut got).unwrap();
    let err = rel_err(&got, &want);
    assert!(err <= TOLERANCE, "{io}: relative error {err:.3e}");
}

fn load(path: &Path) -> (Weights, SwinConfig) {
    load_local(path, &ConfigHints::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hugging_face_swinv2_directory() {
    let (weights, config) = load(&dir().join("hf_swinv2"));
    assert_eq!(config.version, SwinVersion::V2);
    assert_eq!((config.img_size, config.window_size), (64, 4));
    check_logits(&weights, &config, "hf_swinv2");
    let m = &weights.metadata;
    assert_eq!(
        m.labels.as_deref(),
        Some(&["tabby cat", "golden retriever", "goldfinch"].map(String::from)[..])
    );
    assert!(
        matches!(&m.preprocessing, PreprocessingSpec::HuggingFace(v) if v["size"]["height"] == 64)
    );
    assert!(
        m.format.contains("Swinv2ForImageClassification"),
        "{}",
        m.format
    );
}

#[test]
fn hugging_face_sharded_directory_equals_the_single_file() {
    let (weights, config) = load(&dir().join("hf_swinv2_sharded"));
    assert!(
        weights.metadata.format.contains("4 shards"),
        "{}",
        weights.metadata.format
    );
    check_logits(&weights, &config, "hf_swinv2");
}

#[test]
fn hugging_face_swin_v1_with_pytorch_model_bin_and_a_legacy_processor() {
    let (weights, config) = load(&dir().join("hf_swin_bin"));
    assert_eq!(config.version, SwinVersion::V1);
    assert_eq!(
        (config.img_size, config.window_size, config.num_classes),
        (56, 7, 5)
    );
    check_logits(&weights, &config, "hf_swin_bin");
    assert!(
        matches!(&weights.metadata.preprocessing, PreprocessingSpec::HuggingFace(v) if v["feature_extractor_type"] == "ViTFeatureExtractor")
    );
    assert_eq!(weights.metadata.labels.as_ref().unwrap()[4], "LABEL_4");
}

#[test]
fn timm_hub_directories() {
    let (weights, config) = load(&dir().join("timm_swinv2"));
    assert_eq!(
        (config.version, config.window_size, config.img_size),
        (SwinVersion::V2, 8, 64)
    );
    check_logits(&weights, &config, "timm_swinv2");
    assert!(
        matches!(&weights.metadata.preprocessing, PreprocessingSpec::Timm(v) if v["crop_pct"] == 0.9)
    );
    assert!(weights.metadata.format.contains("swinv2_tiny_window8_256"));

    let (weights, config) = load(&dir().join("timm_swin"));
    assert_eq!(
        (config.version, config.window_size, config.img_size),
        (SwinVersion::V1, 7, 56)
    );
    check_logits(&weights, &config, "timm_swin");
    assert_eq!(
        weights.metadata.labels.as_deref(),
        Some(&["ant", "bee", "wasp"].map(String::from)[..])
    );
}

#[test]
fn a_bare_timm_state_dict_in_its_2023_layout() {
    let path = dir().join("timm_swinv2_staged.pth");
    // No buffers in timm's files: the window and image size are the caller's.
    let err = load_local(&path, &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--window-size"), "{err}");
    let hints = ConfigHints {
        img_size: Some(64),
        window_size: Some(8),
        ..Default::default()
    };
    let (weights, config) = load_local(&path, &hints).unwrap();
    assert!(weights
        .tensors
        .contains_key("layers.0.downsample.reduction.weight"));
    assert!(weights.tensors.contains_key("head.weight"));
    check_logits(&weights, &config, "timm_swinv2");
}

/// A copy of fixture directory `name` with `edit` applied to its config.json.
fn edited_copy(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    tmp
}

#[test]
fn bad_directories_are_refused_with_what_is_wrong() {
    let unknown = edited_copy("hf_swinv2", |c| c["model_type"] = "vit".into());
    let err = load_local(unknown.path(), &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"vit\"") && err.contains("swinv2"), "{err}");

    let ape = edited_copy("hf_swinv2", |c| c["use_absolute_embeddings"] = true.into());
    let err = load_local(ape.path(), &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("use_absolute_embeddings"), "{err}");

    let disagrees = edited_copy("hf_swinv2", |c| c["embed_dim"] = 32.into());
    let err = load_local(disagrees.path(), &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embed_dim = 32") && err.contains("patch_embed.proj.weight"),
        "{err}"
    );

    let timm = edited_copy("timm_swin", |c| {
        c["architecture"] = "swinv2_cr_tiny_ns_224".into()
    });
    let err = load_local(timm.path(), &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not supported") && err.contains("swin_{tiny"),
        "{err}"
    );

    let hostile = edited_copy("hf_swinv2", |c| {
        c["depths"] = serde_json::json!([1e30, -1]);
        c["id2label"] = serde_json::json!({"7": "x"});
    });
    assert!(load_local(hostile.path(), &ConfigHints::default()).is_err());

    let no_weights = edited_copy("hf_swinv2", |_| {});
    std::fs::remove_file(no_weights.path().join("model.safetensors")).unwrap();
    let err = load_local(no_weights.path(), &ConfigHints::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no model.safetensors"), "{err}");
}

/// `--config FILE.yaml` end to end: the official yacs config declares the architecture of an
/// official V1 checkpoint (checked against every tensor), and its `TEST.CROP: False` makes the eval
/// transform the official `Resize((S, S))` without a crop.
#[test]
fn a_yacs_config_declares_the_architecture_and_the_eval_transform() {
    use swin_serve::preprocess::{CropMode, PreprocessConfig};
    let checkpoint =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/v1_tiny_like_w7.pth");
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("v1.yaml");
    let arch = "MODEL:\n  TYPE: swin\n  NUM_CLASSES: 10\n  SWIN:\n    PATCH_SIZE: 2\n    EMBED_DIM: 16\n    DEPTHS: [2, 2, 2]\n    NUM_HEADS: [1, 2, 4]\n    WINDOW_SIZE: 7\nDATA:\n  IMG_SIZE: 56\n";
    std::fs::write(&yaml, format!("{arch}TEST:\n  CROP: False\n")).unwrap();
    let hints = ConfigHints {
        yacs_config: Some(yaml.clone()),
        ..Default::default()
    };
    let (weights, config) = load_local(&checkpoint, &hints).unwrap();
    let (_, inferred) = load_local(&checkpoint, &ConfigHints::default()).unwrap();
    assert_eq!(config, inferred);
    assert_eq!(config.version, SwinVersion::V1);
    assert!(
        weights.metadata.format.contains("yacs"),
        "{}",
        weights.metadata.format
    );
    let PreprocessingSpec::Timm(cfg) = &weights.metadata.preprocessing else {
        panic!("{:?}", weights.metadata.preprocessing);
    };
    let p = PreprocessConfig::from_timm_pretrained_cfg(cfg).unwrap();
    assert_eq!(
        (p.resize_size, p.crop_size, p.crop_mode),
        (56, 56, CropMode::Squash)
    );

    // A config that disagrees with the tensors names the field.
    std::fs::write(&yaml, arch.replace("EMBED_DIM: 16", "EMBED_DIM: 32")).unwrap();
    let err = load_local(&checkpoint, &hints).unwrap_err().to_string();
    assert!(
        err.contains("embed_dim") || err.contains("EMBED_DIM"),
        "{err}"
    );
}
