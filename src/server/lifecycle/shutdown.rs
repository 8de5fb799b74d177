//! The end of the server: the signal that asks for it ([`shutdown_signal`]) and the bound on the
//! wait for open calls once graceful shutdown has begun (`--shutdown-timeout`): a client that
//! holds a stream open cannot keep the process alive.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

/// The gRPC server's future, as [`answered_within`] waits for it.
pub type ServerFuture = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

/// Run `server` to its end. Graceful shutdown waits for every open call; past `timeout` after it
/// began (`begun`), the remaining ones (a stalled upload, a reflection stream left open) are
/// closed. Returns whether every call was answered.
pub async fn answered_within(
    server: ServerFuture,
    begun: oneshot::Receiver<()>,
    timeout: Duration,
) -> Result<bool, tonic::transport::Error> {
    let deadline = async move {
        if begun.await.is_ok() {
            tokio::time::sleep(timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => {
            served?;
            Ok(true)
        }
        _ = deadline => {
            tracing::warn!(
                seconds = timeout.as_secs_f32(),
                "shutdown timeout: closing the calls still open"
            );
            Ok(false)
        }
    }
}
