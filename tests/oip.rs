//! The Open Inference Protocol v2 (`inference.GRPCInferenceService`) end to end, on the gated
//! stand-in engine (logits\[c\] = first input value + c, so every number is known here): liveness
//! and readiness over the server's life, metadata and config, ModelInfer of tensors and images,
//! refusals, ModelStreamInfer, statistics, Triton RPCs not served, and the `timeout` parameter.

mod common {
    pub mod calls;
    pub mod fake_engine;
    pub mod test_server;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use swin_serve::preprocess::{preprocess_into, PreprocessConfig};
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use swin_serve::server::ServerConfig;
use tonic::transport::Channel;
use tonic::{Code, Request};

use common::calls::{guarded, oip_input, oip_output, softmax_f64, test_image};
use common::fake_engine::{
    gated_infer_request, gated_model, serving_gated, FakeControls, OpenOnDrop, GATED_CLASSES,
    GATED_IMAGE_LEN, GATED_MODEL, GATED_SIDE,
};
use common::test_server::{wait_serving, TestServer};

type InferenceClient = GrpcInferenceServiceClient<Channel>;

/// The server settings of the OIP tests: a drain delay to watch readiness in, 16 images per call.
fn oip_config() -> ServerConfig {
    ServerConfig {
        drain_delay: Duration::from_millis(600),
        max_batch_images: 16,
        ..ServerConfig::default()
    }
}

/// A server of [`oip_config`] whose gated engine's gate is open, SERVING, with an OIP client.
async fn serving_open_gate() -> (TestServer, InferenceClient, Channel) {
    let gate = FakeControls::with_gate_closed();
    gate.open();
    let (srv, ch) = TestServer::builder()
        .config(oip_config())
        .loader(gated_model(&gate, 64))
        .serving()
        .await;
    (srv, InferenceClient::new(ch.clone()), ch)
}

fn ready(name: &str, version: &str) -> oip_pb::ModelReadyRequest {
    oip_pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    }
}

async fn server_ready(oip: &mut InferenceClient) -> bool {
    oip.server_ready(oip_pb::ServerReadyRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready
}

async fn model_ready(oip: &mut InferenceClient, name: &str, version: &str) -> bool {
    oip.model_ready(ready(name, version))
        .await
        .unwrap()
        .into_inner()
        .ready
}

/// Little-endian FP32 values of a raw output.
fn floats(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Triton's raw BYTES layout: 4-byte little-endian length, then the bytes, per element.
fn split_bytes(mut raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let len = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(raw[4..4 + len].to_vec()).unwrap());
        raw = &raw[4 + len..];
    }
    out
}

fn join_bytes(elements: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// ModelInfer of INPUT (3 images raw, 3 typed, 1 with no outputs named): 3 answered calls.
async fn check_model_infer_input(oip: &mut InferenceClient) {
    // INPUT, raw: logits[c] = first value + c (the gated engine), so every number is known here;
    // probabilities from an independent f64 softmax.
    let classes = GATED_CLASSES as i64;
    let firsts = [0.5f32, -2.0, 7.25];
    let expected: Vec<Vec<f32>> = firsts
        .iter()
        .map(|&v| (0..GATED_CLASSES).map(|c| v + c as f32).collect())
        .collect();
    let raw = oip
        .model_infer(gated_infer_request(&firsts, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            raw.model_name.as_str(),
            raw.model_version.as_str(),
            raw.id.as_str()
        ),
        (GATED_MODEL, "1", "req-7")
    );
    assert_eq!(raw.outputs.len(), 2);
    assert_eq!(raw.raw_output_contents.len(), 2);
    assert!(raw.outputs.iter().all(|o| o.contents.is_none()));
    assert_eq!(
        (
            raw.outputs[0].name.as_str(),
            raw.outputs[0].datatype.as_str()
        ),
        ("LOGITS", "FP32")
    );
    assert_eq!(raw.outputs[0].shape, vec![3, classes]);
    assert_eq!(floats(&raw.raw_output_contents[0]), expected.concat());
    assert_eq!(
        (
            raw.outputs[1].name.as_str(),
            raw.outputs[1].datatype.as_str()
        ),
        ("PROBABILITIES", "BYTES")
    );
    assert_eq!(raw.outputs[1].shape, vec![3, 3]);
    let strings = split_bytes(&raw.raw_output_contents[1]);
    let mut wanted = Vec::new();
    for row in &expected {
        let p = softmax_f64(row);
        for c in [9usize, 8, 7] {
            wanted.push(format!("{:.6}:{c}:class_{c}", p[c]));
        }
    }
    assert_eq!(strings, wanted);

    // Typed in, typed out, same numbers.
    let typed = oip
        .model_infer(gated_infer_request(&firsts, false))
        .await
        .unwrap()
        .into_inner();
    assert!(typed.raw_output_contents.is_empty());
    assert_eq!(
        typed.outputs[0].contents.as_ref().unwrap().fp32_contents,
        expected.concat()
    );
    let typed_strings: Vec<String> = typed.outputs[1]
        .contents
        .as_ref()
        .unwrap()
        .bytes_contents
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(typed_strings, wanted);

    // No outputs named: both, plain.
    let mut all = gated_infer_request(&[1.0], true);
    all.outputs.clear();
    let all = oip.model_infer(all).await.unwrap().into_inner();
    let names: Vec<&str> = all.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["LOGITS", "PROBABILITIES"]);
    let p = floats(&all.raw_output_contents[1]);
    let reference = softmax_f64(
        &(0..GATED_CLASSES)
            .map(|c| 1.0 + c as f32)
            .collect::<Vec<_>>(),
    );
    for (got, want) in p.iter().zip(&reference) {
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

/// ModelInfer of IMAGE (raw BYTES): one image answered, then a pair with a bad second file
/// refused (its good first image reached the engine).
async fn check_model_infer_image(oip: &mut InferenceClient) {
    // Decoded and preprocessed as Classify does; a bad file names its index.
    let png = test_image(50, 40, image::ImageFormat::Png);
    let image_request = |files: &[&[u8]]| oip_pb::ModelInferRequest {
        model_name: GATED_MODEL.into(),
        inputs: vec![oip_input("IMAGE", "BYTES", &[files.len() as i64])],
        raw_input_contents: vec![join_bytes(files)],
        ..Default::default()
    };
    let decoded = oip
        .model_infer(image_request(&[&png]))
        .await
        .unwrap()
        .into_inner();
    let mut tensor = vec![0f32; GATED_IMAGE_LEN];
    preprocess_into(
        &png,
        &PreprocessConfig::for_image_size(GATED_SIDE as u32),
        &mut tensor,
    )
    .unwrap();
    let logits = floats(&decoded.raw_output_contents[0]);
    assert_eq!(logits[0], tensor[0]);
    let e = oip
        .model_infer(image_request(&[&png, b"not an image"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("IMAGE[1]: "), "{e:?}");
}

/// Five ModelInfer calls refused, each with the right code and a message that says what is wrong.
async fn check_model_infer_refusals(oip: &mut InferenceClient) {
    let mut unknown_model = gated_infer_request(&[1.0], true);
    unknown_model.model_name = "resnet50".into();
    let mut unknown_version = gated_infer_request(&[1.0], true);
    unknown_version.model_version = "3".into();
    let mut wrong_type = gated_infer_request(&[1.0], true);
    wrong_type.inputs[0].datatype = "FP16".into();
    let mut short = gated_infer_request(&[1.0], true);
    short.raw_input_contents[0].pop();
    let mut unknown_output = gated_infer_request(&[1.0], true);
    unknown_output.outputs.push(oip_output("SCORES", None));
    for (request, code, says) in [
        (unknown_model, Code::NotFound, "unknown model"),
        (unknown_version, Code::NotFound, "no version"),
        (wrong_type, Code::InvalidArgument, "must be FP32"),
        (short, Code::InvalidArgument, "bytes"),
        (unknown_output, Code::InvalidArgument, "unknown output"),
    ] {
        let e = oip.model_infer(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(says), "{says:?} not in {e:?}");
    }
}

/// ModelStreamInfer of three requests, the second one failing: answers in request order, the
/// failed one as `error_message`.
async fn check_model_stream_infer(oip: &mut InferenceClient) {
    let mut bad = gated_infer_request(&[2.0], true);
    bad.id = "bad".into();
    bad.outputs.push(oip_output("SCORES", None));
    let mut first = gated_infer_request(&[3.0], true);
    first.id = "first".into();
    let mut last = gated_infer_request(&[4.0], false);
    last.id = "last".into();
    let mut answers = oip
        .model_stream_infer(tokio_stream::iter(vec![first, bad, last]))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(a) = guarded(answers.message()).await.unwrap() {
        got.push(a);
    }
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got
        .iter()
        .map(|a| a.infer_response.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, ["first", "bad", "last"]);
    assert!(got[0].error_message.is_empty() && got[2].error_message.is_empty());
    assert!(
        got[1].error_message.contains("unknown output"),
        "{:?}",
        got[1]
    );
    assert_eq!(
        floats(&got[0].infer_response.as_ref().unwrap().raw_output_contents[0])[0],
        3.0
    );
    let last = got[2].infer_response.as_ref().unwrap();
    assert_eq!(
        last.outputs[0].contents.as_ref().unwrap().fp32_contents[0],
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_readiness_follows_loading() {
    let gate = FakeControls::with_gate_closed();
    gate.open();
    let mut srv = TestServer::builder()
        .config(oip_config())
        .loader(gated_model(&gate, 64))
        .hold_loader()
        .start()
        .await;
    let ch = srv.channel().await;
    let mut oip = InferenceClient::new(ch.clone());

    // Loading: live, not ready, the model not ready, model RPCs UNAVAILABLE.
    assert!(
        oip.server_live(oip_pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(!server_ready(&mut oip).await);
    assert!(!model_ready(&mut oip, GATED_MODEL, "").await);
    let early = oip
        .model_metadata(oip_pb::ModelMetadataRequest {
            name: GATED_MODEL.into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::Unavailable);
    let index = oip
        .repository_index(oip_pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(index.models.is_empty());

    // Loaded: ready, the model ready in version "" and "1" only.
    srv.release_loader();
    wait_serving(&ch).await;
    assert!(server_ready(&mut oip).await);
    assert!(model_ready(&mut oip, GATED_MODEL, "").await);
    assert!(model_ready(&mut oip, GATED_MODEL, "1").await);
    for (name, version) in [("resnet50", ""), (GATED_MODEL, "2")] {
        let e = oip.model_ready(ready(name, version)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{name} {version}: {e:?}");
    }
    let index = oip
        .repository_index(oip_pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(index.models.len(), 1);
    assert_eq!(
        (
            index.models[0].name.as_str(),
            index.models[0].state.as_str()
        ),
        (GATED_MODEL, "READY")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_metadata_and_config_describe_the_model() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    let meta = oip
        .server_metadata(oip_pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "swin-serve");
    assert!(
        meta.extensions.iter().any(|e| e == "classification"),
        "{meta:?}"
    );

    let meta = oip
        .model_metadata(oip_pb::ModelMetadataRequest {
            name: GATED_MODEL.into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.versions, vec!["1"]);
    let tensors =
        |t: &[oip_pb::model_metadata_response::TensorMetadata]| -> Vec<(String, String, Vec<i64>)> {
            t.iter()
                .map(|t| (t.name.clone(), t.datatype.clone(), t.shape.clone()))
                .collect()
        };
    let side = GATED_SIDE as i64;
    let classes = GATED_CLASSES as i64;
    assert_eq!(
        tensors(&meta.inputs),
        vec![
            ("IMAGE".into(), "BYTES".into(), vec![-1]),
            ("INPUT".into(), "FP32".into(), vec![-1, 3, side, side]),
        ]
    );
    assert_eq!(
        tensors(&meta.outputs),
        vec![
            ("LOGITS".into(), "FP32".into(), vec![-1, classes]),
            ("PROBABILITIES".into(), "FP32".into(), vec![-1, classes]),
        ]
    );
    let config = oip
        .model_config(oip_pb::ModelConfigRequest {
            name: GATED_MODEL.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 16);
    assert_eq!(
        config.input[0].data_type,
        oip_pb::DataType::TypeString as i32
    );
    assert_eq!(config.input[1].dims, vec![3, side, side]);
    assert_eq!(config.output[1].dims, vec![classes]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_model_infer_of_tensors_answers_known_numbers_raw_and_typed() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    check_model_infer_input(&mut oip).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_model_infer_of_images_decodes_them_as_classify_does() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    check_model_infer_image(&mut oip).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_model_infer_refusals_travel_with_the_right_code() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    check_model_infer_refusals(&mut oip).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_model_stream_infer_answers_in_request_order() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    check_model_stream_infer(&mut oip).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_model_statistics_count_what_was_done() {
    let (srv, mut oip, _ch) = serving_open_gate().await;
    check_model_infer_input(&mut oip).await;
    check_model_infer_image(&mut oip).await;
    check_model_infer_refusals(&mut oip).await;
    check_model_stream_infer(&mut oip).await;

    // Images through the engine 3 + 3 + 1 + 1, the good one of the IMAGE pair, 2 via the stream;
    // requests 4 + 2 OK, 1 + 5 + 1 refused.
    let stats = oip
        .model_statistics(oip_pb::ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.model_stats.len(), 1);
    let s = &stats.model_stats[0];
    assert_eq!(s.inference_count, 3 + 3 + 1 + 1 + 1 + 2);
    assert_eq!(
        s.execution_count, s.inference_count,
        "max_batch 1: one batch per image"
    );
    let infer = s.inference_stats.as_ref().unwrap();
    assert_eq!(infer.success.as_ref().unwrap().count, 4 + 2);
    assert_eq!(infer.fail.as_ref().unwrap().count, 6 + 1);
    assert_eq!(
        infer.compute_infer.as_ref().unwrap().count,
        s.inference_count
    );
    assert!(s.last_inference > 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_triton_rpcs_not_served_are_unimplemented() {
    let (srv, _oip, ch) = serving_open_gate().await;
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let codec =
        tonic_prost::ProstCodec::<oip_pb::ServerLiveRequest, oip_pb::ServerLiveResponse>::default();
    let path = "/inference.GRPCInferenceService/RepositoryModelLoad"
        .parse()
        .unwrap();
    let e = grpc
        .unary(Request::new(oip_pb::ServerLiveRequest {}), path, codec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_is_not_ready_while_draining_but_still_answers() {
    let (mut srv, mut oip, _ch) = serving_open_gate().await;
    srv.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!server_ready(&mut oip).await);
    assert!(!model_ready(&mut oip, GATED_MODEL, "").await);
    srv.join(Duration::from_secs(30), "server did not stop")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_timeout_parameter_and_grpc_timeout_bound_model_infer() {
    use oip_pb::infer_parameter::ParameterChoice;
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = serving_gated(ServerConfig::default(), &gate).await;
    let mut oip = InferenceClient::new(ch.clone());

    // The only engine instance is held by a request without a deadline.
    let mut blocker_client = oip.clone();
    let blocker = tokio::spawn(async move {
        blocker_client
            .model_infer(gated_infer_request(&[1.0], true))
            .await
    });
    gate.wait_for_batches(1).await;

    // Triton's `timeout` request parameter (microseconds) bounds the call.
    let mut timed = gated_infer_request(&[2.0], true);
    timed.parameters.insert(
        "timeout".into(),
        oip_pb::InferParameter {
            parameter_choice: Some(ParameterChoice::Int64Param(150_000)),
        },
    );
    let started = Instant::now();
    let e = guarded(oip.model_infer(timed)).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(e.message().contains("`timeout` parameter"), "{e:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));

    // A malformed one is refused.
    let mut bad = gated_infer_request(&[2.0], true);
    bad.parameters.insert(
        "timeout".into(),
        oip_pb::InferParameter {
            parameter_choice: Some(ParameterChoice::StringParam("1s".into())),
        },
    );
    assert_eq!(
        oip.model_infer(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    gate.open();
    let answered = blocker.await.unwrap().unwrap().into_inner();
    assert_eq!(floats(&answered.raw_output_contents[0])[0], 1.0);
    // The expired image never reached the engine.
    assert_eq!(gate.batches().len(), 1);
    srv.stop().await;
}
