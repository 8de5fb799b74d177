//! The HTTP port: HTTP/1.1 and HTTP/2 (cleartext, or TLS with the gRPC port's certificates and
//! client CA, reloaded the same way) on hyper-util's auto connection builder. On shutdown the port
//! stops accepting (it closes) and the open calls are answered before the task ends. Every
//! connection closes lingering ([`Lingering`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::{Stream, StreamExt as _};

use crate::server::connections::lingering::Lingering;
use crate::server::connections::tcp::tcp_incoming;
use crate::server::connections::tls::{self, ReloadingTls};

/// Time for an HTTP/1 client to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 PING interval on idle connections, and how long the answer may take.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A stop signal.
pub type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serve `router` on `listener` (through `tls` when given) until `stop`, then finish the open
/// calls. `max_concurrent_streams` bounds the HTTP/2 streams of one connection.
pub async fn serve_http(
    listener: TcpListener,
    tls: Option<ReloadingTls>,
    router: Router,
    max_concurrent_streams: u32,
    stop: Stop,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_concurrent_streams)
        .keep_alive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let incoming = tcp_incoming(listener);
    match tls {
        Some(tls) => accept_loop(tls::incoming(incoming, tls), builder, router, stop).await,
        None => accept_loop(incoming, builder, router, stop).await,
    }
}

async fn accept_loop<S, IO>(
    incoming: S,
    builder: Builder<TokioExecutor>,
    router: Router,
    mut stop: Stop,
) where
    S: Stream<Item = std::io::Result<IO>> + Unpin,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut incoming = incoming;
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = incoming.next() => accepted,
            () = &mut stop => break,
        };
        let io = match accepted {
            None => break,
            Some(Ok(io)) => io,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Lingering: an answer sent before its request's body was read reaches the client
            // instead of a reset (see `connections/lingering.rs`).
            let io = TokioIo::new(Lingering::new(io));
            let connection = builder.serve_connection_with_upgrades(io, service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    // The port closes here; the calls already in progress are answered.
    drop(incoming);
    graceful.shutdown().await;
}
