use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;

use crate::harness::*;

#[tokio::test]
async fn api_versions_advertises_exactly_the_implemented_apis() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let response = conn.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(response.error_code, 0);
    let mut keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
            27, 28, 29, 30, 31, 32, 33, 35, 36, 37, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 55, 60,
            61, 65, 66, 68, 69, 71, 72, 74, 75
        ]
    );
    let produce = response.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(
        produce.min_version, 0,
        "Produce must be advertised from v0 for librdkafka compression"
    );
    let fetch = response.api_keys.iter().find(|k| k.api_key == 1).unwrap();
    assert_eq!((fetch.min_version, fetch.max_version), (4, 17));
    // v0 works too.
    let v0 = conn.send(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(v0.api_keys.len(), keys.len());
}

#[tokio::test]
async fn too_new_api_versions_gets_v0_unsupported_version_reply() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    // ApiVersions v9 with a flexible (v2) header, as a future client would send it.
    let header = RequestHeader::default()
        .with_request_api_key(18)
        .with_request_api_version(9)
        .with_correlation_id(77)
        .with_client_id(Some(StrBytes::from_static_str("future")));
    let mut body = BytesMut::new();
    header.encode(&mut body, 2).unwrap();
    body.put_slice(&[0, 0, 0]); // whatever the future body is
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    conn.stream.write_all(&frame).await.unwrap();
    let mut reply = conn.read_frame().await.expect("expected a v0 reply");
    let header = ResponseHeader::decode(&mut reply, 0).unwrap();
    assert_eq!(header.correlation_id, 77);
    let response = ApiVersionsResponse::decode(&mut reply, 0).unwrap();
    assert_eq!(response.error_code, 35);
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version == 4));
    // The connection stays usable: the client retries with a supported version.
    let retry = conn.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(retry.error_code, 0);
}

#[tokio::test]
async fn unknown_api_key_or_version_closes_only_that_connection() {
    let broker = TestBroker::start().await;
    for (key, version) in [
        (999i16, 0i16),
        (11 /* JoinGroup: not implemented */, 5),
        (3 /* Metadata */, 40),
    ] {
        let mut conn = broker.connect().await;
        let mut frame = BytesMut::new();
        frame.put_i32(10);
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(1);
        frame.put_i16(-1);
        conn.stream.write_all(&frame).await.unwrap();
        assert!(
            conn.closed_by_broker().await,
            "key {key} v{version} must close the connection"
        );
    }
    let mut conn = broker.connect().await;
    assert_eq!(
        conn.send(&ApiVersionsRequest::default(), 3)
            .await
            .error_code,
        0
    );
}

#[tokio::test]
async fn produce_v2_is_refused_by_closing_the_connection() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let mut frame = BytesMut::new();
    frame.put_i32(20);
    frame.put_i16(0);
    frame.put_i16(2);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_slice(&[0u8; 10]);
    conn.stream.write_all(&frame).await.unwrap();
    assert!(conn.closed_by_broker().await);
}
