//! The flags that say how a client subcommand (`classify`, `info`, `bench server`) reaches the
//! server; they become [`ConnectionOptions`].

use std::path::PathBuf;

use clap::Args;

use super::seconds::{seconds, Seconds, Zero};
use crate::client::connection::ConnectionOptions;

/// How the clients reach the server.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// Server URL [default: http://127.0.0.1:50051]. `bench` without a subcommand measures the
    /// local CPU engine unless this is given.
    #[arg(long, env = "SWIN_SERVE_URL")]
    pub server: Option<String>,
    /// File whose first line is the bearer token sent as `authorization: Bearer <token>`.
    #[arg(long, env = "SWIN_SERVE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to verify the server with (https:// URLs; default: the Mozilla roots).
    #[arg(long, env = "SWIN_SERVE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (mutual TLS). Needs --tls-key.
    #[arg(
        long,
        env = "SWIN_SERVE_CLIENT_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "SWIN_SERVE_CLIENT_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Seconds each call may take (sent as grpc-timeout; also bounds connecting). Must be more
    /// than 0 [default: no limit].
    #[arg(long, value_name = "SECONDS", value_parser = seconds(Zero::Refused))]
    pub timeout: Option<Seconds>,
}

impl From<&ConnectionArgs> for ConnectionOptions {
    fn from(args: &ConnectionArgs) -> Self {
        ConnectionOptions {
            url: args.server.clone(),
            token_file: args.token_file.clone(),
            tls_ca: args.tls_ca.clone(),
            tls_identity: args.tls_cert.clone().zip(args.tls_key.clone()),
            timeout: args.timeout.and_then(Seconds::limit),
        }
    }
}
