//! A raw HTTP/2 gRPC client (`h2`) for the tests that must stop in the middle of a message or
//! never send one: [`connect`] a connection, [`start_call`] a call with part of a message.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tonic::codegen::{http, Bytes};

/// A raw HTTP/2 connection; the task that drives it ends when the connection closes.
pub async fn connect(
    addr: SocketAddr,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

/// A call to `path` whose request starts a gRPC message of `declared` bytes and sends `sent` of
/// them (no end of stream): the response future and the open request stream.
pub async fn start_call(
    client: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    declared: u32,
    sent: usize,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut send) = ready.send_request(request, false).unwrap();
    if sent > 0 || declared > 0 {
        let mut data = vec![0u8];
        data.extend(declared.to_be_bytes());
        // Field 1 (image, bytes) of a ClassifyRequest would follow; zeros are enough here.
        data.extend(std::iter::repeat_n(0u8, sent));
        send.send_data(Bytes::from(data), false).unwrap();
    }
    (response, send)
}
