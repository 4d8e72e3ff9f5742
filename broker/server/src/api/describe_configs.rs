//! DescribeConfigs: topic configs with values and sources (override, broker
//! setting, built-in default), synonyms and documentation; broker configs
//! (static ones read-only, under Kafka's names where Kafka has an
//! equivalent; the dynamic replication throttle rates with their per-broker
//! or cluster-default source).

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
use crate::replica::throttle;
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

/// Kafka's name for each Runnel broker key that has a Kafka equivalent
/// (`node_id` is both `node.id` and `broker.id`, as in KRaft brokers). Keys
/// without one (admin listener, cluster id, flush-on-ack) keep Runnel's name.
pub const KAFKA_BROKER_NAMES: &[(&str, &str)] = &[
    ("node_id", "node.id"),
    ("node_id", "broker.id"),
    ("data_dir", "log.dirs"),
    ("listen", "listeners"),
    ("advertised_address", "advertised.listeners"),
    ("auto_create_topics", "auto.create.topics.enable"),
    ("num_partitions", "num.partitions"),
    ("default_replication_factor", "default.replication.factor"),
    ("max_request_bytes", "socket.request.max.bytes"),
    ("queued_max_request_bytes", "queued.max.request.bytes"),
    ("max_connections_per_ip", "max.connections.per.ip"),
    ("max_connections", "max.connections"),
    ("log_segment_bytes", "log.segment.bytes"),
    ("log_segment_ms", "log.roll.ms"),
    ("log_retention_ms", "log.retention.ms"),
    ("log_retention_bytes", "log.retention.bytes"),
    ("message_max_bytes", "message.max.bytes"),
    (
        "log_retention_check_interval_ms",
        "log.retention.check.interval.ms",
    ),
    ("log_cleaner_interval_ms", "log.cleaner.backoff.ms"),
    (
        "offsets_topic_num_partitions",
        "offsets.topic.num.partitions",
    ),
    ("offsets_retention_minutes", "offsets.retention.minutes"),
    (
        "offsets_retention_check_interval_ms",
        "offsets.retention.check.interval.ms",
    ),
    (
        "group_initial_rebalance_delay_ms",
        "group.initial.rebalance.delay.ms",
    ),
    (
        "group_min_session_timeout_ms",
        "group.min.session.timeout.ms",
    ),
    (
        "group_max_session_timeout_ms",
        "group.max.session.timeout.ms",
    ),
    (
        "offsets_topic_replication_factor",
        "offsets.topic.replication.factor",
    ),
    ("controller_listen", "controller.listener.names"),
    ("seeds", "controller.quorum.bootstrap.servers"),
    ("broker_rack", "broker.rack"),
    (
        "broker_heartbeat_interval_ms",
        "broker.heartbeat.interval.ms",
    ),
    ("broker_session_timeout_ms", "broker.session.timeout.ms"),
    ("min_insync_replicas", "min.insync.replicas"),
    ("replica_lag_time_max_ms", "replica.lag.time.max.ms"),
    ("replica_fetch_max_bytes", "replica.fetch.max.bytes"),
    (
        "unclean_leader_election_enable",
        "unclean.leader.election.enable",
    ),
];

/// The names a Runnel broker key is reported under.
fn reported_names(key: &'static str) -> Vec<&'static str> {
    let names: Vec<&'static str> = KAFKA_BROKER_NAMES
        .iter()
        .filter(|(runnel, _)| *runnel == key)
        .map(|(_, kafka)| *kafka)
        .collect();
    if names.is_empty() {
        vec![key]
    } else {
        names
    }
}

/// Kafka's listener values carry the security protocol.
fn reported_value(key: &str, value: Option<String>) -> Option<String> {
    match key {
        "listen" | "advertised_address" => value.map(|v| format!("PLAINTEXT://{v}")),
        _ => value,
    }
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
    let mut out = Vec::new();
    for (key, kind, doc) in KEYS {
        let value = broker.config.value_of(key);
        let source = if value == defaults.value_of(key) {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        let value = reported_value(key, value);
        // A client may ask by Kafka's name or by Runnel's key.
        let asked_by_key = wanted(key);
        for reported in reported_names(key) {
            if !(asked_by_key || wanted(reported)) {
                continue;
            }
            let mut e = entry(reported, value.clone(), source, true);
            if options.synonyms {
                if let Some(v) = &value {
                    e = e.with_synonyms(vec![synonym(reported, v.clone(), source)]);
                }
            }
            if options.types {
                let ty = match kind {
                    KeyKind::Str => ConfigType::String,
                    KeyKind::Int => ConfigType::Long,
                    KeyKind::Bool => ConfigType::Boolean,
                    KeyKind::List => ConfigType::List,
                };
                e = e.with_config_type(ty as i8);
            }
            if options.documentation {
                e = e.with_documentation(Some(StrBytes::from_static_str(doc)));
            }
            out.push(e);
        }
    }
    out.extend(dynamic_broker_configs(broker, name, wanted, options));
    Ok(out)
}

/// The dynamic broker configs of resource `name` (a broker id, or "" for the
/// cluster default): the broker's own value, else the cluster default, else
/// Kafka's default Long.MAX_VALUE (= unthrottled).
fn dynamic_broker_configs(
    broker: &Broker,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    options: &Options,
) -> Vec<DescribeConfigsResourceResult> {
    let cluster = broker.cluster();
    let own = (!name.is_empty())
        .then(|| cluster.broker_configs.get(name))
        .flatten();
    let default = cluster.broker_configs.get("");
    let mut out = Vec::new();
    for (key, doc) in throttle::DYNAMIC_BROKER_CONFIGS {
        if !wanted(key) {
            continue;
        }
        let mut layers: Vec<(String, ConfigSource)> = Vec::new();
        if let Some(v) = own.and_then(|c| c.get(*key)) {
            layers.push((v.clone(), ConfigSource::DynamicBroker));
        }
        if let Some(v) = default.and_then(|c| c.get(*key)) {
            layers.push((v.clone(), ConfigSource::DynamicDefaultBroker));
        }
        layers.push((i64::MAX.to_string(), ConfigSource::Default));
        let (value, source) = layers[0].clone();
        let mut e = entry(key, Some(value), source, false);
        if options.synonyms {
            e = e.with_synonyms(
                layers
                    .into_iter()
                    .map(|(v, src)| synonym(key, v, src))
                    .collect(),
            );
        }
        if options.types {
            e = e.with_config_type(ConfigType::Long as i8);
        }
        if options.documentation {
            e = e.with_documentation(Some(StrBytes::from_static_str(doc)));
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kafka_name_maps_a_real_key_and_topic_synonyms_agree() {
        for (key, _) in KAFKA_BROKER_NAMES {
            assert!(
                KEYS.iter().any(|(k, _, _)| k == key),
                "{key} is no broker key"
            );
        }
        // A topic config's broker synonym is the name the BROKER resource reports.
        for def in TOPIC_CONFIGS {
            if let Some((kafka, key)) = def.broker_synonym {
                assert!(
                    reported_names(
                        KEYS.iter()
                            .find(|(k, _, _)| *k == key)
                            .map(|(k, _, _)| *k)
                            .unwrap_or("missing")
                    )
                    .contains(&kafka),
                    "{}: broker synonym {kafka} is not reported for {key}",
                    def.name
                );
            }
        }
    }
}
