//! The tasks a call spawns for its images: in the call's trace span, and aborted with the call.

use std::future::Future;

use tracing::Instrument as _;

/// `tokio::spawn` in the caller's trace span (the call's, see [`crate::telemetry`]): the
/// task's spans and the images it queues belong to the call's trace.
pub fn spawn_traced<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_span())
}

/// Aborts the tasks it holds when dropped (a caller that went away, a passed deadline).
pub struct AbortOnDrop<T>(pub Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
