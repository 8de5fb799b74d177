//! ClassifyStream: one answer per image message, as each completes, with at most
//! [`CLASSIFY_STREAM_MAX_PENDING_IMAGES`] images of the stream worked on at once (the next message
//! is read when one completes: flow control reaches the client).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::classify::{classify_one, classify_summary, error_message};
use crate::proto;
use crate::server::call::deadline::{
    deadline_of, stream_message_deadline, within_deadline, CallDeadline,
};
use crate::server::call::request_id::request_id_of;
use crate::server::pipeline::{spawn_traced, Call, Pipeline};

/// Images of one ClassifyStream worked on at once; the next message is read when one completes.
pub const CLASSIFY_STREAM_MAX_PENDING_IMAGES: usize = 16;

/// The answers of one ClassifyStream call.
pub type ClassifyStreamAnswers =
    Pin<Box<dyn Stream<Item = Result<proto::ClassifyStreamResponse, Status>> + Send>>;

type AnswerSender = mpsc::Sender<Result<proto::ClassifyStreamResponse, Status>>;

/// What every message of one stream shares.
struct StreamCall {
    pipeline: Pipeline,
    /// The stream's own deadline (the client's `grpc-timeout` for the whole call).
    deadline: Option<CallDeadline>,
    /// The stream's request id; a message without one gets `{id}/{index}`.
    id: String,
    /// `--request-timeout`, applied to each message from its arrival.
    request_timeout: Option<Duration>,
}

/// A ClassifyStream call: reads the messages on a task of its own and answers them on the
/// returned stream.
pub fn classify_stream_call(
    pipeline: &Pipeline,
    request: Request<Streaming<proto::ClassifyRequest>>,
) -> Response<ClassifyStreamAnswers> {
    let stream = StreamCall {
        pipeline: pipeline.clone(),
        deadline: deadline_of(&request),
        id: request_id_of(&request),
        request_timeout: pipeline.config().request_timeout,
    };
    let incoming = request.into_inner();
    let (out_tx, out_rx) = mpsc::channel(CLASSIFY_STREAM_MAX_PENDING_IMAGES);
    spawn_traced(read_stream(stream, incoming, out_tx));
    Response::new(Box::pin(ReceiverStream::new(out_rx)))
}

/// What reading the next message gave.
enum NextMessage {
    /// A message, with its place among the stream's pending images.
    Message(OwnedSemaphorePermit, proto::ClassifyRequest),
    /// The client has sent everything.
    End,
    /// The client went away, or the stream broke (its error already sent): stop at once.
    Stop,
}

/// Read the stream's messages and start each one's work, until the client has sent everything
/// (then answer what is pending, unless it goes away).
async fn read_stream(
    stream: StreamCall,
    mut incoming: Streaming<proto::ClassifyRequest>,
    out_tx: AnswerSender,
) {
    let permits = Arc::new(Semaphore::new(CLASSIFY_STREAM_MAX_PENDING_IMAGES));
    // Owns the images' tasks: dropped (and so aborted) when the client goes away.
    let mut tasks = tokio::task::JoinSet::new();
    let mut index: u64 = 0;
    loop {
        let (permit, mut message) = match next_message(&permits, &mut incoming, &out_tx).await {
            NextMessage::Message(permit, message) => (permit, message),
            NextMessage::End => break,
            NextMessage::Stop => return,
        };
        let arrived = Instant::now();
        if message.request_id.is_empty() {
            message.request_id = format!("{}/{index}", stream.id);
        }
        let pending = PendingImage {
            message,
            index,
            arrived,
            deadline: stream_message_deadline(stream.deadline, stream.request_timeout, arrived),
            _permit: permit,
        };
        tasks.spawn(
            answer_image(stream.pipeline.clone(), pending, out_tx.clone()).in_current_span(),
        );
        index += 1;
        // Reap finished tasks as we go (their answers are already sent).
        while tasks.try_join_next().is_some() {}
    }
    // The client has sent everything: answer what is pending, unless it goes away.
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = out_tx.closed() => {}
    }
}

/// Flow control: a message is read only when fewer than the limit are pending.
async fn next_message(
    permits: &Arc<Semaphore>,
    incoming: &mut Streaming<proto::ClassifyRequest>,
    out_tx: &AnswerSender,
) -> NextMessage {
    let permit = tokio::select! {
        p = Arc::clone(permits).acquire_owned() => p.expect("never closed"),
        _ = out_tx.closed() => return NextMessage::Stop,
    };
    let message = tokio::select! {
        m = incoming.next() => m,
        _ = out_tx.closed() => return NextMessage::Stop,
    };
    match message {
        None => NextMessage::End,
        Some(Ok(m)) => NextMessage::Message(permit, m),
        Some(Err(status)) => {
            // The stream itself broke (bad frame, message too large): end it.
            let _ = out_tx.send(Err(status)).await;
            NextMessage::Stop
        }
    }
}

/// One message of the stream, being worked on.
struct PendingImage {
    message: proto::ClassifyRequest,
    /// Its position in the stream.
    index: u64,
    arrived: Instant,
    deadline: Option<CallDeadline>,
    /// Its place among the stream's pending images, given back when it has been answered.
    _permit: OwnedSemaphorePermit,
}

/// Classify one message, record it as a call of its own, and send its answer.
async fn answer_image(pipeline: Pipeline, pending: PendingImage, out_tx: AnswerSender) {
    let PendingImage {
        message,
        index,
        arrived,
        deadline,
        _permit,
    } = pending;
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
    let outcome = match pipeline.recorded(call, result, classify_summary) {
        Ok(response) => proto::classify_stream_response::Outcome::Response(response),
        Err(status) => proto::classify_stream_response::Outcome::Error(error_message(&status)),
    };
    let _ = out_tx
        .send(Ok(proto::ClassifyStreamResponse {
            request_id,
            index,
            outcome: Some(outcome),
        }))
        .await;
}
