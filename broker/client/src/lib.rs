//! Thin async Kafka client over the kafka-protocol crate: connections with
//! API version negotiation, cluster metadata, admin operations (topics,
//! partitions, configs, offsets), a batching producer with the Java client's
//! murmur2 partitioner, fetching with a simple group-less consumer, and
//! consumer groups (coordinator admin APIs and a group member).

mod admin;
mod client;
mod cluster;
mod connection;
mod error;
mod fetch;
pub mod group;
pub mod partitioner;
mod produce;
pub mod reassign;

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
