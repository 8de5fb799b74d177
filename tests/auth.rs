//! Bearer tokens end to end (`--auth-token-file`): every RPC but health needs one of the file's
//! tokens (the Classifier, OIP and reflection alike), and a rewritten file takes effect without a
//! restart.

mod common {
    pub mod calls;
    pub mod test_server;
}

use std::time::{Duration, Instant};

use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::proto::inference as oip_pb;
use swin_serve::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient as InferenceClient;
use swin_serve::server::ServerConfig;
use tonic::Code;

use common::calls::{classify_request, random_swin_options, test_image};
use common::test_server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_tokens_guard_every_rpc_but_health_and_are_reloaded() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "first-token\nsecond-token\n").unwrap();
    let config = ServerConfig {
        auth_token_file: Some(tokens.clone()),
        ..ServerConfig::default()
    };
    // Health needs no token (probes): `serving` waits on it.
    let (srv, ch) = TestServer::builder()
        .config(config)
        .model(random_swin_options())
        .serving()
        .await;

    let info = |token: Option<&'static str>| {
        let ch = ch.clone();
        async move {
            let mut request = tonic::Request::new(proto::GetModelInfoRequest {});
            if let Some(t) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            ClassifierClient::new(ch).get_model_info(request).await
        }
    };
    assert_eq!(info(None).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(
        info(Some("wrong-token")).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(info(Some("second-token")).await.is_ok());
    let mut request = tonic::Request::new(classify_request(
        test_image(40, 30, image::ImageFormat::Png),
        1,
    ));
    request
        .metadata_mut()
        .insert("authorization", "Bearer first-token".parse().unwrap());
    assert!(ClassifierClient::new(ch.clone())
        .classify(request)
        .await
        .is_ok());
    let unauthenticated = ClassifierClient::new(ch.clone())
        .classify(classify_request(
            test_image(40, 30, image::ImageFormat::Png),
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    // The OIP service too (its ServerLive included: probes use grpc.health.v1).
    let mut oip = InferenceClient::new(ch.clone());
    let live = oip.server_live(oip_pb::ServerLiveRequest {}).await;
    assert_eq!(live.unwrap_err().code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(oip_pb::ServerLiveRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer second-token".parse().unwrap());
    assert!(oip.server_live(request).await.unwrap().into_inner().live);

    // Reflection describes the API: it needs the token too.
    let reflection = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await;
    assert_eq!(reflection.unwrap_err().code(), Code::Unauthenticated);

    // Rotation: the new token works and the old ones stop working, without a restart.
    std::fs::write(&tokens, "rotated-token-with-another-length\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while info(Some("rotated-token-with-another-length"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the rotated token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        info(Some("second-token")).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    srv.stop().await;
}
