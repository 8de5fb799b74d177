//! [`ServerError`]: what stops [`crate::server::serve`].

use std::net::SocketAddr;

use crate::server::connections::tls::TlsError;
use crate::server::layers::auth::AuthError;
use crate::server::serving_model::ModelLoadError;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The model could not be loaded.
    #[error("model loading failed: {0}")]
    Load(ModelLoadError),
    /// The gRPC transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptor set.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The loader task panicked or was cancelled.
    #[error("model loader task failed: {0}")]
    LoaderTask(String),
    /// The metrics endpoint could not be started.
    #[error("metrics endpoint: {0}")]
    Metrics(String),
    /// The token file (`--auth-token-file`) cannot be used.
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    /// The TLS files cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The HTTP port cannot be bound.
    #[error("cannot listen on --http-listen {addr}: {source}")]
    HttpListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The health port cannot be bound.
    #[error("cannot listen on --health-listen {addr}: {source}")]
    HealthListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
