//! Broker configuration: one TOML file, then `RUNNEL_*` environment overrides,
//! then command-line flags (applied by the binary). Unknown keys are an error
//! at start-up; every key and its default is documented in
//! `runnel.example.toml`, which a test in runnel-server keeps in sync with
//! [`KEYS`]. The declaration below is the one place a key is written down.

use std::path::{Path, PathBuf};

use crate::declare::declare_broker_config;
use crate::{find_key, split_host_port, KeyKind, ENV_PREFIX, MAX_PARTITIONS};

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

declare_broker_config! {
    /// This broker's node id.
    node_id: i32 = 0,
        doc: "This broker's node id",
        kafka: ["node.id", "broker.id"],
        cluster: Reserved, min: 0;
    /// Directory holding partition logs and broker metadata.
    data_dir: PathBuf = PathBuf::from("./data"),
        doc: "Directory holding partition logs and broker metadata",
        help: "Directory for partition logs and metadata",
        kafka: ["log.dirs"],
        cluster: Reserved;
    /// Kafka listener address (port 0 picks a free port): the one `PLAINTEXT`
    /// listener of a broker whose `listeners` is empty.
    listen: String = "127.0.0.1:9092".to_string(),
        doc: "Kafka protocol listener address (when listeners is empty)",
        help: "Kafka listener address (port 0 = any free port)",
        cluster: Reserved;
    /// `host:port` advertised to clients in Metadata; unset = the bound listener address.
    advertised_address: Option<String> = None,
        doc: "host:port advertised to clients (unset = bound address)",
        help: "host:port advertised to clients",
        cluster: Reserved;
    /// Named Kafka listeners, `NAME://host:port` each (port 0 picks a free
    /// port); empty = one `PLAINTEXT` listener on `listen`. Replaces `listen`
    /// and `advertised_address` when set.
    listeners: Vec<String> = Vec::new(),
        doc: "Named Kafka listeners, NAME://host:port each (empty = PLAINTEXT on listen)",
        help: "Comma-separated NAME://host:port listeners (replaces --listen)",
        kafka: ["listeners"],
        cluster: Hidden;
    /// The address each listener gives clients, `NAME://host:port`; a
    /// listener left out advertises its bound address.
    advertised_listeners: Vec<String> = Vec::new(),
        doc: "Address advertised per listener, NAME://host:port each (unset = bound address)",
        help: "Comma-separated NAME://host:port advertised per listener",
        kafka: ["advertised.listeners"],
        cluster: Hidden;
    /// Security protocol of each listener, `NAME:PROTOCOL` (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL); a listener named like a protocol needs no entry.
    listener_security_protocol_map: Vec<String> = Vec::new(),
        doc: "Security protocol per listener, NAME:PROTOCOL each (a listener named like a protocol has it)",
        help: "Comma-separated NAME:PROTOCOL pairs",
        kafka: ["listener.security.protocol.map"],
        cluster: Hidden;
    /// The listener other brokers connect to (replication, transaction
    /// markers); unset = the first listener.
    inter_broker_listener_name: Option<String> = None,
        doc: "Listener other brokers connect to (unset = the first listener)",
        kafka: ["inter.broker.listener.name"],
        cluster: Hidden;
    /// PEM file with this broker's certificate chain (leaf first), for SSL and
    /// SASL_SSL listeners; re-read when it changes.
    ssl_certificate_location: Option<String> = None,
        doc: "PEM certificate chain of SSL and SASL_SSL listeners (reloaded when changed)",
        cluster: Hidden;
    /// PEM file with the private key of `ssl_certificate_location`.
    ssl_key_location: Option<String> = None,
        doc: "PEM private key of ssl_certificate_location (reloaded when changed)",
        cluster: Hidden;
    /// PEM file with the CA certificates client certificates are verified against.
    ssl_truststore_location: Option<String> = None,
        doc: "PEM CA bundle client certificates are verified against",
        kafka: ["ssl.truststore.location"],
        cluster: Hidden;
    /// Whether TLS clients must present a certificate: `none`, `requested`
    /// (verified when given) or `required`.
    ssl_client_auth: String = "none".to_string(),
        doc: "TLS client certificates: none, requested or required",
        kafka: ["ssl.client.auth"],
        cluster: Hidden;
    /// How long an authenticated SASL session lasts before the client must
    /// re-authenticate on its connection (KIP-368); 0 = for the connection's life.
    connections_max_reauth_ms: u64 = 0,
        doc: "SASL session lifetime before re-authentication (0 = unlimited)",
        kafka: ["connections.max.reauth.ms"],
        cluster: Settable;
    /// How a client certificate's subject becomes its principal's name (KIP-371):
    /// `RULE:pattern/replacement/[LU]` rules and `DEFAULT`, separated by commas.
    ssl_principal_mapping_rules: String = "DEFAULT".to_string(),
        doc: "Rules turning a client certificate's subject into a principal name",
        kafka: ["ssl.principal.mapping.rules"],
        cluster: Settable;
    /// Admin HTTP listener (/metrics, /healthz, /readyz).
    admin_listen: String = "127.0.0.1:9644".to_string(),
        doc: "Admin HTTP listener address",
        cluster: Reserved;
    /// Cluster id; unset = generated once and persisted in `data_dir/meta.json`.
    cluster_id: Option<String> = None,
        doc: "Cluster id (unset = generated once, persisted in data_dir/meta.json)",
        help: "Cluster id (default: generated once)",
        cluster: Settable;
    /// Create unknown topics on Metadata/Produce requests.
    auto_create_topics: bool = true,
        doc: "Create unknown topics on Metadata/Produce",
        help: "Create unknown topics on Metadata/Produce (true|false)",
        kafka: ["auto.create.topics.enable"],
        cluster: Settable;
    /// Default partition count for new topics.
    num_partitions: i32 = 1,
        doc: "Default partition count for new topics",
        kafka: ["num.partitions"],
        cluster: Settable, min: 1;
    /// Default replication factor for new topics (at most the number of live brokers).
    default_replication_factor: i16 = 1,
        doc: "Default replication factor for new topics",
        kafka: ["default.replication.factor"],
        cluster: Settable, min: 1;
    /// Largest request frame accepted, in bytes.
    max_request_bytes: u32 = 104_857_600,
        doc: "Largest request frame accepted",
        kafka: ["socket.request.max.bytes"],
        cluster: Settable, min: 1024, max: i32::MAX;
    /// Bytes of requests read but not yet answered, summed over all Kafka
    /// connections (Kafka's `queued.max.request.bytes`); when it is used up the
    /// broker stops reading sockets until responses release memory.
    queued_max_request_bytes: u64 = 268_435_456,
        doc: "Bytes of requests read but not yet answered, over all connections",
        kafka: ["queued.max.request.bytes"],
        cluster: Settable;
    /// Open Kafka connections allowed from one client IP address; more are closed at once.
    max_connections_per_ip: u32 = 1000,
        doc: "Open Kafka connections allowed from one client address",
        kafka: ["max.connections.per.ip"],
        cluster: Settable, min: 1;
    /// Open Kafka connections allowed in total; more are closed at once.
    max_connections: u32 = 10_000,
        doc: "Open Kafka connections allowed in total",
        kafka: ["max.connections"],
        cluster: Settable, min: 1;
    /// Default `segment.bytes`.
    log_segment_bytes: u64 = 1_073_741_824,
        doc: "Default segment.bytes",
        kafka: ["log.segment.bytes"],
        cluster: Settable, min: 14;
    /// Default `segment.ms`.
    log_segment_ms: i64 = 604_800_000,
        doc: "Default segment.ms",
        kafka: ["log.roll.ms"],
        cluster: Settable, min: 1;
    /// Default `retention.ms` (-1 = unlimited).
    log_retention_ms: i64 = 604_800_000,
        doc: "Default retention.ms (-1 = unlimited)",
        help: "Default retention.ms",
        kafka: ["log.retention.ms"],
        cluster: Settable, min: -1;
    /// Default `retention.bytes` (-1 = unlimited).
    log_retention_bytes: i64 = -1,
        doc: "Default retention.bytes (-1 = unlimited)",
        help: "Default retention.bytes",
        kafka: ["log.retention.bytes"],
        cluster: Settable, min: -1;
    /// Default `max.message.bytes`.
    message_max_bytes: usize = 1_048_588,
        doc: "Default max.message.bytes",
        kafka: ["message.max.bytes"],
        cluster: Settable, min: 1;
    /// How often retention and time-based segment rolls run.
    log_retention_check_interval_ms: u64 = 300_000,
        doc: "Interval of retention and segment.ms checks",
        help: "Interval of retention checks",
        kafka: ["log.retention.check.interval.ms"],
        cluster: Settable, min: 1;
    /// How often compacted topics are checked for compaction.
    log_cleaner_interval_ms: u64 = 15_000,
        doc: "Interval of compaction checks of compacted topics",
        kafka: ["log.cleaner.backoff.ms"],
        cluster: Settable, min: 1;
    /// Fsync before answering `acks=all`. Turning this off is unsafe: acknowledged
    /// records can be lost on a machine crash.
    log_flush_on_ack: bool = true,
        doc: "Fsync before acknowledging acks=all (false is unsafe)",
        cluster: Settable;
    /// Segment files the broker keeps open at most, over all partitions; the
    /// least recently used are closed (after an fdatasync of unsynced writes)
    /// and reopened on their next use. Clamped at start to half the process's
    /// open-file limit (RLIMIT_NOFILE), leaving room for connections.
    log_max_open_files: usize = 10_000,
        doc: "Segment files kept open at most, over all partitions (LRU)",
        cluster: Settable, min: 1;
    /// Partitions of the internal `__consumer_offsets` topic (fixed once created).
    offsets_topic_num_partitions: i32 = 50,
        doc: "Partitions of __consumer_offsets (fixed once created)",
        help: "Partitions of __consumer_offsets",
        kafka: ["offsets.topic.num.partitions"],
        cluster: Settable, min: 1, max: MAX_PARTITIONS;
    /// Committed offsets of a group expire this long after the group became empty
    /// (for standalone commits: after the commit).
    offsets_retention_minutes: i64 = 10080,
        doc: "Committed offsets expire this long after their group became empty",
        kafka: ["offsets.retention.minutes"],
        cluster: Settable, min: 1;
    /// How often expired committed offsets are removed.
    offsets_retention_check_interval_ms: u64 = 600_000,
        doc: "Interval of committed-offset expiry checks",
        kafka: ["offsets.retention.check.interval.ms"],
        cluster: Settable, min: 1;
    /// How long the first rebalance of an empty group waits for more members to join.
    group_initial_rebalance_delay_ms: i64 = 3000,
        doc: "Wait for more members before the first rebalance of an empty group",
        help: "Wait before the first rebalance of an empty group",
        kafka: ["group.initial.rebalance.delay.ms"],
        cluster: Settable, min: 0;
    /// Smallest session timeout a group member may ask for.
    group_min_session_timeout_ms: i32 = 6000,
        doc: "Smallest session timeout a group member may ask for",
        kafka: ["group.min.session.timeout.ms"],
        cluster: Settable, min: 1;
    /// Largest session timeout a group member may ask for.
    group_max_session_timeout_ms: i32 = 1_800_000,
        doc: "Largest session timeout a group member may ask for",
        kafka: ["group.max.session.timeout.ms"],
        cluster: Settable;
    /// Session timeout of members of the consumer group protocol (KIP-848): the
    /// broker sets it, not the client.
    group_consumer_session_timeout_ms: i32 = 45_000,
        doc: "Session timeout of consumer-protocol (KIP-848) group members",
        kafka: ["group.consumer.session.timeout.ms"],
        cluster: Settable, min: 1;
    /// How often members of the consumer group protocol heartbeat.
    group_consumer_heartbeat_interval_ms: i32 = 5_000,
        doc: "Heartbeat interval of consumer-protocol (KIP-848) group members",
        kafka: ["group.consumer.heartbeat.interval.ms"],
        cluster: Settable, min: 1;
    /// Most members a consumer-protocol group may have (GROUP_MAX_SIZE_REACHED beyond).
    group_consumer_max_size: i32 = i32::MAX,
        doc: "Most members of a consumer-protocol (KIP-848) group",
        kafka: ["group.consumer.max.size"],
        cluster: Settable, min: 1;
    /// Server-side assignors of the consumer group protocol, comma-separated:
    /// `uniform` and/or `range`; the first is used when members name none.
    group_consumer_assignors: String = "uniform,range".to_string(),
        doc: "Server-side assignors of KIP-848 groups (uniform, range); the first is the default",
        kafka: ["group.consumer.assignors"],
        cluster: Settable;
    /// Longest transaction timeout a producer may ask for (INVALID_TRANSACTION_TIMEOUT above).
    transaction_max_timeout_ms: i32 = 900_000,
        doc: "Longest transaction timeout a producer may ask for",
        kafka: ["transaction.max.timeout.ms"],
        cluster: Settable, min: 1;
    /// Partitions of the internal `__transaction_state` topic (fixed once created).
    transaction_state_log_num_partitions: i32 = 50,
        doc: "Partitions of __transaction_state (fixed once created)",
        kafka: ["transaction.state.log.num.partitions"],
        cluster: Settable, min: 1, max: MAX_PARTITIONS;
    /// Replication factor of `__transaction_state` (clamped to the live brokers at creation).
    transaction_state_log_replication_factor: i16 = 3,
        doc: "Replication factor of __transaction_state (clamped to live brokers)",
        kafka: ["transaction.state.log.replication.factor"],
        cluster: Settable, min: 1;
    /// `min.insync.replicas` of `__transaction_state`.
    transaction_state_log_min_isr: i32 = 2,
        doc: "min.insync.replicas of __transaction_state",
        kafka: ["transaction.state.log.min.isr"],
        cluster: Settable, min: 1;
    /// How often the coordinator looks for transactions open past their timeout.
    transaction_abort_timed_out_transaction_cleanup_interval_ms: u64 = 10_000,
        doc: "Interval of the coordinator's check for timed-out transactions",
        kafka: ["transaction.abort.timed.out.transaction.cleanup.interval.ms"],
        cluster: Settable, min: 1;
    /// Largest metrics payload a client may push (KIP-714's PushTelemetry).
    telemetry_max_bytes: i32 = 1_048_576,
        doc: "Largest client metrics push (KIP-714)",
        kafka: ["telemetry.max.bytes"],
        cluster: Settable, min: 1;
    /// Replication factor of `__consumer_offsets` (clamped to the live brokers at creation).
    offsets_topic_replication_factor: i16 = 3,
        doc: "Replication factor of __consumer_offsets (clamped to live brokers)",
        help: "Replication factor of __consumer_offsets",
        kafka: ["offsets.topic.replication.factor"],
        cluster: Settable, min: 1;
    /// Metadata quorum (Raft) listener address (port 0 picks a free port).
    controller_listen: String = "127.0.0.1:9093".to_string(),
        doc: "Metadata quorum (Raft) listener address",
        help: "Metadata quorum (Raft) listener address (port 0 = any free port)",
        kafka: ["controller.listener.names"],
        cluster: Hidden;
    /// `host:port` of the metadata listener advertised to other brokers; unset = the bound address.
    controller_advertised_address: Option<String> = None,
        doc: "host:port of the metadata listener given to other brokers",
        cluster: Hidden;
    /// Metadata listener addresses of existing brokers to join through; empty = start a new cluster.
    seeds: Vec<String> = Vec::new(),
        doc: "Metadata listeners of existing brokers to join (empty = new cluster)",
        help: "Comma-separated metadata listeners of existing brokers to join",
        kafka: ["controller.quorum.bootstrap.servers"],
        cluster: Hidden;
    /// How many brokers are metadata quorum voters (the lowest node ids that joined); the
    /// others are observers.
    metadata_voters: usize = 3,
        doc: "Number of metadata quorum voters (the lowest node ids that joined)",
        help: "Number of metadata quorum voters",
        cluster: Settable, min: 1;
    /// This broker's rack (`broker.rack`), used for rack-aware replica placement.
    broker_rack: Option<String> = None,
        doc: "This broker's rack",
        kafka: ["broker.rack"],
        cluster: Hidden;
    /// A file whose content (surrounding whitespace trimmed) is this broker's rack, read once
    /// at start; the operator's `rackLabel` init container writes it from the node's label.
    broker_rack_file: Option<String> = None,
        doc: "File holding this broker's rack, read at start",
        cluster: Reserved;
    /// Incremental fetch sessions (KIP-227) the broker keeps at most (Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 answers every fetch without a session.
    max_incremental_fetch_session_cache_slots: usize = 1000,
        doc: "Incremental fetch sessions kept at most (0 = none)",
        kafka: ["max.incremental.fetch.session.cache.slots"],
        cluster: Settable;
    /// Number of samples a client quota's rate is measured over (Kafka's `quota.window.num`).
    quota_window_num: usize = 11,
        doc: "Samples a client quota's rate is measured over",
        kafka: ["quota.window.num"],
        cluster: Settable, min: 2;
    /// Length of each quota rate sample in ms (Kafka's `quota.window.size.seconds`, in ms).
    quota_window_size_ms: u64 = 1000,
        doc: "Length of each client quota rate sample (ms)",
        cluster: Settable, min: 1;
    /// Where a consumer that names its rack (`client.rack`, KIP-392) is told to fetch from:
    /// `leader` (always the partition leader, Kafka's default) or `rack_aware` (an in-sync
    /// follower in the consumer's rack that holds the offset, else the leader; Kafka's
    /// `RackAwareReplicaSelector`). Followers serve such consumers below their high watermark.
    replica_selector: String = "leader".to_string(),
        doc: "Replica a consumer with client.rack reads from: leader or rack_aware",
        cluster: Settable;
    /// How often this broker heartbeats the controller.
    broker_heartbeat_interval_ms: u64 = 500,
        doc: "Interval of heartbeats to the controller",
        kafka: ["broker.heartbeat.interval.ms"],
        cluster: Settable, min: 1;
    /// A broker without a heartbeat for this long is fenced and loses its leaderships.
    broker_session_timeout_ms: u64 = 6000,
        doc: "A broker without heartbeats for this long is fenced",
        kafka: ["broker.session.timeout.ms"],
        cluster: Settable;
    /// On SIGTERM, how long the broker waits for the controller to move its
    /// partition leaderships to other in-sync replicas before it stops anyway.
    controlled_shutdown_timeout_ms: u64 = 30000,
        doc: "Longest wait on SIGTERM for leadership to move off this broker before it stops",
        help: "Milliseconds a stopping broker waits for its leaderships to move",
        cluster: Settable;
    /// Default `min.insync.replicas`.
    min_insync_replicas: i32 = 1,
        doc: "Default min.insync.replicas",
        kafka: ["min.insync.replicas"],
        cluster: Settable, min: 1;
    /// A follower not caught up for this long leaves the ISR.
    replica_lag_time_max_ms: u64 = 30_000,
        doc: "A follower lagging this long leaves the ISR",
        kafka: ["replica.lag.time.max.ms"],
        cluster: Settable, min: 1;
    /// Bytes a follower asks for per partition in one fetch.
    replica_fetch_max_bytes: i32 = 1_048_576,
        doc: "Bytes per partition of one follower fetch",
        kafka: ["replica.fetch.max.bytes"],
        cluster: Settable, min: 1;
    /// Default `unclean.leader.election.enable` (may lose acknowledged data).
    unclean_leader_election_enable: bool = false,
        doc: "Default unclean.leader.election.enable",
        help: "Default unclean.leader.election.enable (true|false)",
        kafka: ["unclean.leader.election.enable"],
        cluster: Settable;
    /// The controller moves leadership back to preferred replicas on its own.
    auto_leader_rebalance_enable: bool = true,
        doc: "The controller moves leadership back to preferred replicas",
        help: "Move leadership back to preferred replicas automatically (true|false)",
        cluster: Settable;
    /// How often the controller checks the preferred-leader imbalance.
    leader_imbalance_check_interval_seconds: u64 = 300,
        doc: "How often the controller checks the preferred-leader imbalance",
        help: "Seconds between preferred-leader imbalance checks",
        cluster: Settable, min: 1;
    /// A broker's partitions are rebalanced when more than this percentage of
    /// those it should lead (as preferred replica) are led by others.
    leader_imbalance_per_broker_percentage: u32 = 10,
        doc: "Imbalance percentage per broker that triggers a preferred-leader rebalance",
        help: "Per-broker imbalance percentage that triggers a rebalance",
        cluster: Settable, min: 0, max: 100;
    /// SASL mechanisms that SASL listeners accept: SCRAM-SHA-256, SCRAM-SHA-512 and
    /// PLAIN (PLAIN sends the password itself: enable it only on TLS listeners).
    sasl_enabled_mechanisms: Vec<String> =
        vec!["SCRAM-SHA-256".to_string(), "SCRAM-SHA-512".to_string()],
        doc: "SASL mechanisms accepted (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)",
        help: "Comma-separated SASL mechanisms accepted",
        kafka: ["sasl.enabled.mechanisms"],
        cluster: Settable;
    /// A SCRAM user the broker creates (SCRAM-SHA-256 and -512) when the cluster has no
    /// credential for that name, so that a new cluster can be administered; unset = none.
    sasl_bootstrap_user: Option<String> = None,
        doc: "SCRAM user created when absent, the first administrator (unset = none)",
        help: "SCRAM user to create when absent (the first administrator)",
        cluster: Hidden;
    /// File holding the bootstrap user's password (one line; surrounding whitespace is
    /// ignored), so the password is in neither the config nor the process list.
    sasl_bootstrap_password_file: Option<String> = None,
        doc: "File holding the bootstrap user's password",
        help: "File holding the bootstrap user's password",
        cluster: Hidden;
    /// SASL mechanism brokers use with each other on a SASL_PLAINTEXT inter-broker listener.
    inter_broker_sasl_mechanism: String = "SCRAM-SHA-512".to_string(),
        doc: "SASL mechanism brokers authenticate to each other with",
        kafka: ["sasl.mechanism.inter.broker.protocol"],
        cluster: Hidden;
    /// SASL user brokers authenticate to each other as (unset = the bootstrap user).
    inter_broker_sasl_username: Option<String> = None,
        doc: "SASL user brokers authenticate to each other as (unset = sasl_bootstrap_user)",
        cluster: Hidden;
    /// File holding that user's password.
    inter_broker_sasl_password_file: Option<String> = None,
        doc: "File holding the inter-broker SASL user's password",
        cluster: Hidden;
    /// PEM certificate chain this broker presents on the metadata quorum's port and to
    /// the peers it dials; with the key and the truststore, the quorum speaks mutual TLS.
    controller_ssl_certificate_location: Option<String> = None,
        doc: "PEM certificate chain for the metadata quorum's mutual TLS",
        cluster: Hidden;
    /// PEM private key of that certificate.
    controller_ssl_key_location: Option<String> = None,
        doc: "PEM key of the metadata quorum certificate",
        cluster: Hidden;
    /// PEM CA certificates peers' certificates must chain to (the cluster's CA).
    controller_ssl_truststore_location: Option<String> = None,
        doc: "PEM CA certificates the metadata quorum's peers must chain to",
        cluster: Hidden;
    /// Check every request against the ACLs (Kafka's `authorizer.class.name` set to its
    /// StandardAuthorizer); off = every client may do everything.
    authorizer_enabled: bool = false,
        doc: "Check every request against the ACLs",
        help: "Check every request against the ACLs (true|false)",
        kafka: ["authorizer.class.name"],
        cluster: Settable;
    /// Principals allowed everything, e.g. `User:admin` (the SASL bootstrap user is one too).
    super_users: Vec<String> = Vec::new(),
        doc: "Principals allowed everything (User:name)",
        help: "Comma-separated principals allowed everything (User:name)",
        kafka: ["super.users"],
        cluster: Settable;
    /// With the authorizer on, allow a resource that has no ACL at all (Kafka's default
    /// is false, and so is ours: a new topic is closed until ACLs open it).
    allow_everyone_if_no_acl_found: bool = false,
        doc: "Allow resources that have no ACL at all",
        help: "Allow resources that have no ACL at all (true|false)",
        kafka: ["allow.everyone.if.no.acl.found"],
        cluster: Settable;
}

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

    /// Reads `broker_rack_file` (when set) into `broker_rack`: the file's
    /// content, surrounding whitespace trimmed. A missing, unreadable or
    /// empty file is an error naming it, so a broker never starts without
    /// the rack it was meant to have.
    pub fn resolve_rack_file(&mut self) -> Result<(), ConfigError> {
        let Some(file) = self.broker_rack_file.take() else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
            path: PathBuf::from(&file),
            source,
        })?;
        let rack = text.trim();
        if rack.is_empty() {
            return Err(ConfigError::Invalid {
                key: "broker_rack_file".into(),
                message: format!("{file} is empty"),
            });
        }
        self.broker_rack = Some(rack.to_string());
        Ok(())
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
            if find_key(&key).is_some() {
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
        let Some(spec) = find_key(key) else {
            return Err(format!("unknown config key {key:?}"));
        };
        let toml_value = match spec.kind {
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

    /// Checks values that parse but cannot work: every declared range (in
    /// declaration order), then the rules that relate keys or read addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_ranges()?;
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message: message.to_string(),
            })
        };
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            return invalid(
                "broker_session_timeout_ms",
                "must be larger than broker_heartbeat_interval_ms",
            );
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
        if let Some(m) = self
            .sasl_enabled_mechanisms
            .iter()
            .find(|m| !matches!(m.as_str(), "SCRAM-SHA-256" | "SCRAM-SHA-512" | "PLAIN"))
        {
            return invalid(
                "sasl_enabled_mechanisms",
                &format!("{m:?} is not supported: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"),
            );
        }
        if self.sasl_bootstrap_user.is_some() != self.sasl_bootstrap_password_file.is_some() {
            return invalid(
                "sasl_bootstrap_user",
                "sasl_bootstrap_user and sasl_bootstrap_password_file go together",
            );
        }
        if let Some(bad) = self.super_users.iter().find(|p| {
            !p.split_once(':')
                .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
        }) {
            return invalid(
                "super_users",
                &format!("{bad:?} is not a principal: expected User:name"),
            );
        }
        if self.inter_broker_sasl_username.is_some()
            != self.inter_broker_sasl_password_file.is_some()
        {
            return invalid(
                "inter_broker_sasl_username",
                "inter_broker_sasl_username and inter_broker_sasl_password_file go together",
            );
        }
        if !matches!(
            self.inter_broker_sasl_mechanism.as_str(),
            "SCRAM-SHA-256" | "SCRAM-SHA-512" | "PLAIN"
        ) {
            return invalid(
                "inter_broker_sasl_mechanism",
                &format!(
                    "{:?}: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                    self.inter_broker_sasl_mechanism
                ),
            );
        }
        let quorum_tls = [
            &self.controller_ssl_certificate_location,
            &self.controller_ssl_key_location,
            &self.controller_ssl_truststore_location,
        ];
        if quorum_tls.iter().any(|k| k.is_some()) && !quorum_tls.iter().all(|k| k.is_some()) {
            return invalid(
                "controller_ssl_certificate_location",
                "the metadata quorum's TLS needs controller_ssl_certificate_location, controller_ssl_key_location and controller_ssl_truststore_location together",
            );
        }
        if self.sasl_bootstrap_user.as_deref() == Some("") {
            return invalid("sasl_bootstrap_user", "must not be empty");
        }
        if let Some(seed) = self.seeds.iter().find(|s| split_host_port(s).is_none()) {
            return invalid("seeds", &format!("{seed:?} is not host:port"));
        }
        if let Some(rack) = &self.broker_rack {
            if rack.is_empty() {
                return invalid("broker_rack", "must not be empty");
            }
        }
        if !matches!(self.replica_selector.as_str(), "leader" | "rack_aware") {
            return invalid(
                "replica_selector",
                &format!(
                    "{:?} is not a replica selector: expected leader or rack_aware",
                    self.replica_selector
                ),
            );
        }
        if let Some(file) = &self.broker_rack_file {
            if file.is_empty() {
                return invalid("broker_rack_file", "must not be empty");
            }
            if self.broker_rack.is_some() {
                return invalid(
                    "broker_rack_file",
                    "set either broker_rack or broker_rack_file, not both",
                );
            }
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
        let assignors: Vec<&str> = self
            .group_consumer_assignors
            .split(',')
            .map(str::trim)
            .collect();
        if assignors.iter().any(|a| !matches!(*a, "uniform" | "range")) {
            return invalid(
                "group_consumer_assignors",
                &format!(
                    "{:?}: expected a comma-separated list of uniform and range",
                    self.group_consumer_assignors
                ),
            );
        }
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return invalid(
                "group_consumer_heartbeat_interval_ms",
                "must be < group_consumer_session_timeout_ms",
            );
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
        self.validate_listeners()
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

#[cfg(test)]
#[path = "broker_config_tests.rs"]
mod tests;
