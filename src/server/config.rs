//! [`ServerConfig`], the server settings that do not depend on the model, and the default of
//! every one of them (each `DEFAULT_*` is the default of the flag its doc names). The settings of
//! the model itself are [`crate::server::ModelOptions`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::server::connections::tls::TlsFiles;
use crate::server::memory_budget::BudgetSetting;

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

/// Default time one engine batch may run before the engine counts as hung (`--engine-hang-timeout`).
pub const DEFAULT_ENGINE_HANG_TIMEOUT: Option<Duration> = Some(Duration::from_secs(120));

/// Default most calls in flight at once (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Default `--message-timeout`: 30 s.
pub const DEFAULT_MESSAGE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

/// Default `--idle-timeout`: 5 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(300));

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
    /// Address of the Prometheus endpoint (`--metrics-listen`, `GET /metrics`, see
    /// [`crate::server::metrics`]); `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer tokens every RPC but health must carry (`--auth-token-file`, see
    /// [`crate::server::layers::auth`]); `None`: no authentication.
    pub auth_token_file: Option<PathBuf>,
    /// Deadline of a Classify / ClassifyBatch call whose client sent no `grpc-timeout`; when it sent
    /// one, the smaller of the two applies. `None`: only the client's.
    pub request_timeout: Option<Duration>,
    /// TLS on the gRPC port (`--tls-cert`, `--tls-key`, `--tls-client-ca`, see
    /// [`crate::server::connections::tls`]); `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// A second, plaintext port serving only `grpc.health.v1` (`--health-listen`): Kubernetes'
    /// gRPC probes cannot present TLS client certificates or tokens.
    pub health_listen: Option<SocketAddr>,
    /// The HTTP port (`--http-listen`, see [`crate::server::http`]): OIP v2 over HTTP/JSON,
    /// `/v1/classify` and the page at `/`; `None`: no HTTP port.
    pub http_listen: Option<SocketAddr>,
    /// Serve server reflection (`--no-reflection` turns it off). With tokens it needs a token too.
    pub reflection: bool,
    /// Most calls in flight at once (`--max-in-flight`, see
    /// [`crate::server::layers::calls_in_flight`]); more get RESOURCE_EXHAUSTED at once. Health
    /// is exempt.
    pub max_in_flight: usize,
    /// The global memory budget (`--memory-budget`, see [`crate::server::memory_budget`]): every
    /// image is charged its encoded size plus its preprocessing working set before it is decoded;
    /// what does not fit is answered RESOURCE_EXHAUSTED at once.
    pub memory_budget: BudgetSetting,
    /// How long a request message may take to arrive (`--message-timeout`, see
    /// [`crate::server::layers::message_arrival`]): a unary call's request from the call's start,
    /// a stream's message from its first byte; past it, DEADLINE_EXCEEDED. `None`: no limit.
    pub message_timeout: Option<Duration>,
    /// A connection with no call open for this long is closed (`--idle-timeout`, see
    /// [`crate::server::connections::idle`]). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A batch running longer than this makes the engine hung: health and readiness NOT_SERVING,
    /// the liveness service too (`--engine-hang-timeout`). `None`: no hang detection.
    pub engine_hang_timeout: Option<Duration>,
    /// Refusals at the headers answered at once per second (`--max-refusal-rate`, see
    /// [`crate::server::pipeline::refusal_pacing`]); more wait their turn. `None`: all at once.
    pub max_refusal_rate: Option<u32>,
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
            http_listen: None,
            reflection: true,
            engine_hang_timeout: DEFAULT_ENGINE_HANG_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            memory_budget: BudgetSetting::Auto,
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_refusal_rate: Some(
                crate::server::pipeline::refusal_pacing::DEFAULT_MAX_REFUSAL_RATE,
            ),
        }
    }
}
