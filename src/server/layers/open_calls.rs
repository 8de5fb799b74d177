//! [`OpenCallLayer`]: marks every call open on its connection, from its request headers until its
//! answer's body is done, so that the connection's idle timeout (`--idle-timeout`, see
//! [`crate::server::connections::idle`]) counts calls, not bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;

use super::holding_body::HoldingBody;
use crate::server::connections::idle::connection_of;

/// Tower layer that marks each call open on its connection (a call that did not come through a
/// tracked connection is left alone).
#[derive(Debug, Clone, Default)]
pub struct OpenCallLayer;

impl<S> tower::Layer<S> for OpenCallLayer {
    type Service = OpenCalls<S>;

    fn layer(&self, inner: S) -> OpenCalls<S> {
        OpenCalls { inner }
    }
}

/// The service [`OpenCallLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct OpenCalls<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for OpenCalls<S>
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
        let open = connection_of(request.extensions()).map(|state| state.open_call());
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(match open {
                // The call stays open until the answer's body is done (or dropped).
                Some(open) => response.map(|body| HoldingBody::wrap(body, open)),
                None => response,
            })
        })
    }
}
