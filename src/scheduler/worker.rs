//! One worker thread per engine instance ([`Worker::run`]): take the oldest queued image and every
//! other one already queued (up to `max_batch`), wait a little for more with a queue delay, drop
//! what expired or was cancelled, fill the engine's input, run the forward pass, answer every
//! image.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::batch_input::fill_input;
use super::error::{panic_message, SchedulerError};
use super::health::Heartbeat;
use super::job::{Inference, Job};
use super::queue_wait;
use super::stats::PoolStats;
use crate::engine::{Engine, EngineDescription, EngineError};

/// Default longest a free instance waits for more images to fill its batch (`--max-queue-delay`):
/// none, it runs what is queued at once.
pub const DEFAULT_MAX_QUEUE_DELAY: Duration = Duration::ZERO;

/// An engine instance and what its thread needs to serve the queue.
pub(super) struct Worker {
    index: usize,
    engine: Box<dyn Engine>,
    description: EngineDescription,
    max_batch: usize,
    receiver: Receiver<Job>,
    stats: Arc<PoolStats>,
    max_queue_delay: Duration,
    heartbeat: Heartbeat,
    /// The engine's input, planned for `max_batch` images.
    input: Vec<f32>,
    /// The engine's output, planned for `max_batch` images.
    logits: Vec<f32>,
}

impl Worker {
    /// Instance `index`, serving `receiver`.
    pub(super) fn new(
        index: usize,
        engine: Box<dyn Engine>,
        receiver: Receiver<Job>,
        stats: Arc<PoolStats>,
        max_queue_delay: Duration,
        heartbeat: Heartbeat,
    ) -> Self {
        let description = engine.describe();
        let max_batch = description.max_batch.max(1);
        Self {
            index,
            input: vec![0f32; max_batch * description.image_len()],
            logits: vec![0f32; max_batch * description.num_classes],
            engine,
            description,
            max_batch,
            receiver,
            stats,
            max_queue_delay,
            heartbeat,
        }
    }

    /// Serve the queue until every sender is gone and the queue is empty (shutdown).
    pub(super) fn run(mut self) {
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        tracing::debug!(
            instance = self.index,
            max_batch = self.max_batch,
            "engine worker started"
        );
        while let Ok(first) = self.receiver.recv() {
            batch.clear();
            batch.push(first);
            self.collect_batch(&mut batch);
            // Taken by an instance: their admission slots go back to the queue.
            batch.iter_mut().for_each(Job::leave_queue);
            self.drop_expired_and_cancelled(&mut batch);
            if !batch.is_empty() {
                self.run_batch(&mut batch);
            }
        }
        tracing::debug!(instance = self.index, "engine worker stopped");
    }

    /// Add every image already queued, up to `max_batch`; then, with a queue delay, wait for more.
    fn collect_batch(&self, batch: &mut Vec<Job>) {
        while batch.len() < self.max_batch {
            match self.receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if !self.max_queue_delay.is_zero() && batch.len() < self.max_batch {
            self.wait_for_more(batch);
        }
    }

    /// Dynamic batching: wait a little for more, up to the first image's queue delay, and spend
    /// at most half the time an image has left before its deadline (the rest is for the forward
    /// pass): waiting must not be what makes an image miss its deadline.
    fn wait_for_more(&self, batch: &mut Vec<Job>) {
        let now = Instant::now();
        let latest = |job: &Job, until: Instant| {
            job.deadline.map_or(until, |d| {
                until.min(now + d.saturating_duration_since(now) / 2)
            })
        };
        let mut until = batch[0].enqueued + self.max_queue_delay;
        for job in batch.iter() {
            until = latest(job, until);
        }
        while batch.len() < self.max_batch {
            match self.receiver.recv_deadline(until) {
                Ok(job) => {
                    until = latest(&job, until);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
    }

    /// Drop work whose deadline has passed (answered DeadlineExceeded, in case its caller still
    /// waits) and work whose caller has gone (cancelled RPC): neither reaches the engine.
    fn drop_expired_and_cancelled(&self, batch: &mut Vec<Job>) {
        let now = Instant::now();
        for job in batch.extract_if(.., |job| job.expired(now)) {
            self.stats.images_expired.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(Err(SchedulerError::DeadlineExceeded));
        }
        batch.retain(|job| {
            let alive = !job.reply.is_closed();
            if !alive {
                self.stats.images_cancelled.fetch_add(1, Ordering::Relaxed);
            }
            alive
        });
    }

    /// Prepare the batch's input, run the engine on it, and answer every job of it.
    fn run_batch(&mut self, batch: &mut Vec<Job>) {
        let image_len = self.description.image_len();
        let started = Instant::now();
        self.heartbeat.busy();
        fill_input(&*self.engine, batch, &mut self.input, image_len);
        if batch.is_empty() {
            self.heartbeat.idle();
            return;
        }
        let n = batch.len();
        let (infer_spans, batch_span) = engine_spans(self.index, batch);
        let forward_started = Instant::now();
        let outcome = self.forward(n, &batch_span);
        let inference_time = forward_started.elapsed();
        self.heartbeat.idle();
        tracing::debug!(
            instance = self.index,
            batch = n,
            prepare_ms = (forward_started - started).as_secs_f64() * 1e3,
            forward_ms = inference_time.as_secs_f64() * 1e3,
            "batch run"
        );
        if outcome.is_ok() {
            // What the queue-wait estimate needs: the worker's whole time per image (preparing
            // included).
            let old = self.stats.engine_ns_per_image.load(Ordering::Relaxed);
            let new = queue_wait::moving_average(old, started.elapsed(), n);
            self.stats.engine_ns_per_image.store(new, Ordering::Relaxed);
        }
        drop(batch_span);
        drop(infer_spans);
        self.stats.batches_run.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                self.stats.failed_in_a_row.store(0, Ordering::Relaxed);
                self.answer_logits(batch, started, inference_time);
            }
            Err(err) => {
                self.stats.failed_in_a_row.fetch_add(1, Ordering::Relaxed);
                self.answer_failure(batch, &err);
            }
        }
    }

    /// The engine's forward pass on the first `n` rows, inside `span`; a panic becomes an error.
    fn forward(&mut self, n: usize, span: &tracing::Span) -> Result<(), EngineError> {
        let image_len = self.description.image_len();
        let classes = self.description.num_classes;
        let (engine, input, logits) = (&mut self.engine, &self.input, &mut self.logits);
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = span.enter();
            engine.infer(&input[..n * image_len], n, &mut logits[..n * classes])
        }))
        .unwrap_or_else(|panic| {
            Err(EngineError::Backend {
                backend: self.description.backend,
                message: format!("engine panicked: {}", panic_message(&*panic)),
            })
        })
    }

    /// Every job of the batch gets its row of logits.
    fn answer_logits(&self, batch: &mut Vec<Job>, started: Instant, inference_time: Duration) {
        let n = batch.len();
        self.stats
            .images_done
            .fetch_add(n as u64, Ordering::Relaxed);
        let rows = self.logits.chunks_exact(self.description.num_classes);
        for (job, row) in batch.drain(..).zip(rows) {
            let _ = job.reply.send(Ok(Inference {
                logits: row.to_vec(),
                queue_time: started.saturating_duration_since(job.enqueued),
                prepare_time: job.prepare_time,
                decoded_size: job.decoded_size,
                inference_time,
                batch_size: n,
            }));
        }
    }

    /// Every job of the batch gets the engine's error.
    fn answer_failure(&self, batch: &mut Vec<Job>, err: &EngineError) {
        let n = batch.len();
        tracing::error!(instance = self.index, error = %err, batch = n, "engine failed");
        self.stats
            .images_failed
            .fetch_add(n as u64, Ordering::Relaxed);
        let message = err.to_string();
        for job in batch.drain(..) {
            let _ = job
                .reply
                .send(Err(SchedulerError::Engine(EngineError::Backend {
                    backend: self.description.backend,
                    message: message.clone(),
                })));
        }
    }
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
