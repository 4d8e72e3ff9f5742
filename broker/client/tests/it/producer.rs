//! The producer against a scripted broker: key placement, one batch per
//! partition per request, and a retry after a retriable partition error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use runnel_client::partitioner::partition_for_key;
use runnel_client::{Acks, Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
use tokio::net::{TcpListener, TcpStream};

use crate::fake::{range, read_request, write_response};

const PARTITIONS: i32 = 3;
/// NOT_LEADER_OR_FOLLOWER: retriable.
const NOT_LEADER: i16 = 6;

/// What the fake broker saw: per Produce request, per partition, the number
/// of record batches and the (key, value) pairs in them.
type Seen = Arc<Mutex<Vec<BTreeMap<i32, (usize, Vec<(String, String)>)>>>>;

async fn serve(mut stream: TcpStream, port: u16, seen: Seen, fail_first_produce: bool) {
    while let Some((header, mut body)) = read_request(&mut stream).await {
        let version = header.request_api_version;
        let id = header.correlation_id;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::ApiVersions) => {
                let resp = ApiVersionsResponse::default().with_api_keys(vec![
                    range(ApiKey::ApiVersions, 0, 3),
                    range(ApiKey::Metadata, 0, 12),
                    range(ApiKey::Produce, 3, 9),
                ]);
                write_response(&mut stream, ApiKey::ApiVersions, version, id, &resp).await;
            }
            Ok(ApiKey::Metadata) => {
                let partitions = (0..PARTITIONS)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(0.into())
                            .with_replica_nodes(vec![0.into()])
                            .with_isr_nodes(vec![0.into()])
                    })
                    .collect();
                let resp = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(0.into())
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(port))])
                    .with_controller_id(0.into())
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                        .with_partitions(partitions)]);
                write_response(&mut stream, ApiKey::Metadata, version, id, &resp).await;
            }
            Ok(ApiKey::Produce) => {
                let req = ProduceRequest::decode(&mut body, version).expect("produce request");
                let fail = {
                    let mut seen = seen.lock().expect("lock");
                    let mut by_partition = BTreeMap::new();
                    for t in &req.topic_data {
                        for p in &t.partition_data {
                            let mut data = p.records.clone().unwrap_or_default();
                            let sets = RecordBatchDecoder::decode_all(&mut data).expect("batches");
                            let pairs = sets
                                .iter()
                                .flat_map(|s| s.records.iter())
                                .map(|r| {
                                    let s = |b: &Option<Bytes>| {
                                        String::from_utf8_lossy(b.as_deref().unwrap_or_default())
                                            .to_string()
                                    };
                                    (s(&r.key), s(&r.value))
                                })
                                .collect();
                            by_partition.insert(p.index, (sets.len(), pairs));
                        }
                    }
                    seen.push(by_partition);
                    fail_first_produce && seen.len() == 1
                };
                let partitions = req.topic_data[0]
                    .partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(if fail { NOT_LEADER } else { 0 })
                    })
                    .collect();
                let resp =
                    ProduceResponse::default()
                        .with_responses(vec![TopicProduceResponse::default()
                            .with_name(TopicName(StrBytes::from_static_str("t")))
                            .with_partition_responses(partitions)]);
                write_response(&mut stream, ApiKey::Produce, version, id, &resp).await;
            }
            other => panic!("unexpected request {other:?}"),
        }
    }
}

async fn start(fail_first_produce: bool) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(
                stream,
                addr.port(),
                seen2.clone(),
                fail_first_produce,
            ));
        }
    });
    (addr.to_string(), seen)
}

fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new(addr);
    c.request_timeout = Duration::from_secs(10);
    c
}

fn keyed(k: &str, v: &str) -> ProducerRecord {
    ProducerRecord {
        key: Some(Bytes::from(k.to_string())),
        value: Some(Bytes::from(v.to_string())),
        ..ProducerRecord::default()
    }
}

#[tokio::test]
async fn flush_sends_one_batch_per_partition_with_keys_on_murmur2_partitions() {
    let (addr, seen) = start(false).await;
    let client = Client::connect(config(&addr)).await.expect("connect");
    let mut producer = Producer::new(&client, "t", ProducerConfig::default())
        .await
        .expect("producer");
    let keys = ["alice", "bob", "carol", "dave", "erin", "frank", "alice"];
    for (i, k) in keys.iter().enumerate() {
        producer
            .send(keyed(k, &format!("v{i}")))
            .await
            .expect("send");
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        0,
        "small records wait for flush"
    );
    producer.flush().await.expect("flush");
    assert_eq!(producer.sent(), keys.len() as u64);

    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "one Produce request for one leader");
    let mut expected: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        expected
            .entry(partition_for_key(k.as_bytes(), PARTITIONS))
            .or_default()
            .push((k.to_string(), format!("v{i}")));
    }
    let got: BTreeMap<i32, Vec<(String, String)>> = requests[0]
        .iter()
        .map(|(p, (_, pairs))| (*p, pairs.clone()))
        .collect();
    assert_eq!(got, expected, "keys on murmur2 partitions, in send order");
    for (p, (batches, _)) in &requests[0] {
        assert_eq!(*batches, 1, "partition {p}: one record batch");
    }
}

#[tokio::test]
async fn retriable_partition_error_is_retried_after_a_metadata_refresh() {
    let (addr, seen) = start(true).await;
    let client = Client::connect(config(&addr)).await.expect("connect");
    let mut producer = Producer::new(&client, "t", ProducerConfig::default())
        .await
        .expect("producer");
    producer.send(keyed("k", "v")).await.expect("send");
    producer.flush().await.expect("flush succeeds on the retry");
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2, "first attempt refused, second accepted");
    assert_eq!(requests[0], requests[1], "the same batch is sent again");
    assert_eq!(producer.sent(), 1, "counted once");
}

#[tokio::test]
async fn retriable_error_surfaces_when_retries_run_out() {
    // With zero retries the retriable error surfaces, naming topic and partition.
    let (addr, _seen) = start(true).await;
    let client = Client::connect(config(&addr)).await.expect("connect");
    let cfg = ProducerConfig {
        retries: 0,
        acks: Acks::Leader,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(&client, "t", cfg).await.expect("producer");
    producer.send(keyed("k", "v")).await.expect("send");
    let err = producer.flush().await.expect_err("must fail");
    let p = partition_for_key(b"k", PARTITIONS);
    assert_eq!(
        err.to_string(),
        format!("broker returned NOT_LEADER_OR_FOLLOWER for topic 't' partition {p}")
    );
}
