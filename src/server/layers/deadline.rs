//! [`DeadlineLayer`]: every call's [`CallDeadline`] (see [`crate::server::call::deadline`]).
//!
//! The layer sits in front of every service. For each call it
//! * parses `grpc-timeout` ([`parse_grpc_timeout`]); a malformed value is answered INTERNAL at once,
//!   as grpc-go does (`malformed grpc-timeout: ...`). `0` with any unit is well-formed: the call has
//!   already expired and is answered DEADLINE_EXCEEDED without being decoded (grpc-go: a context whose
//!   deadline is now);
//! * for Classify, ClassifyBatch and OIP ModelInfer calls, applies the server default
//!   `--request-timeout` when the client sent no timeout, or the smaller of the two when it did
//!   (GetModelInfo, health and reflection keep only the client's: a probe must not be refused by a
//!   deadline meant for classification work);
//! * stores the result as a [`CallDeadline`] in the request's extensions, where the handler reads it
//!   to drop expired work at each stage (before decoding, before the engine queue; the scheduler's
//!   worker drops it before an engine runs it);
//! * bounds the whole call, receiving the request message included, with `tokio::time::timeout_at`:
//!   when the deadline passes first, the answer is DEADLINE_EXCEEDED.
//!
//! Why a layer and not only the handler: tonic's server applies its own timer from `grpc-timeout`
//! (in the connection's stack, outside every layer) and answers CANCELLED ("Timeout expired") when it
//! fires. This layer runs inside that stack but takes its arrival time before tonic starts its timer,
//! so our deadline is never later than tonic's, and on the same tick ours is polled first (it is
//! inside): the server answers DEADLINE_EXCEEDED, never CANCELLED. `Server::builder().timeout(..)` is
//! not used for the same reason.
//!
//! [`CallDeadline`]: crate::server::call::deadline::CallDeadline

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

use crate::server::call::deadline::{call_deadline, parse_grpc_timeout, GRPC_TIMEOUT_HEADER};
use crate::server::log_text::untrusted;

/// The calls the server default `--request-timeout` applies to (HTTP/2 `:path`). (The requests of
/// an OIP ModelStreamInfer stream get it one by one, from the handler.)
const CLASSIFICATION_PATHS: [&str; 3] = [
    "/swin.v1.Classifier/Classify",
    "/swin.v1.Classifier/ClassifyBatch",
    "/inference.GRPCInferenceService/ModelInfer",
];

/// Whether `path` (`/package.Service/Method`) is a Classify, ClassifyBatch or ModelInfer call.
fn is_classification_call(path: &str) -> bool {
    CLASSIFICATION_PATHS.contains(&path)
}

/// Tower layer that gives every call its
/// [`CallDeadline`](crate::server::call::deadline::CallDeadline) and bounds it (see the module docs).
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    request_timeout: Option<Duration>,
}

impl DeadlineLayer {
    /// `request_timeout`: the server default for Classify and ClassifyBatch (`--request-timeout`).
    pub fn new(request_timeout: Option<Duration>) -> Self {
        Self { request_timeout }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadlines<S>;

    fn layer(&self, inner: S) -> Deadlines<S> {
        Deadlines {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service [`DeadlineLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct Deadlines<S> {
    inner: S,
    request_timeout: Option<Duration>,
}

impl<S, B> tower::Service<http::Request<B>> for Deadlines<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Taken before tonic's own grpc-timeout timer starts (it starts once this returns).
        let arrived = Instant::now();
        let client = match request.headers().get(GRPC_TIMEOUT_HEADER) {
            None => None,
            Some(value) => match parse_grpc_timeout(value.as_bytes()) {
                Ok(timeout) => Some(timeout),
                Err(malformed) => {
                    tracing::info!(error = %untrusted(&malformed.to_string()), path = %untrusted(request.uri().path()), "call refused");
                    let answer = Status::internal(malformed.to_string()).into_http();
                    return Box::pin(std::future::ready(Ok(answer)));
                }
            },
        };
        let server = self
            .request_timeout
            .filter(|_| is_classification_call(request.uri().path()));
        let Some(deadline) = call_deadline(client, server, arrived) else {
            return Box::pin(self.inner.call(request));
        };
        request.extensions_mut().insert(deadline);
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline.at.into(), call).await {
                Ok(answer) => answer,
                Err(_) => Ok(deadline.status("before the call was answered").into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_default_applies_to_classification_calls_only() {
        for name in ["Classify", "ClassifyBatch"] {
            let path = format!(
                "/{}/{name}",
                crate::server::services::health::CLASSIFIER_SERVICE_NAME
            );
            assert!(is_classification_call(&path), "{path}");
        }
        assert!(is_classification_call(
            "/inference.GRPCInferenceService/ModelInfer"
        ));
        for other in [
            "/swin.v1.Classifier/GetModelInfo",
            "/swin.v1.ClassifierX/Classify",
            "/swin.v1.Classifier/Classify/x",
            "/grpc.health.v1.Health/Check",
            "/inference.GRPCInferenceService/ModelMetadata",
            "/inference.GRPCInferenceService/ModelStreamInfer",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(!is_classification_call(other), "{other}");
        }
    }
}
