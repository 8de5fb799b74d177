//! One `swin.v1` image through the shared pipeline: Classify's answer, and what ClassifyBatch and
//! ClassifyStream answer per image.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::postprocess::top_k;
use crate::proto;
use crate::server::call::deadline::{check_deadline, deadline_of, within_deadline, CallDeadline};
use crate::server::pipeline::{CallSummary, Pipeline};
use crate::server::serving_model::ServingModel;
use crate::server::status::code_name;

/// Top-k used when a request leaves `top_k` at 0.
pub const DEFAULT_TOP_K: u32 = 5;

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

/// What the access log says of one classified image.
pub fn classify_summary(r: &proto::ClassifyResponse) -> CallSummary {
    CallSummary {
        images: 1,
        batch_size: r.timing.as_ref().map_or(0, |t| t.batch_size as usize),
        width: r.image_width,
        height: r.image_height,
    }
}

/// An error as ClassifyBatch and ClassifyStream report it per image.
pub fn error_message(status: &Status) -> proto::Error {
    proto::Error {
        code: status.code() as i32,
        code_name: code_name(status.code()).to_string(),
        message: status.message().to_string(),
    }
}

/// A Classify call: the request's image under the call's deadline. The body's id wins; else the
/// call's (`header_id`: x-request-id, or the one made for it).
pub async fn classify_call(
    pipeline: &Pipeline,
    request: Request<proto::ClassifyRequest>,
    header_id: &str,
) -> Result<Response<proto::ClassifyResponse>, Status> {
    let model = pipeline.model()?;
    let deadline = deadline_of(&request);
    let mut request = request.into_inner();
    if request.request_id.is_empty() {
        request.request_id = header_id.to_string();
    }
    let work = classify_one(pipeline.clone(), model, request, deadline);
    within_deadline(deadline, work).await.map(Response::new)
}

/// One image through the shared pipeline, answered as `swin.v1`.
pub async fn classify_one(
    pipeline: Pipeline,
    model: Arc<ServingModel>,
    request: proto::ClassifyRequest,
    deadline: Option<CallDeadline>,
) -> Result<proto::ClassifyResponse, Status> {
    let arrived = Instant::now();
    check_deadline(deadline, "before decoding")?;
    let num_classes = model.info.num_classes as usize;
    let k = resolve_top_k(request.top_k, num_classes)?;
    // An empty image is refused by the pipeline, before it takes a queue slot.
    let classified = pipeline
        .classify_image(&model, request.image, deadline)
        .await?;
    let output_started = Instant::now();
    let _postprocess = tracing::info_span!("postprocess").entered();
    let predictions = top_k(&classified.logits, k)
        .into_iter()
        .map(|r| proto::Prediction {
            class_id: r.class_id as u32,
            label: model.labels.name(r.class_id).into_owned(),
            probability: r.probability,
            logit: r.logit,
        })
        .collect();
    model.stats.compute_output.add(output_started.elapsed());
    let timing = &classified.timing;
    Ok(proto::ClassifyResponse {
        predictions,
        request_id: request.request_id,
        model: model.info.model.clone(),
        timing: Some(proto::Timing {
            preprocess_us: timing.preprocess.as_micros() as u64,
            queue_us: timing.queue.as_micros() as u64,
            inference_us: timing.inference.as_micros() as u64,
            total_us: arrived.elapsed().as_micros() as u64,
            batch_size: timing.batch_size as u32,
        }),
        image_width: classified.width,
        image_height: classified.height,
    })
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
