//! Lingering close for the HTTP port's connections, as nginx and Apache do it.
//!
//! An HTTP/1.1 call refused at its headers (queue full, `--max-in-flight`, a token missing) is
//! answered before its body is read, and hyper then closes the connection with the body still
//! arriving. Closing a TCP socket with unread bytes makes the kernel send a reset at once, and a
//! reset that reaches the client before it has read the answer discards it: the client sees
//! "connection reset by peer" instead of its 503 (seen: 2.4% of 13,600 refused `POST /v1/classify`
//! of a 0.5 MB image under a refusal storm; `curl` prints `(55) Send failure`). So when hyper is
//! done with a connection, [`Lingering`] hands the socket to a task that shuts our side down (the
//! client reads the answer, then end of stream) and reads and discards what the client still
//! sends, until it closes its side, [`LINGER_TIME`] has passed or [`LINGER_MAX_BYTES`] were
//! discarded; only then is the socket closed. Discarded bytes are only copied out of the kernel,
//! never parsed or charged to the memory budget. At most [`MAX_LINGERING`] connections linger at
//! once.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// Longest a closed connection lingers for the client to read its answer and stop sending.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Most bytes read and discarded from a lingering connection before it is closed anyway.
pub const LINGER_MAX_BYTES: usize = 64 << 20;

/// Most connections lingering at once (each holds a [`LINGER_READ_BYTES`] buffer): past it a closed
/// connection closes at once, as without lingering. Bounds what clients that never close can hold
/// (1,024 × 16 KiB = 16 MiB).
pub const MAX_LINGERING: usize = 1024;

/// The read buffer of one lingering connection (a larger one measured no faster: the cost is the
/// kernel's copy and the wake-ups, not the number of reads).
const LINGER_READ_BYTES: usize = 16 << 10;

/// Places for lingering connections, process-wide.
static LINGERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LINGERING);

/// A connection's byte stream that lingers when dropped (see the module docs).
pub struct Lingering<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Always `Some` until the wrapper is dropped.
    io: Option<IO>,
}

impl<IO> Lingering<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// `io`, to linger when dropped.
    pub fn new(io: IO) -> Self {
        Self { io: Some(io) }
    }

    fn inner(&mut self) -> Pin<&mut IO> {
        Pin::new(self.io.as_mut().expect("taken only when dropped"))
    }
}

impl<IO> AsyncRead for Lingering<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_read(cx, buf)
    }
}

impl<IO> AsyncWrite for Lingering<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().inner().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().inner().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }
}

impl<IO> Drop for Lingering<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        // Outside a runtime (the server is gone), or with every lingering place taken, the socket
        // simply closes.
        let (Ok(runtime), Ok(place)) = (
            tokio::runtime::Handle::try_current(),
            LINGERING.try_acquire(),
        ) else {
            return;
        };
        runtime.spawn(async move {
            linger(io).await;
            drop(place);
        });
    }
}

/// Shut our side down, then discard what the client sends until it closes, [`LINGER_TIME`]
/// passes or [`LINGER_MAX_BYTES`] were read. Returns the bytes discarded.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) -> usize {
    let until = tokio::time::Instant::now() + LINGER_TIME;
    if tokio::time::timeout_at(until, io.shutdown()).await.is_err() {
        return 0;
    }
    let mut buf = vec![0u8; LINGER_READ_BYTES];
    let mut discarded = 0usize;
    while discarded < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(until, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_connection_reads_what_the_client_still_sends_then_closes() {
        let (server, mut client) = tokio::io::duplex(1 << 10);
        let lingering = Lingering::new(server);
        drop(lingering);
        // The server side shut down: the client reads end of stream...
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
        // ...and can still send far more than the pipe holds without being cut off: the bytes are
        // read and discarded.
        let send = async {
            for _ in 0..64 {
                client.write_all(&[7u8; 1 << 10]).await.unwrap();
            }
            client.shutdown().await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(10), send)
            .await
            .expect("the lingering side reads what the client sends");
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_stops_after_the_time_limit() {
        let (server, mut client) = tokio::io::duplex(1 << 10);
        client.write_all(b"partial body").await.unwrap();
        // The client never closes: linger gives up at LINGER_TIME.
        let task = tokio::spawn(linger(server));
        tokio::time::sleep(LINGER_TIME + Duration::from_millis(1)).await;
        assert_eq!(task.await.unwrap(), b"partial body".len());
        drop(client);
    }
}
