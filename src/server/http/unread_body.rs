//! `Connection: close` on an HTTP/1.1 answer sent before its request's body was read.
//!
//! The refusals at the headers (`--max-in-flight` 429, a missing token 401, 413 from
//! `Content-Length`, the queue's 503) answer without reading the body, and hyper then closes the
//! connection rather than read what it did not want. Without saying so in the answer, a client
//! that finished sending first (a 0.5 MB image fits in loopback's socket buffers) took the
//! connection as kept alive, sent its next call on it and got "connection closed before message
//! completed" (seen: 3% of refusals under a storm from `bench server --rpc http-classify`;
//! `curl` in a loop reuses the connection the same way). So the body is watched, and an answer to
//! a request whose body did not reach its end says `Connection: close`. With
//! [`crate::server::connections::lingering`] the client then reads its answer, not a reset.
//! HTTP/2 has no such header (each stream is reset on its own; the connection stays).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// The middleware: watch the body of an HTTP/1.x request; close after the answer if it was not
/// read to its end.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    if !matches!(request.version(), Version::HTTP_10 | Version::HTTP_11) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let ended = Arc::new(AtomicBool::new(body.is_end_stream()));
    let watched = Body::new(WatchedBody {
        inner: body,
        ended: Arc::clone(&ended),
    });
    let mut response = next.run(Request::from_parts(parts, watched)).await;
    if !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct WatchedBody {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl HttpBody for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    fn router() -> Router {
        Router::new()
            .route("/ignore", post(|| async { "refused unread" }))
            .route(
                "/read",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .layer(axum::middleware::from_fn(close_if_body_unread))
    }

    async fn call(path: &str, body: &'static [u8], version: Version) -> Response {
        let request = Request::post(path)
            .version(version)
            .body(Body::from(body))
            .unwrap();
        router().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn an_answer_before_the_body_was_read_closes_the_connection() {
        let r = call("/ignore", b"an image", Version::HTTP_11).await;
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn a_read_body_or_an_empty_one_keeps_it_alive() {
        let r = call("/read", b"an image", Version::HTTP_11).await;
        assert!(r.headers().get(header::CONNECTION).is_none());
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "8");
        let r = call("/ignore", b"", Version::HTTP_11).await;
        assert!(r.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn http2_is_left_alone() {
        let r = call("/ignore", b"an image", Version::HTTP_2).await;
        assert!(r.headers().get(header::CONNECTION).is_none());
    }
}
