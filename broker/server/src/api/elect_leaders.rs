//! ElectLeaders: preferred (move leadership back to the first replica when it
//! is in sync) or unclean (elect any live replica of an offline partition)
//! elections, one `ElectLeader` command per partition through the quorum.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_meta::{Applied, Command, Election};

use crate::broker::Broker;
use crate::errors::ApiError;

/// Handles ElectLeaders. A null partition list means every partition (Kafka
/// allows that for preferred elections).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // v0 has no election type: preferred.
    let election = if version >= 1 && request.election_type == 1 {
        Election::Unclean
    } else {
        Election::Preferred
    };
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(list) => list
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => broker
            .cluster()
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
            .collect(),
    };
    let mut results = Vec::new();
    for (topic, partitions) in wanted {
        let mut out = Vec::new();
        for partition in partitions {
            let outcome = broker
                .meta
                .propose(Command::ElectLeader {
                    topic: topic.clone(),
                    partition,
                    election,
                })
                .await;
            let (code, message) = match outcome {
                Ok(Applied::NoChange) => (
                    ResponseError::ElectionNotNeeded.code(),
                    Some("the wanted leader already leads".to_string()),
                ),
                Ok(_) => (0, None),
                Err(e) => {
                    let e = ApiError::from(e);
                    let code = if e.code == ResponseError::EligibleLeadersNotAvailable
                        && election == Election::Preferred
                    {
                        ResponseError::PreferredLeaderNotAvailable
                    } else {
                        e.code
                    };
                    (code.code(), e.message)
                }
            };
            out.push(
                PartitionResult::default()
                    .with_partition_id(partition)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string)),
            );
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(out),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}
