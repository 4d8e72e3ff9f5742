//! Test harness: start/stop a broker in-process and talk to it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use runnel_server::{BrokerConfig, Server};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous deadline for anything that should happen "soon".
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct TestBroker {
    pub broker: std::sync::Arc<runnel_server::Broker>,
    pub addr: SocketAddr,
    /// Every Kafka listener's name and bound address (`addr` is the first one's).
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: SocketAddr,
    pub dir: TempDir,
    pub config: BrokerConfig,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), runnel_server::Error>>>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tweak).await
    }

    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        Self::try_start_with_dir(dir, tweak).await.unwrap()
    }

    /// Like [`TestBroker::start_with`], but a bind failure (a fixed port taken
    /// meanwhile by a test running in parallel) is returned, not a panic.
    pub async fn try_start_with(
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Result<TestBroker, runnel_server::Error> {
        Self::try_start_with_dir(tempfile::tempdir().unwrap(), tweak).await
    }

    async fn try_start_with_dir(
        dir: TempDir,
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Result<TestBroker, runnel_server::Error> {
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            controller_listen: "127.0.0.1:0".into(),
            auto_create_topics: false,
            ..Default::default()
        };
        tweak(&mut config);
        let server = Server::bind(config.clone()).await?;
        let addr = server.kafka_addr();
        let listeners = server.listener_addrs();
        let admin = server.admin_addr();
        let broker = server.broker().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Ok(TestBroker {
            broker,
            addr,
            listeners,
            admin,
            dir,
            config,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown_now().await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("broker did not shut down")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn restart(self) -> TestBroker {
        let config = self.config.clone();
        let dir = self.stop().await;
        TestBroker::start_in(dir, move |c| {
            let path = c.data_dir.clone();
            *c = config;
            c.data_dir = path;
        })
        .await
    }

    pub async fn connect(&self) -> Conn {
        Conn {
            stream: TcpStream::connect(self.addr).await.unwrap(),
            correlation: 0,
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub struct Conn {
    pub stream: TcpStream,
    correlation: i32,
}

impl Conn {
    /// Wraps a connected socket.
    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            stream,
            correlation: 0,
        }
    }

    /// Writes one request; returns its correlation id.
    pub async fn write<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        self.correlation += 1;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("it")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await.unwrap();
        self.correlation
    }

    /// Reads one response frame; `None` if the connection closed.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match tokio::time::timeout(DEADLINE, self.stream.read_exact(&mut size))
            .await
            .expect("no response")
        {
            Ok(_) => {}
            Err(_) => return None,
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        tokio::time::timeout(DEADLINE, self.stream.read_exact(&mut body))
            .await
            .expect("no body")
            .ok()?;
        Some(Bytes::from(body))
    }

    pub async fn read<T: Decodable + HeaderVersion>(&mut self, version: i16) -> (i32, T) {
        let mut frame = self
            .read_frame()
            .await
            .expect("connection closed instead of a response");
        let header = ResponseHeader::decode(&mut frame, T::header_version(version)).unwrap();
        let body = T::decode(&mut frame, version).unwrap();
        (header.correlation_id, body)
    }

    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation = self.write(request, version).await;
        let (got, response) = self.read::<R::Response>(version).await;
        assert_eq!(got, correlation, "responses must come back in order");
        response
    }

    /// True when the broker closes the connection (EOF or reset) within the deadline.
    pub async fn closed_by_broker(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(DEADLINE, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn record(key: Option<&str>, value: &str, timestamp: i64) -> Record {
    runnel_testkit::record(key.map(str::as_bytes), Some(value.as_bytes()), timestamp)
}

/// One uncompressed batch holding `records` (as a producer sends it).
pub fn encode_batch(records: &[Record]) -> Bytes {
    runnel_testkit::encode(records, Compression::None)
}

/// A batch of keyless values with CreateTime `timestamp`.
pub fn batch(values: &[&str], timestamp: i64) -> Bytes {
    let records: Vec<Record> = values.iter().map(|v| record(None, v, timestamp)).collect();
    encode_batch(&records)
}

/// An idempotent batch.
pub fn idempotent_batch(
    values: &[&str],
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .map(|v| record(None, v, 1_700_000_000_000))
        .collect();
    runnel_testkit::producer_batch(
        records,
        Compression::None,
        producer_id,
        epoch,
        first_sequence,
    )
}

/// Decodes fetched record bytes into (offset, value) pairs.
pub fn decode_values(mut records: Bytes) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    if records.is_empty() {
        return out;
    }
    for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
        for r in set.records {
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

pub fn create_topic_request(
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )])
}

pub async fn create_topic(conn: &mut Conn, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let response = conn
        .send(&create_topic_request(topic, partitions, configs), 7)
        .await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces with acks=-1 and returns (error code, base offset).
pub async fn produce(conn: &mut Conn, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let response = conn
        .send(&produce_request(topic, partition, -1, records), 9)
        .await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1024 * 1024)])])
}

/// Fetch v11 (by name) without waiting.
pub async fn fetch(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    offset: i64,
) -> fetch_response::PartitionData {
    let response = conn
        .send(&fetch_request(topic, partition, offset, 0, 0), 11)
        .await;
    response.responses[0].partitions[0].clone()
}

/// Simple HTTP GET over a raw socket: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Metadata for all topics without the internal ones (`__consumer_offsets`
/// exists from the first start).
pub async fn user_topics(conn: &mut Conn) -> MetadataResponse {
    let mut meta = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    meta.topics.retain(|t| !t.is_internal);
    meta
}
