//! Load on a server over one HTTP/2 connection (as a gRPC client library does), until a number of
//! calls have been answered or a duration has passed. Closed loop by default: `concurrency` callers,
//! each sending its next request as soon as the previous one is answered. Open loop with a rate:
//! calls are due at fixed intervals (`1/rate`) whatever the answers, sent by up to `concurrency`
//! callers, and each call's latency counts from when it was *due* (so a server that falls behind
//! shows it in the latency, not in a lower offered rate). Latency is measured per call on the
//! client; throughput over the whole run; failures counted by gRPC code.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::call_failure::CallFailure;
use super::connection::{Bearer, CLIENT_MAX_MESSAGE_BYTES};
use super::http_caller::{HttpCaller, HttpRoute, HttpSetupError};
use super::lean_caller::{LeanGrpc, LeanHttp, LeanSetupError};
use crate::proto;
use crate::proto::inference as pb;

/// Which RPC the load calls (`--rpc`): `swin.v1.Classifier`'s, OIP ModelInfer, or their HTTP
/// routes on the `--http-listen` port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rpc {
    /// `swin.v1.Classifier/Classify` (top 5).
    Classify,
    /// `inference.GRPCInferenceService/ModelInfer`, input IMAGE (raw BYTES), output
    /// PROBABILITIES with classification 5 (what a tritonclient user asks for).
    ModelInfer,
    /// `swin.v1.Classifier/ClassifyBatch` with [`BATCH_CALL_IMAGES`] images per call.
    Batch,
    /// `swin.v1.Classifier/ClassifyStream`: each caller keeps one stream open and sends its next
    /// image when the previous one is answered.
    Stream,
    /// HTTP `POST /v1/classify?top_k=5`, the image file as the body (what `curl --data-binary`
    /// sends), over HTTP/1.1 keep-alive connections (one per caller).
    HttpClassify,
    /// HTTP `POST /v2/models/{model}/infer` in Triton's binary form (what `tritonclient.http`
    /// sends): input IMAGE (BYTES) as binary data, output PROBABILITIES with classification 5.
    HttpInfer,
    /// `Classify` from lean callers for refusal storms: the message encoded once and sent from a
    /// shared buffer over raw HTTP/2 streams of one connection (see [`LeanGrpc`]), so that callers
    /// retrying without back-off cost the load generator little; cleartext only.
    ClassifyStorm,
    /// `POST /v1/classify?top_k=5` from lean callers for refusal storms: plain HTTP/1.1 from shared
    /// buffers, sending stopped once the answer is in, as `curl` does (see [`LeanHttp`]).
    HttpClassifyStorm,
}

/// Images per ClassifyBatch call (`--rpc batch`).
pub const BATCH_CALL_IMAGES: usize = 8;

impl Rpc {
    /// The RPC's name (one word: the `bench server` table's first column).
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Classify => "Classify",
            Rpc::ModelInfer => "ModelInfer",
            Rpc::Batch => "ClassifyBatch",
            Rpc::Stream => "ClassifyStream",
            Rpc::HttpClassify => "HttpClassify",
            Rpc::HttpInfer => "HttpInfer",
            Rpc::ClassifyStorm => "ClassifyStorm",
            Rpc::HttpClassifyStorm => "HttpClassifyStorm",
        }
    }

    /// Whether it is one of the HTTP routes (else a gRPC method).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Rpc::HttpClassify | Rpc::HttpInfer | Rpc::HttpClassifyStorm
        )
    }

    /// Whether it is driven by the lean storm callers ([`run_lean`]).
    pub fn is_lean(self) -> bool {
        matches!(self, Rpc::ClassifyStorm | Rpc::HttpClassifyStorm)
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many calls (answered, OK or not).
    Requests(usize),
    /// Once this long has passed (calls in flight then are still waited for and counted).
    Duration(Duration),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub rpc: Rpc,
    /// Callers in flight at once.
    pub concurrency: usize,
    /// When to stop measuring (after the warm-up).
    pub stop: Stop,
    /// Calls sent first and not measured.
    pub warmup: usize,
    /// The encoded image every call carries.
    pub image: Arc<Vec<u8>>,
    /// Print a progress line to stderr every [`PROGRESS_INTERVAL`].
    pub progress: bool,
    /// Open loop: calls due at this many per second (at most `concurrency` in flight; a call
    /// whose caller is still busy when it is due waits, and its latency includes the wait).
    pub rate: Option<f64>,
}

/// How often a run with `progress` reports.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub rpc: Rpc,
    pub concurrency: usize,
    /// Calls answered OK.
    pub ok: usize,
    /// Images classified by those calls.
    pub images: usize,
    /// Calls answered with an error, and the first error seen.
    pub errors: usize,
    pub first_error: Option<String>,
    /// Failed calls by gRPC code (`Unavailable`, `DeadlineExceeded`, ...) or HTTP status
    /// (`HTTP 503`, ...), or `transport` for a call that got no answer.
    pub codes: BTreeMap<String, usize>,
    /// Wall time of the measured part.
    pub wall: Duration,
    /// Latencies of the OK calls, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Images classified per second.
    pub fn throughput(&self) -> f64 {
        self.images as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
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
pub enum LoadRunError {
    #[error("--concurrency and --requests (or --duration) must be at least 1, --rate positive")]
    Options,
    #[error("the server lists no model (RepositoryIndex): {0}")]
    NoModel(String),
    #[error("the HTTP routes are driven over cleartext http:// only (got {0})")]
    HttpUrl(String),
    #[error("{} is an HTTP route: it needs the HTTP port's URL", .0.name())]
    NotGrpc(Rpc),
    #[error("{} is a gRPC method, not an HTTP route", .0.name())]
    NotHttp(Rpc),
    #[error("the HTTP port at {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{} is not driven by the lean storm callers", .0.name())]
    NotLean(Rpc),
    #[error(transparent)]
    Lean(#[from] LeanSetupError),
}

type Authed = InterceptedService<Channel, Bearer>;

/// A test image for runs given no `--image`: a 500×375 JPEG (quality 90) of smooth colour
/// gradients, the size of a typical ImageNet photo.
pub fn default_image() -> Vec<u8> {
    let (w, h) = (500u32, 375u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + 2 * y) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encoding a JPEG in memory cannot fail");
    out.into_inner()
}

/// One caller's open ClassifyStream.
struct OpenStream {
    requests: tokio::sync::mpsc::Sender<proto::ClassifyRequest>,
    answers: tonic::Streaming<proto::ClassifyStreamResponse>,
}

/// A caller's client.
enum Caller {
    Classify(proto::classifier_client::ClassifierClient<Authed>),
    ModelInfer {
        client: pb::grpc_inference_service_client::GrpcInferenceServiceClient<Authed>,
        model: String,
    },
    Batch(proto::classifier_client::ClassifierClient<Authed>),
    Stream {
        client: proto::classifier_client::ClassifierClient<Authed>,
        open: Option<Box<OpenStream>>,
    },
    Http(HttpCaller),
    LeanGrpc(LeanGrpc),
    LeanHttp(LeanHttp),
}

impl Clone for Caller {
    /// A new caller on the same connection (a stream is not shared: the clone opens its own).
    fn clone(&self) -> Self {
        match self {
            Caller::Classify(c) => Caller::Classify(c.clone()),
            Caller::ModelInfer { client, model } => Caller::ModelInfer {
                client: client.clone(),
                model: model.clone(),
            },
            Caller::Batch(c) => Caller::Batch(c.clone()),
            Caller::Stream { client, .. } => Caller::Stream {
                client: client.clone(),
                open: None,
            },
            Caller::Http(c) => Caller::Http(c.clone()),
            Caller::LeanGrpc(c) => Caller::LeanGrpc(c.clone()),
            Caller::LeanHttp(c) => Caller::LeanHttp(c.clone()),
        }
    }
}

fn request(image: &[u8]) -> proto::ClassifyRequest {
    proto::ClassifyRequest {
        image: image.to_vec(),
        top_k: 5,
        request_id: String::new(),
    }
}

impl Caller {
    /// One call; the images it classified.
    async fn call(&mut self, image: &[u8]) -> Result<usize, CallFailure> {
        let grpc: Result<usize, tonic::Status> = match self {
            Caller::Http(c) => return c.call(image).await,
            // The lean callers send the image they were made with.
            Caller::LeanGrpc(c) => return c.call().await,
            Caller::LeanHttp(c) => return c.call().await,
            Caller::Classify(c) => c.classify(request(image)).await.map(|_| 1),
            Caller::Batch(c) => {
                let answer = c
                    .classify_batch(proto::ClassifyBatchRequest {
                        requests: (0..BATCH_CALL_IMAGES).map(|_| request(image)).collect(),
                    })
                    .await?
                    .into_inner();
                // The call succeeds even when entries fail: report the first failed entry.
                for result in &answer.results {
                    if let Some(proto::classify_result::Outcome::Error(e)) = &result.outcome {
                        return Err(tonic::Status::new(e.code.into(), e.message.clone()).into());
                    }
                }
                Ok(answer.results.len())
            }
            Caller::Stream { client, open } => {
                if open.is_none() {
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    let answers = client
                        .classify_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await?
                        .into_inner();
                    *open = Some(Box::new(OpenStream {
                        requests: tx,
                        answers,
                    }));
                }
                let stream = open.as_mut().expect("opened above");
                let sent = stream.requests.send(request(image)).await;
                let answer = match sent {
                    Ok(()) => stream.answers.message().await,
                    Err(_) => Err(tonic::Status::unavailable("the stream was closed")),
                };
                match answer {
                    Ok(Some(a)) => match a.outcome {
                        Some(proto::classify_stream_response::Outcome::Error(e)) => {
                            Err(tonic::Status::new(e.code.into(), e.message))
                        }
                        _ => Ok(1),
                    },
                    Ok(None) => {
                        *open = None;
                        Err(tonic::Status::unavailable("the server ended the stream"))
                    }
                    Err(status) => {
                        *open = None;
                        Err(status)
                    }
                }
            }
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
                    .map(|_| 1)
            }
        };
        grpc.map_err(CallFailure::from)
    }
}

/// The options a run cannot start with.
fn check_options(options: &LoadOptions) -> Result<(), LoadRunError> {
    let empty = match options.stop {
        Stop::Requests(n) => n == 0,
        Stop::Duration(d) => d.is_zero(),
    };
    let bad_rate = options.rate.is_some_and(|r| !(r.is_finite() && r > 0.0));
    if options.concurrency == 0 || empty || bad_rate {
        return Err(LoadRunError::Options);
    }
    Ok(())
}

/// Run `options` (a gRPC method) against the server on `channel`.
pub async fn run(
    channel: Channel,
    token: Bearer,
    options: &LoadOptions,
) -> Result<LoadReport, LoadRunError> {
    check_options(options)?;
    let authed = InterceptedService::new(channel, token);
    let classifier = || {
        proto::classifier_client::ClassifierClient::new(authed.clone())
            .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
    };
    let caller = match options.rpc {
        Rpc::HttpClassify | Rpc::HttpInfer | Rpc::HttpClassifyStorm => {
            return Err(LoadRunError::NotGrpc(options.rpc))
        }
        Rpc::ClassifyStorm => return Err(LoadRunError::NotLean(options.rpc)),
        Rpc::Classify => Caller::Classify(classifier()),
        Rpc::Batch => Caller::Batch(classifier()),
        Rpc::Stream => Caller::Stream {
            client: classifier(),
            open: None,
        },
        Rpc::ModelInfer => {
            let mut client =
                pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(authed)
                    .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES);
            let index = client
                .repository_index(pb::RepositoryIndexRequest::default())
                .await
                .map_err(|s| LoadRunError::NoModel(s.message().to_string()))?
                .into_inner();
            let model = index
                .models
                .into_iter()
                .next()
                .ok_or_else(|| LoadRunError::NoModel("empty index (still loading?)".into()))?
                .name;
            Caller::ModelInfer { client, model }
        }
    };
    drive(caller, options).await
}

/// Run `options` (an HTTP route) against the HTTP port at `base_url` (`http://host:port`), with
/// `token`'s `authorization` header when it has one.
pub async fn run_http(
    base_url: &str,
    token: &Bearer,
    options: &LoadOptions,
) -> Result<LoadReport, LoadRunError> {
    check_options(options)?;
    if !options.rpc.is_http() {
        return Err(LoadRunError::NotHttp(options.rpc));
    }
    let authorization = token.0.as_ref().map(|v| v.as_bytes().to_vec());
    let route = match options.rpc {
        Rpc::HttpInfer => HttpRoute::Infer,
        _ => HttpRoute::Classify,
    };
    let caller = HttpCaller::new(base_url, authorization, route)
        .await
        .map_err(|e| match e {
            HttpSetupError::Url(url) => LoadRunError::HttpUrl(url),
            HttpSetupError::NoModel(reason) => LoadRunError::NoModel(reason),
            HttpSetupError::Request { url, reason } => LoadRunError::Http { url, reason },
        })?;
    drive(Caller::Http(caller), options).await
}

/// Run `options` (a storm RPC) with the lean callers against `url` (`http://host:port`: the gRPC
/// port for `classify-storm`, the HTTP port for `http-classify-storm`), with `token`'s
/// `authorization` header when it has one.
pub async fn run_lean(
    url: &str,
    token: &Bearer,
    options: &LoadOptions,
) -> Result<LoadReport, LoadRunError> {
    check_options(options)?;
    let authorization = token.0.as_ref().and_then(|v| v.to_str().ok());
    let caller = match options.rpc {
        Rpc::ClassifyStorm => {
            Caller::LeanGrpc(LeanGrpc::new(url, authorization, &request(&options.image)).await?)
        }
        Rpc::HttpClassifyStorm => {
            Caller::LeanHttp(LeanHttp::new(url, authorization, &options.image).await?)
        }
        other => return Err(LoadRunError::NotLean(other)),
    };
    drive(caller, options).await
}

/// The load itself: warm-up, then `options.concurrency` clones of `caller`.
async fn drive(caller: Caller, options: &LoadOptions) -> Result<LoadReport, LoadRunError> {
    // Warm-up: not measured.
    let mut warm = caller.clone();
    for _ in 0..options.warmup {
        let _ = warm.call(&options.image).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let started = Instant::now();
    let progress = options.progress.then(|| {
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "  {:>5.0} s: {} ok, {} failed",
                    started.elapsed().as_secs_f64(),
                    answered[0].load(Ordering::Relaxed),
                    answered[1].load(Ordering::Relaxed)
                );
            }
        })
    });
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let mut caller = caller.clone();
            let next = Arc::clone(&next);
            let answered = Arc::clone(&answered);
            let image = Arc::clone(&options.image);
            let stop = options.stop;
            let rate = options.rate;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                let mut images = 0;
                loop {
                    let sent = match rate {
                        None => {
                            let more = match stop {
                                Stop::Requests(total) => {
                                    next.fetch_add(1, Ordering::Relaxed) < total
                                }
                                Stop::Duration(d) => started.elapsed() < d,
                            };
                            if !more {
                                break;
                            }
                            Instant::now()
                        }
                        Some(rate) => {
                            // The next call due: number j is due j/rate after the start.
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let due = Duration::from_secs_f64(j as f64 / rate);
                            let more = match stop {
                                Stop::Requests(total) => j < total,
                                Stop::Duration(d) => due < d,
                            };
                            if !more {
                                break;
                            }
                            let at = started + due;
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                    };
                    match caller.call(&image).await {
                        Ok(n) => {
                            latencies.push(sent.elapsed());
                            images += n;
                            answered[0].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(failure) => {
                            errors.push(failure);
                            answered[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (latencies, errors, images)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors: Vec<CallFailure> = Vec::new();
    let mut images = 0;
    for worker in workers {
        let (l, e, n) = worker.await.unwrap_or_default();
        latencies.extend(l);
        errors.extend(e);
        images += n;
    }
    let wall = started.elapsed();
    if let Some(task) = progress {
        task.abort();
    }
    latencies.sort();
    let mut codes = BTreeMap::new();
    for failure in &errors {
        *codes.entry(failure.code.clone()).or_insert(0) += 1;
    }
    Ok(LoadReport {
        rpc: options.rpc,
        concurrency: options.concurrency,
        ok: latencies.len(),
        images,
        errors: errors.len(),
        first_error: errors.first().map(|f| format!("{}: {}", f.code, f.message)),
        codes,
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
            rpc: Rpc::Classify,
            concurrency: 1,
            ok: 4,
            images: 4,
            errors: 0,
            first_error: None,
            codes: BTreeMap::new(),
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
