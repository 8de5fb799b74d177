//! The Prometheus exporter: its HTTP listener, the histogram buckets, and the description of every
//! metric.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use super::names;

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
        .set_buckets_for_metric(
            Matcher::Suffix(names::DURATION_SECONDS_SUFFIX.into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(names::BATCH_SIZE.into()), BATCH_BUCKETS)?
        .install()?;
    describe_call_metrics();
    describe_image_metrics();
    describe_budget_metrics();
    describe_model_metrics();
    Ok(())
}

fn describe_call_metrics() {
    metrics::describe_counter!(
        names::REQUESTS_TOTAL,
        "calls answered, by RPC and gRPC code"
    );
    metrics::describe_histogram!(
        names::REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "time from arrival to answer"
    );
    metrics::describe_counter!(
        names::CALLS_REFUSED_TOTAL,
        "calls or images refused at admission, by reason (in_flight, memory_budget)"
    );
}

fn describe_image_metrics() {
    metrics::describe_histogram!(
        names::PREPROCESS_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "decode, resize and normalize of one image"
    );
    metrics::describe_histogram!(
        names::QUEUE_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "time an image waited for an engine instance"
    );
    metrics::describe_histogram!(
        names::COMPUTE_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "engine time of the batch an image ran in"
    );
    metrics::describe_histogram!(
        names::BATCH_SIZE,
        "images in the engine batch an image ran in"
    );
    metrics::describe_gauge!(names::IMAGES_IN_FLIGHT, "images queued or running");
    metrics::describe_gauge!(
        names::QUEUE_SLOTS_IN_USE,
        "admission slots taken: images being decoded or waiting for an instance"
    );
    metrics::describe_counter!(names::IMAGES_TOTAL, "images by outcome in the engine pool");
    metrics::describe_counter!(names::ENGINE_BATCHES_TOTAL, "engine batches run");
}

fn describe_budget_metrics() {
    metrics::describe_gauge!(
        names::MEMORY_BUDGET_BYTES,
        metrics::Unit::Bytes,
        "the memory budget in force (--memory-budget)"
    );
    metrics::describe_gauge!(
        names::MEMORY_BUDGET_IN_USE_BYTES,
        metrics::Unit::Bytes,
        "bytes charged to the memory budget: images being preprocessed, tensors queued or running"
    );
    metrics::describe_gauge!(
        names::MEMORY_BUDGET_PEAK_BYTES,
        metrics::Unit::Bytes,
        "the most bytes ever charged to the memory budget at once"
    );
}

fn describe_model_metrics() {
    metrics::describe_gauge!(
        names::MODEL_LOAD_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "load and warm-up time of the model"
    );
    metrics::describe_gauge!(names::BUILD_INFO, "what is running (value 1)");
}
