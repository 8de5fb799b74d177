//! One caller of the HTTP port (`--http-listen`) for the load generator: `POST /v1/classify`
//! with the image as the body, or OIP REST `POST /v2/models/{model}/infer` in Triton's binary
//! form, over HTTP/1.1 keep-alive (each caller keeps its own connection, as `curl` in a loop or
//! `tritonclient.http` with one connection per thread would). Cleartext `http://` only.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::call_failure::CallFailure;

/// Which route a caller sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRoute {
    /// `POST /v1/classify?top_k=5`, body the image file.
    Classify,
    /// `POST /v2/models/{model}/infer`: IMAGE as binary data, PROBABILITIES with classification 5.
    Infer,
}

/// Why a caller could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("not an http:// URL: {0}")]
    Url(String),
    #[error("the server lists no model: {0}")]
    NoModel(String),
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
}

/// Largest answer read (a classification is a few hundred bytes; an error a line).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Idle keep-alive connections kept per host: one per caller of the highest concurrency used.
const MAX_IDLE_PER_HOST: usize = 1024;

/// One HTTP caller (clones share the connection pool; each call in flight has its own connection).
#[derive(Clone)]
pub struct HttpCaller {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The route's full URL.
    url: String,
    /// The `authorization` header value, when a token is used.
    authorization: Option<Vec<u8>>,
    route: HttpRoute,
}

impl HttpCaller {
    /// A caller of `route` on the server at `base_url` (`http://host:port`); for
    /// [`HttpRoute::Infer`] the model is the first of `POST /v2/repository/index`.
    pub async fn new(
        base_url: &str,
        authorization: Option<Vec<u8>>,
        route: HttpRoute,
    ) -> Result<Self, HttpSetupError> {
        let base = base_url.trim_end_matches('/');
        if !base.starts_with("http://") || base.parse::<hyper::Uri>().is_err() {
            return Err(HttpSetupError::Url(base_url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
        let mut caller = Self {
            client,
            url: String::new(),
            authorization,
            route,
        };
        caller.url = match route {
            HttpRoute::Classify => format!("{base}/v1/classify?top_k=5"),
            HttpRoute::Infer => {
                let index_url = format!("{base}/v2/repository/index");
                let (status, body) = caller
                    .send(&index_url, Method::POST, vec![], None)
                    .await
                    .map_err(|f| HttpSetupError::Request {
                        url: index_url.clone(),
                        reason: f.message,
                    })?;
                if status != StatusCode::OK {
                    return Err(HttpSetupError::NoModel(format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        error_of(&body)
                    )));
                }
                let index: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| HttpSetupError::NoModel(e.to_string()))?;
                let model = index
                    .get(0)
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| {
                        HttpSetupError::NoModel("empty index (still loading?)".into())
                    })?;
                format!("{base}/v2/models/{model}/infer")
            }
        };
        Ok(caller)
    }

    /// One call; the images it classified (1).
    pub async fn call(&self, image: &[u8]) -> Result<usize, CallFailure> {
        let (status, body) = match self.route {
            HttpRoute::Classify => {
                self.send(
                    &self.url,
                    Method::POST,
                    image.to_vec(),
                    Some(("application/octet-stream", None)),
                )
                .await?
            }
            HttpRoute::Infer => {
                let (body, header_len) = binary_infer_body(image);
                self.send(
                    &self.url,
                    Method::POST,
                    body,
                    Some(("application/octet-stream", Some(header_len))),
                )
                .await?
            }
        };
        if status == StatusCode::OK {
            Ok(1)
        } else {
            Err(CallFailure {
                code: format!("HTTP {}", status.as_u16()),
                message: error_of(&body),
            })
        }
    }

    /// Send `body` to `url`; the status and the answer's body (read to [`MAX_ANSWER_BYTES`]).
    /// `content` is the content type and, for Triton's binary form, the JSON header's length.
    async fn send(
        &self,
        url: &str,
        method: Method,
        body: Vec<u8>,
        content: Option<(&str, Option<usize>)>,
    ) -> Result<(StatusCode, Bytes), CallFailure> {
        let transport = |e: &dyn std::error::Error| CallFailure {
            code: "transport".into(),
            message: super::connection::error_chain(e),
        };
        let mut request = Request::builder().method(method).uri(url);
        if let Some((content_type, header_len)) = content {
            request = request.header(header::CONTENT_TYPE, content_type);
            if let Some(n) = header_len {
                request = request.header("Inference-Header-Content-Length", n);
            }
        }
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value.as_slice());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(&e))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| transport(&*e))?
            .to_bytes();
        Ok((status, body))
    }
}

/// Triton's binary infer body for one image: the JSON header, then the IMAGE tensor's bytes
/// (a BYTES element is its 4-byte little-endian length, then the file). The header's length.
fn binary_infer_body(image: &[u8]) -> (Vec<u8>, usize) {
    let header = serde_json::json!({
        "inputs": [{
            "name": "IMAGE",
            "shape": [1],
            "datatype": "BYTES",
            "parameters": { "binary_data_size": image.len() + 4 },
        }],
        "outputs": [{
            "name": "PROBABILITIES",
            "parameters": { "classification": 5 },
        }],
    })
    .to_string();
    let mut body = Vec::with_capacity(header.len() + 4 + image.len());
    body.extend_from_slice(header.as_bytes());
    body.extend_from_slice(&(image.len() as u32).to_le_bytes());
    body.extend_from_slice(image);
    (body, header.len())
}

/// The `error` of an `{"error": "…"}` answer, else the body as text (cut to a line's worth).
pub(super) fn error_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_body_is_the_header_then_the_length_prefixed_file() {
        let (body, n) = binary_infer_body(b"abc");
        let header: serde_json::Value = serde_json::from_slice(&body[..n]).unwrap();
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 7);
        assert_eq!(&body[n..], &[3, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn errors_are_read_from_the_json_body() {
        assert_eq!(error_of(br#"{"error":"queue full"}"#), "queue full");
        assert_eq!(error_of(b"plain"), "plain");
    }
}
