//! A broker that answers with a frame whose counts the bytes cannot back: the
//! client refuses it with a protocol error instead of allocating (and aborting).

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest};
use runnel_client::{Connection, Error};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::fake::{range, read_request, write_response};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_metadata_response_claiming_2_pow_31_brokers_is_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        while let Some((header, _body)) = read_request(&mut stream).await {
            if header.request_api_key == ApiKey::ApiVersions as i16 {
                let resp = ApiVersionsResponse::default().with_api_keys(vec![
                    range(ApiKey::ApiVersions, 0, 3),
                    range(ApiKey::Metadata, 0, 1),
                ]);
                let version = header.request_api_version;
                write_response(
                    &mut stream,
                    ApiKey::ApiVersions,
                    version,
                    header.correlation_id,
                    &resp,
                )
                .await;
            } else {
                // Metadata v1: correlation id, then the brokers array count.
                let mut frame = Vec::new();
                frame.extend_from_slice(&8i32.to_be_bytes());
                frame.extend_from_slice(&header.correlation_id.to_be_bytes());
                frame.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
                stream.write_all(&frame).await.expect("write");
            }
        }
    });
    let mut conn = Connection::connect(&addr, "t", TIMEOUT, TIMEOUT)
        .await
        .expect("connect");
    assert_eq!(conn.api_version(ApiKey::Metadata).expect("metadata"), 1);
    let err = conn
        .send(&MetadataRequest::default(), 1)
        .await
        .expect_err("must refuse");
    match err {
        Error::Protocol { message, .. } => {
            assert!(message.contains("Brokers"), "{message}");
            assert!(message.contains("2147483647"), "{message}");
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    drop(conn);
    server.await.expect("server");
}
