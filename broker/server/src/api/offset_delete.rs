//! OffsetDelete: removes committed offsets of partitions no member
//! subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles OffsetDelete.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
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
    let results = match broker
        .groups
        .delete_offsets(request.group_id.0.as_str(), partitions)
        .await
    {
        Ok(results) => results,
        Err(err) => {
            return OffsetDeleteResponse::default().with_error_code(group_error_code(err).code())
        }
    };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = results
                        .next()
                        .and_then(|r| r.err())
                        .map_or(0, |e| group_error_code(e).code());
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
