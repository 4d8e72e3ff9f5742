//! AlterConfigs: replaces all overrides of a topic (keys not given return to
//! their defaults) through the metadata quorum; every replica applies them
//! live to its logs. On a BROKER resource (a broker id, or "" for the
//! cluster-wide default) it replaces the dynamic broker configs (the
//! replication throttle rates); every other broker config is static.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::{AclOperation, Command};

use super::config_resources::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::replica::throttle;
use crate::topic_config::TopicOverrides;
use crate::topics::{TopicError, TopicRegistry};

/// The resource's configs that have a value (AlterConfigs replaces the whole
/// set: a config left out or without a value returns to its default).
fn given_values(
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
) -> BTreeMap<String, String> {
    resource
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect()
}

/// Handles AlterConfigs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let state = broker.cluster();
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let allowed = authorize::config_resource(
            broker,
            &state,
            ctx,
            AclOperation::AlterConfigs,
            resource.resource_type,
            resource.resource_name.as_str(),
        );
        let result = match resource.resource_type {
            _ if allowed.is_err() => allowed,
            RESOURCE_TOPIC => {
                let overrides: TopicOverrides = given_values(&resource);
                apply_topic_overrides(
                    broker,
                    resource.resource_name.to_string(),
                    overrides,
                    request.validate_only,
                )
                .await
            }
            RESOURCE_BROKER => {
                let configs = given_values(&resource);
                apply_broker_configs(
                    broker,
                    resource.resource_name.to_string(),
                    configs,
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

/// Checks a BROKER resource name: a broker id, or "" for the cluster default.
pub(crate) fn check_broker_resource(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.parse::<i32>().is_ok_and(|id| id >= 0) {
        Ok(())
    } else {
        Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("broker resource name must be a broker id or empty (the cluster default), got {name:?}"),
        ))
    }
}

/// Validates and stores the complete dynamic config map of a broker resource;
/// nothing is stored when any entry is invalid.
pub(crate) async fn apply_broker_configs(
    broker: &Arc<Broker>,
    resource: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    check_broker_resource(&resource)?;
    for (key, value) in &configs {
        throttle::validate_broker_config(key, value)
            .map_err(|m| ApiError::with_message(ResponseError::InvalidConfig, m))?;
    }
    if validate_only {
        return Ok(());
    }
    broker
        .propose(Command::SetBrokerConfigs { resource, configs })
        .await
        .map(|_| ())
}

/// The error for resources other than topics and brokers.
pub(crate) fn unsupported_resource(resource_type: i8) -> ApiError {
    ApiError::with_message(
        ResponseError::InvalidRequest,
        format!("unsupported resource type {resource_type}"),
    )
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
