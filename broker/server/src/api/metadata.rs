//! Metadata: this broker, the cluster id and controller, and topics with their
//! partitions (this node leads and is the only replica of every partition).

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::blocking;
use crate::broker::{Broker, LEADER_EPOCH};
use crate::errors::ApiError;
use crate::names::validate_topic_name;
use crate::topics::{Topic, TopicError};

/// Handles Metadata.
pub async fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(broker.node_id());
    let this = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(broker.advertised_host.clone()))
        .with_port(i32::from(broker.advertised_port));
    // v0 has no null topic list: an empty list means all topics.
    let wanted = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let allow_auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match wanted {
        None => {
            for topic in broker.topics.list() {
                topics.push(describe(&topic, node, version));
            }
        }
        Some(requested) => {
            for entry in requested {
                let name = entry.name.as_ref().map(|n| n.0.to_string());
                let found = match &name {
                    Some(name) => lookup_or_create(broker, name, allow_auto_create).await,
                    None => broker
                        .topics
                        .get_by_id(&entry.topic_id)
                        .ok_or_else(|| ApiError::from(TopicError::UnknownTopicId(entry.topic_id))),
                };
                topics.push(match found {
                    Ok(topic) => describe(&topic, node, version),
                    Err(err) => MetadataResponseTopic::default()
                        .with_error_code(err.code())
                        .with_name(entry.name.clone())
                        .with_topic_id(if name.is_none() {
                            entry.topic_id
                        } else {
                            Uuid::nil()
                        }),
                });
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![this])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
}

/// Finds a topic, auto-creating it when allowed. Shared with Produce.
pub(crate) async fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &str,
    auto_create: bool,
) -> Result<Arc<Topic>, ApiError> {
    if let Some(topic) = broker.topics.get(name) {
        return Ok(topic);
    }
    if name == crate::group::OFFSETS_TOPIC {
        // Created lazily, with its own settings, by the group coordinator;
        // asking for it by name creates it as Kafka's auto-creation does.
        broker
            .groups
            .ensure_offsets_topic()
            .await
            .map_err(|err| ApiError::new(crate::errors::group_error_code(err)))?;
        return broker
            .topics
            .get(name)
            .ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable));
    }
    if let Err(err) = validate_topic_name(name) {
        return Err(ApiError::with_message(
            ResponseError::InvalidTopicException,
            err.to_string(),
        ));
    }
    if !auto_create {
        return Err(ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic '{name}'"),
        ));
    }
    let registry = broker.topics.clone();
    let partitions = broker.config.num_partitions;
    let owned = name.to_string();
    let created = blocking(move || registry.create(&owned, partitions, Default::default(), false))
        .await
        .map_err(|e| ApiError::with_message(ResponseError::UnknownServerError, e))?;
    match created {
        Ok(_) => tracing::info!(topic = name, partitions, "auto-created topic"),
        // A concurrent request created it first: fine.
        Err(TopicError::AlreadyExists(_)) => {}
        Err(err) => return Err(err.into()),
    }
    broker.topics.get(name).ok_or_else(|| {
        ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic '{name}'"),
        )
    })
}

fn describe(topic: &Topic, node: BrokerId, _version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(matches!(
            topic.name.as_str(),
            "__consumer_offsets" | "__transaction_state"
        ))
        .with_partitions(partitions)
}
