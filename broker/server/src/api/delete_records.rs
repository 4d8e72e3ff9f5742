//! DeleteRecords: moves a partition's log start offset forward; answered by
//! the partition's leader only (NOT_LEADER_OR_FOLLOWER elsewhere).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::blocking;
use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;

/// Handles DeleteRecords; offset -1 means the high watermark.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let state = broker.cluster();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = broker.topics.get(t.name.0.as_str());
        // DELETE on the topic.
        let denied =
            authorize::topic(broker, &state, ctx, AclOperation::Delete, t.name.0.as_str()).err();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let entry =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            if let Some(denied) = &denied {
                partitions.push(entry.with_error_code(denied.code()).with_low_watermark(-1));
                continue;
            }
            if let Err(err) = broker.check_leader(t.name.0.as_str(), p.partition_index, -1) {
                partitions.push(entry.with_error_code(err.code()).with_low_watermark(-1));
                continue;
            }
            let Some(partition) = topic
                .as_ref()
                .and_then(|topic| topic.partition(p.partition_index))
            else {
                // Leader per the metadata, but the log is not open yet.
                partitions.push(
                    entry
                        .with_error_code(ResponseError::NotLeaderOrFollower.code())
                        .with_low_watermark(-1),
                );
                continue;
            };
            let log = partition.log.clone();
            let offset = p.offset;
            let result = blocking(move || {
                let target = if offset == -1 {
                    log.log_end_offset()
                } else {
                    offset
                };
                if target < 0 {
                    return Err(ApiError::with_message(
                        ResponseError::OffsetOutOfRange,
                        format!("offset {offset}"),
                    ));
                }
                log.delete_records_before(target).map_err(ApiError::from)
            })
            .await
            .unwrap_or_else(|e| Err(ApiError::with_message(ResponseError::UnknownServerError, e)));
            partitions.push(match result {
                Ok(low) => entry.with_low_watermark(low),
                Err(err) => entry.with_error_code(err.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
