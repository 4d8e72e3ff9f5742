//! ListPartitionReassignments: the reassignments in progress (replicas,
//! adding, removing), from the applied metadata.

use std::sync::Arc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().map(|&b| BrokerId(b)).collect()
}

/// Handles ListPartitionReassignments (null topics = every topic).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let state = broker.cluster();
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(list) => list
            .into_iter()
            .map(|t| (t.name.0.to_string(), Some(t.partition_indexes)))
            .collect(),
        None => state
            .topics
            .keys()
            .map(|name| (name.clone(), None))
            .collect(),
    };
    let mut topics = Vec::new();
    for (name, only) in wanted {
        let Some(topic) = state.topics.get(&name) else {
            continue;
        };
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                let index = *i as i32;
                (!p.adding.is_empty() || !p.removing.is_empty())
                    && only.as_ref().is_none_or(|list| list.contains(&index))
            })
            .map(|(i, p)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(i as i32)
                    .with_replicas(ids(&p.replicas))
                    .with_adding_replicas(ids(&p.adding))
                    .with_removing_replicas(ids(&p.removing))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
