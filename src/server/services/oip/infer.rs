//! One ModelInfer request through the shared pipeline: the model it addresses, its deadline, its
//! inputs parsed, every image classified at once, and its outputs built.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Status;

use super::addressing::addressed;
use super::describe::MODEL_VERSION;
use super::inputs::{parse_inputs, ImageShape, Images};
use super::outputs::{build_outputs, parse_outputs};
use crate::proto::inference as pb;
use crate::server::call::deadline::{
    check_deadline, earlier, within_deadline, CallDeadline, DeadlineSource,
};
use crate::server::pipeline::{spawn_traced, AbortOnDrop, CallSummary, Classified, Pipeline};
use crate::server::serving_model::ServingModel;

/// Request parameter (Triton's): the request's timeout in microseconds; it tightens the deadline.
pub const TIMEOUT_PARAMETER: &str = "timeout";

/// The earlier of `deadline` and the request's `timeout` parameter (microseconds; 0 = none).
fn with_timeout_parameter(
    deadline: Option<CallDeadline>,
    parameters: &HashMap<String, pb::InferParameter>,
    arrived: Instant,
) -> Result<Option<CallDeadline>, Status> {
    use pb::infer_parameter::ParameterChoice;
    let Some(p) = parameters.get(TIMEOUT_PARAMETER) else {
        return Ok(deadline);
    };
    let micros = match p.parameter_choice {
        Some(ParameterChoice::Int64Param(v)) if v >= 0 => v as u64,
        Some(ParameterChoice::Uint64Param(v)) => v,
        _ => {
            return Err(Status::invalid_argument(
                "request parameter `timeout` must be a non-negative int64 (microseconds)",
            ))
        }
    };
    if micros == 0 {
        return Ok(deadline);
    }
    let Some(at) = arrived.checked_add(Duration::from_micros(micros)) else {
        return Ok(deadline);
    };
    let own = CallDeadline {
        at,
        source: DeadlineSource::RequestParameter,
    };
    Ok(earlier(deadline, Some(own)))
}

/// One ModelInfer request through the pipeline. `deadline` is the call's (for a stream, the
/// stream's combined with the server's `--request-timeout`).
pub async fn infer(
    pipeline: Pipeline,
    mut request: pb::ModelInferRequest,
    deadline: Option<CallDeadline>,
) -> Result<pb::ModelInferResponse, Status> {
    let arrived = Instant::now();
    let model = addressed(
        pipeline.model()?,
        &request.model_name,
        &request.model_version,
    )?;
    let deadline = with_timeout_parameter(deadline, &request.parameters, arrived)?;
    check_deadline(deadline, "before decoding")?;
    let num_classes = model.info.num_classes as usize;
    let outputs = parse_outputs(&request.outputs, num_classes)?;
    let shape = ImageShape {
        channels: crate::preprocess::CHANNELS,
        size: model.preprocess.crop_size as usize,
    };
    let raw = std::mem::take(&mut request.raw_input_contents);
    let inputs = std::mem::take(&mut request.inputs);
    let (images, raw) = parse_inputs(inputs, raw, shape, pipeline.config().max_batch_images)?;
    let count = images.len();
    let logits = classify_all(&pipeline, &model, images, deadline).await?;

    let output_started = Instant::now();
    let (output_tensors, raw_outputs) = build_outputs(&outputs, &logits, &model.labels, raw);
    let per_image = output_started.elapsed() / count as u32;
    for _ in 0..count {
        model.stats.compute_output.add(per_image);
    }
    Ok(pb::ModelInferResponse {
        model_name: model.info.model.clone(),
        model_version: MODEL_VERSION.into(),
        id: request.id,
        parameters: Default::default(),
        outputs: output_tensors,
        raw_output_contents: raw_outputs,
    })
}

/// Every image of the request through the pipeline at once, so that free instances batch them;
/// their logits in request order, or the first error (naming the input and the image's index).
async fn classify_all(
    pipeline: &Pipeline,
    model: &Arc<ServingModel>,
    images: Images,
    deadline: Option<CallDeadline>,
) -> Result<Vec<Vec<f32>>, Status> {
    let input_name = images.input_name();
    let count = images.len();
    // Dropping the guard (deadline passed, caller gone) aborts the images still running.
    let mut tasks = AbortOnDrop(spawn_images(pipeline, model, images, deadline));
    let collect = async {
        let mut logits = Vec::with_capacity(count);
        for (index, task) in tasks.0.iter_mut().enumerate() {
            let classified = task
                .await
                .map_err(|e| Status::internal(format!("classification task failed: {e}")))?
                .map_err(|status| {
                    let message = if count > 1 || status.code() == tonic::Code::InvalidArgument {
                        format!("{input_name}[{index}]: {}", status.message())
                    } else {
                        status.message().to_string()
                    };
                    Status::new(status.code(), message)
                })?;
            logits.push(classified.logits);
        }
        Ok(logits)
    };
    within_deadline(deadline, collect).await
}

/// One task per image, encoded or preprocessed.
fn spawn_images(
    pipeline: &Pipeline,
    model: &Arc<ServingModel>,
    images: Images,
    deadline: Option<CallDeadline>,
) -> Vec<tokio::task::JoinHandle<Result<Classified, Status>>> {
    match images {
        Images::Encoded(files) => files
            .into_iter()
            .map(|file| {
                let (pipeline, model) = (pipeline.clone(), Arc::clone(model));
                spawn_traced(async move { pipeline.classify_image(&model, file, deadline).await })
            })
            .collect(),
        Images::Preprocessed(values) => values
            .into_iter()
            .map(|tensor| {
                let (pipeline, model) = (pipeline.clone(), Arc::clone(model));
                spawn_traced(
                    async move { pipeline.classify_tensor(&model, tensor, deadline).await },
                )
            })
            .collect(),
    }
}

/// What the access log says of a ModelInfer answer: its batch size (rows of the first output).
pub fn summarize(response: &pb::ModelInferResponse) -> CallSummary {
    CallSummary {
        images: response
            .outputs
            .first()
            .and_then(|o| o.shape.first())
            .map_or(0, |&n| n.max(0) as usize),
        ..Default::default()
    }
}
