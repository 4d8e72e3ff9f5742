//! Helpers for scripted fake brokers: request framing in, responses out,
//! all encoded with kafka-protocol.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one request frame; `None` when the client hung up.
pub(crate) async fn read_request(stream: &mut TcpStream) -> Option<(RequestHeader, Bytes)> {
    let size = stream.read_i32().await.ok()?;
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    stream.read_exact(&mut buf).await.ok()?;
    let mut body = Bytes::from(buf);
    let header = decode_request_header_from_buffer(&mut body).ok()?;
    Some((header, body))
}

/// Writes one response frame for `api` at `version`.
pub(crate) async fn write_response(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&buf).await.expect("write");
}

/// An ApiVersions entry.
pub(crate) fn range(api: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(api as i16)
        .with_min_version(min)
        .with_max_version(max)
}
