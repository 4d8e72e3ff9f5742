//! CreatePartitions: grows a topic's partition count (never shrinks it).

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::blocking;
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topics::TopicError;

/// Handles CreatePartitions.
pub async fn handle(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let node = broker.node_id();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let bad_assignment = topic.assignments.as_ref().and_then(|assignments| {
            assignments
                .iter()
                .find(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node)
                .map(|a| {
                    TopicError::InvalidReplicaAssignment(format!(
                        "assignment to brokers {:?}: this cluster has only broker {node}",
                        a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>()
                    ))
                })
        });
        let result = match bad_assignment {
            Some(err) => Err(ApiError::from(err)),
            // Groups are placed by hashing over the partition count: growing
            // it would move every group away from its committed offsets.
            None if name == crate::group::OFFSETS_TOPIC => Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                format!("the partition count of internal topic {name} cannot change"),
            )),
            None => {
                let registry = broker.topics.clone();
                let (count, validate_only) = (topic.count, request.validate_only);
                match blocking(move || registry.add_partitions(&name, count, validate_only)).await {
                    Ok(r) => r.map_err(ApiError::from),
                    Err(e) => Err(ApiError::with_message(ResponseError::UnknownServerError, e)),
                }
            }
        };
        let entry = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match result {
            Ok(()) => entry.with_error_message(None),
            Err(err) => entry
                .with_error_code(err.code())
                .with_error_message(err.message.map(StrBytes::from_string)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
