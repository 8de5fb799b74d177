//! `swin.v1.Classifier`: Classify, ClassifyBatch, GetModelInfo.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::pipeline::{
    check_deadline, deadline_of, request_id_of, spawn_traced, stream_message_deadline,
    within_deadline, AbortOnDrop, Call, CallSummary, Pipeline,
};
use super::status::code_name;
use super::ServingModel;
use crate::postprocess::top_k;
use crate::proto;

/// Top-k used when a request leaves `top_k` at 0.
pub const DEFAULT_TOP_K: u32 = 5;

/// The classifier service; answers UNAVAILABLE until the model slot is filled.
#[derive(Clone)]
pub struct ClassifierService {
    pipeline: Pipeline,
}

impl ClassifierService {
    /// A service over the shared `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
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

/// What the access log says of one classified image.
fn classify_summary(r: &proto::ClassifyResponse) -> CallSummary {
    CallSummary {
        images: 1,
        batch_size: r.timing.as_ref().map_or(0, |t| t.batch_size as usize),
        width: r.image_width,
        height: r.image_height,
    }
}

/// One image through the shared pipeline, answered as `swin.v1`.
async fn classify_one(
    pipeline: Pipeline,
    model: Arc<ServingModel>,
    request: proto::ClassifyRequest,
    deadline: Option<super::CallDeadline>,
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

impl ClassifierService {
    async fn classify_inner(
        &self,
        request: Request<proto::ClassifyRequest>,
        header_id: &str,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let model = self.pipeline.model()?;
        let deadline = deadline_of(&request);
        let mut request = request.into_inner();
        // The body's id wins; else the call's (x-request-id, or the one made for it).
        if request.request_id.is_empty() {
            request.request_id = header_id.to_string();
        }
        let work = classify_one(self.pipeline.clone(), model, request, deadline);
        within_deadline(deadline, work).await.map(Response::new)
    }

    async fn classify_batch_inner(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let model = self.pipeline.model()?;
        let deadline = deadline_of(&request);
        check_deadline(deadline, "before decoding")?;
        let requests = request.into_inner().requests;
        let max_batch_images = self.pipeline.config().max_batch_images;
        if requests.len() > max_batch_images {
            return Err(Status::invalid_argument(format!(
                "ClassifyBatch carries {} images; the limit is {} per call",
                requests.len(),
                max_batch_images
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
                    tokio::spawn(
                        classify_one(self.pipeline.clone(), Arc::clone(&model), r, deadline)
                            .in_current_span(),
                    )
                })
                .collect(),
        );
        let collect = async {
            let mut results = Vec::with_capacity(tasks.0.len());
            for (index, task) in tasks.0.iter_mut().enumerate() {
                let outcome = match task.await {
                    Ok(Ok(response)) => proto::classify_result::Outcome::Response(response),
                    Ok(Err(status)) => {
                        proto::classify_result::Outcome::Error(error_message(&status))
                    }
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
        let model = self.pipeline.model()?;
        Ok(Response::new(model.info.clone()))
    }
}

/// Images of one ClassifyStream worked on at once; the next message is read when one completes.
pub const CLASSIFY_STREAM_IN_FLIGHT: usize = 16;

/// An error as ClassifyBatch and ClassifyStream report it per image.
fn error_message(status: &Status) -> proto::Error {
    proto::Error {
        code: status.code() as i32,
        code_name: code_name(status.code()).to_string(),
        message: status.message().to_string(),
    }
}

type ClassifyStreamAnswers = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<proto::ClassifyStreamResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl proto::classifier_server::Classifier for ClassifierService {
    type ClassifyStreamStream = ClassifyStreamAnswers;

    async fn classify_stream(
        &self,
        request: Request<tonic::Streaming<proto::ClassifyRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        use tokio_stream::StreamExt;
        let stream_deadline = deadline_of(&request);
        let stream_id = request_id_of(&request);
        let mut incoming = request.into_inner();
        let pipeline = self.pipeline.clone();
        let request_timeout = pipeline.config().request_timeout;
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(CLASSIFY_STREAM_IN_FLIGHT);
        let permits = Arc::new(tokio::sync::Semaphore::new(CLASSIFY_STREAM_IN_FLIGHT));
        spawn_traced(async move {
            // Owns the images' tasks: dropped (and so aborted) when the client goes away.
            let mut tasks = tokio::task::JoinSet::new();
            let mut index: u64 = 0;
            loop {
                // Flow control: a message is read only when fewer than the limit are in flight.
                let permit = tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => p.expect("never closed"),
                    _ = out_tx.closed() => return,
                };
                let message = tokio::select! {
                    m = incoming.next() => m,
                    _ = out_tx.closed() => return,
                };
                let mut message = match message {
                    None => break,
                    Some(Ok(m)) => m,
                    Some(Err(status)) => {
                        // The stream itself broke (bad frame, message too large): end it.
                        let _ = out_tx.send(Err(status)).await;
                        return;
                    }
                };
                let arrived = Instant::now();
                let deadline = stream_message_deadline(stream_deadline, request_timeout, arrived);
                if message.request_id.is_empty() {
                    message.request_id = format!("{stream_id}/{index}");
                }
                let (pipeline, out_tx, position) = (pipeline.clone(), out_tx.clone(), index);
                tasks.spawn(
                    async move {
                        let _permit = permit;
                        let request_id = message.request_id.clone();
                        let call = Call {
                            rpc: "ClassifyStream",
                            inference: true,
                            started: arrived,
                            request_id: &request_id,
                        };
                        let work = async {
                            let model = pipeline.model()?;
                            within_deadline(
                                deadline,
                                classify_one(pipeline.clone(), model, message, deadline),
                            )
                            .await
                        };
                        let result = work.await;
                        let result = pipeline.recorded(call, result, classify_summary);
                        let outcome = match result {
                            Ok(response) => {
                                proto::classify_stream_response::Outcome::Response(response)
                            }
                            Err(status) => proto::classify_stream_response::Outcome::Error(
                                error_message(&status),
                            ),
                        };
                        let _ = out_tx
                            .send(Ok(proto::ClassifyStreamResponse {
                                request_id,
                                index: position,
                                outcome: Some(outcome),
                            }))
                            .await;
                    }
                    .in_current_span(),
                );
                index += 1;
                // Reap finished tasks as we go (their answers are already sent).
                while tasks.try_join_next().is_some() {}
            }
            // The client has sent everything: answer what is in flight, unless it goes away.
            tokio::select! {
                _ = async { while tasks.join_next().await.is_some() {} } => {}
                _ = out_tx.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out_rx),
        )))
    }

    async fn classify(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let started = Instant::now();
        let header_id = request_id_of(&request);
        let body_id = request.get_ref().request_id.clone();
        let request_id = if body_id.is_empty() {
            &header_id
        } else {
            &body_id
        };
        let call = Call {
            rpc: "Classify",
            inference: true,
            started,
            request_id,
        };
        let result = self.classify_inner(request, &header_id).await;
        self.pipeline
            .recorded(call, result, |r| classify_summary(r.get_ref()))
    }

    async fn classify_batch(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let request_id = request_id_of(&request);
        let call = Call {
            rpc: "ClassifyBatch",
            inference: true,
            started: Instant::now(),
            request_id: &request_id,
        };
        let result = self.classify_batch_inner(request).await;
        self.pipeline.recorded(call, result, |r| CallSummary {
            images: r.get_ref().results.len(),
            ..Default::default()
        })
    }

    async fn get_model_info(
        &self,
        request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let request_id = request_id_of(&request);
        let call = Call {
            rpc: "GetModelInfo",
            inference: false,
            started: Instant::now(),
            request_id: &request_id,
        };
        let result = self.get_model_info_inner(request).await;
        self.pipeline
            .recorded(call, result, |_| CallSummary::default())
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
