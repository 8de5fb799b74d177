//! The engine pool and its queue: N engine instances (CPU instances, or MagicMind contexts + queues),
//! each driven by its own worker thread that takes requests from one bounded queue.
//!
//! A worker that becomes free takes the oldest waiting image and every other image already queued,
//! up to the instance's `max_batch`: under load images are batched, an idle server answers a single
//! image at once. With a `max_queue_delay` ([`EnginePool::with_queue_delay`], `--max-queue-delay`)
//! it then waits for more until that long after the oldest image was queued, and never more than
//! half the time left before the earliest deadline among the images it holds. Requests whose caller
//! has gone away (cancelled RPC) are dropped before they reach an engine, and so are requests whose deadline has passed: refused before
//! they enter the queue, and answered [`SchedulerError::DeadlineExceeded`] by the worker that takes
//! them, which checks every job's deadline before it hands the batch to its engine.
//!
//! **Admission before work.** The queue capacity is a number of admission slots: a request takes one
//! with [`EnginePool::reserve`] *before* it spends anything on the image (decoding, preprocessing),
//! and gives it back when an engine instance takes the image (or when the request ends first). A full
//! queue therefore refuses at once, before any CPU is spent, and the images being decoded count
//! against the same bound as the images waiting for an instance.
//!
//! **Where images are prepared.** An image is queued either as a ready tensor
//! ([`EnginePool::infer_in`]) or as the work that makes it ([`EnginePool::infer_prepared_in`]: decode
//! and preprocess into a row of the batch). A worker runs a batch's preparations on its engine's
//! own threads ([`Engine::run_on_engine_threads`](crate::engine::Engine::run_on_engine_threads)), all at once and right before the forward pass;
//! an image whose preparation fails is answered [`SchedulerError::Prepare`] and the batch runs
//! without it. The server queues work rather than tensors for engines that compute on the host's
//! cores (see [`crate::engine::BackendKind::computes_on_host_cores`]).
//!
//! Files, by responsibility: `pool.rs` ([`EnginePool`]), `admission.rs` ([`QueueSlot`]),
//! `queue_wait.rs` (the estimate behind `--max-queue-wait`), `job.rs` (what is queued: [`Prepare`],
//! [`Inference`]), `worker.rs` (one thread per instance: batch, run, answer), `batch_input.rs`
//! (filling the engine's input, preparations included), `health.rs` ([`EngineHealth`]), `stats.rs`
//! ([`PoolStats`]), `error.rs` ([`SchedulerError`]); unit tests in `tests.rs`.

mod admission;
mod batch_input;
mod error;
mod health;
mod job;
mod pool;
mod queue_wait;
mod stats;
mod worker;

#[cfg(test)]
mod tests;

pub use admission::{QueueSlot, DEFAULT_QUEUE_CAPACITY};
pub use error::{PrepareError, SchedulerError};
pub use health::{EngineHealth, FAILING_AFTER_BATCHES};
pub use job::{DecodedSize, Inference, Prepare};
pub use pool::EnginePool;
pub use queue_wait::DEFAULT_MAX_QUEUE_WAIT;
pub use stats::PoolStats;
pub use worker::DEFAULT_MAX_QUEUE_DELAY;
