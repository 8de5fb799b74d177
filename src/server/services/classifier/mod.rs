//! `swin.v1.Classifier`: Classify, ClassifyBatch, ClassifyStream, GetModelInfo, over the shared
//! [`crate::server::pipeline`].
//!
//! * [`service`]: the gRPC trait, each RPC recorded as a call;
//! * [`classify`]: one image answered as `swin.v1` (Classify, and each entry of the others);
//! * [`batch`] answers ClassifyBatch, [`stream`] ClassifyStream.

pub mod batch;
pub mod classify;
pub mod service;
pub mod stream;

pub use classify::DEFAULT_TOP_K;
pub use service::ClassifierService;
pub use stream::CLASSIFY_STREAM_MAX_PENDING_IMAGES;
