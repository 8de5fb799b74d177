//! Reading a request body: refused with 413 from its `Content-Length` before a byte is read when
//! it is over `--max-message-bytes`, read to at most that many bytes (413 past it, for a body
//! without a length), and within `--message-timeout` of the call's start (408 past it: a slow
//! sender holds nothing for long).

use std::time::Duration;

use axum::body::{Body, Bytes};

use axum::http::{header, HeaderMap, StatusCode};

use super::errors::HttpError;

/// The limits of one body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Most bytes (`--max-message-bytes`).
    pub max_bytes: usize,
    /// Time for the whole body (`--message-timeout`).
    pub timeout: Option<Duration>,
}

fn too_large(max: usize, what: impl std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body {what} is over the {max} bytes allowed (--max-message-bytes)"),
    )
}

/// Refuse a body whose declared length is over the limit (before it is read).
pub fn check_declared_length(headers: &HeaderMap, limits: BodyLimits) -> Result<(), HttpError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limits.max_bytes as u64 => {
            Err(too_large(limits.max_bytes, format_args!("of {n} bytes")))
        }
        _ => Ok(()),
    }
}

/// The whole body, within `limits`.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
) -> Result<Bytes, HttpError> {
    check_declared_length(headers, limits)?;
    use http_body_util::BodyExt as _;
    let read = http_body_util::Limited::new(body, limits.max_bytes).collect();
    let result = match limits.timeout {
        Some(t) => tokio::time::timeout(t, read).await.map_err(|_| {
            HttpError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:.1} s (--message-timeout)",
                    t.as_secs_f64()
                ),
            )
        })?,
        None => read.await,
    };
    match result {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(limits.max_bytes, ""))
        }
        Err(e) => Err(HttpError::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
    }
}
