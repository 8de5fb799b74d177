//! The client side of the wire: connecting to a server ([`connection`]: URL, TLS, bearer token),
//! the load generator behind `swin-serve bench server` ([`load_generator`]: swin.v1 Classify,
//! ClassifyBatch, ClassifyStream or OIP ModelInfer over gRPC, `/v1/classify` or OIP REST infer
//! over HTTP ([`http_caller`]), closed or open loop; lean callers for refusal storms
//! ([`lean_caller`])), and the local CPU engine benchmark behind
//! `swin-serve bench engine` ([`engine_bench`]).

pub mod call_failure;
pub mod connection;
pub mod engine_bench;
pub mod http_caller;
pub mod lean_caller;
pub mod load_generator;
