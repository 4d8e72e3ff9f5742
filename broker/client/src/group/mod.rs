//! Consumer groups: the coordinator's admin APIs (list, describe, offsets,
//! delete), the "consumer" embedded protocol, the range assignor, and a
//! group member ([`GroupConsumer`]) built on them.

mod admin;
pub mod assignor;
mod consumer;
mod membership;
pub mod protocol;

pub use admin::{
    CommittedOffset, Committer, Coordinator, GroupDescription, GroupListing, MemberDescription,
    OffsetCommit, CONSUMER_PROTOCOL_TYPE,
};
pub use consumer::{GroupConsumer, GroupConsumerConfig, GroupRecord, OffsetReset};
pub use protocol::TopicPartitions;
