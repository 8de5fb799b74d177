//! TLS, mutual TLS, certificate rotation, the plaintext health port and `--no-reflection`, against
//! the real server with certificates generated here (rcgen). The model never loads (the loader
//! waits for the test to end): health answers NOT_SERVING, which is a complete RPC, and that is all
//! a connection test needs.

mod common {
    pub mod test_server;
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use swin_serve::server::connections::tls::{TlsFiles, RELOAD_INTERVAL};
use swin_serve::server::{ModelLoadError, ServerConfig, ServingModel};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use common::test_server::{free_port, TestServer};

/// A CA that signs server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// `(certificate PEM, key PEM)` for `name`, for server or client use.
    fn issue(&self, name: &str, client: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The server with `config`, its model loader held until the server has stopped (it then fails:
/// the model never loads).
async fn start(config: ServerConfig) -> TestServer {
    TestServer::builder()
        .config(config)
        .loader(|| -> Result<ServingModel, ModelLoadError> { Err("test over".into()) })
        .hold_loader()
        .start()
        .await
}

/// Stops `srv`; what `serve` returned is not the point of these tests.
async fn stop(srv: TestServer) {
    let _ = srv.shutdown().await;
}

/// A health Check over `endpoint`: Ok(()) when the server answered (NOT_SERVING: the model never
/// loads), Err with what failed otherwise.
async fn check(endpoint: Endpoint) -> Result<(), String> {
    let channel: Channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

fn tls_endpoint(addr: SocketAddr, ca: &str, identity: Option<(&str, &str)>) -> Endpoint {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
}

fn plain_endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_plaintext_and_unknown_cas_and_picks_up_rotated_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("swin-serve test CA");
    let (cert, key) = ca.issue("localhost", false);
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &cert),
        key: write(dir.path(), "tls.key", &key),
        client_ca: None,
    };
    let srv = start(ServerConfig {
        tls: Some(files.clone()),
        ..ServerConfig::default()
    })
    .await;

    check(tls_endpoint(srv.addr(), &ca.pem(), None))
        .await
        .expect("a client trusting the CA is served");
    let plain = check(plain_endpoint(srv.addr())).await;
    assert!(plain.is_err(), "plaintext must be refused: {plain:?}");
    let other = Ca::new("another CA");
    let unknown = check(tls_endpoint(srv.addr(), &other.pem(), None)).await;
    assert!(
        unknown.is_err(),
        "a server certificate from an untrusted CA: {unknown:?}"
    );

    // Rotation (cert-manager rewrites the files): a certificate from the other CA. New connections
    // get it; a client trusting only the old CA is now refused.
    let (cert2, key2) = other.issue("localhost", false);
    // Write the key first and the certificate last, as a careless rotation might: until both
    // match, the old pair stays in use.
    write(dir.path(), "tls.key", &key2);
    write(dir.path(), "tls.crt", &cert2);
    let deadline = Instant::now() + RELOAD_INTERVAL * 10;
    while check(tls_endpoint(srv.addr(), &other.pem(), None))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(check(tls_endpoint(srv.addr(), &ca.pem(), None))
        .await
        .is_err());

    // A broken rewrite keeps the last good certificate.
    write(dir.path(), "tls.crt", "not a certificate");
    tokio::time::sleep(RELOAD_INTERVAL * 2).await;
    check(tls_endpoint(srv.addr(), &other.pem(), None))
        .await
        .expect("the previous certificate stays in use");
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (cert, key) = server_ca.issue("localhost", false);
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &cert),
        key: write(dir.path(), "tls.key", &key),
        client_ca: Some(write(dir.path(), "client-ca.crt", &client_ca.pem())),
    };
    let srv = start(ServerConfig {
        tls: Some(files),
        health_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let ca = server_ca.pem();

    let (client_cert, client_key) = client_ca.issue("client-1", true);
    check(tls_endpoint(
        srv.addr(),
        &ca,
        Some((&client_cert, &client_key)),
    ))
    .await
    .expect("a client certificate from the client CA is accepted");
    let anonymous = check(tls_endpoint(srv.addr(), &ca, None)).await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let (stranger_cert, stranger_key) = Ca::new("stranger CA").issue("client-2", true);
    let stranger = check(tls_endpoint(
        srv.addr(),
        &ca,
        Some((&stranger_cert, &stranger_key)),
    ))
    .await;
    assert!(
        stranger.is_err(),
        "a client certificate from another CA: {stranger:?}"
    );
    let plain = check(plain_endpoint(srv.addr())).await;
    assert!(plain.is_err(), "plaintext: {plain:?}");
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_port_serves_health_only_in_plaintext() {
    use swin_serve::proto;
    use swin_serve::proto::classifier_client::ClassifierClient;

    // A free port for the health listener.
    let health_addr = free_port();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let (cert, key) = ca.issue("localhost", false);
    let srv = start(ServerConfig {
        tls: Some(TlsFiles {
            cert: write(dir.path(), "tls.crt", &cert),
            key: write(dir.path(), "tls.key", &key),
            client_ca: None,
        }),
        health_listen: Some(health_addr),
        reflection: false,
        ..ServerConfig::default()
    })
    .await;

    // Probes: plaintext health on the health port.
    let mut served = false;
    for _ in 0..100 {
        if check(plain_endpoint(health_addr)).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the health port never answered");
    // Nothing else there.
    let channel = plain_endpoint(health_addr).connect().await.unwrap();
    let e = ClassifierClient::new(channel)
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");

    // --no-reflection: the TLS port does not serve reflection.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let channel = tls_endpoint(srv.addr(), &ca.pem(), None)
        .connect()
        .await
        .unwrap();
    let reflection = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await;
    assert_eq!(reflection.unwrap_err().code(), Code::Unimplemented);
    stop(srv).await;
}

#[tokio::test]
async fn bad_tls_files_stop_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let (cert, _key) = ca.issue("localhost", false);
    let (_, other_key) = ca.issue("localhost", false);
    let cert_path = write(dir.path(), "tls.crt", &cert);
    for (files, says) in [
        (
            TlsFiles {
                cert: dir.path().join("missing.crt"),
                key: write(dir.path(), "k1", &other_key),
                client_ca: None,
            },
            "missing.crt",
        ),
        (
            TlsFiles {
                cert: write(dir.path(), "empty.crt", ""),
                key: write(dir.path(), "k2", &other_key),
                client_ca: None,
            },
            "no PEM CERTIFICATE",
        ),
        (
            TlsFiles {
                cert: cert_path.clone(),
                key: write(dir.path(), "k3", &other_key),
                client_ca: None,
            },
            "TLS configuration",
        ),
    ] {
        let config = ServerConfig {
            tls: Some(files),
            ..ServerConfig::default()
        };
        let srv = TestServer::builder()
            .config(config)
            .loader(|| -> Result<ServingModel, ModelLoadError> { Err("unused".into()) })
            .start()
            .await;
        // No shutdown signal: `serve` must return on its own.
        let result = srv
            .join(
                Duration::from_secs(10),
                "a bad TLS file must stop the server at once",
            )
            .await;
        let e = result.unwrap_err().to_string();
        assert!(e.contains(says), "{says:?} not in {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_server_behind_mtls_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (cert, key) = ca.issue("localhost", false);
    let (client_cert, client_key) = client_ca.issue("cli", true);
    let tokens = write(dir.path(), "tokens", "cli-token\n");
    let srv = start(ServerConfig {
        tls: Some(TlsFiles {
            cert: write(dir.path(), "tls.crt", &cert),
            key: write(dir.path(), "tls.key", &key),
            client_ca: Some(write(dir.path(), "client-ca.crt", &client_ca.pem())),
        }),
        auth_token_file: Some(tokens),
        ..ServerConfig::default()
    })
    .await;
    let ca_file = write(dir.path(), "ca.crt", &ca.pem());
    let cert_file = write(dir.path(), "cli.crt", &client_cert);
    let key_file = write(dir.path(), "cli.key", &client_key);
    let good_token = write(dir.path(), "cli-token", "cli-token\n");
    let bad_token = write(dir.path(), "bad-token", "nope\n");
    let url = format!("https://localhost:{}", srv.addr().port());

    // `info` asks GetModelInfo: the model never loads here, so a request that got through TLS,
    // the client certificate and the token is answered "model is loading" (UNAVAILABLE).
    let info = move |extra: Vec<&Path>, token: &Path| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_swin-serve"));
        cmd.args(["info", "--server", &url, "--timeout", "10", "--tls-ca"])
            .arg(&ca_file)
            .arg("--token-file")
            .arg(token);
        if let [cert, key] = extra.as_slice() {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        cmd.env_remove("SWIN_SERVE_URL");
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = tokio::task::spawn_blocking({
        let info = info.clone();
        let (c, k, t) = (cert_file.clone(), key_file.clone(), good_token.clone());
        move || info(vec![&c, &k], &t)
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(stderr.contains("loading"), "{stderr}");
    let (ok, stderr) = tokio::task::spawn_blocking({
        let info = info.clone();
        let (c, k, t) = (cert_file.clone(), key_file.clone(), bad_token.clone());
        move || info(vec![&c, &k], &t)
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        stderr.contains("Unauthenticated: invalid bearer token"),
        "{stderr}"
    );
    let (ok, stderr) = tokio::task::spawn_blocking({
        let info = info.clone();
        let t = good_token.clone();
        move || info(vec![], &t)
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        !stderr.contains("loading"),
        "no client certificate must not get through: {stderr}"
    );
    stop(srv).await;
}
