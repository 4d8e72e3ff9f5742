//! ConsumerGroupDescribe (KIP-848, v0): a consumer-protocol group's
//! epochs, assignor and members with their current and target assignments.
//! An unknown group, or one of the classic protocol, is GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::consumer::{Catalog, Partitions};
use crate::group::GroupError;

/// `authorized_operations` when not requested (Kafka's INT_MIN).
const OPERATIONS_OMITTED: i32 = i32::MIN;
/// `member_type` of a member that speaks the consumer protocol (v1).
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// Handles ConsumerGroupDescribe.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let s = StrBytes::from_string;
    let state = broker.cluster();
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let entry = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_OMITTED);
            // DESCRIBE on each group.
            if let Err(denied) =
                authorize::group(broker, &state, ctx, AclOperation::Describe, id.0.as_str())
            {
                return entry
                    .with_error_code(denied.code())
                    .with_error_message(denied.message.map(s));
            }
            match broker.groups.describe_consumer_group(id.0.as_str()) {
                Err(err) => {
                    let message = match err {
                        GroupError::GroupIdNotFound => format!("group '{}' does not exist", id.0),
                        GroupError::NotAConsumerGroup => {
                            format!("group '{}' is not a consumer group", id.0)
                        }
                        other => other.to_string(),
                    };
                    entry
                        .with_error_code(group_error_code(err).code())
                        .with_error_message(Some(s(message)))
                }
                Ok((group, catalog)) => {
                    let members = group
                        .members()
                        .map(|m| {
                            let target = group.target(&m.member_id).cloned().unwrap_or_default();
                            Member::default()
                                .with_member_id(s(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(s))
                                .with_rack_id(m.rack_id.clone().map(s))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .iter()
                                        .map(|t| TopicName(s(t.clone())))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.clone().map(s),
                                )
                                .with_assignment(assignment(&m.assigned, &catalog))
                                .with_target_assignment(assignment(&target, &catalog))
                                // v1 only (not advertised yet: the wire schema ends at v0).
                                .with_member_type(if version >= 1 {
                                    MEMBER_TYPE_CONSUMER
                                } else {
                                    -1
                                })
                        })
                        .collect();
                    entry
                        .with_group_state(StrBytes::from_static_str(group.state().as_str()))
                        .with_group_epoch(group.group_epoch())
                        .with_assignment_epoch(group.assignment_epoch())
                        .with_assignor_name(StrBytes::from_static_str(
                            group.assignor().map(|a| a.name()).unwrap_or_default(),
                        ))
                        .with_members(members)
                }
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn assignment(partitions: &Partitions, catalog: &Catalog) -> Assignment {
    Assignment::default().with_topic_partitions(
        partitions
            .iter()
            .filter_map(|(topic, ps)| {
                catalog.get(topic).map(|(id, _)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(ps.iter().copied().collect())
                })
            })
            .collect(),
    )
}
