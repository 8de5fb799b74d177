//! The checkpoint's metadata through the server: the eval transform its source prescribes (and
//! the flags' overrides) is the one applied, logged and shown by GetModelInfo and OIP ModelConfig;
//! its class names are served unless `--labels` is given. The engine is the library's fake
//! (`engine::fake`) behind a `BackendInfo` carrying `CheckpointMetadata`, loaded by the server's
//! own `serving_model_from`.

mod common {
    pub mod test_server;
}

use std::io::Cursor;
use std::path::PathBuf;

use serde_json::json;
use swin_serve::engine::fake::{self, FakeEngine};
use swin_serve::engine::{BackendInfo, BackendKind, Engines};
use swin_serve::model::{CheckpointMetadata, PreprocessingSpec, WeightsSource};
use swin_serve::preprocess::{
    preprocess_into, Interpolation, PreprocessConfig, PreprocessOverrides,
};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use swin_serve::server::{serving_model_from, ModelOptions};
use tonic::transport::Channel;

use common::test_server::TestServer;

const SIDE: usize = 32;
const HF_FORMAT: &str = "Hugging Face Swinv2ForImageClassification";

/// The names a Hugging Face `id2label` gives.
fn id2label() -> Vec<String> {
    ["cat", "dog", "bird"].map(String::from).to_vec()
}

/// A fake 32×32, 3-class engine (logit c = first input value · (c + 1)) whose checkpoint says
/// `preprocessing` and `labels`.
fn engines(preprocessing: PreprocessingSpec, labels: Option<Vec<String>>) -> Engines {
    let engine = FakeEngine::new(fake::description(SIDE, 3, 1));
    Engines {
        instances: engine.instances(1),
        info: BackendInfo {
            kind: BackendKind::Cpu,
            model_name: "swinv2-fake".into(),
            config: None,
            description: fake::description(SIDE, 3, 1),
            threads_per_instance: Some(1),
            plugin_checks: vec![],
            weights_source: "fake".into(),
            random_weights: false,
            checkpoint: CheckpointMetadata {
                format: HF_FORMAT.into(),
                preprocessing,
                labels,
            },
        },
    }
}

/// What the flags would make: `--labels` and the preprocessing overrides.
fn options(labels: Option<PathBuf>, preprocess: PreprocessOverrides) -> ModelOptions {
    let mut opts = ModelOptions::cpu(WeightsSource::Random {
        seed: 0,
        config: swin_serve::model::SwinConfig::tiny_window8_256(),
    });
    opts.labels = labels;
    opts.preprocess = preprocess;
    opts
}

/// A Hugging Face processor: bilinear straight to 32×32, mean/std 0.5.
fn hf_processor() -> PreprocessingSpec {
    PreprocessingSpec::HuggingFace(json!({
        "image_processor_type": "ViTImageProcessor",
        "size": {"height": SIDE, "width": SIDE},
        "resample": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }))
}

async fn serve(engines: Engines, opts: ModelOptions) -> (TestServer, Channel) {
    TestServer::builder()
        .loader(move || serving_model_from(engines, &opts))
        .serving()
        .await
}

/// A 40×30 PNG: white top-left pixel, a gradient elsewhere.
fn image() -> Vec<u8> {
    let img = image::RgbImage::from_fn(40, 30, |x, y| {
        if x == 0 && y == 0 {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn classify(ch: &Channel) -> proto::ClassifyResponse {
    ClassifierClient::new(ch.clone())
        .classify(proto::ClassifyRequest {
            image: image(),
            top_k: 3,
            request_id: "metadata".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn model_info(ch: &Channel) -> proto::ModelInfo {
    ClassifierClient::new(ch.clone())
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn the_sources_pipeline_and_labels_are_served_and_shown() {
    let (srv, ch) = serve(
        engines(hf_processor(), Some(id2label())),
        options(None, Default::default()),
    )
    .await;
    let info = model_info(&ch).await;
    assert_eq!(info.checkpoint_format, HF_FORMAT);
    assert_eq!(info.labels_source, "checkpoint");
    let pre = info.preprocessing.clone().unwrap();
    assert_eq!(
        (
            pre.resize_size,
            pre.crop_size,
            pre.crop_mode.as_str(),
            pre.interpolation.as_str()
        ),
        (SIDE as u32, SIDE as u32, "squash", "bilinear")
    );
    assert_eq!((pre.mean, pre.std), (vec![0.5; 3], vec![0.5; 3]));
    assert_eq!(pre.crop_rounding, "floor");
    assert_eq!(pre.rescale_factor, 1.0 / 255.0);
    assert_eq!(
        pre.source,
        "Hugging Face preprocessor_config.json (ViTImageProcessor)"
    );

    // The engine saw the HF pipeline's tensor: its first value decides the logits.
    let expected_cfg = PreprocessConfig::from_hf_preprocessor(&json!({
        "size": SIDE, "resample": 2, "image_mean": 0.5, "image_std": 0.5
    }))
    .unwrap();
    let mut tensor = vec![0f32; expected_cfg.tensor_len()];
    preprocess_into(&image(), &expected_cfg, &mut tensor).unwrap();
    let response = classify(&ch).await;
    let labels: Vec<&str> = response
        .predictions
        .iter()
        .map(|p| p.label.as_str())
        .collect();
    let first = tensor[0];
    assert!(first > 0.0, "{first}");
    assert_eq!(labels, vec!["bird", "dog", "cat"], "id2label names");
    assert!((response.predictions[0].logit - 3.0 * first).abs() < 1e-6);

    // OIP ModelConfig carries the same.
    let config = GrpcInferenceServiceClient::new(ch.clone())
        .model_config(oip_pb::ModelConfigRequest {
            name: info.model.clone(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let param = |k: &str| config.parameters[k].string_value.clone();
    assert_eq!(param("crop_mode"), "squash");
    assert_eq!(param("interpolation"), "bilinear");
    assert_eq!(param("crop_rounding"), "floor");
    assert_eq!(param("resize_size"), SIDE.to_string());
    assert_eq!(param("mean"), "0.5,0.5,0.5");
    assert_eq!(param("preprocessing_source"), pre.source);
    assert_eq!(param("checkpoint_format"), HF_FORMAT);
    assert_eq!(param("labels_source"), "checkpoint");
    srv.stop().await;
}

#[tokio::test]
async fn labels_file_wins_and_flags_override_the_pipeline() {
    let dir = std::env::temp_dir().join(format!("swin-serve-metadata-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("labels.txt");
    std::fs::write(&file, "zero\none\ntwo\n").unwrap();
    let flags = PreprocessOverrides {
        interpolation: Some(Interpolation::Bicubic),
        crop_pct: Some(0.875),
        mean: Some([0.25; 3]),
        crop_mode: Some(swin_serve::preprocess::CropMode::Center),
        ..Default::default()
    };
    let PreprocessingSpec::HuggingFace(processor) = hf_processor() else {
        unreachable!()
    };
    let expected_cfg = flags
        .apply(PreprocessConfig::from_hf_preprocessor(&processor).unwrap())
        .unwrap();
    let mut tensor = vec![0f32; expected_cfg.tensor_len()];
    preprocess_into(&image(), &expected_cfg, &mut tensor).unwrap();
    let (srv, ch) = serve(
        engines(hf_processor(), Some(id2label())),
        options(Some(file.clone()), flags),
    )
    .await;
    let info = model_info(&ch).await;
    assert_eq!(info.labels_source, format!("--labels {}", file.display()));
    let pre = info.preprocessing.unwrap();
    assert_eq!(
        (
            pre.resize_size,
            pre.crop_mode.as_str(),
            pre.interpolation.as_str()
        ),
        (36, "center", "bicubic") // floor(32 / 0.875)
    );
    assert_eq!(pre.mean, vec![0.25; 3]);
    assert!(
        pre.source.ends_with(
            "(ViTImageProcessor) + --crop-mode center --crop-pct 0.875 --interpolation bicubic --mean 0.25,0.25,0.25"
        ),
        "{}",
        pre.source
    );
    // The engine saw the overridden pipeline's tensor (logit c = first value · (c + 1)).
    let response = classify(&ch).await;
    for p in &response.predictions {
        let want = tensor[0] * (p.class_id as f32 + 1.0);
        assert!((p.logit - want).abs() < 1e-6, "{p:?} vs {want}");
    }
    let labels: Vec<String> = response.predictions.into_iter().map(|p| p.label).collect();
    let expected = if tensor[0] > 0.0 {
        ["two", "one", "zero"]
    } else {
        ["zero", "one", "two"]
    };
    assert_eq!(labels, expected, "the --labels names");
    srv.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn official_and_timm_sources_and_generic_labels() {
    let timm = PreprocessingSpec::Timm(json!({
        "input_size": [3, SIDE, SIDE], "crop_pct": 0.9, "interpolation": "bicubic",
        "crop_mode": "border"
    }));
    let (srv, ch) = serve(engines(timm, None), options(None, Default::default())).await;
    let info = model_info(&ch).await;
    assert_eq!(info.labels_source, "generic");
    let pre = info.preprocessing.unwrap();
    assert_eq!(
        (
            pre.resize_size,
            pre.crop_mode.as_str(),
            pre.source.as_str(),
            pre.crop_rounding.as_str()
        ),
        (35, "border", "timm pretrained_cfg", "torchvision") // floor(32 / 0.9)
    );
    let labels: Vec<String> = classify(&ch)
        .await
        .predictions
        .into_iter()
        .map(|p| p.label)
        .collect();
    assert_eq!(labels.len(), 3);
    assert!(labels.iter().all(|l| l.starts_with("class_")), "{labels:?}");
    srv.stop().await;

    let (srv, ch) = serve(
        engines(PreprocessingSpec::Official, None),
        options(None, Default::default()),
    )
    .await;
    let pre = model_info(&ch).await.preprocessing.unwrap();
    assert_eq!(
        (pre.resize_size, pre.crop_mode.as_str(), pre.source.as_str()),
        (36, "center", "official") // int(256 / 224 * 32)
    );
    srv.stop().await;
}

#[test]
fn a_source_of_another_size_or_bad_labels_refuses_to_load() {
    let opts = options(None, Default::default());
    // The processor resizes to 224 but the model takes 32.
    let hf224 = PreprocessingSpec::HuggingFace(json!({"size": 224}));
    let err = serving_model_from(engines(hf224, None), &opts)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("224x224") && err.contains("32x32"), "{err}");
    // id2label with 2 names for 3 classes.
    let two = Some(vec!["a".to_string(), "b".to_string()]);
    let err = serving_model_from(engines(PreprocessingSpec::Official, two), &opts)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("2 classes") && err.contains("--labels"),
        "{err}"
    );
    // A hostile processor type is named, escaped.
    let hostile = PreprocessingSpec::HuggingFace(json!({"image_processor_type": "X\u{1b}[2J"}));
    let err = serving_model_from(engines(hostile, None), &opts)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("image_processor_type") && !err.contains('\u{1b}'),
        "{err}"
    );
}
