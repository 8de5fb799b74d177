//! `POST /v1/classify[?top_k=K]`: the image file as the body (`image/*`,
//! `application/octet-stream`, or curl's default `application/x-www-form-urlencoded` for
//! `--data-binary`), or `multipart/form-data` (the first part that is a file, whatever its field
//! name, as a browser form or `curl -F` sends it). The answer is `swin.v1.ClassifyResponse` in
//! protobuf's JSON mapping: the fields of the gRPC `Classify`. `GET /v1/model` answers
//! `swin.v1.ModelInfo` the same way (what the page shows).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::{read_body, BodyLimits};
use super::errors::{recorded_http, HttpError};
use super::proto_json::{to_json, JsonStyle};
use super::HttpState;
use crate::proto;
use crate::proto::classifier_server::Classifier;
use crate::server::call::deadline::CallDeadline;
use crate::server::call::request_id::RequestId;
use crate::server::pipeline::Call;
use crate::server::services::classifier::classify::{classify_call, classify_summary};
use crate::server::services::classifier::ClassifierService;

/// The `rpc` label and access-log name of the route.
pub const CLASSIFY_RPC: &str = "POST /v1/classify";

/// Most multipart parts looked at for the file.
const MAX_PARTS: usize = 64;

/// A JSON answer.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// `top_k` of the query string (absent: the gRPC default).
fn top_k_of(query: Option<&str>) -> Result<u32, HttpError> {
    let Some(query) = query else { return Ok(0) };
    let mut top_k = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "top_k" => {
                top_k = value.parse::<u32>().map_err(|_| {
                    HttpError::bad_request(format!(
                        "top_k {:?} is not a non-negative integer",
                        crate::server::log_text::untrusted(value)
                    ))
                })?
            }
            _ => {
                return Err(HttpError::bad_request(format!(
                    "unknown query parameter {:?} (only top_k)",
                    crate::server::log_text::untrusted(key)
                )))
            }
        }
    }
    Ok(top_k)
}

/// How the body carries the image.
enum BodyKind {
    Raw,
    Multipart(String),
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, HttpError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Raw);
    };
    let text = value.to_str().unwrap_or("");
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "multipart/form-data" {
        return multer::parse_boundary(text)
            .map(BodyKind::Multipart)
            .map_err(|e| HttpError::bad_request(format!("multipart/form-data: {e}")));
    }
    if mime.starts_with("image/")
        || mime == "application/octet-stream"
        || mime == "application/x-www-form-urlencoded"
        || mime.is_empty()
    {
        return Ok(BodyKind::Raw);
    }
    Err(HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Type {:?}: send the image file as image/*, application/octet-stream or \
             multipart/form-data",
            crate::server::log_text::untrusted(text)
        ),
    ))
}

/// The first file part of a multipart body (a part with a file name, else the first part).
async fn first_file(body: Bytes, boundary: String) -> Result<Vec<u8>, HttpError> {
    let stream = futures_util_once(body);
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut first_field: Option<Vec<u8>> = None;
    for _ in 0..MAX_PARTS {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| HttpError::bad_request(format!("multipart/form-data: {e}")))?;
        let Some(field) = field else { break };
        let is_file = field.file_name().is_some();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| HttpError::bad_request(format!("multipart/form-data: {e}")))?;
        if is_file {
            return Ok(bytes.to_vec());
        }
        first_field.get_or_insert_with(|| bytes.to_vec());
    }
    first_field.ok_or_else(|| HttpError::bad_request("multipart/form-data without any part"))
}

/// A one-item stream of the body, as multer reads it.
fn futures_util_once(
    body: Bytes,
) -> impl tokio_stream::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    tokio_stream::once(Ok(body))
}

/// `POST /v1/classify`.
pub async fn classify(State(state): State<HttpState>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let header_id = parts
        .extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let deadline = parts.extensions.get::<CallDeadline>().copied();
    let call = Call {
        rpc: CLASSIFY_RPC,
        inference: true,
        started,
        request_id: &header_id,
    };
    let result: Result<tonic::Response<proto::ClassifyResponse>, HttpError> = async {
        let top_k = top_k_of(parts.uri.query())?;
        let kind = body_kind(&parts.headers)?;
        // Refused at the headers: nothing of the body is read.
        state.pipeline.admission_at_headers(deadline).await?;
        let limits = BodyLimits::for_inference(&state.pipeline);
        let bytes = read_body(body, &parts.headers, limits).await?;
        let image = match kind {
            BodyKind::Raw => bytes.to_vec(),
            BodyKind::Multipart(boundary) => first_file(bytes, boundary).await?,
        };
        let mut grpc = tonic::Request::new(proto::ClassifyRequest {
            image,
            top_k,
            request_id: String::new(),
        });
        if let Some(d) = deadline {
            grpc.extensions_mut().insert(d);
        }
        Ok(classify_call(&state.pipeline, grpc, &header_id).await?)
    }
    .await;
    match recorded_http(&state.pipeline, call, result, |r| {
        classify_summary(r.get_ref())
    }) {
        Ok(response) => json_response(
            StatusCode::OK,
            &to_json(
                "swin.v1.ClassifyResponse",
                response.get_ref(),
                JsonStyle::Canonical,
            ),
        ),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/model`: `swin.v1.ModelInfo` as JSON.
pub async fn model_info(State(state): State<HttpState>, request: Request) -> Response {
    let service = ClassifierService::new(state.pipeline.clone());
    let mut grpc = tonic::Request::new(proto::GetModelInfoRequest {});
    if let Some(id) = request.extensions().get::<RequestId>() {
        grpc.extensions_mut().insert(id.clone());
    }
    match service.get_model_info(grpc).await {
        Ok(info) => json_response(
            StatusCode::OK,
            &to_json("swin.v1.ModelInfo", info.get_ref(), JsonStyle::Canonical),
        ),
        Err(status) => HttpError::from(status).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_comes_from_the_query() {
        assert_eq!(top_k_of(None).unwrap(), 0);
        assert_eq!(top_k_of(Some("top_k=3")).unwrap(), 3);
        assert!(top_k_of(Some("top_k=-1")).is_err());
        assert!(top_k_of(Some("k=1")).is_err());
    }
}
