//! Deadlines end to end (`grpc-timeout`, `--request-timeout`), mostly on the gated stand-in engine
//! held by its gate: an expired call answers DEADLINE_EXCEEDED and its images never reach the
//! engine; zero and malformed `grpc-timeout` values; the smaller of the client's and the server's
//! deadline applies; generous deadlines still succeed on the real model.

mod common {
    pub mod calls;
    pub mod fake_engine;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::classify_result::Outcome;
use swin_serve::server::ServerConfig;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use common::calls::{
    class_ids, classify_request, guarded, random_swin_options, spawn_classifies, test_image,
};
use common::fake_engine::{serving_gated, FakeControls, OpenOnDrop};
use common::test_server::TestServer;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_deadline_passing_while_the_engine_is_busy_answers_deadline_exceeded() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let (srv, ch) = serving_gated(ServerConfig::default(), &gate).await;
    let client = ClassifierClient::new(ch.clone());
    let mut plain = client_without_own_timer(srv.addr());
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

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_and_malformed_grpc_timeouts() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    gate.open();
    let (srv, _ch) = serving_gated(ServerConfig::default(), &gate).await;
    let mut plain = client_without_own_timer(srv.addr());
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

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_request_timeout_applies_when_the_client_sends_none() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    gate.open();
    let config = ServerConfig {
        request_timeout: Some(Duration::from_nanos(1)),
        ..ServerConfig::default()
    };
    // Health is not bound by the classification deadline.
    let (srv, ch) = serving_gated(config, &gate).await;
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

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shorter_client_deadline_wins_over_the_server_default() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        request_timeout: Some(Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let (srv, ch) = serving_gated(config, &gate).await;
    let client = ClassifierClient::new(ch.clone());
    let mut plain = client_without_own_timer(srv.addr());
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

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generous_deadlines_still_succeed() {
    let config = ServerConfig {
        request_timeout: Some(Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let (srv, ch) = TestServer::builder()
        .config(config)
        .model(random_swin_options())
        .serving()
        .await;
    let mut client = ClassifierClient::new(ch.clone());
    let png = test_image(320, 240, image::ImageFormat::Png);
    let jpeg = test_image(300, 200, image::ImageFormat::Jpeg);

    let without = client
        .classify(classify_request(png.clone(), 5))
        .await
        .unwrap()
        .into_inner();
    let mut request = Request::new(classify_request(png.clone(), 5));
    request.set_timeout(Duration::from_secs(120));
    let with = client.classify(request).await.unwrap().into_inner();
    assert_eq!(class_ids(&with), class_ids(&without));

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
    match &batch.results[0].outcome {
        Some(Outcome::Response(r)) => assert_eq!(class_ids(r), class_ids(&without)),
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

    srv.stop().await;
}
