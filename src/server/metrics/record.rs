//! What the server records per call and per image, and the pool counters it samples while a model
//! is served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::names;
use crate::server::serving_model::ServingModel;
use crate::server::status::code_name;

/// How often the engine pool's counters are sampled.
const POOL_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// One answered call.
pub fn record_call(rpc: &'static str, code: tonic::Code, elapsed: Duration) {
    let code = code_name(code);
    metrics::counter!(names::REQUESTS_TOTAL, "rpc" => rpc, "code" => code).increment(1);
    metrics::histogram!(names::REQUEST_DURATION_SECONDS, "rpc" => rpc, "code" => code)
        .record(elapsed.as_secs_f64());
}

/// Where the time of one classified image went: its preprocessing, its wait for an engine
/// instance, the forward pass of its batch, and that batch's size.
pub fn record_image(preprocess: Duration, queue: Duration, compute: Duration, batch_size: usize) {
    metrics::histogram!(names::PREPROCESS_DURATION_SECONDS).record(preprocess.as_secs_f64());
    metrics::histogram!(names::QUEUE_DURATION_SECONDS).record(queue.as_secs_f64());
    metrics::histogram!(names::COMPUTE_DURATION_SECONDS).record(compute.as_secs_f64());
    metrics::histogram!(names::BATCH_SIZE).record(batch_size as f64);
}

/// Record the loaded model, then sample its pool's counters every second while it is served.
pub fn watch_model(model: &Arc<ServingModel>, load_time: Duration) {
    metrics::gauge!(names::MODEL_LOAD_DURATION_SECONDS).set(load_time.as_secs_f64());
    metrics::gauge!(
        names::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "backend" => model.info.backend.clone(),
        "model" => model.info.model.clone(),
        "precision" => model.info.precision.clone()
    )
    .set(1.0);
    let weak = Arc::downgrade(model);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POOL_SAMPLE_INTERVAL);
        loop {
            tick.tick().await;
            let Some(model) = weak.upgrade() else { return };
            sample_pool(&model);
        }
    });
}

/// The engine pool's counters, as they are now.
fn sample_pool(model: &ServingModel) {
    let s = model.pool.stats();
    let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
    for (outcome, value) in [
        ("done", load(&s.images_done)),
        ("failed", load(&s.images_failed)),
        ("cancelled", load(&s.images_cancelled)),
        ("expired", load(&s.images_expired)),
        ("rejected", load(&s.images_rejected)),
    ] {
        metrics::counter!(names::IMAGES_TOTAL, "outcome" => outcome).absolute(value);
    }
    metrics::counter!(names::ENGINE_BATCHES_TOTAL).absolute(load(&s.batches_run));
    metrics::gauge!(names::IMAGES_IN_FLIGHT).set(s.images_in_pool.load(Ordering::Relaxed) as f64);
    metrics::gauge!(names::QUEUE_SLOTS_IN_USE).set(model.pool.slots_in_use() as f64);
}
