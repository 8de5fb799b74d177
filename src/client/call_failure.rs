//! A failed call as the load generator counts it: under its gRPC code (`Unavailable`, ...) or
//! its HTTP status (`HTTP 503`, ...), with the server's message.

/// A failed call: what the report counts it under, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// The gRPC code's name, `HTTP <status>`, or `transport` (no answer).
    pub code: String,
    /// The server's message (or the transport's error).
    pub message: String,
}

impl From<tonic::Status> for CallFailure {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: format!("{:?}", status.code()),
            message: status.message().to_string(),
        }
    }
}
