//! The gRPC front: `swin.v1.Classifier`, `grpc.health.v1.Health`, server reflection (v1 and v1alpha),
//! message size limits and graceful shutdown.
//!
//! Lifecycle: the listener is bound and health answers NOT_SERVING while the model loads and warms up;
//! then health turns SERVING for `""` and `swin.v1.Classifier`. On the shutdown signal health turns
//! NOT_SERVING again (so load balancers stop routing) and the server keeps answering for the drain
//! delay; then health Watch streams are ended, new connections are refused, and in-flight requests
//! finish before [`serve`] returns, or are closed once the shutdown timeout has passed: a client that
//! holds a stream open cannot keep the process alive.
//!
//! Deadlines (`deadline.rs`): every call honours the client's `grpc-timeout`, Classify and
//! ClassifyBatch also the server default `--request-timeout`; an expired call is answered
//! DEADLINE_EXCEEDED and its work is dropped at every stage.

pub mod auth;
mod classifier;
pub mod connection;
pub mod deadline;
pub mod in_flight;
pub mod loader;
pub mod memory_budget;
pub mod message_timeout;
pub mod metrics;
mod model_info;
pub mod oip;
pub mod pipeline;
pub mod request_id;
pub mod statistics;
mod status;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;

pub use classifier::{ClassifierService, DEFAULT_TOP_K};
pub use deadline::{CallDeadline, DeadlineLayer};
pub use status::{engine_status, preprocess_status, scheduler_status};

use crate::postprocess::Labels;
use crate::preprocess::PreprocessConfig;
use crate::proto;
use crate::scheduler::EnginePool;

/// gRPC service name of the classifier, as health reports it.
pub const CLASSIFIER_SERVICE_NAME: &str = "swin.v1.Classifier";

/// Health service names that say whether the server takes traffic (NOT_SERVING while loading,
/// draining, or while the engine is hung or failing).
const READINESS_SERVICES: [&str; 2] = ["", CLASSIFIER_SERVICE_NAME];

/// Health service name of the liveness check: SERVING unless an engine instance is hung (also
/// while the model loads, so that a slow load does not get the pod restarted).
pub const LIVENESS_SERVICE_NAME: &str = "swin-serve.liveness";

/// Default time one engine batch may run before the engine counts as hung (`--engine-hang-timeout`).
pub const DEFAULT_ENGINE_HANG_TIMEOUT: Option<Duration> = Some(Duration::from_secs(120));

/// How often the engine watchdog looks.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);

/// Default address to listen on (`--listen`).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";

/// Default largest request or response message (`--max-message-bytes`): 32 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 << 20;

/// Default most images in one ClassifyBatch call (`--max-batch-images`).
pub const DEFAULT_MAX_BATCH_IMAGES: usize = 256;

/// Default time to keep answering after SIGTERM with health NOT_SERVING (`--drain-delay-secs`).
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::ZERO;

/// Default bound on the wait for open calls after the drain delay (`--shutdown-timeout`); with the
/// default drain delay it fits Kubernetes' default 30 s termination grace period.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// Default server-side deadline of a Classify / ClassifyBatch call (`--request-timeout`): none, a
/// call is bounded only by the client's `grpc-timeout` if it sent one.
pub const DEFAULT_REQUEST_TIMEOUT: Option<Duration> = None;

/// Default HTTP/2 streams one connection may have open at once (`--max-concurrent-streams`).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;

/// Default age after which a connection is asked to go away (`--max-connection-age`, HTTP/2
/// GOAWAY; clients reconnect, and a Kubernetes Service spreads them over new replicas).
pub const DEFAULT_MAX_CONNECTION_AGE: Option<Duration> = Some(Duration::from_secs(30 * 60));

/// Time the calls of a connection past its age get to finish before it is closed.
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// HTTP/2 PING interval on idle connections, and how long the answer may take before the
/// connection is dropped (dead peers, half-open connections).
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// TCP keepalive on accepted connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Default images decoded at once (`--max-concurrent-decodes`): two per core.
pub fn default_max_concurrent_decodes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// Server settings that do not depend on the model.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Most images one ClassifyBatch call may carry.
    pub max_batch_images: usize,
    /// Images decoded and preprocessed at the same time; more wait their turn. Bounds the memory
    /// that large images can take at once (a decoded image may reach `max_image_pixels · 3` bytes).
    pub max_concurrent_decodes: usize,
    /// After the shutdown signal, keep serving this long with health NOT_SERVING before refusing
    /// new calls (lets Kubernetes take the pod out of its endpoints first).
    pub drain_delay: Duration,
    /// After the drain delay, the longest the server waits for open calls and streams (health
    /// Watch, reflection, a stalled client) before it closes them and returns: shutdown always ends.
    pub shutdown_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once (`--max-concurrent-streams`).
    pub max_concurrent_streams: u32,
    /// Age after which a connection gets GOAWAY (`--max-connection-age`); `None`: never.
    pub max_connection_age: Option<Duration>,
    /// Address of the Prometheus endpoint (`--metrics-listen`, `GET /metrics`, see [`metrics`]);
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer tokens every RPC but health must carry (`--auth-token-file`, see [`auth`]); `None`:
    /// no authentication.
    pub auth_token_file: Option<std::path::PathBuf>,
    /// Deadline of a Classify / ClassifyBatch call whose client sent no `grpc-timeout`; when it sent
    /// one, the smaller of the two applies. `None`: only the client's.
    pub request_timeout: Option<Duration>,
    /// TLS on the gRPC port (`--tls-cert`, `--tls-key`, `--tls-client-ca`, see [`tls`]); `None`:
    /// plaintext.
    pub tls: Option<tls::TlsFiles>,
    /// A second, plaintext port serving only `grpc.health.v1` (`--health-listen`): Kubernetes'
    /// gRPC probes cannot present TLS client certificates or tokens.
    pub health_listen: Option<SocketAddr>,
    /// Serve server reflection (`--no-reflection` turns it off). With tokens it needs a token too.
    pub reflection: bool,
    /// Most calls in flight at once (`--max-in-flight`, see [`in_flight`]); more get
    /// RESOURCE_EXHAUSTED at once. Health is exempt.
    pub max_in_flight: usize,
    /// The global memory budget (`--memory-budget`, see [`memory_budget`]): every image is charged
    /// its encoded size plus its preprocessing working set before it is decoded; what does not fit
    /// is answered RESOURCE_EXHAUSTED at once.
    pub memory_budget: memory_budget::BudgetSetting,
    /// How long a request message may take to arrive (`--message-timeout`, see
    /// [`message_timeout`]): a unary call's request from the call's start, a stream's message
    /// from its first byte; past it, DEADLINE_EXCEEDED. `None`: no limit.
    pub message_timeout: Option<Duration>,
    /// A connection with no call open for this long is closed (`--idle-timeout`, see
    /// [`connection`]). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A batch running longer than this makes the engine hung: health and readiness NOT_SERVING,
    /// the liveness service too (`--engine-hang-timeout`). `None`: no hang detection.
    pub engine_hang_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_batch_images: DEFAULT_MAX_BATCH_IMAGES,
            max_concurrent_decodes: default_max_concurrent_decodes(),
            drain_delay: DEFAULT_DRAIN_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            auth_token_file: None,
            metrics_listen: None,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            tls: None,
            health_listen: None,
            reflection: true,
            engine_hang_timeout: DEFAULT_ENGINE_HANG_TIMEOUT,
            max_in_flight: in_flight::DEFAULT_MAX_IN_FLIGHT,
            memory_budget: memory_budget::BudgetSetting::Auto,
            message_timeout: message_timeout::DEFAULT_MESSAGE_TIMEOUT,
            idle_timeout: connection::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Most characters of a client-supplied string (request id, header value) written to a log line.
const LOG_TEXT_MAX_CHARS: usize = 128;

/// A client-supplied string as a log line may hold it: control characters and quotes escaped (no
/// forged log lines, no terminal escapes) and cut to [`LOG_TEXT_MAX_CHARS`] characters, with the
/// original length noted when cut.
pub fn untrusted(text: &str) -> String {
    let total = text.chars().count();
    let mut out: String = text
        .chars()
        .take(LOG_TEXT_MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if total > LOG_TEXT_MAX_CHARS {
        out.push_str(&format!("…({total} chars)"));
    }
    out
}

/// A loaded, warmed-up model ready to serve.
pub struct ServingModel {
    /// The engine instances and their queue.
    pub pool: EnginePool,
    /// Decode limits and the eval transform.
    pub preprocess: PreprocessConfig,
    /// Class names.
    pub labels: Labels,
    /// What GetModelInfo answers (also gives the model name and class count).
    pub info: proto::ModelInfo,
    /// What the model has done (OIP ModelStatistics).
    pub stats: statistics::InferenceStats,
    /// The pool's dynamic-batching delay (`--max-queue-delay`; OIP ModelConfig reports it).
    pub max_queue_delay: Duration,
}

/// Error from the model loader supplied to [`serve`].
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The model could not be loaded.
    #[error("model loading failed: {0}")]
    Load(LoadError),
    /// The gRPC transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptor set.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The loader task panicked or was cancelled.
    #[error("model loader task failed: {0}")]
    LoaderTask(String),
    /// The metrics endpoint could not be started.
    #[error("metrics endpoint: {0}")]
    Metrics(String),
    /// The token file (`--auth-token-file`) cannot be used.
    #[error("authentication: {0}")]
    Auth(#[from] auth::AuthError),
    /// The TLS files cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The health port cannot be bound.
    #[error("cannot listen on --health-listen {addr}: {source}")]
    HealthListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The model slot shared by the service and the loader: empty until loading is done.
pub type ModelSlot = Arc<OnceLock<Arc<ServingModel>>>;

/// Bind `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The connections of `listener`, with TCP_NODELAY and [`TCP_KEEPALIVE`] set on each.
fn tcp_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

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
    L: FnOnce() -> Result<ServingModel, LoadError> + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    if let Some(addr) = config.metrics_listen {
        metrics::install(addr).map_err(|e| ServerError::Metrics(e.to_string()))?;
        tracing::info!(%addr, "Prometheus metrics on http://{addr}/metrics");
    }
    let token_auth = match &config.auth_token_file {
        Some(path) => Some(auth::TokenAuth::from_file(path)?),
        None => None,
    };
    // Every service but health (probes call it without credentials) checks the token.
    let authenticate = move |request: tonic::Request<()>| match &token_auth {
        Some(a) => a.check(request),
        None => Ok(request),
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in READINESS_SERVICES {
        health_reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    health_reporter
        .set_service_status(LIVENESS_SERVICE_NAME, ServingStatus::Serving)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1 = config
        .reflection
        .then(|| InterceptedService::new(reflection_v1, authenticate.clone()));
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let reflection_v1alpha = config
        .reflection
        .then(|| InterceptedService::new(reflection_v1alpha, authenticate.clone()));
    let tls = match &config.tls {
        Some(files) => Some(tls::ReloadingTls::load(files.clone())?),
        None => None,
    };
    let health_listener = match config.health_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::HealthListen { addr, source })?,
        ),
        None => None,
    };

    let slot: ModelSlot = Arc::new(OnceLock::new());
    let pipeline = pipeline::Pipeline::new(Arc::clone(&slot), config.clone());
    let message_budget = Arc::clone(pipeline.memory_budget());
    let inference = oip::InferenceService::new(pipeline.clone());
    let inference =
        proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer::new(inference)
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes);
    let inference = InterceptedService::new(inference, authenticate.clone());
    let classifier = ClassifierService::new(pipeline.clone());
    let classifier = proto::classifier_server::ClassifierServer::new(classifier)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let classifier = InterceptedService::new(classifier, authenticate);

    // Load in the background; flip health when ready; a failure ends the server.
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<ServerError>();
    let loader_reporter = health_reporter.clone();
    let loader_slot = Arc::clone(&slot);
    let watchdog_pipeline = pipeline.clone();
    let budget_setting = config.memory_budget;
    let hang_timeout = config.engine_hang_timeout;
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(load).await {
            Ok(Ok(model)) => {
                tracing::info!(
                    model = %model.info.model,
                    backend = %model.info.backend,
                    instances = model.info.engine_instances,
                    seconds = started.elapsed().as_secs_f32(),
                    "model loaded and warmed up; serving"
                );
                // The default budget is what is left of the memory limit with the model resident.
                let (limit, origin) = memory_budget::resolve(budget_setting);
                watchdog_pipeline.memory_budget().set_limit(limit);
                tracing::info!(
                    memory_budget_bytes = limit,
                    origin = %origin,
                    "memory budget: {}",
                    limit.map_or_else(|| "no limit".to_string(), |l| format!("{l} bytes"))
                );
                let model = Arc::new(model);
                metrics::watch_model(&model, started.elapsed());
                let _ = loader_slot.set(Arc::clone(&model));
                for name in READINESS_SERVICES {
                    loader_reporter
                        .set_service_status(name, ServingStatus::Serving)
                        .await;
                }
                watch_engine(model, watchdog_pipeline, loader_reporter, hang_timeout).await;
            }
            Ok(Err(e)) => {
                let _ = fail_tx.send(ServerError::Load(e));
            }
            Err(e) => {
                let _ = fail_tx.send(ServerError::LoaderTask(e.to_string()));
            }
        }
    });

    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, tls = tls.is_some(), mutual_tls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()), "gRPC server listening (health NOT_SERVING until the model is ready)");

    // The plaintext health port: health only, the same statuses; it goes with the server.
    let health_task = health_listener.map(|listener| {
        let addr = listener.local_addr().ok();
        tracing::info!(addr = ?addr, "plaintext health port (grpc.health.v1 only)");
        let health = health_service.clone();
        tokio::spawn(async move {
            let incoming = tcp_incoming(listener);
            let served = tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "health port failed");
            }
        })
    });
    let tls_watch = tls.as_ref().map(|t| t.watch(tls::RELOAD_INTERVAL));

    let mut drain_reporter = health_reporter.clone();
    let drain_delay = config.drain_delay;
    let (load_failed_tx, mut load_failed_rx) = tokio::sync::oneshot::channel::<ServerError>();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {
                tracing::info!("shutdown requested: health NOT_SERVING, draining in-flight requests");
                pipeline.start_draining();
                for name in READINESS_SERVICES {
                    drain_reporter.set_service_status(name, ServingStatus::NotServing).await;
                }
                if !drain_delay.is_zero() {
                    tokio::time::sleep(drain_delay).await;
                }
                // End every health Watch stream (their senders go with the entries; watchers have
                // seen NOT_SERVING): a client watching health must not hold the shutdown open.
                for name in READINESS_SERVICES.into_iter().chain([LIVENESS_SERVICE_NAME]) {
                    drain_reporter.clear_service_status(name).await;
                }
            }
            Ok(err) = fail_rx => {
                tracing::error!(error = %err, "stopping: the model could not be loaded");
                let _ = load_failed_tx.send(err);
            }
        }
        let _ = stopping_tx.send(());
    };

    // Deadlines are ours, not tonic's `Server::timeout` (which answers CANCELLED): see deadline.rs.
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT));
    if let Some(age) = config.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE);
    }
    let router = builder
        .layer(in_flight::InFlightLimitLayer::new(config.max_in_flight))
        .layer(message_timeout::CallGuardLayer::new(
            config.message_timeout,
            Some(message_budget),
        ))
        .layer(request_id::RequestIdLayer)
        .layer(DeadlineLayer::new(config.request_timeout))
        .add_service(health_service)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(classifier)
        .add_service(inference);
    let server: std::pin::Pin<
        Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            connection::tracked(
                tls::incoming(tcp_incoming(listener), tls),
                config.idle_timeout,
            ),
            stop,
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(
            connection::tracked(tcp_incoming(listener), config.idle_timeout),
            stop,
        )),
    };
    // Graceful shutdown waits for every open call; past `shutdown_timeout` after it began, the
    // remaining ones (a stalled upload, a reflection stream left open) are closed.
    let shutdown_timeout = config.shutdown_timeout;
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(shutdown_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let all_answered = tokio::select! {
        served = server => {
            served?;
            true
        }
        _ = deadline => {
            tracing::warn!(
                seconds = shutdown_timeout.as_secs_f32(),
                "shutdown timeout: closing the calls still open"
            );
            false
        }
    };

    for task in [health_task, tls_watch].into_iter().flatten() {
        task.abort();
    }
    if let Ok(err) = load_failed_rx.try_recv() {
        return Err(err);
    }
    if all_answered {
        tracing::info!("server stopped; all in-flight requests answered");
    }
    Ok(())
}

/// The engine watchdog: every [`WATCHDOG_INTERVAL`], [`EnginePool::health`]; a hung or failing
/// engine turns health (`""`, the classifier) and OIP readiness NOT_SERVING — a hung one the
/// liveness service too — and a recovered one turns them back. Ends when shutdown begins.
async fn watch_engine(
    model: Arc<ServingModel>,
    pipeline: pipeline::Pipeline,
    reporter: tonic_health::server::HealthReporter,
    hang_timeout: Option<Duration>,
) {
    use crate::scheduler::EngineHealth;
    let hang_after = hang_timeout.unwrap_or(Duration::MAX);
    let mut last = EngineHealth::Ok;
    let mut tick = tokio::time::interval(WATCHDOG_INTERVAL);
    loop {
        tick.tick().await;
        if pipeline.is_draining() {
            return;
        }
        let health = model.pool.health(hang_after);
        if std::mem::discriminant(&health) == std::mem::discriminant(&last) {
            continue;
        }
        let (ready, live) = match &health {
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
        };
        pipeline.set_engine_ok(matches!(health, EngineHealth::Ok));
        if pipeline.is_draining() {
            return;
        }
        for name in READINESS_SERVICES {
            reporter.set_service_status(name, ready).await;
        }
        reporter
            .set_service_status(LIVENESS_SERVICE_NAME, live)
            .await;
        last = health;
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        assert_eq!(untrusted("req-1"), "req-1");
        assert_eq!(
            untrusted("a\nINFO forged\u{1b}[2J"),
            "a\\nINFO forged\\u{1b}[2J"
        );
        let long = "x".repeat(10_000);
        let shown = untrusted(&long);
        assert!(shown.starts_with(&"x".repeat(128)) && shown.ends_with("…(10000 chars)"));
        assert!(shown.chars().count() < 150);
    }
}
