//! The gRPC port as tonic serves it: the services and their interceptor ([`grpc_routes`]), then
//! the HTTP/2 settings, the layers in their order (see [`crate::server::layers`]) and the
//! connections — plaintext or TLS, each tracked for the idle timeout ([`serve_grpc`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use super::shutdown::ServerFuture;
use crate::proto;
use crate::proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use crate::server::config::ServerConfig;
use crate::server::connections::idle::tracked;
use crate::server::connections::tcp::tcp_incoming;
use crate::server::connections::tls::{self, ReloadingTls};
use crate::server::layers::admission_gate::AdmissionGate;
use crate::server::layers::auth::Authenticate;
use crate::server::layers::calls_in_flight::CallsInFlightLimitLayer;
use crate::server::layers::deadline::DeadlineLayer;
use crate::server::layers::message_arrival::MessageArrivalLayer;
use crate::server::layers::open_calls::OpenCallLayer;
use crate::server::layers::request_id::RequestIdLayer;
use crate::server::memory_budget::MemoryBudget;
use crate::server::pipeline::Pipeline;
use crate::server::services::classifier::ClassifierService;
use crate::server::services::oip::InferenceService;

/// Time the calls of a connection past its age get to finish before it is closed.
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// HTTP/2 PING interval on idle connections, and how long the answer may take before the
/// connection is dropped (dead peers, half-open connections).
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// `routes` (reflection, if on) with health, the classifier and OIP added: every service but
/// health behind `authenticate`, the two inference services with the message size limits and
/// their unary inference calls refused at the headers while nothing can be admitted
/// ([`AdmissionGate`]).
pub fn grpc_routes(
    mut routes: RoutesBuilder,
    pipeline: &Pipeline,
    config: &ServerConfig,
    health: HealthServer<HealthService>,
    authenticate: Authenticate,
) -> Routes {
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(pipeline.clone()))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let classifier =
        proto::classifier_server::ClassifierServer::new(ClassifierService::new(pipeline.clone()))
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes);
    routes
        .add_service(health)
        .add_service(InterceptedService::new(
            AdmissionGate::new(classifier, pipeline.clone()),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            AdmissionGate::new(inference, pipeline.clone()),
            authenticate,
        ));
    routes.routes()
}

/// Serve `routes` on `listener` (through `tls` when given) until `stop` completes and the open
/// calls are done. `budget` is what request messages are charged to while they arrive.
pub fn serve_grpc(
    listener: TcpListener,
    tls: Option<ReloadingTls>,
    config: &ServerConfig,
    routes: Routes,
    budget: Arc<MemoryBudget>,
    calls_in_flight: CallsInFlightLimitLayer,
    stop: impl Future<Output = ()> + Send + 'static,
) -> ServerFuture {
    // Deadlines are ours, not tonic's `Server::timeout` (which answers CANCELLED): see
    // `layers/deadline.rs`.
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams)
        // Flow-control windows that start at the spec's 64 KiB and grow with the measured
        // bandwidth-delay product (hyper's BDP pings), instead of hyper's fixed 1 MiB: a call
        // refused at its headers (`AdmissionGate`) then costs at most a window of bytes in flight,
        // not its whole image, while a long fat link still gets a window that fills it.
        .http2_adaptive_window(Some(true))
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT));
    if let Some(age) = config.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE);
    }
    let router = builder
        .layer(calls_in_flight)
        .layer(OpenCallLayer)
        .layer(MessageArrivalLayer::new(
            config.message_timeout,
            Some(budget),
        ))
        .layer(RequestIdLayer)
        .layer(DeadlineLayer::new(config.request_timeout))
        .add_routes(routes);
    let incoming = tcp_incoming(listener);
    match tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            tracked(tls::incoming(incoming, tls), config.idle_timeout),
            stop,
        )),
        None => Box::pin(
            router.serve_with_incoming_shutdown(tracked(incoming, config.idle_timeout), stop),
        ),
    }
}
