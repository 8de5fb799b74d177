//! End to end through gRPC: a Hugging Face SwinV2 directory, a timm Swin V1 hub directory and an
//! official Swin V1 checkpoint served with no option but the path. For the two library
//! directories, Classify on a JPEG must answer the probabilities of that library's own whole
//! pipeline (its eval transform, its model in float64, softmax: `e2e.json`, written by
//! `tests/fixtures/make_library_checkpoints.py`) under the checkpoint's own labels, and
//! GetModelInfo must name the format.

mod common {
    pub mod calls;
    pub mod fixtures;
    pub mod test_server;
}

use std::path::Path;

use swin_serve::model::WeightsSource;
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::ModelOptions;

use common::calls::{classify_request, test_image};
use common::test_server::TestServer;

async fn serve(path: &Path) -> (TestServer, tonic::transport::Channel) {
    let mut options = ModelOptions::cpu(WeightsSource::File(path.to_path_buf()));
    if let swin_serve::engine::BackendOptions::Cpu(cpu) = &mut options.backend {
        cpu.threads = 1;
    }
    TestServer::builder().model(options).serving().await
}

fn image() -> Vec<u8> {
    std::fs::read(common::fixtures::fixture_dir("preprocess").join("inputs/chelsea_q90.jpg"))
        .unwrap()
}

async fn classify(ch: &tonic::transport::Channel, top_k: u32) -> proto::ClassifyResponse {
    ClassifierClient::new(ch.clone())
        .classify(classify_request(image(), top_k))
        .await
        .unwrap()
        .into_inner()
}

async fn check_library_dir(name: &str, labels: &[&str], format: &str) {
    let dir = common::fixtures::fixture_dir("library");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("e2e.json")).unwrap()).unwrap();
    let want: Vec<f64> = expected[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (server, ch) = serve(&dir.join(name)).await;
    let response = classify(&ch, want.len() as u32).await;
    assert_eq!(response.predictions.len(), want.len());
    for p in &response.predictions {
        let w = want[p.class_id as usize];
        assert!(
            (p.probability as f64 - w).abs() <= 1e-4 * w.max(1e-3),
            "{name} class {}: {} vs the library's {w}",
            p.class_id,
            p.probability
        );
        assert_eq!(p.label, labels[p.class_id as usize], "{name}");
    }
    let info = ClassifierClient::new(ch.clone())
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        info.checkpoint_format.contains(format),
        "{name}: {}",
        info.checkpoint_format
    );
    server.stop().await;
}

#[tokio::test]
async fn a_hugging_face_swinv2_directory_answers_as_transformers_does() {
    check_library_dir(
        "hf_swinv2",
        &["tabby cat", "golden retriever", "goldfinch"],
        "Hugging Face",
    )
    .await;
}

#[tokio::test]
async fn a_timm_swin_v1_hub_directory_answers_as_timm_does() {
    check_library_dir("timm_swin", &["ant", "bee", "wasp"], "timm hub directory").await;
}

#[tokio::test]
async fn an_official_swin_v1_checkpoint_is_served() {
    let path = common::fixtures::fixture_dir("parity").join("v1_tiny_like_w7.pth");
    let (server, ch) = serve(&path).await;
    let response = ClassifierClient::new(ch.clone())
        .classify(classify_request(
            test_image(80, 60, image::ImageFormat::Png),
            3,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.predictions.len(), 3);
    assert_eq!((response.image_width, response.image_height), (80, 60));
    assert!(
        response.model.starts_with("swin_custom_patch2_window7_56"),
        "{}",
        response.model
    );
    let total: f32 = response.predictions.iter().map(|p| p.probability).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-5);
    server.stop().await;
}
