//! Settings of one metadata node.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Mutual TLS for the metadata listener: peers must present a certificate the
/// server config's verifier accepts, and each node checks the peer it dials.
#[derive(Clone)]
pub struct QuorumTls {
    /// What the listener accepts (with a required client certificate verifier).
    pub server: Arc<rustls::ServerConfig>,
    /// How this node dials peers (roots to check them, its own certificate).
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

/// Settings of one metadata node (filled from the broker's config).
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// This broker's id (also its Raft node id).
    pub node_id: i32,
    /// Directory for the Raft log, vote and snapshots (e.g. `data_dir/__cluster_metadata`).
    pub dir: PathBuf,
    /// Address to bind the metadata (Raft) listener on; port 0 picks a free port.
    pub listen: String,
    /// Address advertised to other nodes for Raft traffic; `None` = the bound address.
    pub advertised: Option<String>,
    /// Metadata listener addresses of existing nodes to join through. Empty on
    /// the node that starts a new cluster (it initializes a one-voter quorum).
    pub seeds: Vec<String>,
    /// How many voters the quorum has at most (default 3): the lowest node ids
    /// among the brokers that joined; the others stay learners.
    pub voters: usize,
    /// How often a broker heartbeats the controller.
    pub heartbeat_interval: Duration,
    /// A broker with no heartbeat for this long is fenced by the controller.
    pub session_timeout: Duration,
    /// Raft election timeout range (min; max = 2x min).
    pub election_timeout: Duration,
    /// A snapshot is taken after this many log entries since the last one
    /// (the log before it is purged then).
    pub snapshot_every: u64,
    /// Kafka cluster id a new cluster starts with (the broker passes the id it
    /// already keeps); `None` = generate one. Only the node that initializes
    /// the quorum uses it; an existing cluster keeps its id.
    pub cluster_id: Option<String>,
    /// Whether the controller moves leadership back to preferred replicas on
    /// its own (Kafka's `auto.leader.rebalance.enable`; default true).
    pub auto_leader_rebalance: bool,
    /// How often the controller checks the preferred-leader imbalance (Kafka's
    /// `leader.imbalance.check.interval.seconds`; default 300 s).
    pub leader_imbalance_check_interval: Duration,
    /// A broker's leaderships are rebalanced once the share of the partitions
    /// it is the preferred replica of but does not lead exceeds this percentage
    /// (Kafka's `leader.imbalance.per.broker.percentage`; default 10).
    pub leader_imbalance_per_broker_percentage: u32,
    /// Mutual TLS on the metadata listener and towards peers; `None` = plain TCP.
    pub tls: Option<QuorumTls>,
}

impl MetaConfig {
    /// Defaults for `node_id` storing in `dir`.
    pub fn new(node_id: i32, dir: PathBuf) -> MetaConfig {
        MetaConfig {
            node_id,
            dir,
            listen: "127.0.0.1:9093".into(),
            advertised: None,
            seeds: Vec::new(),
            voters: 3,
            heartbeat_interval: Duration::from_millis(500),
            session_timeout: Duration::from_millis(6000),
            election_timeout: Duration::from_millis(1000),
            snapshot_every: 1000,
            cluster_id: None,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_per_broker_percentage: 10,
            tls: None,
        }
    }
}
