//! OffsetFetch: committed offsets with their metadata; -1 for partitions
//! without a commit. v1-7 ask for one group, v8+ for several; a null topic
//! list (v2+) means every committed offset of the group.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::state::CommittedOffset;
use crate::group::GroupError;

type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn fetch(
    broker: &Broker,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(&str, i32)>,
) -> Result<Fetched, GroupError> {
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    broker.groups.fetch_offsets(group_id, topics, member)
}

fn values(o: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, StrBytes::from_string(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

/// Handles OffsetFetch.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // v7+: an offset an open transaction is about to change is not answered
    // (UNSTABLE_OFFSET_COMMIT, retriable) for clients that ask for stable ones.
    let require_stable = version >= 7 && request.require_stable;
    // (offset, leader epoch, metadata, error code) of one partition.
    let answer = |group: &str, topic: &str, p: i32, o: Option<CommittedOffset>| {
        let (offset, epoch, meta) = values(o);
        if require_stable && broker.groups.has_unstable_offset(group, topic, p) {
            (-1, epoch, meta, ResponseError::UnstableOffsetCommit.code())
        } else {
            (offset, epoch, meta, 0)
        }
    };
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let entry = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                // v9 (KIP-848): a member of a consumer-protocol group names itself.
                let member = g.member_id.as_ref().map(|m| (m.as_str(), g.member_epoch));
                let group = g.group_id.0.to_string();
                match fetch(broker, g.group_id.0.as_str(), topics, member) {
                    Ok(found) => entry.with_topics(
                        found
                            .into_iter()
                            .map(|(topic, partitions)| {
                                let parts = partitions
                                    .into_iter()
                                    .map(|(p, o)| {
                                        let (offset, epoch, meta, code) =
                                            answer(&group, &topic, p, o);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(meta))
                                            .with_error_code(code)
                                    })
                                    .collect();
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(parts)
                            })
                            .collect(),
                    ),
                    Err(err) => entry.with_error_code(group_error_code(err).code()),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let group = request.group_id.0.to_string();
    match fetch(broker, request.group_id.0.as_str(), requested, None) {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(topic, partitions)| {
                    let parts = partitions
                        .into_iter()
                        .map(|(p, o)| {
                            let (offset, epoch, meta, code) = answer(&group, &topic, p, o);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(meta))
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(parts)
                })
                .collect(),
        ),
        Err(err) => {
            let code = group_error_code(err).code();
            if version >= 2 {
                OffsetFetchResponse::default().with_error_code(code)
            } else {
                // v1 has no top-level error: every requested partition carries it.
                let topics = request
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partition_indexes
                                    .into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_metadata(Some(StrBytes::default()))
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponse::default().with_topics(topics)
            }
        }
    }
}
