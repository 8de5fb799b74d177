//! The gRPC services on the server's port, each converting between its protocol and the shared
//! [`crate::server::pipeline`] at the edge:
//!
//! * [`classifier`]: `swin.v1.Classifier` (Classify, ClassifyBatch, ClassifyStream,
//!   GetModelInfo); [`model_info`] builds what GetModelInfo answers;
//! * [`oip`]: the Open Inference Protocol (`inference.GRPCInferenceService`);
//! * [`health`]: `grpc.health.v1` — its service names and the statuses the lifecycle sets;
//! * [`reflection`]: server reflection (v1 and v1alpha).
//!
//! Services know nothing of how they are stacked and served ([`crate::server::lifecycle`]) or of
//! the layers in front of them ([`crate::server::layers`]): they read what a call carries from
//! [`crate::server::call`].

pub mod classifier;
pub mod health;
pub mod model_info;
pub mod oip;
pub mod reflection;
