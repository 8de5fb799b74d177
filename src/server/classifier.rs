//! `swin.v1.Classifier`: Classify, ClassifyBatch, GetModelInfo.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::deadline::CallDeadline;
use super::status::{code_name, preprocess_status, scheduler_status};
use super::{ModelSlot, ServerConfig, ServingModel};
use crate::postprocess::top_k;
use crate::proto;

/// Top-k used when a request leaves `top_k` at 0.
pub const DEFAULT_TOP_K: u32 = 5;

/// The classifier service; answers UNAVAILABLE until the model slot is filled.
#[derive(Clone)]
pub struct ClassifierService {
    slot: ModelSlot,
    config: ServerConfig,
    decode_permits: Arc<Semaphore>,
}

impl ClassifierService {
    /// A service over `slot`.
    pub fn new(slot: ModelSlot, config: ServerConfig) -> Self {
        let decode_permits = Arc::new(Semaphore::new(config.max_concurrent_decodes.max(1)));
        Self {
            slot,
            config,
            decode_permits,
        }
    }

    fn model(&self) -> Result<Arc<ServingModel>, Status> {
        self.slot
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("model is loading; retry when health is SERVING"))
    }
}

/// Resolve `top_k` (0 = default) against the class count.
fn resolve_top_k(requested: u32, num_classes: usize) -> Result<usize, Status> {
    if requested == 0 {
        return Ok((DEFAULT_TOP_K as usize).min(num_classes));
    }
    if requested as usize > num_classes {
        return Err(Status::invalid_argument(format!(
            "top_k {requested} is out of range: this model has {num_classes} classes (use 1..={num_classes}, or 0 for the default {})",
            DEFAULT_TOP_K.min(num_classes as u32)
        )));
    }
    Ok(requested as usize)
}

/// The deadline [`super::DeadlineLayer`] gave this call, if any.
fn deadline_of<T>(request: &Request<T>) -> Option<CallDeadline> {
    request.extensions().get::<CallDeadline>().copied()
}

/// DEADLINE_EXCEEDED if `deadline` has passed (`stage` says where the work stopped).
fn check_deadline(deadline: Option<CallDeadline>, stage: &str) -> Result<(), Status> {
    match deadline {
        Some(d) if d.expired() => Err(d.status(stage)),
        _ => Ok(()),
    }
}

/// Run `work`, answering DEADLINE_EXCEEDED when `deadline` passes first (the work is dropped).
async fn within_deadline<T>(
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

/// One image through the whole path: checks, preprocessing (blocking pool), engine pool, top-k.
///
/// Expired work is dropped at each stage: before decoding (checked on arrival, after waiting for a
/// decode permit, and on the blocking thread before the decoder starts), before the engine queue,
/// and by the scheduler's worker before an engine runs it.
async fn classify_one(
    model: Arc<ServingModel>,
    decode_permits: Arc<Semaphore>,
    request: proto::ClassifyRequest,
    deadline: Option<CallDeadline>,
) -> Result<proto::ClassifyResponse, Status> {
    let arrived = Instant::now();
    check_deadline(deadline, "before decoding")?;
    let num_classes = model.info.num_classes as usize;
    let k = resolve_top_k(request.top_k, num_classes)?;
    if request.image.is_empty() {
        return Err(Status::invalid_argument(
            "image is empty: send the encoded file bytes (JPEG, PNG, BMP, GIF, WebP or TIFF) in `image`",
        ));
    }

    let image_len = model.pool.image_len();
    let pre_model = Arc::clone(&model);
    let bytes = request.image;
    let permit = decode_permits
        .acquire_owned()
        .await
        .map_err(|_| Status::unavailable("server is shutting down"))?;
    check_deadline(deadline, "before decoding")?;
    let decoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The call may have expired while this task waited for a blocking thread.
        check_deadline(deadline, "before decoding")?;
        let mut tensor = vec![0f32; image_len];
        Ok::<_, Status>(
            crate::preprocess::preprocess_into(&bytes, &pre_model.preprocess, &mut tensor)
                .map(|info| (tensor, info)),
        )
    })
    .await
    .map_err(|e| Status::internal(format!("preprocessing task failed: {e}")))??;
    let (tensor, info) = decoded.map_err(|e| preprocess_status(&e))?;
    let preprocess_time = arrived.elapsed();

    let inference = model
        .pool
        .infer(tensor, deadline.map(|d| d.at))
        .await
        .map_err(|e| scheduler_status(&e))?;

    let predictions = top_k(&inference.logits, k)
        .into_iter()
        .map(|r| proto::Prediction {
            class_id: r.class_id as u32,
            label: model.labels.name(r.class_id).into_owned(),
            probability: r.probability,
            logit: r.logit,
        })
        .collect();
    let response = proto::ClassifyResponse {
        predictions,
        request_id: request.request_id,
        model: model.info.model.clone(),
        timing: Some(proto::Timing {
            preprocess_us: preprocess_time.as_micros() as u64,
            queue_us: inference.queue_time.as_micros() as u64,
            inference_us: inference.inference_time.as_micros() as u64,
            total_us: arrived.elapsed().as_micros() as u64,
            batch_size: inference.batch_size as u32,
        }),
        image_width: info.width,
        image_height: info.height,
    };
    if let Some(timing) = &response.timing {
        super::metrics::record_image(timing);
    }
    Ok(response)
}

/// Aborts the tasks it holds when dropped.
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl ClassifierService {
    async fn classify_inner(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let model = self.model()?;
        let deadline = deadline_of(&request);
        let request = request.into_inner();
        let request_id = super::untrusted(&request.request_id);
        let bytes = request.image.len();
        let work = classify_one(model, Arc::clone(&self.decode_permits), request, deadline);
        let result = within_deadline(deadline, work).await;
        match &result {
            Ok(r) => tracing::debug!(
                request_id,
                bytes,
                top1 = r.predictions.first().map(|p| p.class_id),
                total_us = r.timing.as_ref().map(|t| t.total_us),
                "classified"
            ),
            Err(s) => {
                tracing::info!(request_id, bytes, code = ?s.code(), message = %super::untrusted(s.message()), "classify refused")
            }
        }
        result.map(Response::new)
    }

    async fn classify_batch_inner(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let model = self.model()?;
        let deadline = deadline_of(&request);
        check_deadline(deadline, "before decoding")?;
        let requests = request.into_inner().requests;
        if requests.len() > self.config.max_batch_images {
            return Err(Status::invalid_argument(format!(
                "ClassifyBatch carries {} images; the limit is {} per call",
                requests.len(),
                self.config.max_batch_images
            )));
        }
        // All entries go to the pool at once so that free instances batch them; each carries the
        // call's deadline. If the caller goes away or the deadline passes before every entry is
        // answered, dropping the guard aborts the entries still running (and the call as a whole
        // answers DEADLINE_EXCEEDED: no partial results).
        let mut tasks = AbortOnDrop(
            requests
                .into_iter()
                .map(|r| {
                    tokio::spawn(classify_one(
                        Arc::clone(&model),
                        Arc::clone(&self.decode_permits),
                        r,
                        deadline,
                    ))
                })
                .collect(),
        );
        let collect = async {
            let mut results = Vec::with_capacity(tasks.0.len());
            for (index, task) in tasks.0.iter_mut().enumerate() {
                let outcome = match task.await {
                    Ok(Ok(response)) => proto::classify_result::Outcome::Response(response),
                    Ok(Err(status)) => proto::classify_result::Outcome::Error(proto::Error {
                        code: status.code() as i32,
                        code_name: code_name(status.code()).to_string(),
                        message: status.message().to_string(),
                    }),
                    Err(join) => proto::classify_result::Outcome::Error(proto::Error {
                        code: tonic::Code::Internal as i32,
                        code_name: code_name(tonic::Code::Internal).to_string(),
                        message: format!("classification task failed: {join}"),
                    }),
                };
                results.push(proto::ClassifyResult {
                    index: index as u32,
                    outcome: Some(outcome),
                });
            }
            Ok(results)
        };
        let results = within_deadline(deadline, collect).await?;
        Ok(Response::new(proto::ClassifyBatchResponse {
            results,
            model: model.info.model.clone(),
        }))
    }

    async fn get_model_info_inner(
        &self,
        _request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let model = self.model()?;
        Ok(Response::new(model.info.clone()))
    }
}

/// Counts and times every call (`swin_requests_total`, `swin_request_duration_seconds`).
fn recorded<T>(
    rpc: &'static str,
    started: Instant,
    result: Result<T, Status>,
) -> Result<T, Status> {
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    super::metrics::record_call(rpc, code, started.elapsed());
    result
}

#[tonic::async_trait]
impl proto::classifier_server::Classifier for ClassifierService {
    async fn classify(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let started = Instant::now();
        recorded("Classify", started, self.classify_inner(request).await)
    }

    async fn classify_batch(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let started = Instant::now();
        recorded(
            "ClassifyBatch",
            started,
            self.classify_batch_inner(request).await,
        )
    }

    async fn get_model_info(
        &self,
        request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let started = Instant::now();
        recorded(
            "GetModelInfo",
            started,
            self.get_model_info_inner(request).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_resolution() {
        assert_eq!(resolve_top_k(0, 1000).unwrap(), 5);
        assert_eq!(resolve_top_k(0, 3).unwrap(), 3);
        assert_eq!(resolve_top_k(1000, 1000).unwrap(), 1000);
        let err = resolve_top_k(1001, 1000).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("1001"));
    }
}
