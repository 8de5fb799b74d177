//! Prometheus metrics (`--metrics-listen ADDR`: `GET /metrics` on a plain HTTP port of its own), with
//! `metrics` + `metrics-exporter-prometheus` as text-embeddings-inference does. Durations are in
//! seconds. Names:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `swin_requests_total` | counter | `rpc`, `code` | calls answered, by RPC and gRPC code |
//! | `swin_request_duration_seconds` | histogram | `rpc`, `code` | time from arrival to answer |
//! | `swin_preprocess_duration_seconds` | histogram | | decode + resize + normalize of one image |
//! | `swin_queue_duration_seconds` | histogram | | time an image waited for an engine instance |
//! | `swin_compute_duration_seconds` | histogram | | engine time of the batch an image ran in |
//! | `swin_batch_size` | histogram | | images in the engine batch an image ran in |
//! | `swin_images_in_flight` | gauge | | images queued or running |
//! | `swin_queue_slots_in_use` | gauge | | admission slots taken (`--queue-capacity`): images being decoded or waiting for an instance |
//! | `swin_images_total` | counter | `outcome` = `done`, `failed`, `cancelled`, `expired`, `rejected` | images by what became of them in the engine pool |
//! | `swin_engine_batches_total` | counter | | engine batches run |
//! | `swin_memory_budget_bytes` | gauge | | the memory budget in force (`--memory-budget`; absent when off) |
//! | `swin_memory_budget_in_use_bytes` | gauge | | bytes charged to the budget now: encoded images and their working sets being preprocessed, tensors waiting for or in the engine |
//! | `swin_memory_budget_peak_bytes` | gauge | | the most bytes ever charged to the budget at once (high-water mark since start) |
//! | `swin_calls_refused_total` | counter | `reason` = `in_flight`, `memory_budget` | calls or images refused at admission (`--max-in-flight`, `--memory-budget`) |
//! | `swin_model_load_duration_seconds` | gauge | | load + warm-up time of the model |
//! | `swin_build_info` | gauge (1) | `version`, `backend`, `model` | what is running |
//!
//! The pool counters are sampled from [`crate::scheduler::PoolStats`] every second.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use super::ServingModel;

/// Latency buckets (seconds): 1 ms … 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Batch-size buckets.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Start the exporter on `addr` and install it as the process's recorder.
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("swin_batch_size".into()), BATCH_BUCKETS)?
        .install()?;
    metrics::describe_counter!(
        "swin_requests_total",
        "calls answered, by RPC and gRPC code"
    );
    metrics::describe_histogram!(
        "swin_request_duration_seconds",
        metrics::Unit::Seconds,
        "time from arrival to answer"
    );
    metrics::describe_histogram!(
        "swin_preprocess_duration_seconds",
        metrics::Unit::Seconds,
        "decode, resize and normalize of one image"
    );
    metrics::describe_histogram!(
        "swin_queue_duration_seconds",
        metrics::Unit::Seconds,
        "time an image waited for an engine instance"
    );
    metrics::describe_histogram!(
        "swin_compute_duration_seconds",
        metrics::Unit::Seconds,
        "engine time of the batch an image ran in"
    );
    metrics::describe_histogram!(
        "swin_batch_size",
        "images in the engine batch an image ran in"
    );
    metrics::describe_gauge!("swin_images_in_flight", "images queued or running");
    metrics::describe_gauge!(
        "swin_queue_slots_in_use",
        "admission slots taken: images being decoded or waiting for an instance"
    );
    metrics::describe_counter!("swin_images_total", "images by outcome in the engine pool");
    metrics::describe_counter!("swin_engine_batches_total", "engine batches run");
    metrics::describe_gauge!(
        "swin_memory_budget_bytes",
        metrics::Unit::Bytes,
        "the memory budget in force (--memory-budget)"
    );
    metrics::describe_gauge!(
        "swin_memory_budget_in_use_bytes",
        metrics::Unit::Bytes,
        "bytes charged to the memory budget: images being preprocessed, tensors queued or running"
    );
    metrics::describe_gauge!(
        "swin_memory_budget_peak_bytes",
        metrics::Unit::Bytes,
        "the most bytes ever charged to the memory budget at once"
    );
    metrics::describe_counter!(
        "swin_calls_refused_total",
        "calls or images refused at admission, by reason (in_flight, memory_budget)"
    );
    metrics::describe_gauge!(
        "swin_model_load_duration_seconds",
        metrics::Unit::Seconds,
        "load and warm-up time of the model"
    );
    metrics::describe_gauge!("swin_build_info", "what is running (value 1)");
    Ok(())
}

/// One answered call.
pub fn record_call(rpc: &'static str, code: tonic::Code, elapsed: Duration) {
    let code = super::status::code_name(code);
    metrics::counter!("swin_requests_total", "rpc" => rpc, "code" => code).increment(1);
    metrics::histogram!("swin_request_duration_seconds", "rpc" => rpc, "code" => code)
        .record(elapsed.as_secs_f64());
}

/// Where the time of one classified image went.
pub fn record_image(timing: &super::pipeline::ImageTiming) {
    metrics::histogram!("swin_preprocess_duration_seconds").record(timing.preprocess.as_secs_f64());
    metrics::histogram!("swin_queue_duration_seconds").record(timing.queue.as_secs_f64());
    metrics::histogram!("swin_compute_duration_seconds").record(timing.inference.as_secs_f64());
    metrics::histogram!("swin_batch_size").record(timing.batch_size as f64);
}

/// Record the loaded model, then sample its pool's counters every second while it is served.
pub fn watch_model(model: &Arc<ServingModel>, load_time: Duration) {
    metrics::gauge!("swin_model_load_duration_seconds").set(load_time.as_secs_f64());
    metrics::gauge!(
        "swin_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "backend" => model.info.backend.clone(),
        "model" => model.info.model.clone()
    )
    .set(1.0);
    let weak = Arc::downgrade(model);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(model) = weak.upgrade() else { return };
            let s = model.pool.stats();
            let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
            for (outcome, value) in [
                ("done", load(&s.images_done)),
                ("failed", load(&s.images_failed)),
                ("cancelled", load(&s.images_cancelled)),
                ("expired", load(&s.images_expired)),
                ("rejected", load(&s.images_rejected)),
            ] {
                metrics::counter!("swin_images_total", "outcome" => outcome).absolute(value);
            }
            metrics::counter!("swin_engine_batches_total").absolute(load(&s.batches_run));
            metrics::gauge!("swin_images_in_flight")
                .set(s.images_in_pool.load(Ordering::Relaxed) as f64);
            metrics::gauge!("swin_queue_slots_in_use").set(model.pool.slots_in_use() as f64);
        }
    });
}
