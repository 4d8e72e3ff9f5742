//! Kafka API dispatch: the table of supported APIs and versions, request
//! header decoding, and response encoding. One module per API handler.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request, VersionRange,
};

use crate::broker::Broker;

/// A response still being produced; resolves to the encoded frame, to `None`
/// when the request gets no response (acks=0), or to an error that closes the connection.
pub type Pending = Pin<Box<dyn Future<Output = Result<Option<Bytes>, String>> + Send>>;

/// What the connection does with a request.
pub enum Outcome {
    /// Queue this response (in request order).
    Reply(Pending),
    /// The request cannot be answered in a format the client understands: close.
    Close(String),
}

/// Produce v0-v2 (message formats v0/v1) are advertised, because librdkafka
/// disables compression otherwise, but refused: the codec cannot decode them.
pub const PRODUCE_ADVERTISED_MIN: i16 = 0;

fn range<R: Request>() -> VersionRange {
    R::VERSIONS.intersect(&<R::Response as Message>::VERSIONS)
}

/// Every API this broker implements with the versions it handles: the
/// intersection of what the codec supports for request and response.
pub fn supported_apis() -> Vec<(ApiKey, VersionRange)> {
    let mut apis = vec![
        (ApiKey::Produce, range::<ProduceRequest>()),
        (ApiKey::Fetch, range::<FetchRequest>()),
        (ApiKey::ListOffsets, range::<ListOffsetsRequest>()),
        (ApiKey::Metadata, range::<MetadataRequest>()),
        (ApiKey::ApiVersions, range::<ApiVersionsRequest>()),
        (ApiKey::CreateTopics, range::<CreateTopicsRequest>()),
        (ApiKey::DeleteTopics, range::<DeleteTopicsRequest>()),
        (ApiKey::DeleteRecords, range::<DeleteRecordsRequest>()),
        (ApiKey::InitProducerId, range::<InitProducerIdRequest>()),
        (ApiKey::DescribeConfigs, range::<DescribeConfigsRequest>()),
        (ApiKey::AlterConfigs, range::<AlterConfigsRequest>()),
        (ApiKey::CreatePartitions, range::<CreatePartitionsRequest>()),
        (
            ApiKey::IncrementalAlterConfigs,
            range::<IncrementalAlterConfigsRequest>(),
        ),
        (ApiKey::DescribeCluster, range::<DescribeClusterRequest>()),
    ];
    for (key, r) in apis.iter_mut() {
        *r = r.intersect(&key.valid_versions());
    }
    apis
}

/// The versions handled for one API key, if implemented.
pub fn handled_range(key: ApiKey) -> Option<VersionRange> {
    supported_apis()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| r)
}

/// Encodes a response frame: size, header (version from the API), body.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, R::header_version(version))
        .and_then(|()| response.encode(&mut buf, version))
        .map_err(|e| {
            format!(
                "cannot encode {} v{version} response: {e}",
                std::any::type_name::<R>()
            )
        })?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

fn ready(result: Result<Bytes, String>) -> Pending {
    Box::pin(std::future::ready(result.map(Some)))
}

fn decode<T: Decodable>(buf: &mut Bytes, key: ApiKey, version: i16) -> Result<T, String> {
    T::decode(buf, version).map_err(|e| format!("malformed {key:?} v{version} request: {e}"))
}

/// Decodes one request frame (without its size prefix), runs the in-order
/// part of its handler, and returns what the connection should do.
pub async fn dispatch(broker: &Arc<Broker>, frame: Bytes) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unsupported API key {raw_key} (version {version})"));
    };
    let Some(handled) = handled_range(key) else {
        return Outcome::Close(format!(
            "unsupported API {key:?} (key {raw_key}, version {version})"
        ));
    };
    if version < handled.min || version > handled.max {
        if key == ApiKey::ApiVersions && version > handled.max {
            // KIP-511: answer in v0 format so the client can retry with a version we support.
            return Outcome::Reply(ready(api_versions::unsupported_version_response(
                correlation_id,
            )));
        }
        if key == ApiKey::Produce && version < handled.min {
            return Outcome::Close(format!(
                "Produce v{version} (message format v0/v1) is not supported; use a client that sends Produce v3+"
            ));
        }
        return Outcome::Close(format!(
            "unsupported version {version} of API {key:?} (key {raw_key}); supported {handled}"
        ));
    }
    let mut buf = frame;
    if let Err(e) = RequestHeader::decode(&mut buf, key.request_header_version(version)) {
        return Outcome::Close(format!("malformed {key:?} v{version} request header: {e}"));
    }
    let api = format!("{key:?}");
    broker
        .metrics
        .requests
        .with_label_values(&[api.as_str()])
        .inc();
    let histogram = broker
        .metrics
        .request_duration
        .with_label_values(&[api.as_str()]);
    let started = Instant::now();
    let pending = match route(broker, key, version, correlation_id, buf).await {
        Ok(pending) => pending,
        Err(reason) => return Outcome::Close(reason),
    };
    Outcome::Reply(Box::pin(async move {
        let result = pending.await;
        histogram.observe(started.elapsed().as_secs_f64());
        result
    }))
}

async fn route(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut buf: Bytes,
) -> Result<Pending, String> {
    macro_rules! inline {
        ($req:ty, $handler:path) => {{
            let request: $req = decode(&mut buf, key, version)?;
            let response = $handler(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }};
    }
    Ok(match key {
        ApiKey::ApiVersions => inline!(ApiVersionsRequest, api_versions::handle),
        ApiKey::Metadata => inline!(MetadataRequest, metadata::handle),
        ApiKey::Produce => {
            let request: ProduceRequest = decode(&mut buf, key, version)?;
            let staged = produce::stage(broker, request, version).await;
            Box::pin(async move {
                match staged.finish().await {
                    Some(response) => encode_response(correlation_id, version, &response).map(Some),
                    None => Ok(None),
                }
            })
        }
        ApiKey::Fetch => {
            let request: FetchRequest = decode(&mut buf, key, version)?;
            let broker = broker.clone();
            Box::pin(async move {
                let response = fetch::handle(&broker, request, version).await;
                encode_response(correlation_id, version, &response).map(Some)
            })
        }
        ApiKey::ListOffsets => inline!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::CreateTopics => inline!(CreateTopicsRequest, create_topics::handle),
        ApiKey::DeleteTopics => inline!(DeleteTopicsRequest, delete_topics::handle),
        ApiKey::CreatePartitions => inline!(CreatePartitionsRequest, create_partitions::handle),
        ApiKey::DescribeConfigs => inline!(DescribeConfigsRequest, describe_configs::handle),
        ApiKey::AlterConfigs => inline!(AlterConfigsRequest, alter_configs::handle),
        ApiKey::IncrementalAlterConfigs => {
            inline!(
                IncrementalAlterConfigsRequest,
                incremental_alter_configs::handle
            )
        }
        ApiKey::DescribeCluster => inline!(DescribeClusterRequest, describe_cluster::handle),
        ApiKey::DeleteRecords => inline!(DeleteRecordsRequest, delete_records::handle),
        ApiKey::InitProducerId => inline!(InitProducerIdRequest, init_producer_id::handle),
        other => return Err(format!("unsupported API {other:?}")),
    })
}

/// Runs blocking admin work (file creation, fsync) off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("blocking task failed: {e}"))
}

/// Record count and byte size of every magic-v2 batch header in `records`
/// (for metrics; malformed tails are ignored).
pub(crate) fn count_records(records: &[u8]) -> u64 {
    let mut pos = 0usize;
    let mut count = 0u64;
    while records.len() >= pos + 61 {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        if len < 49 {
            break;
        }
        let n = i32::from_be_bytes([
            records[pos + 57],
            records[pos + 58],
            records[pos + 59],
            records[pos + 60],
        ]);
        count += n.max(0) as u64;
        pos += 12 + len as usize;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_apis_are_within_codec_ranges() {
        for (key, r) in supported_apis() {
            assert!(!r.is_empty(), "{key:?}");
            let codec = key.valid_versions();
            assert!(
                r.min >= codec.min && r.max <= codec.max,
                "{key:?} {r} vs {codec}"
            );
        }
        assert_eq!(handled_range(ApiKey::Produce).map(|r| r.min), Some(3));
        assert!(handled_range(ApiKey::JoinGroup).is_none());
    }
}
