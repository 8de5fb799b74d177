//! [`SchedulerError`]: why a request did not get logits; and how a caught panic becomes text.

use std::time::Duration;

use crate::engine::EngineError;

/// Why a request did not get logits.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The queue is full: the server is overloaded (gRPC UNAVAILABLE, retry later).
    #[error("server overloaded: {capacity} images already queued")]
    QueueFull {
        /// Queue capacity.
        capacity: usize,
    },
    /// The images already admitted would keep this one waiting longer than the pool's
    /// `max_queue_wait` (gRPC UNAVAILABLE, retry later or elsewhere).
    #[error(
        "server overloaded: {ahead} images ahead, an estimated {:.1} s wait (over the {:.1} s limit, --max-queue-wait)",
        estimated.as_secs_f64(),
        limit.as_secs_f64()
    )]
    QueueWaitTooLong {
        /// Images admitted and not yet taken by an instance.
        ahead: usize,
        /// `ahead` × recent engine time per image / instances.
        estimated: Duration,
        /// The limit.
        limit: Duration,
    },
    /// The pool is shutting down.
    #[error("engine pool is shutting down")]
    ShuttingDown,
    /// The request's deadline passed before an engine instance took the image (gRPC
    /// DEADLINE_EXCEEDED); the image was never run.
    #[error("deadline exceeded before an engine instance took the image")]
    DeadlineExceeded,
    /// The image has the wrong number of values for this model.
    #[error("preprocessed image has {actual} values, the model takes {expected}")]
    BadInput {
        /// Values given.
        actual: usize,
        /// Values expected ([`EnginePool::image_len`](super::EnginePool::image_len)).
        expected: usize,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The image's preparation ([`Prepare`](super::Prepare)) failed or panicked; the rest of its
    /// batch ran.
    #[error(transparent)]
    Prepare(PrepareError),
}

/// Why a [`Prepare`](super::Prepare) failed (the server's is a `PreprocessError`: downcast it).
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// A preparation that panicked, as an error.
#[derive(Debug, thiserror::Error)]
#[error("preparing the image panicked: {0}")]
pub(super) struct PreparePanicked(pub(super) String);

/// The text of a caught panic.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
