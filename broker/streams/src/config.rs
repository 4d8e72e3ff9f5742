//! How an application runs: its id, the brokers, the processing guarantee and the local state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Kafka Streams' `processing.guarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Outputs and changelog writes are flushed before input offsets are committed: nothing is
    /// lost, and a crash may process some records again.
    AtLeastOnce,
    /// Outputs, changelog writes and input offsets are committed in one Kafka transaction per
    /// commit interval (KIP-447's producer per instance): after a crash each input record
    /// counts once.
    ExactlyOnce,
}

/// What to do with an input record whose key or value its serde cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDeserializationError {
    /// Stop the application with an error naming the record (Kafka Streams' default).
    Fail,
    /// Skip the record, log it and count it in `runnel_streams_skipped_records_total`.
    LogAndSkip,
}

/// The configuration of one application instance.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// The application id: the consumer group, the prefix of internal topics and of the
    /// transactional id.
    pub application_id: String,
    /// `host:port[,host:port...]` of the brokers.
    pub bootstrap_servers: String,
    /// The processing guarantee.
    pub processing_guarantee: ProcessingGuarantee,
    /// How often offsets and stores are committed (Kafka Streams: 30 s at least once,
    /// 100 ms exactly once).
    pub commit_interval: Duration,
    /// Where state stores live (`<state_dir>/<application_id>/<task>/<store>.redb`).
    pub state_dir: PathBuf,
    /// A stable name of this instance. Its transactional id and its static group membership
    /// (`group.instance.id`, KIP-345) are `<application_id>-<instance_id>`: a restarted instance
    /// fences its previous incarnation's open transaction and takes its partitions back without
    /// a rebalance. Two running instances must not share it (the default is the host name: one
    /// instance per host or pod). A stopped instance's partitions
    /// move to the others when its session times out (`session.timeout.ms`, librdkafka's
    /// default 45 s; set it in `consumer_properties`).
    pub instance_id: String,
    /// Where interactive queries and `/metrics` are served (none when `None`).
    pub http_listen: Option<SocketAddr>,
    /// The `host:port` other instances use to reach this one's HTTP endpoint (Kafka Streams'
    /// `application.server`); defaults to the address `http_listen` bound.
    pub application_server: Option<String>,
    /// Replication factor of the internal topics (-1: the broker's default).
    pub replication_factor: i32,
    /// What to do with records that cannot be deserialized.
    pub on_deserialization_error: OnDeserializationError,
    /// More librdkafka settings for every client (e.g. `security.protocol`, `sasl.*`).
    pub client_properties: Vec<(String, String)>,
    /// More librdkafka settings for the group consumer only (e.g. `session.timeout.ms`).
    pub consumer_properties: Vec<(String, String)>,
}

impl StreamsConfig {
    /// librdkafka settings shared by every client of the application.
    pub(crate) fn client_config(&self) -> rdkafka::config::ClientConfig {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client_properties {
            c.set(k, v);
        }
        c
    }

    /// A configuration with Kafka Streams' defaults for `guarantee`.
    pub fn new(
        application_id: impl Into<String>,
        bootstrap_servers: impl Into<String>,
        guarantee: ProcessingGuarantee,
    ) -> Self {
        let application_id = application_id.into();
        StreamsConfig {
            commit_interval: match guarantee {
                ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
                ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
            },
            state_dir: std::env::temp_dir().join("runnel-streams"),
            instance_id: hostname(),
            application_id,
            bootstrap_servers: bootstrap_servers.into(),
            processing_guarantee: guarantee,
            http_listen: None,
            application_server: None,
            replication_factor: -1,
            on_deserialization_error: OnDeserializationError::Fail,
            client_properties: Vec::new(),
            consumer_properties: Vec::new(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
