//! Requests, images and the model the gRPC test files share (`classify.rs`, `oip.rs`,
//! `deadlines.rs`, `limits.rs`, `shutdown.rs`, `auth.rs`; `mod common { pub mod calls; }`). What
//! not every one of them uses allows `dead_code`, saying who does.

use std::io::Cursor;
use std::time::Duration;

use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinConfig, WeightsSource};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::server::ModelOptions;
use tonic::transport::Channel;

/// Seed of the random weights of [`random_swin_options`].
pub const RANDOM_SEED: u64 = 7;

/// The network of [`random_swin_options`]: SwinV2-T, window 8, 256×256, 1000 classes.
pub fn random_swin_config() -> SwinConfig {
    SwinConfig::tiny_window8_256()
}

/// The full-size random-weight SwinV2-T ([`RANDOM_SEED`]) on 2 instances of 1 thread, batches of
/// at most 4.
#[allow(dead_code)] // classify, deadlines, shutdown, auth (not oip, limits)
pub fn random_swin_options() -> ModelOptions {
    let mut cpu = CpuOptions::new(WeightsSource::Random {
        seed: RANDOM_SEED,
        config: random_swin_config(),
    });
    cpu.instances = 2;
    cpu.threads = 1;
    cpu.max_batch = 4;
    ModelOptions::new(BackendOptions::Cpu(cpu))
}

/// A test image: a smooth colour pattern, `w`×`h`, encoded as `format`.
pub fn test_image(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            ((x + y) * 7 % 256) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A Classify request for the `top_k` best classes of `image`, request id `req`.
pub fn classify_request(image: Vec<u8>, top_k: u32) -> proto::ClassifyRequest {
    proto::ClassifyRequest {
        image,
        top_k,
        request_id: "req".into(),
    }
}

/// `n` concurrent Classify calls (top 5) of `image`, each on its own task.
#[allow(dead_code)] // classify, deadlines, limits, shutdown (not oip, auth)
pub fn spawn_classifies(
    client: &ClassifierClient<Channel>,
    image: &[u8],
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<proto::ClassifyResponse, tonic::Status>>> {
    (0..n)
        .map(|_| {
            let mut c = client.clone();
            let img = image.to_vec();
            tokio::spawn(async move {
                c.classify(classify_request(img, 5))
                    .await
                    .map(|r| r.into_inner())
            })
        })
        .collect()
}

/// Awaits `call` under a hang guard.
#[allow(dead_code)] // classify, oip, deadlines, limits (not shutdown, auth)
pub async fn guarded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the server neither answered nor timed the call out")
}

/// The class ids of a Classify answer, best first.
#[allow(dead_code)] // classify, deadlines
pub fn class_ids(r: &proto::ClassifyResponse) -> Vec<u32> {
    r.predictions.iter().map(|p| p.class_id).collect()
}

/// Softmax of `logits` in f64: the reference the server's probabilities are checked against.
#[allow(dead_code)] // classify, oip
pub fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// An OIP input tensor `name` of `datatype` and `shape`, without contents.
#[allow(dead_code)] // classify, oip, fake_engine (not auth)
pub fn oip_input(
    name: &str,
    datatype: &str,
    shape: &[i64],
) -> oip_pb::model_infer_request::InferInputTensor {
    oip_pb::model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        ..Default::default()
    }
}

/// An OIP requested output `name`, with the classification extension's top `k` when given.
#[allow(dead_code)] // classify, oip, fake_engine (not auth)
pub fn oip_output(
    name: &str,
    classification: Option<i64>,
) -> oip_pb::model_infer_request::InferRequestedOutputTensor {
    use oip_pb::infer_parameter::ParameterChoice;
    oip_pb::model_infer_request::InferRequestedOutputTensor {
        name: name.into(),
        parameters: classification
            .map(|k| {
                [(
                    "classification".to_string(),
                    oip_pb::InferParameter {
                        parameter_choice: Some(ParameterChoice::Int64Param(k)),
                    },
                )]
                .into()
            })
            .unwrap_or_default(),
    }
}

/// `calls` runs of `call` at once, each on its own task: when each was answered, from their
/// common start, earliest first.
#[allow(dead_code)] // limits, http_api
pub async fn answer_times<F, Fut>(calls: usize, call: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let answered = call();
            tokio::spawn(async move {
                answered.await;
                started.elapsed()
            })
        })
        .collect();
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await.unwrap());
    }
    times.sort();
    times
}
