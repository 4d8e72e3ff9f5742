//! DescribeConfigs: topic configs with values and sources (override, broker
//! setting, built-in default), synonyms and documentation; broker configs
//! (read-only).

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::config::{BrokerConfig, KeyKind, KEYS};
use crate::errors::ApiError;
use crate::topic_config::{self, ConfigSource, ConfigType, TOPIC_CONFIGS};

/// Kafka's resource type code for topics.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type code for brokers.
pub const RESOURCE_BROKER: i8 = 4;

/// Handles DescribeConfigs.
pub async fn handle(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let options = Options {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation && version >= 3,
        types: version >= 3,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let wanted = |name: &str| {
                keys.as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k == name))
            };
            let name = resource.resource_name.to_string();
            let configs = match resource.resource_type {
                RESOURCE_TOPIC => topic_configs(broker, &name, &wanted, &options),
                RESOURCE_BROKER => broker_configs(broker, &name, &wanted, &options),
                other => Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("unsupported resource type {other}"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match configs {
                Ok(configs) => result.with_error_message(None).with_configs(configs),
                Err(err) => result
                    .with_error_code(err.code())
                    .with_error_message(err.message.map(StrBytes::from_string)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

struct Options {
    synonyms: bool,
    documentation: bool,
    types: bool,
}

fn entry(
    name: &str,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(read_only)
        .with_config_source(source as i8)
        .with_is_sensitive(false)
        .with_documentation(None)
        .with_config_type(0)
        .with_synonyms(Vec::new())
}

fn synonym(name: &str, value: String, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_source(source as i8)
}

fn topic_configs(
    broker: &Broker,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    options: &Options,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let topic = broker.topics.get(name).ok_or_else(|| {
        ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic '{name}'"),
        )
    })?;
    let overrides = topic.overrides();
    let config: &BrokerConfig = &broker.config;
    Ok(TOPIC_CONFIGS
        .iter()
        .filter(|def| wanted(def.name))
        .map(|def| {
            let (value, source) = topic_config::effective(def, &overrides, config);
            let mut e = entry(def.name, Some(value), source, false);
            if options.synonyms {
                let mut synonyms = Vec::new();
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push(synonym(def.name, v.clone(), ConfigSource::DynamicTopic));
                }
                let default = def.default_value(config);
                match def.broker_synonym {
                    Some((kafka_key, _)) => {
                        let src = def.default_source(config);
                        synonyms.push(synonym(kafka_key, default, src));
                    }
                    None => synonyms.push(synonym(def.name, default, ConfigSource::Default)),
                }
                e = e.with_synonyms(synonyms);
            }
            if options.types {
                e = e.with_config_type(def.ty as i8);
            }
            if options.documentation {
                e = e.with_documentation(Some(StrBytes::from_static_str(def.doc)));
            }
            e
        })
        .collect())
}

fn broker_configs(
    broker: &Broker,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    options: &Options,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    if !name.is_empty() && name != broker.node_id().to_string() {
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id {name}; this is broker {}",
                broker.node_id()
            ),
        ));
    }
    let defaults = BrokerConfig::default();
    Ok(KEYS
        .iter()
        .filter(|(key, _, _)| wanted(key))
        .map(|(key, kind, doc)| {
            let value = broker.config.value_of(key);
            let source = if value == defaults.value_of(key) {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            let mut e = entry(key, value.clone(), source, true);
            if options.synonyms {
                if let Some(v) = value {
                    e = e.with_synonyms(vec![synonym(key, v, source)]);
                }
            }
            if options.types {
                let ty = match kind {
                    KeyKind::Str => ConfigType::String,
                    KeyKind::Int => ConfigType::Long,
                    KeyKind::Bool => ConfigType::Boolean,
                };
                e = e.with_config_type(ty as i8);
            }
            if options.documentation {
                e = e.with_documentation(Some(StrBytes::from_static_str(doc)));
            }
            e
        })
        .collect())
}
