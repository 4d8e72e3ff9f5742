//! DescribeTopicPartitions (KIP-966): topics with their partitions' leader, leader epoch,
//! replicas, ISR and offline replicas, like Metadata but paginated: the requested topics (all
//! topics when none are named) in name order, at most `response_partition_limit` partitions
//! (capped at [`MAX_PARTITIONS_PER_RESPONSE`], Kafka's `max.request.partition.size.limit`)
//! starting at the request's cursor, and a `next_cursor` where the next page starts. A cursor
//! naming a topic that is not requested is INVALID_REQUEST; an unknown topic is listed with
//! UNKNOWN_TOPIC_OR_PARTITION. Runnel has no eligible leader replicas (KIP-966's ELR), so
//! those fields are null.

use std::ops::Range;
use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_meta::{AclOperation, ClusterState};

use super::metadata::partition_health;
use crate::api::{authorize, RequestContext};
use crate::broker::Broker;

/// Most partitions one response describes (Kafka's `max.request.partition.size.limit`).
pub(crate) const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

/// One page: for each topic (in order), the range of partition indexes it lists, and where
/// the next page starts (topic position, partition), if anything is left.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    ranges: Vec<(usize, Range<i32>)>,
    next: Option<(usize, i32)>,
}

/// Pages `counts` (partition count per topic, in topic order) from topic `start.0`, partition
/// `start.1`, listing at most `limit` partitions. Topics without partitions (unknown ones) cost
/// nothing and are always listed while the page has room.
fn page(counts: &[i32], start: (usize, i32), limit: usize) -> Page {
    let mut ranges = Vec::new();
    let mut left = limit;
    for (i, &count) in counts.iter().enumerate().skip(start.0) {
        let from = if i == start.0 { start.1.max(0) } else { 0 };
        let wanted = usize::try_from(count.saturating_sub(from)).unwrap_or(0);
        if wanted > 0 && left == 0 {
            return Page {
                ranges,
                next: Some((i, from)),
            };
        }
        let taken = wanted.min(left);
        let to = from + i32::try_from(taken).unwrap_or(i32::MAX);
        ranges.push((i, from..to));
        left -= taken;
        if taken < wanted {
            return Page {
                ranges,
                next: Some((i, to)),
            };
        }
    }
    Page { ranges, next: None }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Handles DescribeTopicPartitions.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let state = broker.cluster();
    let may_describe =
        |name: &str| authorize::topic(broker, &state, ctx, AclOperation::Describe, name).is_ok();
    // All topics: those the principal may DESCRIBE; named ones it may not are refused below.
    let mut names: Vec<String> = if request.topics.is_empty() {
        state
            .topics
            .keys()
            .filter(|n| may_describe(n))
            .cloned()
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let start = match &request.cursor {
        None => (0, 0),
        Some(cursor) => match names.iter().position(|n| n == cursor.topic_name.0.as_str()) {
            Some(i) => (i, cursor.partition_index),
            None => {
                return DescribeTopicPartitionsResponse::default().with_topics(vec![
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_name(Some(cursor.topic_name.clone()))
                        .with_topic_authorized_operations(i32::MIN),
                ])
            }
        },
    };
    let limit = usize::try_from(request.response_partition_limit)
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(MAX_PARTITIONS_PER_RESPONSE)
        .min(MAX_PARTITIONS_PER_RESPONSE);
    let counts: Vec<i32> = names
        .iter()
        .map(|n| {
            state
                .topics
                .get(n)
                .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
        })
        .collect();
    let page = page(&counts, start, limit);
    let topics = page
        .ranges
        .into_iter()
        .map(|(i, range)| {
            if may_describe(&names[i]) {
                describe(&state, &names[i], range)
            } else {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(name(&names[i])))
                    .with_topic_authorized_operations(i32::MIN)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            }
        })
        .collect();
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(page.next.map(|(i, partition)| {
            Cursor::default()
                .with_topic_name(name(&names[i]))
                .with_partition_index(partition)
        }))
}

fn describe(
    state: &ClusterState,
    topic: &str,
    range: Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let answer = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(name(topic)))
        .with_topic_authorized_operations(i32::MIN);
    let Some(meta) = state.topics.get(topic) else {
        return answer.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let partitions = range
        .filter_map(|index| {
            let p = meta.partitions.get(usize::try_from(index).ok()?)?;
            let (error, offline) = partition_health(state, p);
            Some(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                    .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                    .with_offline_replicas(offline),
            )
        })
        .collect();
    answer
        .with_topic_id(meta.id)
        .with_is_internal(matches!(
            topic,
            "__consumer_offsets" | "__transaction_state"
        ))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stop_at_the_limit_and_say_where_the_next_starts() {
        // Three topics of 3, 0 (unknown) and 4 partitions.
        let counts = [3, 0, 4];
        assert_eq!(
            page(&counts, (0, 0), 10),
            Page {
                ranges: vec![(0, 0..3), (1, 0..0), (2, 0..4)],
                next: None
            }
        );
        // Cut inside the last topic.
        assert_eq!(
            page(&counts, (0, 0), 5),
            Page {
                ranges: vec![(0, 0..3), (1, 0..0), (2, 0..2)],
                next: Some((2, 2))
            }
        );
        // Cut exactly at a topic boundary: the next page starts at the next topic's first.
        assert_eq!(
            page(&counts, (0, 0), 3),
            Page {
                ranges: vec![(0, 0..3), (1, 0..0)],
                next: Some((2, 0))
            }
        );
        // From a cursor inside a topic.
        assert_eq!(
            page(&counts, (2, 2), 5),
            Page {
                ranges: vec![(2, 2..4)],
                next: None
            }
        );
        // Following the cursors visits every partition exactly once.
        let mut seen = Vec::new();
        let mut at = (0, 0);
        loop {
            let p = page(&counts, at, 2);
            for (t, r) in p.ranges {
                seen.extend(r.map(|i| (t, i)));
            }
            match p.next {
                Some(next) => at = next,
                None => break,
            }
        }
        assert_eq!(
            seen,
            [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2), (2, 3)]
        );
    }
}
