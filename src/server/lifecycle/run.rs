//! [`serve`]: the server's run from start to end, as a sequence of named steps (see
//! [`crate::server::lifecycle`] for the story they tell).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpListener;

use super::drain::stop_future;
use super::health_port::{bind_health_port, serve_health_port};
use super::loading::spawn_model_loading;
use super::router::{grpc_routes, serve_grpc};
use super::server_error::ServerError;
use super::shutdown::answered_within;
use crate::server::config::ServerConfig;
use crate::server::connections::tls::{ReloadingTls, RELOAD_INTERVAL};
use crate::server::http::serve::serve_http;
use crate::server::http::{http_router, HttpState};
use crate::server::layers::auth::Authenticate;
use crate::server::layers::calls_in_flight::CallsInFlightLimitLayer;
use crate::server::metrics;
use crate::server::pipeline::Pipeline;
use crate::server::services::health::HealthStatuses;
use crate::server::services::reflection::reflection_routes;
use crate::server::serving_model::{ModelLoadError, ModelSlot, ServingModel};

/// Serve on `listener` until `shutdown` completes.
///
/// `load` runs on a blocking thread while the server already answers health checks (NOT_SERVING)
/// and Classify calls (UNAVAILABLE, "model is loading"). If it fails, the server stops with
/// [`ServerError::Load`].
pub async fn serve<L, S>(
    listener: TcpListener,
    config: ServerConfig,
    load: L,
    shutdown: S,
) -> Result<(), ServerError>
where
    L: FnOnce() -> Result<ServingModel, ModelLoadError> + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    // Everything that can refuse to start, before anything is served.
    start_metrics_endpoint(&config)?;
    let authenticate = Authenticate::from_token_file(config.auth_token_file.as_deref())?;
    let (health, health_service) = HealthStatuses::at_startup().await;
    let reflection = reflection_routes(config.reflection, &authenticate)?;
    let tls = config.tls.clone().map(ReloadingTls::load).transpose()?;
    let health_listener = bind_health_port(config.health_listen).await?;
    let http_listener = bind_http_port(config.http_listen).await?;

    // The services over one pipeline; the model comes into its slot in the background.
    let slot: ModelSlot = Arc::new(OnceLock::new());
    let pipeline = Pipeline::new(Arc::clone(&slot), config.clone());
    let message_budget = Arc::clone(pipeline.memory_budget());
    let calls_in_flight = CallsInFlightLimitLayer::new(config.max_in_flight);
    let http_router = http_listener.as_ref().map(|_| {
        http_router(HttpState::new(
            pipeline.clone(),
            authenticate.clone(),
            calls_in_flight.places(),
            calls_in_flight.limit(),
        ))
    });
    let routes = grpc_routes(
        reflection,
        &pipeline,
        &config,
        health_service.clone(),
        authenticate,
    );
    let load_failed = spawn_model_loading(load, slot, pipeline.clone(), health.clone(), &config);
    log_listening(&listener, &config);

    // Serve until the shutdown signal and the drain (or a failed load), then for at most the
    // shutdown timeout.
    let health_port = health_listener.map(|l| serve_health_port(l, health_service));
    let tls_watch = tls.as_ref().map(|t| t.watch(RELOAD_INTERVAL));
    let (stop, stopping) = stop_future(shutdown, load_failed, pipeline, health, config.drain_delay);
    // One stop for both ports: the gRPC server's future and the HTTP accept loop.
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        stop.await;
        let _ = stopped_tx.send(true);
    };
    let http_port = http_listener.zip(http_router).map(|(listener, router)| {
        let mut stopped = stopped_rx.clone();
        let stop = Box::pin(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        tokio::spawn(serve_http(
            listener,
            tls.clone(),
            router,
            config.max_concurrent_streams,
            stop,
        ))
    });
    let server = serve_grpc(
        listener,
        tls,
        &config,
        routes,
        message_budget,
        calls_in_flight,
        stop,
    );
    let all_answered = answered_within(server, stopping.begun, config.shutdown_timeout).await?;
    if let Some(http) = http_port {
        // The gRPC port answered its calls (or the shutdown timeout passed): the HTTP port gets
        // what is left of that timeout.
        let _ = tokio::time::timeout(config.shutdown_timeout, http).await;
    }

    for task in [health_port, tls_watch].into_iter().flatten() {
        task.abort();
    }
    finish(stopping.load_error, all_answered)
}

/// Bind the HTTP port, if `--http-listen` asks for one.
async fn bind_http_port(
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::HttpListen { addr, source })?;
    tracing::info!(addr = ?listener.local_addr().ok(), "HTTP server listening (OIP v2 REST, /v1/classify, the page at /)");
    Ok(Some(listener))
}

/// The Prometheus endpoint, if `--metrics-listen` asks for one.
fn start_metrics_endpoint(config: &ServerConfig) -> Result<(), ServerError> {
    if let Some(addr) = config.metrics_listen {
        metrics::install(addr).map_err(|e| ServerError::Metrics(e.to_string()))?;
        tracing::info!(%addr, "Prometheus metrics on http://{addr}/metrics");
    }
    Ok(())
}

fn log_listening(listener: &TcpListener, config: &ServerConfig) {
    let local = listener.local_addr().ok();
    tracing::info!(
        addr = ?local,
        tls = config.tls.is_some(),
        mutual_tls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        "gRPC server listening (health NOT_SERVING until the model is ready)"
    );
}

/// The server's result: the load error if that is what stopped it, else done.
fn finish(
    mut load_error: tokio::sync::oneshot::Receiver<ServerError>,
    all_answered: bool,
) -> Result<(), ServerError> {
    if let Ok(err) = load_error.try_recv() {
        return Err(err);
    }
    if all_answered {
        tracing::info!("server stopped; all in-flight requests answered");
    }
    Ok(())
}
