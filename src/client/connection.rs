//! How the clients (`classify`, `info`, `bench server`) reach a server: the URL, TLS (a CA to
//! verify the server with, a client certificate for mutual TLS), a bearer token read from a file,
//! and a timeout for connecting and for each call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto;

/// Server the clients talk to when given no URL.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:50051";

/// Largest message the clients send or accept (an image larger than the server's limit gets its
/// OUT_OF_RANGE answer rather than a client-side error).
pub const CLIENT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Where and how to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `http://host:port` or `https://host:port` ([`DEFAULT_SERVER_URL`] when `None`).
    pub url: Option<String>,
    /// File whose first line is the bearer token.
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to verify the server with (default: the Mozilla roots).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
    /// Bounds connecting and each call (sent as `grpc-timeout`).
    pub timeout: Option<Duration>,
}

impl ConnectionOptions {
    /// The URL to connect to.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_SERVER_URL)
    }
}

/// Why the client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the token file {}", path.display())]
    TokenFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {} is empty", path.display())]
    TokenFileEmpty { path: PathBuf },
    #[error("the token is not valid in a gRPC header (ASCII only)")]
    TokenNotAscii(#[source] tonic::metadata::errors::InvalidMetadataValue),
    #[error("invalid server URL {url}")]
    InvalidUrl {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("--tls-ca / --tls-cert need an https:// server URL (got {url})")]
    TlsNeedsHttps { url: String },
    #[error("cannot read {}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS client configuration")]
    Tls(#[source] tonic::transport::Error),
    /// The reason is in the message: tonic's transport errors say "transport error" and keep the
    /// reason (refused, certificate unknown) in their sources.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Adds `authorization` to every call when a token is given.
#[derive(Debug, Clone, Default)]
pub struct Bearer(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The `swin.v1.Classifier` client over a connection with its token.
pub type ClassifierClient =
    proto::classifier_client::ClassifierClient<InterceptedService<Channel, Bearer>>;

/// The bearer token in the first line of `path`, as an `authorization` value.
pub fn read_bearer_token(path: &Path) -> Result<Bearer, ConnectError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConnectError::TokenFileUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ConnectError::TokenFileEmpty {
            path: path.to_path_buf(),
        });
    }
    let value = format!("Bearer {token}")
        .parse()
        .map_err(ConnectError::TokenNotAscii)?;
    Ok(Bearer(Some(value)))
}

/// Connect as `options` say: the channel, and the token every call must carry.
pub async fn connect_channel(
    options: &ConnectionOptions,
) -> Result<(Channel, Bearer), ConnectError> {
    let token = match &options.token_file {
        Some(path) => read_bearer_token(path)?,
        None => Bearer(None),
    };
    let url = options.url();
    let mut endpoint =
        Endpoint::from_shared(url.to_string()).map_err(|source| ConnectError::InvalidUrl {
            url: url.to_string(),
            source,
        })?;
    if let Some(timeout) = options.timeout {
        endpoint = endpoint.timeout(timeout).connect_timeout(timeout);
    }
    let https = url.starts_with("https://");
    if (options.tls_ca.is_some() || options.tls_identity.is_some()) && !https {
        return Err(ConnectError::TlsNeedsHttps {
            url: url.to_string(),
        });
    }
    if https {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| ConnectError::Unreadable {
                path: path.clone(),
                source,
            })
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &options.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => tls.with_webpki_roots(),
        };
        if let Some((cert, key)) = &options.tls_identity {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(ConnectError::Tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ConnectError::Connect {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    Ok((channel, token))
}

/// Connect and make the `swin.v1.Classifier` client (messages up to [`CLIENT_MAX_MESSAGE_BYTES`]).
pub async fn connect_classifier(
    options: &ConnectionOptions,
) -> Result<ClassifierClient, ConnectError> {
    let (channel, token) = connect_channel(options).await?;
    Ok(classifier_client(channel, token))
}

/// The `swin.v1.Classifier` client on `channel` with `token`.
pub fn classifier_client(channel: Channel, token: Bearer) -> ClassifierClient {
    proto::classifier_client::ClassifierClient::with_interceptor(channel, token)
        .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_local() {
        assert_eq!(ConnectionOptions::default().url(), DEFAULT_SERVER_URL);
        let options = ConnectionOptions {
            url: Some("https://example:443".into()),
            ..Default::default()
        };
        assert_eq!(options.url(), "https://example:443");
    }

    #[test]
    fn the_token_is_the_first_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret \nignored\n").unwrap();
        let Bearer(Some(value)) = read_bearer_token(&path).unwrap() else {
            panic!("no token");
        };
        assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_bearer_token(&path),
            Err(ConnectError::TokenFileEmpty { .. })
        ));
        let missing = dir.path().join("missing");
        let err = read_bearer_token(&missing).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read the token file"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tls_files_need_an_https_url() {
        let options = ConnectionOptions {
            tls_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        let err = connect_channel(&options).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "--tls-ca / --tls-cert need an https:// server URL (got http://127.0.0.1:50051)"
        );
    }
}
