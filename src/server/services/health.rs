//! `grpc.health.v1.Health`: the service names it reports and the statuses the lifecycle sets.
//!
//! Readiness ([`READINESS_SERVICES`]: `""` and `swin.v1.Classifier`) is NOT_SERVING while the
//! model loads, while the server drains, and while the engine is hung or failing. Liveness
//! ([`LIVENESS_SERVICE_NAME`]) is SERVING unless an engine instance is hung — also while the model
//! loads, so that a slow load does not get the pod restarted.

use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

/// gRPC service name of the classifier, as health reports it.
pub const CLASSIFIER_SERVICE_NAME: &str = "swin.v1.Classifier";

/// Health service names that say whether the server takes traffic (NOT_SERVING while loading,
/// draining, or while the engine is hung or failing).
pub const READINESS_SERVICES: [&str; 2] = ["", CLASSIFIER_SERVICE_NAME];

/// Health service name of the liveness check: SERVING unless an engine instance is hung (also
/// while the model loads, so that a slow load does not get the pod restarted).
pub const LIVENESS_SERVICE_NAME: &str = "swin-serve.liveness";

/// The health statuses the server reports; cloning shares them.
#[derive(Clone)]
pub struct HealthStatuses {
    reporter: HealthReporter,
}

impl HealthStatuses {
    /// The statuses at startup — readiness NOT_SERVING, liveness SERVING — and the health service
    /// that answers them.
    pub async fn at_startup() -> (Self, HealthServer<HealthService>) {
        let reporter = HealthReporter::new();
        let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let statuses = Self { reporter };
        statuses.set_readiness(ServingStatus::NotServing).await;
        statuses.set_liveness(ServingStatus::Serving).await;
        (statuses, service)
    }

    /// Set every readiness service to `status`.
    pub async fn set_readiness(&self, status: ServingStatus) {
        for name in READINESS_SERVICES {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Set the liveness service to `status`.
    pub async fn set_liveness(&self, status: ServingStatus) {
        self.reporter
            .set_service_status(LIVENESS_SERVICE_NAME, status)
            .await;
    }

    /// End every health Watch stream (their senders go with the entries; watchers have seen
    /// NOT_SERVING): a client watching health must not hold the shutdown open.
    pub async fn end_watches(&mut self) {
        for name in READINESS_SERVICES
            .into_iter()
            .chain([LIVENESS_SERVICE_NAME])
        {
            self.reporter.clear_service_status(name).await;
        }
    }
}
