//! Broker configuration: one TOML file, then `RUNNEL_*` environment overrides,
//! then command-line flags (applied by the binary). Unknown keys are an error
//! at start-up; every key and its default is documented in
//! `runnel.example.toml`, which a test keeps in sync with [`KEYS`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors while loading the configuration. Each names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key / bad value.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A `RUNNEL_*` environment variable has a value of the wrong type.
    #[error("invalid value {value:?} in environment variable {var} (config key {key}): {message}")]
    Env {
        var: String,
        key: String,
        value: String,
        message: String,
    },
    /// A value is syntactically fine but not usable.
    #[error("invalid value for config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The broker's configuration. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// This broker's node id.
    pub node_id: i32,
    /// Directory holding partition logs and broker metadata.
    pub data_dir: PathBuf,
    /// Kafka listener address (port 0 picks a free port).
    pub listen: String,
    /// `host:port` advertised to clients in Metadata; unset = the bound listener address.
    pub advertised_address: Option<String>,
    /// Admin HTTP listener (/metrics, /healthz, /readyz).
    pub admin_listen: String,
    /// Cluster id; unset = generated once and persisted in `data_dir/meta.json`.
    pub cluster_id: Option<String>,
    /// Create unknown topics on Metadata/Produce requests.
    pub auto_create_topics: bool,
    /// Default partition count for new topics.
    pub num_partitions: i32,
    /// Default replication factor for new topics (at most the number of live brokers).
    pub default_replication_factor: i16,
    /// Largest request frame accepted, in bytes.
    pub max_request_bytes: u32,
    /// Bytes of requests read but not yet answered, summed over all Kafka
    /// connections (Kafka's `queued.max.request.bytes`); when it is used up the
    /// broker stops reading sockets until responses release memory.
    pub queued_max_request_bytes: u64,
    /// Open Kafka connections allowed from one client IP address; more are closed at once.
    pub max_connections_per_ip: u32,
    /// Open Kafka connections allowed in total; more are closed at once.
    pub max_connections: u32,
    /// Default `segment.bytes`.
    pub log_segment_bytes: u64,
    /// Default `segment.ms`.
    pub log_segment_ms: i64,
    /// Default `retention.ms` (-1 = unlimited).
    pub log_retention_ms: i64,
    /// Default `retention.bytes` (-1 = unlimited).
    pub log_retention_bytes: i64,
    /// Default `max.message.bytes`.
    pub message_max_bytes: usize,
    /// How often retention and time-based segment rolls run.
    pub log_retention_check_interval_ms: u64,
    /// How often compacted topics are checked for compaction.
    pub log_cleaner_interval_ms: u64,
    /// Fsync before answering `acks=all`. Turning this off is unsafe: acknowledged
    /// records can be lost on a machine crash.
    pub log_flush_on_ack: bool,
    /// Partitions of the internal `__consumer_offsets` topic (fixed once created).
    pub offsets_topic_num_partitions: i32,
    /// Committed offsets of a group expire this long after the group became empty
    /// (for standalone commits: after the commit).
    pub offsets_retention_minutes: i64,
    /// How often expired committed offsets are removed.
    pub offsets_retention_check_interval_ms: u64,
    /// How long the first rebalance of an empty group waits for more members to join.
    pub group_initial_rebalance_delay_ms: i64,
    /// Smallest session timeout a group member may ask for.
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a group member may ask for.
    pub group_max_session_timeout_ms: i32,
    /// Replication factor of `__consumer_offsets` (clamped to the live brokers at creation).
    pub offsets_topic_replication_factor: i16,
    /// Metadata quorum (Raft) listener address (port 0 picks a free port).
    pub controller_listen: String,
    /// `host:port` of the metadata listener advertised to other brokers; unset = the bound address.
    pub controller_advertised_address: Option<String>,
    /// Metadata listener addresses of existing brokers to join through; empty = start a new cluster.
    pub seeds: Vec<String>,
    /// How many brokers are metadata quorum voters (the first to join); the others are observers.
    pub metadata_voters: usize,
    /// This broker's rack (`broker.rack`), used for rack-aware replica placement.
    pub broker_rack: Option<String>,
    /// How often this broker heartbeats the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// A broker without a heartbeat for this long is fenced and loses its leaderships.
    pub broker_session_timeout_ms: u64,
    /// Default `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// A follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Bytes a follower asks for per partition in one fetch.
    pub replica_fetch_max_bytes: i32,
    /// Default `unclean.leader.election.enable` (may lose acknowledged data).
    pub unclean_leader_election_enable: bool,
    /// The controller moves leadership back to preferred replicas on its own.
    pub auto_leader_rebalance_enable: bool,
    /// How often the controller checks the preferred-leader imbalance.
    pub leader_imbalance_check_interval_seconds: u64,
    /// A broker's partitions are rebalanced when more than this percentage of
    /// those it should lead (as preferred replica) are led by others.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:9092".to_string(),
            advertised_address: None,
            admin_listen: "127.0.0.1:9644".to_string(),
            cluster_id: None,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            max_request_bytes: 104_857_600,
            queued_max_request_bytes: 268_435_456,
            max_connections_per_ip: 1000,
            max_connections: 10_000,
            log_segment_bytes: 1_073_741_824,
            log_segment_ms: 604_800_000,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            message_max_bytes: 1_048_588,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_interval_ms: 15_000,
            log_flush_on_ack: true,
            offsets_topic_num_partitions: 50,
            offsets_retention_minutes: 10080,
            offsets_retention_check_interval_ms: 600_000,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_topic_replication_factor: 3,
            controller_listen: "127.0.0.1:9093".to_string(),
            controller_advertised_address: None,
            seeds: Vec::new(),
            metadata_voters: 3,
            broker_rack: None,
            broker_heartbeat_interval_ms: 500,
            broker_session_timeout_ms: 6000,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_bytes: 1_048_576,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// How a key's value is written in TOML and in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A string (paths, addresses, ids).
    Str,
    /// An integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// A list of strings (comma-separated in the environment and flags).
    List,
}

/// Every config key with its kind and a one-line description (the reference list).
pub const KEYS: &[(&str, KeyKind, &str)] = &[
    ("node_id", KeyKind::Int, "This broker's node id"),
    (
        "data_dir",
        KeyKind::Str,
        "Directory holding partition logs and broker metadata",
    ),
    ("listen", KeyKind::Str, "Kafka protocol listener address"),
    (
        "advertised_address",
        KeyKind::Str,
        "host:port advertised to clients (unset = bound address)",
    ),
    ("admin_listen", KeyKind::Str, "Admin HTTP listener address"),
    (
        "cluster_id",
        KeyKind::Str,
        "Cluster id (unset = generated once, persisted in data_dir/meta.json)",
    ),
    (
        "auto_create_topics",
        KeyKind::Bool,
        "Create unknown topics on Metadata/Produce",
    ),
    (
        "num_partitions",
        KeyKind::Int,
        "Default partition count for new topics",
    ),
    (
        "default_replication_factor",
        KeyKind::Int,
        "Default replication factor for new topics",
    ),
    (
        "max_request_bytes",
        KeyKind::Int,
        "Largest request frame accepted",
    ),
    (
        "queued_max_request_bytes",
        KeyKind::Int,
        "Bytes of requests read but not yet answered, over all connections",
    ),
    (
        "max_connections_per_ip",
        KeyKind::Int,
        "Open Kafka connections allowed from one client address",
    ),
    (
        "max_connections",
        KeyKind::Int,
        "Open Kafka connections allowed in total",
    ),
    ("log_segment_bytes", KeyKind::Int, "Default segment.bytes"),
    ("log_segment_ms", KeyKind::Int, "Default segment.ms"),
    (
        "log_retention_ms",
        KeyKind::Int,
        "Default retention.ms (-1 = unlimited)",
    ),
    (
        "log_retention_bytes",
        KeyKind::Int,
        "Default retention.bytes (-1 = unlimited)",
    ),
    (
        "message_max_bytes",
        KeyKind::Int,
        "Default max.message.bytes",
    ),
    (
        "log_retention_check_interval_ms",
        KeyKind::Int,
        "Interval of retention and segment.ms checks",
    ),
    (
        "log_cleaner_interval_ms",
        KeyKind::Int,
        "Interval of compaction checks of compacted topics",
    ),
    (
        "log_flush_on_ack",
        KeyKind::Bool,
        "Fsync before acknowledging acks=all (false is unsafe)",
    ),
    (
        "offsets_topic_num_partitions",
        KeyKind::Int,
        "Partitions of __consumer_offsets (fixed once created)",
    ),
    (
        "offsets_retention_minutes",
        KeyKind::Int,
        "Committed offsets expire this long after their group became empty",
    ),
    (
        "offsets_retention_check_interval_ms",
        KeyKind::Int,
        "Interval of committed-offset expiry checks",
    ),
    (
        "group_initial_rebalance_delay_ms",
        KeyKind::Int,
        "Wait for more members before the first rebalance of an empty group",
    ),
    (
        "group_min_session_timeout_ms",
        KeyKind::Int,
        "Smallest session timeout a group member may ask for",
    ),
    (
        "group_max_session_timeout_ms",
        KeyKind::Int,
        "Largest session timeout a group member may ask for",
    ),
    (
        "offsets_topic_replication_factor",
        KeyKind::Int,
        "Replication factor of __consumer_offsets (clamped to live brokers)",
    ),
    (
        "controller_listen",
        KeyKind::Str,
        "Metadata quorum (Raft) listener address",
    ),
    (
        "controller_advertised_address",
        KeyKind::Str,
        "host:port of the metadata listener given to other brokers",
    ),
    (
        "seeds",
        KeyKind::List,
        "Metadata listeners of existing brokers to join (empty = new cluster)",
    ),
    (
        "metadata_voters",
        KeyKind::Int,
        "Number of metadata quorum voters (first brokers to join)",
    ),
    ("broker_rack", KeyKind::Str, "This broker's rack"),
    (
        "broker_heartbeat_interval_ms",
        KeyKind::Int,
        "Interval of heartbeats to the controller",
    ),
    (
        "broker_session_timeout_ms",
        KeyKind::Int,
        "A broker without heartbeats for this long is fenced",
    ),
    (
        "min_insync_replicas",
        KeyKind::Int,
        "Default min.insync.replicas",
    ),
    (
        "replica_lag_time_max_ms",
        KeyKind::Int,
        "A follower lagging this long leaves the ISR",
    ),
    (
        "replica_fetch_max_bytes",
        KeyKind::Int,
        "Bytes per partition of one follower fetch",
    ),
    (
        "unclean_leader_election_enable",
        KeyKind::Bool,
        "Default unclean.leader.election.enable",
    ),
    (
        "auto_leader_rebalance_enable",
        KeyKind::Bool,
        "The controller moves leadership back to preferred replicas",
    ),
    (
        "leader_imbalance_check_interval_seconds",
        KeyKind::Int,
        "How often the controller checks the preferred-leader imbalance",
    ),
    (
        "leader_imbalance_per_broker_percentage",
        KeyKind::Int,
        "Imbalance percentage per broker that triggers a preferred-leader rebalance",
    ),
];

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "RUNNEL_";

impl BrokerConfig {
    /// Loads the file (if any), then applies `RUNNEL_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<BrokerConfig, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, vars)
    }

    /// Like [`BrokerConfig::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_toml_str(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => BrokerConfig::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; the error names the offending key.
    pub fn from_toml_str(text: &str) -> Result<BrokerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Applies `RUNNEL_<KEY>` overrides. Variables that name no config key are
    /// ignored because other tools share the prefix (the CLI's
    /// `RUNNEL_BOOTSTRAP_SERVER`); a bad value for a known key is an error.
    pub fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (var, value) in env {
            let Some(suffix) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = suffix.to_ascii_lowercase();
            if KEYS.iter().any(|(k, _, _)| *k == key) {
                self.set(&key, &value).map_err(|message| ConfigError::Env {
                    var: var.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    message,
                })?;
            }
        }
        Ok(())
    }

    /// Sets one key from its textual value (environment and flags use this).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let Some((_, kind, _)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(format!("unknown config key {key:?}"));
        };
        let toml_value = match kind {
            KeyKind::Str => toml::Value::String(value.to_string()),
            KeyKind::Int => toml::Value::Integer(
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|e| format!("expected an integer: {e}"))?,
            ),
            KeyKind::Bool => toml::Value::Boolean(match value.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => return Err(format!("expected true or false, got {other:?}")),
            }),
            KeyKind::List => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        };
        // Re-serialize through serde so range and type checks match the file's.
        let mut table = toml::Table::try_from(&*self).map_err(|e| e.to_string())?;
        table.insert(key.to_string(), toml_value);
        *self = table
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
        Ok(())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message: message.to_string(),
            })
        };
        if self.node_id < 0 {
            return invalid("node_id", "must be >= 0");
        }
        if self.num_partitions < 1 {
            return invalid("num_partitions", "must be >= 1");
        }
        if self.default_replication_factor < 1 {
            return invalid("default_replication_factor", "must be >= 1");
        }
        if self.offsets_topic_replication_factor < 1 {
            return invalid("offsets_topic_replication_factor", "must be >= 1");
        }
        if self.min_insync_replicas < 1 {
            return invalid("min_insync_replicas", "must be >= 1");
        }
        if self.metadata_voters < 1 {
            return invalid("metadata_voters", "must be >= 1");
        }
        if self.broker_heartbeat_interval_ms == 0 {
            return invalid("broker_heartbeat_interval_ms", "must be >= 1");
        }
        if self.leader_imbalance_check_interval_seconds == 0 {
            return invalid(
                "leader_imbalance_check_interval_seconds",
                "must be at least 1",
            );
        }
        if self.leader_imbalance_per_broker_percentage > 100 {
            return invalid(
                "leader_imbalance_per_broker_percentage",
                "must be between 0 and 100",
            );
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            return invalid(
                "broker_session_timeout_ms",
                "must be larger than broker_heartbeat_interval_ms",
            );
        }
        if self.replica_lag_time_max_ms == 0 {
            return invalid("replica_lag_time_max_ms", "must be >= 1");
        }
        if self.replica_fetch_max_bytes < 1 {
            return invalid("replica_fetch_max_bytes", "must be >= 1");
        }
        if split_host_port(&self.controller_listen).is_none() {
            return invalid("controller_listen", "expected host:port");
        }
        if let Some(addr) = &self.controller_advertised_address {
            if split_host_port(addr).is_none() || addr.ends_with(":0") {
                return invalid(
                    "controller_advertised_address",
                    "expected host:port with a non-zero port",
                );
            }
        }
        if let Some(seed) = self.seeds.iter().find(|s| split_host_port(s).is_none()) {
            return invalid("seeds", &format!("{seed:?} is not host:port"));
        }
        if let Some(rack) = &self.broker_rack {
            if rack.is_empty() {
                return invalid("broker_rack", "must not be empty");
            }
        }
        if self.max_request_bytes < 1024 || self.max_request_bytes > i32::MAX as u32 {
            return invalid("max_request_bytes", "must be between 1024 and 2147483647");
        }
        // One request of the largest size must fit, or the broker could wait forever.
        if self.queued_max_request_bytes < u64::from(self.max_request_bytes) {
            return invalid(
                "queued_max_request_bytes",
                &format!(
                    "must be >= max_request_bytes ({}), or a request of the largest size could never be read",
                    self.max_request_bytes
                ),
            );
        }
        if self.max_connections_per_ip < 1 {
            return invalid("max_connections_per_ip", "must be >= 1");
        }
        if self.max_connections < 1 {
            return invalid("max_connections", "must be >= 1");
        }
        if self.log_segment_bytes < 14 {
            return invalid("log_segment_bytes", "must be >= 14");
        }
        if self.log_segment_ms < 1 {
            return invalid("log_segment_ms", "must be >= 1");
        }
        if self.log_retention_ms < -1 {
            return invalid("log_retention_ms", "must be >= -1");
        }
        if self.log_retention_bytes < -1 {
            return invalid("log_retention_bytes", "must be >= -1");
        }
        if self.message_max_bytes == 0 {
            return invalid("message_max_bytes", "must be >= 1");
        }
        if self.log_retention_check_interval_ms == 0 {
            return invalid("log_retention_check_interval_ms", "must be >= 1");
        }
        if self.log_cleaner_interval_ms == 0 {
            return invalid("log_cleaner_interval_ms", "must be >= 1");
        }
        if self.offsets_topic_num_partitions < 1
            || self.offsets_topic_num_partitions > crate::topics::MAX_PARTITIONS
        {
            return invalid(
                "offsets_topic_num_partitions",
                "must be between 1 and 10000",
            );
        }
        if self.offsets_retention_minutes < 1 {
            return invalid("offsets_retention_minutes", "must be >= 1");
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return invalid("offsets_retention_check_interval_ms", "must be >= 1");
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return invalid("group_initial_rebalance_delay_ms", "must be >= 0");
        }
        if self.group_min_session_timeout_ms < 1 {
            return invalid("group_min_session_timeout_ms", "must be >= 1");
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return invalid(
                "group_max_session_timeout_ms",
                "must be >= group_min_session_timeout_ms",
            );
        }
        if let Some(addr) = &self.advertised_address {
            if split_host_port(addr).is_none() {
                return invalid("advertised_address", "expected host:port");
            }
        }
        if let Some(id) = &self.cluster_id {
            if id.is_empty() {
                return invalid("cluster_id", "must not be empty");
            }
        }
        Ok(())
    }

    /// The textual value of a key, for DescribeConfigs on the broker resource.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let table = toml::Table::try_from(self).ok()?;
        match table.get(key) {
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(toml::Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(other) => Some(other.to_string()),
            None => None,
        }
    }
}

/// Splits `host:port` (IPv6 hosts in brackets) into host and port.
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = BrokerConfig::default();
        assert_eq!(c.listen, "127.0.0.1:9092");
        assert_eq!(c.admin_listen, "127.0.0.1:9644");
        assert_eq!(c.max_request_bytes, 104_857_600);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert!(c.log_flush_on_ack && c.auto_create_topics);
        assert_eq!(c.offsets_topic_num_partitions, 50);
        assert_eq!(c.offsets_retention_minutes, 10080);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(c.group_min_session_timeout_ms, 6000);
        assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    }

    #[test]
    fn group_keys_are_validated_and_settable_from_env() {
        let c = BrokerConfig::load_with_env(
            None,
            env(&[
                ("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "3"),
                ("RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.offsets_topic_num_partitions, 3);
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        let err =
            BrokerConfig::load_with_env(None, env(&[("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "0")]))
                .unwrap_err();
        assert!(err.to_string().contains("offsets_topic_num_partitions"));
        let err = BrokerConfig::load_with_env(
            None,
            env(&[("RUNNEL_GROUP_MAX_SESSION_TIMEOUT_MS", "10")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("group_max_session_timeout_ms"));
    }

    #[test]
    fn memory_and_connection_limits_are_validated() {
        let d = BrokerConfig::default();
        assert_eq!(d.queued_max_request_bytes, 268_435_456);
        assert_eq!(
            (d.max_connections_per_ip, d.max_connections),
            (1000, 10_000)
        );
        let c = BrokerConfig::load_with_env(
            None,
            env(&[
                ("RUNNEL_MAX_REQUEST_BYTES", "4096"),
                ("RUNNEL_QUEUED_MAX_REQUEST_BYTES", "4096"),
                ("RUNNEL_MAX_CONNECTIONS_PER_IP", "2"),
                ("RUNNEL_MAX_CONNECTIONS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.queued_max_request_bytes, 4096);
        assert_eq!((c.max_connections_per_ip, c.max_connections), (2, 3));
        // The pool must hold one request of the largest size.
        let err = BrokerConfig::load_with_env(
            None,
            env(&[("RUNNEL_QUEUED_MAX_REQUEST_BYTES", "104857599")]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("queued_max_request_bytes")
                && msg.contains("max_request_bytes (104857600)"),
            "{msg}"
        );
        for (var, key) in [
            ("RUNNEL_MAX_CONNECTIONS_PER_IP", "max_connections_per_ip"),
            ("RUNNEL_MAX_CONNECTIONS", "max_connections"),
        ] {
            let err = BrokerConfig::load_with_env(None, env(&[(var, "0")])).unwrap_err();
            assert!(err.to_string().contains(key), "{var}: {err}");
        }
        let mut c = BrokerConfig::default();
        assert!(c.set("queued_max_request_bytes", "-1").is_err());
    }

    #[test]
    fn unknown_key_in_file_is_rejected_naming_the_key() {
        let err = BrokerConfig::from_toml_str("node_id = 1\nretention_hours = 3\n").unwrap_err();
        assert!(err.contains("retention_hours"), "{err}");
    }

    #[test]
    fn bad_value_in_file_names_the_key() {
        let err = BrokerConfig::from_toml_str("num_partitions = \"many\"\n").unwrap_err();
        assert!(err.contains("num_partitions"), "{err}");
    }

    #[test]
    fn file_then_env_overrides_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runnel.toml");
        std::fs::write(
            &path,
            "node_id = 3\nnum_partitions = 4\nlisten = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let c = BrokerConfig::load_with_env(
            Some(&path),
            env(&[
                ("RUNNEL_NUM_PARTITIONS", "6"),
                ("RUNNEL_AUTO_CREATE_TOPICS", "false"),
                ("RUNNEL_DATA_DIR", "/tmp/x"),
                ("RUNNEL_BOOTSTRAP_SERVER", "ignored:1"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.num_partitions, 6);
        assert!(!c.auto_create_topics);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.listen, "0.0.0.0:1");
    }

    #[test]
    fn bad_env_value_is_a_clear_error_naming_the_key() {
        let err = BrokerConfig::load_with_env(None, env(&[("RUNNEL_NODE_ID", "abc")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("RUNNEL_NODE_ID") && msg.contains("node_id"),
            "{msg}"
        );
        let err = BrokerConfig::load_with_env(None, env(&[("RUNNEL_LOG_FLUSH_ON_ACK", "yes")]))
            .unwrap_err();
        assert!(err.to_string().contains("log_flush_on_ack"));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let err =
            BrokerConfig::load_with_env(None, env(&[("RUNNEL_NUM_PARTITIONS", "0")])).unwrap_err();
        assert!(err.to_string().contains("num_partitions"));
        let mut c = BrokerConfig::default();
        assert!(c.set("max_request_bytes", "-5").is_err());
    }

    #[test]
    fn keys_table_lists_every_field() {
        let json = serde_json::to_value(BrokerConfig::default()).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        fields.sort();
        let mut keys: Vec<&str> = KEYS.iter().map(|(k, _, _)| *k).collect();
        keys.sort();
        assert_eq!(fields, keys);
    }

    #[test]
    fn example_config_parses_and_documents_every_key_with_its_default() {
        let text = include_str!("../runnel.example.toml");
        let parsed = BrokerConfig::from_toml_str(text).unwrap();
        assert_eq!(
            parsed,
            BrokerConfig::default(),
            "uncommented example values must be the defaults"
        );
        let defaults = BrokerConfig::default();
        for (key, _, _) in KEYS {
            let line = text
                .lines()
                .find(|l| {
                    let l = l.trim_start_matches('#').trim_start();
                    l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
                })
                .unwrap_or_else(|| panic!("example config does not mention {key}"));
            if let Some(default) = defaults.value_of(key) {
                let shown = line.split_once('=').unwrap().1.trim().trim_matches('"');
                // An empty list is written `[]`; value_of joins items with commas.
                let shown = if shown == "[]" { "" } else { shown };
                assert_eq!(shown, default, "example shows a wrong default for {key}");
            }
        }
    }

    #[test]
    fn cluster_keys_parse_from_env_and_are_validated() {
        let c = BrokerConfig::load_with_env(
            None,
            env(&[
                ("RUNNEL_SEEDS", "10.0.0.1:9093, b:9093"),
                ("RUNNEL_DEFAULT_REPLICATION_FACTOR", "3"),
                ("RUNNEL_BROKER_RACK", "r1"),
                ("RUNNEL_UNCLEAN_LEADER_ELECTION_ENABLE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.seeds, vec!["10.0.0.1:9093".to_string(), "b:9093".into()]);
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.broker_rack.as_deref(), Some("r1"));
        assert!(c.unclean_leader_election_enable);
        assert_eq!(c.value_of("seeds").as_deref(), Some("10.0.0.1:9093,b:9093"));
        let d = BrokerConfig::default();
        assert_eq!(d.controller_listen, "127.0.0.1:9093");
        assert_eq!((d.metadata_voters, d.min_insync_replicas), (3, 1));
        assert_eq!(
            (d.broker_heartbeat_interval_ms, d.broker_session_timeout_ms),
            (500, 6000)
        );
        for (var, value, key) in [
            ("RUNNEL_SEEDS", "nohost", "seeds"),
            (
                "RUNNEL_DEFAULT_REPLICATION_FACTOR",
                "0",
                "default_replication_factor",
            ),
            (
                "RUNNEL_BROKER_SESSION_TIMEOUT_MS",
                "100",
                "broker_session_timeout_ms",
            ),
            ("RUNNEL_CONTROLLER_LISTEN", "x", "controller_listen"),
            ("RUNNEL_MIN_INSYNC_REPLICAS", "0", "min_insync_replicas"),
        ] {
            let err = BrokerConfig::load_with_env(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{var}: {err}");
        }
    }

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("localhost:9092"),
            Some(("localhost".into(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(split_host_port("nohost"), None);
    }
}
