//! The command line: `swin-serve [--log-format F] <serve | classify | info | bench>`. The flags of
//! each subcommand live beside it ([`super::serve_args`], [`super::bench_args`]); the clients'
//! connection flags in [`super::connection_args`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::bench_args::BenchArgs;
use super::connection_args::ConnectionArgs;
use super::serve_args::ServeArgs;
use crate::server::DEFAULT_TOP_K;
use crate::telemetry::LogFormat;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "swin-serve",
    version,
    about = "Swin-Transformer V2 image classification over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    pub log_format: LogFormat,
}

impl Cli {
    /// `serve --otlp-endpoint`, when given and not empty.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        match &self.command {
            Command::Serve(args) => args.otlp_endpoint.as_deref().filter(|e| !e.is_empty()),
            _ => None,
        }
    }
}

#[derive(Subcommand, Debug, Clone)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
pub enum Command {
    /// Load the model and serve `swin.v1.Classifier`, health and reflection.
    Serve(ServeArgs),
    /// Classify image files with a running server and print top-1 / top-5.
    Classify(ClassifyArgs),
    /// Print what GetModelInfo of a running server says, as `key: value` lines (or JSON).
    Info(InfoArgs),
    /// Measure the local CPU engine (`bench engine`) or load a running server (`bench server`).
    Bench(BenchArgs),
    /// Write any checkpoint `serve --model` accepts as official-layout .safetensors, its
    /// configuration, labels and preprocessing in the metadata.
    Convert(super::convert::ConvertArgs),
}

/// `classify`.
#[derive(Args, Debug, Clone)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Classes to print per image.
    #[arg(long, default_value_t = DEFAULT_TOP_K)]
    pub top_k: u32,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// `info`.
#[derive(Args, Debug, Clone)]
pub struct InfoArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print one JSON object instead: the fields of swin.v1.ModelInfo under their .proto names
    /// (snake_case: model, input_size, num_classes, config.img_size, preprocessing.mean, ...).
    #[arg(long)]
    pub json: bool,
}
