//! A deterministic stand-in engine for the gRPC tests: [`GatedEngine`] answers one image at a time,
//! each held until its [`Gate`] opens, so that work queued behind it waits as long as a test wants;
//! logits\[c\] = the image's first input value + c. [`gated_model`] loads it, [`serving_gated`]
//! serves it.
//!
//! The one place the gRPC test files get a fake engine from (`mod common { pub mod calls; pub mod
//! fake_engine; }`): swapping it for another fake changes this file only.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use swin_serve::engine::{BackendKind, Engine, EngineDescription, EngineError};
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

/// Shared by a [`GatedEngine`] and its test: the batches the engine was given (recorded on entry)
/// and the gate that holds every batch until it opens.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    batches: Mutex<Vec<usize>>,
}

impl Gate {
    /// Lets every batch through, held ones and later ones.
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// The size of each batch the engine was given, in order.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// Waits (hang guard only) until the engine has been given `n` batches.
    pub async fn wait_for_batches(&self, n: usize) {
        let guard = Instant::now() + Duration::from_secs(60);
        while self.batches().len() < n {
            assert!(Instant::now() < guard, "the engine never got batch {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Opens the gate when dropped: a failing test must not leave the engine thread blocked (the pool
/// joins it when the server goes).
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The stand-in engine: max batch 1, each batch held until the gate opens.
pub struct GatedEngine(pub Arc<Gate>);

impl Engine for GatedEngine {
    fn describe(&self) -> EngineDescription {
        EngineDescription {
            backend: BackendKind::Cpu,
            channels: 3,
            input_size: GATED_SIDE,
            num_classes: GATED_CLASSES,
            max_batch: 1,
            detail: "gated test engine".into(),
        }
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        self.0.batches.lock().unwrap().push(batch);
        let mut open = self.0.open.lock().unwrap();
        while !*open {
            open = self.0.opened.wait(open).unwrap();
        }
        for (b, row) in logits
            .chunks_exact_mut(GATED_CLASSES)
            .enumerate()
            .take(batch)
        {
            for (c, l) in row.iter_mut().enumerate() {
                *l = input[b * GATED_IMAGE_LEN] + c as f32;
            }
        }
        Ok(())
    }
}

/// A loader (`TestServerBuilder::loader`) of a model whose only engine instance is a
/// [`GatedEngine`] on `gate`, behind a queue of `queue_capacity` admission slots.
pub fn gated_model(
    gate: &Arc<Gate>,
    queue_capacity: usize,
) -> impl FnOnce() -> Result<ServingModel, ModelLoadError> + Send + 'static {
    let gate = Arc::clone(gate);
    move || {
        Ok(ServingModel {
            pool: EnginePool::new(vec![Box::new(GatedEngine(gate))], queue_capacity),
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
pub async fn serving_gated(config: ServerConfig, gate: &Arc<Gate>) -> (TestServer, Channel) {
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
