//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the leader's
//! epoch cache. Followers truncate a diverged tail with it after a leader
//! change, and clients (librdkafka, KIP-320) check their position with it.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;

/// Answers each partition: for the latest epoch, the log end offset; for an
/// older one, the start of the next higher epoch; UNDEFINED (-1, -1) when the
/// epoch is unknown. Only the leader answers, after the `current_leader_epoch` check.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
    version: i16,
) -> OffsetForLeaderEpochResponse {
    // A follower (replica id >= 0, v3+) needs CLUSTER_ACTION, a consumer DESCRIBE on the topic.
    let state = broker.cluster();
    let follower = version >= 3 && request.replica_id.0 >= 0;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let denied = if follower {
                authorize::cluster(broker, &state, ctx, AclOperation::ClusterAction)
            } else {
                authorize::topic(
                    broker,
                    &state,
                    ctx,
                    AclOperation::Describe,
                    t.topic.0.as_str(),
                )
            }
            .err();
            let topic = broker.topics.get(t.topic.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    if let Some(denied) = &denied {
                        return answer.with_error_code(denied.code());
                    }
                    let Some((topic, partition)) = topic
                        .as_ref()
                        .and_then(|topic| Some((topic, topic.partition(p.partition)?)))
                    else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let replica = broker
                        .replicas
                        .replica(&topic.name, p.partition, &partition.log);
                    if let Err(err) = replica.check_leader(p.current_leader_epoch) {
                        return answer.with_error_code(err.code());
                    }
                    match partition.log.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
                        None => answer,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
