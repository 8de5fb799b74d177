//! [`InferenceService`]: the `inference.GRPCInferenceService` trait — readiness, metadata,
//! configuration, statistics and the repository index answered here, inference in
//! [`super::infer`] and [`super::stream`].

use std::time::Instant;

use tonic::{Request, Response, Status, Streaming};

use super::addressing::addressed;
use super::describe::{self, MODEL_VERSION};
use super::infer::{infer, summarize};
use super::stream::{model_stream_infer_call, ModelStreamAnswers};
use crate::proto::inference as pb;
use crate::proto::inference::grpc_inference_service_server::GrpcInferenceService;
use crate::server::call::deadline::deadline_of;
use crate::server::call::request_id::request_id_of;
use crate::server::pipeline::{Call, Pipeline};

/// The OIP service; answers from the shared pipeline.
#[derive(Clone)]
pub struct InferenceService {
    pipeline: Pipeline,
}

impl InferenceService {
    /// A service over the shared `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.pipeline.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let ready = match self.pipeline.loaded() {
            // While loading the name is not known yet: nothing is ready.
            None => false,
            Some(model) => {
                addressed(model, &request.name, &request.version)?;
                self.pipeline.is_ready()
            }
        };
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: describe::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: describe::EXTENSIONS.map(String::from).to_vec(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
        Ok(Response::new(describe::metadata(&model)))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline_of(&request);
        let header_id = request_id_of(&request);
        let request = request.into_inner();
        let request_id = if request.id.is_empty() {
            header_id
        } else {
            request.id.clone()
        };
        let call = Call {
            rpc: "ModelInfer",
            inference: true,
            started,
            request_id: &request_id,
        };
        let result = infer(self.pipeline.clone(), request, deadline).await;
        self.pipeline
            .recorded(call, result, summarize)
            .map(Response::new)
    }

    type ModelStreamInferStream = ModelStreamAnswers;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        // Each request is recorded as a call of its own.
        Ok(model_stream_infer_call(&self.pipeline, request))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(describe::config(&model, self.pipeline.config())),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let model_stats = if request.name.is_empty() {
            // Every model: none while loading.
            self.pipeline
                .loaded()
                .map(|m| describe::statistics(&m))
                .into_iter()
                .collect()
        } else {
            let model = addressed(self.pipeline.model()?, &request.name, &request.version)?;
            vec![describe::statistics(&model)]
        };
        Ok(Response::new(pb::ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let request = request.into_inner();
        let ready = self.pipeline.is_ready();
        let models = self
            .pipeline
            .loaded()
            .filter(|_| ready || !request.ready)
            .map(|m| pb::repository_index_response::ModelIndex {
                name: m.info.model.clone(),
                version: MODEL_VERSION.into(),
                state: if ready { "READY" } else { "UNAVAILABLE" }.into(),
                reason: if ready {
                    ""
                } else {
                    "the server is shutting down"
                }
                .into(),
            })
            .into_iter()
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }
}
