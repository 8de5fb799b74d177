//! Bearer-token authentication (`--auth-token-file`).
//!
//! The file holds one token per line (blank lines and `#` comments ignored). Every RPC except
//! `grpc.health.v1.Health` (Kubernetes probes and load balancers call it without credentials)
//! needs `authorization: Bearer <token>` with one of them, else UNAUTHENTICATED. Server reflection
//! is protected too: it describes the API (grpcurl: `-H "authorization: Bearer $TOKEN"`).
//!
//! Tokens are compared in constant time: the presented token and every configured one are hashed
//! (SHA-256) and the digests compared with `subtle`, all of them, so neither the position of a
//! mismatch nor a token's length shows in the timing. The file is re-read when its modification
//! time or size changes (checked every second), so rotating a Kubernetes Secret takes effect
//! without a restart; a file that becomes unreadable or empty keeps the previous tokens (logged).
//! Tokens never appear in logs.
//!
//! [`Authenticate`] is the check as a tonic interceptor, put in front of each service but health
//! (a per-service interceptor, not a tower layer: the layers see every service, health included).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// How often the token file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no token.
    #[error("the token file {0} holds no token (one per line)")]
    Empty(String),
}

/// The accepted tokens (their SHA-256 digests), reloaded when the file changes.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    digests: Arc<RwLock<Vec<[u8; 32]>>>,
}

fn read_digests(path: &Path) -> Result<Vec<[u8; 32]>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let digests: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|t| Sha256::digest(t.as_bytes()).into())
        .collect();
    if digests.is_empty() {
        return Err(AuthError::Empty(path.display().to_string()));
    }
    Ok(digests)
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl TokenAuth {
    /// Read `path` (an error if it is unreadable or empty) and keep watching it from a background
    /// thread for as long as the returned value (or a clone) lives.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let auth = Self {
            digests: Arc::new(RwLock::new(read_digests(path)?)),
        };
        let weak = Arc::downgrade(&auth.digests);
        let path: PathBuf = path.to_path_buf();
        let mut stamp = file_stamp(&path);
        std::thread::Builder::new()
            .name("swin-auth-reload".into())
            .spawn(move || loop {
                std::thread::sleep(RELOAD_INTERVAL);
                let Some(digests) = weak.upgrade() else { return };
                let now = file_stamp(&path);
                if now == stamp {
                    continue;
                }
                stamp = now;
                match read_digests(&path) {
                    Ok(new) => {
                        tracing::info!(tokens = new.len(), "token file changed: tokens reloaded");
                        *digests.write().unwrap_or_else(|e| e.into_inner()) = new;
                    }
                    Err(e) => tracing::error!(error = %e, "token file changed but cannot be used: keeping the previous tokens"),
                }
            })
            .map_err(|source| AuthError::Read {
                path: "(reload thread)".into(),
                source,
            })?;
        Ok(auth)
    }

    /// Whether `token` is one of the accepted tokens (constant time over all of them).
    pub fn accepts(&self, token: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let digests = self.digests.read().unwrap_or_else(|e| e.into_inner());
        let mut ok = subtle::Choice::from(0);
        for d in digests.iter() {
            ok |= d.ct_eq(&presented);
        }
        ok.into()
    }

    /// The tonic interceptor: the request's `authorization: Bearer <token>` must be accepted.
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        self.check_header(header)?;
        Ok(request)
    }

    /// Whether an `authorization` header value (gRPC metadata or HTTP) carries an accepted
    /// `Bearer <token>`.
    pub fn check_header(&self, header: Option<&str>) -> Result<(), Status> {
        let token = header.and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match token {
            Some(t) if self.accepts(t.as_bytes()) => Ok(()),
            Some(_) => Err(Status::unauthenticated("invalid bearer token")),
            None => Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata",
            )),
        }
    }
}

/// The interceptor every service but health runs: with tokens, [`TokenAuth::check`]; without,
/// every call passes.
#[derive(Debug, Clone)]
pub struct Authenticate(Option<TokenAuth>);

impl Authenticate {
    /// Check the tokens of `token_file` (`--auth-token-file`), or none.
    pub fn from_token_file(token_file: Option<&Path>) -> Result<Self, AuthError> {
        Ok(Self(token_file.map(TokenAuth::from_file).transpose()?))
    }
}

impl Authenticate {
    /// Check an HTTP request's `authorization` header (every call passes without tokens).
    pub fn check_authorization(&self, header: Option<&str>) -> Result<(), Status> {
        match &self.0 {
            Some(auth) => auth.check_header(header),
            None => Ok(()),
        }
    }

    /// Whether tokens are required.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match &self.0 {
            Some(auth) => auth.check(request),
            None => Ok(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_one_per_line_and_compared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# comment\n\n  alpha-123  \nbeta\n").unwrap();
        let auth = TokenAuth::from_file(&path).unwrap();
        assert!(auth.accepts(b"alpha-123"));
        assert!(auth.accepts(b"beta"));
        for bad in [&b""[..], b"alpha", b"alpha-1234", b"# comment", b"BETA"] {
            assert!(!auth.accepts(bad), "{bad:?}");
        }
        let with = |v: &str| {
            let mut r = Request::new(());
            r.metadata_mut().insert("authorization", v.parse().unwrap());
            r
        };
        assert!(auth.check(with("Bearer beta")).is_ok());
        assert!(auth.check(with("bearer  alpha-123 ")).is_ok());
        for bad in ["Bearer gamma", "Basic beta", "beta"] {
            let e = auth.check(with(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(!e.message().contains("beta"), "no token echoed");
        }
        assert_eq!(
            auth.check(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn an_empty_or_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "\n# nothing\n").unwrap();
        assert!(matches!(
            TokenAuth::from_file(&path),
            Err(AuthError::Empty(_))
        ));
        assert!(matches!(
            TokenAuth::from_file(&dir.path().join("absent")),
            Err(AuthError::Read { .. })
        ));
    }
}
