//! The client side: a load generator that drives a running server over `swin.v1` Classify or OIP
//! ModelInfer (`swin-serve bench --server`), used to compare the two protocols on one server; and
//! the local CPU engine benchmark (`swin-serve bench` without `--server`).

pub mod engine_bench;
pub mod load;
