//! gRPC end to end: the real server in-process on 127.0.0.1:0 with a random-weight SwinV2 model.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use swin_serve::engine::cpu::{CpuEngine, CpuOptions, SwinV2Model};
use swin_serve::engine::{BackendKind, BackendOptions, Engine, EngineDescription, EngineError};
use swin_serve::model::{SwinV2Config, Weights, WeightsSource};
use swin_serve::postprocess::Labels;
use swin_serve::preprocess::{preprocess_into, PreprocessConfig};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient as InferenceClient;
use swin_serve::scheduler::EnginePool;
use swin_serve::server::{self, load_serving_model, ModelOptions, ServerConfig, ServingModel};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use common::crc32;

const SEED: u64 = 7;

fn config() -> SwinV2Config {
    SwinV2Config::tiny_window8_256()
}

/// A test image: a smooth colour pattern, `w`×`h`, encoded as `format`.
fn test_image(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
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

/// A PNG made of the signature and an IHDR chunk only (valid CRC), claiming `w`×`h`.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let crc = crc32(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.to_be_bytes());
    png
}

struct TestServer {
    addr: SocketAddr,
    release_loader: Option<oneshot::Sender<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

async fn start_server(drain_delay: Duration) -> TestServer {
    let mut cpu = CpuOptions::new(WeightsSource::Random {
        seed: SEED,
        config: config(),
    });
    cpu.instances = 2;
    cpu.threads = 1;
    cpu.max_batch = 4;
    start_server_with(ModelOptions::new(BackendOptions::Cpu(cpu)), drain_delay).await
}

async fn start_server_with(opts: ModelOptions, drain_delay: Duration) -> TestServer {
    let config = ServerConfig {
        drain_delay,
        ..ServerConfig::default()
    };
    start_server_with_config(opts, config).await
}

fn random_model_options() -> ModelOptions {
    let mut cpu = CpuOptions::new(WeightsSource::Random {
        seed: SEED,
        config: config(),
    });
    cpu.instances = 2;
    cpu.threads = 1;
    cpu.max_batch = 4;
    ModelOptions::new(BackendOptions::Cpu(cpu))
}

async fn start_server_with_config(opts: ModelOptions, config: ServerConfig) -> TestServer {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let loader = move || {
        // Hold loading until the test has seen NOT_SERVING.
        let _ = release_rx.blocking_recv();
        load_serving_model(&opts)
    };
    let handle = tokio::spawn(server::serve(listener, config, loader, async move {
        let _ = stop_rx.await;
    }));
    TestServer {
        addr,
        release_loader: Some(release_tx),
        shutdown: Some(stop_tx),
        handle,
    }
}

/// Send the shutdown signal and wait (bounded) for the server to stop cleanly.
async fn stop_server(mut srv: TestServer) {
    srv.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), srv.handle)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

async fn channel(addr: SocketAddr) -> Channel {
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(c) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not accept connections at {url}");
}

async fn health(ch: &Channel, service: &str) -> ServingStatus {
    let r = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

async fn wait_serving(ch: &Channel) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while health(ch, "").await != ServingStatus::Serving {
        assert!(Instant::now() < deadline, "model never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn classify_request(image: Vec<u8>, top_k: u32) -> proto::ClassifyRequest {
    proto::ClassifyRequest {
        image,
        top_k,
        request_id: "req".into(),
    }
}

/// `n` concurrent Classify calls (top 5) of `image`, each on its own task.
fn spawn_classifies(
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

/// Logits of the same image computed directly by a CPU engine with the same weights.
fn direct_logits(image: &[u8]) -> Vec<f32> {
    let cfg = config();
    let weights = Weights::random(&cfg, SEED);
    let model = Arc::new(SwinV2Model::new(&weights, &cfg).unwrap());
    let mut engine = CpuEngine::new(model, 1, 1).unwrap();
    let pre = PreprocessConfig::for_image_size(cfg.img_size as u32);
    let mut input = vec![0f32; pre.tensor_len()];
    preprocess_into(image, &pre, &mut input).unwrap();
    let mut logits = vec![0f32; cfg.num_classes];
    engine.infer(&input, 1, &mut logits).unwrap();
    logits
}

fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_end_to_end() {
    let mut srv = start_server(Duration::ZERO).await;
    let ch = channel(srv.addr).await;
    let mut client = ClassifierClient::new(ch.clone());

    // Loading: health NOT_SERVING, Classify UNAVAILABLE.
    assert_eq!(health(&ch, "").await, ServingStatus::NotServing);
    assert_eq!(
        health(&ch, "swin.v1.Classifier").await,
        ServingStatus::NotServing
    );
    let early = client
        .classify(classify_request(
            test_image(64, 64, image::ImageFormat::Png),
            5,
        ))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::Unavailable);

    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    assert_eq!(
        health(&ch, "swin.v1.Classifier").await,
        ServingStatus::Serving
    );

    // GetModelInfo.
    let info = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.model, "swinv2_tiny_patch4_window8_256");
    assert_eq!(info.backend, "cpu");
    assert_eq!(info.num_classes, 1000);
    assert_eq!(info.input_size, 256);
    assert_eq!(info.engine_instances, 2);
    assert!(info.random_weights);
    assert_eq!(info.preprocessing.as_ref().unwrap().resize_size, 292);
    let ops: Vec<_> = info
        .plugin_ops
        .iter()
        .map(|p| (p.name.as_str(), p.ok))
        .collect();
    assert!(ops.contains(&("MyPlugin::CnnlRoll", true)), "{ops:?}");
    assert!(ops.contains(&("MyPlugin::PluginReLU", true)), "{ops:?}");

    // Classify: every class, checked against the engine run directly and an independent softmax.
    let png = test_image(320, 240, image::ImageFormat::Png);
    let expected = direct_logits(&png);
    let expected_probs = softmax_f64(&expected);
    let all = client
        .classify(classify_request(png.clone(), 1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.request_id, "req");
    assert_eq!(all.predictions.len(), 1000);
    assert_eq!((all.image_width, all.image_height), (320, 240));
    for w in all.predictions.windows(2) {
        assert!(w[0].probability >= w[1].probability, "not sorted");
    }
    for p in &all.predictions {
        let id = p.class_id as usize;
        assert!((p.logit - expected[id]).abs() <= 1e-4 * (1.0 + expected[id].abs()));
        assert!((p.probability as f64 - expected_probs[id]).abs() < 1e-6);
    }
    let sum: f64 = all.predictions.iter().map(|p| p.probability as f64).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    let labels = swin_serve::postprocess::Labels::imagenet();
    assert_eq!(
        all.predictions[0].label,
        labels.name(all.predictions[0].class_id as usize)
    );

    // The same image through OIP ModelInfer (IMAGE, typed BYTES): the engine's logits, and
    // Classify's numbers.
    let mut oip = InferenceClient::new(ch.clone());
    let mut image = oip_input("IMAGE", "BYTES", &[1, 1]);
    image.contents = Some(oip_pb::InferTensorContents {
        bytes_contents: vec![png.clone()],
        ..Default::default()
    });
    let answer = oip
        .model_infer(oip_pb::ModelInferRequest {
            model_name: info.model.clone(),
            inputs: vec![image],
            outputs: vec![
                oip_output("LOGITS", None),
                oip_output("PROBABILITIES", Some(5)),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let logits = &answer.outputs[0].contents.as_ref().unwrap().fp32_contents;
    assert_eq!(logits.len(), 1000);
    for (got, want) in logits.iter().zip(&expected) {
        assert!(
            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{got} vs {want}"
        );
    }
    let top5: Vec<String> = answer.outputs[1]
        .contents
        .as_ref()
        .unwrap()
        .bytes_contents
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    let from_classify: Vec<String> = all.predictions[..5]
        .iter()
        .map(|p| format!("{:.6}:{}:{}", p.probability, p.class_id, p.label))
        .collect();
    assert_eq!(top5, from_classify);

    // top_k 0 = default 5; top_k 1 ; the same order as the full list.
    let five = client
        .classify(classify_request(png.clone(), 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(five.predictions.len(), 5);
    let ids =
        |r: &proto::ClassifyResponse| r.predictions.iter().map(|p| p.class_id).collect::<Vec<_>>();
    assert_eq!(ids(&five), ids(&all)[..5].to_vec());

    // Bad inputs: right status, server keeps serving.
    let jpeg = test_image(300, 200, image::ImageFormat::Jpeg);
    let mut random = vec![0u8; 4096];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for b in random.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let bomb = png_header_only(30000, 30000);
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("empty", vec![], 5),
        ("truncated jpeg", jpeg[..jpeg.len() / 2].to_vec(), 5),
        ("random bytes", random, 5),
        ("zero-size png header", png_header_only(0, 0), 5),
        ("png signature only", b"\x89PNG\r\n\x1a\n".to_vec(), 5),
        ("jpeg start marker only", vec![0xff, 0xd8, 0xff], 5),
        ("30000x30000 png header", bomb, 5),
        ("top_k 1001", png.clone(), 1001),
    ];
    for (name, bytes, k) in cases {
        let started = Instant::now();
        let err = client
            .classify(classify_request(bytes, k))
            .await
            .expect_err(name);
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(!err.message().is_empty(), "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name} was slow"
        );
    }
    // Over the 32 MiB message limit: refused by the decoder, connection and server unharmed.
    let huge = client
        .classify(classify_request(vec![0u8; 33 << 20], 5))
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::OutOfRange, "{huge:?}");
    let ok = client
        .classify(classify_request(jpeg.clone(), 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.predictions.len(), 3);

    // ClassifyBatch: order kept, a bad entry fails alone, results equal Classify's.
    let batch = client
        .classify_batch(proto::ClassifyBatchRequest {
            requests: vec![
                classify_request(png.clone(), 5),
                classify_request(vec![], 5),
                classify_request(jpeg.clone(), 3),
                classify_request(b"not an image".to_vec(), 5),
                classify_request(png.clone(), 2000),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), 5);
    for (i, r) in batch.results.iter().enumerate() {
        assert_eq!(r.index as usize, i);
    }
    use proto::classify_result::Outcome;
    match &batch.results[0].outcome {
        Some(Outcome::Response(r)) => assert_eq!(ids(r), ids(&five)),
        other => panic!("entry 0: {other:?}"),
    }
    match &batch.results[2].outcome {
        Some(Outcome::Response(r)) => assert_eq!(ids(r), ids(&ok)),
        other => panic!("entry 2: {other:?}"),
    }
    for i in [1, 3, 4] {
        match &batch.results[i].outcome {
            Some(Outcome::Error(e)) => {
                assert_eq!(e.code, Code::InvalidArgument as i32, "entry {i}");
                assert_eq!(e.code_name, "INVALID_ARGUMENT");
            }
            other => panic!("entry {i}: {other:?}"),
        }
    }

    // Concurrent load: 12 requests at once all succeed with identical answers.
    let tasks = spawn_classifies(&client, &png, 12);
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(ids(&r), ids(&five));
    }

    srv.shutdown.take().unwrap().send(()).unwrap();
    srv.handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reflection_lists_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let mut srv = start_server(Duration::ZERO).await;
    let ch = channel(srv.addr).await;
    let mut client = ServerReflectionClient::new(ch.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let names: Vec<String> = match response.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    };
    for expected in [
        "swin.v1.Classifier",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // v1alpha answers too (older grpcurl).
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaReflectionRequest;
    let mut alpha = AlphaClient::new(ch.clone());
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter(vec![AlphaReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::FileContainingSymbol(
                "swin.v1.Classifier".into(),
            )),
        }]))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());

    srv.release_loader.take();
    srv.shutdown.take().unwrap().send(()).unwrap();
    // The loader was never released: the server still stops cleanly.
    tokio::time::timeout(Duration::from_secs(30), srv.handle)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut srv = start_server(Duration::from_millis(300)).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    let client = ClassifierClient::new(ch.clone());
    let png = test_image(200, 300, image::ImageFormat::Png);
    let tasks = spawn_classifies(&client, &png, 6);
    tokio::time::sleep(Duration::from_millis(30)).await;
    srv.shutdown.take().unwrap().send(()).unwrap();
    // While draining, health says NOT_SERVING.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(health(&ch, "").await, ServingStatus::NotServing);
    for t in tasks {
        let r = t
            .await
            .unwrap()
            .expect("in-flight request lost during shutdown");
        assert_eq!(r.predictions.len(), 5);
    }
    tokio::time::timeout(Duration::from_secs(60), srv.handle)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_an_official_format_checkpoint_with_its_own_config() {
    // A small official-format checkpoint ({'model': sd, 'epoch', 'config'}): 10 classes, 32×32 input.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/shifted_w4.pth");
    let mut cpu = CpuOptions::new(WeightsSource::File(path.clone()));
    cpu.threads = 1;
    let mut srv =
        start_server_with(ModelOptions::new(BackendOptions::Cpu(cpu)), Duration::ZERO).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    let mut client = ClassifierClient::new(ch.clone());
    let info = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let weights = Weights::load(&path).unwrap();
    let cfg = weights.infer_config(&Default::default()).unwrap();
    assert_eq!(info.num_classes as usize, cfg.num_classes);
    assert_eq!(info.input_size as usize, cfg.img_size);
    assert_eq!(info.model, cfg.name());
    assert!(!info.random_weights);

    let png = test_image(90, 60, image::ImageFormat::Png);
    let r = client
        .classify(classify_request(png.clone(), 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.predictions.len(), 5.min(cfg.num_classes));
    // No labels file and not ImageNet-1k: generic names.
    for p in &r.predictions {
        assert_eq!(p.label, format!("class_{}", p.class_id));
    }
    // Logits equal the engine run directly on the same checkpoint.
    let model = Arc::new(SwinV2Model::new(&weights, &cfg).unwrap());
    let mut engine = CpuEngine::new(model, 1, 1).unwrap();
    let pre = PreprocessConfig::for_image_size(cfg.img_size as u32);
    let mut input = vec![0f32; pre.tensor_len()];
    preprocess_into(&png, &pre, &mut input).unwrap();
    let mut logits = vec![0f32; cfg.num_classes];
    engine.infer(&input, 1, &mut logits).unwrap();
    for p in &r.predictions {
        assert!((p.logit - logits[p.class_id as usize]).abs() <= 1e-4 * (1.0 + p.logit.abs()));
    }
    let too_many = client
        .classify(classify_request(png, cfg.num_classes as u32 + 1))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);

    srv.shutdown.take().unwrap().send(()).unwrap();
    srv.handle.await.unwrap().unwrap();
}

/// Opens a health Watch stream on `service` and returns it with its first answer.
async fn watch(
    ch: &Channel,
    service: &str,
) -> (
    tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    ServingStatus,
) {
    let mut stream = HealthClient::new(ch.clone())
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("a first status");
    (stream, ServingStatus::try_from(first.status).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_health_watch_streams() {
    // A shutdown timeout far beyond the guard below: the server must stop because the Watch
    // streams end, not because the timeout closed them.
    let config = ServerConfig {
        shutdown_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    };
    let mut srv = start_server_with_config(random_model_options(), config).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    let (mut all, first_all) = watch(&ch, "").await;
    let (mut classifier, first_classifier) = watch(&ch, "swin.v1.Classifier").await;
    assert_eq!(first_all, ServingStatus::Serving);
    assert_eq!(first_classifier, ServingStatus::Serving);

    srv.shutdown.take().unwrap().send(()).unwrap();
    for stream in [&mut all, &mut classifier] {
        let mut seen = vec![];
        while let Some(r) = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("Watch stream neither answered nor ended")
            .expect("Watch stream ends without an error status")
        {
            seen.push(ServingStatus::try_from(r.status).unwrap());
        }
        assert_eq!(seen.last(), Some(&ServingStatus::NotServing), "{seen:?}");
    }
    tokio::time::timeout(Duration::from_secs(30), srv.handle)
        .await
        .expect("server did not stop with Watch streams open")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_timeout_closes_streams_a_client_keeps_open() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let mut srv = start_server_with_config(random_model_options(), config).await;
    let ch = channel(srv.addr).await;
    // A reflection stream whose client never closes its side.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await
    .unwrap();
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());

    srv.release_loader.take();
    srv.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), srv.handle)
        .await
        .expect("server did not stop with a client stream held open")
        .unwrap()
        .unwrap();
    // `serve` has returned: the binary's `main` then shuts its runtime down, which closes the
    // connection still held (checked end to end in `sigterm_ends_the_process_with_streams_open`).
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_the_process_with_streams_open() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .args(["serve", "--random-weights", "0", "--img-size", "64"])
        .args([
            "--window-size",
            "4",
            "--threads",
            "1",
            "--shutdown-timeout",
            "2",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ch = channel(addr).await;
    wait_serving(&ch).await;
    // A health Watch (ended by shutdown) and a reflection stream the client never closes (closed
    // by the shutdown timeout).
    let (_watch, status) = watch(&ch, "").await;
    assert_eq!(status, ServingStatus::Serving);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await
    .unwrap();
    let mut reflection = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(reflection.message().await.unwrap().is_some());

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("swin-serve did not exit after SIGTERM with streams open");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_tokens_guard_every_rpc_but_health_and_are_reloaded() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "first-token\nsecond-token\n").unwrap();
    let config = ServerConfig {
        auth_token_file: Some(tokens.clone()),
        ..ServerConfig::default()
    };
    let mut srv = start_server_with_config(random_model_options(), config).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    // Health needs no token (probes).
    wait_serving(&ch).await;

    let info = |token: Option<&'static str>| {
        let ch = ch.clone();
        async move {
            let mut request = tonic::Request::new(proto::GetModelInfoRequest {});
            if let Some(t) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            ClassifierClient::new(ch).get_model_info(request).await
        }
    };
    assert_eq!(info(None).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(
        info(Some("wrong-token")).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(info(Some("second-token")).await.is_ok());
    let mut request = tonic::Request::new(classify_request(
        test_image(40, 30, image::ImageFormat::Png),
        1,
    ));
    request
        .metadata_mut()
        .insert("authorization", "Bearer first-token".parse().unwrap());
    assert!(ClassifierClient::new(ch.clone())
        .classify(request)
        .await
        .is_ok());
    let unauthenticated = ClassifierClient::new(ch.clone())
        .classify(classify_request(
            test_image(40, 30, image::ImageFormat::Png),
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    // The OIP service too (its ServerLive included: probes use grpc.health.v1).
    let mut oip = InferenceClient::new(ch.clone());
    let live = oip.server_live(oip_pb::ServerLiveRequest {}).await;
    assert_eq!(live.unwrap_err().code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(oip_pb::ServerLiveRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer second-token".parse().unwrap());
    assert!(oip.server_live(request).await.unwrap().into_inner().live);

    // Reflection describes the API: it needs the token too.
    let reflection = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await;
    assert_eq!(reflection.unwrap_err().code(), Code::Unauthenticated);

    // Rotation: the new token works and the old ones stop working, without a restart.
    std::fs::write(&tokens, "rotated-token-with-another-length\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while info(Some("rotated-token-with-another-length"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the rotated token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        info(Some("second-token")).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    stop_server(srv).await;
}

// ---- Deadlines: grpc-timeout and --request-timeout -------------------------------------------

/// Shared by a [`GatedEngine`] and its test: the batches the engine was given (recorded on entry)
/// and the gate that holds every batch until it opens.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    batches: Mutex<Vec<usize>>,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// Waits (hang guard only) until the engine has been given `n` batches.
    async fn wait_for_batches(&self, n: usize) {
        let guard = Instant::now() + Duration::from_secs(60);
        while self.batches().len() < n {
            assert!(Instant::now() < guard, "the engine never got batch {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Opens the gate when dropped: a failing test must not leave the engine thread blocked (the pool
/// joins it when the server goes).
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

const GATED_SIDE: usize = 32;
const GATED_CLASSES: usize = 10;

/// A deterministic stand-in engine: one image at a time, held until its gate opens, so that work
/// queued behind it waits as long as the test wants. logits[c] = first input value + c.
struct GatedEngine(Arc<Gate>);

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
        let image_len = 3 * GATED_SIDE * GATED_SIDE;
        for (b, row) in logits
            .chunks_exact_mut(GATED_CLASSES)
            .enumerate()
            .take(batch)
        {
            for (c, l) in row.iter_mut().enumerate() {
                *l = input[b * image_len] + c as f32;
            }
        }
        Ok(())
    }
}

/// [`start_gated_server`], connected, loaded and SERVING.
async fn serving_gated(config: ServerConfig, gate: Arc<Gate>) -> (TestServer, Channel) {
    let mut srv = start_gated_server(config, gate).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    (srv, ch)
}

/// A server whose model is one [`GatedEngine`] (loaded when `release_loader` fires).
async fn start_gated_server(config: ServerConfig, gate: Arc<Gate>) -> TestServer {
    start_gated_server_with_queue(config, gate, 64).await
}

/// [`start_gated_server`] with `queue_capacity` admission slots.
async fn start_gated_server_with_queue(
    config: ServerConfig,
    gate: Arc<Gate>,
    queue_capacity: usize,
) -> TestServer {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let loader = move || {
        let _ = release_rx.blocking_recv();
        Ok(ServingModel {
            pool: EnginePool::new(vec![Box::new(GatedEngine(gate))], queue_capacity),
            preprocess: PreprocessConfig::for_image_size(GATED_SIDE as u32),
            labels: Labels::generic(GATED_CLASSES),
            info: proto::ModelInfo {
                model: "gated-test-engine".into(),
                num_classes: GATED_CLASSES as u32,
                input_size: GATED_SIDE as u32,
                ..Default::default()
            },
            stats: Default::default(),
            max_queue_delay: Duration::ZERO,
        })
    };
    let handle = tokio::spawn(server::serve(listener, config, loader, async move {
        let _ = stop_rx.await;
    }));
    TestServer {
        addr,
        release_loader: Some(release_tx),
        shutdown: Some(stop_tx),
        handle,
    }
}

type PlainHttp2 = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic::body::Body,
>;

/// A classifier client over plain HTTP/2 without tonic's channel. A tonic channel starts its own
/// timer from the request's `grpc-timeout` and reports CANCELLED ("Timeout expired") when it fires
/// first; this client sends the header and waits for whatever the server answers, so the tests see
/// exactly the server's status.
fn client_without_own_timer(addr: SocketAddr) -> ClassifierClient<PlainHttp2> {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    ClassifierClient::with_origin(http, format!("http://{addr}").parse().unwrap())
}

/// `message` with a `grpc-timeout` header of exactly `value`.
fn with_grpc_timeout<T>(message: T, value: &'static str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("grpc-timeout", MetadataValue::from_static(value));
    request
}

/// Awaits `call` under a hang guard.
async fn guarded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the server neither answered nor timed the call out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_deadline_passing_while_the_engine_is_busy_answers_deadline_exceeded() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (mut srv, ch) = serving_gated(ServerConfig::default(), Arc::clone(&gate)).await;
    let client = ClassifierClient::new(ch.clone());
    let mut plain = client_without_own_timer(srv.addr);
    let png = test_image(40, 30, image::ImageFormat::Png);

    // A call without a deadline takes the only engine instance, which holds it.
    let blocker = spawn_classifies(&client, &png, 1).pop().unwrap();
    gate.wait_for_batches(1).await;

    // Classify with a grpc-timeout that passes while the image waits for the engine.
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_millis(300));
    let err = guarded(plain.classify(request)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("the client's grpc-timeout"),
        "{err:?}"
    );

    // ClassifyBatch: the call as a whole answers DEADLINE_EXCEEDED.
    let mut request = Request::new(proto::ClassifyBatchRequest {
        requests: vec![classify_request(png.clone(), 5); 3],
    });
    request.set_timeout(Duration::from_millis(300));
    let err = guarded(plain.classify_batch(request)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");

    // What a tonic client receives: the server keeps back part of the timeout (1/20, at most 50 ms)
    // to answer before the client's own timer, so it normally sees DEADLINE_EXCEEDED. That race is
    // timing (a CPU-starved test process can lose it, and the client's timer then reports its own
    // CANCELLED): asserted here is only that the call ends by its deadline, not which side won.
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_secs(1));
    let err = guarded(client.clone().classify(request)).await.unwrap_err();
    assert!(
        err.code() == Code::DeadlineExceeded
            || (err.code() == Code::Cancelled && err.message().contains("Timeout expired")),
        "{err:?}"
    );

    // Release the engine: the first call is answered, and a later one too, which comes after the
    // expired images in the queue: none of them reached the engine.
    gate.open();
    assert_eq!(
        blocker.await.unwrap().unwrap().predictions.len(),
        5,
        "the call without a deadline"
    );
    let later = guarded(client.clone().classify(classify_request(png.clone(), 3)))
        .await
        .unwrap();
    assert_eq!(later.into_inner().predictions.len(), 3);
    assert_eq!(gate.batches(), vec![1, 1]);

    srv.shutdown.take().unwrap().send(()).unwrap();
    guarded(srv.handle).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_and_malformed_grpc_timeouts() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    gate.open();
    let (mut srv, _ch) = serving_gated(ServerConfig::default(), Arc::clone(&gate)).await;
    let mut plain = client_without_own_timer(srv.addr);
    let png = test_image(40, 30, image::ImageFormat::Png);

    // 0 in any unit: already expired (grpc-go: a deadline of now); never decoded nor run.
    for zero in ["0S", "0n", "00000000m"] {
        let err =
            guarded(plain.classify(with_grpc_timeout(classify_request(png.clone(), 5), zero)))
                .await
                .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{zero}: {err:?}");
    }
    let batch = proto::ClassifyBatchRequest {
        requests: vec![classify_request(png.clone(), 5); 2],
    };
    let err = guarded(plain.classify_batch(with_grpc_timeout(batch, "0m")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");

    // Malformed: INTERNAL, as grpc-go answers ("malformed grpc-timeout").
    for bad in ["", "1x", "123456789S", "-1S", "1.5S", "S", " 1S"] {
        let err = guarded(plain.classify(with_grpc_timeout(classify_request(png.clone(), 5), bad)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{bad:?}: {err:?}");
        assert!(err.message().contains("malformed grpc-timeout"), "{err:?}");
    }
    assert!(gate.batches().is_empty(), "{:?}", gate.batches());

    // The largest well-formed value works like no deadline at all; the server keeps serving.
    let ok = guarded(plain.classify(with_grpc_timeout(classify_request(png, 5), "99999999H")))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().predictions.len(), 5);
    assert_eq!(gate.batches(), vec![1]);

    srv.shutdown.take().unwrap().send(()).unwrap();
    guarded(srv.handle).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_request_timeout_applies_when_the_client_sends_none() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    gate.open();
    let config = ServerConfig {
        request_timeout: Some(Duration::from_nanos(1)),
        ..ServerConfig::default()
    };
    // Health is not bound by the classification deadline.
    let (mut srv, ch) = serving_gated(config, Arc::clone(&gate)).await;
    let mut client = ClassifierClient::new(ch.clone());
    let png = test_image(40, 30, image::ImageFormat::Png);

    // No grpc-timeout from the client: the server's deadline applies.
    let err = guarded(client.classify(classify_request(png.clone(), 5)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("--request-timeout"), "{err:?}");
    let err = guarded(client.classify_batch(proto::ClassifyBatchRequest {
        requests: vec![classify_request(png.clone(), 5); 2],
    }))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // A generous grpc-timeout from the client: the smaller deadline (the server's) applies.
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_secs(60));
    let err = guarded(client.classify(request)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("--request-timeout"), "{err:?}");
    // GetModelInfo is not classification work.
    let info = guarded(client.get_model_info(proto::GetModelInfoRequest {}))
        .await
        .unwrap();
    assert_eq!(info.into_inner().model, "gated-test-engine");
    assert!(gate.batches().is_empty(), "{:?}", gate.batches());

    srv.shutdown.take().unwrap().send(()).unwrap();
    guarded(srv.handle).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shorter_client_deadline_wins_over_the_server_default() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        request_timeout: Some(Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let (mut srv, ch) = serving_gated(config, Arc::clone(&gate)).await;
    let client = ClassifierClient::new(ch.clone());
    let mut plain = client_without_own_timer(srv.addr);
    let png = test_image(40, 30, image::ImageFormat::Png);

    let blocker = spawn_classifies(&client, &png, 1).pop().unwrap();
    gate.wait_for_batches(1).await;
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_millis(200));
    let err = guarded(plain.classify(request)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("the client's grpc-timeout"),
        "{err:?}"
    );
    gate.open();
    // The call bound only by the generous server default succeeds.
    assert_eq!(blocker.await.unwrap().unwrap().predictions.len(), 5);

    srv.shutdown.take().unwrap().send(()).unwrap();
    guarded(srv.handle).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generous_deadlines_still_succeed() {
    let config = ServerConfig {
        request_timeout: Some(Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let mut srv = start_server_with_config(random_model_options(), config).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    let mut client = ClassifierClient::new(ch.clone());
    let png = test_image(320, 240, image::ImageFormat::Png);
    let jpeg = test_image(300, 200, image::ImageFormat::Jpeg);
    let ids =
        |r: &proto::ClassifyResponse| r.predictions.iter().map(|p| p.class_id).collect::<Vec<_>>();

    let without = client
        .classify(classify_request(png.clone(), 5))
        .await
        .unwrap()
        .into_inner();
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_secs(120));
    let with = client.classify(request).await.unwrap().into_inner();
    assert_eq!(ids(&with), ids(&without));

    let mut request = Request::new(proto::ClassifyBatchRequest {
        requests: vec![
            classify_request(png.clone(), 5),
            classify_request(vec![], 5),
            classify_request(jpeg, 3),
        ],
    });
    request.set_timeout(Duration::from_secs(120));
    let batch = client.classify_batch(request).await.unwrap().into_inner();
    assert_eq!(batch.results.len(), 3);
    use proto::classify_result::Outcome;
    match &batch.results[0].outcome {
        Some(Outcome::Response(r)) => assert_eq!(ids(r), ids(&without)),
        other => panic!("entry 0: {other:?}"),
    }
    match &batch.results[1].outcome {
        Some(Outcome::Error(e)) => assert_eq!(e.code_name, "INVALID_ARGUMENT"),
        other => panic!("entry 1: {other:?}"),
    }
    match &batch.results[2].outcome {
        Some(Outcome::Response(r)) => assert_eq!(r.predictions.len(), 3),
        other => panic!("entry 2: {other:?}"),
    }

    srv.shutdown.take().unwrap().send(()).unwrap();
    srv.handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_gets_at_most_max_concurrent_streams_calls_at_once() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        max_concurrent_streams: 1,
        ..ServerConfig::default()
    };
    let (mut srv, _) = serving_gated(config, Arc::clone(&gate)).await;
    // One connection: a call held in the engine takes its only stream.
    let ch = channel(srv.addr).await;
    let client = ClassifierClient::new(ch.clone());
    let png = test_image(40, 30, image::ImageFormat::Png);
    let blocker = spawn_classifies(&client, &png, 1).pop().unwrap();
    gate.wait_for_batches(1).await;
    // A second call on the same connection cannot start until the first ends.
    let mut second = tokio::spawn({
        let mut client = client.clone();
        async move { client.get_model_info(proto::GetModelInfoRequest {}).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut second)
            .await
            .is_err(),
        "a second stream was opened past SETTINGS_MAX_CONCURRENT_STREAMS = 1"
    );
    gate.open();
    assert!(guarded(blocker).await.unwrap().is_ok());
    assert!(guarded(second).await.unwrap().is_ok());

    srv.shutdown.take().unwrap().send(()).unwrap();
    guarded(srv.handle).await.unwrap().unwrap();
}

// ---- Open Inference Protocol v2 (inference.GRPCInferenceService) ------------------------------

fn oip_input(
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

fn oip_output(
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

/// Gated-engine images whose first value is each of `firsts` (the rest 0), as raw FP32 bytes.
fn gated_tensors(firsts: &[f32]) -> Vec<f32> {
    let image_len = 3 * GATED_SIDE * GATED_SIDE;
    let mut values = vec![0f32; firsts.len() * image_len];
    for (i, &v) in firsts.iter().enumerate() {
        values[i * image_len] = v;
    }
    values
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

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

const GATED_MODEL: &str = "gated-test-engine";

fn gated_infer_request(firsts: &[f32], raw: bool) -> oip_pb::ModelInferRequest {
    let values = gated_tensors(firsts);
    let shape = [firsts.len() as i64, 3, GATED_SIDE as i64, GATED_SIDE as i64];
    let mut input = oip_input("INPUT", "FP32", &shape);
    let mut raw_input_contents = vec![];
    if raw {
        raw_input_contents.push(le_bytes(&values));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_serves_the_model_with_stock_semantics() {
    let gate = Arc::new(Gate::default());
    gate.open();
    let config = ServerConfig {
        drain_delay: Duration::from_millis(600),
        max_batch_images: 16,
        ..ServerConfig::default()
    };
    let mut srv = start_gated_server(config, Arc::clone(&gate)).await;
    let ch = channel(srv.addr).await;
    let mut oip = InferenceClient::new(ch.clone());

    // Loading: live, not ready, the model not ready, model RPCs UNAVAILABLE.
    assert!(
        oip.server_live(oip_pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        !oip.server_ready(oip_pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str, version: &str| oip_pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        !oip.model_ready(ready(GATED_MODEL, ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
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

    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    assert!(
        oip.server_ready(oip_pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        oip.model_ready(ready(GATED_MODEL, ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        oip.model_ready(ready(GATED_MODEL, "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
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

    // ModelInfer, INPUT, raw: logits[c] = first value + c (the gated engine), so every number is
    // known here; probabilities from an independent f64 softmax.
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

    // IMAGE, raw BYTES: decoded and preprocessed as Classify does; a bad file names its index.
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
    let mut tensor = vec![0f32; 3 * GATED_SIDE * GATED_SIDE];
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

    // Refusals travel with the right code and say what is wrong.
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

    // ModelStreamInfer: answers in request order, a failed request as error_message.
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

    // Statistics count what was done: images through the engine 3 + 3 + 1 + 1, the good one of
    // the IMAGE pair, 2 via the stream; requests 4 + 2 OK, 1 + 5 + 1 refused.
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

    // Triton RPCs not served: UNIMPLEMENTED.
    let mut grpc = tonic::client::Grpc::new(ch.clone());
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

    // Shutdown: not ready while draining, still answering.
    srv.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !oip.server_ready(oip_pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !oip.model_ready(ready(GATED_MODEL, ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    tokio::time::timeout(Duration::from_secs(30), srv.handle)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_timeout_parameter_and_grpc_timeout_bound_model_infer() {
    use oip_pb::infer_parameter::ParameterChoice;
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = serving_gated(ServerConfig::default(), Arc::clone(&gate)).await;
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
    stop_server(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bench_load_generator_drives_both_apis_and_counts_failures() {
    use swin_serve::client::connection::Bearer;
    use swin_serve::client::load_generator::{self as load, LoadOptions, Rpc, Stop};
    let gate = Arc::new(Gate::default());
    gate.open();
    let (srv, ch) = serving_gated(ServerConfig::default(), Arc::clone(&gate)).await;
    for protocol in [Rpc::Classify, Rpc::ModelInfer, Rpc::Batch, Rpc::Stream] {
        let options = LoadOptions {
            rpc: protocol,
            concurrency: 3,
            stop: Stop::Requests(7),
            warmup: 2,
            image: Arc::new(load::default_image()),
            progress: false,
            rate: None,
        };
        let report = guarded(load::run(ch.clone(), Bearer(None), &options))
            .await
            .unwrap();
        assert_eq!(
            (report.ok, report.errors),
            (7, 0),
            "{protocol:?}: {report:?}"
        );
        // Open loop: 7 calls due 1/40 s apart, so the last is sent 150 ms after the first.
        let paced = LoadOptions {
            rate: Some(40.0),
            warmup: 0,
            ..options.clone()
        };
        let report = guarded(load::run(ch.clone(), Bearer(None), &paced))
            .await
            .unwrap();
        assert_eq!((report.ok, report.errors), (7, 0), "{protocol:?} paced");
        assert!(
            report.wall >= Duration::from_millis(150),
            "{protocol:?}: 7 calls at 40/s took {:?}",
            report.wall
        );
        assert_eq!(report.latencies.len(), 7);
        assert!(report.quantile(0.99) >= report.quantile(0.5));

        let bad = LoadOptions {
            image: Arc::new(b"not an image".to_vec()),
            stop: Stop::Duration(Duration::from_millis(300)),
            ..options
        };
        let report = guarded(load::run(ch.clone(), Bearer(None), &bad))
            .await
            .unwrap();
        assert_eq!(report.ok, 0);
        assert!(report.errors >= 3, "{report:?}");
        assert_eq!(
            report.codes.get("InvalidArgument").copied(),
            Some(report.errors),
            "{report:?}"
        );
    }
    // 7 good calls + 2 warm-up + 7 paced per protocol reached the engine (8 images per batch call).
    assert_eq!(
        gate.batches().len(),
        3 * (7 + 2 + 7) + (7 + 2 + 7) * load::BATCH_CALL_IMAGES
    );
    stop_server(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_before_any_decoding() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let mut srv =
        start_gated_server_with_queue(ServerConfig::default(), Arc::clone(&gate), 2).await;
    let ch = channel(srv.addr).await;
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;
    let client = ClassifierClient::new(ch.clone());
    let png = test_image(40, 30, image::ImageFormat::Png);
    // The probe: a PNG cut inside its image data. Its header passes the admission check (which
    // reads headers only), so it reaches the queue; if it were decoded it would be refused
    // INVALID_ARGUMENT. (A non-image is refused from its header, before the queue.) Over 1 MiP so
    // that an admitted probe is decoded on the blocking pool at once, not by the held engine's
    // threads with its batch (`ENGINE_THREAD_DECODE_MAX_PIXELS`).
    let big = test_image(1100, 1000, image::ImageFormat::Png);
    const { assert!(1100 * 1000 > swin_serve::server::pipeline::ENGINE_THREAD_DECODE_MAX_PIXELS) };
    let probe = big[..big.len() - 16].to_vec();

    // One image held by the engine (its slot given back when the engine took it), two waiting:
    // both admission slots are taken.
    let blocker = spawn_classifies(&client, &png, 1).pop().unwrap();
    gate.wait_for_batches(1).await;
    let mut waiting = spawn_classifies(&client, &png, 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refused = client
            .clone()
            .classify(classify_request(probe.clone(), 1))
            .await
            .unwrap_err();
        // Refused for the queue, not for the bytes: no decoding was attempted.
        if refused.code() == Code::Unavailable {
            assert!(refused.message().contains("overloaded"), "{refused:?}");
            break;
        }
        // Not yet: the waiting calls were not both admitted. One of them may even have been
        // refused because this probe held a slot at that moment (admission is first come, first
        // served): replace it.
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        for call in waiting.iter_mut() {
            if call.is_finished() {
                let done =
                    std::mem::replace(call, spawn_classifies(&client, &png, 1).pop().unwrap());
                let e = done.await.unwrap().unwrap_err();
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
            }
        }
        assert!(Instant::now() < deadline, "the queue never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut held = vec![blocker];
    held.extend(waiting);
    // The OIP path shares the slots.
    let mut oip = InferenceClient::new(ch.clone());
    let e = oip
        .model_infer(gated_infer_request(&[1.0], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    gate.open();
    for call in held {
        assert!(call.await.unwrap().is_ok());
    }
    // Slots are given back: the queue admits again.
    assert!(oip
        .model_infer(gated_infer_request(&[1.0], true))
        .await
        .is_ok());
    stop_server(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_ids_travel_in_metadata_and_every_call_has_a_json_access_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .args(["serve", "--random-weights", "0", "--img-size", "64"])
        .args([
            "--window-size",
            "4",
            "--threads",
            "1",
            "--log-format",
            "json",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .env_remove("SWIN_SERVE_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ch = channel(addr).await;
    wait_serving(&ch).await;
    let mut client = ClassifierClient::new(ch.clone());

    // The client's x-request-id: echoed in the header, and in the body when the body has none.
    let mut request = Request::new(classify_request(
        test_image(80, 60, image::ImageFormat::Png),
        1,
    ));
    request.get_mut().request_id.clear();
    request
        .metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("trace-abc-123"));
    let answer = client.classify(request).await.unwrap();
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "trace-abc-123"
    );
    assert_eq!(answer.get_ref().request_id, "trace-abc-123");
    // None sent (or an unusable one): the server makes one and returns it.
    let mut request = Request::new(classify_request(b"junk".to_vec(), 1));
    request.get_mut().request_id.clear();
    request
        .metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("has space"));
    let refused = client.classify(request).await.unwrap_err();
    let made = refused
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(made.starts_with("swin-"), "{made}");

    // One JSON access line per call, with the RPC, id, code and sizes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let text = std::fs::read_to_string(logs.path()).unwrap();
        let calls: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every log line is JSON"))
            .filter(|v| v["target"] == "swin_serve::access")
            .collect();
        if calls.len() >= 2 || Instant::now() > deadline {
            break calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["rpc"], "Classify");
    assert_eq!(calls[0]["request_id"], "trace-abc-123");
    assert_eq!(calls[0]["code"], "OK");
    assert_eq!(
        (calls[0]["width"].as_u64(), calls[0]["height"].as_u64()),
        (Some(80), Some(60))
    );
    assert_eq!(calls[0]["batch"], 1);
    assert!(calls[0]["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(calls[1]["code"], "INVALID_ARGUMENT");
    assert_eq!(calls[1]["request_id"], made.as_str());
    assert!(!calls[1]["error"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classify_stream_answers_each_image_as_it_completes() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = serving_gated(ServerConfig::default(), Arc::clone(&gate)).await;
    let mut client = ClassifierClient::new(ch.clone());
    let png = test_image(40, 30, image::ImageFormat::Png);

    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("stream-9"));
    let mut answers = client.classify_stream(request).await.unwrap().into_inner();

    // The first image is held by the engine; a bad one sent after it is answered first.
    tx.send(proto::ClassifyRequest {
        image: png.clone(),
        top_k: 3,
        request_id: "first".into(),
    })
    .await
    .unwrap();
    gate.wait_for_batches(1).await;
    tx.send(proto::ClassifyRequest {
        image: b"junk".to_vec(),
        top_k: 3,
        request_id: String::new(),
    })
    .await
    .unwrap();
    let early = guarded(answers.message()).await.unwrap().unwrap();
    assert_eq!((early.index, early.request_id.as_str()), (1, "stream-9/1"));
    match early.outcome {
        Some(proto::classify_stream_response::Outcome::Error(e)) => {
            assert_eq!(e.code_name, "INVALID_ARGUMENT", "{e:?}")
        }
        other => panic!("{other:?}"),
    }

    // The stream goes on after a failure; the held image completes when the engine is free.
    tx.send(proto::ClassifyRequest {
        image: png.clone(),
        top_k: 2,
        request_id: "third".into(),
    })
    .await
    .unwrap();
    drop(tx);
    gate.open();
    let mut rest = Vec::new();
    while let Some(a) = guarded(answers.message()).await.unwrap() {
        rest.push(a);
    }
    rest.sort_by_key(|a| a.index);
    let ids: Vec<(u64, &str)> = rest
        .iter()
        .map(|a| (a.index, a.request_id.as_str()))
        .collect();
    assert_eq!(ids, [(0, "first"), (2, "third")]);
    for (a, k) in rest.iter().zip([3, 2]) {
        match &a.outcome {
            Some(proto::classify_stream_response::Outcome::Response(r)) => {
                assert_eq!(r.predictions.len(), k);
                assert_eq!(r.request_id, a.request_id);
            }
            other => panic!("{other:?}"),
        }
    }
    stop_server(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_liveness_follow_a_hung_engine() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        engine_hang_timeout: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let mut srv = start_gated_server(config, Arc::clone(&gate)).await;
    let ch = channel(srv.addr).await;
    let liveness = server::LIVENESS_SERVICE_NAME;
    // Alive while loading (a slow load must not get the pod restarted).
    assert_eq!(health(&ch, liveness).await, ServingStatus::Serving);
    assert_eq!(health(&ch, "").await, ServingStatus::NotServing);
    srv.release_loader.take().unwrap().send(()).unwrap();
    wait_serving(&ch).await;

    let wait_for = |service: &'static str, want: ServingStatus| {
        let ch = ch.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while health(&ch, service).await != want {
                assert!(
                    Instant::now() < deadline,
                    "{service:?} never became {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let client = ClassifierClient::new(ch.clone());
    let held = spawn_classifies(&client, &test_image(40, 30, image::ImageFormat::Png), 1)
        .pop()
        .unwrap();
    gate.wait_for_batches(1).await;
    wait_for("", ServingStatus::NotServing).await;
    wait_for(liveness, ServingStatus::NotServing).await;
    assert_eq!(
        health(&ch, "swin.v1.Classifier").await,
        ServingStatus::NotServing
    );
    let mut oip = InferenceClient::new(ch.clone());
    assert!(
        !oip.server_ready(oip_pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    gate.open();
    assert!(held.await.unwrap().is_ok());
    wait_for("", ServingStatus::Serving).await;
    wait_for(liveness, ServingStatus::Serving).await;
    assert!(
        oip.server_ready(oip_pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    stop_server(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_over_max_in_flight_are_refused_at_once_but_health_is_not() {
    let gate = Arc::new(Gate::default());
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        max_in_flight: 2,
        ..ServerConfig::default()
    };
    let (srv, ch) = serving_gated(config, Arc::clone(&gate)).await;
    let client = ClassifierClient::new(ch.clone());
    let png = test_image(40, 30, image::ImageFormat::Png);
    // Two calls in flight (one in the engine, one waiting for it): the cap.
    let held = spawn_classifies(&client, &png, 2);
    gate.wait_for_batches(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let r = client
            .clone()
            .get_model_info(proto::GetModelInfoRequest {})
            .await;
        match r {
            Err(e) => break e,
            // The second held call may not have arrived yet.
            Ok(_) => {
                assert!(Instant::now() < deadline, "the cap never applied");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("--max-in-flight"), "{refused:?}");
    // Probes get through.
    assert_eq!(health(&ch, "").await, ServingStatus::Serving);
    gate.open();
    for call in held {
        assert!(call.await.unwrap().is_ok());
    }
    // Places are given back when the answers are sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .clone()
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "places were not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_server(srv).await;
}
