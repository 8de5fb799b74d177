//! Logs and traces: the process's `tracing` subscriber.
//!
//! * **Logs** (`--log-format text|json`, `RUST_LOG`): events only, to stderr, as they always were
//!   (spans are not shown in log lines).
//! * **Traces** (`--otlp-endpoint URL`, off by default): the spans of the `swin_serve` crate are
//!   exported over OTLP/gRPC (`opentelemetry-otlp` on the tonic we already use) in batches, with
//!   service name [`SERVICE_NAME`]. Each call has a server span ([`rpc_span`]) whose parent is the
//!   caller's W3C `traceparent` (and `tracestate`) metadata; inside it `preprocess`, `queue` (the
//!   wait for an engine instance), `engine.infer` (the forward pass, one per image, on the engine
//!   thread) and `postprocess`; one `engine.batch` span per engine batch, under the first image's
//!   `engine.infer`, links every request span of its batch.
//!
//! [`init`] installs the subscriber; the [`Telemetry`] it returns flushes the exporter on
//! [`Telemetry::shutdown`].

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "swin-serve";

/// Target prefix of the spans that are exported (this crate's).
const TRACED_TARGET: &str = "swin_serve";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target` and the event's fields.
    Json,
}

/// Why logs or traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint URL, TLS settings).
    #[error("OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global subscriber was already installed.
    #[error("cannot install the log/trace subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// Flushing or shutting down the exporter failed.
    #[error("flushing traces: {0}")]
    Shutdown(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// A tracer provider exporting to the OTLP/gRPC collector at `endpoint` (e.g.
/// `http://otel-collector:4317`) in batches, on a thread of its own.
///
/// Must be called inside a Tokio runtime (the tonic channel is created here), and that runtime must
/// outlive [`Telemetry::shutdown`].
pub fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(provider_builder().with_batch_exporter(exporter).build())
}

/// A tracer-provider builder with this service's resource (`service.name` = [`SERVICE_NAME`]);
/// add an exporter and build (tests use an in-memory one).
pub fn provider_builder() -> opentelemetry_sdk::trace::TracerProviderBuilder {
    SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(SERVICE_NAME)
            .build(),
    )
}

/// The installed subscriber's trace side: flush it before the process exits.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn traces_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Export the spans still buffered and stop the exporter (with the OTLP exporter, while the
    /// Tokio runtime it was built in still runs).
    pub fn shutdown(self) -> Result<(), TelemetryError> {
        match self.provider {
            Some(provider) => Ok(provider.shutdown()?),
            None => Ok(()),
        }
    }
}

/// Install the global subscriber: log lines as `format` (filtered by `RUST_LOG`, default `info`),
/// and, with a `provider`, this crate's spans exported through it (level `info` and above) with the
/// W3C trace-context propagator (`traceparent`, `tracestate`).
pub fn init(
    format: LogFormat,
    provider: Option<SdkTracerProvider>,
) -> Result<Telemetry, TelemetryError> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans are for the trace exporter: log lines stay as they were, without span context.
    let events_only = filter_fn(|meta| meta.is_event());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => fmt.with_filter(env.and(events_only)).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_filter(env.and(events_only))
            .boxed(),
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            .with_filter(Targets::new().with_target(TRACED_TARGET, LevelFilter::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    Ok(Telemetry { provider })
}

/// The server span of one call to `path` (`/package.Service/Method`) with request id
/// `request_id`, child of the caller's `traceparent` when `headers` carry one (and traces are on).
pub fn rpc_span(
    path: &str,
    request_id: &str,
    headers: &tonic::codegen::http::HeaderMap,
) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let method = path.trim_start_matches('/');
    let (service, name) = method.split_once('/').unwrap_or((method, ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = method,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = name,
        request_id
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(headers))
        });
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// Reads W3C trace-context fields from HTTP/2 headers (gRPC metadata).
struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
