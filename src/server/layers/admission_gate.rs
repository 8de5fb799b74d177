//! Refusal at the headers for the gRPC inference calls: when the engine queue is full, its
//! estimated wait is over `--max-queue-wait`, or the model is not loaded, a `Classify`,
//! `ClassifyBatch` or `ModelInfer` call is answered (UNAVAILABLE, as the admission check answers
//! it) as soon as its headers arrive — its message is never read, decoded or charged to the
//! memory budget. Under a storm of calls the server cannot take, each refusal then costs a
//! header parse, not a 0.5 MB read and a protobuf decode (issue 20, item 5). An admitted call is
//! checked again when its image's header is known, as before: this gate only refuses earlier.
//! Past `--max-refusal-rate` refusals a second a refusal waits its turn, unread
//! ([`crate::server::pipeline::refusal_pacing`]).
//!
//! Wrapped around each inference service *inside* its bearer-token interceptor, so that a caller
//! without a token is told UNAUTHENTICATED, not the state of the queue. Streams are not gated: a
//! stream outlives any one moment's queue, and its messages are admitted one by one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::server::call::deadline::CallDeadline;
use crate::server::call::request_id::RequestId;
use crate::server::pipeline::{Call, Pipeline};

/// The unary inference methods refused at their headers, with the `rpc` label each is recorded
/// under (the services' own).
const GATED: [(&str, &str); 3] = [
    ("/swin.v1.Classifier/Classify", "Classify"),
    ("/swin.v1.Classifier/ClassifyBatch", "ClassifyBatch"),
    ("/inference.GRPCInferenceService/ModelInfer", "ModelInfer"),
];

/// A service (one of the inference services) whose gated methods are refused at the headers while
/// the pipeline cannot admit an image.
#[derive(Clone)]
pub struct AdmissionGate<S> {
    inner: S,
    pipeline: Pipeline,
}

impl<S> AdmissionGate<S> {
    /// `inner`, gated on `pipeline`'s admission.
    pub fn new(inner: S, pipeline: Pipeline) -> Self {
        Self { inner, pipeline }
    }
}

impl<S: NamedService> NamedService for AdmissionGate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for AdmissionGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let Some(&(_, rpc)) = GATED.iter().find(|(p, _)| *p == path) else {
            return Box::pin(self.inner.call(request));
        };
        let started = Instant::now();
        let status = match self.pipeline.admission_open() {
            Ok(()) => return Box::pin(self.inner.call(request)),
            Err(status) => status,
        };
        let turn = self
            .pipeline
            .refusal_turn(request.extensions().get::<CallDeadline>().copied());
        let pipeline = self.pipeline.clone();
        Box::pin(async move {
            if let Some(turn) = turn {
                // The request is held unread meanwhile: HTTP/2 flow control stops its body after
                // the first window, and the stream stays open for the answer.
                turn.wait().await;
            }
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_default();
            let call = Call {
                rpc,
                inference: true,
                started,
                request_id: &request_id,
            };
            let status = pipeline
                .recorded::<()>(call, Err(status), |_| Default::default())
                .expect_err("recorded as given");
            // The request body is dropped unread: hyper resets the request stream after the
            // answer (trailers-only), which gRPC clients take as the end of the call.
            drop(request);
            Ok(status.into_http())
        })
    }
}
