//! DescribeQuorum: the metadata quorum as Kafka's KRaft reports it — the
//! controller (Raft leader), its term as the leader epoch, the committed index
//! as the high watermark, voters and observers. Asked of any broker.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;

/// The metadata log's name, as KRaft calls it.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica(id: i32, log_end_offset: i64) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_log_end_offset(log_end_offset)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

/// Handles DescribeQuorum.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: DescribeQuorumRequest,
    _version: i16,
) -> DescribeQuorumResponse {
    let q = broker.meta.quorum();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let known = t.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    if !known || p.partition_index != 0 {
                        return PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "only __cluster_metadata partition 0 is a quorum",
                            )));
                    }
                    let committed = i64::try_from(q.committed).unwrap_or(i64::MAX);
                    // This node reports its applied index; the leader also knows what each
                    // other member holds (its replication); elsewhere they are unknown (-1).
                    let end = |id: i32| {
                        let index = if id == q.node_id {
                            Some(q.applied)
                        } else {
                            q.matched.get(&id).copied()
                        };
                        index.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX))
                    };
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(q.leader.unwrap_or(-1)))
                        .with_leader_epoch(i32::try_from(q.term).unwrap_or(i32::MAX))
                        .with_high_watermark(committed)
                        .with_current_voters(q.voters.iter().map(|&v| replica(v, end(v))).collect())
                        .with_observers(q.learners.iter().map(|&v| replica(v, end(v))).collect())
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_string(t.topic_name.0.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}
