//! Slow senders: a bound on how long a request message may take to arrive (`--message-timeout`,
//! default [`crate::server::DEFAULT_MESSAGE_TIMEOUT`]), and request messages being received
//! charged to the memory budget.
//!
//! [`MessageArrivalLayer`] wraps every call's request body in a [`MessageBody`] that follows gRPC's
//! length-prefixed framing (a 5-byte header: a compression flag and a 4-byte big-endian length,
//! then the message) as the data frames arrive:
//!
//! * **Timeout.** A unary request (one message, then the end of the request stream) must have
//!   fully arrived, end of stream included, within the message timeout of the call's start. On a
//!   client-streaming call (ClassifyStream, ModelStreamInfer, reflection) each message must have
//!   fully arrived within the message timeout of its first byte; the time between messages is not
//!   bounded (an open stream costs no memory). When the timeout passes, the request stream fails
//!   with DEADLINE_EXCEEDED: a unary call is answered with it, a stream ends with it. The partial
//!   message, the call's place in flight and its budget charge are given back.
//! * **Budget.** When a message's header has arrived, its declared length (at most
//!   `--max-message-bytes`: tonic refuses longer ones at the header) is charged to the memory
//!   budget until the message has arrived; over the budget the request stream fails with
//!   RESOURCE_EXHAUSTED at once. Once the message is complete the charge goes back and the
//!   handler charges the image it carries
//!   ([`crate::server::pipeline::Pipeline::classify_image`]).
//!
//! The timer is only polled while the server reads the request: a message the server is slow to
//! read (its handler busy) is not the client's stall; what is already buffered is read first.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

use crate::server::memory_budget::{BudgetGuard, MemoryBudget};
use crate::server::metrics::names;

/// The methods whose request is a stream of messages (the rest send exactly one).
const CLIENT_STREAMING: [&str; 4] = [
    "/swin.v1.Classifier/ClassifyStream",
    "/inference.GRPCInferenceService/ModelStreamInfer",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// One frame of a request body, as [`http_body::Body::poll_frame`] gives it.
type FrameResult = Result<http_body::Frame<tonic::codegen::Bytes>, Status>;

/// gRPC's message prefix: compression flag + 4-byte big-endian length.
const HEADER_LEN: usize = 5;

/// Tower layer: every request body read under the message timeout and charged to the budget while
/// a message arrives (see the module docs).
#[derive(Debug, Clone)]
pub struct MessageArrivalLayer {
    message_timeout: Option<Duration>,
    budget: Option<Arc<MemoryBudget>>,
}

impl MessageArrivalLayer {
    /// `message_timeout` `None`: no timeout; `budget` `None`: request messages are not charged.
    pub fn new(message_timeout: Option<Duration>, budget: Option<Arc<MemoryBudget>>) -> Self {
        Self {
            message_timeout,
            budget,
        }
    }
}

impl<S> tower::Layer<S> for MessageArrivalLayer {
    type Service = MessageArrival<S>;

    fn layer(&self, inner: S) -> MessageArrival<S> {
        MessageArrival {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`MessageArrivalLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct MessageArrival<S> {
    inner: S,
    layer: MessageArrivalLayer,
}

impl<S, R> tower::Service<http::Request<Body>> for MessageArrival<S>
where
    S: tower::Service<http::Request<Body>, Response = R>,
{
    type Response = R;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let streaming = CLIENT_STREAMING.contains(&request.uri().path());
        let layer = self.layer.clone();
        let request = request.map(|body| {
            Body::new(MessageBody::new(
                body,
                layer.message_timeout,
                streaming,
                layer.budget,
            ))
        });
        self.inner.call(request)
    }
}

/// A request body read under the message timeout and the budget (see the module docs).
pub struct MessageBody {
    inner: Body,
    timeout: Option<Duration>,
    streaming: bool,
    /// When the message being received (unary: the whole request) must be complete.
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    header: [u8; HEADER_LEN],
    header_len: usize,
    remaining: u64,
    budget: Option<Arc<MemoryBudget>>,
    charge: Option<BudgetGuard>,
    failed: bool,
}

impl MessageBody {
    /// `inner` under `timeout`, `streaming`: a client-streaming method.
    pub fn new(
        inner: Body,
        timeout: Option<Duration>,
        streaming: bool,
        budget: Option<Arc<MemoryBudget>>,
    ) -> Self {
        let deadline = match timeout {
            Some(limit) if !streaming => Some(Instant::now() + limit),
            _ => None,
        };
        Self {
            inner,
            timeout,
            streaming,
            deadline,
            timer: None,
            header: [0; HEADER_LEN],
            header_len: 0,
            remaining: 0,
            budget,
            charge: None,
            failed: false,
        }
    }

    /// Follow the framing through `data`; an error when a message's declared length does not fit
    /// the budget.
    fn advance(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.header_len < HEADER_LEN {
                if self.header_len == 0 && self.deadline.is_none() {
                    // A message begins.
                    self.deadline = self.timeout.map(|limit| Instant::now() + limit);
                }
                let n = (HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len < HEADER_LEN {
                    continue;
                }
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                if let Some(budget) = &self.budget {
                    let charge = budget.try_acquire(self.remaining).map_err(|e| {
                        metrics::counter!(
                            names::CALLS_REFUSED_TOTAL,
                            "reason" => names::refused::MEMORY_BUDGET
                        )
                        .increment(1);
                        Status::resource_exhausted(format!(
                            "{e} (request message being received); retry later (--memory-budget)"
                        ))
                    })?;
                    self.charge = Some(charge);
                }
            } else {
                let n = self.remaining.min(data.len() as u64);
                self.remaining -= n;
                data = &data[n as usize..];
            }
            if self.header_len == HEADER_LEN && self.remaining == 0 {
                // The message is complete.
                self.header_len = 0;
                self.charge = None;
                if self.streaming {
                    self.deadline = None;
                }
            }
        }
        Ok(())
    }

    /// Whether the deadline has passed (arming the timer to wake the reader when it does).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn fail(&mut self, status: Status) -> Poll<Option<FrameResult>> {
        self.failed = true;
        self.charge = None;
        self.deadline = None;
        self.timer = None;
        Poll::Ready(Some(Err(status)))
    }

    fn expired_status(&self) -> Status {
        let limit = self.timeout.unwrap_or_default().as_secs_f32();
        metrics::counter!(
            names::CALLS_REFUSED_TOTAL,
            "reason" => names::refused::MESSAGE_TIMEOUT
        )
        .increment(1);
        Status::deadline_exceeded(if self.streaming {
            format!("a request message of the stream did not arrive within {limit} s of its first byte (--message-timeout)")
        } else {
            format!("the request message did not arrive within {limit} s of the call's start (--message-timeout)")
        })
    }
}

impl http_body::Body for MessageBody {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        // Checked on every read, so a steady trickle cannot outlast the deadline either.
        if this.deadline.is_some_and(|d| Instant::now() >= d) {
            let status = this.expired_status();
            return this.fail(status);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = this.advance(data) {
                        return this.fail(status);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.charge = None;
                this.deadline = None;
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(status))) => {
                this.charge = None;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Pending => {
                if this.poll_expired(cx) {
                    let status = this.expired_status();
                    return this.fail(status);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend(len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[tokio::test(start_paused = true)]
    async fn framing_is_followed_across_frames_and_charges_go_back() {
        let budget = MemoryBudget::new(Some(100));
        let mut body = MessageBody::new(
            Body::empty(),
            Some(Duration::from_secs(1)),
            true,
            Some(Arc::clone(&budget)),
        );
        let mut two = framed(10);
        two.extend(framed(3));
        // Split inside the header, inside the payload, across the message boundary.
        for chunk in [&two[..2], &two[2..9], &two[9..21]] {
            body.advance(chunk).unwrap();
        }
        assert_eq!(budget.in_use(), 3, "the second message's declared length");
        assert!(body.deadline.is_some(), "mid-message");
        body.advance(&two[21..]).unwrap();
        assert_eq!(budget.in_use(), 0);
        assert!(body.deadline.is_none(), "between messages of a stream");
        // Over the budget: refused when the header arrives.
        let err = body.advance(&framed(101)[..5]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        // A unary request's deadline runs from the start and is not cleared by a whole message.
        let mut unary = MessageBody::new(Body::empty(), Some(Duration::from_secs(1)), false, None);
        unary.advance(&framed(4)).unwrap();
        assert!(unary.deadline.is_some());
    }
}
