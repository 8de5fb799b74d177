//! The KServe / Triton Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`),
//! served on the same port as `swin.v1.Classifier` and through the same
//! [`crate::server::pipeline::Pipeline`]: admission, batching, deadlines, metrics, statistics and
//! the status policy are shared.
//!
//! The model as OIP sees it ([`describe`]): one model, named as the loaded model (or
//! `--model-name`), version `1`; inputs `IMAGE` (BYTES `[-1]`, encoded files) or `INPUT` (FP32
//! `[-1, 3, S, S]`, preprocessed); outputs `LOGITS` and `PROBABILITIES` (FP32 `[-1, C]`), each
//! optionally through the classification extension.
//!
//! Status policy on top of [`crate::server::status`]: an unknown model or version is NOT_FOUND
//! ([`addressing`]); a malformed tensor (name, datatype, shape, byte count, raw and typed mixed) is
//! INVALID_ARGUMENT, and so is an image that cannot be decoded (the message names the input and
//! the image's index). ModelReady answers `ready: false` while the model loads; the other model
//! RPCs answer UNAVAILABLE then.
//!
//! * [`service`]: the gRPC trait (readiness, metadata, configuration, statistics, index);
//! * [`infer`]: one ModelInfer request; [`stream`]: ModelStreamInfer;
//! * [`inputs`], [`outputs`]: the tensors in and out; [`bytes_codec`]: BYTES raw data;
//!   [`tensor_names`]: the tensor, parameter and datatype names;
//! * [`describe`]: metadata, configuration and statistics answers; [`addressing`]: the model a
//!   request names.

pub mod addressing;
pub mod bytes_codec;
pub mod describe;
pub mod infer;
pub mod inputs;
pub mod outputs;
pub mod service;
pub mod stream;
pub mod tensor_names;

pub use infer::TIMEOUT_PARAMETER;
pub use service::InferenceService;
pub use stream::MODEL_STREAM_MAX_PENDING_REQUESTS;
