//! The path every inference request takes, whatever protocol carried it (`swin.v1` Classify /
//! ClassifyBatch, ClassifyStream, OIP ModelInfer / ModelStreamInfer): the model slot, admission
//! (the memory budget, the engine pool's bounded queue, then decode permits), preprocessing on the
//! blocking pool, the engine, deadlines, and the per-image metrics and statistics. The protocol services only convert at the edge.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::{Request, Status};

use super::deadline::CallDeadline;
use super::memory_budget::{BudgetExhausted, BudgetGuard, BudgetSetting, MemoryBudget};
use super::status::{preprocess_status, scheduler_status};
use super::{ModelSlot, ServerConfig, ServingModel};
use crate::scheduler::{DecodedSize, Inference, Prepare};

/// Largest image (decoded pixels, from its header) the CPU engine's threads decode right before
/// its batch (see [`crate::engine::BackendKind::computes_on_host_cores`]): 1 MiP, about 20 ms of
/// one core. A larger one is decoded on the blocking pool beside the engine, so that a batch of
/// small images never waits behind a photo's decode (a 12 MP photo takes ~0.1–0.2 s).
pub const ENGINE_THREAD_DECODE_MAX_PIXELS: u64 = 1 << 20;

/// Where the time of one classified image went.
#[derive(Debug, Clone, Copy)]
pub struct ImageTiming {
    /// Decode + resize + crop + normalize (or taking a preprocessed tensor).
    pub preprocess: Duration,
    /// Waiting for a free engine instance.
    pub queue: Duration,
    /// Forward pass of the batch the image ran in.
    pub inference: Duration,
    /// Images in that batch.
    pub batch_size: usize,
}

/// One image's answer from the engine.
#[derive(Debug)]
pub struct Classified {
    /// Raw model outputs, one per class.
    pub logits: Vec<f32>,
    /// Where the time went.
    pub timing: ImageTiming,
    /// Size of the decoded image (the model's input size for a preprocessed tensor).
    pub width: u32,
    pub height: u32,
}

/// One call, as [`Pipeline::recorded`] counts and logs it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The RPC's name (a metrics label).
    pub rpc: &'static str,
    /// Whether it is an inference request (counted in the model's statistics).
    pub inference: bool,
    /// When it arrived.
    pub started: Instant,
    /// Its request id (body id if it has one, else `x-request-id`).
    pub request_id: &'a str,
}

/// What the access log says of an answer (0 = not applicable).
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSummary {
    /// Images classified.
    pub images: usize,
    /// Engine batch size (of the first image).
    pub batch_size: usize,
    /// Decoded size of the (first) image.
    pub width: u32,
    pub height: u32,
}

/// State the protocol services share: one model slot, one set of decode permits, one readiness.
#[derive(Clone)]
pub struct Pipeline {
    slot: ModelSlot,
    config: ServerConfig,
    decode_permits: Arc<Semaphore>,
    budget: Arc<MemoryBudget>,
    draining: Arc<AtomicBool>,
    engine_ok: Arc<AtomicBool>,
}

impl Pipeline {
    /// The pipeline over `slot`: ready once the slot is filled, until [`Pipeline::start_draining`].
    pub fn new(slot: ModelSlot, config: ServerConfig) -> Self {
        let decode_permits = Arc::new(Semaphore::new(config.max_concurrent_decodes.max(1)));
        let budget = MemoryBudget::new(match config.memory_budget {
            BudgetSetting::Bytes(n) => Some(n),
            BudgetSetting::Auto | BudgetSetting::Off => None,
        });
        Self {
            slot,
            config,
            decode_permits,
            budget,
            draining: Arc::new(AtomicBool::new(false)),
            engine_ok: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Server settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The memory budget every image draws from (see [`super::memory_budget`]).
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Charge `bytes` to the memory budget, or RESOURCE_EXHAUSTED at once.
    fn charge(&self, bytes: u64) -> Result<BudgetGuard, Status> {
        self.budget
            .try_acquire(bytes)
            .map_err(|e: BudgetExhausted| {
                metrics::counter!("swin_calls_refused_total", "reason" => "memory_budget")
                    .increment(1);
                if e.needed > e.limit {
                    // Retrying cannot help: the image needs more than the whole budget.
                    Status::resource_exhausted(format!(
                        "{e}: this image alone needs more than the server's whole memory budget \
                         (--memory-budget); send a smaller image"
                    ))
                } else {
                    Status::resource_exhausted(format!("{e}; retry later (--memory-budget)"))
                }
            })
    }

    /// The model, or UNAVAILABLE while it loads.
    pub fn model(&self) -> Result<Arc<ServingModel>, Status> {
        self.slot
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("model is loading; retry when health is SERVING"))
    }

    /// The model if it is loaded (no error).
    pub fn loaded(&self) -> Option<Arc<ServingModel>> {
        self.slot.get().cloned()
    }

    /// Readiness as OIP ServerReady reports it: the model is loaded, shutdown has not begun and the
    /// engine watchdog finds the engine working.
    pub fn is_ready(&self) -> bool {
        self.slot.get().is_some()
            && !self.draining.load(Ordering::Relaxed)
            && self.engine_ok.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The engine watchdog's verdict (not hung, not failing).
    pub fn set_engine_ok(&self, ok: bool) {
        self.engine_ok.store(ok, Ordering::Relaxed);
    }

    /// Shutdown has begun: not ready any more (calls are still answered while the server drains).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Count, time and log an answered call: `swin_requests_total` and
    /// `swin_request_duration_seconds`; an `inference` call also counts in the model's
    /// [`super::statistics::InferenceStats`]; and one access-log line at `info` (target
    /// `swin_serve::access`): RPC, request id, code, duration, and what `summary` says of the answer.
    pub fn recorded<T>(
        &self,
        call: Call<'_>,
        result: Result<T, Status>,
        summary: impl FnOnce(&T) -> CallSummary,
    ) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        let elapsed = call.started.elapsed();
        super::metrics::record_call(call.rpc, code, elapsed);
        if call.inference {
            if let Some(model) = self.slot.get() {
                model.stats.record_request(result.is_ok(), elapsed);
            }
        }
        let summary = result.as_ref().map(summary).unwrap_or_default();
        let error = result
            .as_ref()
            .err()
            .map(|s| super::untrusted(s.message()))
            .unwrap_or_default();
        tracing::info!(
            target: "swin_serve::access",
            rpc = call.rpc,
            request_id = %super::untrusted(call.request_id),
            code = super::status::code_name(code),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            images = summary.images,
            batch = summary.batch_size,
            width = summary.width,
            height = summary.height,
            error,
            "call"
        );
        result
    }

    /// One encoded image through decoding, the engine pool and the per-image records. Where it is
    /// decoded depends on the backend: for one that computes on the host's cores (the CPU engine)
    /// the engine's own threads decode each batch's images right before its forward pass (see
    /// [`crate::engine::BackendKind::computes_on_host_cores`]), up to
    /// [`ENGINE_THREAD_DECODE_MAX_PIXELS`]; otherwise the blocking pool decodes it (at most
    /// `--max-concurrent-decodes` at once) while the engine runs other work.
    ///
    /// Admission, before any work on the pixels: the header is read for the working-set estimate
    /// (refusals the header shows are INVALID_ARGUMENT), the memory budget is charged the encoded
    /// size plus that estimate (RESOURCE_EXHAUSTED when it does not fit), then an engine-queue slot
    /// is reserved (UNAVAILABLE when the queue is full). The charge goes with the decoding task
    /// (a caller that goes away does not release it while the decoder still runs) and is given
    /// back when the engine has answered; on the blocking pool it shrinks to the tensor's size
    /// when preprocessing ends.
    ///
    /// Expired work is dropped at each stage: before decoding (checked on arrival, after waiting for
    /// a decode permit, and on the blocking thread before the decoder starts), before the engine
    /// queue, and by the scheduler's worker before an engine runs it.
    pub async fn classify_image(
        &self,
        model: &Arc<ServingModel>,
        bytes: Vec<u8>,
        deadline: Option<CallDeadline>,
    ) -> Result<Classified, Status> {
        let arrived = Instant::now();
        check_deadline(deadline, "before decoding")?;
        if bytes.is_empty() {
            return Err(Status::invalid_argument(
                "image is empty: send the encoded file bytes (JPEG, PNG, BMP, GIF, WebP or TIFF)",
            ));
        }
        // Admission before work: the memory budget, then the engine-queue slot, are taken before
        // anything is spent on the pixels, so an image that does not fit, or a full queue, is
        // refused at once (RESOURCE_EXHAUSTED, UNAVAILABLE) instead of after decoding.
        let cost = crate::preprocess::working_set(&bytes, &model.preprocess)
            .map_err(|e| preprocess_status(&e))?;
        let charge = self.charge(bytes.len() as u64 + cost.peak())?;
        let slot = model.pool.reserve().map_err(|e| scheduler_status(&e))?;
        let pre_model = Arc::clone(model);
        let pixels = u64::from(cost.decode.width) * u64::from(cost.decode.height);
        if model.pool.description().backend.computes_on_host_cores()
            && pixels <= ENGINE_THREAD_DECODE_MAX_PIXELS
        {
            // Decoded by the engine's own threads right before the forward pass that takes it
            // (see `BackendKind::computes_on_host_cores`): no decode permit, no blocking thread.
            // The charge stays whole until the engine has answered, and while the preparation
            // still holds the bytes (a caller that goes away does not release it early).
            let charge = Arc::new(charge);
            let held = Arc::clone(&charge);
            let prepare: Prepare = Box::new(move |row: &mut [f32]| {
                let decoded =
                    crate::preprocess::preprocess_into(&bytes, &pre_model.preprocess, row);
                drop(bytes);
                drop(held);
                let info = decoded?;
                Ok(DecodedSize {
                    width: info.width,
                    height: info.height,
                })
            });
            let admission = arrived.elapsed();
            let inference = model
                .pool
                .infer_prepared_in(slot, prepare, deadline.map(|d| d.at))
                .await
                .map_err(|e| scheduler_status(&e))?;
            drop(charge);
            let size = inference.decoded_size.unwrap_or_default();
            return Ok(self.recorded_image(model, inference, admission, (size.width, size.height)));
        }
        let image_len = model.pool.image_len();
        let permit = Arc::clone(&self.decode_permits)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("server is shutting down"))?;
        check_deadline(deadline, "before decoding")?;
        let call_span = tracing::Span::current();
        let (mut charge, decoded) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _span = tracing::info_span!(parent: &call_span, "preprocess").entered();
            // The call may have expired while this task waited for a blocking thread.
            if let Err(status) = check_deadline(deadline, "before decoding") {
                return (charge, Err(status));
            }
            let mut tensor = vec![0f32; image_len];
            let result =
                crate::preprocess::preprocess_into(&bytes, &pre_model.preprocess, &mut tensor)
                    .map(|info| (tensor, info))
                    .map_err(|e| preprocess_status(&e));
            drop(bytes);
            (charge, result)
        })
        .await
        .map_err(|e| Status::internal(format!("preprocessing task failed: {e}")))?;
        let (tensor, info) = decoded?;
        // Only the tensor is left; it is held until the engine has answered.
        charge.shrink_to(cost.tensor);
        let preprocessed = arrived.elapsed();
        let inference = self.run_engine(model, slot, tensor, deadline).await?;
        drop(charge);
        Ok(self.recorded_image(model, inference, preprocessed, (info.width, info.height)))
    }

    /// One preprocessed tensor (`model.pool.image_len()` values, NCHW) through the engine pool.
    pub async fn classify_tensor(
        &self,
        model: &Arc<ServingModel>,
        tensor: Vec<f32>,
        deadline: Option<CallDeadline>,
    ) -> Result<Classified, Status> {
        check_deadline(deadline, "before the engine queue")?;
        let charge = self.charge(std::mem::size_of_val(tensor.as_slice()) as u64)?;
        let slot = model.pool.reserve().map_err(|e| scheduler_status(&e))?;
        let inference = self.run_engine(model, slot, tensor, deadline).await?;
        drop(charge);
        let side = model.preprocess.crop_size;
        Ok(self.recorded_image(model, inference, Duration::ZERO, (side, side)))
    }

    /// A ready tensor through the engine pool, in the slot taken for it.
    async fn run_engine(
        &self,
        model: &Arc<ServingModel>,
        slot: crate::scheduler::QueueSlot,
        tensor: Vec<f32>,
        deadline: Option<CallDeadline>,
    ) -> Result<Inference, Status> {
        model
            .pool
            .infer_in(slot, tensor, deadline.map(|d| d.at))
            .await
            .map_err(|e| scheduler_status(&e))
    }

    /// One answered image, recorded (metrics, model statistics): its preprocessing time is what was
    /// spent on it before the queue plus its preparation on the engine's threads, if any; `size`
    /// is the decoded image's.
    fn recorded_image(
        &self,
        model: &Arc<ServingModel>,
        inference: Inference,
        before_queue: Duration,
        size: (u32, u32),
    ) -> Classified {
        let timing = ImageTiming {
            preprocess: before_queue + inference.prepare_time,
            queue: inference.queue_time,
            inference: inference.inference_time,
            batch_size: inference.batch_size,
        };
        super::metrics::record_image(&timing);
        model
            .stats
            .record_image(timing.preprocess, timing.queue, timing.inference);
        Classified {
            logits: inference.logits,
            timing,
            width: size.0,
            height: size.1,
        }
    }
}

/// The id [`super::request_id::RequestIdLayer`] gave this call ("" outside a server).
pub fn request_id_of<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<super::request_id::RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

/// The deadline [`super::DeadlineLayer`] gave this call, if any.
pub fn deadline_of<T>(request: &Request<T>) -> Option<CallDeadline> {
    request.extensions().get::<CallDeadline>().copied()
}

/// The deadline of one message of a stream that arrived at `arrived`: the stream's own (the client's
/// `grpc-timeout` for the whole call) or the server's `--request-timeout` from the message's
/// arrival, whichever comes first.
pub fn stream_message_deadline(
    stream: Option<CallDeadline>,
    request_timeout: Option<Duration>,
    arrived: Instant,
) -> Option<CallDeadline> {
    use super::deadline::{call_deadline, earlier};
    earlier(stream, call_deadline(None, request_timeout, arrived))
}

/// DEADLINE_EXCEEDED if `deadline` has passed (`stage` says where the work stopped).
pub fn check_deadline(deadline: Option<CallDeadline>, stage: &str) -> Result<(), Status> {
    match deadline {
        Some(d) if d.expired() => Err(d.status(stage)),
        _ => Ok(()),
    }
}

/// Run `work`, answering DEADLINE_EXCEEDED when `deadline` passes first (the work is dropped).
pub async fn within_deadline<T>(
    deadline: Option<CallDeadline>,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout_at(d.at.into(), work)
            .await
            .unwrap_or_else(|_| Err(d.status("before the call was answered"))),
    }
}

/// `tokio::spawn` in the caller's trace span (the call's, see [`crate::telemetry`]): the
/// task's spans and the images it queues belong to the call's trace.
pub fn spawn_traced<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument as _;
    tokio::spawn(future.in_current_span())
}

/// Aborts the tasks it holds when dropped (a caller that went away, a passed deadline).
pub struct AbortOnDrop<T>(pub Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
