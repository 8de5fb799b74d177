//! The HTTP front (`--http-listen`): the Open Inference Protocol v2 over HTTP/JSON with Triton's
//! binary-data and classification extensions ([`oip_rest`]), `POST /v1/classify` for curl and
//! browser forms ([`classify`]), and a page to try the model in a browser ([`page`]) — axum on the
//! hyper and tower the gRPC port already runs ([`serve`]).
//!
//! Every route goes through the pipeline the gRPC services use (admission, memory budget, queue,
//! deadlines, batching, statistics, the access log and metrics: the routes are the `rpc` label
//! values, e.g. `POST /v1/classify`). In front of every route ([`guard`]): the request id, the
//! caller's `traceparent`, `--max-in-flight` (429 before the body is read), the bearer token (every
//! route but `/`, `/v2/health/live` and `/v2/health/ready`), the deadline. Bodies ([`body`]): 413
//! from `Content-Length` before reading, at most `--max-message-bytes` read, within
//! `--message-timeout`. The inference routes refuse at the headers when the engine queue is full or
//! the estimated wait is over `--max-queue-wait` (503), before the body is read. Errors are
//! `{"error": "…"}` with the status of [`errors::http_status`]. An HTTP/1.1 answer sent before its
//! body was read says `Connection: close` ([`unread_body`]), and the connection closes lingering
//! (`connections/lingering.rs`), so that the client reads the answer rather than a reset.

pub mod body;
pub mod classify;
pub mod errors;
pub mod guard;
pub mod oip_rest;
pub mod page;
pub mod proto_json;
pub mod serve;
pub mod tensors;
pub mod unread_body;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;

use crate::server::layers::auth::Authenticate;
use crate::server::layers::request_id::RequestIdLayer;
use crate::server::pipeline::Pipeline;
use crate::server::services::oip::InferenceService;

/// What every handler shares.
#[derive(Clone)]
pub struct HttpState {
    pub(crate) pipeline: Pipeline,
    pub(crate) oip: InferenceService,
    pub(crate) authenticate: Authenticate,
    /// The `--max-in-flight` places, shared with the gRPC port.
    pub(crate) places: Arc<Semaphore>,
    pub(crate) max_in_flight: usize,
}

impl HttpState {
    /// The state of the HTTP routes over `pipeline`, with the gRPC port's in-flight `places`.
    pub fn new(
        pipeline: Pipeline,
        authenticate: Authenticate,
        places: Arc<Semaphore>,
        max_in_flight: usize,
    ) -> Self {
        Self {
            oip: InferenceService::new(pipeline.clone()),
            pipeline,
            authenticate,
            places,
            max_in_flight,
        }
    }
}

/// Every HTTP route, with the guard, the request-id layer and (HTTP/1.1) `Connection: close` after
/// a body left unread ([`unread_body`]) in front.
pub fn http_router(state: HttpState) -> Router {
    let v2_model = Router::new()
        .route("/", get(oip_rest::model_metadata))
        .route("/ready", get(oip_rest::model_ready))
        .route("/infer", post(oip_rest::model_infer))
        .route("/config", get(oip_rest::model_config))
        .route("/stats", get(oip_rest::model_stats));
    Router::new()
        .route("/", get(page::index))
        .route("/v1/classify", post(classify::classify))
        .route("/v1/model", get(classify::model_info))
        .route("/v2", get(oip_rest::server_metadata))
        .route("/v2/health/live", get(oip_rest::live))
        .route("/v2/health/ready", get(oip_rest::ready))
        .route("/v2/models/stats", get(oip_rest::all_stats))
        .route("/v2/repository/index", post(oip_rest::repository_index))
        .nest("/v2/models/{model}", v2_model.clone())
        .nest("/v2/models/{model}/versions/{version}", v2_model)
        .fallback(guard::not_found)
        .method_not_allowed_fallback(guard::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(RequestIdLayer)
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .with_state(state)
}
