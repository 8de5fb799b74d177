//! `swin-serve bench engine` (the local CPU engine) and `swin-serve bench server` (load on a
//! running server): each with its own flags. The old form, `bench [FLAGS]` without a
//! subcommand, is `bench server` when `--server` or `SWIN_SERVE_URL` is given, else `bench
//! engine` ([`super::parse`] rewrites it before parsing).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::connection_args::ConnectionArgs;
use super::seconds::{seconds, Seconds, Zero};
use crate::client::load_generator::Rpc;
use crate::engine::Precision;

/// `bench server`: calls measured per run (`--requests`) and sent before it (`--warmup`).
pub const DEFAULT_BENCH_REQUESTS: usize = 100;
pub const DEFAULT_BENCH_WARMUP_CALLS: usize = 5;

/// `bench`.
#[derive(Args, Debug, Clone)]
#[command(
    args_conflicts_with_subcommands = true,
    override_usage = "swin-serve bench engine [OPTIONS]\n       swin-serve bench server [OPTIONS]\n       swin-serve bench [OPTIONS]   (the old form: see below)",
    after_help = "Without a subcommand (the old form), `bench [FLAGS]` is `bench server [FLAGS]` when \
--server or SWIN_SERVE_URL is given, else `bench engine [FLAGS]`."
)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// The old form's flags, before [`super::parse`] moves them under a subcommand.
    #[arg(
        hide = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLAGS"
    )]
    pub legacy_flags: Vec<OsString>,
}

/// What `bench` measures.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchMode {
    /// Measure the local CPU engine: latency, img/s, GFLOP/s, peak RSS per batch size (and with
    /// --profile the time per operation and per stage).
    Engine(BenchEngineArgs),
    /// Load a running server (closed loop: N callers, each sending its next call when answered;
    /// open loop with --rate) and print throughput and latency quantiles, per RPC and concurrency.
    Server(BenchServerArgs),
}

/// `bench engine`.
#[derive(Args, Debug, Clone, Default)]
pub struct BenchEngineArgs {
    /// Batch sizes (comma-separated), measured in this order [default: 1,8].
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Threads of the engine instance [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// What the linear layers compute in: fp32 or bf16 (AVX512_BF16 CPUs only).
    #[arg(long, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Timed forward passes per batch size [default: 10].
    #[arg(long)]
    pub runs: Option<usize>,
    /// Untimed forward passes before each batch size's [default: 3].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Checkpoint to run (.pth or .safetensors; default: random weights).
    #[arg(long, visible_alias = "checkpoint")]
    pub model: Option<PathBuf>,
    /// Deterministic random SwinV2-T weights with this seed [default: 0 when no --model].
    #[arg(long, value_name = "SEED", conflicts_with = "model")]
    pub random_weights: Option<u64>,
    /// Architecture of the random weights, by its timm / official name (e.g.
    /// `swin_tiny_patch4_window7_224` for Swin V1) [default: swinv2_tiny_window8_256].
    #[arg(long, value_name = "NAME", conflicts_with = "model")]
    pub arch: Option<String>,
    /// Image size (of --random-weights, or when the checkpoint lacks it).
    #[arg(long)]
    pub img_size: Option<usize>,
    /// Window size (of --random-weights, or when the checkpoint lacks it).
    #[arg(long)]
    pub window_size: Option<usize>,
    /// Also print the time per operation and per stage of each batch size.
    #[arg(long)]
    pub profile: bool,
    /// Print one JSON object per line (a figure per batch size; with --profile, a profile per
    /// batch size) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `bench server`.
#[derive(Args, Debug, Clone, Default)]
pub struct BenchServerArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Image file every call carries (default: a generated 500×375 JPEG).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// RPCs to load, one run each, in this order (comma-separated; repeat one to interleave runs):
    /// gRPC `classify`, `model-infer`, `batch`, `stream`; HTTP `http-classify` (POST /v1/classify),
    /// `http-infer` (OIP REST infer, Triton's binary form); for refusal storms, `classify-storm` and
    /// `http-classify-storm`: the same calls from lean callers (one shared buffer, no copies per
    /// call, sending stopped once refused; cleartext only) [default: classify].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub rpc: Vec<Rpc>,
    /// The HTTP port (`serve --http-listen`) the `http-*` RPCs call, `http://host:port`
    /// [default: --server].
    #[arg(long, value_name = "URL")]
    pub http_server: Option<String>,
    /// A storm: calls refused for capacity (UNAVAILABLE, RESOURCE_EXHAUSTED; HTTP 503, 429) are
    /// counted but do not make the run fail; callers retry at once, without back-off.
    #[arg(long)]
    pub expect_refusals: bool,
    /// Callers in flight at once (comma-separated: one run per value) [default: 1].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Calls measured per run (unless --duration) [default: 100].
    #[arg(long)]
    pub requests: Option<usize>,
    /// Seconds each run lasts (instead of --requests); more than 0.
    #[arg(long, value_name = "SECONDS", value_parser = seconds(Zero::Refused))]
    pub duration: Option<Seconds>,
    /// Open loop: calls due at this many per second whatever the answers (up to --concurrency in
    /// flight; latency counts from when a call was due) [default: closed loop].
    #[arg(long, value_name = "CALLS_PER_SECOND")]
    pub rate: Option<f64>,
    /// Calls sent before each run, not measured [default: 5].
    #[arg(long)]
    pub warmup: Option<usize>,
}
