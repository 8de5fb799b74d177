//! Capacity limits end to end, on the gated stand-in engine held by its gate: a full admission
//! queue refuses before any decoding (Classify and OIP alike), `--max-in-flight` refuses at once
//! but lets health through, a connection gets at most `--max-concurrent-streams` calls, and
//! refusals past `--max-refusal-rate` wait their turn.

mod common {
    pub mod calls;
    pub mod fake_engine;
    pub mod raw_h2;
    pub mod test_server;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient as InferenceClient;
use swin_serve::server::ServerConfig;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use common::calls::{answer_times, classify_request, guarded, spawn_classifies, test_image};
use common::fake_engine::{
    gated_infer_request, gated_model, serving_gated, FakeControls, OpenOnDrop,
};
use common::raw_h2::{connect, start_call};
use common::test_server::{health, TestServer};

/// A raw HTTP/2 gRPC call to `path` whose request headers are sent and whose message is not (the
/// stream stays open): the answer's `grpc-status` and `grpc-message`, which must come within 5 s.
async fn headers_only_call(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let (mut client, driver) = connect(addr).await;
    // The gRPC message prefix of a 400 kB message, and nothing of the message.
    let (response, send) = start_call(&mut client, path, 400_000, 0).await;
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("answered at the headers, without the message")
        .unwrap();
    // Trailers-only: the status is in the headers.
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let answer = (header("grpc-status"), header("grpc-message"));
    drop(send);
    driver.abort();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_before_any_decoding() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = TestServer::builder()
        .loader(gated_model(&gate, 2))
        .serving()
        .await;
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
    // Refused at the headers: a call that announces a 400 kB message and never sends a byte of
    // it is answered at once, for each gated method.
    for path in [
        "/swin.v1.Classifier/Classify",
        "/swin.v1.Classifier/ClassifyBatch",
        "/inference.GRPCInferenceService/ModelInfer",
    ] {
        let (code, message) = headers_only_call(srv.addr(), path).await;
        assert_eq!(code, "14", "{path}: {message}");
        assert!(message.contains("overloaded"), "{path}: {message}");
    }

    gate.open();
    for call in held {
        assert!(call.await.unwrap().is_ok());
    }
    // Slots are given back: the queue admits again.
    assert!(oip
        .model_infer(gated_infer_request(&[1.0], true))
        .await
        .is_ok());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_over_max_in_flight_are_refused_at_once_but_health_is_not() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        max_in_flight: 2,
        ..ServerConfig::default()
    };
    let (srv, ch) = serving_gated(config, &gate).await;
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
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_gets_at_most_max_concurrent_streams_calls_at_once() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        max_concurrent_streams: 1,
        ..ServerConfig::default()
    };
    let (srv, _) = serving_gated(config, &gate).await;
    // One connection: a call held in the engine takes its only stream.
    let ch = srv.channel().await;
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

    srv.stop().await;
}

/// Refusals at the headers past `--max-refusal-rate`: a burst is answered at once, the rest wait
/// their turn (no turn before its time, none past the 1 s hold), all UNAVAILABLE; a call with a
/// deadline is answered within half of it, still UNAVAILABLE; with the rate off every refusal
/// comes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_past_the_rate_wait_their_turn() {
    async fn paced_server(rate: Option<u32>) -> TestServer {
        TestServer::builder()
            .config(ServerConfig {
                max_refusal_rate: rate,
                ..ServerConfig::default()
            })
            .hold_loader()
            .start()
            .await
    }
    async fn refuse_all(
        client: &ClassifierClient<tonic::transport::Channel>,
        calls: usize,
    ) -> Vec<Duration> {
        let png = test_image(16, 16, image::ImageFormat::Png);
        answer_times(calls, || {
            let mut client = client.clone();
            let png = png.clone();
            async move {
                let status = client
                    .classify(classify_request(png, 1))
                    .await
                    .expect_err("the model is loading");
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("loading"), "{status:?}");
            }
        })
        .await
    }

    // 10 a second: 100 ms apart past a burst of 2 (a quarter second's worth).
    let mut server = paced_server(Some(10)).await;
    let client = ClassifierClient::new(server.channel().await);
    let answered = refuse_all(&client, 20).await;
    // 3 at once (the first and the burst); the 4th not before its turn at 100 ms.
    assert!(answered[3] >= Duration::from_millis(95), "{answered:?}");
    // Turns 100 ms apart: the 9th answer not before its turn at 600 ms...
    assert!(answered[8] >= Duration::from_millis(550), "{answered:?}");
    // ...and none held past the 1 s cap (slack for a loaded machine).
    assert!(answered[19] < Duration::from_secs(4), "{answered:?}");

    // A deadline of 400 ms: answered within half of it (+ slack), UNAVAILABLE, not DEADLINE_EXCEEDED.
    let mut request = tonic::Request::new(classify_request(
        test_image(16, 16, image::ImageFormat::Png),
        1,
    ));
    request.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let status = client.clone().classify(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(380),
        "{:?}",
        started.elapsed()
    );
    server.release_loader();
    server.stop().await;

    // Rate off: every refusal at once.
    let mut server = paced_server(None).await;
    let client = ClassifierClient::new(server.channel().await);
    let answered = refuse_all(&client, 20).await;
    assert!(answered[19] < Duration::from_millis(900), "{answered:?}");
    server.release_loader();
    server.stop().await;
}
