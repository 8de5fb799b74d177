//! The plaintext health port (`--health-listen`): `grpc.health.v1` only, the same statuses as the
//! gRPC port, for probes that cannot present TLS client certificates or tokens. It goes with the
//! server.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use super::server_error::ServerError;
use crate::server::connections::tcp::tcp_incoming;

/// Bind the health port, if one is asked for.
pub async fn bind_health_port(
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServerError::HealthListen { addr, source })
}

/// Serve `health` on `listener` until the returned task is aborted.
pub fn serve_health_port(
    listener: TcpListener,
    health: HealthServer<HealthService>,
) -> JoinHandle<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "plaintext health port (grpc.health.v1 only)");
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tcp_incoming(listener))
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health port failed");
        }
    })
}
