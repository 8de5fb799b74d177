//! [`RequestIdLayer`]: gives every call its [`RequestId`] (see [`crate::server::call::request_id`])
//! and returns it in the response's `x-request-id` header.
//!
//! The same layer opens each call's trace span ([`crate::telemetry::rpc_span`]: child of the
//! caller's W3C `traceparent`, carrying the request id) and runs the call inside it; health checks
//! get none (probes would flood the traces).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tracing::Instrument as _;

use crate::server::call::request_id::{RequestId, REQUEST_ID_HEADER};

/// Path prefix of `grpc.health.v1.Health` calls (no trace span).
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// Tower layer that gives every call its [`RequestId`].
#[derive(Debug, Clone, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> RequestIds<S> {
        RequestIds { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct RequestIds<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestIds<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = RequestId::for_header(
            request
                .headers()
                .get(REQUEST_ID_HEADER)
                .map(|v| v.as_bytes()),
        );
        let header = http::HeaderValue::from_str(&id.0).ok();
        let path = request.uri().path();
        let span = if path.starts_with(HEALTH_PATH) {
            tracing::Span::none()
        } else {
            crate::telemetry::rpc_span(path, &id.0, request.headers())
        };
        request.extensions_mut().insert(id);
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let mut response = call.await?;
                if let Some(value) = header {
                    response.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
