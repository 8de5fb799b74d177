//! The engine watchdog: every [`WATCHDOG_INTERVAL`], [`crate::scheduler::EnginePool::health`]; a
//! hung or failing engine turns health (`""`, the classifier) and OIP readiness NOT_SERVING — a
//! hung one the liveness service too — and a recovered one turns them back. Ends when shutdown
//! begins.

use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;

use crate::scheduler::EngineHealth;
use crate::server::pipeline::Pipeline;
use crate::server::services::health::HealthStatuses;
use crate::server::serving_model::ServingModel;

/// How often the engine watchdog looks.
pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);

/// Watch `model`'s engine until shutdown begins; `hang_timeout` (`--engine-hang-timeout`) is how
/// long a batch may run before the engine counts as hung (`None`: never).
pub async fn watch_engine(
    model: Arc<ServingModel>,
    pipeline: Pipeline,
    health: HealthStatuses,
    hang_timeout: Option<Duration>,
) {
    let hang_after = hang_timeout.unwrap_or(Duration::MAX);
    let mut last = EngineHealth::Ok;
    let mut tick = tokio::time::interval(WATCHDOG_INTERVAL);
    loop {
        tick.tick().await;
        if pipeline.is_draining() {
            return;
        }
        let engine = model.pool.health(hang_after);
        if std::mem::discriminant(&engine) == std::mem::discriminant(&last) {
            continue;
        }
        let (ready, live) = statuses_for(&engine);
        pipeline.set_engine_ok(matches!(engine, EngineHealth::Ok));
        if pipeline.is_draining() {
            return;
        }
        health.set_readiness(ready).await;
        health.set_liveness(live).await;
        last = engine;
    }
}

/// The readiness and liveness statuses for what the engine pool reports (logged).
fn statuses_for(engine: &EngineHealth) -> (ServingStatus, ServingStatus) {
    match engine {
        EngineHealth::Ok => {
            tracing::info!("engine recovered: health SERVING");
            (ServingStatus::Serving, ServingStatus::Serving)
        }
        EngineHealth::Hung { instance, running } => {
            tracing::error!(
                instance,
                seconds = running.as_secs_f32(),
                "engine instance hung: health and liveness NOT_SERVING"
            );
            (ServingStatus::NotServing, ServingStatus::NotServing)
        }
        EngineHealth::Failing { batches } => {
            tracing::error!(batches, "engine batches keep failing: health NOT_SERVING");
            (ServingStatus::NotServing, ServingStatus::Serving)
        }
    }
}
