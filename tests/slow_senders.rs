//! Slow senders and idle connections against the real server, from a raw HTTP/2 client (`h2`)
//! that can stop in the middle of a gRPC message: `--message-timeout` ends a stalled call with
//! DEADLINE_EXCEEDED and gives back its place in flight and its memory-budget charge, a request
//! message being received is charged its declared length, and `--idle-timeout` closes a
//! connection with no call open (and only such a connection).

mod common {
    pub mod raw_h2;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::memory_budget::BudgetSetting;
use swin_serve::server::ServerConfig;
use tonic::codegen::{http, Bytes};
use tonic::Code;

use common::raw_h2::{connect, start_call};
use common::test_server::TestServer;

const MIB: u32 = 1 << 20;
const CLASSIFY: &str = "/swin.v1.Classifier/Classify";
const CLASSIFY_STREAM: &str = "/swin.v1.Classifier/ClassifyStream";

/// The tiny model served with `config`, SERVING.
async fn start(config: ServerConfig) -> TestServer {
    let (srv, _) = TestServer::builder().config(config).serving().await;
    srv
}

/// A black 64×64 PNG.
fn small_png() -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(64, 64)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// A 64×64 PNG through a tonic client: the call's code.
async fn classify_small(addr: SocketAddr) -> Code {
    let Ok(ch) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    else {
        return Code::Unavailable;
    };
    let answer = ClassifierClient::new(ch)
        .classify(proto::ClassifyRequest {
            image: small_png(),
            top_k: 1,
            request_id: String::new(),
        })
        .await;
    match answer {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], text.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status of a response: trailers-only headers, or the trailers after the body.
async fn grpc_status(response: h2::client::ResponseFuture) -> (Code, String) {
    let response = response.await.expect("response");
    let from = |headers: &http::HeaderMap| {
        headers.get("grpc-status").map(|code| {
            let code = code.to_str().unwrap().parse::<i32>().unwrap();
            let message = headers
                .get("grpc-message")
                .map(|m| percent_decode(m.to_str().unwrap()))
                .unwrap_or_default();
            (Code::from(code), message)
        })
    };
    if let Some(status) = from(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        data.expect("response body");
    }
    let trailers = body.trailers().await.expect("trailers").expect("trailers");
    from(&trailers).expect("grpc-status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_message_ends_with_deadline_exceeded_and_gives_back_its_place_and_budget() {
    let limit = Duration::from_secs(1);
    let server = start(ServerConfig {
        message_timeout: Some(limit),
        memory_budget: BudgetSetting::Bytes(u64::from(10 * MIB)),
        max_in_flight: 2,
        idle_timeout: None,
        ..ServerConfig::default()
    })
    .await;
    let (mut client, _driver) = connect(server.addr()).await;

    // A: 8 MiB declared, 1 KiB sent, then nothing.
    let started = Instant::now();
    let (a, _a_send) = start_call(&mut client, CLASSIFY, 8 * MIB, 1024).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // B: its declared 4 MiB do not fit beside A's 8: refused at once.
    let (b, _b_send) = start_call(&mut client, CLASSIFY, 4 * MIB, 10).await;
    let (code, message) = tokio::time::timeout(Duration::from_millis(800), grpc_status(b))
        .await
        .expect("B refused at once");
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(
        message.contains("request message being received"),
        "{message}"
    );
    // C: a stalled 100-byte message: A and C hold both places in flight.
    let (c, _c_send) = start_call(&mut client, CLASSIFY, 100, 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(classify_small(server.addr()).await, Code::ResourceExhausted);

    // A and C end with DEADLINE_EXCEEDED after the message timeout.
    for call in [a, c] {
        let (code, message) = tokio::time::timeout(Duration::from_secs(10), grpc_status(call))
            .await
            .expect("a stalled call was never ended");
        assert_eq!(code, Code::DeadlineExceeded, "{message}");
        assert!(message.contains("--message-timeout"), "{message}");
    }
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());

    // Their places and A's 8 MiB are back: 9 MiB declared is not refused (it stalls and times
    // out), and a whole call gets through.
    let (e, _e_send) = start_call(&mut client, CLASSIFY, 9 * MIB, 10).await;
    let (code, message) = grpc_status(e).await;
    assert_eq!(code, Code::DeadlineExceeded, "{message}");
    assert_eq!(classify_small(server.addr()).await, Code::Ok);

    // A unary request whose message arrived but whose stream never ends is bounded too.
    let (f, _f_send) = start_call(&mut client, CLASSIFY, 0, 0).await;
    let (code, _) = tokio::time::timeout(Duration::from_secs(10), grpc_status(f))
        .await
        .expect("never ended");
    assert_eq!(code, Code::DeadlineExceeded);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_may_idle_between_messages_but_not_stall_inside_one() {
    let limit = Duration::from_secs(1);
    let server = start(ServerConfig {
        message_timeout: Some(limit),
        idle_timeout: None,
        ..ServerConfig::default()
    })
    .await;
    let (mut client, _driver) = connect(server.addr()).await;
    let (response, mut send) = start_call(&mut client, CLASSIFY_STREAM, 0, 0).await;
    let response = response.await.expect("stream answered");
    let mut body = response.into_body();
    // Longer than the message timeout with no message begun: the stream stays open.
    let quiet = tokio::time::timeout(3 * limit / 2, body.data()).await;
    assert!(quiet.is_err(), "the stream ended while idle: {quiet:?}");
    // Half a message, then a stall: the stream ends with DEADLINE_EXCEEDED.
    let mut half = vec![0u8];
    half.extend((1000u32).to_be_bytes());
    half.extend([0u8; 100]);
    let stalled = Instant::now();
    send.send_data(Bytes::from(half), false).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(data) = body.data().await {
            data.expect("stream body");
        }
        body.trailers().await.expect("trailers").expect("trailers")
    })
    .await
    .expect("the stalled stream was never ended");
    assert!(stalled.elapsed() >= limit);
    assert_eq!(
        ended.get("grpc-status").unwrap(),
        &(Code::DeadlineExceeded as i32).to_string()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let idle = Duration::from_secs(1);
    let server = start(ServerConfig {
        idle_timeout: Some(idle),
        message_timeout: None,
        ..ServerConfig::default()
    })
    .await;
    // No call at all: closed after about the idle timeout.
    let (_client, driver) = connect(server.addr()).await;
    let opened = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("an idle connection was not closed")
        .unwrap();
    assert!(opened.elapsed() >= idle, "{:?}", opened.elapsed());

    // A stream open (no message) for three idle timeouts: the connection stays.
    let (mut client, mut driver) = connect(server.addr()).await;
    let (response, send) = start_call(&mut client, CLASSIFY_STREAM, 0, 0).await;
    let response = response.await.expect("stream answered");
    assert!(
        tokio::time::timeout(3 * idle, &mut driver).await.is_err(),
        "a connection with an open call was closed"
    );
    // The stream ends (reset by the client; the client itself stays): the connection is closed
    // once idle for the limit.
    drop(send);
    drop(response);
    let closing = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the connection was not closed once idle")
        .unwrap();
    eprintln!("closed {:?} after its last call", closing.elapsed());
    drop(client);
    server.stop().await;
}
