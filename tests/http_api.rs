//! The HTTP port (`--http-listen`) end to end, through a plain HTTP/1.1 client written here (so
//! that a test can send headers without the body): `/v1/classify` raw and multipart against gRPC
//! `Classify`, OIP v2 REST in JSON and with Triton's binary data against the same model, the
//! classification extension, metadata/config/stats/index, bad bodies answered with their status and
//! a JSON error while the server keeps serving, 413 from `Content-Length` and 503 at the headers
//! before any body byte is sent (past `--max-refusal-rate`, in its turn), tokens, request ids and
//! client timeouts.

mod common {
    pub mod calls;
    pub mod test_server;
}

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::calls::{answer_times, classify_request, test_image};
use common::test_server::{free_port, TestServer};

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string: {:?}", self))
            .to_string()
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + n]);
            rest = &rest[end + 2 + n + 2..];
        }
        body = out;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// One request on a fresh connection (`Connection: close`), answer read to the end.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) and close before the body is all sent, as a browser or curl
    // sees it: the write then fails, and the answer is read all the same.
    if let Err(e) = stream.write_all(body).await {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "writing the body: {e}"
        );
    }
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("answered within 60 s");
    if let Err(e) = read {
        // Data that arrived before a reset is still the answer.
        assert!(!raw.is_empty(), "reading the answer: {e}");
    }
    parse_answer(&raw)
}

/// Send only the headers (with a `Content-Length` the body never fills) and read the answer.
async fn headers_only(addr: SocketAddr, path: &str, content_length: u64) -> (Answer, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // The server answers and closes (or keeps the connection): read what the answer announces.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("answered before the body was sent")
            .unwrap();
        raw.extend_from_slice(&buf[..n]);
        if n == 0 {
            break;
        }
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let answer = parse_answer(&raw);
            let len: usize = answer
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if raw.len() >= split + 4 + len {
                break;
            }
        }
    }
    (parse_answer(&raw), started.elapsed())
}

/// A client refused at its headers that goes on sending its body after the answer (as a client
/// that writes the whole request before reading does): the server lingers, discarding what
/// arrives, so every write succeeds, the answer is there to read, and the connection then ends
/// cleanly — no reset (which would throw the unread answer away on the client's side).
async fn refused_client_keeps_sending_and_still_reads_its_answer(http: SocketAddr) {
    let body_len = 4 << 20;
    let mut stream = TcpStream::connect(http).await.unwrap();
    let head = format!(
        "POST /v1/classify HTTP/1.1\r\nHost: {http}\r\nContent-Type: image/png\r\nContent-Length: {body_len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Wait until the answer is in (the server has answered and, unread body and all, closed).
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first))
        .await
        .expect("answered at the headers")
        .unwrap();
    assert_eq!(n, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 4 MiB: more than the socket buffers hold, so these writes only complete if the server
    // reads them.
    let chunk = vec![0u8; 64 << 10];
    for _ in 0..body_len / chunk.len() {
        tokio::time::timeout(Duration::from_secs(10), stream.write_all(&chunk))
            .await
            .expect("the lingering server reads what is still sent")
            .expect("no reset while the body is still sent");
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server closes after the body")
        .expect("a clean end of stream, not a reset");
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, 503, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(answer.header("connection"), Some("close"));
}

async fn http_server(config: ServerConfig) -> (TestServer, SocketAddr, tonic::transport::Channel) {
    let http = free_port();
    let (server, channel) = TestServer::builder()
        .config(ServerConfig {
            http_listen: Some(http),
            ..config
        })
        .serving()
        .await;
    (server, http, channel)
}

fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----swin-serve-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// (class, probability) of a ClassifyResponse in JSON; the probability as the f32 it was.
fn probabilities(answer: &Value) -> Vec<(u64, f32)> {
    answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["classId"].as_u64().unwrap(),
                p["probability"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classify_raw_and_multipart_answer_what_grpc_classify_answers() {
    let (server, http, channel) = http_server(ServerConfig::default()).await;
    let image = test_image(80, 60, image::ImageFormat::Png);
    let grpc = ClassifierClient::new(channel)
        .classify(classify_request(image.clone(), 3))
        .await
        .unwrap()
        .into_inner();

    let raw = call(
        http,
        "POST",
        "/v1/classify?top_k=3",
        &[("Content-Type", "image/png"), ("X-Request-Id", "raw-1")],
        &image,
    )
    .await;
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    assert_eq!(raw.header("x-request-id"), Some("raw-1"));
    assert_eq!(raw.header("content-type"), Some("application/json"));
    let answer = raw.json();
    assert_eq!(answer["requestId"], "raw-1");
    assert_eq!(
        (
            answer["imageWidth"].as_u64(),
            answer["imageHeight"].as_u64()
        ),
        (Some(80), Some(60))
    );
    let want: Vec<(u64, f32)> = grpc
        .predictions
        .iter()
        .map(|p| (u64::from(p.class_id), p.probability))
        .collect();
    assert_eq!(probabilities(&answer), want);
    assert_eq!(answer["predictions"][0]["label"], grpc.predictions[0].label);
    assert!(
        answer["timing"]["totalUs"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    // curl --data-binary's default content type, and a form upload under any field name.
    let curl = call(
        http,
        "POST",
        "/v1/classify?top_k=3",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &image,
    )
    .await;
    assert_eq!(probabilities(&curl.json()), want);
    let (content_type, body) = multipart("photo", "cat.png", &image);
    let form = call(
        http,
        "POST",
        "/v1/classify?top_k=3",
        &[("Content-Type", &content_type)],
        &body,
    )
    .await;
    assert_eq!(form.status, 200, "{}", String::from_utf8_lossy(&form.body));
    assert_eq!(probabilities(&form.json()), want);
    // Without top_k: the gRPC default (5).
    let default = call(http, "POST", "/v1/classify", &[], &image).await;
    assert_eq!(default.json()["predictions"].as_array().unwrap().len(), 5);

    // The page and the model description.
    let page = call(http, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/v1/classify"));
    let info = call(http, "GET", "/v1/model", &[], b"").await.json();
    assert_eq!(info["model"], grpc.model);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oip_rest_in_json_and_binary_form_with_classification() {
    let (server, http, _channel) = http_server(ServerConfig::default()).await;
    let image = test_image(70, 90, image::ImageFormat::Jpeg);
    let classified = call(http, "POST", "/v1/classify?top_k=1000", &[], &image)
        .await
        .json();
    let model = classified["model"].as_str().unwrap().to_string();
    let mut by_class = vec![0f64; 1000];
    for (c, p) in probabilities(&classified) {
        by_class[c as usize] = f64::from(p);
    }

    // JSON: the image in base64, PROBABILITIES as numbers.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
    let request = json!({
        "id": "json-1",
        "inputs": [{"name": "IMAGE", "shape": [1], "datatype": "BYTES", "data": [b64]}],
        "outputs": [{"name": "PROBABILITIES"}, {"name": "LOGITS", "parameters": {"classification": 2}}],
    });
    let path = format!("/v2/models/{model}/infer");
    let answer = call(
        http,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        request.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let answer = answer.json();
    assert_eq!(answer["id"], "json-1");
    assert_eq!(answer["model_name"], model.as_str());
    let probs: Vec<f64> = answer["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(answer["outputs"][0]["shape"], json!([1, 1000]));
    for (got, want) in probs.iter().zip(&by_class) {
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1e-6),
            "{got} vs {want}"
        );
    }
    let top = answer["outputs"][1]["data"][0].as_str().unwrap();
    let best = classified["predictions"][0]["classId"].as_u64().unwrap();
    assert!(
        top.split(':').nth(1) == Some(best.to_string().as_str()),
        "{top}"
    );

    // Triton's binary form: the image after the JSON header, the output as raw FP32.
    let header = json!({
        "inputs": [{"name": "IMAGE", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": image.len() + 4}}],
        "outputs": [{"name": "PROBABILITIES", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&(image.len() as u32).to_le_bytes());
    body.extend_from_slice(&image);
    let length = header.len().to_string();
    let path = format!("/v2/models/{model}/versions/1/infer");
    let binary = call(
        http,
        "POST",
        &path,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Inference-Header-Content-Length", &length),
        ],
        &body,
    )
    .await;
    assert_eq!(
        binary.status,
        200,
        "{}",
        String::from_utf8_lossy(&binary.body)
    );
    let n: usize = binary
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let json: Value = serde_json::from_slice(&binary.body[..n]).unwrap();
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 4000);
    let raw = &binary.body[n..];
    assert_eq!(raw.len(), 4000);
    for (i, c) in raw.chunks_exact(4).enumerate() {
        let got = f64::from(f32::from_le_bytes(c.try_into().unwrap()));
        assert!((got - by_class[i]).abs() <= 1e-6 * by_class[i].abs().max(1e-6));
    }

    // Metadata, config, stats, index, readiness.
    let meta = call(http, "GET", &format!("/v2/models/{model}"), &[], b"")
        .await
        .json();
    assert_eq!(meta["inputs"][0]["name"], "IMAGE");
    assert!(meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "LOGITS"));
    let config = call(http, "GET", &format!("/v2/models/{model}/config"), &[], b"")
        .await
        .json();
    assert_eq!(config["name"], model.as_str());
    assert!(config["max_batch_size"].as_u64().unwrap() >= 1, "{config}");
    let stats = call(http, "GET", &format!("/v2/models/{model}/stats"), &[], b"")
        .await
        .json();
    let success = &stats["model_stats"][0]["inference_stats"]["success"]["count"];
    assert!(success.as_u64().unwrap() >= 3, "{stats}");
    let index = call(
        http,
        "POST",
        "/v2/repository/index",
        &[],
        b"{\"ready\": true}",
    )
    .await
    .json();
    assert_eq!(index[0]["name"], model.as_str());
    assert_eq!(index[0]["state"], "READY");
    assert_eq!(
        call(http, "GET", &format!("/v2/models/{model}/ready"), &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        call(http, "GET", "/v2/models/other/ready", &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        call(http, "GET", "/v2/health/live", &[], b"").await.status,
        200
    );
    assert_eq!(
        call(http, "GET", "/v2/health/ready", &[], b"").await.json()["ready"],
        true
    );
    assert_eq!(
        call(http, "GET", "/v2", &[], b"").await.json()["name"],
        "swin-serve"
    );
    server.stop().await;
}

/// (what, path, headers, body, expected status).
type BadCase<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bodies_get_their_status_and_a_json_error_and_the_server_keeps_serving() {
    let (server, http, _channel) = http_server(ServerConfig {
        max_message_bytes: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let image = test_image(64, 64, image::ImageFormat::Png);
    let model = call(http, "POST", "/v1/classify", &[], &image).await.json()["model"]
        .as_str()
        .unwrap()
        .to_string();
    let infer = format!("/v2/models/{model}/infer");
    let input = |datatype: &str, shape: Value, data: Value| {
        json!({"inputs": [{"name": "IMAGE", "shape": shape, "datatype": datatype, "data": data}]})
            .to_string()
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
    let cases: Vec<BadCase> = vec![
        ("empty image", "/v1/classify".into(), vec![], vec![], 400),
        (
            "garbage image",
            "/v1/classify".into(),
            vec![],
            b"definitely not an image".to_vec(),
            400,
        ),
        (
            "truncated image",
            "/v1/classify".into(),
            vec![],
            image[..image.len() / 2].to_vec(),
            400,
        ),
        (
            "wrong content type",
            "/v1/classify".into(),
            vec![("Content-Type", "application/json")],
            image.clone(),
            415,
        ),
        (
            "bad top_k",
            "/v1/classify?top_k=x".into(),
            vec![],
            image.clone(),
            400,
        ),
        (
            "multipart without a boundary",
            "/v1/classify".into(),
            vec![("Content-Type", "multipart/form-data")],
            image.clone(),
            400,
        ),
        (
            "malformed JSON",
            infer.clone(),
            vec![],
            b"{\"inputs\": [".to_vec(),
            400,
        ),
        (
            "not base64",
            infer.clone(),
            vec![],
            input("BYTES", json!([1]), json!(["***"])).into_bytes(),
            400,
        ),
        (
            "wrong datatype",
            infer.clone(),
            vec![],
            input("FP32", json!([1]), json!([1.0])).into_bytes(),
            400,
        ),
        (
            "wrong shape",
            infer.clone(),
            vec![],
            input("BYTES", json!([2]), json!([b64])).into_bytes(),
            400,
        ),
        (
            "unknown model",
            "/v2/models/nope/infer".into(),
            vec![],
            input("BYTES", json!([1]), json!([b64])).into_bytes(),
            404,
        ),
        (
            "header length past the body",
            infer.clone(),
            vec![("Inference-Header-Content-Length", "99999")],
            b"{}".to_vec(),
            400,
        ),
        ("unknown route", "/v3/x".into(), vec![], vec![], 404),
        (
            "oversized",
            "/v1/classify".into(),
            vec![],
            vec![0u8; (1 << 20) + 1],
            413,
        ),
    ];
    for (what, path, headers, body, status) in cases {
        let answer = call(http, "POST", &path, &headers, &body).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        assert!(!answer.error().is_empty(), "{what}");
    }
    assert_eq!(
        call(http, "GET", "/v1/classify", &[], b"").await.status,
        405
    );
    // X-Request-Timeout: 0 has expired already; a malformed one is refused.
    let expired = call(
        http,
        "POST",
        "/v1/classify",
        &[("X-Request-Timeout", "0")],
        &image,
    )
    .await;
    assert_eq!(expired.status, 504, "{}", expired.error());
    let malformed = call(
        http,
        "POST",
        "/v1/classify",
        &[("X-Request-Timeout", "soon")],
        &image,
    )
    .await;
    assert_eq!(malformed.status, 400);
    // Still serving.
    assert_eq!(
        call(http, "POST", "/v1/classify", &[], &image).await.status,
        200
    );

    // 413 from Content-Length, answered before any byte of the body is sent.
    let (answer, elapsed) = headers_only(http, "/v1/classify", 50 << 20).await;
    assert_eq!(
        answer.status,
        413,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(elapsed < Duration::from_secs(5));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_cannot_admit_refuses_at_the_headers_before_the_body() {
    // The model is still loading: every inference call would be refused, so it is refused before
    // its body arrives (the client never sends one).
    let http = free_port();
    let mut server = TestServer::builder()
        .config(ServerConfig {
            http_listen: Some(http),
            ..ServerConfig::default()
        })
        .hold_loader()
        .start()
        .await;
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(http).await {
            drop(stream);
            ready = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ready.expect("the HTTP port is open while the model loads");
    for path in ["/v1/classify", "/v2/models/any/infer"] {
        let (answer, elapsed) = headers_only(http, path, 400_000).await;
        assert_eq!(
            answer.status,
            503,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.error().contains("loading"), "{}", answer.error());
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        // The answer says the connection closes (its body was not read), so that a keep-alive
        // client does not send its next call on it.
        assert_eq!(answer.header("connection"), Some("close"), "{path}");
    }
    refused_client_keeps_sending_and_still_reads_its_answer(http).await;
    assert_eq!(
        call(http, "GET", "/v2/health/ready", &[], b"").await.status,
        503
    );
    assert_eq!(
        call(http, "GET", "/v2/health/live", &[], b"").await.status,
        200
    );
    server.release_loader();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_guard_every_route_but_the_probes_and_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "http-token\n").unwrap();
    let (server, http, _channel) = http_server(ServerConfig {
        auth_token_file: Some(tokens),
        ..ServerConfig::default()
    })
    .await;
    let image = test_image(64, 64, image::ImageFormat::Png);
    for (method, path) in [
        ("POST", "/v1/classify"),
        ("GET", "/v1/model"),
        ("GET", "/v2"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2/models/stats"),
    ] {
        let answer = call(http, method, path, &[], &image).await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(
            answer.error().contains("Bearer"),
            "{path}: {}",
            answer.error()
        );
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        let wrong = call(
            http,
            method,
            path,
            &[("Authorization", "Bearer nope")],
            &image,
        )
        .await;
        assert_eq!(wrong.status, 401, "{path}");
    }
    let ok = call(
        http,
        "POST",
        "/v1/classify",
        &[("Authorization", "Bearer http-token")],
        &image,
    )
    .await;
    assert_eq!(ok.status, 200);
    for path in ["/", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(
            call(http, "GET", path, &[], b"").await.status,
            200,
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bench_load_generator_drives_the_http_routes() {
    use std::sync::Arc;
    use swin_serve::client::connection::Bearer;
    use swin_serve::client::load_generator::{self as load, LoadOptions, LoadRunError, Rpc, Stop};
    let (server, http, channel) = http_server(ServerConfig::default()).await;
    let base = format!("http://{http}");
    let image = Arc::new(test_image(64, 64, image::ImageFormat::Jpeg));
    for rpc in [Rpc::HttpClassify, Rpc::HttpInfer] {
        let options = LoadOptions {
            rpc,
            concurrency: 2,
            stop: Stop::Requests(6),
            warmup: 1,
            image: Arc::clone(&image),
            progress: false,
            rate: None,
        };
        let report = load::run_http(&base, &Bearer(None), &options)
            .await
            .unwrap();
        assert_eq!(
            (report.ok, report.errors, report.images),
            (6, 0, 6),
            "{rpc:?}: {report:?}"
        );
        assert_eq!(report.latencies.len(), 6);
        // Refusals are counted by HTTP status, with the server's message.
        let bad = LoadOptions {
            image: Arc::new(b"not an image".to_vec()),
            ..options.clone()
        };
        let report = load::run_http(&base, &Bearer(None), &bad).await.unwrap();
        assert_eq!(report.ok, 0);
        assert_eq!(report.codes.get("HTTP 400").copied(), Some(6), "{report:?}");
        assert!(
            report
                .first_error
                .as_deref()
                .unwrap_or("")
                .starts_with("HTTP 400: "),
            "{report:?}"
        );
        // An HTTP route is not a gRPC method, and the other way round.
        assert!(matches!(
            load::run(channel.clone(), Bearer(None), &options).await,
            Err(LoadRunError::NotGrpc(_))
        ));
    }
    let grpc = LoadOptions {
        rpc: Rpc::Classify,
        concurrency: 1,
        stop: Stop::Requests(1),
        warmup: 0,
        image: Arc::clone(&image),
        progress: false,
        rate: None,
    };
    assert!(matches!(
        load::run_http(&base, &Bearer(None), &grpc).await,
        Err(LoadRunError::NotHttp(_))
    ));
    assert!(matches!(
        load::run_http(
            "https://example",
            &Bearer(None),
            &LoadOptions {
                rpc: Rpc::HttpClassify,
                ..grpc.clone()
            }
        )
        .await,
        Err(LoadRunError::HttpUrl(_))
    ));

    // The lean storm callers make the same calls: answered OK by an idle server (over keep-alive
    // HTTP/1.1 and one HTTP/2 connection), refusals counted by status with the server's message.
    let grpc_url = format!("http://{}", server.addr());
    for (rpc, url) in [
        (Rpc::ClassifyStorm, grpc_url.as_str()),
        (Rpc::HttpClassifyStorm, base.as_str()),
    ] {
        let options = LoadOptions {
            rpc,
            concurrency: 3,
            stop: Stop::Requests(9),
            warmup: 1,
            image: Arc::clone(&image),
            progress: false,
            rate: None,
        };
        let report = load::run_lean(url, &Bearer(None), &options).await.unwrap();
        assert_eq!(
            (report.ok, report.errors, report.images),
            (9, 0, 9),
            "{rpc:?}: {report:?}"
        );
        let bad = LoadOptions {
            image: Arc::new(b"not an image".to_vec()),
            ..options.clone()
        };
        let report = load::run_lean(url, &Bearer(None), &bad).await.unwrap();
        let (code, message) = match rpc {
            Rpc::ClassifyStorm => ("InvalidArgument", "InvalidArgument: "),
            _ => ("HTTP 400", "HTTP 400: "),
        };
        assert_eq!(report.codes.get(code).copied(), Some(9), "{report:?}");
        let first = report.first_error.clone().unwrap_or_default();
        assert!(
            first.starts_with(message) && first.len() > message.len(),
            "{first}"
        );
    }
    assert!(matches!(
        load::run_lean(&grpc_url, &Bearer(None), &grpc).await,
        Err(LoadRunError::NotLean(_))
    ));
    assert!(matches!(
        load::run_lean(
            "https://example:1",
            &Bearer(None),
            &LoadOptions {
                rpc: Rpc::ClassifyStorm,
                ..grpc
            }
        )
        .await,
        Err(LoadRunError::Lean(_))
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_turns_ready_503_finishes_calls_in_flight_then_closes_the_port() {
    let (mut server, http, _channel) = http_server(ServerConfig {
        drain_delay: Duration::from_millis(600),
        ..ServerConfig::default()
    })
    .await;
    let image = test_image(200, 150, image::ImageFormat::Png);
    // Calls in flight when shutdown begins are answered, not dropped.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let image = image.clone();
            tokio::spawn(async move { call(http, "POST", "/v1/classify", &[], &image).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Draining: not ready (the load balancer takes the pod out), still live.
    let ready = call(http, "GET", "/v2/health/ready", &[], b"").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        call(http, "GET", "/v2/health/live", &[], b"").await.status,
        200
    );
    for task in in_flight {
        let answer = task.await.unwrap();
        assert_eq!(
            answer.status,
            200,
            "in-flight call lost in the drain: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let v: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(v["predictions"].as_array().unwrap().len(), 5);
    }
    server
        .join(Duration::from_secs(60), "server did not stop")
        .await
        .unwrap();
    // Then the port is closed.
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the HTTP port is still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_does_not_fit_the_memory_budget_is_refused_before_it_is_read() {
    use swin_serve::server::memory_budget::BudgetSetting;
    let (server, http, _channel) = http_server(ServerConfig {
        memory_budget: BudgetSetting::Bytes(1 << 20),
        ..ServerConfig::default()
    })
    .await;
    // 4 MB announced (under --max-message-bytes, over the 1 MiB budget), nothing sent.
    for path in ["/v1/classify", "/v2/models/any/infer"] {
        let (answer, elapsed) = headers_only(http, path, 4_000_000).await;
        assert_eq!(
            answer.status,
            429,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            answer.error().contains("memory budget") && answer.error().contains("request body"),
            "{}",
            answer.error()
        );
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
    // The refusals held nothing: the server is still ready.
    assert_eq!(
        call(http, "GET", "/v2/health/ready", &[], b"").await.status,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_refusals_past_the_rate_wait_their_turn() {
    // 10 a second past a burst of 2; the model still loading, so every call is refused at its
    // headers: 3 answered at once, the 4th not before its turn at 100 ms, all 503 within the hold.
    let http = free_port();
    let mut server = TestServer::builder()
        .config(ServerConfig {
            http_listen: Some(http),
            max_refusal_rate: Some(10),
            ..ServerConfig::default()
        })
        .hold_loader()
        .start()
        .await;
    for _ in 0..100 {
        if TcpStream::connect(http).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let image = test_image(16, 16, image::ImageFormat::Png);
    let answered = answer_times(12, || {
        let image = image.clone();
        async move {
            let answer = call(http, "POST", "/v1/classify", &[], &image).await;
            assert_eq!(answer.status, 503, "{}", answer.error());
            assert!(answer.error().contains("loading"), "{}", answer.error());
        }
    })
    .await;
    assert!(answered[3] >= Duration::from_millis(95), "{answered:?}");
    assert!(answered[8] >= Duration::from_millis(550), "{answered:?}");
    assert!(answered[11] < Duration::from_secs(4), "{answered:?}");
    server.release_loader();
    server.stop().await;
}
