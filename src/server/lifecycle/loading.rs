//! Loading the model in the background while the server already answers: health NOT_SERVING,
//! Classify UNAVAILABLE ("model is loading"). When the loader is done the memory budget is fixed,
//! the model's metrics start, the model goes into the slot, health turns SERVING, and the engine
//! watchdog takes over; a failed load ends the server.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tonic_health::ServingStatus;

use super::server_error::ServerError;
use super::watchdog::watch_engine;
use crate::server::config::ServerConfig;
use crate::server::memory_budget;
use crate::server::metrics;
use crate::server::pipeline::Pipeline;
use crate::server::services::health::HealthStatuses;
use crate::server::serving_model::{ModelLoadError, ModelSlot, ServingModel};

/// Run `load` on a blocking thread, then serve its model (see the module docs). The returned
/// receiver gets the error if loading fails.
pub fn spawn_model_loading<L>(
    load: L,
    slot: ModelSlot,
    pipeline: Pipeline,
    health: HealthStatuses,
    config: &ServerConfig,
) -> oneshot::Receiver<ServerError>
where
    L: FnOnce() -> Result<ServingModel, ModelLoadError> + Send + 'static,
{
    let (fail_tx, fail_rx) = oneshot::channel();
    let budget_setting = config.memory_budget;
    let hang_timeout = config.engine_hang_timeout;
    tokio::spawn(async move {
        let started = Instant::now();
        match tokio::task::spawn_blocking(load).await {
            Ok(Ok(model)) => {
                let model = start_serving(model, started, &slot, &pipeline, budget_setting);
                health.set_readiness(ServingStatus::Serving).await;
                watch_engine(model, pipeline, health, hang_timeout).await;
            }
            Ok(Err(e)) => {
                let _ = fail_tx.send(ServerError::Load(e));
            }
            Err(e) => {
                let _ = fail_tx.send(ServerError::LoaderTask(e.to_string()));
            }
        }
    });
    fail_rx
}

/// The loaded model into service: the memory budget (the default is what is left of the memory
/// limit with the model resident), its metrics (load time: since `load_started`), the slot.
fn start_serving(
    model: ServingModel,
    load_started: Instant,
    slot: &ModelSlot,
    pipeline: &Pipeline,
    budget_setting: memory_budget::BudgetSetting,
) -> Arc<ServingModel> {
    tracing::info!(
        model = %model.info.model,
        backend = %model.info.backend,
        instances = model.info.engine_instances,
        seconds = load_started.elapsed().as_secs_f32(),
        "model loaded and warmed up; serving"
    );
    let (limit, origin) = memory_budget::resolve(budget_setting);
    pipeline.memory_budget().set_limit(limit);
    tracing::info!(
        memory_budget_bytes = limit,
        origin = %origin,
        "memory budget: {}",
        limit.map_or_else(|| "no limit".to_string(), |l| format!("{l} bytes"))
    );
    let model = Arc::new(model);
    metrics::watch_model(&model, load_started.elapsed());
    let _ = slot.set(Arc::clone(&model));
    model
}
