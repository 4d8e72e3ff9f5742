//! The topic configs Runnel knows: their types, defaults (some derived from the
//! broker config), validation, and where a value comes from for DescribeConfigs.
//! Everything about topic-level configuration lives here.

use std::collections::BTreeMap;

use runnel_log::{LogConfig, TimestampType};

use crate::config::{find_key, BrokerConfig};

/// Kafka's `ConfigType` codes as used in DescribeConfigs v3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    /// `true` / `false`.
    Boolean = 1,
    /// Free text or an enumeration.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 64-bit integer.
    Long = 5,
    /// Floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
}

/// Kafka's `ConfigSource` codes as used in DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigSource {
    /// A per-topic override.
    DynamicTopic = 1,
    /// A dynamic config of this broker id (IncrementalAlterConfigs on a BROKER resource).
    DynamicBroker = 2,
    /// A dynamic cluster-wide broker default (BROKER resource named "").
    DynamicDefaultBroker = 3,
    /// A value from the broker's static configuration.
    StaticBroker = 4,
    /// The built-in default.
    Default = 5,
    /// A config of a client metrics resource (KIP-714).
    ClientMetrics = 7,
}

/// How a value is checked.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Bool,
    Int {
        min: i64,
    },
    Long {
        min: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    /// `partition:brokerId,...` or `*` (replication throttling).
    ThrottledReplicas,
    /// A Kafka version as `message.format.version` takes it (`0.10.0.0`, `2.8`, `3.0-IV1`).
    KafkaVersion,
}

/// One known topic config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfigDef {
    /// Kafka's name, e.g. `retention.ms`.
    pub name: &'static str,
    /// Its type for DescribeConfigs.
    pub ty: ConfigType,
    /// One-line documentation.
    pub doc: &'static str,
    /// The Runnel broker key it defaults from (see [`ConfigDef::broker_synonym`]).
    pub broker_key: Option<&'static str>,
    rule: Rule,
    fixed_default: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $ty:ident, $rule:expr, $default:expr, $syn:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            ty: ConfigType::$ty,
            rule: $rule,
            fixed_default: $default,
            broker_key: $syn,
            doc: $doc,
        }
    };
}

/// Every topic config Runnel accepts. Keys not listed here are INVALID_CONFIG.
pub(crate) const TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        Rule::ListOf(&["delete", "compact"]),
        "delete",
        None,
        "delete old segments by retention, or compact to the latest value per key"
    ),
    def!(
        "compression.type",
        String,
        Rule::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        "producer",
        None,
        "compression of stored batches; batches are stored as produced (producer)"
    ),
    def!(
        "delete.retention.ms",
        Long,
        Rule::Long { min: 0 },
        "86400000",
        None,
        "how long tombstones are kept on compacted topics"
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        Rule::Long { min: 0 },
        "60000",
        None,
        "delay before deleting a file from the filesystem (stored)"
    ),
    def!(
        "flush.messages",
        Long,
        Rule::Long { min: 1 },
        LONG_MAX,
        None,
        "forced fsync interval in messages (stored; acks=all always fsyncs)"
    ),
    def!(
        "flush.ms",
        Long,
        Rule::Long { min: 0 },
        LONG_MAX,
        None,
        "forced fsync interval in ms (stored; acks=all always fsyncs)"
    ),
    def!(
        "index.interval.bytes",
        Int,
        Rule::Int { min: 0 },
        "4096",
        None,
        "bytes between entries of the sparse offset index"
    ),
    def!(
        "follower.replication.throttled.replicas",
        List,
        Rule::ThrottledReplicas,
        "",
        None,
        "partition:brokerId replicas (or *) whose fetching is throttled on the follower side"
    ),
    def!(
        "leader.replication.throttled.replicas",
        List,
        Rule::ThrottledReplicas,
        "",
        None,
        "partition:brokerId replicas (or *) whose replication is throttled on the leader side"
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        Rule::Long { min: 1 },
        LONG_MAX,
        None,
        "longest time a record stays uncompacted (stored)"
    ),
    def!(
        "max.message.bytes",
        Int,
        Rule::Int { min: 0 },
        "",
        Some("message_max_bytes"),
        "largest record batch accepted"
    ),
    def!(
        "message.downconversion.enable",
        Boolean,
        Rule::Bool,
        "true",
        None,
        "down-conversion for old consumers (stored; not performed)"
    ),
    def!(
        "message.format.version",
        String,
        Rule::KafkaVersion,
        "3.0-IV1",
        None,
        "deprecated since Kafka 3.0; accepted and ignored (batches are always record format v2)"
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        Rule::Long { min: 0 },
        LONG_MAX,
        None,
        "largest allowed timestamp lead over broker time (stored)"
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        Rule::Long { min: 0 },
        LONG_MAX,
        None,
        "largest allowed timestamp lag behind broker time (stored)"
    ),
    def!(
        "message.timestamp.difference.max.ms",
        Long,
        Rule::Long { min: 0 },
        LONG_MAX,
        None,
        "deprecated timestamp difference bound (stored)"
    ),
    def!(
        "message.timestamp.type",
        String,
        Rule::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
        None,
        "keep the producer's timestamp or overwrite it with the broker's clock"
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        Rule::Double { min: 0.0, max: 1.0 },
        "0.5",
        None,
        "fraction of uncompacted bytes that triggers compaction"
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        Rule::Long { min: 0 },
        "0",
        None,
        "shortest time a record stays uncompacted"
    ),
    def!(
        "min.insync.replicas",
        Int,
        Rule::Int { min: 1 },
        "1",
        Some("min_insync_replicas"),
        "in-sync replicas needed to accept an acks=all produce"
    ),
    def!(
        "preallocate",
        Boolean,
        Rule::Bool,
        "false",
        None,
        "preallocate segment files (stored)"
    ),
    def!(
        "retention.bytes",
        Long,
        Rule::Long { min: -1 },
        "",
        Some("log_retention_bytes"),
        "largest partition size before old segments are deleted; -1 = unlimited"
    ),
    def!(
        "retention.ms",
        Long,
        Rule::Long { min: -1 },
        "",
        Some("log_retention_ms"),
        "age after which segments are deleted; -1 = forever"
    ),
    def!(
        "segment.bytes",
        Int,
        Rule::Int { min: 14 },
        "",
        Some("log_segment_bytes"),
        "segment file size at which a new segment is rolled"
    ),
    def!(
        "segment.index.bytes",
        Int,
        Rule::Int { min: 4 },
        "10485760",
        None,
        "maximum offset index size (stored)"
    ),
    def!(
        "segment.jitter.ms",
        Long,
        Rule::Long { min: 0 },
        "0",
        None,
        "random jitter of segment.ms (stored)"
    ),
    def!(
        "segment.ms",
        Long,
        Rule::Long { min: 1 },
        "",
        Some("log_segment_ms"),
        "age at which the active segment is rolled"
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        Rule::Bool,
        "false",
        Some("unclean_leader_election_enable"),
        "allow out-of-sync replicas to become leader (may lose acknowledged data)"
    ),
];

/// Looks up a known topic config by name.
pub(crate) fn find(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl ConfigDef {
    /// The Kafka broker config it defaults from (the broker key's Kafka name),
    /// and the Runnel broker key that sets it.
    pub(crate) fn broker_synonym(&self) -> Option<(&'static str, &'static str)> {
        let key = find_key(self.broker_key?)?;
        Some((
            key.kafka_names.first().copied().unwrap_or(key.name),
            key.name,
        ))
    }

    /// The default value, taking broker-level defaults into account.
    pub(crate) fn default_value(&self, broker: &BrokerConfig) -> String {
        match self.broker_key {
            Some(key) => broker.value_of(key).unwrap_or_default(),
            None => self.fixed_default.to_string(),
        }
    }

    /// Where the default comes from: the broker file/env/flags when they changed it.
    pub(crate) fn default_source(&self, broker: &BrokerConfig) -> ConfigSource {
        match self.broker_key {
            Some(key) if broker.value_of(key) != BrokerConfig::default().value_of(key) => {
                ConfigSource::StaticBroker
            }
            _ => ConfigSource::Default,
        }
    }

    /// Checks a value; the error is sent to clients with INVALID_CONFIG.
    pub(crate) fn validate(&self, value: &str) -> Result<(), String> {
        let bad = |why: String| {
            Err(format!(
                "invalid value {value:?} for configuration {}: {why}",
                self.name
            ))
        };
        match self.rule {
            Rule::Bool => match value {
                "true" | "false" => Ok(()),
                _ => bad("expected true or false".into()),
            },
            Rule::Int { min } => match value.trim().parse::<i32>() {
                Ok(v) if i64::from(v) >= min => Ok(()),
                Ok(_) => bad(format!("value must be at least {min}")),
                Err(_) => bad("expected a 32-bit integer".into()),
            },
            Rule::Long { min } => match value.trim().parse::<i64>() {
                Ok(v) if v >= min => Ok(()),
                Ok(_) => bad(format!("value must be at least {min}")),
                Err(_) => bad("expected a 64-bit integer".into()),
            },
            Rule::Double { min, max } => match value.trim().parse::<f64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(()),
                Ok(_) => bad(format!("value must be between {min} and {max}")),
                Err(_) => bad("expected a number".into()),
            },
            Rule::OneOf(allowed) => {
                if allowed.contains(&value) {
                    Ok(())
                } else {
                    bad(format!("expected one of {}", allowed.join(", ")))
                }
            }
            Rule::ListOf(allowed) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if !items.is_empty() && items.iter().all(|i| allowed.contains(i)) {
                    Ok(())
                } else {
                    bad(format!(
                        "expected a comma-separated list of {}",
                        allowed.join(", ")
                    ))
                }
            }
            Rule::ThrottledReplicas => crate::replica::throttle::ThrottledReplicas::parse(value)
                .map(|_| ())
                .or_else(bad),
            Rule::KafkaVersion => {
                if is_kafka_version(value) {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: {value:?} is not a Kafka version before 4.0 (e.g. 2.8 or 3.0-IV1)",
                        self.name
                    ))
                }
            }
        }
    }
}

/// A version Kafka 3.x accepts for `message.format.version`: two to four
/// dot-separated numbers, major 0 to 3, optionally `-IV<n>` (Kafka's
/// MetadataVersion strings; 4.0 removed the config).
fn is_kafka_version(value: &str) -> bool {
    let (numbers, iv) = match value.split_once("-IV") {
        Some((numbers, iv)) => (numbers, Some(iv)),
        None => (value, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = numbers.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts.iter().all(|p| all_digits(p))
        && parts[0].parse::<u32>().is_ok_and(|major| major <= 3)
        && iv.is_none_or(all_digits)
}

/// Validates one `key = value` pair: the key must be known and the value valid.
pub(crate) fn validate_entry(name: &str, value: &str) -> Result<(), String> {
    match find(name) {
        Some(def) => def.validate(value),
        None => Err(format!("unknown topic configuration {name:?}")),
    }
}

/// Per-topic overrides (only the keys set explicitly), validated on entry.
pub(crate) type TopicOverrides = BTreeMap<String, String>;

/// The `min.insync.replicas` override, if there is one that reads as a number.
pub(crate) fn min_insync_replicas(overrides: &TopicOverrides) -> Option<i32> {
    overrides
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<i32>().ok())
}

/// The effective value of a config for a topic, and its source.
pub(crate) fn effective(
    def: &ConfigDef,
    overrides: &TopicOverrides,
    broker: &BrokerConfig,
) -> (String, ConfigSource) {
    match overrides.get(def.name) {
        Some(v) => (v.clone(), ConfigSource::DynamicTopic),
        None => (def.default_value(broker), def.default_source(broker)),
    }
}

/// The log engine settings for a topic with these overrides.
pub(crate) fn log_config(overrides: &TopicOverrides, broker: &BrokerConfig) -> LogConfig {
    let value = |name: &str| -> Option<String> {
        find(name).map(|def| effective(def, overrides, broker).0)
    };
    let int = |name: &str, fallback: i64| -> i64 {
        value(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(fallback)
    };
    // `cleanup.policy` is a list: "delete", "compact", or both in any order.
    let policy_value = value("cleanup.policy").unwrap_or_else(|| "delete".into());
    let policy: Vec<&str> = policy_value.split(',').map(str::trim).collect();
    LogConfig {
        segment_bytes: int("segment.bytes", broker.log_segment_bytes as i64).max(14) as u64,
        segment_ms: int("segment.ms", broker.log_segment_ms),
        retention_ms: int("retention.ms", broker.log_retention_ms),
        retention_bytes: int("retention.bytes", broker.log_retention_bytes),
        max_message_bytes: int("max.message.bytes", broker.message_max_bytes as i64).max(0)
            as usize,
        index_interval_bytes: int("index.interval.bytes", 4096).clamp(0, i64::from(u32::MAX))
            as u32,
        timestamp_type: match value("message.timestamp.type").as_deref() {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        },
        compact: policy.contains(&"compact"),
        delete: policy.contains(&"delete"),
        delete_retention_ms: int("delete.retention.ms", 86_400_000),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.5),
        min_compaction_lag_ms: int("min.compaction.lag.ms", 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_and_compaction_settings_reach_the_log_config() {
        let broker = BrokerConfig::default();
        let cfg = |pairs: &[(&str, &str)]| {
            let overrides: TopicOverrides = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            log_config(&overrides, &broker)
        };
        let d = cfg(&[]);
        assert!(!d.compact && d.delete && d.retention_applies());
        let c = cfg(&[("cleanup.policy", "compact")]);
        assert!(c.compact && !c.delete && !c.retention_applies());
        for both in ["compact,delete", "delete, compact"] {
            let b = cfg(&[("cleanup.policy", both)]);
            assert!(b.compact && b.delete && b.retention_applies(), "{both}");
        }
        let t = cfg(&[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", "500"),
        ]);
        assert_eq!(t.delete_retention_ms, 1000);
        assert_eq!(t.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(t.min_compaction_lag_ms, 500);
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert_eq!(d.min_cleanable_dirty_ratio, 0.5);
    }

    #[test]
    fn unknown_key_is_rejected() {
        assert!(validate_entry("retention.hours", "1")
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        assert!(validate_entry("retention.ms", "-1").is_ok());
        assert!(validate_entry("retention.ms", "-2").is_err());
        assert!(validate_entry("retention.ms", "soon").is_err());
        assert!(validate_entry("segment.bytes", "13").is_err());
        assert!(validate_entry("segment.bytes", "99999999999").is_err());
        assert!(validate_entry("cleanup.policy", "compact,delete").is_ok());
        for ok in ["0.10.0.0", "0.8.2", "2.8", "3.0-IV1", "3.9"] {
            assert!(validate_entry("message.format.version", ok).is_ok(), "{ok}");
        }
        for bad in ["4.0", "3", "v2", "3.0-IV", "2.8.", "", "3.0-IVx"] {
            let err = validate_entry("message.format.version", bad).unwrap_err();
            assert!(err.contains("message.format.version"), "{bad}: {err}");
        }
        assert!(validate_entry("cleanup.policy", "shred").is_err());
        assert!(validate_entry("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_entry("message.timestamp.type", "logappendtime").is_err());
        assert!(validate_entry("min.insync.replicas", "0").is_err());
        assert!(validate_entry("unclean.leader.election.enable", "maybe").is_err());
        assert!(validate_entry("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_entry("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(validate_entry("follower.replication.throttled.replicas", "*").is_ok());
        let err =
            validate_entry("follower.replication.throttled.replicas", "0:1,oops").unwrap_err();
        assert!(err.contains("\"oops\""), "{err}");
    }

    #[test]
    fn defaults_follow_the_broker_config_and_report_their_source() {
        let mut broker = BrokerConfig::default();
        let def = find("retention.ms").unwrap();
        assert_eq!(def.default_value(&broker), "604800000");
        assert_eq!(def.default_source(&broker), ConfigSource::Default);
        broker.log_retention_ms = 1000;
        assert_eq!(def.default_value(&broker), "1000");
        assert_eq!(def.default_source(&broker), ConfigSource::StaticBroker);
        let mut overrides = TopicOverrides::new();
        overrides.insert("retention.ms".into(), "5".into());
        assert_eq!(
            effective(def, &overrides, &broker),
            ("5".into(), ConfigSource::DynamicTopic)
        );
    }

    #[test]
    fn log_config_applies_overrides_and_broker_defaults() {
        let broker = BrokerConfig {
            log_segment_bytes: 4096,
            ..Default::default()
        };
        let mut overrides = TopicOverrides::new();
        overrides.insert("max.message.bytes".into(), "100".into());
        overrides.insert("message.timestamp.type".into(), "LogAppendTime".into());
        let lc = log_config(&overrides, &broker);
        assert_eq!(lc.segment_bytes, 4096);
        assert_eq!(lc.max_message_bytes, 100);
        assert_eq!(lc.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(lc.retention_bytes, -1);
    }

    #[test]
    fn broker_synonyms_name_broker_keys_under_their_kafka_names() {
        for def in TOPIC_CONFIGS {
            if let Some(key) = def.broker_key {
                assert!(
                    find_key(key).is_some(),
                    "{}: {key} is no broker key",
                    def.name
                );
            }
        }
        let synonym = |name| find(name).unwrap().broker_synonym();
        assert_eq!(
            synonym("retention.ms"),
            Some(("log.retention.ms", "log_retention_ms"))
        );
        assert_eq!(
            synonym("segment.ms"),
            Some(("log.roll.ms", "log_segment_ms"))
        );
        assert_eq!(
            synonym("max.message.bytes"),
            Some(("message.max.bytes", "message_max_bytes"))
        );
        assert_eq!(synonym("cleanup.policy"), None);
    }

    #[test]
    fn every_default_is_valid() {
        let broker = BrokerConfig::default();
        for def in TOPIC_CONFIGS {
            def.validate(&def.default_value(&broker)).unwrap();
        }
    }
}
