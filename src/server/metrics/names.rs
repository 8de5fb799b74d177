//! Every metric name the server records or describes, in one place. Dashboards, alerts and
//! `tests/metrics.rs` read these names: they are part of the server's interface and do not change.
//! Label values stay strings where they are recorded.

/// Counter, labels `rpc`, `code`: calls answered, by RPC and gRPC code.
pub const REQUESTS_TOTAL: &str = "swin_requests_total";
/// Histogram, labels `rpc`, `code`: time from arrival to answer.
pub const REQUEST_DURATION_SECONDS: &str = "swin_request_duration_seconds";
/// Histogram: decode + resize + normalize of one image.
pub const PREPROCESS_DURATION_SECONDS: &str = "swin_preprocess_duration_seconds";
/// Histogram: time an image waited for an engine instance.
pub const QUEUE_DURATION_SECONDS: &str = "swin_queue_duration_seconds";
/// Histogram: engine time of the batch an image ran in.
pub const COMPUTE_DURATION_SECONDS: &str = "swin_compute_duration_seconds";
/// Histogram: images in the engine batch an image ran in.
pub const BATCH_SIZE: &str = "swin_batch_size";
/// Gauge: images queued or running in the engine pool.
pub const IMAGES_IN_FLIGHT: &str = "swin_images_in_flight";
/// Gauge: admission slots taken (`--queue-capacity`).
pub const QUEUE_SLOTS_IN_USE: &str = "swin_queue_slots_in_use";
/// Counter, label `outcome`: images by what became of them in the engine pool.
pub const IMAGES_TOTAL: &str = "swin_images_total";
/// Counter: engine batches run.
pub const ENGINE_BATCHES_TOTAL: &str = "swin_engine_batches_total";
/// Gauge: the memory budget in force (`--memory-budget`).
pub const MEMORY_BUDGET_BYTES: &str = "swin_memory_budget_bytes";
/// Gauge: bytes charged to the memory budget now.
pub const MEMORY_BUDGET_IN_USE_BYTES: &str = "swin_memory_budget_in_use_bytes";
/// Gauge: the most bytes ever charged to the memory budget at once.
pub const MEMORY_BUDGET_PEAK_BYTES: &str = "swin_memory_budget_peak_bytes";
/// Counter, label `reason`: calls, images or request messages refused at admission.
pub const CALLS_REFUSED_TOTAL: &str = "swin_calls_refused_total";
/// Gauge: calls in flight (`--max-in-flight`).
pub const CALLS_IN_FLIGHT: &str = "swin_calls_in_flight";
/// Counter: connections closed for having no call open (`--idle-timeout`).
pub const CONNECTIONS_CLOSED_IDLE_TOTAL: &str = "swin_connections_closed_idle_total";
/// Gauge: load + warm-up time of the model.
pub const MODEL_LOAD_DURATION_SECONDS: &str = "swin_model_load_duration_seconds";
/// Gauge (1), labels `version`, `backend`, `model`: what is running.
pub const BUILD_INFO: &str = "swin_build_info";

/// The name suffix of every duration histogram (they share the latency buckets).
pub const DURATION_SECONDS_SUFFIX: &str = "duration_seconds";

/// `reason` values of [`CALLS_REFUSED_TOTAL`].
pub mod refused {
    /// `--max-in-flight`: too many calls at once.
    pub const IN_FLIGHT: &str = "in_flight";
    /// `--memory-budget`: an image or a request message does not fit.
    pub const MEMORY_BUDGET: &str = "memory_budget";
    /// `--message-timeout`: a request message took too long to arrive.
    pub const MESSAGE_TIMEOUT: &str = "message_timeout";
}
