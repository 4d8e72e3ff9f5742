//! DescribeGroups: state, protocol and members (with metadata and assignment
//! when Stable, as Kafka). An unknown group is reported Dead before v6 and
//! GROUP_ID_NOT_FOUND from v6 on. A consumer-protocol (KIP-848) group is
//! described as Kafka does for classic tools: its state, protocol type
//! "consumer", the assignor as protocol, and each member's subscription and
//! assignment in the consumer protocol's encoding.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    DescribeGroupsResponse, TopicName,
};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::consumer::{ConsumerMember, Partitions};
use crate::group::member::CONSUMER_PROTOCOL_TYPE;
use crate::group::GroupState;

/// `authorized_operations` when not requested (Kafka's INT_MIN).
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Handles DescribeGroups.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let s = StrBytes::from_string;
    let state = broker.cluster();
    let groups = request
        .groups
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
                    .with_error_message(denied.message.filter(|_| version >= 6).map(s));
            }
            match broker.groups.snapshot(id.0.as_str()) {
                Err(err) => entry
                    .with_error_code(group_error_code(err).code())
                    .with_error_message((version >= 6).then(|| s(err.to_string()))),
                Ok(None) if version >= 6 => entry
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(format!("group '{}' does not exist", id.0))))
                    .with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str())),
                Ok(None) => {
                    entry.with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str()))
                }
                Ok(Some(group)) if group.consumer().is_some() => {
                    let c = group.consumer().expect("checked by the guard");
                    let members = c
                        .members()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id.clone()))
                                .with_group_instance_id(m.instance_id.clone().map(s))
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()))
                                .with_member_metadata(subscription_bytes(m))
                                .with_member_assignment(assignment_bytes(&m.assigned))
                        })
                        .collect();
                    entry
                        .with_group_state(StrBytes::from_static_str(group.state_name()))
                        .with_protocol_type(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE))
                        .with_protocol_data(StrBytes::from_static_str(
                            c.assignor().map(|a| a.name()).unwrap_or_default(),
                        ))
                        .with_members(members)
                }
                Ok(Some(group)) => {
                    let stable = group.state() == GroupState::Stable;
                    let protocol = if stable {
                        group.protocol_name().unwrap_or_default().to_string()
                    } else {
                        String::new()
                    };
                    let members = group
                        .members()
                        .map(|m| {
                            let member = DescribedGroupMember::default()
                                .with_member_id(s(m.member_id.clone()))
                                .with_group_instance_id(m.group_instance_id.clone().map(s))
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()));
                            if stable {
                                member
                                    .with_member_metadata(
                                        m.metadata(&protocol).cloned().unwrap_or_default(),
                                    )
                                    .with_member_assignment(m.assignment.clone())
                            } else {
                                member
                            }
                        })
                        .collect();
                    entry
                        .with_group_state(StrBytes::from_static_str(group.state().as_str()))
                        .with_protocol_type(s(group
                            .protocol_type()
                            .unwrap_or_default()
                            .to_string()))
                        .with_protocol_data(s(protocol))
                        .with_members(members)
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// A member's subscription as ConsumerProtocolSubscription v0 (version prefix, then the body).
fn subscription_bytes(m: &ConsumerMember) -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(
        m.subscribed_topic_names
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    // Encoding into a BytesMut only fails for oversized fields.
    let _ = sub.encode(&mut buf, 0);
    buf.freeze()
}

/// Partitions as ConsumerProtocolAssignment v0.
fn assignment_bytes(partitions: &Partitions) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(t, ps)| {
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = assignment.encode(&mut buf, 0);
    buf.freeze()
}
