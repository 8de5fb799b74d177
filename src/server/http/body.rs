//! Reading a request body: refused with 413 from its `Content-Length` before a byte is read when
//! it is over `--max-message-bytes`, read to at most that many bytes (413 past it, for a body
//! without a length), and within `--message-timeout` of the call's start (408 past it: a slow
//! sender holds nothing for long). An inference body is charged to the memory budget while it
//! arrives, as a gRPC message is (its `Content-Length`, or `--max-message-bytes` when it has none):
//! 429 before a byte is read when that does not fit.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};

use axum::http::{header, HeaderMap, StatusCode};

use super::errors::HttpError;
use crate::server::memory_budget::MemoryBudget;
use crate::server::metrics::names;
use crate::server::pipeline::Pipeline;

/// The limits of one body.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Most bytes (`--max-message-bytes`).
    pub max_bytes: usize,
    /// Time for the whole body (`--message-timeout`).
    pub timeout: Option<Duration>,
    /// The budget the body is charged to while it arrives (`None`: not charged).
    pub budget: Option<Arc<MemoryBudget>>,
}

impl BodyLimits {
    /// An inference body's limits: `--max-message-bytes`, `--message-timeout`, and charged to
    /// the memory budget while it arrives.
    pub fn for_inference(pipeline: &Pipeline) -> Self {
        Self {
            max_bytes: pipeline.config().max_message_bytes,
            timeout: pipeline.config().message_timeout,
            budget: Some(Arc::clone(pipeline.memory_budget())),
        }
    }
}

fn too_large(max: usize, what: impl std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body {what} is over the {max} bytes allowed (--max-message-bytes)"),
    )
}

/// The body's declared length (`Content-Length`), if it has a usable one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Refuse a body whose declared length is over the limit (before it is read).
pub fn check_declared_length(headers: &HeaderMap, limits: &BodyLimits) -> Result<(), HttpError> {
    match declared_length(headers) {
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
    check_declared_length(headers, &limits)?;
    // Held until the body has been read (or refused): the pipeline charges the image itself.
    let _charge = match &limits.budget {
        Some(budget) => {
            let bytes = declared_length(headers).unwrap_or(limits.max_bytes as u64);
            Some(budget.try_acquire(bytes).map_err(|e| {
                metrics::counter!(
                    names::CALLS_REFUSED_TOTAL,
                    "reason" => names::refused::MEMORY_BUDGET
                )
                .increment(1);
                HttpError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("{e} (request body being received); retry later (--memory-budget)"),
                )
            })?)
        }
        None => None,
    };
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
