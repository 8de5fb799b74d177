//! `swin.v1.Classifier` end to end: the real server in-process on 127.0.0.1:0 with a random-weight
//! SwinV2-T (and a small official-format checkpoint), its answers checked against the engine run
//! directly and an independent softmax; ClassifyStream and the bench load generator on the gated
//! stand-in engine; request ids and JSON access lines from the real binary; server reflection.

mod common {
    pub mod calls;
    pub mod fake_engine;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swin_serve::engine::cpu::{CpuEngine, CpuOptions, SwinModel};
use swin_serve::engine::{BackendOptions, Engine};
use swin_serve::model::{Weights, WeightsSource};
use swin_serve::preprocess::{preprocess_into, PreprocessConfig};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::classify_result::Outcome;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient as InferenceClient;
use swin_serve::server::ModelOptions;
use swin_serve::server::ServerConfig;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;

use common::calls::{
    class_ids, classify_request, guarded, oip_input, oip_output, random_swin_config,
    random_swin_options, softmax_f64, spawn_classifies, test_image, RANDOM_SEED,
};
use common::fake_engine::{serving_gated, FakeControls, OpenOnDrop};
use common::test_server::{connect, free_port, health, wait_serving, TestServer};

/// The random SwinV2-T ([`random_swin_options`]), loaded and SERVING.
async fn serving_random_swin() -> (TestServer, Channel) {
    TestServer::builder()
        .model(random_swin_options())
        .serving()
        .await
}

/// Logits of the same image computed directly by a CPU engine with the same weights.
fn direct_logits(image: &[u8]) -> Vec<f32> {
    let cfg = random_swin_config();
    let weights = Weights::random(&cfg, RANDOM_SEED);
    let model = Arc::new(SwinModel::new(&weights, &cfg).unwrap());
    let mut engine = CpuEngine::new(model, 1, 1).unwrap();
    let pre = PreprocessConfig::for_image_size(cfg.img_size as u32);
    let mut input = vec![0f32; pre.tensor_len()];
    preprocess_into(image, &pre, &mut input).unwrap();
    let mut logits = vec![0f32; cfg.num_classes];
    engine.infer(&input, 1, &mut logits).unwrap();
    logits
}

/// A PNG made of the signature and an IHDR chunk only (valid CRC), claiming `w`×`h`.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let crc = crc32fast::hash(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.to_be_bytes());
    png
}

/// The 320×240 PNG the real-model tests classify.
fn test_png() -> Vec<u8> {
    test_image(320, 240, image::ImageFormat::Png)
}

/// The 300×200 JPEG the real-model tests classify.
fn test_jpeg() -> Vec<u8> {
    test_image(300, 200, image::ImageFormat::Jpeg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_loading_health_is_not_serving_and_classify_unavailable() {
    let mut srv = TestServer::builder()
        .model(random_swin_options())
        .hold_loader()
        .start()
        .await;
    let ch = srv.channel().await;
    let mut client = ClassifierClient::new(ch.clone());

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

    srv.release_loader();
    wait_serving(&ch).await;
    assert_eq!(
        health(&ch, "swin.v1.Classifier").await,
        ServingStatus::Serving
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_model_info_describes_the_served_model() {
    let (srv, ch) = serving_random_swin().await;
    let info = ClassifierClient::new(ch)
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classify_answers_every_class_as_the_engine_and_an_f64_softmax_do() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch);
    let png = test_png();
    let expected = direct_logits(&png);
    let expected_probs = softmax_f64(&expected);
    let all = client
        .classify(classify_request(png, 1000))
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn top_k_0_answers_the_best_5_in_the_order_of_the_full_list() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch);
    let png = test_png();
    let all = client
        .classify(classify_request(png.clone(), 1000))
        .await
        .unwrap()
        .into_inner();
    let five = client
        .classify(classify_request(png, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(five.predictions.len(), 5);
    assert_eq!(class_ids(&five), class_ids(&all)[..5].to_vec());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_infer_of_an_image_answers_the_engines_logits_and_classifys_numbers() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch.clone());
    let png = test_png();
    let expected = direct_logits(&png);
    let model = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .model;
    let all = client
        .classify(classify_request(png.clone(), 1000))
        .await
        .unwrap()
        .into_inner();

    // The same image through OIP ModelInfer (IMAGE, typed BYTES).
    let mut oip = InferenceClient::new(ch);
    let mut image = oip_input("IMAGE", "BYTES", &[1, 1]);
    image.contents = Some(oip_pb::InferTensorContents {
        bytes_contents: vec![png],
        ..Default::default()
    });
    let answer = oip
        .model_infer(oip_pb::ModelInferRequest {
            model_name: model,
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_are_invalid_argument_and_the_server_keeps_serving() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch);
    let png = test_png();
    let jpeg = test_jpeg();
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
        ("top_k 1001", png, 1001),
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
        .classify(classify_request(jpeg, 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.predictions.len(), 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classify_batch_keeps_the_order_and_fails_a_bad_entry_alone() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch);
    let png = test_png();
    let jpeg = test_jpeg();
    let five = client
        .classify(classify_request(png.clone(), 0))
        .await
        .unwrap()
        .into_inner();
    let ok = client
        .classify(classify_request(jpeg.clone(), 3))
        .await
        .unwrap()
        .into_inner();

    // Results equal Classify's.
    let batch = client
        .classify_batch(proto::ClassifyBatchRequest {
            requests: vec![
                classify_request(png.clone(), 5),
                classify_request(vec![], 5),
                classify_request(jpeg, 3),
                classify_request(b"not an image".to_vec(), 5),
                classify_request(png, 2000),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), 5);
    for (i, r) in batch.results.iter().enumerate() {
        assert_eq!(r.index as usize, i);
    }
    match &batch.results[0].outcome {
        Some(Outcome::Response(r)) => assert_eq!(class_ids(r), class_ids(&five)),
        other => panic!("entry 0: {other:?}"),
    }
    match &batch.results[2].outcome {
        Some(Outcome::Response(r)) => assert_eq!(class_ids(r), class_ids(&ok)),
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_all_succeed_with_identical_answers() {
    let (srv, ch) = serving_random_swin().await;
    let mut client = ClassifierClient::new(ch);
    let png = test_png();
    let five = client
        .classify(classify_request(png.clone(), 0))
        .await
        .unwrap()
        .into_inner();
    let tasks = spawn_classifies(&client, &png, 12);
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(class_ids(&r), class_ids(&five));
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_an_official_format_checkpoint_with_its_own_config() {
    // A small official-format checkpoint ({'model': sd, 'epoch', 'config'}): 10 classes, 32×32 input.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/shifted_w4.pth");
    let mut cpu = CpuOptions::new(WeightsSource::File(path.clone()));
    cpu.threads = 1;
    let (srv, ch) = TestServer::builder()
        .model(ModelOptions::new(BackendOptions::Cpu(cpu)))
        .serving()
        .await;
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
    let model = Arc::new(SwinModel::new(&weights, &cfg).unwrap());
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

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classify_stream_answers_each_image_as_it_completes() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = serving_gated(ServerConfig::default(), &gate).await;
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bench_load_generator_drives_both_apis_and_counts_failures() {
    use swin_serve::client::connection::Bearer;
    use swin_serve::client::load_generator::{self as load, LoadOptions, Rpc, Stop};
    let gate = FakeControls::with_gate_closed();
    gate.open();
    let (srv, ch) = serving_gated(ServerConfig::default(), &gate).await;
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_ids_travel_in_metadata_and_every_call_has_a_json_access_line() {
    let port = free_port().port();
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
    let ch = connect(addr).await;
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
async fn reflection_lists_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let mut srv = TestServer::builder()
        .model(random_swin_options())
        .hold_loader()
        .start()
        .await;
    let ch = srv.channel().await;
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

    // Shut down while the model is still loading: the server still stops cleanly.
    srv.release_loader();
    srv.stop().await;
}
