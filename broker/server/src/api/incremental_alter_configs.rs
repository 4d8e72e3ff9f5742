//! IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT on a topic's
//! overrides, proposed as the topic's new complete override map to the
//! metadata quorum; every replica applies it live to its logs. SET / DELETE on
//! a BROKER resource (id or "" = cluster default) change its dynamic configs
//! (the replication throttle rates) the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::alter_configs::{
    apply_broker_configs, apply_topic_overrides, check_broker_resource, unsupported_resource,
};
use super::config_resources::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_TOPIC};
use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::config::{dynamic, BrokerConfig};
use crate::errors::ApiError;
use crate::telemetry::Subscription;
use crate::topic_config::{self, ConfigType, TopicOverrides};
use runnel_meta::{AclOperation, Command};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Handles IncrementalAlterConfigs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
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
        let name = resource.resource_name.to_string();
        let result = match resource.resource_type {
            _ if allowed.is_err() => allowed,
            RESOURCE_TOPIC => match broker
                .cluster()
                .topics
                .get(&name)
                .map(|t| t.configs.clone())
            {
                None => Err(ApiError::with_message(
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic '{name}'"),
                )),
                Some(current) => match apply_ops(current, &resource.configs, &broker.config) {
                    Ok(next) => {
                        apply_topic_overrides(broker, name, next, request.validate_only).await
                    }
                    Err(err) => Err(err),
                },
            },
            RESOURCE_BROKER => match check_broker_resource(&name) {
                Err(err) => Err(err),
                Ok(()) => {
                    let current = broker
                        .cluster()
                        .broker_configs
                        .get(&name)
                        .cloned()
                        .unwrap_or_default();
                    match apply_broker_ops(current, &resource.configs) {
                        Ok(next) => {
                            apply_broker_configs(broker, name, next, request.validate_only).await
                        }
                        Err(err) => Err(err),
                    }
                }
            },
            RESOURCE_CLIENT_METRICS => {
                let current = broker
                    .cluster()
                    .client_metrics
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                match apply_client_metrics_ops(&name, current, &resource.configs) {
                    Ok(next) if request.validate_only => {
                        let _ = next;
                        Ok(())
                    }
                    Ok(next) => broker
                        .propose(Command::SetClientMetrics {
                            name: name.clone(),
                            configs: next,
                        })
                        .await
                        .map(|_| ()),
                    Err(err) => Err(err),
                }
            }
            other => Err(unsupported_resource(other)),
        };
        let r = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match result {
            Ok(()) => r.with_error_message(None),
            Err(err) => r
                .with_error_code(err.code())
                .with_error_message(err.message.map(StrBytes::from_string)),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn invalid(message: String) -> ApiError {
    ApiError::with_message(ResponseError::InvalidConfig, message)
}

/// APPEND (`op` = [`OP_APPEND`]: items not there yet, in order) or SUBTRACT
/// (any other `op`) the comma-separated `given` items to or from the list `current`.
fn edit_list(current: &str, op: i8, given: Option<&str>) -> String {
    let split = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut items = split(current);
    let given = split(given.unwrap_or_default());
    if op == OP_APPEND {
        for g in given {
            if !items.contains(&g) {
                items.push(g);
            }
        }
    } else {
        items.retain(|i| !given.contains(i));
    }
    items.join(",")
}

/// Applies the operations to a copy of the overrides (pure; validation of the
/// final values happens when they are stored).
fn apply_ops(
    mut overrides: TopicOverrides,
    ops: &[AlterableConfig],
    broker: &BrokerConfig,
) -> Result<TopicOverrides, ApiError> {
    for op in ops {
        let key = op.name.to_string();
        let Some(def) = topic_config::find(&key) else {
            return Err(invalid(format!("unknown topic configuration {key:?}")));
        };
        let value = op.value.as_ref().map(|v| v.to_string());
        match op.config_operation {
            OP_SET => {
                let Some(value) = value else {
                    return Err(invalid(format!("SET of {key} needs a value")));
                };
                overrides.insert(key, value);
            }
            OP_DELETE => {
                overrides.remove(&key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.ty != ConfigType::List {
                    return Err(invalid(format!(
                        "APPEND and SUBTRACT apply only to list configs; {key} is not a list"
                    )));
                }
                let current = topic_config::effective(def, &overrides, broker).0;
                let list = edit_list(&current, op.config_operation, value.as_deref());
                overrides.insert(key, list);
            }
            other => {
                return Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    Ok(overrides)
}

/// The operations on a client metrics resource (KIP-714): SET, DELETE, and APPEND /
/// SUBTRACT on its lists (`metrics`, `match`); the result must parse as a subscription.
fn apply_client_metrics_ops(
    name: &str,
    mut configs: BTreeMap<String, String>,
    ops: &[AlterableConfig],
) -> Result<BTreeMap<String, String>, ApiError> {
    if name.is_empty() {
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            "a client metrics resource needs a name".to_string(),
        ));
    }
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string());
        match op.config_operation {
            OP_SET => {
                let Some(value) = value else {
                    return Err(invalid(format!("SET of {key} needs a value")));
                };
                configs.insert(key, value);
            }
            OP_DELETE => {
                configs.remove(&key);
            }
            OP_APPEND | OP_SUBTRACT if key == "metrics" || key == "match" => {
                let current = configs.get(&key).map_or("", String::as_str);
                let list = edit_list(current, op.config_operation, value.as_deref());
                configs.insert(key, list);
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err(invalid(format!(
                    "APPEND and SUBTRACT apply only to list configs; {key} is not a list"
                )))
            }
            other => {
                return Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    Subscription::parse(&configs).map_err(invalid)?;
    Ok(configs)
}

/// SET / DELETE on a broker resource's dynamic configs (pure; values are
/// validated when stored). Every key must be a dynamic broker config.
fn apply_broker_ops(
    mut configs: BTreeMap<String, String>,
    ops: &[AlterableConfig],
) -> Result<BTreeMap<String, String>, ApiError> {
    for op in ops {
        let key = op.name.to_string();
        dynamic::find_dynamic(&key).map_err(invalid)?;
        match op.config_operation {
            OP_SET => {
                let Some(value) = op.value.as_ref() else {
                    return Err(invalid(format!("SET of {key} needs a value")));
                };
                configs.insert(key, value.to_string());
            }
            OP_DELETE => {
                configs.remove(&key);
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err(invalid(format!(
                    "APPEND and SUBTRACT apply only to list configs; {key} is not a list"
                )))
            }
            other => {
                return Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::throttle;

    fn op(name: &'static str, operation: i8, value: Option<&'static str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_config_operation(operation)
            .with_value(value.map(StrBytes::from_static_str))
    }

    #[test]
    fn set_delete_append_subtract() {
        let broker = BrokerConfig::default();
        let mut start = TopicOverrides::new();
        start.insert("retention.ms".into(), "5".into());
        let next = apply_ops(
            start,
            &[
                op("retention.ms", OP_DELETE, None),
                op("segment.ms", OP_SET, Some("100")),
                op("cleanup.policy", OP_APPEND, Some("compact")),
            ],
            &broker,
        )
        .unwrap();
        assert!(!next.contains_key("retention.ms"));
        assert_eq!(next["segment.ms"], "100");
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let next = apply_ops(
            next,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            &broker,
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
    }

    #[test]
    fn append_to_non_list_and_unknown_keys_are_invalid_config() {
        let broker = BrokerConfig::default();
        let err = apply_ops(
            TopicOverrides::new(),
            &[op("retention.ms", OP_APPEND, Some("1"))],
            &broker,
        )
        .unwrap_err();
        assert_eq!(err.code(), ResponseError::InvalidConfig.code());
        let err = apply_ops(
            TopicOverrides::new(),
            &[op("nope", OP_SET, Some("1"))],
            &broker,
        )
        .unwrap_err();
        assert_eq!(err.code(), ResponseError::InvalidConfig.code());
    }

    #[test]
    fn broker_ops_set_and_delete_rates_and_refuse_static_or_unknown_keys() {
        let next = apply_broker_ops(
            BTreeMap::new(),
            &[
                op(throttle::LEADER_RATE, OP_SET, Some("100")),
                op(throttle::FOLLOWER_RATE, OP_SET, Some("200")),
                op(throttle::FOLLOWER_RATE, OP_DELETE, None),
            ],
        )
        .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[throttle::LEADER_RATE], "100");
        for (key, operation) in [("log.retention.ms", OP_SET), ("nope", OP_DELETE)] {
            let err =
                apply_broker_ops(BTreeMap::new(), &[op(key, operation, Some("1"))]).unwrap_err();
            assert_eq!(err.code(), ResponseError::InvalidConfig.code());
            assert!(err.message.unwrap().contains(key));
        }
        let err = apply_broker_ops(
            BTreeMap::new(),
            &[op(throttle::LEADER_RATE, OP_APPEND, Some("1"))],
        )
        .unwrap_err();
        assert_eq!(err.code(), ResponseError::InvalidConfig.code());
    }
}
