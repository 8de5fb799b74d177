//! ModelStreamInfer: each request of the stream starts at once (up to
//! [`MODEL_STREAM_MAX_PENDING_REQUESTS`] ahead of the oldest unanswered one) and is answered in
//! request order; a failed request is answered with its error and the stream goes on.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::describe::MODEL_VERSION;
use super::infer::{infer, summarize};
use crate::proto::inference as pb;
use crate::server::call::deadline::{deadline_of, stream_message_deadline, CallDeadline};
use crate::server::call::request_id::request_id_of;
use crate::server::pipeline::{spawn_traced, AbortOnDrop, Call, Pipeline};

/// Requests of one ModelStreamInfer stream worked on at once; the next waits for the oldest.
pub const MODEL_STREAM_MAX_PENDING_REQUESTS: usize = 16;

/// The answers of one ModelStreamInfer call.
pub type ModelStreamAnswers =
    Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

type AnswerSender = mpsc::Sender<Result<pb::ModelStreamInferResponse, Status>>;

/// One request of the stream, started: its model name and id (for an error answer) and its task.
struct StartedRequest {
    model_name: String,
    id: String,
    task: AbortOnDrop<Result<pb::ModelInferResponse, Status>>,
}

/// What every request of one stream shares.
struct StreamCall {
    pipeline: Pipeline,
    /// The stream's own deadline (the client's `grpc-timeout` for the whole call).
    deadline: Option<CallDeadline>,
    /// The stream's request id, for a request without an id of its own.
    id: String,
    /// `--request-timeout`, applied to each request from its arrival.
    request_timeout: Option<Duration>,
}

/// A ModelStreamInfer call: a reader task starts each request, a writer task answers them in
/// order on the returned stream.
pub fn model_stream_infer_call(
    pipeline: &Pipeline,
    request: Request<Streaming<pb::ModelInferRequest>>,
) -> Response<ModelStreamAnswers> {
    let stream = StreamCall {
        pipeline: pipeline.clone(),
        deadline: deadline_of(&request),
        id: request_id_of(&request),
        request_timeout: pipeline.config().request_timeout,
    };
    let incoming = request.into_inner();
    // The started requests, in request order.
    let (order_tx, order_rx) = mpsc::channel(MODEL_STREAM_MAX_PENDING_REQUESTS);
    let (out_tx, out_rx) = mpsc::channel(MODEL_STREAM_MAX_PENDING_REQUESTS);
    spawn_traced(read_requests(stream, incoming, order_tx, out_tx.clone()));
    spawn_traced(write_answers(order_rx, out_tx));
    Response::new(Box::pin(ReceiverStream::new(out_rx)))
}

/// Reader: each request starts at once (up to the limit ahead of the writer).
async fn read_requests(
    stream: StreamCall,
    mut incoming: Streaming<pb::ModelInferRequest>,
    order_tx: mpsc::Sender<StartedRequest>,
    out_tx: AnswerSender,
) {
    loop {
        let message = match incoming.next().await {
            None => break,
            Some(Ok(m)) => m,
            Some(Err(status)) => {
                // The stream itself broke (client reset, bad frame): end it.
                let _ = out_tx.send(Err(status)).await;
                break;
            }
        };
        let started = start_request(&stream, message);
        if order_tx.send(started).await.is_err() {
            break;
        }
    }
}

/// Start one request of the stream, recorded as a call of its own.
fn start_request(stream: &StreamCall, message: pb::ModelInferRequest) -> StartedRequest {
    let arrived = Instant::now();
    let deadline = stream_message_deadline(stream.deadline, stream.request_timeout, arrived);
    let (id, model_name) = (message.id.clone(), message.model_name.clone());
    let pipeline = stream.pipeline.clone();
    let request_id = if id.is_empty() {
        stream.id.clone()
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
        let result = infer(pipeline.clone(), message, deadline).await;
        pipeline.recorded(call, result, summarize)
    });
    StartedRequest {
        model_name,
        id,
        task: AbortOnDrop(vec![task]),
    }
}

/// Writer: answers in request order.
async fn write_answers(mut order_rx: mpsc::Receiver<StartedRequest>, out_tx: AnswerSender) {
    while let Some(mut started) = order_rx.recv().await {
        let task: JoinHandle<_> = started.task.0.pop().expect("one task");
        let answer = match task.await {
            Ok(Ok(response)) => pb::ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(response),
            },
            Ok(Err(status)) => pb::ModelStreamInferResponse {
                error_message: status.message().to_string(),
                infer_response: Some(pb::ModelInferResponse {
                    model_name: started.model_name,
                    model_version: MODEL_VERSION.into(),
                    id: started.id,
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
}
