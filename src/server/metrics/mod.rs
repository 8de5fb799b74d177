//! Prometheus metrics (`--metrics-listen ADDR`: `GET /metrics` on a plain HTTP port of its own), with
//! `metrics` + `metrics-exporter-prometheus` as text-embeddings-inference does. Durations are in
//! seconds. Names (constants in [`names`]):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `swin_requests_total` | counter | `rpc`, `code` | calls answered, by RPC and gRPC code |
//! | `swin_request_duration_seconds` | histogram | `rpc`, `code` | time from arrival to answer |
//! | `swin_preprocess_duration_seconds` | histogram | | decode + resize + normalize of one image |
//! | `swin_queue_duration_seconds` | histogram | | time an image waited for an engine instance |
//! | `swin_compute_duration_seconds` | histogram | | engine time of the batch an image ran in |
//! | `swin_batch_size` | histogram | | images in the engine batch an image ran in |
//! | `swin_images_in_flight` | gauge | | images queued or running |
//! | `swin_queue_slots_in_use` | gauge | | admission slots taken (`--queue-capacity`): images being decoded or waiting for an instance |
//! | `swin_images_total` | counter | `outcome` = `done`, `failed`, `cancelled`, `expired`, `rejected` | images by what became of them in the engine pool |
//! | `swin_engine_batches_total` | counter | | engine batches run |
//! | `swin_memory_budget_bytes` | gauge | | the memory budget in force (`--memory-budget`; absent when off) |
//! | `swin_memory_budget_in_use_bytes` | gauge | | bytes charged to the budget now: encoded images and their working sets being preprocessed, tensors waiting for or in the engine |
//! | `swin_memory_budget_peak_bytes` | gauge | | the most bytes ever charged to the budget at once (high-water mark since start) |
//! | `swin_calls_refused_total` | counter | `reason` = `in_flight`, `memory_budget`, `message_timeout` | calls, images or request messages refused at admission (`--max-in-flight`, `--memory-budget`, `--message-timeout`) |
//! | `swin_calls_in_flight` | gauge | | calls holding a place under `--max-in-flight` |
//! | `swin_connections_closed_idle_total` | counter | | connections closed with no call open (`--idle-timeout`) |
//! | `swin_model_load_duration_seconds` | gauge | | load + warm-up time of the model |
//! | `swin_build_info` | gauge (1) | `version`, `backend`, `model`, `precision` | what is running |
//!
//! The pool counters are sampled from [`crate::scheduler::PoolStats`] every second
//! ([`watch_model`]). Where each is recorded: calls in [`record_call`] (the pipeline's access
//! record), images in [`record_image`], refusals and the budget where they happen (the layers,
//! [`crate::server::memory_budget`]), always through the names of [`names`].

mod exporter;
pub mod names;
mod record;

pub use exporter::install;
pub use record::{record_call, record_image, watch_model};
