//! Thin async Kafka client over the kafka-protocol crate: connections with
//! API version negotiation, cluster metadata, admin operations (topics,
//! partitions, configs, offsets), a batching producer with the Java client's
//! murmur2 partitioner, fetching with a simple group-less consumer, and
//! consumer groups (coordinator admin APIs and a group member).
//!
//! Modules:
//! - `connection`: one broker connection: framing, ApiVersions negotiation,
//!   responses checked by `runnel-wire` before they are decoded ([`Connection`]).
//! - `client`: the bootstrap/metadata-aware [`Client`] and cluster metadata.
//! - `admin`: topics, partitions, configs and offsets lookups.
//! - `cluster`: quorum description, leader elections, reassignments in flight.
//! - [`reassign`]: partition reassignments and the replication throttle.
//! - [`balance`]: sans-IO placement plans (drain a broker, even out replicas and leaders).
//! - `produce`: the batching [`Producer`]; [`partitioner`]: murmur2 like the Java client.
//! - `fetch`: the group-less [`Consumer`] and record decoding (bounded).
//! - [`group`]: consumer groups: admin APIs, the member ([`GroupConsumer`]),
//!   the consumer protocol and the range assignor.
//! - `tls`: TLS for SSL/SASL_SSL listeners ([`ClientTls`]) and the plain-or-TLS stream.
//! - `error`: [`Error`] with Kafka's error names.

mod acls;
mod admin;
pub mod balance;
mod client;
mod cluster;
mod connection;
mod error;
mod fetch;
pub mod group;
pub mod partitioner;
mod produce;
mod quotas;
pub mod reassign;
mod sasl;
pub mod scram;
mod tls;
mod transactions;
mod users;

pub use acls::Acl;
pub use admin::{AlterConfigOp, ConfigEntry, CreatedTopic, NewTopic, OffsetSpec, PartitionOffset};
pub use client::{
    topic_id_string, BrokerMetadata, Client, ClientConfig, ClusterMetadata, PartitionMetadata,
    TopicMetadata,
};
pub use cluster::{
    ElectionOutcome, ElectionType, OngoingReassignment, QuorumInfo, QuorumMember, METADATA_TOPIC,
};
pub use connection::Connection;
pub use error::{Error, KafkaErrorName, Result};
pub use fetch::{
    decode_records, Consumer, ConsumerRecord, FetchOptions, FetchedPartition, StartAt,
};
pub use group::{
    CommittedOffset, Committer, GroupConsumer, GroupConsumerConfig, GroupDescription, GroupListing,
    GroupRecord, MemberDescription, OffsetCommit, OffsetReset, TopicPartitions,
};
pub use kafka_protocol::records::TimestampType;
pub use kafka_protocol::ResponseError;
pub use produce::{Acks, Producer, ProducerConfig, ProducerRecord};
pub use quotas::{EntityQuotas, QuotaEntity, QuotaOp};
pub use sasl::SaslCredentials;
pub use tls::{ClientTls, TlsFiles};
pub use transactions::{TransactionDescription, TransactionListing};
pub use users::{ScramChange, ScramUser};
