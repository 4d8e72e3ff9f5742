//! AlterConfigs: replaces all overrides of a topic (keys not given return to
//! their defaults) through the metadata quorum; every replica applies them
//! live to its logs. Broker resources are refused: broker configs are static.

use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::Command;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topic_config::TopicOverrides;
use crate::topics::{TopicError, TopicRegistry};

/// Handles AlterConfigs.
pub async fn handle(
    broker: &Arc<Broker>,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let result = match resource.resource_type {
            RESOURCE_TOPIC => {
                let overrides: TopicOverrides = resource
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                apply_topic_overrides(
                    broker,
                    resource.resource_name.to_string(),
                    overrides,
                    request.validate_only,
                )
                .await
            }
            other => Err(unsupported_resource(other)),
        };
        responses.push(response(
            resource.resource_type,
            resource.resource_name,
            result,
        ));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Validates, stores and applies a topic's complete override set.
pub(crate) async fn apply_topic_overrides(
    broker: &Arc<Broker>,
    topic: String,
    overrides: TopicOverrides,
    validate_only: bool,
) -> Result<(), ApiError> {
    TopicRegistry::validate_overrides(&overrides)?;
    if !broker.cluster().topics.contains_key(&topic) {
        return Err(TopicError::UnknownTopic(topic).into());
    }
    if validate_only {
        return Ok(());
    }
    // Every replica applies the new configs to its open logs when it syncs.
    broker
        .propose(Command::SetTopicConfigs {
            name: topic,
            configs: overrides,
        })
        .await
        .map(|_| ())
}

/// The error for resources other than topics.
pub(crate) fn unsupported_resource(resource_type: i8) -> ApiError {
    if resource_type == RESOURCE_BROKER {
        ApiError::with_message(
            ResponseError::InvalidRequest,
            "broker configs are static: set them in the config file, RUNNEL_* variables or flags",
        )
    } else {
        ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("unsupported resource type {resource_type}"),
        )
    }
}

fn response(
    resource_type: i8,
    name: StrBytes,
    result: Result<(), ApiError>,
) -> AlterConfigsResourceResponse {
    let r = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    match result {
        Ok(()) => r.with_error_message(None),
        Err(err) => r
            .with_error_code(err.code())
            .with_error_message(err.message.map(StrBytes::from_string)),
    }
}
