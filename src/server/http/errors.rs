//! The HTTP status of every refusal, from the gRPC status policy ([`crate::server::status`]): one
//! table, one function ([`http_status`]), and the `{"error": "…"}` body every HTTP error has.
//!
//! | gRPC code | HTTP | when |
//! |---|---|---|
//! | INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION | 400 | bad image, bad JSON, wrong shape or datatype, bad `top_k` |
//! | UNAUTHENTICATED | 401 | missing or wrong bearer token |
//! | PERMISSION_DENIED | 403 | |
//! | NOT_FOUND | 404 | unknown model, version or route |
//! | ALREADY_EXISTS, ABORTED | 409 | |
//! | (the edge) | 405 | a route asked with the wrong method |
//! | (the edge) | 408 | the body did not arrive within `--message-timeout` |
//! | (the edge) | 413 | a body over `--max-message-bytes` (from `Content-Length`, before it is read) |
//! | (the edge) | 415 | a `/v1/classify` body that is neither an image, octet-stream nor multipart |
//! | RESOURCE_EXHAUSTED | 429 | `--max-in-flight` calls, the memory budget |
//! | UNIMPLEMENTED | 501 | |
//! | UNAVAILABLE | 503 | model loading, queue full, estimated wait over `--max-queue-wait`, draining |
//! | DEADLINE_EXCEEDED | 504 | `--request-timeout` or the client's `X-Request-Timeout` passed |
//! | INTERNAL, UNKNOWN, DATA_LOSS, CANCELLED | 500 | engine failure |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

use crate::server::pipeline::{Call, CallSummary, Pipeline};

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// An HTTP error answer: a status and the message of `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
}

impl HttpError {
    /// An error of the edge itself.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Status> for HttpError {
    fn from(status: Status) -> Self {
        Self {
            status: http_status(status.code()),
            message: status.message().to_string(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The gRPC code an edge refusal is recorded as (metrics, access log).
pub fn grpc_code_of(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 | 405 | 415 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        413 | 429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Record an answered HTTP call like a gRPC one ([`Pipeline::recorded`]: metrics, statistics,
/// the access log) and give back its result with the HTTP error as it was.
pub fn recorded_http<T>(
    pipeline: &Pipeline,
    call: Call<'_>,
    result: Result<T, HttpError>,
    summary: impl FnOnce(&T) -> CallSummary,
) -> Result<T, HttpError> {
    match result {
        Ok(v) => pipeline
            .recorded(call, Ok(v), summary)
            .map_err(HttpError::from),
        Err(e) => {
            let status = Status::new(grpc_code_of(e.status), e.message.clone());
            let _ = pipeline.recorded::<T>(call, Err(status), |_| CallSummary::default());
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_status_policy_has_its_http_status() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::NotFound, 404),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }
}
