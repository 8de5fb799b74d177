//! Closed-loop load: `concurrency` callers, each sending its next request as soon as the previous
//! one is answered, over one HTTP/2 connection (as a gRPC client library does), until `requests`
//! have been answered. Latency is measured per call on the client; throughput over the whole run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::proto;
use crate::proto::inference as pb;

/// Which API the load goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// `swin.v1.Classifier/Classify` (top 5).
    Classify,
    /// `inference.GRPCInferenceService/ModelInfer`, input IMAGE (raw BYTES), output
    /// PROBABILITIES with classification 5 (what a tritonclient user asks for).
    ModelInfer,
}

impl Protocol {
    /// The RPC's name.
    pub fn rpc(self) -> &'static str {
        match self {
            Protocol::Classify => "Classify",
            Protocol::ModelInfer => "ModelInfer",
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub protocol: Protocol,
    /// Callers in flight at once.
    pub concurrency: usize,
    /// Answered calls to measure (after the warm-up).
    pub requests: usize,
    /// Calls sent first and not measured.
    pub warmup: usize,
    /// The encoded image every call carries.
    pub image: Arc<Vec<u8>>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub protocol: Protocol,
    pub concurrency: usize,
    /// Calls answered OK.
    pub ok: usize,
    /// Calls answered with an error, and the first error seen.
    pub errors: usize,
    pub first_error: Option<String>,
    /// Wall time of the measured part.
    pub wall: Duration,
    /// Latencies of the OK calls, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Answered OK per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `q` quantile (0..=1) of the latencies (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Mean latency.
    pub fn mean(&self) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }
}

/// Errors before the load starts.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--concurrency and --requests must be at least 1")]
    Options,
    #[error("the server lists no model (RepositoryIndex): {0}")]
    NoModel(String),
}

type Authed = InterceptedService<Channel, Bearer>;

/// Adds `authorization` to every call when a token is given.
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A caller's client.
#[derive(Clone)]
enum Caller {
    Classify(proto::classifier_client::ClassifierClient<Authed>),
    ModelInfer {
        client: pb::grpc_inference_service_client::GrpcInferenceServiceClient<Authed>,
        model: String,
    },
}

impl Caller {
    async fn call(&mut self, image: &[u8]) -> Result<(), tonic::Status> {
        match self {
            Caller::Classify(c) => c
                .classify(proto::ClassifyRequest {
                    image: image.to_vec(),
                    top_k: 5,
                    request_id: String::new(),
                })
                .await
                .map(drop),
            Caller::ModelInfer { client, model } => {
                let mut raw = Vec::with_capacity(image.len() + 4);
                raw.extend_from_slice(&(image.len() as u32).to_le_bytes());
                raw.extend_from_slice(image);
                let classification = pb::InferParameter {
                    parameter_choice: Some(pb::infer_parameter::ParameterChoice::Int64Param(5)),
                };
                client
                    .model_infer(pb::ModelInferRequest {
                        model_name: model.clone(),
                        inputs: vec![pb::model_infer_request::InferInputTensor {
                            name: "IMAGE".into(),
                            datatype: "BYTES".into(),
                            shape: vec![1],
                            ..Default::default()
                        }],
                        outputs: vec![pb::model_infer_request::InferRequestedOutputTensor {
                            name: "PROBABILITIES".into(),
                            parameters: [("classification".to_string(), classification)].into(),
                        }],
                        raw_input_contents: vec![raw],
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        }
    }
}

/// Run `options` against the server on `channel`.
pub async fn run(
    channel: Channel,
    token: Bearer,
    options: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    if options.concurrency == 0 || options.requests == 0 {
        return Err(LoadError::Options);
    }
    let authed = InterceptedService::new(channel, token);
    let caller = match options.protocol {
        Protocol::Classify => Caller::Classify(
            proto::classifier_client::ClassifierClient::new(authed)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ),
        Protocol::ModelInfer => {
            let mut client =
                pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(authed)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let index = client
                .repository_index(pb::RepositoryIndexRequest::default())
                .await
                .map_err(|s| LoadError::NoModel(s.message().to_string()))?
                .into_inner();
            let model = index
                .models
                .into_iter()
                .next()
                .ok_or_else(|| LoadError::NoModel("empty index (still loading?)".into()))?
                .name;
            Caller::ModelInfer { client, model }
        }
    };

    // Warm-up: not measured.
    let mut warm = caller.clone();
    for _ in 0..options.warmup {
        let _ = warm.call(&options.image).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let mut caller = caller.clone();
            let next = Arc::clone(&next);
            let image = Arc::clone(&options.image);
            let total = options.requests;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let sent = Instant::now();
                    match caller.call(&image).await {
                        Ok(()) => latencies.push(sent.elapsed()),
                        Err(status) => {
                            errors.push(format!("{:?}: {}", status.code(), status.message()))
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.requests);
    let mut errors = Vec::new();
    for worker in workers {
        let (l, e) = worker.await.unwrap_or_default();
        latencies.extend(l);
        errors.extend(e);
    }
    let wall = started.elapsed();
    latencies.sort();
    Ok(LoadReport {
        protocol: options.protocol,
        concurrency: options.concurrency,
        ok: latencies.len(),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        wall,
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let report = LoadReport {
            protocol: Protocol::Classify,
            concurrency: 1,
            ok: 4,
            errors: 0,
            first_error: None,
            wall: Duration::from_secs(2),
            latencies: [1, 2, 3, 10].map(Duration::from_millis).to_vec(),
        };
        assert_eq!(report.quantile(0.5), Duration::from_millis(2));
        assert_eq!(report.quantile(0.75), Duration::from_millis(3));
        assert_eq!(report.quantile(0.99), Duration::from_millis(10));
        assert_eq!(report.quantile(0.0), Duration::from_millis(1));
        assert_eq!(report.mean(), Duration::from_millis(4));
        assert_eq!(report.throughput(), 2.0);
    }
}
