//! ConsumerGroupHeartbeat (KIP-848, v0–v1): a member joins, heartbeats,
//! reports what it owns and gets its assignment; the broker runs the
//! assignor. Malformed requests are refused with INVALID_REQUEST and
//! Kafka's messages before the group is touched.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::consumer::{Catalog, Heartbeat, Partitions, LEAVE_EPOCH, STATIC_LEAVE_EPOCH};

/// Handles ConsumerGroupHeartbeat.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    if let Err(message) = validate(&request, version) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str(message)));
    }
    let group_id = request.group_id.0.to_string();
    // The group's record needs __consumer_offsets; on failure the append
    // answers COORDINATOR_NOT_AVAILABLE.
    let _ = broker.ensure_offsets_topic().await;
    let catalog = broker.groups.topic_catalog();
    let owned = request
        .topic_partitions
        .as_ref()
        .map(|tps| from_wire(tps.iter().map(|t| (t.topic_id, &t.partitions)), &catalog));
    let req = Heartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.to_string()),
        rack_id: request.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: if version >= 1 {
            request.subscribed_topic_regex.map(|r| r.to_string())
        } else {
            None
        },
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
    };
    match broker
        .groups
        .consumer_heartbeat(&group_id, req, &catalog)
        .await
    {
        Ok(reply) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(reply.heartbeat_interval_ms)
            .with_assignment(
                reply
                    .assignment
                    .map(|a| Assignment::default().with_topic_partitions(to_wire(&a, &catalog))),
            ),
        Err(err) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(group_error_code(err).code())
            .with_error_message(Some(StrBytes::from_string(err.to_string()))),
    }
}

/// Kafka's checks of the request's shape (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
fn validate(r: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), &'static str> {
    if r.group_id.0.is_empty() {
        return Err("GroupId can't be empty.");
    }
    if r.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return Err("InstanceId can't be empty.");
    }
    if r.rack_id.as_ref().is_some_and(|i| i.is_empty()) {
        return Err("RackId can't be empty.");
    }
    if version >= 1 && r.member_id.is_empty() {
        return Err("MemberId can't be empty.");
    }
    if version == 0 && r.member_id.is_empty() && r.member_epoch != 0 {
        return Err("MemberId can't be empty.");
    }
    match r.member_epoch {
        0 => {
            if r.rebalance_timeout_ms == -1 {
                return Err("RebalanceTimeoutMs must be provided in first request.");
            }
            if r.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return Err("TopicPartitions must be empty when (re-)joining.");
            }
            let regex = version >= 1 && r.subscribed_topic_regex.is_some();
            if r.subscribed_topic_names.is_none() && !regex {
                return Err(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        STATIC_LEAVE_EPOCH if r.instance_id.is_none() => return Err("InstanceId can't be null."),
        STATIC_LEAVE_EPOCH | LEAVE_EPOCH => {}
        e if e < STATIC_LEAVE_EPOCH => return Err("MemberEpoch is invalid."),
        _ => {}
    }
    Ok(())
}

/// Topic ids → names (partitions of unknown topics are left out).
fn from_wire<'a>(
    topics: impl Iterator<Item = (uuid::Uuid, &'a Vec<i32>)>,
    catalog: &Catalog,
) -> Partitions {
    let by_id: std::collections::HashMap<uuid::Uuid, &String> =
        catalog.iter().map(|(name, (id, _))| (*id, name)).collect();
    let mut out = Partitions::new();
    for (id, partitions) in topics {
        if let Some(name) = by_id.get(&id) {
            out.entry((*name).clone())
                .or_default()
                .extend(partitions.iter().copied());
        }
    }
    out
}

/// Names → topic ids (topics gone from the catalog are left out).
fn to_wire(partitions: &Partitions, catalog: &Catalog) -> Vec<TopicPartitions> {
    partitions
        .iter()
        .filter_map(|(topic, ps)| {
            catalog.get(topic).map(|(id, _)| {
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_partitions(ps.iter().copied().collect())
            })
        })
        .collect()
}
