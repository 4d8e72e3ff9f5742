//! AlterPartitionReassignments: start (target replica list) or cancel (null
//! list) a partition reassignment through the quorum. The new replicas catch
//! up as followers; the controller completes the move once they are all in
//! the ISR (see runnel-meta's AlterIsr).

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_meta::Command;

use crate::broker::Broker;
use crate::errors::ApiError;

/// Handles AlterPartitionReassignments.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    // Before v1 a reassignment may not change the replica count (KIP-860).
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let mut responses = Vec::new();
    for t in request.topics {
        let topic = t.name.0.to_string();
        let mut out = Vec::new();
        for p in t.partitions {
            let partition = p.partition_index;
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.iter().map(|b| b.0).collect());
            let current = broker.partition_meta(&topic, partition);
            let refused = match (&current, &target) {
                (None, _) => Some(ApiError::with_message(
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown partition {topic}-{partition}"),
                )),
                (Some(meta), Some(target))
                    if !allow_rf_change
                        && target.len() != meta.replicas.len() - meta.adding.len() =>
                {
                    Some(ApiError::with_message(
                        ResponseError::InvalidReplicationFactor,
                        "the reassignment changes the replica count, which this request version \
                         does not allow",
                    ))
                }
                _ => None,
            };
            let result = match refused {
                Some(e) => Err(e),
                None => broker
                    .meta
                    .propose(Command::Reassign {
                        topic: topic.clone(),
                        partition,
                        target,
                    })
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from),
            };
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err(e) => (e.code(), e.message),
            };
            out.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(partition)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string)),
            );
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(out),
        );
    }
    let mut response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        response.allow_replication_factor_change = request.allow_replication_factor_change;
    }
    response
}
