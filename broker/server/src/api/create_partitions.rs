//! CreatePartitions: grows a topic's partition count (never shrinks it)
//! through the metadata quorum, placing the new partitions automatically or
//! as assigned.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
use runnel_meta::{AclOperation, Command};

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topics::{validate_partition_count, TopicError};

/// Handles CreatePartitions.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let state = broker.cluster();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        // ALTER on the topic.
        let allowed = authorize::topic(broker, &state, ctx, AclOperation::Alter, &name);
        let result = if allowed.is_err() {
            allowed
        } else if name == crate::group::OFFSETS_TOPIC {
            // Groups are placed by hashing over the partition count: growing
            // it would move every group away from its committed offsets.
            Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                format!("the partition count of internal topic {name} cannot change"),
            ))
        } else {
            grow(
                broker,
                &name,
                topic.count,
                topic.assignments,
                request.validate_only,
            )
            .await
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

async fn grow(
    broker: &Arc<Broker>,
    name: &str,
    count: i32,
    assignments: Option<Vec<CreatePartitionsAssignment>>,
    validate_only: bool,
) -> Result<(), ApiError> {
    let state = broker.cluster();
    let Some(meta) = state.topics.get(name) else {
        return Err(TopicError::UnknownTopic(name.to_string()).into());
    };
    let current = meta.partitions.len() as i32;
    if count <= current {
        return Err(TopicError::InvalidPartitions(format!(
            "topic '{name}' has {current} partitions; the count can only be increased (requested {count})"
        ))
        .into());
    }
    validate_partition_count(count)?;
    // An empty list is "no assignment" as well as null (not every client sends null).
    let assignment: Option<Vec<Vec<i32>>> = assignments.filter(|a| !a.is_empty()).map(|a| {
        a.into_iter()
            .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
            .collect()
    });
    if let Some(assignment) = &assignment {
        if assignment.len() as i32 != count - current {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "{} assignments given for {} new partitions",
                assignment.len(),
                count - current
            ))
            .into());
        }
        if let Some(unknown) = assignment
            .iter()
            .flatten()
            .find(|b| !state.brokers.contains_key(b))
        {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "broker {unknown} is not registered"
            ))
            .into());
        }
    }
    if validate_only {
        return Ok(());
    }
    broker
        .propose(Command::CreatePartitions {
            name: name.to_string(),
            total: count,
            assignment,
        })
        .await
        .map(|_| ())
}
