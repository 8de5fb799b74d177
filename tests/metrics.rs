//! The Prometheus endpoint (`--metrics-listen`): scraped over HTTP after real calls, its counters
//! move. A test binary of its own: the metrics recorder is global to a process.

mod common;

use std::time::{Duration, Instant};

use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinV2Config, WeightsSource};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::{self, load_serving_model, ModelOptions, ServerConfig};

/// The value of the sample `name{labels}` (labels written exactly as the exporter does).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_endpoint_is_scraped_and_its_counters_move() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = SwinV2Config::tiny_window8_256();
    config.img_size = 64;
    config.window_size = 4;
    let mut cpu = CpuOptions::new(WeightsSource::Random { seed: 1, config });
    cpu.threads = 1;
    let opts = ModelOptions::new(BackendOptions::Cpu(cpu));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_config = ServerConfig {
        metrics_listen: Some(metrics_addr),
        ..ServerConfig::default()
    };
    let handle = tokio::spawn(server::serve(
        listener,
        server_config,
        move || load_serving_model(&opts),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let url = format!("http://{addr}");
    let mut client = loop {
        if let Ok(c) = ClassifierClient::connect(url.clone()).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "model never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut png = Vec::new();
    image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8, y as u8, 7]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    for _ in 0..2 {
        client
            .classify(proto::ClassifyRequest {
                image: png.clone(),
                top_k: 1,
                request_id: "m".into(),
            })
            .await
            .unwrap();
    }
    let empty = client
        .classify(proto::ClassifyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);

    // The pool counters are sampled every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = common::scrape_metrics(metrics_addr);
        if sample(&text, "swin_images_total{outcome=\"done\"}") == Some(2.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "images never counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        sample(&text, "swin_requests_total{rpc=\"Classify\",code=\"OK\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "swin_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "swin_request_duration_seconds_count{rpc=\"Classify\",code=\"OK\"}"
        ),
        Some(2.0)
    );
    assert_eq!(sample(&text, "swin_batch_size_count"), Some(2.0));
    assert_eq!(
        sample(&text, "swin_queue_duration_seconds_count"),
        Some(2.0)
    );
    assert!(sample(&text, "swin_model_load_duration_seconds").is_some_and(|s| s > 0.0));
    assert!(text.contains("swin_build_info{"), "{text}");
    // Nothing is being decoded or waiting now: every admission slot was given back.
    assert_eq!(sample(&text, "swin_queue_slots_in_use"), Some(0.0));
    assert!(
        text.contains("# TYPE swin_request_duration_seconds histogram"),
        "{text}"
    );

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}
