//! The gRPC status policy: which error becomes which code.
//!
//! | error | code |
//! |---|---|
//! | empty image, undecodable/truncated/unknown format, bad `top_k` | INVALID_ARGUMENT |
//! | image over the pixel or decode-memory limit | INVALID_ARGUMENT (message says which limit) |
//! | queue full, model still loading, shutting down | UNAVAILABLE (retryable) |
//! | too many calls in flight (`--max-in-flight`), image over what is left of `--memory-budget` | RESOURCE_EXHAUSTED (at once) |
//! | the call's deadline (client `grpc-timeout`, server `--request-timeout`) passed | DEADLINE_EXCEEDED |
//! | malformed `grpc-timeout` header | INTERNAL (as grpc-go) |
//! | engine failure, a panic while preprocessing | INTERNAL |

use tonic::{Code, Status};

use crate::engine::EngineError;
use crate::preprocess::PreprocessError;
use crate::scheduler::SchedulerError;

/// Status for an image that could not be decoded or preprocessed.
pub fn preprocess_status(err: &PreprocessError) -> Status {
    Status::invalid_argument(err.to_string())
}

/// Status for an engine failure.
pub fn engine_status(err: &EngineError) -> Status {
    Status::internal(err.to_string())
}

/// Status for a scheduling failure.
pub fn scheduler_status(err: &SchedulerError) -> Status {
    match err {
        SchedulerError::QueueFull { .. }
        | SchedulerError::QueueWaitTooLong { .. }
        | SchedulerError::ShuttingDown => Status::unavailable(err.to_string()),
        SchedulerError::DeadlineExceeded => Status::deadline_exceeded(err.to_string()),
        SchedulerError::BadInput { .. } => Status::internal(err.to_string()),
        SchedulerError::Engine(e) => engine_status(e),
        // Decoding on the engine's threads (the CPU backend): the image's own error, as if it
        // had been decoded before the queue; anything else (a panic) is the server's.
        SchedulerError::Prepare(e) => match e.downcast_ref::<PreprocessError>() {
            Some(e) => preprocess_status(e),
            None => Status::internal(e.to_string()),
        },
    }
}

/// `google.rpc.Code` name of `code`, as ClassifyBatch reports it per entry.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_image_is_deadline_exceeded_not_cancelled() {
        let status = scheduler_status(&SchedulerError::DeadlineExceeded);
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.message().contains("deadline"), "{status:?}");
        // ClassifyBatch names the code of each entry.
        assert_eq!(code_name(status.code()), "DEADLINE_EXCEEDED");
    }
}
