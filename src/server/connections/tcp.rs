//! The server's TCP listeners and the socket options of every accepted connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// TCP keepalive on accepted connections.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Bind `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The connections of `listener`, with TCP_NODELAY and [`TCP_KEEPALIVE`] set on each.
pub fn tcp_incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}
