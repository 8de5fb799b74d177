//! Request ids: every call has one, taken from the client's `x-request-id` metadata when it sends a
//! usable one (1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters), else made here. It is returned
//! in the response's `x-request-id` header, named in the call's access-log line, and is what
//! Classify echoes when the body's `request_id` is empty.
//!
//! The same layer opens each call's trace span ([`crate::telemetry::rpc_span`]: child of the
//! caller's W3C `traceparent`, carrying the request id) and runs the call inside it; health checks
//! get none (probes would flood the traces).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::codegen::http;
use tracing::Instrument as _;

/// The metadata key, in requests and responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Path prefix of `grpc.health.v1.Health` calls (no trace span).
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// Longest client-supplied id used as is.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one call, in its request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a client's id can be used as is (and echoed in a header and logs).
fn usable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.iter().all(|b| b.is_ascii_graphic())
}

/// A fresh id: this process's start time and a counter, hex.
fn generate() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    format!(
        "swin-{start:016x}-{:08x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

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
        let id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(v) if usable(v.as_bytes()) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            _ => generate(),
        };
        let header = http::HeaderValue::from_str(&id).ok();
        let path = request.uri().path();
        let span = if path.starts_with(HEALTH_PATH) {
            tracing::Span::none()
        } else {
            crate::telemetry::rpc_span(path, &id, request.headers())
        };
        request.extensions_mut().insert(RequestId(id));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_when_usable_and_made_otherwise() {
        assert!(usable(b"req-42"));
        assert!(usable(&[b'a'; MAX_REQUEST_ID_LEN]));
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            b"\x1b[2J",
            &[b'a'; 129],
            "é".as_bytes(),
        ] {
            assert!(!usable(bad), "{bad:?}");
        }
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with("swin-") && usable(a.as_bytes()), "{a}");
    }
}
