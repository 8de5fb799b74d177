//! The real server (`swin_serve::server::serve`) in-process on 127.0.0.1:0, for the integration
//! tests and `benches/grpc_load.rs`: one builder instead of a start-up written in every file.
//!
//! ```ignore
//! let (srv, ch) = TestServer::builder()
//!     .config(ServerConfig { max_in_flight: 2, ..ServerConfig::default() })
//!     .serving()
//!     .await; // bound, loaded, health SERVING; `ch` is connected
//! // ... calls on `ch` ...
//! srv.stop().await; // shutdown signal, `serve` returned Ok
//! ```
//!
//! The model is [`tiny_model_options`] unless [`TestServerBuilder::model`] or
//! [`TestServerBuilder::loader`] says otherwise; TLS, tokens, the health port and the rest are
//! fields of the [`ServerConfig`] given to [`TestServerBuilder::config`].
//!
//! Included by each test binary that serves (`mod common { pub mod test_server; }`), and by the
//! benchmark with `#[path]`: it uses nothing else from `tests/common/`. Each binary takes the
//! options it needs, so the builder's and the handle's methods allow `dead_code`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinConfig, WeightsSource};
use swin_serve::server::{self, ModelLoadError, ServerConfig, ServerError, ServingModel};
use swin_serve::server::{load_serving_model, ModelOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// How long [`TestServer::stop`] waits for `serve` to return before the test fails.
pub const STOP_GUARD: Duration = Duration::from_secs(30);

/// How long [`wait_serving`] waits for health SERVING (the model loading and warming up).
const SERVING_GUARD: Duration = Duration::from_secs(120);

/// What the loader of a test server runs on its blocking thread.
type Loader = Box<dyn FnOnce() -> Result<ServingModel, ModelLoadError> + Send>;

/// A small random SwinV2-T (64×64 input, window 4, seed 3) on one thread: the real engine, fast
/// enough for serving tests. The model of [`TestServer::builder`] by default.
pub fn tiny_model_options() -> ModelOptions {
    let mut config = SwinConfig::tiny_window8_256();
    config.img_size = 64;
    config.window_size = 4;
    let mut cpu = CpuOptions::new(WeightsSource::Random { seed: 3, config });
    cpu.threads = 1;
    ModelOptions::new(BackendOptions::Cpu(cpu))
}

/// What [`TestServerBuilder::start`] starts: the server's settings, its model and when it loads.
pub struct TestServerBuilder {
    config: ServerConfig,
    loader: Loader,
    hold_loader: bool,
    metrics_listener: bool,
}

/// A server started by [`TestServerBuilder::start`]: its address, the loader's release, and the
/// shutdown signal with the task that runs `serve`.
pub struct TestServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    release_loader: Option<oneshot::Sender<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    serving: JoinHandle<Result<(), ServerError>>,
}

// Each test binary uses the options it needs.
#[allow(dead_code)]
impl TestServerBuilder {
    /// The server's settings (default: `ServerConfig::default()`).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Serve the model `options` describe, loaded by the server's own `load_model`.
    pub fn model(mut self, options: ModelOptions) -> Self {
        self.loader = Box::new(move || load_serving_model(&options));
        self
    }

    /// Serve what `load` returns (a stand-in engine, or an error for a model that never loads).
    pub fn loader(
        mut self,
        load: impl FnOnce() -> Result<ServingModel, ModelLoadError> + Send + 'static,
    ) -> Self {
        self.loader = Box::new(load);
        self
    }

    /// The loader waits for [`TestServer::release_loader`] (or the handle dropped), so that a
    /// test sees the server while the model is loading.
    pub fn hold_loader(mut self) -> Self {
        self.hold_loader = true;
        self
    }

    /// Serve Prometheus metrics (`--metrics-listen`) on a free port: [`TestServer::metrics_addr`].
    /// Overrides `metrics_listen` of [`TestServerBuilder::config`].
    pub fn metrics_listener(mut self) -> Self {
        self.metrics_listener = true;
        self
    }

    /// Binds 127.0.0.1:0 and spawns `serve` on it: health answers at once, NOT_SERVING until the
    /// model has loaded.
    pub async fn start(self) -> TestServer {
        let Self {
            mut config,
            loader,
            hold_loader,
            metrics_listener,
        } = self;
        let metrics_addr = metrics_listener.then(free_port);
        if metrics_addr.is_some() {
            config.metrics_listen = metrics_addr;
        }
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let release_loader = if hold_loader {
            Some(release_tx)
        } else {
            drop(release_tx);
            None
        };
        let load = move || {
            // Returns at once unless held: the sender is gone.
            let _ = release_rx.blocking_recv();
            loader()
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(listener, config, load, async move {
            let _ = stop_rx.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            release_loader,
            shutdown: Some(stop_tx),
            serving,
        }
    }

    /// [`TestServerBuilder::start`], connected, and waited on until health says SERVING. Not
    /// with [`TestServerBuilder::hold_loader`].
    pub async fn serving(self) -> (TestServer, Channel) {
        assert!(!self.hold_loader, "a held loader never gets to SERVING");
        let srv = self.start().await;
        let ch = srv.channel().await;
        wait_serving(&ch).await;
        (srv, ch)
    }
}

// Each test binary uses the parts it needs.
#[allow(dead_code)]
impl TestServer {
    /// A server of [`tiny_model_options`] with `ServerConfig::default()`, loaded at once.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            config: ServerConfig::default(),
            loader: Box::new(|| load_serving_model(&tiny_model_options())),
            hold_loader: false,
            metrics_listener: false,
        }
    }

    /// The gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Prometheus endpoint of [`TestServerBuilder::metrics_listener`].
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
            .expect("started without TestServerBuilder::metrics_listener")
    }

    /// A new connection to the server ([`connect`]).
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// Lets the held loader (see [`TestServerBuilder::hold_loader`]) load the model.
    pub fn release_loader(&mut self) {
        let release = self
            .release_loader
            .take()
            .expect("started without hold_loader, or released already");
        let _ = release.send(());
    }

    /// Sends the shutdown signal (health turns NOT_SERVING, the drain delay starts); once only.
    pub fn begin_shutdown(&mut self) {
        let signal = self.shutdown.take().expect("shutdown signalled already");
        // `serve` may have returned already (an error it stopped on): `join` reports it.
        let _ = signal.send(());
    }

    /// Waits for `serve` to return (after [`TestServer::begin_shutdown`], or on its own) and
    /// gives its result; fails the test with `hang` when that takes over `guard`. A held loader
    /// stays held until then.
    pub async fn join(self, guard: Duration, hang: &str) -> Result<(), ServerError> {
        // The loader's release and an unsent shutdown signal are dropped once `serve` returned.
        let Self {
            release_loader,
            shutdown,
            serving,
            ..
        } = self;
        let result = tokio::time::timeout(guard, serving)
            .await
            .unwrap_or_else(|_| panic!("{hang}"))
            .expect("the server task panicked");
        drop((release_loader, shutdown));
        result
    }

    /// Sends the shutdown signal (unless [`TestServer::begin_shutdown`] did) and waits (at most
    /// [`STOP_GUARD`]) for `serve` to return: its result.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if self.shutdown.is_some() {
            self.begin_shutdown();
        }
        self.join(STOP_GUARD, "server did not stop").await
    }

    /// [`TestServer::shutdown`], asserting that the server stopped cleanly.
    pub async fn stop(self) {
        self.shutdown()
            .await
            .expect("the server stopped with an error");
    }
}

/// A free TCP port on 127.0.0.1 (bound, then let go).
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A channel to `addr`, retried for up to 2 s while the server comes up.
pub async fn connect(addr: SocketAddr) -> Channel {
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(c) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not accept connections at {url}");
}

/// What `grpc.health.v1` Check answers for `service`.
pub async fn health(ch: &Channel, service: &str) -> ServingStatus {
    let r = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

/// Waits until health (service `""`) says SERVING: the model is loaded and warmed up.
pub async fn wait_serving(ch: &Channel) {
    let deadline = Instant::now() + SERVING_GUARD;
    while health(ch, "").await != ServingStatus::Serving {
        assert!(Instant::now() < deadline, "model never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
