//! The data of the metadata state machine and the commands that change it.
//! Everything here is serde-serializable: commands travel in the Raft log and
//! the whole [`ClusterState`] is the snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acls::{AclBinding, AclStore};

/// A broker id (Kafka's `node.id`, `broker.id`).
pub type BrokerId = i32;

/// "No leader" in [`PartitionMeta::leader`] (Kafka uses -1 too).
pub const NO_LEADER: BrokerId = -1;

/// The listener of registrations written before brokers registered their
/// endpoints: such a broker had one plaintext listener, at `host:port`.
const LEGACY_LISTENER: &str = "PLAINTEXT";

/// One listener of a broker as clients and other brokers reach it (Kafka's `Endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `SECURE`, ...).
    pub listener: String,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: u16,
    /// The listener's security protocol (Kafka's name: `PLAINTEXT`, `SSL`, ...).
    pub security_protocol: String,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Broker id.
    pub id: BrokerId,
    /// Host of the inter-broker listener (the first listener unless
    /// configured): where other brokers connect.
    pub host: String,
    /// Port of the inter-broker listener.
    pub port: u16,
    /// Every listener's advertised endpoint, in configuration order. Empty in
    /// registrations from before named listeners (see [`BrokerInfo::endpoint`]).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Address of this broker's metadata (Raft) listener, `host:port`.
    pub controller_addr: String,
    /// Random id of the broker process's current run; a new one on every start,
    /// so a restarted broker's registration is told apart from a stale one.
    pub incarnation: Uuid,
    /// Fenced brokers lead nothing and are not in any ISR; a broker is fenced
    /// when its session expires and unfenced when it registers again.
    pub fenced: bool,
}

impl BrokerInfo {
    /// The host and port of this broker's listener named `listener`, the one
    /// a client that came in on that listener must be given. A registration
    /// without endpoints (written before named listeners) has one plaintext
    /// listener at `host:port`.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.endpoints.is_empty() {
            return (listener == LEGACY_LISTENER).then_some((self.host.as_str(), self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// One partition's replica placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Assigned replicas; the first is the preferred leader. During a
    /// reassignment this is the union of the old and the target replicas.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas (always includes the leader when there is one).
    pub isr: Vec<BrokerId>,
    /// Current leader, or [`NO_LEADER`] (offline partition).
    pub leader: BrokerId,
    /// Bumped on every leader change (written into batches, checked on Produce/Fetch).
    pub leader_epoch: i32,
    /// Bumped on every change of this partition (leader, ISR, replicas);
    /// AlterIsr carries the epoch it was based on and is refused when stale.
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment in progress (empty otherwise).
    pub adding: Vec<BrokerId>,
    /// Replicas being removed by a reassignment in progress (empty otherwise).
    pub removing: Vec<BrokerId>,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (a recreated topic gets a new one).
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionMeta>,
    /// Topic config overrides (Kafka names, e.g. `retention.ms`), validated by the broker before proposing.
    pub configs: BTreeMap<String, String>,
}

/// The whole replicated metadata image. Every broker holds an identical copy of
/// the applied prefix of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Kafka cluster id, set by the first [`Command::InitCluster`].
    pub cluster_id: Option<String>,
    /// Registered brokers (fenced or not).
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics by name. Shared: every applied command publishes a copy of the
    /// state, and a copy shares every topic the command did not change (a
    /// change goes through `Arc::make_mut`), so the copy costs one map of
    /// pointers, not every partition's metadata again.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Next producer id to hand out (InitProducerId blocks).
    pub next_producer_id: i64,
    /// Dynamic broker-level config overrides (`IncrementalAlterConfigs` on a broker resource; empty key = cluster default).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Raft log index of the last command applied (0 = nothing applied).
    pub applied_index: u64,
    /// Brokers in controlled shutdown ([`Command::ControlledShutdown`]):
    /// still registered and unfenced (they keep serving, and keep leading
    /// partitions no other in-sync replica can take), but never elected
    /// leader nor added to an ISR. A broker leaves the set when it is fenced
    /// or registers again.
    #[serde(default)]
    pub shutting_down: std::collections::BTreeSet<BrokerId>,
    /// Client quotas by entity ([`Command::AlterClientQuotas`]).
    #[serde(default)]
    pub client_quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    /// Client metrics subscriptions (KIP-714) by name: their configs (`metrics`,
    /// `interval.ms`, `match`), validated by the broker before proposing.
    #[serde(default)]
    pub client_metrics: BTreeMap<String, BTreeMap<String, String>>,
    /// SASL/SCRAM credentials by user name and mechanism
    /// ([`Command::AlterScramCredential`]): salted and hashed, never a password.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Access control lists ([`Command::CreateAcls`], [`Command::DeleteAcls`]).
    #[serde(default)]
    pub acls: AclStore,
}

/// A SCRAM mechanism: RFC 5802 over SHA-256 or SHA-512 (RFC 7677).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (Kafka's mechanism type 1).
    Sha256,
    /// SCRAM-SHA-512 (Kafka's mechanism type 2).
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn sasl_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's mechanism type in AlterUserScramCredentials and DescribeUserScramCredentials.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of a Kafka mechanism type.
    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    /// The mechanism of a SASL mechanism name.
    pub fn from_sasl_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.sasl_name() == name)
    }

    /// The smallest and largest iteration counts accepted (Kafka's bounds).
    pub const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=16384;
}

/// What a SCRAM server stores for one user and mechanism (RFC 5802 section 3):
/// the salt and iteration count the client needs, and the two keys derived from
/// the salted password. The password itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

/// How CreateTopics places replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// `partitions` partitions with `replication_factor` replicas each, spread
    /// evenly over the unfenced brokers (rack-aware when brokers have racks),
    /// leaders spread evenly.
    Auto {
        /// Partition count.
        partitions: i32,
        /// Replicas per partition.
        replication_factor: i16,
    },
    /// Explicit replica lists per partition (CreateTopics `assignments`).
    Manual(Vec<Vec<BrokerId>>),
}

/// One topic of a [`Command::CreateTopics`] (the fields of a [`Command::CreateTopic`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    /// Name (validated by the broker).
    pub name: String,
    /// Id chosen by the proposer.
    pub id: Uuid,
    /// Replica placement.
    pub placement: Placement,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A change to the metadata. Applied by [`ClusterState::apply`] in log order on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster id once (later ones are ignored, not refused).
    InitCluster {
        /// Cluster id.
        cluster_id: String,
    },
    /// A broker (re)starts or comes back after being fenced: upserts its
    /// registration and unfences it. Partitions it replicates whose leader is
    /// offline elect it if it is in their ISR. A new incarnation while the old
    /// one is still unfenced first fences the old one (its leaderships move
    /// and leader epochs are bumped). Re-sending the same registration is
    /// [`Applied::NoChange`]. Negative ids are refused.
    RegisterBroker(BrokerInfo),
    /// The controller saw no heartbeat from this broker for the session timeout
    /// (or the broker shut down cleanly): fence it, remove it from every ISR
    /// (keeping at least the last member, Kafka's rule) and elect new leaders
    /// for the partitions it led from their ISR.
    FenceBroker {
        /// Broker id.
        id: BrokerId,
        /// Only fence this incarnation (a newer registration wins).
        incarnation: Uuid,
    },
    /// A broker is about to stop (SIGTERM) and asks the controller to move
    /// its work away first (Kafka's controlled shutdown): it leaves every ISR
    /// and hands leadership to another live in-sync replica, except where it
    /// is the only in-sync replica (it keeps leading there until a follower
    /// catches up and the ISR expansion hands the partition over). Until it
    /// is fenced or registers again it is never elected nor added to an ISR.
    /// An unknown, fenced or older incarnation is [`Applied::NoChange`].
    ControlledShutdown {
        /// Broker id.
        id: BrokerId,
        /// Only this incarnation (a newer registration wins).
        incarnation: Uuid,
    },
    /// Creates a topic.
    CreateTopic {
        /// Name (validated by the broker).
        name: String,
        /// Id chosen by the proposer.
        id: Uuid,
        /// Replica placement.
        placement: Placement,
        /// Config overrides.
        configs: BTreeMap<String, String>,
    },
    /// Creates several topics in one log entry (one CreateTopics request), so
    /// they cost one append and one fsync however many there are. Applied in
    /// order, each exactly as a [`Command::CreateTopic`] of its own: a topic
    /// that is refused (it exists, or its placement is impossible) changes
    /// nothing, and the others are created. Always [`Applied::Topics`], one
    /// outcome per topic in the same order.
    CreateTopics {
        /// The topics, in request order.
        topics: Vec<NewTopic>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Adds partitions to a topic (`total` is the new count).
    CreatePartitions {
        /// Topic name.
        name: String,
        /// New partition count.
        total: i32,
        /// Explicit replicas for the new partitions, or automatic placement.
        assignment: Option<Vec<Vec<BrokerId>>>,
    },
    /// Replaces a topic's config overrides with `configs`.
    SetTopicConfigs {
        /// Topic name.
        name: String,
        /// The complete new override map.
        configs: BTreeMap<String, String>,
    },
    /// Replaces the configs of a client metrics subscription (KIP-714); empty configs
    /// remove it.
    SetClientMetrics {
        /// Subscription name.
        name: String,
        /// The complete new config map.
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic configs of a broker (`""` = cluster-wide default).
    SetBrokerConfigs {
        /// Broker id as a string, or `""`.
        resource: String,
        /// The complete new override map.
        configs: BTreeMap<String, String>,
    },
    /// A partition leader shrinks or expands its ISR (Kafka's AlterPartition).
    AlterIsr {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The leader proposing it.
        leader: BrokerId,
        /// The leader epoch it leads under.
        leader_epoch: i32,
        /// The partition epoch its view is based on.
        partition_epoch: i32,
        /// The new ISR.
        isr: Vec<BrokerId>,
    },
    /// Elects a leader: `Preferred` picks the first replica if it is in the ISR
    /// and unfenced; `Unclean` may pick any unfenced replica when no ISR member
    /// is alive (the ISR becomes just that replica). `Applied::NoChange` when
    /// the preferred replica already leads / the leader is alive.
    ElectLeader {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// Election type.
        election: Election,
    },
    /// Starts (`Some`) or cancels (`None`) a reassignment towards `target`
    /// replicas. While it runs, `replicas` = target then the removed ones,
    /// with `adding`/`removing` set; it completes (in this command or a later
    /// [`Command::AlterIsr`]) once every target replica is in the ISR.
    /// Cancelling keeps the original replicas (`replicas` minus `adding`).
    Reassign {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// Target replica list, or `None` to cancel.
        target: Option<Vec<BrokerId>>,
    },
    /// Hands out a block of producer ids; the result is the first id.
    AllocateProducerIds {
        /// Block size.
        count: i64,
    },
    /// Sets and removes client quotas of one entity (AlterClientQuotas); an entity left
    /// without quotas is forgotten. Unknown keys and values that are not positive and finite
    /// are refused, with nothing changed.
    AlterClientQuotas {
        /// The user, client id or both the quotas apply to.
        entity: QuotaEntity,
        /// Quotas to set (key, e.g. `producer_byte_rate`, to value).
        set: BTreeMap<String, QuotaValue>,
        /// Quota keys to remove.
        remove: Vec<String>,
    },
    /// Adds ACLs (CreateAcls; already present ones are kept once).
    CreateAcls(Vec<AclBinding>),
    /// Removes these ACLs (DeleteAcls, after the broker matched its filters; absent ones are
    /// skipped).
    DeleteAcls(Vec<AclBinding>),
    /// Sets (`Some`) or deletes (`None`) one user's SCRAM credential for one mechanism
    /// (AlterUserScramCredentials). An empty user name or an iteration count outside
    /// [`ScramMechanism::ITERATIONS`] is refused; deleting a credential that does not
    /// exist is [`Rejection::NotFound`].
    AlterScramCredential {
        /// User name.
        user: String,
        /// Mechanism.
        mechanism: ScramMechanism,
        /// The new credential, or `None` to delete it.
        credential: Option<ScramCredential>,
    },
}

/// The quota keys Kafka defines (KIP-13, KIP-124, KIP-599).
pub const QUOTA_KEYS: [&str; 4] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

/// A client quota entity (KIP-55, KIP-546): a user, a client id, or both. In each component
/// `None` means the component is absent and `Some(None)` names the default entity
/// (`<default>` in Kafka's tools).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// The user (principal name).
    pub user: Option<Option<String>>,
    /// The client id.
    pub client_id: Option<Option<String>>,
}

/// A quota value (bytes per second, or a percentage); compared by bit pattern so that the
/// metadata state stays `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &QuotaValue) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Leader election type (Kafka's ElectLeaders `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// The preferred (first) replica, if in sync.
    Preferred,
    /// Any live replica, even out of sync (may lose data; off unless asked).
    Unclean,
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Nothing to report.
    Done,
    /// First id of an [`Command::AllocateProducerIds`] block.
    ProducerIds(i64),
    /// The command changed nothing (e.g. preferred leader already leads: ElectLeaders' ELECTION_NOT_NEEDED).
    NoChange,
    /// The outcome of each topic of a [`Command::CreateTopics`], in its order.
    Topics(Vec<Result<(), Rejection>>),
}

/// Why the state machine refused a command. Each maps to one Kafka error code
/// (noted on the variant) in the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// TOPIC_ALREADY_EXISTS (36).
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION (3).
    #[error("unknown topic or partition: {0}")]
    UnknownTopic(String),
    /// INVALID_PARTITIONS (37).
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR (38).
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT (39).
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// FENCED_LEADER_EPOCH (74) / INVALID_UPDATE_VERSION (95): stale AlterIsr.
    #[error("stale partition state: {0}")]
    StaleEpoch(String),
    /// NOT_LEADER_OR_FOLLOWER (6): the proposer does not lead the partition.
    #[error("{0}")]
    NotLeader(String),
    /// INELIGIBLE_REPLICA / ELIGIBLE_LEADERS_NOT_AVAILABLE (83) / PREFERRED_LEADER_NOT_AVAILABLE (80).
    #[error("{0}")]
    NoEligibleLeader(String),
    /// NO_REASSIGNMENT_IN_PROGRESS (85).
    #[error("no reassignment in progress for {0}")]
    NoReassignment(String),
    /// RESOURCE_NOT_FOUND (91): deleting something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// UNACCEPTABLE_CREDENTIAL (93): a credential outside the accepted bounds.
    #[error("{0}")]
    UnacceptableCredential(String),
    /// INVALID_REQUEST (42): anything else malformed.
    #[error("{0}")]
    Invalid(String),
}
