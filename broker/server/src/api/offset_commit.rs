//! OffsetCommit: validated and appended to `__consumer_offsets` in request
//! order; answered only after the records are fsynced (acks=all semantics).
//! Generation -1 commits are allowed for an empty (or unknown) group:
//! standalone consumers that only store offsets.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::coordinator::CommitEntry;

/// When the request names a partition this broker's metadata does not have, waits for the
/// metadata to catch up with the quorum first (a client may commit right after creating the
/// topic through another broker: librdkafka's test 0140).
pub(crate) async fn see_requested_partitions(broker: &Arc<Broker>, request: &OffsetCommitRequest) {
    let unknown = request.topics.iter().any(|t| {
        t.partitions.iter().any(|p| {
            !broker
                .groups
                .partition_exists(t.name.0.as_str(), p.partition_index)
        })
    });
    if unknown {
        broker.catch_up_before_unknown("OffsetCommit").await;
    }
}

/// Runs the commit now; the returned future waits for durability and yields the response.
pub(crate) fn start(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    _version: i16,
) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                commit_entry(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref(),
                )
            })
        })
        .collect();
    let staged = broker.groups.commit(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id_or_member_epoch,
        entries,
    );
    async move {
        let count = request.topics.iter().map(|t| t.partitions.len()).sum();
        let mut codes = commit_codes(staged, count).await.into_iter();
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(codes.next().unwrap_or(0))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }
}

/// One error code per committed partition, in request order, once the commit
/// (OffsetCommit or TxnOffsetCommit) is durable; a refusal of the whole
/// commit gives every one of the `count` partitions its code.
pub(crate) async fn commit_codes(
    staged: Result<crate::group::store::CommitWait, crate::group::GroupError>,
    count: usize,
) -> Vec<i16> {
    match staged {
        Ok(wait) => wait
            .finish()
            .await
            .into_iter()
            .map(|r| r.err().map_or(0, |e| group_error_code(e).code()))
            .collect(),
        Err(err) => vec![group_error_code(err).code(); count],
    }
}

/// One partition's offset as the coordinator stores it (OffsetCommit and TxnOffsetCommit).
pub(super) fn commit_entry(
    topic: &TopicName,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&StrBytes>,
) -> CommitEntry {
    CommitEntry {
        topic: topic.0.to_string(),
        partition,
        offset,
        leader_epoch,
        metadata: metadata.map(|m| m.to_string()),
    }
}
