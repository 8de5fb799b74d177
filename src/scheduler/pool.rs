//! [`EnginePool`]: the engine instances behind one bounded queue, and the calls a request makes on
//! it (admission, queueing, waiting for its logits).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use super::admission::{Admission, QueueSlot};
use super::error::SchedulerError;
use super::health::{EngineHealth, Heartbeats};
use super::job::{Inference, Job, Prepare, QueuedImage};
use super::queue_wait;
use super::stats::{InPoolGuard, PoolStats};
use super::worker::{Worker, DEFAULT_MAX_QUEUE_DELAY};
use crate::engine::{Engine, EngineDescription};

/// A pool of engine instances behind one bounded queue.
pub struct EnginePool {
    sender: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    description: EngineDescription,
    instances: usize,
    admission: Admission,
    stats: Arc<PoolStats>,
    heartbeats: Heartbeats,
    /// Refuse an image whose estimated wait for an instance exceeds this (`None`: no limit).
    max_queue_wait: Option<Duration>,
}

impl EnginePool {
    /// Start one worker thread per engine. `queue_capacity` bounds the images waiting for an instance.
    ///
    /// # Panics
    /// When `engines` is empty (a programming error: callers create at least one instance).
    pub fn new(engines: Vec<Box<dyn Engine>>, queue_capacity: usize) -> Self {
        Self::with_queue_delay(engines, queue_capacity, DEFAULT_MAX_QUEUE_DELAY)
    }

    /// [`Self::new`] with dynamic batching: an instance that has taken an image and finds fewer
    /// than `max_batch` queued waits for more until `max_queue_delay` after that image was queued
    /// — and at most half the time left before the earliest deadline of the images it holds —
    /// then runs what it has.
    ///
    /// # Panics
    /// When `engines` is empty.
    pub fn with_queue_delay(
        engines: Vec<Box<dyn Engine>>,
        queue_capacity: usize,
        max_queue_delay: Duration,
    ) -> Self {
        assert!(
            !engines.is_empty(),
            "an engine pool needs at least one engine"
        );
        let description = engines[0].describe();
        let instances = engines.len();
        let capacity = queue_capacity.max(1);
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(capacity);
        let stats = Arc::new(PoolStats::default());
        let heartbeats = Heartbeats::new(instances);
        let workers = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let worker = Worker::new(
                    i,
                    engine,
                    receiver.clone(),
                    Arc::clone(&stats),
                    max_queue_delay,
                    heartbeats.heartbeat(i),
                );
                std::thread::Builder::new()
                    .name(format!("engine-{i}"))
                    .spawn(move || worker.run())
                    .expect("spawning an engine worker thread")
            })
            .collect();
        Self {
            sender: Some(sender),
            workers,
            description,
            instances,
            admission: Admission::new(capacity),
            stats,
            heartbeats,
            max_queue_wait: None,
        }
    }

    /// Refuse images at admission ([`SchedulerError::QueueWaitTooLong`]) when the images already
    /// admitted would keep them waiting longer than `limit`: the estimate is images ahead × the
    /// recent engine time per image / instances. `None` (or zero): no limit besides the queue
    /// capacity. Under overload this bounds how long an accepted image waits, where a deep queue
    /// alone would let every accepted call wait `capacity` images long.
    pub fn with_max_queue_wait(mut self, limit: Option<Duration>) -> Self {
        self.max_queue_wait = limit.filter(|l| !l.is_zero());
        self
    }

    /// The wait an image admitted now would have before an instance takes it (estimated from the
    /// images ahead and the recent engine time per image; zero before any batch has run).
    pub fn estimated_queue_wait(&self) -> Duration {
        queue_wait::estimate(
            self.slots_in_use(),
            self.stats.engine_ns_per_image.load(Ordering::Relaxed),
            self.instances,
        )
    }

    /// Whether the instances are working: none stuck in one batch for longer than `hang_after`,
    /// and not the last [`FAILING_AFTER_BATCHES`](super::FAILING_AFTER_BATCHES) batches all
    /// failed.
    pub fn health(&self, hang_after: Duration) -> EngineHealth {
        let failed = self.stats.failed_in_a_row.load(Ordering::Relaxed);
        self.heartbeats.health(hang_after, failed)
    }

    /// Take an admission slot, or [`SchedulerError::QueueFull`] at once when all `queue_capacity`
    /// are taken (images being prepared or waiting for an instance). Never waits.
    pub fn reserve(&self) -> Result<QueueSlot, SchedulerError> {
        if self.sender.is_none() {
            return Err(SchedulerError::ShuttingDown);
        }
        if let Some(limit) = self.max_queue_wait {
            let estimated = self.estimated_queue_wait();
            if estimated > limit {
                self.stats.images_rejected.fetch_add(1, Ordering::Relaxed);
                return Err(SchedulerError::QueueWaitTooLong {
                    ahead: self.slots_in_use(),
                    estimated,
                    limit,
                });
            }
        }
        self.admission.try_take().ok_or_else(|| {
            self.stats.images_rejected.fetch_add(1, Ordering::Relaxed);
            SchedulerError::QueueFull {
                capacity: self.admission.capacity(),
            }
        })
    }

    /// Whether [`Self::reserve`] would refuse an image now (queue full, estimated wait over
    /// `max_queue_wait`, shutting down), without taking a slot: the check a front end makes at a
    /// request's headers, before its body is read. A refusal counts as a rejected image.
    pub fn admission_check(&self) -> Result<(), SchedulerError> {
        if self.sender.is_none() {
            return Err(SchedulerError::ShuttingDown);
        }
        let refusal = if let Some(limit) = self
            .max_queue_wait
            .filter(|&limit| self.estimated_queue_wait() > limit)
        {
            Some(SchedulerError::QueueWaitTooLong {
                ahead: self.slots_in_use(),
                estimated: self.estimated_queue_wait(),
                limit,
            })
        } else if self.slots_in_use() >= self.admission.capacity() {
            Some(SchedulerError::QueueFull {
                capacity: self.admission.capacity(),
            })
        } else {
            None
        };
        match refusal {
            Some(e) => {
                self.stats.images_rejected.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Admission slots taken now (images being prepared or queued; a gauge).
    pub fn slots_in_use(&self) -> usize {
        self.admission.in_use()
    }

    /// Description of the (identical) instances.
    pub fn description(&self) -> &EngineDescription {
        &self.description
    }

    /// Number of instances.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Pool counters.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Values one preprocessed image has ([`EngineDescription::image_len`]).
    pub fn image_len(&self) -> usize {
        self.description.image_len()
    }

    /// Queue one preprocessed image (NCHW f32, [`Self::image_len`] values) and wait for its logits.
    /// Dropping the returned future before it completes cancels the image if no instance took it yet.
    ///
    /// With a `deadline`, an image whose deadline has already passed is refused before it enters the
    /// queue, and one whose deadline passes while it waits is dropped by the worker that takes it:
    /// both are answered [`SchedulerError::DeadlineExceeded`] and never reach an engine. (The wait
    /// itself is not bounded here: the caller bounds it, see `tokio::time::timeout_at`.)
    pub async fn infer(
        &self,
        image: Vec<f32>,
        deadline: Option<Instant>,
    ) -> Result<Inference, SchedulerError> {
        let slot = self.reserve()?;
        self.infer_in(slot, image, deadline).await
    }

    /// [`Self::infer`] with a slot taken earlier by [`Self::reserve`] (before the image was
    /// prepared).
    pub async fn infer_in(
        &self,
        slot: QueueSlot,
        image: Vec<f32>,
        deadline: Option<Instant>,
    ) -> Result<Inference, SchedulerError> {
        if image.len() != self.image_len() {
            return Err(SchedulerError::BadInput {
                actual: image.len(),
                expected: self.image_len(),
            });
        }
        self.submit(slot, QueuedImage::Tensor(image), deadline)
            .await
    }

    /// [`Self::infer_in`] with the work that makes the image instead of the image: the worker that
    /// takes it runs `prepare` on its engine's threads, with the rest of the batch's, right before
    /// the forward pass (see the module docs). A failed `prepare` is answered
    /// [`SchedulerError::Prepare`]. Dropped unrun if the image expires or its caller goes first.
    pub async fn infer_prepared_in(
        &self,
        slot: QueueSlot,
        prepare: Prepare,
        deadline: Option<Instant>,
    ) -> Result<Inference, SchedulerError> {
        self.submit(slot, QueuedImage::Deferred(prepare), deadline)
            .await
    }

    async fn submit(
        &self,
        slot: QueueSlot,
        image: QueuedImage,
        deadline: Option<Instant>,
    ) -> Result<Inference, SchedulerError> {
        let sender = self.sender.as_ref().ok_or(SchedulerError::ShuttingDown)?;
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            self.stats.images_expired.fetch_add(1, Ordering::Relaxed);
            return Err(SchedulerError::DeadlineExceeded);
        }
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let queued = tracing::info_span!(parent: &span, "queue");
        let job = Job {
            image,
            decoded_size: None,
            prepare_time: Duration::ZERO,
            enqueued: now,
            deadline,
            reply,
            admission: Some(slot.into_permit()),
            span,
            queued,
        };
        match sender.try_send(job) {
            Ok(()) => {}
            // Not reached while every job holds a slot (the channel has as many places as there
            // are slots); kept as the same refusal rather than a panic.
            Err(TrySendError::Full(_)) => {
                self.stats.images_rejected.fetch_add(1, Ordering::Relaxed);
                return Err(SchedulerError::QueueFull {
                    capacity: self.admission.capacity(),
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(SchedulerError::ShuttingDown),
        }
        let _in_pool = InPoolGuard::enter(&self.stats);
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(SchedulerError::ShuttingDown),
        }
    }

    /// Stop taking work, let the workers finish what is queued, and join them.
    pub fn shutdown(&mut self) {
        self.sender = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for EnginePool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
