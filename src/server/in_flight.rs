//! A cap on calls in flight (`--max-in-flight`): every call but `grpc.health.v1` takes a place when
//! its request headers arrive — before its message is read — and gives it back when its answer has
//! been sent (the whole stream, for streaming RPCs). Over the cap a call is answered
//! RESOURCE_EXHAUSTED at once: never a wait, and nothing of its message is buffered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

/// Default most calls in flight at once (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Calls that never count (probes must get through an overloaded server).
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Tower layer enforcing the cap.
#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    places: Arc<Semaphore>,
    limit: usize,
}

impl InFlightLimitLayer {
    /// At most `limit` calls at once (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            places: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.places.available_permits()
    }
}

impl<S> tower::Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> InFlightLimit<S> {
        InFlightLimit {
            inner,
            places: Arc::clone(&self.places),
            limit: self.limit,
        }
    }
}

/// The service [`InFlightLimitLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    places: Arc<Semaphore>,
    limit: usize,
}

impl<S, B> tower::Service<http::Request<B>> for InFlightLimit<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(EXEMPT_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = Arc::clone(&self.places).try_acquire_owned() else {
            metrics::counter!("swin_calls_refused_total", "reason" => "in_flight").increment(1);
            let status = Status::resource_exhausted(format!(
                "too many calls in flight: the server takes {} at once (--max-in-flight); retry later",
                self.limit
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        metrics::gauge!("swin_calls_in_flight").increment(1.0);
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // The place goes back when the answer's body is done (or dropped).
            Ok(response.map(|body| {
                Body::new(HoldingBody {
                    body,
                    _guard: Place(permit),
                })
            }))
        })
    }
}

/// A place in flight: the permit goes back to the semaphore, and the gauge down, when it is dropped.
struct Place(#[allow(dead_code)] OwnedSemaphorePermit);

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("swin_calls_in_flight").decrement(1.0);
    }
}

/// A response body that holds `guard` (a call's place, its open-call count, ...) until the body
/// is done: the call is not over when its handler returns, but when its last frame has been sent.
pub(crate) struct HoldingBody<G> {
    pub(crate) body: Body,
    pub(crate) _guard: G,
}

impl<G: Send + Unpin + 'static> http_body::Body for HoldingBody<G> {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
