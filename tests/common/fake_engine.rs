//! The gRPC tests' stand-in engine, built from the library's one fake engine
//! (`swin_serve::engine::fake`, feature `test-util`): [`gated_engine`] answers one image at a time,
//! each held until its gate ([`FakeControls`]) opens, so that work queued behind it waits as long as
//! a test wants; logits\[c\] = the image's first input value + c. [`gated_model`] loads it,
//! [`serving_gated`] serves it.

use std::sync::Arc;
use std::time::Duration;

use swin_serve::engine::fake::{self, FakeEngine};
pub use swin_serve::engine::fake::{FakeControls, OpenOnDrop};
use swin_serve::engine::EngineDescription;
use swin_serve::postprocess::Labels;
use swin_serve::preprocess::PreprocessConfig;
use swin_serve::proto;
use swin_serve::proto::inference as oip_pb;
use swin_serve::scheduler::EnginePool;
use swin_serve::server::{ModelLoadError, ServerConfig, ServingModel};
use tonic::transport::Channel;

use super::calls::{oip_input, oip_output};
use super::test_server::TestServer;

/// Input side (pixels) of the gated engine: images are resized and cropped to this.
pub const GATED_SIDE: usize = 32;
/// Classes of the gated engine (generic labels `class_0` ... `class_9`).
pub const GATED_CLASSES: usize = 10;
/// The model name the gated engine is served under (GetModelInfo, OIP).
pub const GATED_MODEL: &str = "gated-test-engine";
/// Values in one gated-engine image (3 × side × side).
pub const GATED_IMAGE_LEN: usize = 3 * GATED_SIDE * GATED_SIDE;

/// The gated engine's logits: logits\[c\] = the image's first input value + c.
fn first_value_plus_class(first_value: f32, class: usize) -> f32 {
    first_value + class as f32
}

/// The stand-in engine: the library's [`FakeEngine`] with max batch 1 and [`first_value_plus_class`]
/// logits, every batch held (after being recorded) until `gate` opens.
pub fn gated_engine(gate: &Arc<FakeControls>) -> FakeEngine {
    FakeEngine::new(EngineDescription {
        detail: "gated test engine".into(),
        ..fake::description(GATED_SIDE, GATED_CLASSES, 1)
    })
    .with_logits(first_value_plus_class)
    .with_controls(Arc::clone(gate))
}

/// A loader (`TestServerBuilder::loader`) of a model whose only engine instance is a
/// [`gated_engine`] on `gate`, behind a queue of `queue_capacity` admission slots.
pub fn gated_model(
    gate: &Arc<FakeControls>,
    queue_capacity: usize,
) -> impl FnOnce() -> Result<ServingModel, ModelLoadError> + Send + 'static {
    let engine = gated_engine(gate);
    move || {
        Ok(ServingModel {
            pool: EnginePool::new(vec![Box::new(engine)], queue_capacity),
            preprocess: PreprocessConfig::for_image_size(GATED_SIDE as u32),
            labels: Labels::generic(GATED_CLASSES),
            info: proto::ModelInfo {
                model: GATED_MODEL.into(),
                num_classes: GATED_CLASSES as u32,
                input_size: GATED_SIDE as u32,
                ..Default::default()
            },
            stats: Default::default(),
            max_queue_delay: Duration::ZERO,
        })
    }
}

/// A [`TestServer`] with `config` whose model is [`gated_model`] (64 admission slots), connected
/// and SERVING.
#[allow(dead_code)] // classify, oip, deadlines, limits (shutdown holds its loader)
pub async fn serving_gated(
    config: ServerConfig,
    gate: &Arc<FakeControls>,
) -> (TestServer, Channel) {
    TestServer::builder()
        .config(config)
        .loader(gated_model(gate, 64))
        .serving()
        .await
}

/// Gated-engine images whose first value is each of `firsts` (the rest 0).
fn gated_tensors(firsts: &[f32]) -> Vec<f32> {
    let mut values = vec![0f32; firsts.len() * GATED_IMAGE_LEN];
    for (i, &v) in firsts.iter().enumerate() {
        values[i * GATED_IMAGE_LEN] = v;
    }
    values
}

/// A ModelInfer request (id `req-7`) for the gated model: the images of [`gated_tensors`] as
/// INPUT, in `raw_input_contents` when `raw` (else typed `fp32_contents`); outputs LOGITS and
/// PROBABILITIES (classification, top 3).
#[allow(dead_code)] // oip, limits
pub fn gated_infer_request(firsts: &[f32], raw: bool) -> oip_pb::ModelInferRequest {
    let values = gated_tensors(firsts);
    let shape = [firsts.len() as i64, 3, GATED_SIDE as i64, GATED_SIDE as i64];
    let mut input = oip_input("INPUT", "FP32", &shape);
    let mut raw_input_contents = vec![];
    if raw {
        raw_input_contents.push(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    } else {
        input.contents = Some(oip_pb::InferTensorContents {
            fp32_contents: values,
            ..Default::default()
        });
    }
    oip_pb::ModelInferRequest {
        model_name: GATED_MODEL.into(),
        id: "req-7".into(),
        inputs: vec![input],
        outputs: vec![
            oip_output("LOGITS", None),
            oip_output("PROBABILITIES", Some(3)),
        ],
        raw_input_contents,
        ..Default::default()
    }
}
