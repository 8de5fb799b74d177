//! The drain: on the shutdown signal health turns NOT_SERVING (so load balancers stop routing)
//! and the server keeps answering for the drain delay (`--drain-delay-secs`); then health Watch
//! streams are ended and tonic's graceful shutdown begins: new connections are refused and open
//! calls finish (bounded by [`super::shutdown`]). A failed model load stops the server the same
//! way, without the drain.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tonic_health::ServingStatus;

use super::server_error::ServerError;
use crate::server::pipeline::Pipeline;
use crate::server::services::health::HealthStatuses;

/// What the stop future leaves behind for [`crate::server::serve`].
pub struct Stopping {
    /// Fires when graceful shutdown begins (after the drain, or on a failed load).
    pub begun: oneshot::Receiver<()>,
    /// The load error, when that is what stopped the server.
    pub load_error: oneshot::Receiver<ServerError>,
}

/// The future tonic's graceful shutdown waits for: `shutdown` then the drain, or a failed load
/// (`load_failed`).
pub fn stop_future<S>(
    shutdown: S,
    load_failed: oneshot::Receiver<ServerError>,
    pipeline: Pipeline,
    health: HealthStatuses,
    drain_delay: Duration,
) -> (impl Future<Output = ()> + Send, Stopping)
where
    S: Future<Output = ()> + Send + 'static,
{
    let (load_error_tx, load_error) = oneshot::channel();
    let (begun_tx, begun) = oneshot::channel();
    let stop = async move {
        tokio::select! {
            _ = shutdown => drain(pipeline, health, drain_delay).await,
            Ok(err) = load_failed => {
                tracing::error!(error = %err, "stopping: the model could not be loaded");
                let _ = load_error_tx.send(err);
            }
        }
        let _ = begun_tx.send(());
    };
    (stop, Stopping { begun, load_error })
}

/// Not ready any more; keep answering for `delay`; then end the health Watch streams.
async fn drain(pipeline: Pipeline, mut health: HealthStatuses, delay: Duration) {
    tracing::info!("shutdown requested: health NOT_SERVING, draining in-flight requests");
    pipeline.start_draining();
    health.set_readiness(ServingStatus::NotServing).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    health.end_watches().await;
}
