//! A call's deadline: the client's `grpc-timeout` header and the server's `--request-timeout`,
//! combined into one [`CallDeadline`].
//!
//! [`crate::server::layers::deadline::DeadlineLayer`] computes it when a call arrives and stores it
//! in the request's extensions; the services and the pipeline read it there ([`deadline_of`]) and
//! drop expired work at each stage ([`check_deadline`]: before decoding, before the engine queue;
//! the scheduler's worker drops it before an engine runs it) or bound a whole piece of work by it
//! ([`within_deadline`]). One message of a stream gets its own ([`stream_message_deadline`]).
//!
//! `grpc-timeout` ([`parse_grpc_timeout`]): 1 to 8 ASCII digits and a unit; a malformed value is
//! answered INTERNAL, as grpc-go does (`malformed grpc-timeout: ...`). `0` with any unit is
//! well-formed: the call has already expired (grpc-go: a context whose deadline is now).
//!
//! **The answer reserve.** The client starts its clock before the request travels, so a server that
//! answers exactly at `arrival + timeout` answers after the client has given up; a tonic client then
//! reports its own timer's CANCELLED ("Timeout expired"), not the server's DEADLINE_EXCEEDED (grpc-go,
//! grpc-java and grpcurl report DEADLINE_EXCEEDED locally either way). So the server keeps back a
//! share of a client's timeout to deliver its answer: 1/20 of it, at most [`MAX_ANSWER_RESERVE`]
//! (as Envoy's `grpc_timeout_header_offset` does). The server's own `--request-timeout` has no
//! reserve: no client timer races it.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Request, Status};

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

/// The deadline of one call, stored in its request's extensions by
/// [`crate::server::layers::deadline::DeadlineLayer`].
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

/// The deadline [`crate::server::layers::deadline::DeadlineLayer`] gave this call, if any.
pub fn deadline_of<T>(request: &Request<T>) -> Option<CallDeadline> {
    request.extensions().get::<CallDeadline>().copied()
}

/// The deadline of one message of a stream that arrived at `arrived`: the stream's own (the client's
/// `grpc-timeout` for the whole call) or the server's `--request-timeout` from the message's
/// arrival, whichever comes first.
pub fn stream_message_deadline(
    stream: Option<CallDeadline>,
    request_timeout: Option<Duration>,
    arrived: Instant,
) -> Option<CallDeadline> {
    earlier(stream, call_deadline(None, request_timeout, arrived))
}

/// DEADLINE_EXCEEDED if `deadline` has passed (`stage` says where the work stopped).
pub fn check_deadline(deadline: Option<CallDeadline>, stage: &str) -> Result<(), Status> {
    match deadline {
        Some(d) if d.expired() => Err(d.status(stage)),
        _ => Ok(()),
    }
}

/// Run `work`, answering DEADLINE_EXCEEDED when `deadline` passes first (the work is dropped).
pub async fn within_deadline<T>(
    deadline: Option<CallDeadline>,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout_at(d.at.into(), work)
            .await
            .unwrap_or_else(|_| Err(d.status("before the call was answered"))),
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
