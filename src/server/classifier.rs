//! `swin.v1.Classifier`: Classify, ClassifyBatch, GetModelInfo.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

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

/// One image through the whole path: checks, preprocessing (blocking pool), engine pool, top-k.
async fn classify_one(
    model: Arc<ServingModel>,
    decode_permits: Arc<Semaphore>,
    request: proto::ClassifyRequest,
) -> Result<proto::ClassifyResponse, Status> {
    let arrived = Instant::now();
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
    let (tensor, info) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut tensor = vec![0f32; image_len];
        crate::preprocess::preprocess_into(&bytes, &pre_model.preprocess, &mut tensor)
            .map(|info| (tensor, info))
    })
    .await
    .map_err(|e| Status::internal(format!("preprocessing task failed: {e}")))?
    .map_err(|e| preprocess_status(&e))?;
    let preprocess_time = arrived.elapsed();

    let inference = model
        .pool
        .infer(tensor)
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
    Ok(proto::ClassifyResponse {
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
    })
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

#[tonic::async_trait]
impl proto::classifier_server::Classifier for ClassifierService {
    async fn classify(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let model = self.model()?;
        let request = request.into_inner();
        let request_id = request.request_id.clone();
        let bytes = request.image.len();
        let result = classify_one(model, Arc::clone(&self.decode_permits), request).await;
        match &result {
            Ok(r) => tracing::debug!(
                request_id,
                bytes,
                top1 = r.predictions.first().map(|p| p.class_id),
                total_us = r.timing.as_ref().map(|t| t.total_us),
                "classified"
            ),
            Err(s) => {
                tracing::info!(request_id, bytes, code = ?s.code(), message = s.message(), "classify refused")
            }
        }
        result.map(Response::new)
    }

    async fn classify_batch(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let model = self.model()?;
        let requests = request.into_inner().requests;
        if requests.len() > self.config.max_batch_images {
            return Err(Status::invalid_argument(format!(
                "ClassifyBatch carries {} images; the limit is {} per call",
                requests.len(),
                self.config.max_batch_images
            )));
        }
        // All entries go to the pool at once so that free instances batch them.
        // If the caller goes away, dropping the guard aborts the entries still running.
        let mut tasks = AbortOnDrop(
            requests
                .into_iter()
                .map(|r| {
                    tokio::spawn(classify_one(
                        Arc::clone(&model),
                        Arc::clone(&self.decode_permits),
                        r,
                    ))
                })
                .collect(),
        );
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
        Ok(Response::new(proto::ClassifyBatchResponse {
            results,
            model: model.info.model.clone(),
        }))
    }

    async fn get_model_info(
        &self,
        _request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let model = self.model()?;
        Ok(Response::new(model.info.clone()))
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
