//! The Prometheus endpoint (`--metrics-listen`): scraped over HTTP after real calls, its counters
//! move. A test binary of its own: the metrics recorder is global to a process.

mod common {
    pub mod prometheus;
    pub mod test_server;
}

use std::time::{Duration, Instant};

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;

use common::prometheus::{sample, scrape};
use common::test_server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_endpoint_is_scraped_and_its_counters_move() {
    let (srv, ch) = TestServer::builder().metrics_listener().serving().await;
    let mut client = ClassifierClient::new(ch);

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
        let text = scrape(srv.metrics_addr());
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

    srv.stop().await;
}
