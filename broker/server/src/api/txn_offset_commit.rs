//! TxnOffsetCommit: a transactional producer commits a consumer group's
//! offsets inside its transaction (consume-transform-produce); they are
//! stored with the transaction and take effect only when its commit marker
//! reaches the group's `__consumer_offsets` partition.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::commit_entry;
use crate::broker::Broker;
use crate::group::coordinator::CommitEntry;

/// Handles TxnOffsetCommit.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
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
    // v3+ (KIP-447) names the member; older clients commit without a generation.
    let generation = if version >= 3 {
        request.generation_id
    } else {
        -1
    };
    let staged = broker.groups.txn_commit(
        request.group_id.0.as_str(),
        request.producer_id.0,
        request.producer_epoch,
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        generation,
        entries,
    );
    let count = request.topics.iter().map(|t| t.partitions.len()).sum();
    let mut codes = super::offset_commit::commit_codes(staged, count)
        .await
        .into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
