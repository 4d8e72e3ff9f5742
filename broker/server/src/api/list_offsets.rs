//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by timestamp,
//! answered by the partition's leader only (NOT_LEADER_OR_FOLLOWER elsewhere;
//! FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a stale or future epoch).
//! "Latest" is the high watermark, or for `isolation_level=read_committed`
//! (v2+) the last stable offset (the first offset of an undecided transaction).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use runnel_log::Log;
use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;

/// `timestamp` value asking for the log end offset.
pub(crate) const LATEST: i64 = -1;
/// `timestamp` value asking for the log start offset.
pub(crate) const EARLIEST: i64 = -2;
/// `timestamp` value asking for the record with the largest timestamp.
pub(crate) const MAX_TIMESTAMP: i64 = -3;
/// `timestamp` value asking for the earliest local offset (same as earliest here).
pub(crate) const EARLIEST_LOCAL: i64 = -4;

/// Handles ListOffsets.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let request_isolation = request.isolation_level;
    let state = broker.cluster();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            // DESCRIBE on the topic.
            let denied = authorize::topic(
                broker,
                &state,
                ctx,
                AclOperation::Describe,
                t.name.0.as_str(),
            )
            .err();
            let topic = broker.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let failed = |code: i16| {
                        response
                            .clone()
                            .with_error_code(code)
                            .with_timestamp(-1)
                            .with_offset(-1)
                    };
                    if let Some(denied) = &denied {
                        return failed(denied.code());
                    }
                    if let Err(err) = broker.check_leader(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.current_leader_epoch,
                    ) {
                        return failed(err.code());
                    }
                    let log = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index));
                    let Some(partition) = log else {
                        // Leader per the metadata, but the log is not open yet.
                        return failed(ResponseError::NotLeaderOrFollower.code());
                    };
                    // The replica manager gives the partition its role (and the
                    // high watermark that goes with it) before we answer from it.
                    let replica = broker.replicas.replica(
                        t.name.0.as_str(),
                        p.partition_index,
                        &partition.log,
                    );
                    let epoch = match replica.check_leader(p.current_leader_epoch) {
                        Ok(epoch) => epoch,
                        Err(err) => return failed(err.code()),
                    };
                    let read_committed = version >= 2 && request_isolation == 1;
                    match lookup(&partition.log, p.timestamp, read_committed) {
                        Ok((timestamp, offset)) => response
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            .with_leader_epoch(if offset >= 0 && version >= 4 {
                                epoch
                            } else {
                                -1
                            }),
                        Err(err) => response
                            .with_error_code(err.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Resolves one query to `(timestamp, offset)`; `(-1, -1)` when nothing matches.
fn lookup(log: &Log, timestamp: i64, read_committed: bool) -> Result<(i64, i64), ApiError> {
    match timestamp {
        // Kafka's "latest" for consumers is the high watermark: records above
        // it are not committed to the ISR yet and a fetch would not return them.
        LATEST if read_committed => Ok((-1, log.last_stable_offset())),
        LATEST => Ok((-1, log.high_watermark())),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, log.log_start_offset())),
        MAX_TIMESTAMP => Ok(log
            .max_timestamp()?
            .map_or((-1, -1), |(ts, offset)| (ts, offset))),
        ts if ts >= 0 => Ok(log
            .offset_for_timestamp(ts)?
            .map_or((-1, -1), |(offset, ts)| (ts, offset))),
        other => Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("unsupported ListOffsets timestamp {other}"),
        )),
    }
}
