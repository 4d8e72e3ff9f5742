//! Command-line syntax: every command and flag of `runnel`, parsed by clap.
//! Checks that clap can express (value formats, flags that need each other)
//! live here so bad arguments exit with code 2 before anything connects.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use runnel_client::Acks;

use crate::commands::offset_reset::{parse_datetime, parse_topic_spec, ResetMode, TopicSpec};

/// The `runnel` command line.
#[derive(Debug, Parser)]
#[command(
    name = "runnel",
    version,
    about = "Runnel: a Kafka-compatible event streaming platform",
    long_about = "Runnel: a Kafka-compatible event streaming platform.\n\n\
                  `runnel dev` starts a local broker; the other commands talk to any \
                  Kafka-compatible broker at --bootstrap-server."
)]
pub(crate) struct Cli {
    /// Broker to connect to (comma-separated list allowed).
    #[arg(
        short = 'b',
        long,
        env = "RUNNEL_BOOTSTRAP_SERVER",
        default_value = "localhost:9092",
        global = true,
        value_name = "HOST:PORT"
    )]
    pub(crate) bootstrap_server: String,

    /// Output format of `topic` and `group` commands.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub(crate) output: OutputFormat,

    /// Client settings in Kafka's properties form, like the Kafka tools' --command-config:
    /// `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), `sasl.mechanism`,
    /// `sasl.username` and `sasl.password` (or `sasl.jaas.config` with username and password),
    /// `ssl.ca.location` (PEM; the system's CAs when unset), and for mutual TLS
    /// `ssl.certificate.location` and `ssl.key.location`.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "RUNNEL_COMMAND_CONFIG"
    )]
    pub(crate) command_config: Option<PathBuf>,

    /// SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); with --sasl-username, the
    /// connections authenticate (the password comes from RUNNEL_SASL_PASSWORD).
    #[arg(
        long,
        global = true,
        env = "RUNNEL_SASL_MECHANISM",
        value_name = "MECHANISM"
    )]
    pub(crate) sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long, global = true, env = "RUNNEL_SASL_USERNAME", value_name = "USER")]
    pub(crate) sasl_username: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable, aligned columns.
    Table,
    /// Machine-readable JSON on one line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a local broker (or a local cluster with --brokers N) in this process until Ctrl-C.
    Dev(DevArgs),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one record per line of standard input.
    Produce(ProduceArgs),
    /// Print records of a topic, one value per line.
    Consume(ConsumeArgs),
    /// List, describe, reset offsets of and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Describe the cluster: brokers, controller, metadata quorum, partition health.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show and change broker configs (dynamic ones: the replication throttle rates).
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Show and change client quotas (byte rates per user and/or client id), like
    /// `kafka-configs --entity-type clients|users`.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Client metrics subscriptions (KIP-714): which metrics clients push and how often,
    /// like `kafka-client-metrics`.
    #[command(subcommand)]
    ClientMetrics(ClientMetricsCommand),
    /// Transactions: every transactional id the brokers coordinate, or one id's state
    /// (like `kafka-transactions list|describe`).
    #[command(subcommand)]
    Transactions(TransactionsCommand),
    /// SASL/SCRAM users: create (or change the password of), delete and list them, like
    /// `kafka-configs --entity-type users --alter --add-config SCRAM-SHA-256=...`.
    #[command(subcommand)]
    User(UserCommand),
    /// ACLs: create, list and delete them, like `kafka-acls --add|--list|--remove`.
    #[command(subcommand)]
    Acl(AclCommand),
}

/// `runnel acl` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Create ACLs: every given principal gets every given operation on the resource, e.g.
    /// `--allow-principal User:alice --operation read --operation describe --topic orders`.
    Create(AclCreateArgs),
    /// List ACLs (all, or those on the given resource or of the given principal).
    List(AclFilterArgs),
    /// Delete the ACLs matching the given resource, principal, operation and permission.
    Delete(AclFilterArgs),
}

/// The resource an ACL command names.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("resource").args(["topic", "group", "cluster", "transactional_id"])))]
pub(crate) struct AclResourceArgs {
    /// A topic (`*` for every topic).
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// A consumer group (`*` for every group).
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// The cluster.
    #[arg(long)]
    pub(crate) cluster: bool,
    /// A transactional id (`*` for every id).
    #[arg(long)]
    pub(crate) transactional_id: Option<String>,
    /// literal or prefixed (`create`, default literal); also any or match for `list` and
    /// `delete` (default any).
    #[arg(long)]
    pub(crate) resource_pattern_type: Option<String>,
}

/// `runnel acl create` flags.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("principals").required(true).multiple(true).args(["allow_principal", "deny_principal"])))]
pub(crate) struct AclCreateArgs {
    #[command(flatten)]
    pub(crate) resource: AclResourceArgs,
    /// Principals allowed (`User:alice`, `User:*`; repeatable).
    #[arg(long)]
    pub(crate) allow_principal: Vec<String>,
    /// Principals denied (repeatable).
    #[arg(long)]
    pub(crate) deny_principal: Vec<String>,
    /// Operations (read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write, all; repeatable).
    #[arg(long, required = true)]
    pub(crate) operation: Vec<String>,
    /// The client host the ACLs apply to (an IP address, or `*`).
    #[arg(long, default_value = "*")]
    pub(crate) host: String,
}

/// `runnel acl list|delete` flags: every one left out matches anything.
#[derive(Debug, Args)]
pub(crate) struct AclFilterArgs {
    #[command(flatten)]
    pub(crate) resource: AclResourceArgs,
    /// Only the ACLs of this principal.
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// Only this operation.
    #[arg(long)]
    pub(crate) operation: Option<String>,
    /// Only allow or deny.
    #[arg(long)]
    pub(crate) permission: Option<String>,
}

/// SCRAM mechanisms a user command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScramMechanismArg {
    /// SCRAM-SHA-256.
    #[value(name = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    Sha512,
}

/// `runnel user` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user, or set a new password (the password is salted and hashed before it is sent).
    Create(UserCreateArgs),
    /// Delete a user's credentials (every mechanism unless --mechanism is given).
    Delete {
        /// User name.
        name: String,
        /// Only this mechanism (repeatable).
        #[arg(long, value_enum)]
        mechanism: Vec<ScramMechanismArg>,
    },
    /// List users and their mechanisms (every user, or those named).
    List {
        /// User names.
        names: Vec<String>,
    },
}

/// `runnel user create` flags.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("password").required(true).args(["password_file", "password_stdin"])))]
pub(crate) struct UserCreateArgs {
    /// User name.
    pub(crate) name: String,
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Mechanisms to set (repeatable; default both).
    #[arg(long, value_enum)]
    pub(crate) mechanism: Vec<ScramMechanismArg>,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    pub(crate) iterations: i32,
}

/// `runnel transactions` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TransactionsCommand {
    /// Every transactional id with its producer id, state and coordinator.
    List,
    /// One transactional id: state, producer id and epoch, timeout, start time, partitions.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
}

/// `runnel client-metrics` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientMetricsCommand {
    /// List the subscriptions.
    List,
    /// Show a subscription's configs.
    Describe {
        /// Subscription name.
        name: String,
    },
    /// Create or change a subscription, e.g. `producers --metrics org.apache.kafka.producer.
    /// --interval-ms 60000 --match client_software_name=librdkafka`.
    Alter(ClientMetricsAlterArgs),
    /// Remove a subscription.
    Delete {
        /// Subscription name.
        name: String,
    },
}

/// `runnel client-metrics alter` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["metrics", "interval_ms", "match"])
))]
pub(crate) struct ClientMetricsAlterArgs {
    /// Subscription name.
    pub(crate) name: String,
    /// Metric name prefixes, comma-separated (`*`: every metric; empty: none).
    #[arg(long)]
    pub(crate) metrics: Option<String>,
    /// How often matching clients push, in ms (100 to 3600000).
    #[arg(long)]
    pub(crate) interval_ms: Option<i32>,
    /// Which clients, comma-separated `selector=regex` (client_id, client_instance_id,
    /// client_software_name, client_software_version, client_source_address,
    /// client_source_port); empty: every client.
    #[arg(long = "match")]
    pub(crate) r#match: Option<String>,
}

/// `runnel quota` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// List quotas, of every entity or of those matching the given user and/or client id.
    Describe(QuotaEntityArgs),
    /// Set or remove quotas of one entity, e.g.
    /// `--client-id app --add producer_byte_rate=1048576`.
    Alter(QuotaAlterArgs),
}

/// A quota entity: a user and/or a client id, each by name or as the default.
#[derive(Debug, Args)]
pub(crate) struct QuotaEntityArgs {
    /// User (principal name; clients without authentication are ANONYMOUS).
    #[arg(long, conflicts_with = "user_default")]
    pub(crate) user: Option<String>,
    /// The default user (Kafka's `--entity-type users --entity-default`).
    #[arg(long)]
    pub(crate) user_default: bool,
    /// Client id.
    #[arg(long, conflicts_with = "client_default")]
    pub(crate) client_id: Option<String>,
    /// The default client id (Kafka's `--entity-type clients --entity-default`).
    #[arg(long)]
    pub(crate) client_default: bool,
}

/// `runnel quota alter` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["add", "delete"])
))]
pub(crate) struct QuotaAlterArgs {
    #[command(flatten)]
    pub(crate) entity: QuotaEntityArgs,
    /// Set a quota, e.g. producer_byte_rate=1048576 or consumer_byte_rate=2097152 (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) add: Vec<(String, String)>,
    /// Remove a quota (repeatable).
    #[arg(long, value_name = "KEY")]
    pub(crate) delete: Vec<String>,
}

/// `runnel broker` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BrokerCommand {
    /// Show a broker's configs with their sources (or the cluster-wide dynamic defaults).
    Describe(BrokerTarget),
    /// Set or remove dynamic configs of a broker or the cluster-wide default, e.g.
    /// `--config follower.replication.throttled.rate=10485760`.
    Alter(BrokerAlterArgs),
}

/// Which broker resource: one broker id, or the cluster-wide default.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker", "default"])))]
pub(crate) struct BrokerTarget {
    /// Broker id.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) broker: Option<i32>,
    /// The cluster-wide default (Kafka's `--entity-default`).
    #[arg(long)]
    pub(crate) default: bool,
}

/// `runnel broker alter` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["configs", "delete_configs"])
))]
pub(crate) struct BrokerAlterArgs {
    #[command(flatten)]
    pub(crate) target: BrokerTarget,
    /// Set a dynamic config, e.g. leader.replication.throttled.rate=1048576 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) configs: Vec<(String, String)>,
    /// Remove a dynamic config (repeatable).
    #[arg(long = "delete-config", value_name = "KEY", value_parser = parse_config_key)]
    pub(crate) delete_configs: Vec<String>,
}

/// `runnel cluster` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Brokers, controller, quorum state, under-replicated and offline partition counts.
    Describe,
}

/// `runnel dev` flags.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Directory for the broker's data.
    #[arg(
        long,
        env = "RUNNEL_DATA_DIR",
        default_value = "./runnel-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// Kafka listener address (port 0 picks a free port).
    #[arg(
        long,
        env = "RUNNEL_LISTEN",
        default_value = "127.0.0.1:9092",
        value_name = "ADDR"
    )]
    pub(crate) listen: String,
    /// Admin HTTP listener address for /metrics, /healthz, /readyz.
    #[arg(
        long,
        env = "RUNNEL_ADMIN_LISTEN",
        default_value = "127.0.0.1:9644",
        value_name = "ADDR"
    )]
    pub(crate) admin_listen: String,
    /// Number of brokers: 1 runs a single broker; N > 1 runs a local cluster with Kafka ports
    /// PORT..PORT+N-1, admin ports ADMIN..ADMIN+N-1, metadata (controller) ports
    /// PORT+100..PORT+100+N-1, and data in DIR/broker-<id>.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub(crate) brokers: u16,
    /// Metadata quorum (controller) listener of the first broker (default: 127.0.0.1:9093 for one
    /// broker, Kafka port + 100 for a cluster).
    #[arg(long, env = "RUNNEL_CONTROLLER_LISTEN", value_name = "ADDR")]
    pub(crate) controller_listen: Option<String>,
    /// Racks of the brokers, one per broker in node id order (e.g. `RACK0,RACK1,RACK2`), for
    /// rack-aware placement and fetching from the closest replica.
    #[arg(long, value_delimiter = ',', value_name = "RACK,...")]
    pub(crate) racks: Vec<String>,
}

/// `runnel topic` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create(TopicCreateArgs),
    /// List topics (internal topics such as `__consumer_offsets` only with --include-internal).
    List(TopicListArgs),
    /// Show a topic's partitions, offsets and config overrides.
    Describe(TopicNameArg),
    /// Add partitions or change config overrides.
    Alter(TopicAlterArgs),
    /// Delete a topic and its data.
    Delete(TopicNameArg),
    /// Move replicas: change the replication factor, move every replica off a broker, or apply
    /// a JSON plan (kafka-reassign-partitions format); follows progress until done.
    Reassign(TopicReassignArgs),
}

/// `runnel topic reassign` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("how")
        .required(true)
        .args(["replication_factor", "move_off", "plan", "remove_throttle"])
))]
pub(crate) struct TopicReassignArgs {
    /// Topic name (not needed with --plan).
    #[arg(required_unless_present = "plan")]
    pub(crate) name: Option<String>,
    /// Give every partition this many replicas.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) replication_factor: Option<u16>,
    /// Move every replica of the topic off this broker.
    #[arg(long, value_name = "BROKER")]
    pub(crate) move_off: Option<i32>,
    /// A JSON plan: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}.
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: Option<PathBuf>,
    /// Print the plan without starting it.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Start the reassignment and return without following it.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Give up following after this many seconds (the reassignment itself continues).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub(crate) timeout_secs: u64,
    /// Limit replication of the moving partitions to this many bytes/s (leader and follower
    /// side, like kafka-reassign-partitions --throttle); removed once the reassignment is done.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) throttle: Option<u64>,
    /// Remove the throttle a reassignment of this topic left behind (after --no-wait, a
    /// timeout or a cancel): the topic's throttled-replica lists and every broker's rates.
    #[arg(long, conflicts_with_all = ["throttle", "plan"])]
    pub(crate) remove_throttle: bool,
}

/// `runnel topic list` flags.
#[derive(Debug, Args)]
pub(crate) struct TopicListArgs {
    /// Also list internal topics (`__consumer_offsets`).
    #[arg(long)]
    pub(crate) include_internal: bool,
}

/// A topic name.
#[derive(Debug, Args)]
pub(crate) struct TopicNameArg {
    /// Topic name.
    pub(crate) name: String,
}

/// `runnel topic create` flags.
#[derive(Debug, Args)]
pub(crate) struct TopicCreateArgs {
    /// Topic name.
    pub(crate) name: String,
    /// Number of partitions (default: the broker's num_partitions).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) partitions: Option<i32>,
    /// Replication factor (default: the broker's default).
    #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
    pub(crate) replication_factor: Option<i16>,
    /// A config override, e.g. retention.ms=3600000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) configs: Vec<(String, String)>,
}

/// `runnel topic alter` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["partitions", "configs", "delete_configs"])
))]
pub(crate) struct TopicAlterArgs {
    /// Topic name.
    pub(crate) name: String,
    /// New (larger) total number of partitions.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) partitions: Option<i32>,
    /// Set a config override, e.g. retention.ms=3600000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) configs: Vec<(String, String)>,
    /// Remove a config override, reverting to the default (repeatable).
    #[arg(long = "delete-config", value_name = "KEY", value_parser = parse_config_key)]
    pub(crate) delete_configs: Vec<String>,
}

/// `runnel produce` flags.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to produce to.
    pub(crate) topic: String,
    /// Split each line at the first SEP into key and value; every line must contain it.
    #[arg(long, value_name = "SEP", value_parser = parse_separator)]
    pub(crate) key_separator: Option<String>,
    /// Send every record to this partition instead of partitioning by key.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub(crate) acks: Acks,
}

/// `runnel consume` flags.
#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    pub(crate) topic: String,
    /// Start at the earliest offset instead of the end (with --group: for
    /// partitions that have no committed offset, i.e. auto.offset.reset=earliest).
    #[arg(long, conflicts_with = "offset")]
    pub(crate) from_beginning: bool,
    /// Consume as a member of this consumer group: read the partitions the
    /// group assigns, from its committed offsets, and commit as you go.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["partition", "offset"])]
    pub(crate) group: Option<String>,
    /// With --group: a static member id (group.instance.id). A static member
    /// does not leave the group on exit, so restarting it within the session
    /// timeout gets its partitions back without a rebalance.
    #[arg(long, value_name = "ID", requires = "group")]
    pub(crate) group_instance_id: Option<String>,
    /// With --group: how often to commit offsets (they are also committed on exit).
    #[arg(long, value_name = "MS", default_value_t = 5000, requires = "group")]
    pub(crate) commit_interval_ms: u64,
    /// Read only this partition (default: all, interleaved).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) partition: Option<i32>,
    /// Start at this offset (needs --partition).
    #[arg(long, requires = "partition", value_parser = clap::value_parser!(i64).range(0..))]
    pub(crate) offset: Option<i64>,
    /// Exit after printing this many records.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_messages: Option<u64>,
    /// Print the key before the value.
    #[arg(long)]
    pub(crate) print_key: bool,
    /// Print `Offset:<n>` before the key and value.
    #[arg(long)]
    pub(crate) print_offset: bool,
    /// Print `CreateTime:<ms>` (or `LogAppendTime:<ms>`) first.
    #[arg(long)]
    pub(crate) print_timestamp: bool,
    /// Separator between printed fields.
    #[arg(long, default_value = "\t", value_name = "SEP", value_parser = parse_separator)]
    pub(crate) key_separator: String,
    /// Exit when no record arrives for this many milliseconds (default: wait forever).
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,
}

/// `runnel group` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, members, assignments, committed offsets and lag.
    Describe(GroupNameArg),
    /// Move a group's committed offsets (prints the plan; changes nothing without --execute).
    ResetOffsets(ResetOffsetsArgs),
    /// Delete a group and its committed offsets.
    Delete(GroupNameArg),
}

/// A group id.
#[derive(Debug, Args)]
pub(crate) struct GroupNameArg {
    /// Group id.
    pub(crate) group: String,
}

/// `runnel group reset-offsets` flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("scope").required(true).args(["topics", "all_topics"])
))]
#[command(group(
    ArgGroup::new("mode")
        .required(true)
        .args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])
))]
pub(crate) struct ResetOffsetsArgs {
    /// Group id.
    pub(crate) group: String,
    /// A topic, or some of its partitions as TOPIC:P,P (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", value_parser = parse_topic_spec)]
    pub(crate) topics: Vec<TopicSpec>,
    /// Every partition the group has committed offsets for.
    #[arg(long)]
    pub(crate) all_topics: bool,
    /// Reset to the log start offset.
    #[arg(long)]
    pub(crate) to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    pub(crate) to_latest: bool,
    /// Reset to the first record at or after this time, e.g. 2026-01-01T00:00:00Z (no zone: UTC).
    #[arg(long, value_name = "ISO8601", value_parser = parse_datetime)]
    pub(crate) to_datetime: Option<i64>,
    /// Reset to this offset (clamped to the log).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub(crate) to_offset: Option<i64>,
    /// Move the committed offsets by N (negative: back), clamped to the log.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) shift_by: Option<i64>,
    /// Apply the plan (default: only show it).
    #[arg(long)]
    pub(crate) execute: bool,
}

impl ResetOffsetsArgs {
    /// The chosen mode (clap guarantees exactly one).
    pub(crate) fn mode(&self) -> ResetMode {
        if self.to_earliest {
            ResetMode::Earliest
        } else if self.to_latest {
            ResetMode::Latest
        } else if let Some(ts) = self.to_datetime {
            ResetMode::Datetime(ts)
        } else if let Some(o) = self.to_offset {
            ResetMode::Offset(o)
        } else {
            ResetMode::ShiftBy(self.shift_by.unwrap_or(0))
        }
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

fn parse_config_key(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.contains('=') {
        Err(format!("expected a config key, got '{s}'"))
    } else {
        Ok(s.trim().to_string())
    }
}

fn parse_separator(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the separator must not be empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("runnel").chain(args.iter().copied()))
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn offset_requires_partition() {
        let err = parse(&["consume", "t", "--offset", "3"]).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let cli = parse(&["consume", "t", "--partition", "1", "--offset", "3"]).expect("valid");
        let Command::Consume(args) = cli.command else {
            panic!("consume expected")
        };
        assert_eq!((args.partition, args.offset), (Some(1), Some(3)));
    }

    #[test]
    fn offset_conflicts_with_from_beginning() {
        let err = parse(&[
            "consume",
            "t",
            "--partition",
            "0",
            "--offset",
            "1",
            "--from-beginning",
        ])
        .expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn config_flags_need_key_equals_value() {
        let err =
            parse(&["topic", "create", "t", "--config", "retention.ms"]).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let cli = parse(&[
            "topic", "create", "t", "--config", "a=1", "--config", "b=x=y",
        ])
        .expect("valid");
        let Command::Topic(TopicCommand::Create(args)) = cli.command else {
            panic!("create expected")
        };
        assert_eq!(
            args.configs,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x=y".to_string())
            ]
        );
    }

    #[test]
    fn alter_needs_at_least_one_change() {
        let err = parse(&["topic", "alter", "t"]).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&["topic", "alter", "t", "--delete-config", "retention.ms"]).is_ok());
    }

    #[test]
    fn acks_accept_only_kafka_values() {
        let cli = parse(&["produce", "t"]).expect("valid");
        let Command::Produce(args) = cli.command else {
            panic!("produce expected")
        };
        assert_eq!(args.acks, Acks::All, "acks default to all");
        assert!(parse(&["produce", "t", "--acks", "0"]).is_ok());
        let err = parse(&["produce", "t", "--acks", "2"]).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn partitions_must_be_positive() {
        let err = parse(&["topic", "create", "t", "--partitions", "0"]).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn consume_key_separator_defaults_to_tab() {
        let cli = parse(&["consume", "t"]).expect("valid");
        let Command::Consume(args) = cli.command else {
            panic!("consume expected")
        };
        assert_eq!(args.key_separator, "\t");
    }

    #[test]
    fn reset_offsets_needs_one_scope_and_one_mode() {
        let err = parse(&["group", "reset-offsets", "g", "--to-earliest"]).expect_err("no scope");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["group", "reset-offsets", "g", "--all-topics"]).expect_err("no mode");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-earliest",
            "--to-latest",
        ])
        .expect_err("two modes");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--all-topics",
            "--topic",
            "t",
            "--to-latest",
        ])
        .expect_err("two scopes");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let cli = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t:0,1",
            "--topic",
            "u",
            "--shift-by",
            "-3",
        ])
        .expect("valid");
        let Command::Group(GroupCommand::ResetOffsets(args)) = cli.command else {
            panic!("reset-offsets expected")
        };
        assert_eq!(args.mode(), ResetMode::ShiftBy(-3));
        assert_eq!(args.topics.len(), 2);
        assert_eq!(args.topics[0].partitions, Some(vec![0, 1]));
        assert!(!args.execute, "dry run by default");
    }

    #[test]
    fn reset_to_datetime_parses_iso8601() {
        let cli = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-datetime",
            "2026-01-01T00:00:00Z",
        ])
        .expect("valid");
        let Command::Group(GroupCommand::ResetOffsets(args)) = cli.command else {
            panic!("reset-offsets expected")
        };
        assert_eq!(args.mode(), ResetMode::Datetime(1_767_225_600_000));
        let err = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-datetime",
            "yesterday",
        ])
        .expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn consume_group_conflicts_with_partition_and_offset() {
        let err = parse(&["consume", "t", "--group", "g", "--partition", "0"]).expect_err("fail");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let cli = parse(&["consume", "t", "--group", "g", "--from-beginning"]).expect("valid");
        let Command::Consume(args) = cli.command else {
            panic!("consume expected")
        };
        assert_eq!(args.group.as_deref(), Some("g"));
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["topic", "list", "--output", "json", "-b", "h:1"]).expect("valid");
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.bootstrap_server, "h:1");
    }
}
