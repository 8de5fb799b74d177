//! The Open Inference Protocol v2 over HTTP/JSON (KServe's REST data plane) with the Triton
//! extensions `tritonclient.http` uses, each route answered by the OIP service the gRPC port
//! serves:
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2` | `{"name", "version", "extensions"}` |
//! | `GET /v2/health/live`, `GET /v2/health/ready` | 200 `{"live": true}` / 200 `{"ready": true}`, 503 while loading or draining |
//! | `GET /v2/models/{m}[/versions/{v}]` | metadata: `{"name", "versions", "platform", "inputs", "outputs"}` |
//! | `GET …/ready` | 200 `{"name", "ready": true}`, 503 not ready, 404 unknown model |
//! | `POST …/infer` | inference ([`super::tensors`]: JSON or Triton's binary data) |
//! | `GET …/config` | Triton's model configuration JSON |
//! | `GET …/stats`, `GET /v2/models/stats` | Triton's statistics JSON `{"model_stats": […]}` |
//! | `POST /v2/repository/index` | `[{"name", "version", "state", "reason"}]` (body `{"ready": true}` optional) |

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::body::{read_body, BodyLimits};
use super::classify::json_response;
use super::errors::{recorded_http, HttpError};
use super::proto_json::{to_json, JsonStyle};
use super::tensors::{
    binary_outputs, infer_request, infer_response, strip_http_parameters, HEADER_LENGTH,
};
use super::HttpState;
use crate::proto::inference as pb;
use crate::proto::inference::grpc_inference_service_server::GrpcInferenceService;
use crate::server::call::deadline::CallDeadline;
use crate::server::call::request_id::RequestId;
use crate::server::pipeline::Call;
use crate::server::services::oip::infer::{infer, summarize};

/// The `rpc` label and access-log name of the inference route.
pub const INFER_RPC: &str = "POST /v2/models/{model}/infer";

fn names(params: &HashMap<String, String>) -> (String, String) {
    (
        params.get("model").cloned().unwrap_or_default(),
        params.get("version").cloned().unwrap_or_default(),
    )
}

fn grpc<T>(message: T, request: &Request) -> tonic::Request<T> {
    let mut grpc = tonic::Request::new(message);
    if let Some(id) = request.extensions().get::<RequestId>() {
        grpc.extensions_mut().insert(id.clone());
    }
    grpc
}

fn answer<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    json: impl FnOnce(T) -> serde_json::Value,
) -> Response {
    match result {
        Ok(r) => json_response(StatusCode::OK, &json(r.into_inner())),
        Err(status) => HttpError::from(status).into_response(),
    }
}

/// `GET /v2`.
pub async fn server_metadata(State(state): State<HttpState>, request: Request) -> Response {
    let result = state
        .oip
        .server_metadata(grpc(pb::ServerMetadataRequest {}, &request))
        .await;
    answer(
        result,
        |m| json!({"name": m.name, "version": m.version, "extensions": m.extensions}),
    )
}

/// `GET /v2/health/live`.
pub async fn live() -> Response {
    json_response(StatusCode::OK, &json!({"live": true}))
}

/// `GET /v2/health/ready`: 503 while loading, draining or with a stuck engine.
pub async fn ready(State(state): State<HttpState>) -> Response {
    let ready = state.pipeline.is_ready();
    json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"ready": ready}),
    )
}

/// `GET /v2/models/{m}[/versions/{v}]`.
pub async fn model_metadata(
    State(state): State<HttpState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (name, version) = names(&params);
    let result = state
        .oip
        .model_metadata(grpc(pb::ModelMetadataRequest { name, version }, &request))
        .await;
    let tensor = |t: &pb::model_metadata_response::TensorMetadata| json!({"name": t.name, "datatype": t.datatype, "shape": t.shape});
    answer(result, |m| {
        json!({
            "name": m.name,
            "versions": m.versions,
            "platform": m.platform,
            "inputs": m.inputs.iter().map(tensor).collect::<Vec<_>>(),
            "outputs": m.outputs.iter().map(tensor).collect::<Vec<_>>(),
        })
    })
}

/// `GET …/ready`.
pub async fn model_ready(
    State(state): State<HttpState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (name, version) = names(&params);
    let result = state
        .oip
        .model_ready(grpc(
            pb::ModelReadyRequest {
                name: name.clone(),
                version,
            },
            &request,
        ))
        .await;
    match result {
        Ok(r) => {
            let ready = r.get_ref().ready;
            json_response(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                &json!({"name": name, "ready": ready}),
            )
        }
        Err(status) => HttpError::from(status).into_response(),
    }
}

/// `GET …/config`.
pub async fn model_config(
    State(state): State<HttpState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (name, version) = names(&params);
    let result = state
        .oip
        .model_config(grpc(pb::ModelConfigRequest { name, version }, &request))
        .await;
    answer(result, |r| {
        to_json(
            "inference.ModelConfig",
            &r.config.unwrap_or_default(),
            JsonStyle::Triton,
        )
    })
}

/// `GET …/stats`.
pub async fn model_stats(
    State(state): State<HttpState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (name, version) = names(&params);
    stats(state, name, version, request).await
}

/// `GET /v2/models/stats`: every model.
pub async fn all_stats(State(state): State<HttpState>, request: Request) -> Response {
    stats(state, String::new(), String::new(), request).await
}

async fn stats(state: HttpState, name: String, version: String, request: Request) -> Response {
    let result = state
        .oip
        .model_statistics(grpc(pb::ModelStatisticsRequest { name, version }, &request))
        .await;
    answer(result, |r| {
        to_json("inference.ModelStatisticsResponse", &r, JsonStyle::Triton)
    })
}

/// `POST /v2/repository/index` (body optional: `{"ready": true}` lists only ready models).
pub async fn repository_index(State(state): State<HttpState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limits = BodyLimits {
        max_bytes: 64 << 10,
        timeout: state.pipeline.config().message_timeout,
        budget: None,
    };
    let bytes = match read_body(body, &parts.headers, limits).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let ready = if bytes.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => match v.get("ready") {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(_) => {
                    return HttpError::bad_request("`ready` is not true or false").into_response()
                }
            },
            Err(e) => {
                return HttpError::bad_request(format!("the body is not valid JSON: {e}"))
                    .into_response()
            }
        }
    };
    let request = Request::from_parts(parts, Body::empty());
    let result = state
        .oip
        .repository_index(grpc(
            pb::RepositoryIndexRequest {
                repository_name: String::new(),
                ready,
            },
            &request,
        ))
        .await;
    answer(result, |r| {
        serde_json::Value::Array(
            r.models
                .iter()
                .map(|m| json!({"name": m.name, "version": m.version, "state": m.state, "reason": m.reason}))
                .collect(),
        )
    })
}

/// `POST …/infer`.
pub async fn model_infer(
    State(state): State<HttpState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (name, version) = names(&params);
    let (parts, body) = request.into_parts();
    let header_id = parts
        .extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let deadline = parts.extensions.get::<CallDeadline>().copied();
    let mut binary_plan = (false, HashMap::new());
    let result = async {
        if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING) {
            if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Content-Encoding {encoding:?} is not supported: send the body uncompressed"),
                ));
            }
        }
        let json_length = match parts.headers.get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .ok_or_else(|| HttpError::bad_request("Inference-Header-Content-Length is not a byte count"))?,
            ),
        };
        // Refused at the headers: nothing of the body is read.
        state.pipeline.admission_at_headers(deadline).await?;
        let limits = BodyLimits::for_inference(&state.pipeline);
        let bytes = read_body(body, &parts.headers, limits).await?;
        let (json_part, binary) = match json_length {
            None => (&bytes[..], &[][..]),
            Some(n) if n <= bytes.len() => bytes.split_at(n),
            Some(n) => {
                return Err(HttpError::bad_request(format!(
                    "Inference-Header-Content-Length {n} is over the {} bytes of the body",
                    bytes.len()
                )))
            }
        };
        let mut request = infer_request(&name, &version, json_part, binary)?;
        binary_plan = binary_outputs(&request);
        strip_http_parameters(&mut request);
        if request.id.is_empty() {
            request.id = String::new();
        }
        Ok(infer(state.pipeline.clone(), request, deadline).await?)
    }
    .await;
    let call = Call {
        rpc: INFER_RPC,
        inference: true,
        started,
        request_id: &header_id,
    };
    let response = match recorded_http(&state.pipeline, call, result, summarize) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match infer_response(response, binary_plan.0, &binary_plan.1) {
        Ok((json_part, binary)) if binary.is_empty() => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json_part,
        )
            .into_response(),
        Ok((json_part, binary)) => {
            let length = json_part.len();
            let mut body = json_part;
            body.extend_from_slice(&binary);
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH, HeaderValue::from(length));
            response
        }
        Err(e) => e.into_response(),
    }
}
