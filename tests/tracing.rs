//! Traces: with the OpenTelemetry layer installed (an in-memory exporter standing in for the OTLP
//! one), a Classify carrying a W3C `traceparent` yields spans in the caller's trace — the call's
//! server span under the caller's span, preprocess / queue / engine / postprocess under it — and
//! the engine-thread spans are tied to the request span carried through the queue.
//!
//! Its own test binary: it installs the process-wide subscriber.

mod common {
    pub mod test_server;
}

use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinConfig, WeightsSource};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::ModelOptions;
use swin_serve::telemetry::{self, LogFormat};

use common::test_server::TestServer;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A small SwinV2 (32×32, two stages) so that the test spends its time on the spans.
fn small_config() -> SwinConfig {
    SwinConfig {
        version: swin_serve::model::SwinVersion::V2,
        img_size: 32,
        patch_size: 4,
        in_chans: 3,
        num_classes: 10,
        embed_dim: 16,
        depths: vec![2, 2],
        num_heads: vec![2, 4],
        window_size: 4,
        mlp_ratio: 4.0,
        qkv_bias: true,
        ape: false,
        patch_norm: true,
        pretrained_window_sizes: vec![0, 0],
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_spans_continue_the_callers_trace_into_the_engine() {
    let exporter = InMemorySpanExporter::default();
    let provider = telemetry::provider_builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = telemetry::init(LogFormat::Text, Some(provider)).unwrap();
    assert!(telemetry.traces_enabled());

    let mut cpu = CpuOptions::new(WeightsSource::Random {
        seed: 3,
        config: small_config(),
    });
    cpu.threads = 1;
    cpu.max_batch = 4;
    let opts = ModelOptions::new(BackendOptions::Cpu(cpu));
    let srv = TestServer::builder().model(opts).start().await;
    let mut client = ClassifierClient::new(srv.channel().await);
    let image = png(40, 36);
    let call = |request_id: &str, traced: bool| {
        let mut request = tonic::Request::new(proto::ClassifyRequest {
            image: image.clone(),
            top_k: 3,
            request_id: String::new(),
        });
        if traced {
            let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
            request
                .metadata_mut()
                .insert("traceparent", traceparent.parse().unwrap());
        }
        request
            .metadata_mut()
            .insert("x-request-id", request_id.parse().unwrap());
        request
    };
    // UNAVAILABLE while the model loads.
    let started = std::time::Instant::now();
    loop {
        match client.classify(call("warm-up", false)).await {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                assert!(started.elapsed() < Duration::from_secs(60), "never served");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    let answer = client
        .classify(call("traced-1", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.request_id, "traced-1");

    // The caller's trace (the warm-up call started traces of its own). The request span ends when
    // the engine thread drops its copy: wait for it.
    let trace = TraceId::from_hex(CALLER_TRACE).unwrap();
    let wanted = [
        "swin.v1.Classifier/Classify",
        "preprocess",
        "queue",
        "engine.infer",
        "engine.batch",
        "postprocess",
    ];
    let spans = loop {
        let mut spans = exporter.get_finished_spans().unwrap();
        spans.retain(|s| s.span_context.trace_id() == trace);
        let have = names(&spans);
        if wanted.iter().all(|w| have.iter().any(|h| h == w)) {
            break spans;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "spans missing from the caller's trace: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(spans.len(), wanted.len(), "{:?}", names(&spans));
    let rpc = named(&spans, "swin.v1.Classifier/Classify");
    assert_eq!(rpc.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap());
    assert!(rpc.parent_span_is_remote);
    assert_eq!(rpc.span_kind, SpanKind::Server);
    assert!(
        rpc.attributes
            .iter()
            .any(|kv| kv.key.as_str() == "request_id" && kv.value.as_str() == "traced-1"),
        "{:?}",
        rpc.attributes
    );
    let rpc_id = rpc.span_context.span_id();
    for child in ["preprocess", "queue", "engine.infer", "postprocess"] {
        assert_eq!(
            named(&spans, child).parent_span_id,
            rpc_id,
            "{child} is not a child of the call's span"
        );
    }
    // On the engine thread: the batch span sits under the image's engine span and links the
    // request span it carried through the queue.
    let infer = named(&spans, "engine.infer");
    let batch = named(&spans, "engine.batch");
    assert_eq!(batch.parent_span_id, infer.span_context.span_id());
    assert!(
        batch
            .links
            .links
            .iter()
            .any(|l| l.span_context.span_id() == rpc_id && l.span_context.trace_id() == trace),
        "engine.batch does not link the request span: {:?}",
        batch.links
    );
    // The queue wait ends before the forward pass starts.
    assert!(named(&spans, "queue").end_time <= infer.start_time);

    srv.stop().await;
    telemetry.shutdown().unwrap();
}
