//! Call deadlines: the client's `grpc-timeout` header and the server's `--request-timeout`.
//!
//! [`DeadlineLayer`] sits in front of every service. For each call it
//! * parses `grpc-timeout` ([`parse_grpc_timeout`]); a malformed value is answered INTERNAL at once,
//!   as grpc-go does (`malformed grpc-timeout: ...`). `0` with any unit is well-formed: the call has
//!   already expired and is answered DEADLINE_EXCEEDED without being decoded (grpc-go: a context whose
//!   deadline is now);
//! * for Classify, ClassifyBatch and OIP ModelInfer calls, applies the server default `--request-timeout` when the
//!   client sent no timeout, or the smaller of the two when it did (GetModelInfo, health and
//!   reflection keep only the client's: a probe must not be refused by a deadline meant for
//!   classification work);
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
//! **The answer reserve.** The client starts its clock before the request travels, so a server that
//! answers exactly at `arrival + timeout` answers after the client has given up; a tonic client then
//! reports its own timer's CANCELLED ("Timeout expired"), not the server's DEADLINE_EXCEEDED (grpc-go,
//! grpc-java and grpcurl report DEADLINE_EXCEEDED locally either way). So the server keeps back a
//! share of a client's timeout to deliver its answer: 1/20 of it, at most [`MAX_ANSWER_RESERVE`]
//! (as Envoy's `grpc_timeout_header_offset` does). The server's own `--request-timeout` has no
//! reserve: no client timer races it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

/// The request header carrying the client's timeout (gRPC over HTTP/2: `TimeoutValue TimeoutUnit`).
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// Most digits a `grpc-timeout` value may have (the gRPC HTTP/2 spec's limit).
pub const GRPC_TIMEOUT_MAX_DIGITS: usize = 8;

/// The most of a client's timeout the server keeps back to deliver its answer before the client's
/// own clock runs out (the reserve is 1/20 of the timeout, up to this).
pub const MAX_ANSWER_RESERVE: Duration = Duration::from_millis(50);

/// The reserve is this fraction (1/N) of the client's timeout, up to [`MAX_ANSWER_RESERVE`].
const ANSWER_RESERVE_DIVISOR: u32 = 20;

/// A `grpc-timeout` value that does not follow the spec (answered INTERNAL, as grpc-go does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed grpc-timeout {value:?}: {reason}")]
pub struct MalformedGrpcTimeout {
    /// The header value (lossy UTF-8).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parse a `grpc-timeout` value: 1 to 8 ASCII digits, then a unit `H` (hours), `M` (minutes),
/// `S` (seconds), `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).
///
/// No sign, space or other character is accepted; `0` is (an already expired call).
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, MalformedGrpcTimeout> {
    let malformed = |reason| MalformedGrpcTimeout {
        value: String::from_utf8_lossy(value).into_owned(),
        reason,
    };
    let Some((&unit, digits)) = value.split_last() else {
        return Err(malformed("empty"));
    };
    if digits.is_empty() {
        return Err(malformed("no digits before the unit"));
    }
    if digits.len() > GRPC_TIMEOUT_MAX_DIGITS {
        return Err(malformed("more than 8 digits"));
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed("the value is not ASCII digits"));
    }
    // At most 8 digits: no overflow, even in hours (99,999,999 h fits a Duration).
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(malformed("unknown unit (H, M, S, m, u or n)")),
    })
}

/// What set a call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineSource {
    /// The client's `grpc-timeout`.
    Client,
    /// The server's `--request-timeout`.
    Server,
    /// The OIP request parameter `timeout` (microseconds, as Triton's).
    RequestParameter,
}

/// The deadline of one call, stored in its request's extensions by [`DeadlineLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDeadline {
    /// Past this instant the call is answered DEADLINE_EXCEEDED and its work is dropped.
    pub at: Instant,
    /// Where it came from (named in the status message).
    pub source: DeadlineSource,
}

impl CallDeadline {
    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The DEADLINE_EXCEEDED status, saying at which stage (`"before decoding"`, ...).
    pub fn status(&self, stage: &str) -> Status {
        let source = match self.source {
            DeadlineSource::Client => "the client's grpc-timeout",
            DeadlineSource::Server => "the server's --request-timeout",
            DeadlineSource::RequestParameter => "the request's `timeout` parameter",
        };
        Status::deadline_exceeded(format!("deadline exceeded {stage} (set by {source})"))
    }
}

/// The share of a client's `timeout` the server keeps back to deliver its answer.
pub fn answer_reserve(timeout: Duration) -> Duration {
    (timeout / ANSWER_RESERVE_DIVISOR).min(MAX_ANSWER_RESERVE)
}

/// The deadline of a call that arrived at `arrived` with the client's timeout `client` (if any),
/// under the server default `server` (if any): the earlier of the two. A deadline too far away to
/// represent is no deadline.
pub fn call_deadline(
    client: Option<Duration>,
    server: Option<Duration>,
    arrived: Instant,
) -> Option<CallDeadline> {
    let client = client.and_then(|t| {
        arrived
            .checked_add(t - answer_reserve(t))
            .map(|at| CallDeadline {
                at,
                source: DeadlineSource::Client,
            })
    });
    let server = server.and_then(|t| {
        arrived.checked_add(t).map(|at| CallDeadline {
            at,
            source: DeadlineSource::Server,
        })
    });
    earlier(client, server)
}

/// The earlier of two deadlines (on a tie, `a`); `None` is no deadline.
pub fn earlier(a: Option<CallDeadline>, b: Option<CallDeadline>) -> Option<CallDeadline> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
        (a, b) => a.or(b),
    }
}

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

/// Tower layer that gives every call its [`CallDeadline`] and bounds it (see the module docs).
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
                    tracing::info!(error = %super::untrusted(&malformed.to_string()), path = %super::untrusted(request.uri().path()), "call refused");
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

    fn parse(s: &str) -> Result<Duration, MalformedGrpcTimeout> {
        parse_grpc_timeout(s.as_bytes())
    }

    #[test]
    fn every_unit() {
        assert_eq!(parse("2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1500u"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse("42n"), Ok(Duration::from_nanos(42)));
        // What tonic's `Request::set_timeout` sends.
        assert_eq!(parse("30000000u"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn eight_digits_at_most() {
        assert_eq!(parse("99999999n"), Ok(Duration::from_nanos(99_999_999)));
        assert_eq!(parse("00000001S"), Ok(Duration::from_secs(1)));
        // The largest value: no overflow.
        assert_eq!(
            parse("99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        for nine in ["100000000n", "000000001S", "999999999H"] {
            let err = parse(nine).unwrap_err();
            assert_eq!(err.reason, "more than 8 digits", "{nine}");
        }
    }

    #[test]
    fn zero_is_well_formed_and_already_expired() {
        for zero in ["0H", "0S", "0m", "0n", "00000000u"] {
            assert_eq!(parse(zero), Ok(Duration::ZERO), "{zero}");
        }
        let now = Instant::now();
        let d = call_deadline(Some(Duration::ZERO), None, now).unwrap();
        assert_eq!(d.at, now);
        assert!(d.expired());
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "", "S", "m", "1", "12", "1s", "1h", "1x", "1 S", " 1S", "1S ", "+1S", "-1S", "1.5S",
            "0x1S", "1_0S", "abcS", "1SS", "١S", // a non-ASCII digit
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.to_string().starts_with("malformed grpc-timeout"),
                "{err}"
            );
        }
        // Not UTF-8 at all.
        assert!(parse_grpc_timeout(b"\xff1S").is_err());
        assert!(parse_grpc_timeout(b"1\xff").is_err());
    }

    #[test]
    fn the_earlier_deadline_wins_and_the_client_keeps_a_reserve() {
        let now = Instant::now();
        assert_eq!(call_deadline(None, None, now), None);
        // Client only: the reserve is 1/20 of the timeout, at most 50 ms.
        let c = call_deadline(Some(Duration::from_millis(200)), None, now).unwrap();
        assert_eq!(c.at, now + Duration::from_millis(190));
        assert_eq!(c.source, DeadlineSource::Client);
        let c = call_deadline(Some(Duration::from_secs(10)), None, now).unwrap();
        assert_eq!(c.at, now + Duration::from_millis(9950));
        // Server only: no reserve.
        let s = call_deadline(None, Some(Duration::from_secs(2)), now).unwrap();
        assert_eq!(s.at, now + Duration::from_secs(2));
        assert_eq!(s.source, DeadlineSource::Server);
        // Both: the smaller.
        let both = call_deadline(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(2)),
            now,
        );
        assert_eq!(both, Some(s));
        let both = call_deadline(
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
            now,
        );
        assert_eq!(both.unwrap().source, DeadlineSource::Client);
        // Too far to represent: no deadline from that side.
        let far = Duration::from_secs(u64::MAX);
        assert_eq!(call_deadline(Some(far), None, now), None);
        assert_eq!(
            call_deadline(Some(far), Some(Duration::from_secs(1)), now).map(|d| d.source),
            Some(DeadlineSource::Server)
        );
        assert_eq!(answer_reserve(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            answer_reserve(Duration::from_secs(3600)),
            MAX_ANSWER_RESERVE
        );
    }

    #[test]
    fn the_server_default_applies_to_classification_calls_only() {
        for name in ["Classify", "ClassifyBatch"] {
            let path = format!("/{}/{name}", crate::server::CLASSIFIER_SERVICE_NAME);
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

    #[test]
    fn expired_status_is_deadline_exceeded_and_names_its_source() {
        let d = CallDeadline {
            at: Instant::now(),
            source: DeadlineSource::Server,
        };
        let s = d.status("before decoding");
        assert_eq!(s.code(), tonic::Code::DeadlineExceeded);
        assert!(s.message().contains("before decoding"), "{s:?}");
        assert!(s.message().contains("--request-timeout"), "{s:?}");
    }
}
