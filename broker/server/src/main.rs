//! `runnel-broker`: parses flags, loads the config, starts tracing and runs the
//! broker until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use runnel_server::config::BrokerConfig;

/// Runnel broker: a Kafka-compatible event streaming server.
#[derive(Debug, Parser)]
#[command(name = "runnel-broker", version)]
struct Args {
    /// TOML config file (see runnel.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This broker's node id.
    #[arg(long)]
    node_id: Option<String>,
    /// Directory for partition logs and metadata.
    #[arg(long)]
    data_dir: Option<String>,
    /// Kafka listener address (port 0 = any free port).
    #[arg(long)]
    listen: Option<String>,
    /// host:port advertised to clients.
    #[arg(long)]
    advertised_address: Option<String>,
    /// Admin HTTP listener address.
    #[arg(long)]
    admin_listen: Option<String>,
    /// Cluster id (default: generated once).
    #[arg(long)]
    cluster_id: Option<String>,
    /// Create unknown topics on Metadata/Produce (true|false).
    #[arg(long)]
    auto_create_topics: Option<String>,
    /// Default partition count for new topics.
    #[arg(long)]
    num_partitions: Option<String>,
    /// Default replication factor for new topics.
    #[arg(long)]
    default_replication_factor: Option<String>,
    /// Largest request frame accepted.
    #[arg(long)]
    max_request_bytes: Option<String>,
    /// Bytes of requests read but not yet answered, over all connections.
    #[arg(long)]
    queued_max_request_bytes: Option<String>,
    /// Open Kafka connections allowed from one client address.
    #[arg(long)]
    max_connections_per_ip: Option<String>,
    /// Open Kafka connections allowed in total.
    #[arg(long)]
    max_connections: Option<String>,
    /// Default segment.bytes.
    #[arg(long)]
    log_segment_bytes: Option<String>,
    /// Default segment.ms.
    #[arg(long)]
    log_segment_ms: Option<String>,
    /// Default retention.ms.
    #[arg(long)]
    log_retention_ms: Option<String>,
    /// Default retention.bytes.
    #[arg(long)]
    log_retention_bytes: Option<String>,
    /// Default max.message.bytes.
    #[arg(long)]
    message_max_bytes: Option<String>,
    /// Interval of retention checks.
    #[arg(long)]
    log_retention_check_interval_ms: Option<String>,
    /// Interval of compaction checks of compacted topics.
    #[arg(long)]
    log_cleaner_interval_ms: Option<String>,
    /// Fsync before acknowledging acks=all (false is unsafe).
    #[arg(long)]
    log_flush_on_ack: Option<String>,
    /// Partitions of __consumer_offsets.
    #[arg(long)]
    offsets_topic_num_partitions: Option<String>,
    /// Committed offsets expire this long after their group became empty.
    #[arg(long)]
    offsets_retention_minutes: Option<String>,
    /// Interval of committed-offset expiry checks.
    #[arg(long)]
    offsets_retention_check_interval_ms: Option<String>,
    /// Wait before the first rebalance of an empty group.
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<String>,
    /// Smallest session timeout a group member may ask for.
    #[arg(long)]
    group_min_session_timeout_ms: Option<String>,
    /// Largest session timeout a group member may ask for.
    #[arg(long)]
    group_max_session_timeout_ms: Option<String>,
    /// Replication factor of __consumer_offsets.
    #[arg(long)]
    offsets_topic_replication_factor: Option<String>,
    /// Metadata quorum (Raft) listener address (port 0 = any free port).
    #[arg(long)]
    controller_listen: Option<String>,
    /// host:port of the metadata listener given to other brokers.
    #[arg(long)]
    controller_advertised_address: Option<String>,
    /// Comma-separated metadata listeners of existing brokers to join.
    #[arg(long)]
    seeds: Option<String>,
    /// Number of metadata quorum voters.
    #[arg(long)]
    metadata_voters: Option<String>,
    /// This broker's rack.
    #[arg(long)]
    broker_rack: Option<String>,
    /// Interval of heartbeats to the controller.
    #[arg(long)]
    broker_heartbeat_interval_ms: Option<String>,
    /// A broker without heartbeats for this long is fenced.
    #[arg(long)]
    broker_session_timeout_ms: Option<String>,
    /// Default min.insync.replicas.
    #[arg(long)]
    min_insync_replicas: Option<String>,
    /// A follower lagging this long leaves the ISR.
    #[arg(long)]
    replica_lag_time_max_ms: Option<String>,
    /// Bytes per partition of one follower fetch.
    #[arg(long)]
    replica_fetch_max_bytes: Option<String>,
    /// Default unclean.leader.election.enable (true|false).
    #[arg(long)]
    unclean_leader_election_enable: Option<String>,
    /// Move leadership back to preferred replicas automatically (true|false).
    #[arg(long)]
    auto_leader_rebalance_enable: Option<String>,
    /// Seconds between preferred-leader imbalance checks.
    #[arg(long)]
    leader_imbalance_check_interval_seconds: Option<String>,
    /// Per-broker imbalance percentage that triggers a rebalance.
    #[arg(long)]
    leader_imbalance_per_broker_percentage: Option<String>,
}

impl Args {
    fn overrides(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            ("node_id", self.node_id.as_ref()),
            ("data_dir", self.data_dir.as_ref()),
            ("listen", self.listen.as_ref()),
            ("advertised_address", self.advertised_address.as_ref()),
            ("admin_listen", self.admin_listen.as_ref()),
            ("cluster_id", self.cluster_id.as_ref()),
            ("auto_create_topics", self.auto_create_topics.as_ref()),
            ("num_partitions", self.num_partitions.as_ref()),
            (
                "default_replication_factor",
                self.default_replication_factor.as_ref(),
            ),
            ("max_request_bytes", self.max_request_bytes.as_ref()),
            (
                "queued_max_request_bytes",
                self.queued_max_request_bytes.as_ref(),
            ),
            (
                "max_connections_per_ip",
                self.max_connections_per_ip.as_ref(),
            ),
            ("max_connections", self.max_connections.as_ref()),
            ("log_segment_bytes", self.log_segment_bytes.as_ref()),
            ("log_segment_ms", self.log_segment_ms.as_ref()),
            ("log_retention_ms", self.log_retention_ms.as_ref()),
            ("log_retention_bytes", self.log_retention_bytes.as_ref()),
            ("message_max_bytes", self.message_max_bytes.as_ref()),
            (
                "log_retention_check_interval_ms",
                self.log_retention_check_interval_ms.as_ref(),
            ),
            (
                "log_cleaner_interval_ms",
                self.log_cleaner_interval_ms.as_ref(),
            ),
            ("log_flush_on_ack", self.log_flush_on_ack.as_ref()),
            (
                "offsets_topic_num_partitions",
                self.offsets_topic_num_partitions.as_ref(),
            ),
            (
                "offsets_retention_minutes",
                self.offsets_retention_minutes.as_ref(),
            ),
            (
                "offsets_retention_check_interval_ms",
                self.offsets_retention_check_interval_ms.as_ref(),
            ),
            (
                "group_initial_rebalance_delay_ms",
                self.group_initial_rebalance_delay_ms.as_ref(),
            ),
            (
                "group_min_session_timeout_ms",
                self.group_min_session_timeout_ms.as_ref(),
            ),
            (
                "group_max_session_timeout_ms",
                self.group_max_session_timeout_ms.as_ref(),
            ),
            (
                "offsets_topic_replication_factor",
                self.offsets_topic_replication_factor.as_ref(),
            ),
            ("controller_listen", self.controller_listen.as_ref()),
            (
                "controller_advertised_address",
                self.controller_advertised_address.as_ref(),
            ),
            ("seeds", self.seeds.as_ref()),
            ("metadata_voters", self.metadata_voters.as_ref()),
            ("broker_rack", self.broker_rack.as_ref()),
            (
                "broker_heartbeat_interval_ms",
                self.broker_heartbeat_interval_ms.as_ref(),
            ),
            (
                "broker_session_timeout_ms",
                self.broker_session_timeout_ms.as_ref(),
            ),
            ("min_insync_replicas", self.min_insync_replicas.as_ref()),
            (
                "replica_lag_time_max_ms",
                self.replica_lag_time_max_ms.as_ref(),
            ),
            (
                "replica_fetch_max_bytes",
                self.replica_fetch_max_bytes.as_ref(),
            ),
            (
                "unclean_leader_election_enable",
                self.unclean_leader_election_enable.as_ref(),
            ),
            (
                "auto_leader_rebalance_enable",
                self.auto_leader_rebalance_enable.as_ref(),
            ),
            (
                "leader_imbalance_check_interval_seconds",
                self.leader_imbalance_check_interval_seconds.as_ref(),
            ),
            (
                "leader_imbalance_per_broker_percentage",
                self.leader_imbalance_per_broker_percentage.as_ref(),
            ),
        ]
    }
}

fn load_config(args: &Args) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::load(args.config.as_deref())?;
    for (key, value) in args.overrides() {
        if let Some(value) = value {
            config.set(key, value).map_err(|e| {
                anyhow::anyhow!("invalid value for --{}: {e}", key.replace('_', "-"))
            })?;
        }
    }
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(runnel_server::runtime::DEFAULT_LOG_FILTER)
            }),
        )
        .init();
    let config = load_config(&args).context("configuration error")?;
    runnel_server::run(config, runnel_server::runtime::shutdown_signal()?)
        .await
        .context("broker failed")?;
    Ok(())
}
