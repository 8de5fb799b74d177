//! What a connection passes through before its calls reach the layers: the TCP listener and socket
//! options ([`tcp`]), the TLS handshake and certificate rotation ([`tls`]), and the idle timeout
//! that counts each connection's open calls ([`idle`]); the HTTP port's lingering close
//! ([`lingering`]). Calls are the layers' business
//! ([`crate::server::layers`]); these wrap the byte streams the calls travel on.

pub mod idle;
pub mod lingering;
pub mod tcp;
pub mod tls;
