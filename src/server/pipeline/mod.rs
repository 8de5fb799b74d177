//! The path every inference request takes, whatever protocol carried it (`swin.v1` Classify /
//! ClassifyBatch, ClassifyStream, OIP ModelInfer / ModelStreamInfer): the model slot, admission
//! (the memory budget, the engine pool's bounded queue, then decode permits), preprocessing on the
//! blocking pool or the engine's threads, the engine, deadlines, and the per-image metrics and
//! statistics. The protocol services ([`crate::server::services`]) only convert at the edge.
//!
//! * [`state`]: the [`Pipeline`] the services share (model slot, decode permits, budget,
//!   readiness);
//! * [`classify`]: one image (encoded or preprocessed) through admission, preprocessing and the
//!   engine;
//! * [`call_record`]: what is recorded of every answered call (metrics, statistics, access log);
//! * [`refusal_log`]: at most one access line a second for refusals for capacity;
//! * [`refusal_pacing`]: refusals at the headers answered at most `--max-refusal-rate` a second;
//! * [`tasks`]: the tasks a call spawns for its images, in its trace span and aborted with it.

pub mod call_record;
pub mod classify;
pub mod refusal_log;
pub mod refusal_pacing;
pub mod state;
pub mod tasks;

pub use call_record::{Call, CallSummary};
pub use classify::{Classified, ImageTiming, ENGINE_THREAD_DECODE_MAX_PIXELS};
pub use state::Pipeline;
pub use tasks::{spawn_traced, AbortOnDrop};
