//! Per-connection idle timeout (`--idle-timeout`, default
//! [`crate::server::DEFAULT_IDLE_TIMEOUT`]): a connection with no open call for that long is
//! closed.
//!
//! Bytes are no measure of idleness: the server's own HTTP/2 keepalive pings (and the client's
//! answers) flow on an idle connection. So every accepted connection is wrapped in a [`TrackedIo`]
//! holding a [`ConnectionState`] — the number of calls open on it and when the last one closed —
//! that tonic hands to every request of the connection as its connect info ([`TrackedInfo`]).
//! [`crate::server::layers::open_calls::OpenCallLayer`] marks each call open ([`OpenCall`]) from
//! its headers until its answer's body is done. The IO wrapper keeps a timer; when it fires with no
//! call open since the limit, the next read reports end of stream, and hyper closes the
//! connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::server::metrics::names;

/// Calls open on one connection, and since when none is.
#[derive(Debug)]
pub struct ConnectionState {
    open_calls: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl ConnectionState {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open_calls: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    /// Calls open now.
    pub fn open_calls(&self) -> usize {
        self.open_calls.load(Ordering::Acquire)
    }

    /// Mark a call open until the returned guard is dropped.
    pub fn open_call(self: &Arc<Self>) -> OpenCall {
        self.open_calls.fetch_add(1, Ordering::AcqRel);
        OpenCall(Arc::clone(self))
    }

    /// When the connection went idle (no call open), if it is.
    fn idle_since(&self) -> Option<Instant> {
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        (self.open_calls() == 0).then_some(since)
    }
}

/// A call open on its connection (see [`ConnectionState::open_call`]).
#[derive(Debug)]
pub struct OpenCall(Arc<ConnectionState>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        // The time is set before the count drops, so a reader that sees 0 sees this time.
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.open_calls.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// The connect info of a [`TrackedIo`]: the wrapped connection's, and its call count.
#[derive(Debug, Clone)]
pub struct TrackedInfo<C> {
    /// The connect info of the wrapped connection (`TcpConnectInfo`, `TlsConnectInfo`).
    pub inner: C,
    /// Calls open on the connection.
    pub state: Arc<ConnectionState>,
}

/// The connection state of the call `extensions` belong to (plaintext or TLS connection), if it
/// came through a [`TrackedIo`].
pub fn connection_of(
    extensions: &tonic::codegen::http::Extensions,
) -> Option<Arc<ConnectionState>> {
    extensions
        .get::<TrackedInfo<TcpConnectInfo>>()
        .map(|info| Arc::clone(&info.state))
        .or_else(|| {
            extensions
                .get::<TrackedInfo<TlsConnectInfo<TcpConnectInfo>>>()
                .map(|info| Arc::clone(&info.state))
        })
}

/// An accepted connection that ends itself (end of stream on read) once it has had no call open
/// for `idle_timeout`.
#[derive(Debug)]
pub struct TrackedIo<IO> {
    io: IO,
    state: Arc<ConnectionState>,
    idle_timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    closed: bool,
}

impl<IO> TrackedIo<IO> {
    /// Wrap `io`; `idle_timeout` `None`: never closed for idleness.
    pub fn new(io: IO, idle_timeout: Option<Duration>) -> Self {
        let timer = idle_timeout.map(|limit| Box::pin(tokio::time::sleep(limit)));
        Self {
            io,
            state: ConnectionState::new(),
            idle_timeout,
            timer,
            closed: false,
        }
    }

    /// Whether the connection has been idle for its limit (re-arming the timer when not).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(limit), Some(timer)) = (self.idle_timeout, self.timer.as_mut()) else {
            return false;
        };
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.state.idle_since() {
                Some(since) if now >= since + limit => return true,
                Some(since) => timer.as_mut().reset(since + limit),
                None => timer.as_mut().reset(now + limit),
            }
        }
        false
    }
}

/// The connections of `incoming`, each in a [`TrackedIo`] with `idle_timeout`.
pub fn tracked<S, IO, E>(
    incoming: S,
    idle_timeout: Option<Duration>,
) -> impl tokio_stream::Stream<Item = Result<TrackedIo<IO>, E>>
where
    S: tokio_stream::Stream<Item = Result<IO, E>>,
{
    use tokio_stream::StreamExt;
    incoming.map(move |accepted| accepted.map(|io| TrackedIo::new(io, idle_timeout)))
}

impl<IO: Connected> Connected for TrackedIo<IO> {
    type ConnectInfo = TrackedInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        TrackedInfo {
            inner: self.io.connect_info(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for TrackedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.poll_idle(cx) {
            tracing::debug!(
                seconds = self.idle_timeout.unwrap_or_default().as_secs_f32(),
                "closing a connection with no call open (--idle-timeout)"
            );
            metrics::counter!(names::CONNECTIONS_CLOSED_IDLE_TOTAL).increment(1);
            self.closed = true;
            // End of stream: hyper ends the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for TrackedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
