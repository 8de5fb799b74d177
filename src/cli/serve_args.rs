//! `swin-serve serve`: its flags. Each reads the environment variable `SWIN_SERVE_` + the flag's
//! name upper-cased with `-` → `_` (older names: [`super::env_aliases`]); every duration is
//! decimal seconds ([`super::seconds`]). What they become: [`super::serve::ServeSettings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::seconds::{seconds, Seconds, Zero};
use crate::engine::mlu::DEFAULT_DEVICE;
use crate::engine::{BackendKind, Precision, DEFAULT_INSTANCES, DEFAULT_MAX_BATCH};
use crate::model::download;
use crate::preprocess::PIL_MAX_IMAGE_PIXELS;
use crate::preprocess::{parse_crop_pct, parse_rgb, CropMode, Interpolation, MAX_SIDE};
use crate::scheduler::{DEFAULT_MAX_QUEUE_DELAY, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_QUEUE_CAPACITY};
use crate::server::memory_budget::BudgetSetting;
use crate::server::pipeline::refusal_pacing::DEFAULT_MAX_REFUSAL_RATE;
use crate::server::DEFAULT_IDLE_TIMEOUT;
use crate::server::DEFAULT_MAX_IN_FLIGHT;
use crate::server::DEFAULT_MESSAGE_TIMEOUT;
use crate::server::{
    DEFAULT_DRAIN_DELAY, DEFAULT_ENGINE_HANG_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BATCH_IMAGES,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_CONNECTION_AGE, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
};

/// Old environment variable names (…_SECS, SWIN_SERVE_PLUGIN_LIBS, SWIN_SERVE_CACHE) are listed in
/// `serve --help` after the flags. Kept in step with [`super::env_aliases::ENV_ALIASES`] (tested).
pub const SERVE_AFTER_HELP: &str = "\
Every flag can be set by its environment variable, shown as [env: ...] (a flag on the command line wins).
Every duration is decimal seconds (30, 0.5, 1e-3); each flag says what 0 means for it.
Older names still read (deprecated; the new name wins when both are set):
  SWIN_SERVE_MAX_QUEUE_DELAY_SECS     -> SWIN_SERVE_MAX_QUEUE_DELAY
  SWIN_SERVE_MAX_QUEUE_WAIT_SECS      -> SWIN_SERVE_MAX_QUEUE_WAIT
  SWIN_SERVE_DRAIN_DELAY_SECS         -> SWIN_SERVE_DRAIN_DELAY
  SWIN_SERVE_SHUTDOWN_TIMEOUT_SECS    -> SWIN_SERVE_SHUTDOWN_TIMEOUT
  SWIN_SERVE_MAX_CONNECTION_AGE_SECS  -> SWIN_SERVE_MAX_CONNECTION_AGE
  SWIN_SERVE_REQUEST_TIMEOUT_SECS     -> SWIN_SERVE_REQUEST_TIMEOUT
  SWIN_SERVE_ENGINE_HANG_TIMEOUT_SECS -> SWIN_SERVE_ENGINE_HANG_TIMEOUT
  SWIN_SERVE_PLUGIN_LIBS              -> SWIN_SERVE_PLUGIN_LIB
  SWIN_SERVE_CACHE                    -> SWIN_SERVE_CACHE_DIR
  --drain-delay-secs                  -> --drain-delay";

#[derive(Args, Debug, Clone)]
#[command(after_help = SERVE_AFTER_HELP)]
pub struct ServeArgs {
    /// Checkpoint (.pth official format or .safetensors); with --backend mlu, the .magicmind model.
    /// A directory holding exactly one such file names that file (KServe: `--model /mnt/models`).
    /// Without it (and without --random-weights) the official SwinV2-T checkpoint is downloaded.
    #[arg(long, env = "SWIN_SERVE_MODEL")]
    pub model: Option<PathBuf>,
    /// Name the model is served under (OIP / KServe / Triton clients address it by this name;
    /// GetModelInfo and metrics report it). Default: the model's own name, e.g.
    /// swinv2_tiny_patch4_window8_256.
    #[arg(long, env = "SWIN_SERVE_MODEL_NAME")]
    pub model_name: Option<String>,
    /// Serve deterministic random weights (smoke tests, benchmarks); predictions are meaningless.
    #[arg(
        long,
        env = "SWIN_SERVE_RANDOM_WEIGHTS",
        value_name = "SEED",
        conflicts_with = "model"
    )]
    pub random_weights: Option<u64>,
    /// Address to listen on.
    #[arg(long, env = "SWIN_SERVE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Engine instances (CPU model replicas sharing weights, or MagicMind contexts + queues).
    #[arg(long, env = "SWIN_SERVE_INSTANCES", default_value_t = DEFAULT_INSTANCES)]
    pub instances: usize,
    /// Threads per CPU instance [default: the cores this process may use / --instances, at least 1].
    #[arg(long, env = "SWIN_SERVE_THREADS")]
    pub threads: Option<usize>,
    /// Largest batch one instance runs at once (queued images are batched up to this).
    #[arg(long, env = "SWIN_SERVE_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    /// What the CPU engine's linear layers compute in: fp32, or bf16 (opt-in; AVX512_BF16 CPUs
    /// only, refused at startup elsewhere; weights packed to bf16 at load, FP32 accumulation,
    /// LayerNorm/softmax/attention/residuals in FP32; accuracy in docs/cpu-engine.md#bf16).
    #[arg(long, env = "SWIN_SERVE_PRECISION", default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Seconds a free engine instance may wait for more images to fill its batch (up to
    /// --max-batch; never more than half the time left before a held image's deadline). 0: run
    /// what is queued at once.
    #[arg(long, env = "SWIN_SERVE_MAX_QUEUE_DELAY", value_name = "SECONDS",
        value_parser = seconds(Zero::Immediately), default_value_t = Seconds::from(DEFAULT_MAX_QUEUE_DELAY))]
    pub max_queue_delay: Seconds,
    /// Seconds an image may be expected to wait for a free instance: when the images already
    /// admitted × the recent engine time per image / instances is longer, it gets UNAVAILABLE at
    /// once (overload sheds instead of queueing). 0: off, only --queue-capacity bounds the wait.
    #[arg(long, env = "SWIN_SERVE_MAX_QUEUE_WAIT", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(Some(DEFAULT_MAX_QUEUE_WAIT)))]
    pub max_queue_wait: Seconds,
    /// Images admitted at once (being decoded, or waiting for a free instance): a request takes its
    /// place before any decoding, and one more gets UNAVAILABLE at once.
    #[arg(long, env = "SWIN_SERVE_QUEUE_CAPACITY", default_value_t = DEFAULT_QUEUE_CAPACITY)]
    pub queue_capacity: usize,
    /// Class names, one per line (default: the checkpoint's own names, else the embedded
    /// ImageNet-1k names for 1000 classes, else class_<id>).
    #[arg(long, env = "SWIN_SERVE_LABELS")]
    pub labels: Option<PathBuf>,
    /// Preprocessing: the resize side before the crop, as the crop mode reads it (center: the
    /// shorter side; squash: both sides; border: the longer side) [default: the checkpoint's
    /// pipeline; officially int(256/224 x img_size)].
    #[arg(long, env = "SWIN_SERVE_RESIZE_SIZE", value_name = "N", conflicts_with = "crop_pct",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SIDE)))]
    pub resize_size: Option<u32>,
    /// Preprocessing: timm's crop_pct, the resize side becomes floor(img_size / F) (e.g. 0.875,
    /// 0.9, 1.0) [default: the checkpoint's pipeline].
    #[arg(long, env = "SWIN_SERVE_CROP_PCT", value_name = "F", value_parser = parse_crop_pct)]
    pub crop_pct: Option<f64>,
    /// Preprocessing: center (shorter side to the resize side, then center crop), squash (both
    /// sides), border (longer side, padded with the mean colour) or crop_only (no resize)
    /// [default: the checkpoint's pipeline].
    #[arg(long, env = "SWIN_SERVE_CROP_MODE", value_name = "MODE")]
    pub crop_mode: Option<CropMode>,
    /// Preprocessing: Pillow's resampling filter, PIL-exact: nearest, box, bilinear, hamming,
    /// bicubic or lanczos [default: the checkpoint's pipeline].
    #[arg(long, env = "SWIN_SERVE_INTERPOLATION", value_name = "FILTER")]
    pub interpolation: Option<Interpolation>,
    /// Preprocessing: per-channel mean subtracted after scaling to [0, 1], R,G,B or one value
    /// [default: the checkpoint's pipeline].
    #[arg(long, env = "SWIN_SERVE_MEAN", value_name = "R,G,B", value_parser = parse_rgb)]
    pub mean: Option<[f32; 3]>,
    /// Preprocessing: per-channel standard deviation divided by, R,G,B or one value [default: the
    /// checkpoint's pipeline].
    #[arg(long, env = "SWIN_SERVE_STD", value_name = "R,G,B", value_parser = parse_rgb)]
    pub std: Option<[f32; 3]>,
    /// Backend.
    #[arg(long, env = "SWIN_SERVE_BACKEND", value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// MLU: MagicMind plugin library (libmagicmind_plugin.so); repeatable (the environment
    /// variable takes a comma-separated list).
    #[arg(
        long = "plugin-lib",
        env = "SWIN_SERVE_PLUGIN_LIB",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub plugin_libs: Vec<PathBuf>,
    /// MLU: device id.
    #[arg(long, env = "SWIN_SERVE_DEVICE", default_value_t = DEFAULT_DEVICE)]
    pub device: i32,
    /// The official yacs configuration (`configs/**/*.yaml` of microsoft/Swin-Transformer, `BASE`
    /// files followed) declaring the architecture of --model, checked against its tensors.
    #[arg(
        long,
        env = "SWIN_SERVE_CONFIG",
        value_name = "FILE.yaml",
        conflicts_with = "random_weights"
    )]
    pub config: Option<PathBuf>,
    /// Image size, when it cannot be inferred from the checkpoint (also the size of --random-weights).
    #[arg(long, env = "SWIN_SERVE_IMG_SIZE")]
    pub img_size: Option<usize>,
    /// Window size, when it cannot be inferred from the checkpoint (also for --random-weights).
    #[arg(long, env = "SWIN_SERVE_WINDOW_SIZE")]
    pub window_size: Option<usize>,
    /// Checkpoint URL used when --model is absent.
    #[arg(long, env = "SWIN_SERVE_MODEL_URL", default_value = download::OFFICIAL_TINY_URL)]
    pub model_url: String,
    /// Expected SHA-256 of the downloaded checkpoint (64 hex digits): a download or cached file with
    /// another digest is refused. Without it, a download must load as a complete checkpoint.
    #[arg(long, env = "SWIN_SERVE_MODEL_SHA256", value_name = "HEX", value_parser = download::parse_sha256)]
    pub model_sha256: Option<[u8; 32]>,
    /// Download cache directory (default: $XDG_CACHE_HOME/swin-serve or ~/.cache/swin-serve).
    #[arg(long, env = "SWIN_SERVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "SWIN_SERVE_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Images with more pixels are refused (INVALID_ARGUMENT) before decoding.
    #[arg(long, env = "SWIN_SERVE_MAX_IMAGE_PIXELS", default_value_t = PIL_MAX_IMAGE_PIXELS)]
    pub max_image_pixels: u64,
    /// Most images in one ClassifyBatch call.
    #[arg(long, env = "SWIN_SERVE_MAX_BATCH_IMAGES", default_value_t = DEFAULT_MAX_BATCH_IMAGES)]
    pub max_batch_images: usize,
    /// Images decoded and preprocessed at once (default: 2 × cores); bounds decode memory.
    #[arg(long, env = "SWIN_SERVE_MAX_CONCURRENT_DECODES")]
    pub max_concurrent_decodes: Option<usize>,
    /// On SIGTERM, keep serving this many seconds with health NOT_SERVING before refusing new
    /// calls. 0: refuse new calls at once.
    #[arg(long, visible_alias = "drain-delay-secs", env = "SWIN_SERVE_DRAIN_DELAY", value_name = "SECONDS",
        value_parser = seconds(Zero::Immediately), default_value_t = Seconds::from(DEFAULT_DRAIN_DELAY))]
    pub drain_delay: Seconds,
    /// After the drain delay, the longest shutdown waits for open calls and streams before closing
    /// them. 0: close them at once.
    #[arg(long, env = "SWIN_SERVE_SHUTDOWN_TIMEOUT", value_name = "SECONDS",
        value_parser = seconds(Zero::Immediately), default_value_t = Seconds::from(DEFAULT_SHUTDOWN_TIMEOUT))]
    pub shutdown_timeout: Seconds,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "SWIN_SERVE_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,
    /// Seconds after which a connection is asked to go away (HTTP/2 GOAWAY; clients reconnect, so
    /// long-lived clients spread over new replicas). 0: off, connections never age out.
    #[arg(long, env = "SWIN_SERVE_MAX_CONNECTION_AGE", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(DEFAULT_MAX_CONNECTION_AGE))]
    pub max_connection_age: Seconds,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, a port of its own).
    #[arg(long, env = "SWIN_SERVE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer tokens, one per line: every RPC but grpc.health.v1 needs `authorization: Bearer
    /// <token>` with one of them (UNAUTHENTICATED otherwise). Re-read when the file changes.
    #[arg(long, env = "SWIN_SERVE_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Deadline of a Classify / ClassifyBatch call whose client sent no grpc-timeout (the smaller of
    /// the two when it did); expired calls get DEADLINE_EXCEEDED. 0: off, no server-side deadline.
    #[arg(long, env = "SWIN_SERVE_REQUEST_TIMEOUT", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(DEFAULT_REQUEST_TIMEOUT))]
    pub request_timeout: Seconds,
    /// TLS on the gRPC port: PEM certificate chain (leaf first). Needs --tls-key. Plaintext
    /// connections are then refused. Reloaded when the file changes.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: PEM CA certificates; every client must present a certificate issued by one of
    /// them. Needs --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// A second, plaintext port serving only grpc.health.v1 (for Kubernetes probes when the gRPC
    /// port needs TLS client certificates or tokens).
    #[arg(long, env = "SWIN_SERVE_HEALTH_LISTEN", value_name = "ADDR")]
    pub health_listen: Option<SocketAddr>,
    /// The HTTP port (e.g. 0.0.0.0:8000): OIP v2 over HTTP/JSON with Triton's binary and
    /// classification extensions, POST /v1/classify, and a page to try the model at /. Same
    /// TLS, tokens and limits as the gRPC port. Off unless given.
    #[arg(long, env = "SWIN_SERVE_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Most calls in flight at once (all RPCs but health; a stream counts as one): more get
    /// RESOURCE_EXHAUSTED at once, before their message is read.
    #[arg(long, env = "SWIN_SERVE_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Refusals for a full queue (or a queue wait over --max-queue-wait) answered a second before
    /// the rest wait their turn, unread: callers retrying without back-off are slowed to this pace
    /// instead of taking the engine's CPU. A burst of a quarter second's worth is answered at
    /// once; no refusal waits more than 1 s or half the time left to its deadline. 0: every
    /// refusal at once.
    #[arg(long, env = "SWIN_SERVE_MAX_REFUSAL_RATE", value_name = "PER_SECOND",
        default_value_t = DEFAULT_MAX_REFUSAL_RATE)]
    pub max_refusal_rate: u32,
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
    pub memory_budget: BudgetSetting,
    /// Seconds a request message may take to arrive: a unary call's whole request from the call's
    /// start, each message of a stream from its first byte. Past it the call (or stream) ends with
    /// DEADLINE_EXCEEDED and what was received is dropped. 0: off, no limit.
    #[arg(long, env = "SWIN_SERVE_MESSAGE_TIMEOUT", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(DEFAULT_MESSAGE_TIMEOUT))]
    pub message_timeout: Seconds,
    /// Seconds a connection may stay open with no call open on it before the server closes it
    /// (HTTP/2 keepalive pings do not count as activity). 0: off, never.
    #[arg(long, env = "SWIN_SERVE_IDLE_TIMEOUT", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(DEFAULT_IDLE_TIMEOUT))]
    pub idle_timeout: Seconds,
    /// Seconds one engine batch may run before the engine counts as hung: health and OIP readiness
    /// turn NOT_SERVING, and so does the liveness service `swin-serve.liveness` (restart the pod);
    /// they turn back when it recovers. 0: off, no hang detection.
    #[arg(long, env = "SWIN_SERVE_ENGINE_HANG_TIMEOUT", value_name = "SECONDS",
        value_parser = seconds(Zero::Off), default_value_t = Seconds::off_when_none(DEFAULT_ENGINE_HANG_TIMEOUT))]
    pub engine_hang_timeout: Seconds,
    /// Do not serve gRPC server reflection (grpcurl then needs the .proto files). The environment
    /// variable takes true/1/yes/on (false/0/no/off or empty: reflection on).
    #[arg(long, env = "SWIN_SERVE_NO_REFLECTION", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_reflection: bool,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://otel-collector:4317): a span
    /// per call, child of the caller's W3C traceparent, with preprocess, queue, engine and
    /// postprocess spans. Default: off.
    #[arg(long, env = "SWIN_SERVE_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}
