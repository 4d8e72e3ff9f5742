//! DescribeConfigs: topic configs with values and sources (override, broker
//! setting, built-in default), synonyms and documentation; broker configs
//! (static ones read-only, under Kafka's names where Kafka has an
//! equivalent; the dynamic replication throttle rates with their per-broker
//! or cluster-default source); client metrics subscriptions (KIP-714) with the
//! configs set on them.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::AclOperation;

use crate::api::config_resources::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_TOPIC};
use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::config::{dynamic, BrokerConfig, Key, KeyKind, KEYS};
use crate::errors::ApiError;
use crate::topic_config::{self, ConfigSource, ConfigType, TOPIC_CONFIGS};

/// Handles DescribeConfigs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let state = broker.cluster();
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
            let allowed = authorize::config_resource(
                broker,
                &state,
                ctx,
                AclOperation::DescribeConfigs,
                resource.resource_type,
                &name,
            );
            let configs = match resource.resource_type {
                _ if allowed.is_err() => allowed.map(|()| Vec::new()),
                RESOURCE_TOPIC => topic_configs(broker, &name, &wanted, &options),
                RESOURCE_BROKER => broker_configs(broker, &name, &wanted, &options),
                RESOURCE_CLIENT_METRICS => Ok(broker
                    .cluster()
                    .client_metrics
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| entry(k, Some(v.clone()), ConfigSource::ClientMetrics, false))
                    .collect()),
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
                match def.broker_synonym() {
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

/// The names a Runnel broker key is reported under: Kafka's names where Kafka
/// has an equivalent (`node_id` is both `node.id` and `broker.id`, as in KRaft
/// brokers); keys without one (admin listener, cluster id, flush-on-ack) keep
/// Runnel's name.
fn reported_names(key: &Key) -> &[&'static str] {
    if key.kafka_names.is_empty() {
        std::slice::from_ref(&key.name)
    } else {
        key.kafka_names
    }
}

/// A key's value as Kafka reports it: the listener keys show the listeners in
/// effect (with `listen` alone, its one PLAINTEXT listener) in Kafka's form.
fn reported_value(config: &BrokerConfig, key: &str, value: Option<String>) -> Option<String> {
    let Ok(listeners) = config.listener_configs() else {
        return value;
    };
    let join = |items: Vec<String>| Some(items.join(","));
    match key {
        "listeners" => join(
            listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, l.bind))
                .collect(),
        ),
        "listener_security_protocol_map" => join(
            listeners
                .iter()
                .map(|l| format!("{}:{}", l.name, l.protocol))
                .collect(),
        ),
        "advertised_listeners" if listeners.iter().any(|l| l.advertised.is_some()) => join(
            listeners
                .iter()
                .filter_map(|l| {
                    let (host, port) = l.advertised.as_ref()?;
                    Some(format!("{}://{}", l.name, HostPort(host, *port)))
                })
                .collect(),
        ),
        "advertised_listeners" => None,
        _ => value,
    }
}

/// `host:port`, with an IPv6 host in brackets.
struct HostPort<'a>(&'a str, u16);

impl std::fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
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
    for spec in KEYS {
        let key = spec.name;
        let value = broker.config.value_of(key);
        let source = if value == defaults.value_of(key) {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        };
        let value = reported_value(&broker.config, key, value);
        // A client may ask by Kafka's name or by Runnel's key.
        let asked_by_key = wanted(key);
        for &reported in reported_names(spec) {
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
                let ty = match spec.kind {
                    KeyKind::Str => ConfigType::String,
                    KeyKind::Int => ConfigType::Long,
                    KeyKind::Bool => ConfigType::Boolean,
                    KeyKind::List => ConfigType::List,
                };
                e = e.with_config_type(ty as i8);
            }
            if options.documentation {
                e = e.with_documentation(Some(StrBytes::from_static_str(spec.doc)));
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
    for dynamic::DynamicKey { name: key, doc } in dynamic::DYNAMIC_KEYS {
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
    fn listener_keys_report_the_listeners_in_effect_in_kafka_form() {
        let report =
            |config: &BrokerConfig, key: &str| reported_value(config, key, config.value_of(key));
        let legacy = BrokerConfig {
            listen: "0.0.0.0:9092".into(),
            ..BrokerConfig::default()
        };
        assert_eq!(
            report(&legacy, "listeners").as_deref(),
            Some("PLAINTEXT://0.0.0.0:9092")
        );
        assert_eq!(
            report(&legacy, "listener_security_protocol_map").as_deref(),
            Some("PLAINTEXT:PLAINTEXT")
        );
        assert_eq!(
            report(&legacy, "advertised_listeners"),
            None,
            "unset is null"
        );
        let named = BrokerConfig {
            listeners: vec![
                "INTERNAL://0.0.0.0:9092".into(),
                "SSL://0.0.0.0:9094".into(),
            ],
            listener_security_protocol_map: vec!["INTERNAL:PLAINTEXT".into()],
            advertised_listeners: vec!["SSL://[::1]:19094".into()],
            ssl_certificate_location: Some("c.pem".into()),
            ssl_key_location: Some("k.pem".into()),
            ..BrokerConfig::default()
        };
        assert_eq!(
            report(&named, "listeners").as_deref(),
            Some("INTERNAL://0.0.0.0:9092,SSL://0.0.0.0:9094")
        );
        assert_eq!(
            report(&named, "listener_security_protocol_map").as_deref(),
            Some("INTERNAL:PLAINTEXT,SSL:SSL")
        );
        assert_eq!(
            report(&named, "advertised_listeners").as_deref(),
            Some("SSL://[::1]:19094")
        );
    }

    #[test]
    fn every_reported_name_is_unique_and_topic_synonyms_agree() {
        let key = |name| crate::config::find_key(name).unwrap();
        assert_eq!(reported_names(key("node_id")), ["node.id", "broker.id"]);
        assert_eq!(reported_names(key("admin_listen")), ["admin_listen"]);
        // One name never stands for two configs, static or dynamic.
        let mut seen = std::collections::HashSet::new();
        let dynamic = dynamic::DYNAMIC_KEYS.iter().map(|k| k.name);
        for name in KEYS.iter().flat_map(reported_names).copied().chain(dynamic) {
            assert!(
                seen.insert(name),
                "{name} is reported for two broker configs"
            );
        }
        // A topic config's broker synonym is the name the BROKER resource reports.
        for def in TOPIC_CONFIGS {
            if let Some(broker_key) = def.broker_key {
                let (kafka, key) = def
                    .broker_synonym()
                    .unwrap_or_else(|| panic!("{}: {broker_key} is no broker key", def.name));
                assert!(
                    KEYS.iter()
                        .find(|k| k.name == key)
                        .is_some_and(|k| reported_names(k).contains(&kafka)),
                    "{}: broker synonym {kafka} is not reported for {key}",
                    def.name
                );
            }
        }
    }
}
