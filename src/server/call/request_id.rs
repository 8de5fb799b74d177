//! Request ids: every call has one, taken from the client's `x-request-id` metadata when it sends a
//! usable one (1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters), else made here. It is returned
//! in the response's `x-request-id` header, named in the call's access-log line, and is what
//! Classify echoes when the body's `request_id` is empty.
//!
//! [`crate::server::layers::request_id::RequestIdLayer`] gives each call its [`RequestId`] (in the
//! request's extensions); the services read it with [`request_id_of`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Request;

/// The metadata key, in requests and responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-supplied id used as is.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one call, in its request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of a call whose `x-request-id` header is `header`: the client's when usable, else a
    /// fresh one.
    pub fn for_header(header: Option<&[u8]>) -> Self {
        Self(match header {
            Some(value) if usable(value) => String::from_utf8_lossy(value).into_owned(),
            _ => generate(),
        })
    }
}

/// The id [`crate::server::layers::request_id::RequestIdLayer`] gave this call ("" outside a
/// server).
pub fn request_id_of<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

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
        assert_eq!(RequestId::for_header(Some(b"req-42")).0, "req-42");
        assert!(RequestId::for_header(Some(b"has space"))
            .0
            .starts_with("swin-"));
        assert!(RequestId::for_header(None).0.starts_with("swin-"));
    }
}
