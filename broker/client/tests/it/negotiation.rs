//! ApiVersions negotiation and framing against a fake broker that speaks
//! just enough of the protocol, encoded with kafka-protocol itself.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest};
use runnel_client::{Connection, Error};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::fake::{range, read_request, write_response};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A broker that only knows ApiVersions up to v2 (so it answers our v4 with
/// the v0-format UNSUPPORTED_VERSION reply) and Metadata up to v9. It
/// reports the ApiVersions versions it was asked for on `seen`.
async fn old_broker(listener: TcpListener, seen: mpsc::UnboundedSender<i16>) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    while let Some((header, _body)) = read_request(&mut stream).await {
        let version = header.request_api_version;
        let _ = seen.send(version);
        let keys = vec![
            range(ApiKey::ApiVersions, 0, 2),
            range(ApiKey::Metadata, 0, 9),
        ];
        if version > 2 {
            let resp = ApiVersionsResponse::default()
                .with_error_code(35)
                .with_api_keys(vec![range(ApiKey::ApiVersions, 0, 2)]);
            write_response(
                &mut stream,
                ApiKey::ApiVersions,
                0,
                header.correlation_id,
                &resp,
            )
            .await;
        } else {
            let resp = ApiVersionsResponse::default().with_api_keys(keys);
            write_response(
                &mut stream,
                ApiKey::ApiVersions,
                version,
                header.correlation_id,
                &resp,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn api_versions_falls_back_to_what_an_older_broker_supports() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(old_broker(listener, tx));

    let conn = Connection::connect(&addr, "test", TIMEOUT, TIMEOUT)
        .await
        .expect("connect");

    let mut asked = Vec::new();
    while let Ok(v) = rx.try_recv() {
        asked.push(v);
    }
    let newest = ApiKey::ApiVersions.valid_versions().max;
    assert_eq!(
        asked,
        vec![newest, 2],
        "first our newest, then the broker's newest"
    );
    // Negotiated: the highest version both sides support.
    assert_eq!(conn.version::<MetadataRequest>().expect("metadata"), 9);
    // APIs the broker did not list are refused up front, naming the API.
    let err = conn
        .api_version(ApiKey::Produce)
        .expect_err("produce unsupported");
    assert!(matches!(err, Error::UnsupportedApi { .. }), "{err}");
    assert!(err.to_string().contains("Produce"), "{err}");
    drop(conn);
    server.await.expect("server task");
}

#[tokio::test]
async fn mismatched_correlation_id_is_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        if let Some((header, _)) = read_request(&mut stream).await {
            let resp = ApiVersionsResponse::default().with_api_keys(vec![range(
                ApiKey::ApiVersions,
                0,
                4,
            )]);
            let v = header.request_api_version;
            write_response(
                &mut stream,
                ApiKey::ApiVersions,
                v,
                header.correlation_id + 1,
                &resp,
            )
            .await;
        }
    });
    let err = Connection::connect(&addr, "test", TIMEOUT, TIMEOUT)
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("correlation id"), "{err}");
    server.await.expect("server task");
}

#[tokio::test]
async fn silent_broker_times_out_naming_the_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        // Read the request and never answer; keep the socket open until the client leaves.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        sink.len()
    });
    let err = Connection::connect(&addr, "test", TIMEOUT, Duration::from_millis(200))
        .await
        .expect_err("must time out");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("ApiVersions"), "{err}");
    let sent = server.await.expect("server task");
    assert!(sent > 0, "the request was written before the wait");
}
