//! The client side of the wire: connecting to a server ([`connection`]: URL, TLS, bearer token),
//! the load generator behind `swin-serve bench server` ([`load_generator`]: swin.v1 Classify,
//! ClassifyBatch, ClassifyStream or OIP ModelInfer, closed or open loop), and the local CPU engine
//! benchmark behind `swin-serve bench engine` ([`engine_bench`]).

pub mod connection;
pub mod engine_bench;
pub mod load_generator;
