//! TLS and mutual TLS on the gRPC port (`--tls-cert`, `--tls-key`, `--tls-client-ca`), with rustls
//! (through `tokio-rustls`, the stack tonic's own TLS uses).
//!
//! * The certificate chain and key are PEM files; with `--tls-client-ca`, every client must present a
//!   certificate that chains to one of that file's CAs (mutual TLS), else the handshake fails.
//! * **Rotation**: the files are checked every [`RELOAD_INTERVAL`]; when one changes (cert-manager
//!   rewrites the Secret's files) a new configuration is built and new connections use it; open
//!   connections keep theirs. A change that does not load (a half-written file, a key that does not
//!   match) is logged and the previous configuration stays in use until a good one appears.
//! * **Plaintext is refused**: a connection that does not start a TLS handshake is closed.
//!   Handshakes run beside the accept loop, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that
//!   connects and stays silent holds nothing but its own socket.
//! * ALPN offers `h2` only (gRPC).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::server::TcpIncoming;

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// The TLS files (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, …).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM CERTIFICATE in it"));
    }
    Ok(certs)
}

/// Build the server configuration from `files`.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = read_certs("certificate file", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error("key file", &files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("client CA file", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("client CA file", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_error("client CA file", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// What identifies a version of the files: modification time and length of each.
fn fingerprint(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    })
    .collect()
}

/// The server configuration, rebuilt when the files change.
#[derive(Clone)]
pub struct ReloadingTls {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadingTls {
    /// Load `files` (an error here stops the server: it must not start without TLS).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(Arc::clone(&config))
    }

    /// Check the files every `interval` and swap in a new configuration when they change, for as
    /// long as the returned task runs.
    pub fn watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = fingerprint(&this.files);
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = fingerprint(&this.files);
                if now == seen {
                    continue;
                }
                match server_config(&this.files) {
                    Ok(config) => {
                        *this.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                        seen = now;
                        tracing::info!(cert = %this.files.cert.display(), "TLS files changed: new connections use the reloaded certificate");
                    }
                    // Keep the old configuration; retry at the next change (or the next tick, if the
                    // writer is still busy: `seen` is not updated).
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous certificate")
                    }
                }
            }
        })
    }
}

/// The TLS connections of `tcp` (the TCP connections, with their socket options set by
/// [`TcpIncoming`]): each accepted TCP connection is handshaken on its own task
/// (bounded by [`HANDSHAKE_TIMEOUT`]); failures (plaintext clients, unknown CAs, missing client
/// certificates) are logged at debug level and dropped. The accept loop ends when the returned
/// stream is dropped.
pub fn incoming(
    mut tcp: TcpIncoming,
    tls: ReloadingTls,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = tcp.next() => accepted,
                _ = tx.closed() => return,
            };
            let tcp = match accepted {
                None => return,
                Some(Ok(tcp)) => tcp,
                Some(Err(e)) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let peer = tcp
                .peer_addr()
                .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
