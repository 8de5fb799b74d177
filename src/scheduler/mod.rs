//! The engine pool and its queue: N engine instances (CPU instances, or MagicMind contexts + queues),
//! each driven by its own worker thread that takes requests from one bounded queue.
//!
//! A worker that becomes free takes the oldest waiting image and every other image already queued,
//! up to the instance's `max_batch`: under load images are batched, an idle server answers a single
//! image at once. With a `max_queue_delay` ([`EnginePool::with_queue_delay`], `--max-queue-delay`)
//! it then waits for more until that long after the oldest image was queued, and never more than
//! half the time left before the earliest deadline among the images it holds. Requests whose caller has gone away (cancelled RPC) are
//! dropped before they reach an engine, and so are requests whose deadline has passed: refused before
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
//! own threads ([`Engine::run_on_engine_threads`]), all at once and right before the forward pass;
//! an image whose preparation fails is answered [`SchedulerError::Prepare`] and the batch runs
//! without it. The server queues work rather than tensors for engines that compute on the host's
//! cores (see [`crate::engine::BackendKind::computes_on_host_cores`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::engine::{Engine, EngineDescription, EngineError};

/// Default images allowed to wait for a free instance (`--queue-capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;

/// Default longest a free instance waits for more images to fill its batch (`--max-queue-delay`):
/// none, it runs what is queued at once.
pub const DEFAULT_MAX_QUEUE_DELAY: Duration = Duration::ZERO;

/// Default bound on an image's estimated wait for an instance (`--max-queue-wait`): 10 s. With the
/// default queue capacity (256) a saturated 2-core CPU server (~14 img/s) would otherwise let an
/// accepted call wait ~18 s.
pub const DEFAULT_MAX_QUEUE_WAIT: Duration = Duration::from_secs(10);

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
        /// Values expected ([`EnginePool::image_len`]).
        expected: usize,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The image's preparation ([`Prepare`]) failed or panicked; the rest of its batch ran.
    #[error(transparent)]
    Prepare(PrepareError),
}

/// Why a [`Prepare`] failed (the server's is a `PreprocessError`: downcast it).
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// The work that makes one image's tensor: it fills its row of the engine batch
/// ([`EnginePool::image_len`] values, NCHW f32, every value written) and says what it prepared. Run
/// once, on an engine thread, by the worker that took the image.
pub type Prepare = Box<dyn FnOnce(&mut [f32]) -> Result<PreparedImage, PrepareError> + Send>;

/// What a [`Prepare`] made the tensor from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreparedImage {
    /// Decoded image size, before resizing.
    pub width: u32,
    pub height: u32,
}

/// An image as it waits in the queue.
enum QueuedImage {
    /// Ready ([`EnginePool::image_len`] values).
    Tensor(Vec<f32>),
    /// Made by the worker, on its engine's threads, right before the forward pass.
    Deferred(Prepare),
}

/// A preparation that panicked, as an error.
#[derive(Debug, thiserror::Error)]
#[error("preparing the image panicked: {0}")]
struct PreparePanicked(String);

/// Logits of one image and where its time went.
#[derive(Debug, Clone)]
pub struct Inference {
    /// `num_classes` logits.
    pub logits: Vec<f32>,
    /// Time spent queued before an instance took it.
    pub queue_time: Duration,
    /// Time its preparation took on the engine's threads (zero for a queued tensor).
    pub prepare_time: Duration,
    /// What its preparation said (`None` for a queued tensor).
    pub prepared: Option<PreparedImage>,
    /// Forward-pass time of the batch it ran in.
    pub inference_time: Duration,
    /// Size of that batch.
    pub batch_size: usize,
}

struct Job {
    image: QueuedImage,
    /// Set by the worker once the image is prepared.
    prepared: Option<PreparedImage>,
    prepare_time: Duration,
    enqueued: Instant,
    /// Past this instant the job is answered [`SchedulerError::DeadlineExceeded`] instead of run.
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Inference, SchedulerError>>,
    /// The admission slot, given back when a worker takes the job.
    admission: Option<OwnedSemaphorePermit>,
    /// The trace span of the request that queued it (carried into the engine thread).
    span: tracing::Span,
    /// Its `queue` span (child of `span`): open until a worker takes the job.
    queued: tracing::Span,
}

impl Job {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

/// Counters of the pool (monotonic unless noted).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Images that got logits.
    pub images_done: AtomicU64,
    /// Engine batches run.
    pub batches_run: AtomicU64,
    /// Images that failed in an engine.
    pub images_failed: AtomicU64,
    /// Images dropped because their caller had gone.
    pub images_cancelled: AtomicU64,
    /// Images dropped because their deadline had passed, before they entered the queue or before an
    /// instance ran them.
    pub images_expired: AtomicU64,
    /// Images refused because the queue was full.
    pub images_rejected: AtomicU64,
    /// Images queued or running now (gauge).
    pub in_flight: AtomicUsize,
    /// Engine batches that failed in a row (reset by a batch that succeeds).
    pub failed_in_a_row: AtomicU64,
    /// Recent engine time per image, in nanoseconds (an exponential moving average over batches,
    /// weight 1/4 for the newest; 0 until the first batch has run).
    pub engine_ns_per_image: AtomicU64,
}

/// What [`EnginePool::health`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    /// Every instance is idle or has been running its batch for less than the limit, and the last
    /// batches did not all fail.
    Ok,
    /// An instance has been running one batch for longer than the limit.
    Hung { instance: usize, running: Duration },
    /// The last `batches` batches all failed.
    Failing { batches: u64 },
}

/// A pool of engine instances behind one bounded queue.
pub struct EnginePool {
    sender: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    description: EngineDescription,
    instances: usize,
    capacity: usize,
    admission: Arc<Semaphore>,
    stats: Arc<PoolStats>,
    /// Per instance: when its current batch started, in microseconds since `epoch` plus one; 0
    /// while idle. Written by the worker, read by [`Self::health`].
    busy_since: Arc<[AtomicU64]>,
    epoch: Instant,
    /// Refuse an image whose estimated wait for an instance exceeds this (`None`: no limit).
    max_queue_wait: Option<Duration>,
}

/// Batches that must fail in a row before the pool is reported [`EngineHealth::Failing`].
pub const FAILING_AFTER_BATCHES: u64 = 3;

/// An admission slot: the right to queue one image ([`EnginePool::reserve`]). Dropping it unused
/// gives it back.
#[derive(Debug)]
pub struct QueueSlot {
    permit: OwnedSemaphorePermit,
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
        let busy_since: Arc<[AtomicU64]> = (0..instances).map(|_| AtomicU64::new(0)).collect();
        let epoch = Instant::now();
        let workers = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let receiver = receiver.clone();
                let stats = Arc::clone(&stats);
                let heartbeat = Heartbeat {
                    busy_since: Arc::clone(&busy_since),
                    index: i,
                    epoch,
                };
                std::thread::Builder::new()
                    .name(format!("engine-{i}"))
                    .spawn(move || {
                        worker_loop(i, engine, receiver, stats, max_queue_delay, heartbeat)
                    })
                    .expect("spawning an engine worker thread")
            })
            .collect();
        Self {
            sender: Some(sender),
            workers,
            description,
            instances,
            capacity,
            admission: Arc::new(Semaphore::new(capacity)),
            stats,
            busy_since,
            epoch,
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
        let per_image = self.stats.engine_ns_per_image.load(Ordering::Relaxed);
        let ahead = self.slots_in_use() as u64;
        Duration::from_nanos(ahead.saturating_mul(per_image) / self.instances.max(1) as u64)
    }

    /// Whether the instances are working: none stuck in one batch for longer than `hang_after`,
    /// and not the last [`FAILING_AFTER_BATCHES`] batches all failed.
    pub fn health(&self, hang_after: Duration) -> EngineHealth {
        let now = self.epoch.elapsed();
        for (instance, since) in self.busy_since.iter().enumerate() {
            let since = since.load(Ordering::Relaxed);
            if since == 0 {
                continue;
            }
            let running = now.saturating_sub(Duration::from_micros(since - 1));
            if running > hang_after {
                return EngineHealth::Hung { instance, running };
            }
        }
        let failed = self.stats.failed_in_a_row.load(Ordering::Relaxed);
        if failed >= FAILING_AFTER_BATCHES {
            return EngineHealth::Failing { batches: failed };
        }
        EngineHealth::Ok
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
        match Arc::clone(&self.admission).try_acquire_owned() {
            Ok(permit) => Ok(QueueSlot { permit }),
            Err(_) => {
                self.stats.images_rejected.fetch_add(1, Ordering::Relaxed);
                Err(SchedulerError::QueueFull {
                    capacity: self.capacity,
                })
            }
        }
    }

    /// Admission slots taken now (images being prepared or queued; a gauge).
    pub fn slots_in_use(&self) -> usize {
        self.capacity - self.admission.available_permits()
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
            prepared: None,
            prepare_time: Duration::ZERO,
            enqueued: now,
            deadline,
            reply,
            admission: Some(slot.permit),
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
                    capacity: self.capacity,
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(SchedulerError::ShuttingDown),
        }
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlightGuard(&self.stats);
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

struct InFlightGuard<'a>(&'a PoolStats);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's "running a batch since" mark.
struct Heartbeat {
    busy_since: Arc<[AtomicU64]>,
    index: usize,
    epoch: Instant,
}

impl Heartbeat {
    fn busy(&self) {
        let micros = self.epoch.elapsed().as_micros() as u64 + 1;
        self.busy_since[self.index].store(micros, Ordering::Relaxed);
    }

    fn idle(&self) {
        self.busy_since[self.index].store(0, Ordering::Relaxed);
    }
}

fn worker_loop(
    index: usize,
    mut engine: Box<dyn Engine>,
    receiver: Receiver<Job>,
    stats: Arc<PoolStats>,
    max_queue_delay: Duration,
    heartbeat: Heartbeat,
) {
    let desc = engine.describe();
    let max_batch = desc.max_batch.max(1);
    let image_len = desc.image_len();
    let mut input = vec![0f32; max_batch * image_len];
    let mut logits = vec![0f32; max_batch * desc.num_classes];
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    tracing::debug!(instance = index, max_batch, "engine worker started");
    // `recv` fails only when every sender is gone and the queue is empty: that is shutdown.
    while let Ok(first) = receiver.recv() {
        batch.clear();
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Dynamic batching: wait a little for more, up to the first image's queue delay, and
        // spend at most half the time an image has left before its deadline (the rest is for the
        // forward pass): waiting must not be what makes an image miss its deadline.
        if !max_queue_delay.is_zero() && batch.len() < max_batch {
            let now = Instant::now();
            let latest = |job: &Job, until: Instant| {
                job.deadline.map_or(until, |d| {
                    until.min(now + d.saturating_duration_since(now) / 2)
                })
            };
            let mut until = batch[0].enqueued + max_queue_delay;
            for job in &batch {
                until = latest(job, until);
            }
            while batch.len() < max_batch {
                match receiver.recv_deadline(until) {
                    Ok(job) => {
                        until = latest(&job, until);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        // Taken by an instance: their admission slots go back to the queue (and their queue
        // spans end).
        for job in &mut batch {
            job.admission = None;
            job.queued = tracing::Span::none();
        }
        // Drop work whose deadline has passed (answered DeadlineExceeded, in case its caller still
        // waits) and work whose caller has gone (cancelled RPC): neither reaches the engine.
        let now = Instant::now();
        for job in batch.extract_if(.., |job| job.expired(now)) {
            stats.images_expired.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(Err(SchedulerError::DeadlineExceeded));
        }
        batch.retain(|job| {
            let alive = !job.reply.is_closed();
            if !alive {
                stats.images_cancelled.fetch_add(1, Ordering::Relaxed);
            }
            alive
        });
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        heartbeat.busy();
        fill_input(&*engine, &mut batch, &mut input, image_len);
        if batch.is_empty() {
            heartbeat.idle();
            continue;
        }
        let n = batch.len();
        let (infer_spans, batch_span) = engine_spans(index, &batch);
        let forward_started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = batch_span.enter();
            engine.infer(
                &input[..n * image_len],
                n,
                &mut logits[..n * desc.num_classes],
            )
        }))
        .unwrap_or_else(|panic| {
            Err(EngineError::Backend {
                backend: desc.backend,
                message: format!("engine panicked: {}", panic_message(&*panic)),
            })
        });
        let inference_time = forward_started.elapsed();
        heartbeat.idle();
        tracing::debug!(
            instance = index,
            batch = n,
            prepare_ms = (forward_started - started).as_secs_f64() * 1e3,
            forward_ms = inference_time.as_secs_f64() * 1e3,
            "batch run"
        );
        if outcome.is_ok() {
            // What the queue-wait estimate needs: the worker's whole time per image (preparing
            // included).
            let worker_time = started.elapsed();
            let per_image = (worker_time.as_nanos() / n as u128).min(u64::MAX as u128) as u64;
            let old = stats.engine_ns_per_image.load(Ordering::Relaxed);
            let new = if old == 0 {
                per_image
            } else {
                (old.saturating_mul(3) / 4).saturating_add(per_image / 4)
            };
            stats.engine_ns_per_image.store(new, Ordering::Relaxed);
        }
        drop(batch_span);
        drop(infer_spans);
        stats.batches_run.fetch_add(1, Ordering::Relaxed);
        match &outcome {
            Ok(()) => stats.failed_in_a_row.store(0, Ordering::Relaxed),
            Err(_) => {
                stats.failed_in_a_row.fetch_add(1, Ordering::Relaxed);
            }
        }
        match outcome {
            Ok(()) => {
                stats.images_done.fetch_add(n as u64, Ordering::Relaxed);
                for (job, row) in batch.drain(..).zip(logits.chunks_exact(desc.num_classes)) {
                    let _ = job.reply.send(Ok(Inference {
                        logits: row.to_vec(),
                        queue_time: started.saturating_duration_since(job.enqueued),
                        prepare_time: job.prepare_time,
                        prepared: job.prepared,
                        inference_time,
                        batch_size: n,
                    }));
                }
            }
            Err(err) => {
                tracing::error!(instance = index, error = %err, batch = n, "engine failed");
                stats.images_failed.fetch_add(n as u64, Ordering::Relaxed);
                let message = err.to_string();
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(SchedulerError::Engine(EngineError::Backend {
                            backend: desc.backend,
                            message: message.clone(),
                        })));
                }
            }
        }
    }
    tracing::debug!(instance = index, "engine worker stopped");
}

/// Put the images of `batch` into the first rows of `input`, in order: copy the queued tensors and
/// run the deferred preparations, all at once on `engine`'s threads. A job whose preparation fails
/// (or panics) is answered [`SchedulerError::Prepare`] and leaves the batch; the rows of the jobs
/// after it move up so the batch stays contiguous.
fn fill_input(engine: &dyn Engine, batch: &mut Vec<Job>, input: &mut [f32], image_len: usize) {
    /// One job and its row, with what went wrong preparing it.
    struct Cell<'a> {
        row: &'a mut [f32],
        job: &'a mut Job,
        failed: Option<PrepareError>,
    }
    let n = batch.len();
    let cells: Vec<Mutex<Cell<'_>>> = input[..n * image_len]
        .chunks_exact_mut(image_len)
        .zip(batch.iter_mut())
        .map(|(row, job)| {
            Mutex::new(Cell {
                row,
                job,
                failed: None,
            })
        })
        .collect();
    engine.run_on_engine_threads(n, &|i| {
        let mut guard = cells[i].lock().unwrap_or_else(|p| p.into_inner());
        let Cell { row, job, failed } = &mut *guard;
        match std::mem::replace(&mut job.image, QueuedImage::Tensor(Vec::new())) {
            QueuedImage::Tensor(image) => row.copy_from_slice(&image),
            QueuedImage::Deferred(prepare) => {
                let _span = tracing::info_span!(parent: &job.span, "preprocess").entered();
                let started = Instant::now();
                match std::panic::catch_unwind(AssertUnwindSafe(|| prepare(row))) {
                    Ok(Ok(prepared)) => {
                        job.prepared = Some(prepared);
                        job.prepare_time = started.elapsed();
                    }
                    Ok(Err(err)) => *failed = Some(err),
                    Err(panic) => *failed = Some(Box::new(PreparePanicked(panic_message(&*panic)))),
                }
            }
        }
    });
    let failures: Vec<Option<PrepareError>> = cells
        .into_iter()
        .map(|cell| cell.into_inner().unwrap_or_else(|p| p.into_inner()).failed)
        .collect();
    let mut kept = 0;
    for (i, (job, failed)) in std::mem::take(batch).into_iter().zip(failures).enumerate() {
        match failed {
            None => {
                if kept != i {
                    input.copy_within(i * image_len..(i + 1) * image_len, kept * image_len);
                }
                kept += 1;
                batch.push(job);
            }
            // A bad image is the caller's error, not the engine's (not counted in `images_failed`).
            Some(err) => {
                let _ = job.reply.send(Err(SchedulerError::Prepare(err)));
            }
        }
    }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The trace spans of one engine batch, on the worker thread: per image an `engine.infer` span,
/// child of the request span its job carries; and one `engine.batch` span under the first image's,
/// following from (OTLP: linking) every request span of the batch.
fn engine_spans(instance: usize, batch: &[Job]) -> (Vec<tracing::Span>, tracing::Span) {
    let n = batch.len();
    let infer: Vec<tracing::Span> = batch
        .iter()
        .map(|job| tracing::info_span!(parent: &job.span, "engine.infer", instance, batch_size = n))
        .collect();
    let batch_span = match infer.first() {
        Some(first) => tracing::info_span!(parent: first, "engine.batch", instance, batch_size = n),
        None => tracing::Span::none(),
    };
    for job in batch {
        batch_span.follows_from(&job.span);
    }
    (infer, batch_span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake engine: logits[c] = first input value · (c + 1); records the size of every batch it is
    /// given (on entry, before the gate); can be held (blocks until released) or made to panic on a
    /// marker input.
    struct FakeEngine {
        batches: Arc<Mutex<Vec<usize>>>,
        gate: Option<Arc<(Mutex<bool>, std::sync::Condvar)>>,
        delay: Duration,
    }

    const SIDE: usize = 2;
    const IMAGE_LEN: usize = 3 * SIDE * SIDE;
    const CLASSES: usize = 3;
    const PANIC_MARKER: f32 = -999.0;

    impl Engine for FakeEngine {
        fn describe(&self) -> EngineDescription {
            EngineDescription {
                backend: crate::engine::BackendKind::Cpu,
                channels: 3,
                input_size: SIDE,
                num_classes: CLASSES,
                max_batch: 4,
                detail: String::new(),
            }
        }
        fn infer(
            &mut self,
            input: &[f32],
            batch: usize,
            logits: &mut [f32],
        ) -> Result<(), EngineError> {
            self.batches.lock().unwrap().push(batch);
            if let Some(gate) = &self.gate {
                let (lock, cv) = &**gate;
                let mut open = lock.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
            }
            std::thread::sleep(self.delay);
            for b in 0..batch {
                let x = input[b * IMAGE_LEN];
                if x == PANIC_MARKER {
                    panic!("marker input");
                }
                for c in 0..CLASSES {
                    logits[b * CLASSES + c] = x * (c as f32 + 1.0);
                }
            }
            Ok(())
        }
    }

    fn image(v: f32) -> Vec<f32> {
        vec![v; IMAGE_LEN]
    }

    fn pool(
        instances: usize,
        capacity: usize,
        delay: Duration,
        gate: Option<Arc<(Mutex<bool>, std::sync::Condvar)>>,
    ) -> (EnginePool, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let engines = (0..instances)
            .map(|_| {
                Box::new(FakeEngine {
                    batches: Arc::clone(&batches),
                    gate: gate.clone(),
                    delay,
                }) as Box<dyn Engine>
            })
            .collect();
        (EnginePool::new(engines, capacity), batches)
    }

    fn open(gate: &Arc<(Mutex<bool>, std::sync::Condvar)>) {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_image_gets_its_own_logits_and_queued_images_are_batched() {
        let (pool, batches) = pool(1, 64, Duration::from_millis(30), None);
        let pool = Arc::new(pool);
        let mut tasks = Vec::new();
        for i in 0..10 {
            let p = Arc::clone(&pool);
            tasks.push(tokio::spawn(async move {
                (i, p.infer(image(i as f32), None).await)
            }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            let r = r.unwrap();
            assert_eq!(r.logits, vec![i as f32, 2.0 * i as f32, 3.0 * i as f32]);
            assert!(r.batch_size >= 1 && r.batch_size <= 4);
        }
        let b = batches.lock().unwrap().clone();
        assert_eq!(b.iter().sum::<usize>(), 10);
        assert!(b.iter().any(|&n| n > 1), "no batching happened: {b:?}");
        assert!(b.iter().all(|&n| n <= 4), "max_batch exceeded: {b:?}");
        assert_eq!(pool.stats().images_done.load(Ordering::Relaxed), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn images_whose_estimated_wait_is_too_long_are_refused_at_once() {
        // One instance taking ≥ 100 ms an image; refuse beyond an estimated 250 ms wait.
        let (pool, _) = pool(1, 64, Duration::from_millis(100), None);
        let pool = pool.with_max_queue_wait(Some(Duration::from_millis(250)));
        // Nothing has run yet: no estimate, nothing refused.
        assert_eq!(pool.estimated_queue_wait(), Duration::ZERO);
        pool.infer(image(1.0), None).await.unwrap();
        let per_image = pool.stats().engine_ns_per_image.load(Ordering::Relaxed);
        assert!(per_image >= 100_000_000, "{per_image} ns");
        // Admitted images that no instance has taken yet (held slots) are what an image waits for.
        let first = pool.reserve().unwrap();
        let second = pool.reserve().unwrap(); // 1 ahead: ~100 ms
        let third = pool.reserve().unwrap(); // 2 ahead: ~200 ms
        let refused = pool.reserve(); // 3 ahead: ≥ 300 ms > 250 ms
        match refused {
            Err(SchedulerError::QueueWaitTooLong {
                ahead: 3,
                estimated,
                limit,
            }) => {
                assert!(estimated >= Duration::from_millis(300), "{estimated:?}");
                assert_eq!(limit, Duration::from_millis(250));
            }
            other => panic!("expected QueueWaitTooLong, got {other:?}"),
        }
        assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
        drop((second, third));
        assert!(pool.reserve().is_ok(), "1 ahead again: admitted");
        drop(first);
        // Without a limit only the capacity counts.
        let (unlimited, _) = pool_with_run(Duration::from_millis(100)).await;
        let held: Vec<_> = (0..10).map(|_| unlimited.reserve().unwrap()).collect();
        assert_eq!(held.len(), 10);
    }

    async fn pool_with_run(delay: Duration) -> (EnginePool, Arc<Mutex<Vec<usize>>>) {
        let (pool, batches) = pool(1, 64, delay, None);
        let pool = pool.with_max_queue_wait(None);
        pool.infer(image(1.0), None).await.unwrap();
        (pool, batches)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_is_refused_and_cancelled_work_is_dropped() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (pool, batches) = pool(1, 1, Duration::ZERO, Some(Arc::clone(&gate)));
        let pool = Arc::new(pool);
        // First image: taken by the worker, which then blocks on the gate.
        let p = Arc::clone(&pool);
        let first = tokio::spawn(async move { p.infer(image(1.0), None).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Second: fills the queue (capacity 1); its caller goes away.
        let p = Arc::clone(&pool);
        let cancelled = tokio::spawn(async move { p.infer(image(2.0), None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Third: refused.
        let third = pool.infer(image(3.0), None).await;
        assert!(
            matches!(third, Err(SchedulerError::QueueFull { capacity: 1 })),
            "{third:?}"
        );
        cancelled.abort();
        let _ = cancelled.await;
        open(&gate);
        assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
        // The worker drops the cancelled image without running it (wait until it got to it) ...
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.stats().images_cancelled.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "cancelled image was never dropped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ... and keeps working; the cancelled image never reached the engine.
        assert_eq!(pool.infer(image(4.0), None).await.unwrap().logits[2], 12.0);
        assert_eq!(pool.stats().images_cancelled.load(Ordering::Relaxed), 1);
        assert_eq!(batches.lock().unwrap().iter().sum::<usize>(), 2);
        assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
    }

    type Gate = Arc<(Mutex<bool>, std::sync::Condvar)>;

    /// A one-instance pool (max batch 4, 8 slots) whose engine holds a first image (value 1.0) at
    /// a closed gate; returns once the engine has it.
    async fn pool_holding_a_first_image() -> (
        Arc<EnginePool>,
        Arc<Mutex<Vec<usize>>>,
        Gate,
        tokio::task::JoinHandle<Result<Inference, SchedulerError>>,
    ) {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (pool, batches) = pool(1, 8, Duration::ZERO, Some(Arc::clone(&gate)));
        let pool = Arc::new(pool);
        let p = Arc::clone(&pool);
        let first = tokio::spawn(async move { p.infer(image(1.0), None).await });
        let guard = Instant::now() + Duration::from_secs(30);
        while batches.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < guard,
                "the engine never got the first image"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (pool, batches, gate, first)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_deadline_passes_in_the_queue_never_reaches_the_engine() {
        // First image: handed to the engine, which holds it at the gate.
        let (pool, batches, gate, first) = pool_holding_a_first_image().await;
        // Second image, with a deadline: polled once so that it is queued now, behind the first;
        // its caller keeps waiting for the answer (not a cancellation).
        let deadline = Instant::now() + Duration::from_millis(300);
        use std::future::Future as _;
        let mut late = Box::pin(pool.infer(image(2.0), Some(deadline)));
        std::future::poll_fn(|cx| {
            assert!(late.as_mut().poll(cx).is_pending(), "not queued");
            std::task::Poll::Ready(())
        })
        .await;
        assert_eq!(pool.stats().in_flight.load(Ordering::Relaxed), 2);
        // The deadline passes while it waits; then the engine is released.
        while Instant::now() <= deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        open(&gate);
        assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
        let late = tokio::time::timeout(Duration::from_secs(30), late)
            .await
            .expect("the expired image was never answered");
        assert!(
            matches!(late, Err(SchedulerError::DeadlineExceeded)),
            "{late:?}"
        );
        // The engine only ever saw the first image; the worker keeps serving, and a generous
        // deadline is met.
        assert_eq!(*batches.lock().unwrap(), vec![1]);
        let generous = Instant::now() + Duration::from_secs(600);
        let r = pool.infer(image(3.0), Some(generous)).await.unwrap();
        assert_eq!(r.logits[0], 3.0);
        assert_eq!(*batches.lock().unwrap(), vec![1, 1]);
        // Already expired: refused before the queue.
        let refused = pool.infer(image(4.0), Some(Instant::now())).await;
        assert!(
            matches!(refused, Err(SchedulerError::DeadlineExceeded)),
            "{refused:?}"
        );
        assert_eq!(*batches.lock().unwrap(), vec![1, 1]);
        let stats = pool.stats();
        assert_eq!(stats.images_expired.load(Ordering::Relaxed), 2);
        assert_eq!(stats.images_cancelled.load(Ordering::Relaxed), 0);
        assert_eq!(stats.images_done.load(Ordering::Relaxed), 2);
        assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn engine_panic_becomes_an_error_and_the_worker_survives() {
        let (pool, _) = pool(1, 8, Duration::ZERO, None);
        let err = pool.infer(image(PANIC_MARKER), None).await.unwrap_err();
        match err {
            SchedulerError::Engine(EngineError::Backend { message, .. }) => {
                assert!(message.contains("panicked"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.infer(image(5.0), None).await.unwrap().logits[1], 10.0);
        assert_eq!(pool.stats().images_failed.load(Ordering::Relaxed), 1);
    }

    /// A deferred image: fills its row with `v` and reports a `v`×`v` image.
    fn prepared(v: f32) -> Prepare {
        Box::new(move |row: &mut [f32]| {
            assert_eq!(row.len(), IMAGE_LEN, "a whole row");
            row.fill(v);
            Ok(PreparedImage {
                width: v as u32,
                height: v as u32,
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_images_are_prepared_by_the_worker_and_failures_leave_the_batch() {
        // The engine holds the first image at the gate, so the next four queue up as one batch.
        let (pool, batches, gate, first) = pool_holding_a_first_image().await;
        let cancelled_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran = Arc::clone(&cancelled_ran);
        let cancelled: Prepare = Box::new(move |row: &mut [f32]| {
            ran.store(true, Ordering::SeqCst);
            row.fill(0.0);
            Ok(PreparedImage::default())
        });
        let failing: Prepare = Box::new(|_row: &mut [f32]| Err("not an image".into()));
        let panicking: Prepare = Box::new(|_row: &mut [f32]| panic!("decoder bug"));
        let slots: Vec<QueueSlot> = (0..5).map(|_| pool.reserve().unwrap()).collect();
        let mut slots = slots.into_iter();
        let mut queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>> = vec![
            Box::pin(pool.infer_prepared_in(slots.next().unwrap(), prepared(2.0), None)),
            Box::pin(pool.infer_prepared_in(slots.next().unwrap(), failing, None)),
            Box::pin(pool.infer_prepared_in(slots.next().unwrap(), cancelled, None)),
            Box::pin(pool.infer_in(slots.next().unwrap(), image(4.0), None)),
            // Fifth: past the engine's max batch (4), so in a batch of its own.
            Box::pin(pool.infer_prepared_in(slots.next().unwrap(), panicking, None)),
        ];
        // Poll each once so that all are queued, in this order, behind the first.
        std::future::poll_fn(|cx| {
            for f in &mut queued {
                assert!(f.as_mut().poll(cx).is_pending(), "not queued");
            }
            std::task::Poll::Ready(())
        })
        .await;
        // The caller of the third goes away before the worker takes it.
        drop(queued.remove(2));
        open(&gate);
        assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
        let mut answers = Vec::new();
        for f in queued {
            answers.push(
                tokio::time::timeout(Duration::from_secs(30), f)
                    .await
                    .expect("answered"),
            );
        }
        // The second batch the engine ran held only the two good images, in order: the tensor's row
        // moved up next to the prepared one. The third (the panicking image alone) never reached it.
        assert_eq!(*batches.lock().unwrap(), vec![1, 2]);
        let good = answers[0].as_ref().unwrap();
        assert_eq!(good.logits, vec![2.0, 4.0, 6.0]);
        assert_eq!(good.batch_size, 2);
        assert_eq!(
            good.prepared,
            Some(PreparedImage {
                width: 2,
                height: 2
            })
        );
        assert!(good.prepare_time > Duration::ZERO);
        let tensor = answers[2].as_ref().unwrap();
        assert_eq!(tensor.logits, vec![4.0, 8.0, 12.0]);
        assert_eq!(tensor.prepared, None);
        match &answers[1] {
            Err(SchedulerError::Prepare(e)) => assert_eq!(e.to_string(), "not an image"),
            other => panic!("unexpected {other:?}"),
        }
        match &answers[3] {
            Err(SchedulerError::Prepare(e)) => {
                assert!(e.to_string().contains("panicked: decoder bug"), "{e}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            !cancelled_ran.load(Ordering::SeqCst),
            "a cancelled image was prepared"
        );
        let stats = pool.stats();
        assert_eq!(stats.images_cancelled.load(Ordering::Relaxed), 1);
        assert_eq!(stats.images_done.load(Ordering::Relaxed), 3);
        assert_eq!(stats.images_failed.load(Ordering::Relaxed), 0);
        assert_eq!(pool.slots_in_use(), 0);
        // The worker keeps serving.
        let slot = pool.reserve().unwrap();
        let again = pool
            .infer_prepared_in(slot, prepared(5.0), None)
            .await
            .unwrap();
        assert_eq!(again.logits[0], 5.0);
    }

    #[tokio::test]
    async fn wrong_image_length_is_refused() {
        let (pool, _) = pool(1, 8, Duration::ZERO, None);
        let err = pool.infer(vec![0.0; 5], None).await.unwrap_err();
        assert!(matches!(
            err,
            SchedulerError::BadInput {
                actual: 5,
                expected: 12
            }
        ));
    }

    #[tokio::test]
    async fn shutdown_answers_queued_work_first() {
        let (mut pool, _) = pool(2, 8, Duration::from_millis(10), None);
        let r = pool.infer(image(1.5), None).await.unwrap();
        assert_eq!(r.logits[0], 1.5);
        pool.shutdown();
        assert!(matches!(
            pool.infer(image(1.0), None).await,
            Err(SchedulerError::ShuttingDown)
        ));
    }

    #[tokio::test]
    async fn admission_slots_are_taken_before_the_image_and_given_back() {
        let (pool, _) = pool(1, 2, Duration::ZERO, None);
        let a = pool.reserve().unwrap();
        let b = pool.reserve().unwrap();
        assert_eq!(pool.slots_in_use(), 2);
        // No third slot, at once (never a wait), counted as a rejection.
        assert!(matches!(
            pool.reserve(),
            Err(SchedulerError::QueueFull { capacity: 2 })
        ));
        assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
        // An unused slot dropped is given back; a used one when an instance takes the image.
        drop(a);
        assert_eq!(pool.slots_in_use(), 1);
        let r = pool.infer_in(b, image(2.0), None).await.unwrap();
        assert_eq!(r.logits[0], 2.0);
        assert_eq!(pool.slots_in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_queue_delay_forms_larger_batches_and_never_outlives_a_deadline() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let engine = Box::new(FakeEngine {
            batches: Arc::clone(&batches),
            gate: None,
            delay: Duration::ZERO,
        }) as Box<dyn Engine>;
        let pool = Arc::new(EnginePool::with_queue_delay(
            vec![engine],
            16,
            Duration::from_millis(400),
        ));
        // Three images sent 50 ms apart: without a delay the idle instance would run each alone.
        let mut calls = Vec::new();
        for i in 0..3 {
            let p = Arc::clone(&pool);
            calls.push(tokio::spawn(
                async move { p.infer(image(i as f32), None).await },
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(*batches.lock().unwrap(), vec![3]);

        // A deadline shorter than the delay: the batch runs before it, not after the delay.
        let started = Instant::now();
        let r = pool
            .infer(
                image(1.0),
                Some(Instant::now() + Duration::from_millis(100)),
            )
            .await;
        // Run at its deadline (or answered DeadlineExceeded exactly then): well before 400 ms.
        assert!(
            started.elapsed() < Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
        assert!(
            r.is_ok() || matches!(r, Err(SchedulerError::DeadlineExceeded)),
            "{r:?}"
        );
        // A full batch does not wait.
        let started = Instant::now();
        let many: Vec<_> = (0..4)
            .map(|i| {
                let p = Arc::clone(&pool);
                tokio::spawn(async move { p.infer(image(i as f32), None).await })
            })
            .collect();
        for c in many {
            c.await.unwrap().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_follows_a_hung_and_a_failing_engine() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (pool, _) = pool(1, 4, Duration::ZERO, Some(Arc::clone(&gate)));
        let pool = Arc::new(pool);
        assert_eq!(pool.health(Duration::from_millis(50)), EngineHealth::Ok);
        let p = Arc::clone(&pool);
        let held = tokio::spawn(async move { p.infer(image(1.0), None).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(matches!(
            pool.health(Duration::from_millis(50)),
            EngineHealth::Hung { instance: 0, .. }
        ));
        // Within a longer limit it is just busy.
        assert_eq!(pool.health(Duration::from_secs(60)), EngineHealth::Ok);
        open(&gate);
        held.await.unwrap().unwrap();
        assert_eq!(pool.health(Duration::from_millis(50)), EngineHealth::Ok);

        // Batches failing in a row (the engine panics on the marker), then one success.
        for _ in 0..FAILING_AFTER_BATCHES {
            assert!(pool.infer(image(PANIC_MARKER), None).await.is_err());
        }
        assert_eq!(
            pool.health(Duration::from_secs(60)),
            EngineHealth::Failing {
                batches: FAILING_AFTER_BATCHES
            }
        );
        pool.infer(image(2.0), None).await.unwrap();
        assert_eq!(pool.health(Duration::from_secs(60)), EngineHealth::Ok);
    }
}
