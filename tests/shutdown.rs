//! Health over the server's life and shutdown, end to end: draining answers in-flight calls with
//! health NOT_SERVING; shutdown ends health Watch streams, and the shutdown timeout closes streams a
//! client keeps open (in-process, and the real binary under SIGTERM); readiness and liveness follow
//! an engine that hangs (the gated stand-in engine held by its gate).

mod common {
    pub mod calls;
    pub mod fake_engine;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient as InferenceClient;
use swin_serve::server::{self, ServerConfig};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use common::calls::{random_swin_options, spawn_classifies, test_image};
use common::fake_engine::{gated_model, FakeControls, OpenOnDrop};
use common::test_server::{connect, free_port, health, wait_serving, TestServer};

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

/// A reflection stream whose client never closes its side (until `tx` is dropped), after its first
/// answer.
async fn open_reflection_stream(
    ch: &Channel,
) -> (
    tokio::sync::mpsc::Sender<ServerReflectionRequest>,
    tonic::Streaming<tonic_reflection::pb::v1::ServerReflectionResponse>,
) {
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
    (tx, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let config = ServerConfig {
        drain_delay: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (mut srv, ch) = TestServer::builder()
        .config(config)
        .model(random_swin_options())
        .serving()
        .await;
    let client = ClassifierClient::new(ch.clone());
    let png = test_image(200, 300, image::ImageFormat::Png);
    let tasks = spawn_classifies(&client, &png, 6);
    tokio::time::sleep(Duration::from_millis(30)).await;
    srv.begin_shutdown();
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
    srv.join(Duration::from_secs(60), "server did not stop")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_health_watch_streams() {
    // A shutdown timeout far beyond the guard below: the server must stop because the Watch
    // streams end, not because the timeout closed them.
    let config = ServerConfig {
        shutdown_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    };
    let (mut srv, ch) = TestServer::builder()
        .config(config)
        .model(random_swin_options())
        .serving()
        .await;
    let (mut all, first_all) = watch(&ch, "").await;
    let (mut classifier, first_classifier) = watch(&ch, "swin.v1.Classifier").await;
    assert_eq!(first_all, ServingStatus::Serving);
    assert_eq!(first_classifier, ServingStatus::Serving);

    srv.begin_shutdown();
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
    srv.join(
        Duration::from_secs(30),
        "server did not stop with Watch streams open",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_timeout_closes_streams_a_client_keeps_open() {
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let mut srv = TestServer::builder()
        .config(config)
        .model(random_swin_options())
        .hold_loader()
        .start()
        .await;
    let ch = srv.channel().await;
    // A reflection stream whose client never closes its side.
    let (tx, _stream) = open_reflection_stream(&ch).await;

    srv.release_loader();
    srv.begin_shutdown();
    srv.join(
        Duration::from_secs(30),
        "server did not stop with a client stream held open",
    )
    .await
    .unwrap();
    // `serve` has returned: the binary's `main` then shuts its runtime down, which closes the
    // connection still held (checked end to end in `sigterm_ends_the_process_with_streams_open`).
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_the_process_with_streams_open() {
    let port = free_port().port();
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
    let ch = connect(addr).await;
    wait_serving(&ch).await;
    // A health Watch (ended by shutdown) and a reflection stream the client never closes (closed
    // by the shutdown timeout).
    let (_watch, status) = watch(&ch, "").await;
    assert_eq!(status, ServingStatus::Serving);
    let (tx, _reflection) = open_reflection_stream(&ch).await;

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
async fn health_and_liveness_follow_a_hung_engine() {
    let gate = FakeControls::with_gate_closed();
    let _open_on_drop = OpenOnDrop(Arc::clone(&gate));
    let config = ServerConfig {
        engine_hang_timeout: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let mut srv = TestServer::builder()
        .config(config)
        .loader(gated_model(&gate, 64))
        .hold_loader()
        .start()
        .await;
    let ch = srv.channel().await;
    let liveness = server::LIVENESS_SERVICE_NAME;
    // Alive while loading (a slow load must not get the pod restarted).
    assert_eq!(health(&ch, liveness).await, ServingStatus::Serving);
    assert_eq!(health(&ch, "").await, ServingStatus::NotServing);
    srv.release_loader();
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
    srv.stop().await;
}
