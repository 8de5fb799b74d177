//! Lean callers for refusal storms (`bench server --rpc classify-storm,http-classify-storm`): the
//! same calls as `classify` and `http-classify`, sent so that a caller retrying without back-off
//! costs the load generator little. On a machine the generator shares with the server, the
//! generator's own CPU is taken from the engine: the tonic caller copied each 0.5 MB image three
//! times per call into freshly allocated (page-faulted) buffers, ~360 µs of CPU per refused call,
//! ~75% of a core at 2,000 refusals a second (AMD EPYC Zen 4 class, 2 vCPU; `perf`: memmove 25%,
//! page faults ~25%). A storm from other machines would cost the server only its refusals.
//!
//! * [`LeanGrpc`]: `Classify` over a raw HTTP/2 stream (the `h2` crate, one connection shared by
//!   every caller, as a gRPC channel is): the request message is encoded once and every call sends
//!   the same buffer (reference-counted, not copied); a refused call's stream is reset by the
//!   server and the rest of its message is never sent.
//! * [`LeanHttp`]: `POST /v1/classify?top_k=5` over HTTP/1.1 on a plain TCP socket, the request
//!   head and body written from shared buffers; like `curl`, it reads while it sends and stops
//!   sending as soon as the answer is in; keep-alive unless the answer says `Connection: close`.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::codegen::http;

use super::call_failure::CallFailure;
use super::http_caller::error_of;

/// The gRPC path of `Classify`.
const CLASSIFY_PATH: &str = "/swin.v1.Classifier/Classify";

/// Bytes of the body written between two looks for the answer.
const HTTP_WRITE_CHUNK: usize = 64 << 10;

/// Most bytes of an HTTP answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a lean caller could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LeanSetupError {
    #[error("the storm callers need a cleartext http://host:port URL (got {0})")]
    Url(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
}

fn transport(e: impl std::fmt::Display) -> CallFailure {
    CallFailure {
        code: "transport".into(),
        message: e.to_string(),
    }
}

/// `host:port` of a cleartext `http://host:port` URL, resolved.
async fn socket_addr(url: &str) -> Result<SocketAddr, LeanSetupError> {
    let bad = || LeanSetupError::Url(url.to_string());
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(bad)?
        .trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(bad());
    }
    tokio::net::lookup_host(authority)
        .await
        .map_err(|e| LeanSetupError::Connect {
            addr: authority.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(bad)
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The gRPC message frame of `request`: not compressed, its length, the encoded message.
pub fn classify_frame(request: &crate::proto::ClassifyRequest) -> Bytes {
    let message = prost::Message::encode_to_vec(request);
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

/// `Classify` over one shared HTTP/2 connection (clones share it).
#[derive(Clone)]
pub struct LeanGrpc {
    send: h2::client::SendRequest<Bytes>,
    uri: http::Uri,
    frame: Bytes,
    authorization: Option<http::HeaderValue>,
}

impl LeanGrpc {
    /// A caller of the server at `url` (`http://host:port`) sending `request`, with
    /// `authorization` (`Bearer …`) when given.
    pub async fn new(
        url: &str,
        authorization: Option<&str>,
        request: &crate::proto::ClassifyRequest,
    ) -> Result<Self, LeanSetupError> {
        let addr = socket_addr(url).await?;
        let failed = |reason: String| LeanSetupError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let tcp = connect(addr).await.map_err(failed)?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let uri = format!("http://{addr}{CLASSIFY_PATH}")
            .parse()
            .map_err(|_| LeanSetupError::Url(url.to_string()))?;
        let authorization = authorization
            .map(http::HeaderValue::from_str)
            .transpose()
            .map_err(|_| LeanSetupError::Url("a token that is not a header value".into()))?;
        Ok(Self {
            send,
            uri,
            frame: classify_frame(request),
            authorization,
        })
    }

    /// One call: the images classified (1), or the failure (its gRPC code's name).
    pub async fn call(&self) -> Result<usize, CallFailure> {
        let mut send = self.send.clone().ready().await.map_err(transport)?;
        let mut request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers");
        if let Some(value) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, value.clone());
        }
        let request = request.body(()).map_err(transport)?;
        let (response, mut stream) = send.send_request(request, false).map_err(transport)?;
        // Sent as the stream's window allows; dropped unsent if the server resets the stream. A
        // server that has already answered (a refusal at the headers) has closed the stream, and
        // the error here says only that: the answer says why.
        let _ = stream.send_data(self.frame.clone(), true);
        let response = response.await.map_err(transport)?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(transport(format!("HTTP status {}", parts.status)));
        }
        // Trailers-only: a refusal (or any error) before a message.
        if let Some(failure) = grpc_failure(&parts.headers) {
            return failure;
        }
        while let Some(data) = body.data().await {
            let data = data.map_err(transport)?;
            let _ = body.flow_control().release_capacity(data.len());
        }
        let trailers = body.trailers().await.map_err(transport)?;
        match trailers.as_ref().and_then(grpc_failure) {
            Some(outcome) => outcome,
            None => Err(transport("the answer ended without grpc-status")),
        }
    }
}

/// The outcome `grpc-status` (and `grpc-message`) in `headers` say, if they say one (read by
/// tonic's own parser).
fn grpc_failure(headers: &http::HeaderMap) -> Option<Result<usize, CallFailure>> {
    let status = tonic::Status::from_header_map(headers)?;
    Some(match status.code() {
        tonic::Code::Ok => Ok(1),
        _ => Err(CallFailure::from(status)),
    })
}

/// `POST /v1/classify?top_k=5` over HTTP/1.1, one connection per caller (kept alive while the
/// server keeps it).
pub struct LeanHttp {
    addr: SocketAddr,
    head: Bytes,
    body: Bytes,
    connection: Option<TcpStream>,
}

impl Clone for LeanHttp {
    /// Another caller of the same route and image, with a connection of its own.
    fn clone(&self) -> Self {
        Self {
            addr: self.addr,
            head: self.head.clone(),
            body: self.body.clone(),
            connection: None,
        }
    }
}

/// An HTTP answer read off the socket.
struct HttpAnswer {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

impl LeanHttp {
    /// A caller of the HTTP port at `url` (`http://host:port`) sending `image`.
    pub async fn new(
        url: &str,
        authorization: Option<&str>,
        image: &[u8],
    ) -> Result<Self, LeanSetupError> {
        let addr = socket_addr(url).await?;
        let mut head = format!(
            "POST /v1/classify?top_k=5 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            image.len()
        );
        if let Some(value) = authorization {
            head.push_str(&format!("Authorization: {value}\r\n"));
        }
        head.push_str("\r\n");
        Ok(Self {
            addr,
            head: Bytes::from(head),
            body: Bytes::copy_from_slice(image),
            connection: None,
        })
    }

    /// One call: the images classified (1), or the failure (`HTTP <status>`).
    pub async fn call(&mut self) -> Result<usize, CallFailure> {
        let stream = match self.connection.take() {
            Some(stream) => stream,
            None => connect(self.addr).await.map_err(transport)?,
        };
        let (answer, stream, sent_all) = self.exchange(stream).await?;
        if !answer.close && sent_all {
            self.connection = Some(stream);
        }
        if answer.status == 200 {
            Ok(1)
        } else {
            Err(CallFailure {
                code: format!("HTTP {}", answer.status),
                message: error_of(&answer.body),
            })
        }
    }

    /// Send the request, reading while the body goes out; stop sending once the answer is in.
    async fn exchange(
        &self,
        mut stream: TcpStream,
    ) -> Result<(HttpAnswer, TcpStream, bool), CallFailure> {
        stream.write_all(&self.head).await.map_err(transport)?;
        let mut received = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        let mut sent = 0;
        let answer = {
            let (mut read, mut write) = stream.split();
            loop {
                let n = if sent < self.body.len() {
                    let end = (sent + HTTP_WRITE_CHUNK).min(self.body.len());
                    tokio::select! {
                        written = write.write(&self.body[sent..end]) => {
                            match written {
                                Ok(n) => { sent += n; continue; }
                                // The server closed while we sent: its answer may be in already.
                                Err(_) => read.read(&mut buf).await.map_err(transport)?,
                            }
                        }
                        n = read.read(&mut buf) => n.map_err(transport)?,
                    }
                } else {
                    read.read(&mut buf).await.map_err(transport)?
                };
                if n == 0 {
                    return Err(transport(
                        "connection closed before the answer was complete",
                    ));
                }
                received.extend_from_slice(&buf[..n]);
                if received.len() > MAX_ANSWER_BYTES {
                    return Err(transport("answer over 1 MiB"));
                }
                if let Some(answer) = parse_answer(&received).map_err(transport)? {
                    break answer;
                }
            }
        };
        Ok((answer, stream, sent == self.body.len()))
    }
}

/// The answer in `raw` if it is complete (headers and `Content-Length` bytes of body).
fn parse_answer(raw: &[u8]) -> Result<Option<HttpAnswer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or("an answer without Content-Length")?;
    if raw.len() < head_len + length {
        return Ok(None);
    }
    Ok(Some(HttpAnswer {
        status: response.code.unwrap_or(0),
        close: header("connection").is_some_and(|v| v == "close"),
        body: raw[head_len..head_len + length].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_once_their_body_is_in() {
        let head =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 7\r\nconnection: close\r\n\r\n";
        assert!(parse_answer(&head[..20]).unwrap().is_none());
        let mut raw = head.to_vec();
        raw.extend_from_slice(b"{\"e\"");
        assert!(parse_answer(&raw).unwrap().is_none());
        raw.extend_from_slice(b":1}");
        let answer = parse_answer(&raw).unwrap().unwrap();
        assert_eq!((answer.status, answer.close), (503, true));
        assert_eq!(answer.body, b"{\"e\":1}");
    }

    #[test]
    fn grpc_status_and_message_are_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert!(grpc_failure(&headers).is_none());
        headers.insert("grpc-status", "14".parse().unwrap());
        headers.insert("grpc-message", "queue%20full%3A 32".parse().unwrap());
        let failure = grpc_failure(&headers).unwrap().unwrap_err();
        assert_eq!(failure.code, "Unavailable");
        assert_eq!(failure.message, "queue full: 32");
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(grpc_failure(&headers).unwrap().unwrap(), 1);
    }

    #[test]
    fn the_classify_frame_is_a_grpc_message() {
        let frame = classify_frame(&crate::proto::ClassifyRequest {
            image: b"img".to_vec(),
            top_k: 5,
            request_id: String::new(),
        });
        assert_eq!(frame[0], 0);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len, frame.len() - 5);
        let request: crate::proto::ClassifyRequest = prost::Message::decode(&frame[5..]).unwrap();
        assert_eq!((request.image.as_slice(), request.top_k), (&b"img"[..], 5));
    }
}
