//! swin-serve: a gRPC image classifier with Swin-Transformer V2 (FP32).
//!
//! The data path, one module per stage:
//! `proto` → [`server`] → [`preprocess`] → [`scheduler`] → [`engine`] (`cpu` | `mlu`) → [`postprocess`].
//! [`model`] holds what describes a SwinV2 network independent of where it runs: its configuration
//! and its weights (official checkpoints, safetensors, deterministic random weights, download).
//! [`client`] is the other end of the wire: connecting to a server, the load generator behind
//! `swin-serve bench server`, and the local engine benchmark behind `swin-serve bench engine`.
//! [`cli`] is the `swin-serve` command line (flags, their conversion to the server's settings, the
//! subcommands and what they print). [`telemetry`] sets up logs and (optional) OTLP traces.

pub mod cli;
pub mod client;
pub mod engine;
pub mod model;
pub mod postprocess;
pub mod preprocess;
pub mod scheduler;
pub mod server;
pub mod telemetry;

/// Generated protobuf / gRPC code for `swin.v1` (and, in [`proto::inference`], the Open Inference
/// Protocol v2).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("swin.v1");

    /// Encoded file descriptor set of `swin.v1` and `inference`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("swin_serve_descriptor");

    /// The KServe / Triton Open Inference Protocol v2 (`inference.GRPCInferenceService`, with the
    /// Triton additions swin-serve serves).
    pub mod inference {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("inference");
    }
}
