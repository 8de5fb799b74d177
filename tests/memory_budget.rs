//! The global memory budget (`--memory-budget`) end to end: concurrent decompression bombs of
//! every format, through Classify, ClassifyBatch and OIP ModelInfer, are each answered OK (when
//! they fit) or RESOURCE_EXHAUSTED (when they do not), and the budget's recorded peak never passes
//! the budget; then the real binary under the same load keeps its peak RSS (VmHWM) within the
//! budget plus its idle resident size and a stated allowance. A test binary of its own: the
//! in-process test installs the (process-global) metrics recorder.

mod common {
    pub mod bombs;
    pub mod prometheus;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use swin_serve::server::memory_budget::{proc_kb_field, BudgetSetting};
use swin_serve::server::ServerConfig;
use tonic::Code;

use common::bombs;
use common::prometheus::{sample, scrape};
use common::test_server::{free_port, TestServer};

const MIB: u64 = 1 << 20;

/// The images every test sends: bombs that never fit a small budget, and large images that fit
/// one or two at a time.
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "gif 9459x9459 screen, 1x1 frame",
            bombs::gif_screen_bomb(9459),
        ),
        ("png 9400x9400 black", bombs::png_rgb8(9400, 9400)),
        ("png 2500x2500 rgba16", bombs::png_rgba16(2500, 2500)),
        ("png 3000x3000", bombs::png_rgb8(3000, 3000)),
        (
            "jpeg cmyk 2000x2000 progressive",
            bombs::jpeg_cmyk(2000, 2000, true),
        ),
        ("tiff rgba16 1200x1200", bombs::tiff_rgba16(1200, 1200)),
        ("webp 2000x2000", bombs::webp_rgba(2000, 2000)),
        ("bmp 3000x2000", bombs::bmp_rgb(3000, 2000)),
        ("gif 3000x3000 screen", bombs::gif_screen_bomb(3000)),
    ]
}

async fn connect(addr: SocketAddr) -> tonic::transport::Channel {
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(ch) = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            let mut client = ClassifierClient::new(ch.clone());
            if client
                .get_model_info(proto::GetModelInfoRequest {})
                .await
                .is_ok()
            {
                return ch;
            }
        }
        assert!(Instant::now() < deadline, "server never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each payload `copies` times at once through Classify, once more inside one ClassifyBatch and
/// once through OIP ModelInfer; every answer is OK or RESOURCE_EXHAUSTED naming the budget.
/// Returns (ok, refused).
async fn fire(ch: &tonic::transport::Channel, copies: usize) -> (usize, usize) {
    let payloads = payloads();
    // OIP calls name the model.
    let model_name = ClassifierClient::new(ch.clone())
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .model;
    let mut calls = tokio::task::JoinSet::new();
    for (name, bytes) in &payloads {
        for _ in 0..copies {
            let mut client = ClassifierClient::new(ch.clone())
                .max_encoding_message_size(64 << 20)
                .max_decoding_message_size(64 << 20);
            let (name, image) = (*name, bytes.clone());
            calls.spawn(async move {
                let answer = client
                    .classify(proto::ClassifyRequest {
                        image,
                        top_k: 1,
                        request_id: name.into(),
                    })
                    .await;
                vec![(name, answer.map(|_| ()))]
            });
        }
        let mut oip = GrpcInferenceServiceClient::new(ch.clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
        let (name, image, model_name) = (*name, bytes.clone(), model_name.clone());
        calls.spawn(async move {
            let input = oip_pb::model_infer_request::InferInputTensor {
                name: "IMAGE".into(),
                datatype: "BYTES".into(),
                shape: vec![1, 1],
                contents: Some(oip_pb::InferTensorContents {
                    bytes_contents: vec![image],
                    ..Default::default()
                }),
                ..Default::default()
            };
            let answer = oip
                .model_infer(oip_pb::ModelInferRequest {
                    model_name,
                    inputs: vec![input],
                    ..Default::default()
                })
                .await;
            vec![(name, answer.map(|_| ()))]
        });
    }
    let mut batch_client = ClassifierClient::new(ch.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let batch: Vec<proto::ClassifyRequest> = payloads
        .iter()
        .map(|(name, bytes)| proto::ClassifyRequest {
            image: bytes.clone(),
            top_k: 1,
            request_id: (*name).into(),
        })
        .collect();
    let names: Vec<&'static str> = payloads.iter().map(|(n, _)| *n).collect();
    calls.spawn(async move {
        match batch_client
            .classify_batch(proto::ClassifyBatchRequest { requests: batch })
            .await
        {
            Ok(answer) => answer
                .into_inner()
                .results
                .into_iter()
                .zip(names)
                .map(|(entry, name)| {
                    let result = match entry.outcome {
                        Some(proto::classify_result::Outcome::Response(_)) => Ok(()),
                        Some(proto::classify_result::Outcome::Error(e)) => {
                            Err(tonic::Status::new(Code::from(e.code), e.message))
                        }
                        None => Err(tonic::Status::unknown("empty entry")),
                    };
                    (name, result)
                })
                .collect(),
            Err(status) => vec![("ClassifyBatch", Err(status))],
        }
    });
    let (mut ok, mut refused) = (0, 0);
    while let Some(answers) = calls.join_next().await {
        for (name, answer) in answers.unwrap() {
            match answer {
                Ok(()) => ok += 1,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(
                        s.message().contains("server memory budget exhausted"),
                        "{name}: {s:?}"
                    );
                    refused += 1;
                }
                Err(s) => panic!("{name}: {s:?}"),
            }
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bombs_get_resource_exhausted_and_the_peak_stays_under_the_budget() {
    let budget = 160 * MIB;
    let config = ServerConfig {
        memory_budget: BudgetSetting::Bytes(budget),
        max_message_bytes: 64 << 20,
        ..ServerConfig::default()
    };
    let srv = TestServer::builder()
        .config(config)
        .metrics_listener()
        .start()
        .await;
    let ch = connect(srv.addr()).await;

    let (ok, refused) = fire(&ch, 4).await;
    // The two bombs never fit; the large images fit some of the time.
    assert!(refused >= 2 * 6, "ok {ok}, refused {refused}");
    assert!(ok >= 1, "ok {ok}, refused {refused}");

    let text = scrape(srv.metrics_addr());
    let peak = sample(&text, "swin_memory_budget_peak_bytes").expect("peak gauge");
    assert!(
        peak > 0.0 && peak <= budget as f64,
        "peak {peak} over {budget}"
    );
    assert_eq!(
        sample(&text, "swin_memory_budget_bytes"),
        Some(budget as f64)
    );
    // Every charge was given back.
    assert_eq!(sample(&text, "swin_memory_budget_in_use_bytes"), Some(0.0));
    assert!(
        sample(&text, "swin_calls_refused_total{reason=\"memory_budget\"}")
            .is_some_and(|n| n >= refused as f64),
        "{text}"
    );

    srv.stop().await;
}

/// What the budget does not count, allowed on top of it: request messages being received and
/// decoded by tonic (each payload is held once by the transport and once as the message), the
/// allocator's retained free memory, thread stacks.
const RSS_ALLOWANCE: u64 = 200 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_binary_keeps_its_peak_rss_within_budget_plus_model() {
    let budget = 160 * MIB;
    let port = free_port().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .args(["serve", "--random-weights", "0", "--img-size", "64"])
        .args(["--window-size", "4", "--threads", "1"])
        .args(["--memory-budget", &budget.to_string()])
        .args(["--max-message-bytes", &(64u64 << 20).to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ch = connect(addr).await;
    // The model's resident size: loaded, warmed up, and one small image classified.
    let mut client = ClassifierClient::new(ch.clone());
    client
        .classify(proto::ClassifyRequest {
            image: bombs::png_rgb8(64, 64),
            top_k: 1,
            request_id: String::new(),
        })
        .await
        .unwrap();
    let idle = proc_kb_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap();

    let (ok, refused) = fire(&ch, 4).await;
    let peak = proc_kb_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "idle peak RSS {} MiB, peak RSS under bombs {} MiB, budget {} MiB, allowance {} MiB; {ok} ok, {refused} refused",
        idle / MIB,
        peak / MIB,
        budget / MIB,
        RSS_ALLOWANCE / MIB
    );
    assert!(refused >= 12 && ok >= 1, "ok {ok}, refused {refused}");
    assert!(
        peak <= idle + budget + RSS_ALLOWANCE,
        "peak RSS {peak} over idle {idle} + budget {budget} + allowance {RSS_ALLOWANCE}"
    );
}
