//! CreateTopics: validates names, partition counts, replication factor,
//! assignments and configs; `validate_only` creates nothing.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::blocking;
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topic_config::{self, TopicOverrides, TOPIC_CONFIGS};
use crate::topics::TopicError;

/// Handles CreateTopics.
pub async fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let result = if duplicates.contains(name.0.as_str()) {
            Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                format!("topic '{}' appears more than once in the request", name.0),
            ))
        } else {
            create_one(broker, topic, request.validate_only).await
        };
        let entry = CreatableTopicResult::default().with_name(name);
        results.push(match result {
            Ok(done) => {
                let mut entry = entry
                    .with_error_message(None)
                    .with_topic_id(done.id)
                    .with_num_partitions(done.partitions)
                    .with_replication_factor(1);
                if version >= 5 {
                    entry = entry.with_configs(Some(effective_configs(broker, &done.configs)));
                }
                entry
            }
            Err(err) => {
                let entry = entry
                    .with_error_code(err.code())
                    .with_error_message(err.message.map(StrBytes::from_string));
                if version >= 5 {
                    entry.with_configs(None)
                } else {
                    entry
                }
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create_one(
    broker: &Arc<Broker>,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<crate::topics::Created, ApiError> {
    let node = broker.node_id();
    let name = topic.name.0.to_string();
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.config.num_partitions,
            n if n <= 0 => {
                return Err(TopicError::InvalidPartitions(format!(
                    "number of partitions must be larger than 0, got {n}"
                ))
                .into())
            }
            n => n,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                "both manual replica assignments and num_partitions/replication_factor were given",
            ));
        }
        let mut indexes: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err(TopicError::InvalidReplicaAssignment(
                "partition indexes of the assignment must be 0..n without gaps".into(),
            )
            .into());
        }
        for a in &topic.assignments {
            if a.broker_ids.len() != 1 || a.broker_ids[0].0 != node {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "partition {} is assigned to brokers {:?}; this cluster has only broker {node}",
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>()
                ))
                .into());
            }
        }
        topic.assignments.len() as i32
    };
    let rf = match topic.replication_factor {
        -1 => broker.config.default_replication_factor,
        rf => rf,
    };
    if topic.assignments.is_empty() && rf != 1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "replication factor {rf} is invalid: this cluster has 1 broker, so it must be 1"
        ))
        .into());
    }
    let mut configs = TopicOverrides::new();
    for c in topic.configs {
        // A null value means "use the default", as in Kafka's AdminClient.
        if let Some(value) = c.value {
            configs.insert(c.name.to_string(), value.to_string());
        }
    }
    if name == crate::group::OFFSETS_TOPIC {
        // Its partition count and settings belong to the group coordinator,
        // which creates it on first use.
        if broker.topics.get(&name).is_some() {
            return Err(TopicError::AlreadyExists(name).into());
        }
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("{name} is an internal topic; the group coordinator creates it on first use"),
        ));
    }
    let registry = broker.topics.clone();
    blocking(move || registry.create(&name, partitions, configs, validate_only))
        .await
        .map_err(|e| ApiError::with_message(ResponseError::UnknownServerError, e))?
        .map_err(ApiError::from)
}

/// Every known config of a topic with its effective value and source (CreateTopics v5+).
fn effective_configs(broker: &Broker, overrides: &TopicOverrides) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = topic_config::effective(def, overrides, &broker.config);
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(false)
                .with_config_source(source as i8)
                .with_is_sensitive(false)
        })
        .collect()
}
