//! Server reflection (`grpc.reflection.v1` and `v1alpha`) over `swin.v1`, `inference` and
//! `grpc.health.v1`, behind the same interceptor as the other services (the token check: it
//! describes the API).

use tonic::service::interceptor::InterceptedService;
use tonic::service::{Interceptor, RoutesBuilder};

use crate::proto;

/// Routes holding both reflection services, each behind `intercept`, when `enabled`
/// (`--no-reflection` turns them off), none otherwise; the other services are added to them.
pub fn reflection_routes<I>(
    enabled: bool,
    intercept: &I,
) -> Result<RoutesBuilder, tonic_reflection::server::Error>
where
    I: Interceptor + Clone + Send + Sync + 'static,
{
    let mut routes = RoutesBuilder::default();
    if !enabled {
        return Ok(routes);
    }
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    routes
        .add_service(InterceptedService::new(v1, intercept.clone()))
        .add_service(InterceptedService::new(v1alpha, intercept.clone()));
    Ok(routes)
}
