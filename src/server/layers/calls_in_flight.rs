//! A cap on calls in flight (`--max-in-flight`, default [`crate::server::DEFAULT_MAX_IN_FLIGHT`]):
//! every call but `grpc.health.v1` takes a place when its request headers arrive — before its
//! message is read — and gives it back when its answer has been sent (the whole stream, for
//! streaming RPCs). Over the cap a call is answered RESOURCE_EXHAUSTED at once: never a wait, and
//! nothing of its message is buffered. (What is counted here is calls; the images queued or
//! running in the engine pool are the scheduler's, `swin_images_in_flight`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

use super::holding_body::HoldingBody;
use crate::server::metrics::names;

/// Calls that never count (probes must get through an overloaded server).
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Tower layer enforcing the cap on calls in flight.
#[derive(Debug, Clone)]
pub struct CallsInFlightLimitLayer {
    places: Arc<Semaphore>,
    limit: usize,
}

impl CallsInFlightLimitLayer {
    /// At most `limit` calls at once (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            places: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// The places, to share with another port (the HTTP one): a call there takes one too.
    pub fn places(&self) -> Arc<Semaphore> {
        Arc::clone(&self.places)
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Calls in flight now.
    pub fn calls_in_flight(&self) -> usize {
        self.limit - self.places.available_permits()
    }
}

impl<S> tower::Layer<S> for CallsInFlightLimitLayer {
    type Service = CallsInFlightLimit<S>;

    fn layer(&self, inner: S) -> CallsInFlightLimit<S> {
        CallsInFlightLimit {
            inner,
            places: Arc::clone(&self.places),
            limit: self.limit,
        }
    }
}

/// The service [`CallsInFlightLimitLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct CallsInFlightLimit<S> {
    inner: S,
    places: Arc<Semaphore>,
    limit: usize,
}

impl<S, B> tower::Service<http::Request<B>> for CallsInFlightLimit<S>
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
            metrics::counter!(names::CALLS_REFUSED_TOTAL, "reason" => names::refused::IN_FLIGHT)
                .increment(1);
            let status = Status::resource_exhausted(format!(
                "too many calls in flight: the server takes {} at once (--max-in-flight); retry later",
                self.limit
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        metrics::gauge!(names::CALLS_IN_FLIGHT).increment(1.0);
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // The place goes back when the answer's body is done (or dropped).
            Ok(response.map(|body| HoldingBody::wrap(body, Place(permit))))
        })
    }
}

/// A place in flight: the permit goes back to the semaphore, and the gauge down, when it is dropped.
struct Place(#[allow(dead_code)] OwnedSemaphorePermit);

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!(names::CALLS_IN_FLIGHT).decrement(1.0);
    }
}
