//! `swin-serve`: the gRPC server (`serve`) and a small client (`classify`, `info`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use swin_serve::client::engine_bench::{self, EngineBenchOptions};
use swin_serve::client::load::{self, Bearer as BearerToken, LoadOptions, Protocol};
use swin_serve::engine::cpu::{default_threads, CpuOptions};
use swin_serve::engine::mlu::{MluOptions, DEFAULT_DEVICE};
use swin_serve::engine::{BackendKind, BackendOptions, DEFAULT_INSTANCES, DEFAULT_MAX_BATCH};
use swin_serve::model::source::{model_file_in, CHECKPOINT_EXTENSIONS};
use swin_serve::model::{download, ConfigHints, SwinV2Config, WeightsSource};
use swin_serve::preprocess::PIL_MAX_IMAGE_PIXELS;
use swin_serve::proto;
use swin_serve::scheduler::{
    DEFAULT_MAX_QUEUE_DELAY, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_QUEUE_CAPACITY,
};
use swin_serve::server::{
    self, check_model_name, load_serving_model, ModelOptions, ServerConfig, TlsFiles,
    DEFAULT_DRAIN_DELAY, DEFAULT_ENGINE_HANG_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_BATCH_IMAGES, DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_CONNECTION_AGE,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TOP_K,
};
use swin_serve::telemetry::{self, LogFormat};

/// Server the `classify` and `info` clients talk to by default.
const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:50051";

/// `bench --server`: calls measured per run (`--requests`) and sent before it (`--warmup`).
const DEFAULT_BENCH_REQUESTS: usize = 100;
const DEFAULT_BENCH_WARMUP_CALLS: usize = 5;

/// Largest message the clients send or accept (an image larger than the server's limit gets its
/// OUT_OF_RANGE answer rather than a client-side error).
const CLIENT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// `println!` that does not panic when stdout is a closed pipe (`swin-serve info | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "swin-serve",
    version,
    about = "Swin-Transformer V2 image classification over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON objects (one per line: timestamp, level, target, fields).
    /// `RUST_LOG` picks what is logged (default info; the per-call lines are target
    /// swin_serve::access).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SWIN_SERVE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
enum Command {
    /// Load the model and serve `swin.v1.Classifier`, health and reflection.
    Serve(ServeArgs),
    /// Classify image files with a running server and print top-1 / top-5.
    Classify(ClassifyArgs),
    /// Print GetModelInfo of a running server.
    Info(InfoArgs),
    /// With --server: load a running server (closed loop: N callers, each sending its next call
    /// when answered) and print throughput and latency quantiles, per protocol and concurrency.
    /// Without: measure the local CPU engine (latency, img/s, GFLOP/s, peak RSS, --profile).
    Bench(BenchArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Checkpoint (.pth official format or .safetensors); with --backend mlu, the .magicmind model.
    /// A directory holding exactly one such file names that file (KServe: `--model /mnt/models`).
    /// Without it (and without --random-weights) the official SwinV2-T checkpoint is downloaded.
    #[arg(long, env = "SWIN_SERVE_MODEL")]
    model: Option<PathBuf>,
    /// Name the model is served under (OIP / KServe / Triton clients address it by this name;
    /// GetModelInfo and metrics report it). Default: the model's own name, e.g.
    /// swinv2_tiny_patch4_window8_256.
    #[arg(long, env = "SWIN_SERVE_MODEL_NAME")]
    model_name: Option<String>,
    /// Serve deterministic random weights (smoke tests, benchmarks); predictions are meaningless.
    #[arg(
        long,
        env = "SWIN_SERVE_RANDOM_WEIGHTS",
        value_name = "SEED",
        conflicts_with = "model"
    )]
    random_weights: Option<u64>,
    /// Address to listen on.
    #[arg(long, env = "SWIN_SERVE_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Engine instances (CPU model replicas sharing weights, or MagicMind contexts + queues).
    #[arg(long, env = "SWIN_SERVE_INSTANCES", default_value_t = DEFAULT_INSTANCES)]
    instances: usize,
    /// Threads per CPU instance [default: the cores this process may use / --instances, at least 1].
    #[arg(long, env = "SWIN_SERVE_THREADS")]
    threads: Option<usize>,
    /// Largest batch one instance runs at once (queued images are batched up to this).
    #[arg(long, env = "SWIN_SERVE_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// Seconds a free engine instance may wait for more images to fill its batch (up to
    /// --max-batch; never more than half the time left before a held image's deadline). 0: run
    /// what is queued at once.
    #[arg(long, env = "SWIN_SERVE_MAX_QUEUE_DELAY_SECS", value_name = "SECONDS", default_value_t = DEFAULT_MAX_QUEUE_DELAY.as_secs_f64())]
    max_queue_delay: f64,
    /// Seconds an image may be expected to wait for a free instance: when the images already
    /// admitted × the recent engine time per image / instances is longer, it gets UNAVAILABLE at
    /// once (overload sheds instead of queueing). 0: only --queue-capacity bounds the wait.
    #[arg(long, env = "SWIN_SERVE_MAX_QUEUE_WAIT_SECS", value_name = "SECONDS", default_value_t = DEFAULT_MAX_QUEUE_WAIT.as_secs_f64())]
    max_queue_wait: f64,
    /// Images admitted at once (being decoded, or waiting for a free instance): a request takes its
    /// place before any decoding, and one more gets UNAVAILABLE at once.
    #[arg(long, env = "SWIN_SERVE_QUEUE_CAPACITY", default_value_t = DEFAULT_QUEUE_CAPACITY)]
    queue_capacity: usize,
    /// Class names, one per line (default: the embedded ImageNet-1k names).
    #[arg(long, env = "SWIN_SERVE_LABELS")]
    labels: Option<PathBuf>,
    /// Backend.
    #[arg(long, env = "SWIN_SERVE_BACKEND", value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,
    /// MLU: MagicMind plugin library (libmagicmind_plugin.so); repeatable.
    #[arg(
        long = "plugin-lib",
        env = "SWIN_SERVE_PLUGIN_LIBS",
        value_delimiter = ','
    )]
    plugin_libs: Vec<PathBuf>,
    /// MLU: device id.
    #[arg(long, env = "SWIN_SERVE_DEVICE", default_value_t = DEFAULT_DEVICE)]
    device: i32,
    /// Image size, when it cannot be inferred from the checkpoint (also the size of --random-weights).
    #[arg(long, env = "SWIN_SERVE_IMG_SIZE")]
    img_size: Option<usize>,
    /// Window size, when it cannot be inferred from the checkpoint (also for --random-weights).
    #[arg(long, env = "SWIN_SERVE_WINDOW_SIZE")]
    window_size: Option<usize>,
    /// Checkpoint URL used when --model is absent.
    #[arg(long, env = "SWIN_SERVE_MODEL_URL", default_value = download::OFFICIAL_TINY_URL)]
    model_url: String,
    /// Expected SHA-256 of the downloaded checkpoint (64 hex digits): a download or cached file with
    /// another digest is refused. Without it, a download must load as a complete checkpoint.
    #[arg(long, env = "SWIN_SERVE_MODEL_SHA256", value_name = "HEX", value_parser = download::parse_sha256)]
    model_sha256: Option<[u8; 32]>,
    /// Download cache directory (default: $XDG_CACHE_HOME/swin-serve or ~/.cache/swin-serve).
    #[arg(long, env = "SWIN_SERVE_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "SWIN_SERVE_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Images with more pixels are refused (INVALID_ARGUMENT) before decoding.
    #[arg(long, env = "SWIN_SERVE_MAX_IMAGE_PIXELS", default_value_t = PIL_MAX_IMAGE_PIXELS)]
    max_image_pixels: u64,
    /// Most images in one ClassifyBatch call.
    #[arg(long, env = "SWIN_SERVE_MAX_BATCH_IMAGES", default_value_t = DEFAULT_MAX_BATCH_IMAGES)]
    max_batch_images: usize,
    /// Images decoded and preprocessed at once (default: 2 × cores); bounds decode memory.
    #[arg(long, env = "SWIN_SERVE_MAX_CONCURRENT_DECODES")]
    max_concurrent_decodes: Option<usize>,
    /// On SIGTERM, keep serving this many seconds with health NOT_SERVING before refusing new calls.
    #[arg(long, env = "SWIN_SERVE_DRAIN_DELAY_SECS", default_value_t = DEFAULT_DRAIN_DELAY.as_secs_f64())]
    drain_delay_secs: f64,
    /// After the drain delay, the longest shutdown waits for open calls and streams before closing them.
    #[arg(long, env = "SWIN_SERVE_SHUTDOWN_TIMEOUT_SECS", value_name = "SECONDS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT.as_secs_f64())]
    shutdown_timeout: f64,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "SWIN_SERVE_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_MAX_CONCURRENT_STREAMS)]
    max_concurrent_streams: u32,
    /// Seconds after which a connection is asked to go away (HTTP/2 GOAWAY; clients reconnect, so
    /// long-lived clients spread over new replicas); 0 = never.
    #[arg(long, env = "SWIN_SERVE_MAX_CONNECTION_AGE_SECS", value_name = "SECONDS", default_value_t = DEFAULT_MAX_CONNECTION_AGE.map_or(0, |d| d.as_secs()))]
    max_connection_age: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, a port of its own).
    #[arg(long, env = "SWIN_SERVE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Bearer tokens, one per line: every RPC but grpc.health.v1 needs `authorization: Bearer
    /// <token>` with one of them (UNAUTHENTICATED otherwise). Re-read when the file changes.
    #[arg(long, env = "SWIN_SERVE_AUTH_TOKEN_FILE", value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Deadline of a Classify / ClassifyBatch call whose client sent no grpc-timeout (the smaller of
    /// the two when it did); expired calls get DEADLINE_EXCEEDED. Default: none.
    #[arg(long, env = "SWIN_SERVE_REQUEST_TIMEOUT_SECS", value_name = "SECONDS")]
    request_timeout: Option<f64>,
    /// TLS on the gRPC port: PEM certificate chain (leaf first). Needs --tls-key. Plaintext
    /// connections are then refused. Reloaded when the file changes.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: PEM CA certificates; every client must present a certificate issued by one of
    /// them. Needs --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,
    /// A second, plaintext port serving only grpc.health.v1 (for Kubernetes probes when the gRPC
    /// port needs TLS client certificates or tokens).
    #[arg(long, env = "SWIN_SERVE_HEALTH_LISTEN", value_name = "ADDR")]
    health_listen: Option<SocketAddr>,
    /// Most calls in flight at once (all RPCs but health; a stream counts as one): more get
    /// RESOURCE_EXHAUSTED at once, before their message is read.
    #[arg(long, env = "SWIN_SERVE_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Global memory budget: every image is charged its encoded size plus the memory its decoding
    /// and preprocessing take (estimated from its header) before it is decoded; what does not fit
    /// gets RESOURCE_EXHAUSTED at once. Bytes, or with a suffix (512MiB, 2GiB, 1.5G); `auto`: half
    /// of the cgroup memory limit (else of RAM) left after the model; 0 or `off`: no limit.
    #[arg(
        long,
        env = "SWIN_SERVE_MEMORY_BUDGET",
        value_name = "BYTES",
        default_value = "auto"
    )]
    memory_budget: server::memory_budget::BudgetSetting,
    /// Seconds a request message may take to arrive: a unary call's whole request from the call's
    /// start, each message of a stream from its first byte. Past it the call (or stream) ends with
    /// DEADLINE_EXCEEDED and what was received is dropped. 0: no limit.
    #[arg(long, env = "SWIN_SERVE_MESSAGE_TIMEOUT", value_name = "SECONDS", default_value_t = DEFAULT_MESSAGE_TIMEOUT.map_or(0.0, |d| d.as_secs_f64()))]
    message_timeout: f64,
    /// Seconds a connection may stay open with no call open on it before the server closes it
    /// (HTTP/2 keepalive pings do not count as activity). 0: never.
    #[arg(long, env = "SWIN_SERVE_IDLE_TIMEOUT", value_name = "SECONDS", default_value_t = DEFAULT_IDLE_TIMEOUT.map_or(0.0, |d| d.as_secs_f64()))]
    idle_timeout: f64,
    /// Seconds one engine batch may run before the engine counts as hung: health and OIP readiness
    /// turn NOT_SERVING, and so does the liveness service `swin-serve.liveness` (restart the pod);
    /// they turn back when it recovers. 0: no hang detection.
    #[arg(long, env = "SWIN_SERVE_ENGINE_HANG_TIMEOUT_SECS", value_name = "SECONDS", default_value_t = DEFAULT_ENGINE_HANG_TIMEOUT.map_or(0.0, |d| d.as_secs_f64()))]
    engine_hang_timeout: f64,
    /// Do not serve gRPC server reflection (grpcurl then needs the .proto files). The environment
    /// variable takes true/1/yes/on (false/0/no/off or empty: reflection on).
    #[arg(long, env = "SWIN_SERVE_NO_REFLECTION", value_parser = clap::builder::FalseyValueParser::new())]
    no_reflection: bool,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://otel-collector:4317): a span
    /// per call, child of the caller's W3C traceparent, with preprocess, queue, engine and
    /// postprocess spans. Default: off.
    #[arg(long, env = "SWIN_SERVE_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Classes to print per image.
    #[arg(long, default_value_t = DEFAULT_TOP_K)]
    top_k: u32,
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Server mode: image file every call carries (default: a generated 500×375 JPEG).
    #[arg(long, help_heading = "Server mode (--server)")]
    image: Option<PathBuf>,
    /// Server mode: RPCs to load, one run each, in this order (comma-separated; repeat one to
    /// interleave runs) [default: classify].
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        help_heading = "Server mode (--server)"
    )]
    rpc: Vec<Protocol>,
    /// Server mode: callers in flight at once (comma-separated: one run per value) [default: 1].
    #[arg(long, value_delimiter = ',', help_heading = "Server mode (--server)")]
    concurrency: Vec<usize>,
    /// Server mode: calls measured per run (unless --duration) [default: 100].
    #[arg(long, help_heading = "Server mode (--server)")]
    requests: Option<usize>,
    /// Server mode: seconds each run lasts (instead of --requests).
    #[arg(long, value_name = "SECONDS", help_heading = "Server mode (--server)")]
    duration: Option<f64>,
    /// Server mode: open loop — calls due at this many per second whatever the answers (up to
    /// --concurrency in flight; latency counts from when a call was due) [default: closed loop].
    #[arg(
        long,
        value_name = "CALLS_PER_SECOND",
        help_heading = "Server mode (--server)"
    )]
    rate: Option<f64>,
    /// Calls sent before each run, not measured [default: 5]; without --server, untimed forward
    /// passes before each batch size's [default: 3].
    #[arg(long)]
    warmup: Option<usize>,
    /// Local mode: batch sizes (comma-separated), measured in this order.
    #[arg(
        long,
        value_delimiter = ',',
        help_heading = "Local engine (no --server)"
    )]
    batch: Vec<usize>,
    /// Local mode: threads of the engine instance [default: all cores].
    #[arg(long, help_heading = "Local engine (no --server)")]
    threads: Option<usize>,
    /// Local mode: timed forward passes per batch size [default: 10].
    #[arg(long, help_heading = "Local engine (no --server)")]
    runs: Option<usize>,
    /// Local mode: checkpoint to run (.pth or .safetensors; default: random weights).
    #[arg(
        long,
        visible_alias = "checkpoint",
        help_heading = "Local engine (no --server)"
    )]
    model: Option<PathBuf>,
    /// Local mode: deterministic random SwinV2-T weights with this seed [default: 0 when no
    /// --model].
    #[arg(
        long,
        value_name = "SEED",
        conflicts_with = "model",
        help_heading = "Local engine (no --server)"
    )]
    random_weights: Option<u64>,
    /// Local mode: image size (of --random-weights, or when the checkpoint lacks it).
    #[arg(long, help_heading = "Local engine (no --server)")]
    img_size: Option<usize>,
    /// Local mode: window size (of --random-weights, or when the checkpoint lacks it).
    #[arg(long, help_heading = "Local engine (no --server)")]
    window_size: Option<usize>,
    /// Local mode: also print the time per operation and per stage of each batch size.
    #[arg(long, help_heading = "Local engine (no --server)")]
    profile: bool,
    /// Local mode: print one JSON object per line (a figure per batch size; with --profile, a
    /// profile per batch size) instead of the table.
    #[arg(long, help_heading = "Local engine (no --server)")]
    json: bool,
}

#[derive(Args)]
struct InfoArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// How the `classify` and `info` clients reach the server.
#[derive(Args)]
struct ConnectionArgs {
    /// Server URL [default: http://127.0.0.1:50051]. `bench` without it measures the local CPU
    /// engine instead of a server.
    #[arg(long, env = "SWIN_SERVE_URL")]
    server: Option<String>,
    /// File whose first line is the bearer token sent as `authorization: Bearer <token>`.
    #[arg(long, env = "SWIN_SERVE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to verify the server with (https:// URLs; default: the Mozilla roots).
    #[arg(long, env = "SWIN_SERVE_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (mutual TLS). Needs --tls-key.
    #[arg(
        long,
        env = "SWIN_SERVE_CLIENT_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_CLIENT_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Seconds each call may take (sent as grpc-timeout; also bounds connecting).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
}

impl ConnectionArgs {
    /// `--server`, or the default URL.
    fn server_url(&self) -> String {
        self.server
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER_URL.to_string())
    }
}

type Client = proto::classifier_client::ClassifierClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // The OTLP exporter's channel lives on this runtime (which outlives the flush below).
    let traces = match &cli.command {
        Command::Serve(ServeArgs {
            otlp_endpoint: Some(endpoint),
            ..
        }) if !endpoint.is_empty() => {
            let _runtime = runtime.enter();
            Some(telemetry::otlp_provider(endpoint).context("--otlp-endpoint")?)
        }
        _ => None,
    };
    let telemetry = telemetry::init(cli.log_format, traces)?;
    if let (
        true,
        Command::Serve(ServeArgs {
            otlp_endpoint: Some(endpoint),
            ..
        }),
    ) = (telemetry.traces_enabled(), &cli.command)
    {
        tracing::info!(endpoint = %endpoint, service = telemetry::SERVICE_NAME, "exporting traces over OTLP/gRPC");
    }
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Classify(args) => runtime.block_on(classify(args)),
        Command::Info(args) => runtime.block_on(info(args)),
        Command::Bench(args) => runtime.block_on(bench(args)),
    };
    // Export the spans still buffered while the runtime (the exporter's channel) still runs.
    if let Err(e) = telemetry.shutdown() {
        tracing::warn!(error = %e, "traces not flushed");
    }
    // Don't wait for a model load or download still running on a blocking thread (e.g. SIGTERM
    // during the first download): the process is exiting.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn model_options(args: &ServeArgs) -> Result<ModelOptions> {
    if let Some(name) = &args.model_name {
        check_model_name(name).map_err(|e| anyhow::anyhow!("--model-name: {e}"))?;
    }
    let backend = match args.backend {
        BackendKind::Cpu => BackendOptions::Cpu(CpuOptions {
            weights: weights_source(args)?,
            hints: ConfigHints {
                img_size: args.img_size,
                window_size: args.window_size,
                ..Default::default()
            },
            instances: args.instances,
            threads: args
                .threads
                .unwrap_or_else(|| (default_threads() / args.instances.max(1)).max(1)),
            max_batch: args.max_batch,
        }),
        BackendKind::Mlu => {
            let Some(model_path) = &args.model else {
                bail!("--backend mlu needs --model FILE.magicmind (generate it with models/generate_magicmind.py)");
            };
            let model_path = model_file_in(model_path, &["magicmind"])?;
            BackendOptions::Mlu(MluOptions {
                model_path,
                plugin_libs: args.plugin_libs.clone(),
                device_id: args.device,
                instances: args.instances,
                max_batch: args.max_batch,
            })
        }
    };
    Ok(ModelOptions {
        backend,
        queue_capacity: args.queue_capacity,
        labels: args.labels.clone(),
        max_image_pixels: args.max_image_pixels,
        model_name: args.model_name.clone(),
        max_queue_delay: match Duration::try_from_secs_f64(args.max_queue_delay) {
            Ok(d) => d,
            Err(_) => bail!("--max-queue-delay must be a non-negative number of seconds"),
        },
        max_queue_wait: match Duration::try_from_secs_f64(args.max_queue_wait) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(_) => bail!("--max-queue-wait must be a non-negative number of seconds"),
        },
    })
}

/// CPU: `--random-weights`, else `--model`, else the download of `--model-url`.
fn weights_source(args: &ServeArgs) -> Result<WeightsSource> {
    if let Some(seed) = args.random_weights {
        let mut config = SwinV2Config::tiny_window8_256();
        if let Some(s) = args.img_size {
            config.img_size = s;
        }
        if let Some(w) = args.window_size {
            config.window_size = w;
        }
        Ok(WeightsSource::Random { seed, config })
    } else if let Some(path) = &args.model {
        Ok(WeightsSource::File(model_file_in(
            path,
            &CHECKPOINT_EXTENSIONS,
        )?))
    } else {
        Ok(WeightsSource::Download {
            url: args.model_url.clone(),
            cache_dir: args
                .cache_dir
                .clone()
                .unwrap_or_else(download::default_cache_dir),
            sha256: args.model_sha256,
        })
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let opts = model_options(&args)?;
    let Ok(drain_delay) = Duration::try_from_secs_f64(args.drain_delay_secs) else {
        bail!("--drain-delay-secs must be a non-negative number");
    };
    let Ok(shutdown_timeout) = Duration::try_from_secs_f64(args.shutdown_timeout) else {
        bail!("--shutdown-timeout must be a non-negative number of seconds");
    };
    let request_timeout = match args.request_timeout {
        None => DEFAULT_REQUEST_TIMEOUT,
        Some(secs) => match Duration::try_from_secs_f64(secs) {
            Ok(timeout) if !timeout.is_zero() => Some(timeout),
            _ => bail!(
                "--request-timeout must be a positive number of seconds (leave it unset for no server-side deadline)"
            ),
        },
    };
    let config = ServerConfig {
        max_message_bytes: args.max_message_bytes,
        max_batch_images: args.max_batch_images,
        drain_delay,
        shutdown_timeout,
        auth_token_file: args.auth_token_file.clone(),
        metrics_listen: args.metrics_listen,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| TlsFiles {
                cert,
                key,
                client_ca: args.tls_client_ca.clone(),
            }),
        health_listen: args.health_listen,
        reflection: !args.no_reflection,
        max_in_flight: args.max_in_flight,
        memory_budget: args.memory_budget,
        message_timeout: match Duration::try_from_secs_f64(args.message_timeout) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(_) => bail!("--message-timeout must be a non-negative number of seconds"),
        },
        idle_timeout: match Duration::try_from_secs_f64(args.idle_timeout) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(_) => bail!("--idle-timeout must be a non-negative number of seconds"),
        },
        engine_hang_timeout: match Duration::try_from_secs_f64(args.engine_hang_timeout) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(_) => bail!("--engine-hang-timeout must be a non-negative number of seconds"),
        },
        max_concurrent_streams: args.max_concurrent_streams,
        max_connection_age: (args.max_connection_age > 0)
            .then(|| Duration::from_secs(args.max_connection_age)),
        request_timeout,
        max_concurrent_decodes: args
            .max_concurrent_decodes
            .unwrap_or_else(server::default_max_concurrent_decodes),
    };
    let listener = server::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    server::serve(
        listener,
        config,
        move || load_serving_model(&opts),
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// The channel and bearer token `args` describe.
async fn connect_channel(
    args: &ConnectionArgs,
) -> Result<(tonic::transport::Channel, BearerToken)> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim();
            if token.is_empty() {
                bail!("the token file {} is empty", path.display());
            }
            Some(
                format!("Bearer {token}")
                    .parse()
                    .context("the token is not valid in a gRPC header (ASCII only)")?,
            )
        }
        None => None,
    };
    let url = &args.server_url();
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server URL {url}"))?;
    if let Some(secs) = args.timeout {
        let Ok(timeout) = Duration::try_from_secs_f64(secs) else {
            bail!("--timeout must be a positive number of seconds");
        };
        if timeout.is_zero() {
            bail!("--timeout must be a positive number of seconds");
        }
        endpoint = endpoint.timeout(timeout).connect_timeout(timeout);
    }
    let wants_tls = args.tls_ca.is_some() || args.tls_cert.is_some();
    if wants_tls && !url.starts_with("https://") {
        bail!("--tls-ca / --tls-cert need an https:// server URL (got {url})");
    }
    if url.starts_with("https://") {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        tls = match &args.tls_ca {
            Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
            None => tls.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("TLS client configuration")?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {}", error_chain(&e)))?;
    Ok((channel, BearerToken(token)))
}

/// A failed call as the CLI reports it: the RPC, the gRPC code and the server's message (escaped).
fn rpc_failed(rpc: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "{rpc} failed: {:?}: {}",
        status.code(),
        printable(status.message())
    )
}

/// An error and its sources, on one line (tonic's transport errors say "transport error" and keep
/// the reason — refused, certificate unknown — in their sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn connect(args: &ConnectionArgs) -> Result<Client> {
    let (channel, token) = connect_channel(args).await?;
    Ok(
        proto::classifier_client::ClassifierClient::with_interceptor(channel, token)
            .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES),
    )
}

/// `bench`: a server's load test with `--server`, else the local CPU engine.
async fn bench(args: BenchArgs) -> Result<()> {
    if args.connection.server.is_some() {
        bench_server(args).await
    } else {
        tokio::task::spawn_blocking(move || bench_engine(args))
            .await
            .context("engine benchmark task")?
    }
}

/// `bench` without `--server`: the local CPU engine ([`engine_bench`]).
fn bench_engine(args: BenchArgs) -> Result<()> {
    let c = &args.connection;
    let server_only = [
        ("--image", args.image.is_some()),
        ("--rpc", !args.rpc.is_empty()),
        ("--concurrency", !args.concurrency.is_empty()),
        ("--requests", args.requests.is_some()),
        ("--duration", args.duration.is_some()),
        ("--rate", args.rate.is_some()),
        ("--token-file", c.token_file.is_some()),
        ("--tls-ca", c.tls_ca.is_some()),
        ("--tls-cert", c.tls_cert.is_some()),
        ("--timeout", c.timeout.is_some()),
    ];
    if let Some((flag, _)) = server_only.iter().find(|(_, given)| *given) {
        bail!("{flag} loads a server: give --server URL (without it, bench measures the local CPU engine)");
    }
    let source = match (&args.model, args.random_weights) {
        (Some(path), _) => WeightsSource::File(model_file_in(path, &CHECKPOINT_EXTENSIONS)?),
        (None, seed) => {
            let mut config = SwinV2Config::tiny_window8_256();
            if let Some(s) = args.img_size {
                config.img_size = s;
            }
            if let Some(w) = args.window_size {
                config.window_size = w;
            }
            WeightsSource::Random {
                seed: seed.unwrap_or(0),
                config,
            }
        }
    };
    let hints = ConfigHints {
        img_size: args.img_size,
        window_size: args.window_size,
        ..Default::default()
    };
    let opts = EngineBenchOptions {
        batches: if args.batch.is_empty() {
            engine_bench::DEFAULT_BATCHES.to_vec()
        } else {
            args.batch.clone()
        },
        threads: args.threads.unwrap_or_else(default_threads),
        runs: args.runs.unwrap_or(engine_bench::DEFAULT_RUNS),
        warmup: args.warmup.unwrap_or(engine_bench::DEFAULT_WARMUP),
        profile: args.profile,
        progress: true,
    };
    let started = std::time::Instant::now();
    let model = engine_bench::load_model(&source, &hints)?;
    eprintln!(
        "{} ({}, {:.2} GFLOP/image), {} parameters, loaded in {:.1} s",
        model.config.name(),
        source.describe(),
        model.config.flops_per_image() as f64 / 1e9,
        model.num_parameters(),
        started.elapsed().as_secs_f64()
    );
    let report = engine_bench::run(&model, &opts)?;
    if args.json {
        for figure in &report.figures {
            out!("{}", figure.to_json());
        }
        for profile in &report.profiles {
            out!("{}", profile.to_json());
        }
    } else {
        if let Some(f) = report.figures.first() {
            out!(
                "{} on {} ({}), {} threads",
                report.model,
                f.cpu,
                f.isa,
                f.threads
            );
        }
        out!("{}", engine_bench::format_table(&report.figures).trim_end());
        for profile in &report.profiles {
            out!("{}", profile.describe());
        }
    }
    Ok(())
}

/// `bench --server URL`: closed- or open-loop load on a running server ([`load`]).
async fn bench_server(args: BenchArgs) -> Result<()> {
    let local_only = [
        ("--batch", !args.batch.is_empty()),
        ("--threads", args.threads.is_some()),
        ("--runs", args.runs.is_some()),
        ("--model", args.model.is_some()),
        ("--random-weights", args.random_weights.is_some()),
        ("--img-size", args.img_size.is_some()),
        ("--window-size", args.window_size.is_some()),
        ("--profile", args.profile),
        ("--json", args.json),
    ];
    if let Some((flag, _)) = local_only.iter().find(|(_, given)| *given) {
        bail!("{flag} is for the local engine benchmark (bench without --server)");
    }
    let rpcs = if args.rpc.is_empty() {
        vec![Protocol::Classify]
    } else {
        args.rpc.clone()
    };
    let concurrencies = if args.concurrency.is_empty() {
        vec![1]
    } else {
        args.concurrency.clone()
    };
    let image = match &args.image {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => load::default_image(),
    };
    let image = std::sync::Arc::new(image);
    let stop = match args.duration {
        None => load::Stop::Requests(args.requests.unwrap_or(DEFAULT_BENCH_REQUESTS)),
        Some(secs) => match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => load::Stop::Duration(d),
            _ => bail!("--duration must be a positive number of seconds"),
        },
    };
    let (channel, token) = connect_channel(&args.connection).await?;
    out!(
        "{:<10} {:>5} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "rpc",
        "conc",
        "ok",
        "errors",
        "img/s",
        "mean ms",
        "p50 ms",
        "p90 ms",
        "p99 ms"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut failed = false;
    for &concurrency in &concurrencies {
        for &protocol in &rpcs {
            let options = LoadOptions {
                protocol,
                concurrency,
                stop,
                warmup: args.warmup.unwrap_or(DEFAULT_BENCH_WARMUP_CALLS),
                image: std::sync::Arc::clone(&image),
                progress: true,
                rate: args.rate,
            };
            eprintln!(
                "running {} at concurrency {concurrency}{} ({})",
                protocol.rpc(),
                args.rate
                    .map_or(String::new(), |r| format!(", {r} calls/s open loop")),
                match stop {
                    load::Stop::Requests(n) => format!("{n} calls"),
                    load::Stop::Duration(d) => format!("{:.0} s", d.as_secs_f64()),
                }
            );
            let report = load::run(channel.clone(), token.clone(), &options).await?;
            let codes: Vec<String> = report
                .codes
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            out!(
                "{:<10} {:>5} {:>6} {:>6} {:>9.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
                protocol.rpc(),
                concurrency,
                report.ok,
                report.errors,
                report.throughput(),
                ms(report.mean()),
                ms(report.quantile(0.5)),
                ms(report.quantile(0.9)),
                ms(report.quantile(0.99)),
                codes.join(" ")
            );
            if let Some(e) = &report.first_error {
                eprintln!("{}: first error: {}", protocol.rpc(), printable(e));
                failed = true;
            }
        }
    }
    if failed {
        bail!("some calls failed");
    }
    Ok(())
}

async fn classify(args: ClassifyArgs) -> Result<()> {
    let mut client = connect(&args.connection).await?;
    // Ask for at least 5 classes (the lab prints top-5), but never more than the model has.
    let num_classes = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .map_err(|s| rpc_failed("GetModelInfo", &s))?
        .into_inner()
        .num_classes;
    if args.top_k == 0 || args.top_k > num_classes {
        bail!("--top-k must be in 1..={num_classes} for this model");
    }
    let requested = args.top_k.max(5).min(num_classes);
    let mut failures = 0;
    for path in &args.images {
        let image = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                failures += 1;
                continue;
            }
        };
        let request = proto::ClassifyRequest {
            image,
            top_k: requested,
            request_id: path.display().to_string(),
        };
        match client.classify(request).await {
            Ok(response) => print_result(
                &path.display().to_string(),
                &response.into_inner(),
                args.top_k,
            ),
            Err(status) => {
                eprintln!(
                    "{}: {:?}: {}",
                    path.display(),
                    status.code(),
                    printable(status.message())
                );
                failures += 1;
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} images failed", args.images.len());
    }
    Ok(())
}

/// A string from the server as the terminal may show it: control characters (escape sequences,
/// carriage returns) written as escapes.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Print like the lab: top1_cls / top1_prob / top5_cls / top5_prob, then the top-k with labels.
fn print_result(name: &str, r: &proto::ClassifyResponse, k: u32) {
    let p = &r.predictions;
    out!("{name}  [{}]", printable(&r.model));
    if let Some(top1) = p.first() {
        out!("  top1_cls: {} ({})", top1.class_id, printable(&top1.label));
        out!("  top1_prob: {:.6}", top1.probability);
    }
    let top5: Vec<_> = p.iter().take(5).collect();
    out!(
        "  top5_cls: [{}]",
        top5.iter()
            .map(|x| format!("{} ({})", x.class_id, printable(&x.label)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out!(
        "  top5_prob: [{}]",
        top5.iter()
            .map(|x| format!("{:.6}", x.probability))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if k as usize > 5 {
        for (rank, x) in p.iter().take(k as usize).enumerate() {
            out!(
                "  {:>3}. {:>4} {:<30} p={:.6} logit={:.4}",
                rank + 1,
                x.class_id,
                printable(&x.label),
                x.probability,
                x.logit
            );
        }
    }
    if let Some(t) = &r.timing {
        out!(
            "  time: total {:.1} ms (preprocess {:.1}, queue {:.1}, inference {:.1}, batch {})",
            t.total_us as f64 / 1e3,
            t.preprocess_us as f64 / 1e3,
            t.queue_us as f64 / 1e3,
            t.inference_us as f64 / 1e3,
            t.batch_size
        );
    }
}

async fn info(args: InfoArgs) -> Result<()> {
    let mut client = connect(&args.connection).await?;
    let info = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .map_err(|s| rpc_failed("GetModelInfo", &s))?
        .into_inner();
    // Debug formatting escapes control characters in every string the server sent.
    out!("{info:#?}");
    Ok(())
}
