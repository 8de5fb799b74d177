//! The gRPC front: `swin.v1.Classifier`, the Open Inference Protocol, `grpc.health.v1`, server
//! reflection (v1 and v1alpha), the layers every call passes through, and the server's lifecycle.
//!
//! How the folder is cut, and why (imports run down this list, never up):
//!
//! * [`lifecycle`] — the server's life: [`serve`] as named steps (start, load, serve, drain, shut
//!   down), the engine watchdog, the model loader. It wires everything below and nothing imports
//!   it.
//! * [`services`] — the protocols: `swin.v1` ([`services::classifier`]), OIP
//!   ([`services::oip`]), health and reflection. They only convert at the edge.
//! * [`layers`] — the tower layers (and the auth interceptor) in front of every service, one
//!   concern each: calls in flight, open calls, message arrival, request id, deadline.
//! * [`connections`] — below the calls: TCP, TLS, and the idle timeout of each connection.
//! * [`pipeline`] — the path every inference request takes, whatever protocol carried it.
//! * [`call`] — what a call carries (its deadline, its id): attached by the layers, read by the
//!   services and the pipeline, so that neither imports the other.
//! * [`metrics`] — every metric name ([`metrics::names`]) and what records them.
//! * Leaves shared by all of the above: [`config`] (settings and defaults), [`serving_model`]
//!   (the loaded model and its slot), [`memory_budget`], [`statistics`], [`status`] (the gRPC
//!   status policy), [`log_text`] (client text in logs).
//!
//! Deadlines ([`call::deadline`], [`layers::deadline`]): every call honours the client's
//! `grpc-timeout`, Classify and ClassifyBatch also the server default `--request-timeout`; an
//! expired call is answered DEADLINE_EXCEEDED and its work is dropped at every stage.
//!
//! The entry points the binary, the tests and the benchmarks use are re-exported here.

pub mod call;
pub mod config;
pub mod connections;
pub mod http;
pub mod layers;
pub mod lifecycle;
pub mod log_text;
pub mod memory_budget;
pub mod metrics;
pub mod pipeline;
pub mod services;
pub mod serving_model;
pub mod statistics;
pub mod status;

pub use config::{
    default_max_concurrent_decodes, ServerConfig, DEFAULT_DRAIN_DELAY, DEFAULT_ENGINE_HANG_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BATCH_IMAGES, DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_CONNECTION_AGE, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MESSAGE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use connections::tcp::bind;
pub use connections::tls::TlsFiles;
pub use lifecycle::{
    check_model_name, load_serving_model, serve, serving_model_from, shutdown_signal, ModelOptions,
    ServerError,
};
pub use memory_budget::BudgetSetting;
pub use services::classifier::{ClassifierService, DEFAULT_TOP_K};
pub use services::health::{CLASSIFIER_SERVICE_NAME, LIVENESS_SERVICE_NAME};
pub use serving_model::{ModelLoadError, ModelSlot, ServingModel};
