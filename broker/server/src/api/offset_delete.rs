//! OffsetDelete: removes committed offsets of partitions no member
//! subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise). As in Kafka, it needs
//! DELETE on the group and READ on each topic whose offsets go.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles OffsetDelete.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let state = broker.cluster();
    let group = request.group_id.0.as_str();
    if let Err(denied) = authorize::group(broker, &state, ctx, AclOperation::Delete, group) {
        return OffsetDeleteResponse::default().with_error_code(denied.code());
    }
    // Topics without READ keep their offsets and answer TOPIC_AUTHORIZATION_FAILED.
    let refused: Vec<Option<i16>> = request
        .topics
        .iter()
        .map(|t| {
            authorize::topic(broker, &state, ctx, AclOperation::Read, t.name.0.as_str())
                .err()
                .map(|denied| denied.code())
        })
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, refused)| refused.is_none())
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    if partitions
        .iter()
        .any(|(t, p)| !broker.groups.partition_exists(t, *p))
    {
        // A topic just created through another broker must not be unknown here.
        broker.catch_up_before_unknown("OffsetDelete").await;
    }
    let results = match broker.groups.delete_offsets(group, partitions).await {
        Ok(results) => results,
        Err(err) => {
            return OffsetDeleteResponse::default().with_error_code(group_error_code(err).code())
        }
    };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .zip(refused)
        .map(|(t, refused)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match refused {
                        Some(code) => code,
                        None => results
                            .next()
                            .and_then(|r| r.err())
                            .map_or(0, |e| group_error_code(e).code()),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
