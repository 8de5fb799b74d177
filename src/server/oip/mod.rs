//! The KServe / Triton Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`),
//! served on the same port as `swin.v1.Classifier` and through the same [`Pipeline`]: admission,
//! batching, deadlines, metrics, statistics and the status policy are shared.
//!
//! The model as OIP sees it ([`describe`]): one model, named as the loaded model (or
//! `--model-name`), version `1`; inputs `IMAGE` (BYTES `[-1]`, encoded files) or `INPUT` (FP32
//! `[-1, 3, S, S]`, preprocessed); outputs `LOGITS` and `PROBABILITIES` (FP32 `[-1, C]`), each
//! optionally through the classification extension. Tensors: [`tensors`].
//!
//! Status policy on top of `status.rs`: an unknown model or version is NOT_FOUND; a malformed
//! tensor (name, datatype, shape, byte count, raw and typed mixed) is INVALID_ARGUMENT, and so is an
//! image that cannot be decoded (the message names the input and the image's index). ModelReady
//! answers `ready: false` while the model loads; the other model RPCs answer UNAVAILABLE then.

pub mod describe;
pub mod tensors;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::deadline::{CallDeadline, DeadlineSource};
use super::pipeline::{
    check_deadline, deadline_of, request_id_of, spawn_traced, stream_message_deadline,
    within_deadline, AbortOnDrop, Call, CallSummary, Pipeline,
};
use super::ServingModel;
use crate::proto::inference as pb;
use crate::proto::inference::grpc_inference_service_server::GrpcInferenceService;
use describe::MODEL_VERSION;
use tensors::{ImageShape, Images};

/// Request parameter (Triton's): the request's timeout in microseconds; it tightens the deadline.
pub const TIMEOUT_PARAMETER: &str = "timeout";

/// Requests of one ModelStreamInfer stream worked on at once; the next waits for the oldest.
pub const STREAM_REQUESTS_IN_FLIGHT: usize = 16;

/// The OIP service; answers from the shared pipeline.
#[derive(Clone)]
pub struct InferenceService {
    pipeline: Pipeline,
}

impl InferenceService {
    /// A service over the shared `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }
}

/// `model` if `name` / `version` address it, else NOT_FOUND.
fn addressed(
    model: Arc<ServingModel>,
    name: &str,
    version: &str,
) -> Result<Arc<ServingModel>, Status> {
    if name != model.info.model {
        return Err(Status::not_found(format!(
            "unknown model {:?}: this server serves {:?}",
            super::untrusted(name),
            model.info.model
        )));
    }
    if !(version.is_empty() || version == MODEL_VERSION) {
        return Err(Status::not_found(format!(
            "model {:?} has no version {:?}: its only version is \"{MODEL_VERSION}\"",
            model.info.model,
            super::untrusted(version)
        )));
    }
    Ok(model)
}

/// The earlier of `deadline` and the request's `timeout` parameter (microseconds; 0 = none).
fn with_timeout_parameter(
    deadline: Option<CallDeadline>,
    parameters: &std::collections::HashMap<String, pb::InferParameter>,
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
    Ok(super::deadline::earlier(deadline, Some(own)))
}

/// One ModelInfer request through the pipeline. `deadline` is the call's (for a stream, the
/// stream's combined with the server's `--request-timeout`).
async fn infer(
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
    let outputs = tensors::parse_outputs(&request.outputs, num_classes)?;
    let shape = ImageShape {
        channels: crate::preprocess::CHANNELS,
        size: model.preprocess.crop_size as usize,
    };
    let raw = std::mem::take(&mut request.raw_input_contents);
    let inputs = std::mem::take(&mut request.inputs);
    let (images, raw) =
        tensors::parse_inputs(inputs, raw, shape, pipeline.config().max_batch_images)?;
    let input_name = images.input_name();
    let count = images.len();

    // Every image goes to the pool at once so that free instances batch them; dropping the guard
    // (deadline passed, caller gone) aborts the ones still running.
    let mut tasks = AbortOnDrop(match images {
        Images::Encoded(files) => files
            .into_iter()
            .map(|file| {
                let (pipeline, model) = (pipeline.clone(), Arc::clone(&model));
                spawn_traced(async move { pipeline.classify_image(&model, file, deadline).await })
            })
            .collect(),
        Images::Preprocessed(values) => values
            .into_iter()
            .map(|tensor| {
                let (pipeline, model) = (pipeline.clone(), Arc::clone(&model));
                spawn_traced(
                    async move { pipeline.classify_tensor(&model, tensor, deadline).await },
                )
            })
            .collect(),
    });
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
    let logits = within_deadline(deadline, collect).await?;

    let output_started = Instant::now();
    let (output_tensors, raw_outputs) =
        tensors::build_outputs(&outputs, &logits, &model.labels, raw);
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

/// What the access log says of a ModelInfer answer: its batch size (rows of the first output).
fn summarize(response: &pb::ModelInferResponse) -> CallSummary {
    CallSummary {
        images: response
            .outputs
            .first()
            .and_then(|o| o.shape.first())
            .map_or(0, |&n| n.max(0) as usize),
        ..Default::default()
    }
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.pipeline.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let ready = match self.pipeline.loaded() {
            // While loading the name is not known yet: nothing is ready.
            None => false,
            Some(model) => {
                addressed(model, &request.name, &request.version)?;
                self.pipeline.is_ready()
            }
        };
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: describe::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: describe::EXTENSIONS.map(String::from).to_vec(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
        Ok(Response::new(describe::metadata(&model)))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline_of(&request);
        let header_id = request_id_of(&request);
        let request = request.into_inner();
        let request_id = if request.id.is_empty() {
            header_id
        } else {
            request.id.clone()
        };
        let call = Call {
            rpc: "ModelInfer",
            inference: true,
            started,
            request_id: &request_id,
        };
        let result = infer(self.pipeline.clone(), request, deadline).await;
        self.pipeline
            .recorded(call, result, summarize)
            .map(Response::new)
    }

    type ModelStreamInferStream = ResponseStream;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let stream_deadline = deadline_of(&request);
        let stream_id = request_id_of(&request);
        let mut incoming = request.into_inner();
        let request_timeout = self.pipeline.config().request_timeout;
        // (model name, id, the request's task), in request order.
        let (order_tx, mut order_rx) =
            mpsc::channel::<(String, String, AbortOnDrop<_>)>(STREAM_REQUESTS_IN_FLIGHT);
        let (out_tx, out_rx) = mpsc::channel(STREAM_REQUESTS_IN_FLIGHT);

        // Reader: each request starts at once (up to STREAM_REQUESTS_IN_FLIGHT ahead of the writer).
        let pipeline = self.pipeline.clone();
        let reader_out = out_tx.clone();
        spawn_traced(async move {
            loop {
                let message = match incoming.next().await {
                    None => break,
                    Some(Ok(m)) => m,
                    Some(Err(status)) => {
                        // The stream itself broke (client reset, bad frame): end it.
                        let _ = reader_out.send(Err(status)).await;
                        break;
                    }
                };
                let arrived = Instant::now();
                let deadline = stream_message_deadline(stream_deadline, request_timeout, arrived);
                let (id, model_name) = (message.id.clone(), message.model_name.clone());
                let task_pipeline = pipeline.clone();
                let request_id = if id.is_empty() {
                    stream_id.clone()
                } else {
                    id.clone()
                };
                let task = spawn_traced(async move {
                    let call = Call {
                        rpc: "ModelStreamInfer",
                        inference: true,
                        started: arrived,
                        request_id: &request_id,
                    };
                    let result = infer(task_pipeline.clone(), message, deadline).await;
                    task_pipeline.recorded(call, result, summarize)
                });
                if order_tx
                    .send((model_name, id, AbortOnDrop(vec![task])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });

        // Writer: answers in request order.
        spawn_traced(async move {
            while let Some((model_name, id, mut task)) = order_rx.recv().await {
                let answer = match task.0.pop().expect("one task").await {
                    Ok(Ok(response)) => pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(response),
                    },
                    Ok(Err(status)) => pb::ModelStreamInferResponse {
                        error_message: status.message().to_string(),
                        infer_response: Some(pb::ModelInferResponse {
                            model_name,
                            model_version: MODEL_VERSION.into(),
                            id,
                            ..Default::default()
                        }),
                    },
                    Err(join) => pb::ModelStreamInferResponse {
                        error_message: format!("inference task failed: {join}"),
                        infer_response: None,
                    },
                };
                if out_tx.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(describe::config(&model, self.pipeline.config())),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let model_stats = if request.name.is_empty() {
            // Every model: none while loading.
            self.pipeline
                .loaded()
                .map(|m| describe::statistics(&m))
                .into_iter()
                .collect()
        } else {
            let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
            vec![describe::statistics(&model)]
        };
        Ok(Response::new(pb::ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let request = request.into_inner();
        let ready = self.pipeline.is_ready();
        let models = self
            .pipeline
            .loaded()
            .filter(|_| ready || !request.ready)
            .map(|m| pb::repository_index_response::ModelIndex {
                name: m.info.model.clone(),
                version: MODEL_VERSION.into(),
                state: if ready { "READY" } else { "UNAVAILABLE" }.into(),
                reason: if ready {
                    ""
                } else {
                    "the server is shutting down"
                }
                .into(),
            })
            .into_iter()
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }
}
