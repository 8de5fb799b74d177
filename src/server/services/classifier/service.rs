//! [`ClassifierService`]: the `swin.v1.Classifier` trait, each RPC recorded as one call
//! ([`Pipeline::recorded`]) around the work in [`super::classify`], [`super::batch`] and
//! [`super::stream`].

use std::time::Instant;

use tonic::{Request, Response, Status};

use super::batch::classify_batch_call;
use super::classify::{classify_call, classify_summary};
use super::stream::{classify_stream_call, ClassifyStreamAnswers};
use crate::proto;
use crate::server::call::request_id::request_id_of;
use crate::server::pipeline::{Call, CallSummary, Pipeline};

/// The classifier service; answers UNAVAILABLE until the model slot is filled.
#[derive(Clone)]
pub struct ClassifierService {
    pipeline: Pipeline,
}

impl ClassifierService {
    /// A service over the shared `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }
}

#[tonic::async_trait]
impl proto::classifier_server::Classifier for ClassifierService {
    type ClassifyStreamStream = ClassifyStreamAnswers;

    async fn classify_stream(
        &self,
        request: Request<tonic::Streaming<proto::ClassifyRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        // Each message is recorded as a call of its own.
        Ok(classify_stream_call(&self.pipeline, request))
    }

    async fn classify(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let started = Instant::now();
        let header_id = request_id_of(&request);
        let body_id = request.get_ref().request_id.clone();
        let request_id = if body_id.is_empty() {
            &header_id
        } else {
            &body_id
        };
        let call = Call {
            rpc: "Classify",
            inference: true,
            started,
            request_id,
        };
        let result = classify_call(&self.pipeline, request, &header_id).await;
        self.pipeline
            .recorded(call, result, |r| classify_summary(r.get_ref()))
    }

    async fn classify_batch(
        &self,
        request: Request<proto::ClassifyBatchRequest>,
    ) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
        let request_id = request_id_of(&request);
        let call = Call {
            rpc: "ClassifyBatch",
            inference: true,
            started: Instant::now(),
            request_id: &request_id,
        };
        let result = classify_batch_call(&self.pipeline, request).await;
        self.pipeline.recorded(call, result, |r| CallSummary {
            images: r.get_ref().results.len(),
            ..Default::default()
        })
    }

    async fn get_model_info(
        &self,
        request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let request_id = request_id_of(&request);
        let call = Call {
            rpc: "GetModelInfo",
            inference: false,
            started: Instant::now(),
            request_id: &request_id,
        };
        let result = self
            .pipeline
            .model()
            .map(|model| Response::new(model.info.clone()));
        self.pipeline
            .recorded(call, result, |_| CallSummary::default())
    }
}
