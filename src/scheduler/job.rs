//! What travels through the queue: a [`Job`] (one image, as a tensor or as the [`Prepare`] work
//! that makes it, with its deadline and reply channel), and the [`Inference`] it is answered with.

use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::error::{PrepareError, SchedulerError};

/// The work that makes one image's tensor: it fills its row of the engine batch
/// ([`EnginePool::image_len`](super::EnginePool::image_len) values, NCHW f32, every value
/// written) and returns the size of the image it decoded. Run once, on an engine thread, by the
/// worker that took the image.
pub type Prepare = Box<dyn FnOnce(&mut [f32]) -> Result<DecodedSize, PrepareError> + Send>;

/// The size of the image a [`Prepare`] decoded, before resizing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodedSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Logits of one image and where its time went.
#[derive(Debug, Clone)]
pub struct Inference {
    /// `num_classes` logits.
    pub logits: Vec<f32>,
    /// Time spent queued before an instance took it.
    pub queue_time: Duration,
    /// Time its preparation took on the engine's threads (zero for a queued tensor).
    pub prepare_time: Duration,
    /// What its preparation decoded (`None` for a queued tensor).
    pub decoded_size: Option<DecodedSize>,
    /// Forward-pass time of the batch it ran in.
    pub inference_time: Duration,
    /// Size of that batch.
    pub batch_size: usize,
}

/// An image as it waits in the queue.
pub(super) enum QueuedImage {
    /// Ready ([`EnginePool::image_len`](super::EnginePool::image_len) values).
    Tensor(Vec<f32>),
    /// Made by the worker, on its engine's threads, right before the forward pass.
    Deferred(Prepare),
}

/// One queued image, from [`EnginePool`](super::EnginePool) to the worker that answers it.
pub(super) struct Job {
    pub(super) image: QueuedImage,
    /// Set by the worker once the image is prepared.
    pub(super) decoded_size: Option<DecodedSize>,
    pub(super) prepare_time: Duration,
    pub(super) enqueued: Instant,
    /// Past this instant the job is answered [`SchedulerError::DeadlineExceeded`] instead of run.
    pub(super) deadline: Option<Instant>,
    pub(super) reply: oneshot::Sender<Result<Inference, SchedulerError>>,
    /// The admission slot, given back when a worker takes the job.
    pub(super) admission: Option<OwnedSemaphorePermit>,
    /// The trace span of the request that queued it (carried into the engine thread).
    pub(super) span: tracing::Span,
    /// Its `queue` span (child of `span`): open until a worker takes the job.
    pub(super) queued: tracing::Span,
}

impl Job {
    /// Whether its deadline has passed at `now`.
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// Taken by an instance: its admission slot goes back to the queue and its queue span ends.
    pub(super) fn leave_queue(&mut self) {
        self.admission = None;
        self.queued = tracing::Span::none();
    }
}
