//! [`HoldingBody`]: a response body that keeps something alive until the answer has been sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::Status;

/// A response body that holds `guard` (a call's place in flight, its open-call mark, ...) until
/// the body is done: the call is not over when its handler returns, but when its last frame has
/// been sent.
pub struct HoldingBody<G> {
    body: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> HoldingBody<G> {
    /// `body`, holding `guard` until it is done or dropped, as a tonic body.
    pub fn wrap(body: Body, guard: G) -> Body {
        Body::new(Self {
            body,
            _guard: guard,
        })
    }
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
