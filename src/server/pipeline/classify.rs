//! One image through the pipeline: admission (the memory budget, an engine-queue slot), decoding
//! and preprocessing (on the engine's own threads or on the blocking pool), the engine, and the
//! image's records (metrics, the model's statistics).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Status;

use super::state::Pipeline;
use crate::preprocess::{ImageInfo, WorkingSet};
use crate::scheduler::{DecodedSize, Inference, Prepare, QueueSlot};
use crate::server::call::deadline::{check_deadline, CallDeadline};
use crate::server::memory_budget::BudgetGuard;
use crate::server::metrics::record_image;
use crate::server::serving_model::ServingModel;
use crate::server::status::{preprocess_status, scheduler_status};

/// Largest image (decoded pixels, from its header) the CPU engine's threads decode right before
/// its batch (see [`crate::engine::BackendKind::computes_on_host_cores`]): 1 MiP. A larger one is
/// decoded on the blocking pool beside the engine, so that a batch of small images never waits
/// behind a photo's decode.
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

/// What an encoded image holds once admitted: its working-set estimate, its budget charge and its
/// engine-queue slot.
struct AdmittedImage {
    cost: WorkingSet,
    charge: BudgetGuard,
    slot: QueueSlot,
}

impl Pipeline {
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
        let admitted = self.admit_image(model, &bytes)?;
        if decodes_on_engine_threads(model, &admitted.cost) {
            self.classify_on_engine_threads(model, bytes, admitted, arrived, deadline)
                .await
        } else {
            self.classify_on_blocking_pool(model, bytes, admitted, arrived, deadline)
                .await
        }
    }

    /// Admission before work: the memory budget, then the engine-queue slot, are taken before
    /// anything is spent on the pixels, so an image that does not fit, or a full queue, is
    /// refused at once (RESOURCE_EXHAUSTED, UNAVAILABLE) instead of after decoding.
    fn admit_image(&self, model: &ServingModel, bytes: &[u8]) -> Result<AdmittedImage, Status> {
        let cost = crate::preprocess::working_set(bytes, &model.preprocess)
            .map_err(|e| preprocess_status(&e))?;
        let charge = self.charge(bytes.len() as u64 + cost.peak())?;
        let slot = model.pool.reserve().map_err(|e| scheduler_status(&e))?;
        Ok(AdmittedImage { cost, charge, slot })
    }

    /// Decoded by the engine's own threads right before the forward pass that takes it (see
    /// `BackendKind::computes_on_host_cores`): no decode permit, no blocking thread. The charge
    /// stays whole until the engine has answered, and while the preparation still holds the bytes
    /// (a caller that goes away does not release it early).
    async fn classify_on_engine_threads(
        &self,
        model: &Arc<ServingModel>,
        bytes: Vec<u8>,
        admitted: AdmittedImage,
        arrived: Instant,
        deadline: Option<CallDeadline>,
    ) -> Result<Classified, Status> {
        let AdmittedImage { charge, slot, .. } = admitted;
        let charge = Arc::new(charge);
        let held = Arc::clone(&charge);
        let pre_model = Arc::clone(model);
        let prepare: Prepare = Box::new(move |row: &mut [f32]| {
            let decoded = crate::preprocess::preprocess_into(&bytes, &pre_model.preprocess, row);
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
        Ok(self.recorded_image(model, inference, admission, (size.width, size.height)))
    }

    /// Decoded on the blocking pool (at most `--max-concurrent-decodes` at once), then queued for
    /// the engine as a tensor; the charge shrinks to the tensor once preprocessing ends.
    async fn classify_on_blocking_pool(
        &self,
        model: &Arc<ServingModel>,
        bytes: Vec<u8>,
        admitted: AdmittedImage,
        arrived: Instant,
        deadline: Option<CallDeadline>,
    ) -> Result<Classified, Status> {
        let AdmittedImage { cost, charge, slot } = admitted;
        let (mut charge, decoded) = self
            .preprocess_blocking(model, bytes, charge, deadline)
            .await?;
        let (tensor, info) = decoded?;
        // Only the tensor is left; it is held until the engine has answered.
        charge.shrink_to(cost.tensor);
        let preprocessed = arrived.elapsed();
        let inference = self.run_engine(model, slot, tensor, deadline).await?;
        drop(charge);
        Ok(self.recorded_image(model, inference, preprocessed, (info.width, info.height)))
    }

    /// Decode and preprocess `bytes` on a blocking thread once a decode permit is free. The charge
    /// travels with the task and comes back with its result.
    async fn preprocess_blocking(
        &self,
        model: &Arc<ServingModel>,
        bytes: Vec<u8>,
        charge: BudgetGuard,
        deadline: Option<CallDeadline>,
    ) -> Result<(BudgetGuard, Result<(Vec<f32>, ImageInfo), Status>), Status> {
        let image_len = model.pool.image_len();
        let pre_model = Arc::clone(model);
        let permit = Arc::clone(&self.decode_permits)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("server is shutting down"))?;
        check_deadline(deadline, "before decoding")?;
        let call_span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
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
        .map_err(|e| Status::internal(format!("preprocessing task failed: {e}")))
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
        slot: QueueSlot,
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
        record_image(
            timing.preprocess,
            timing.queue,
            timing.inference,
            timing.batch_size,
        );
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

/// Whether the engine's own threads decode this image: the backend computes on the host's cores
/// and the image is at most [`ENGINE_THREAD_DECODE_MAX_PIXELS`].
fn decodes_on_engine_threads(model: &ServingModel, cost: &WorkingSet) -> bool {
    let pixels = u64::from(cost.decode.width) * u64::from(cost.decode.height);
    model.pool.description().backend.computes_on_host_cores()
        && pixels <= ENGINE_THREAD_DECODE_MAX_PIXELS
}
