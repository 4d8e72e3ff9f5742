//! [`MetaNode`]: one broker's member of the metadata quorum — Raft storage on
//! disk, the Raft network, command forwarding to the controller, broker
//! heartbeats, and the controller's timers (session expiry).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::MetaConfig;
use crate::types::{Applied, BrokerId, BrokerInfo, ClusterState, Command};
use crate::MetaError;

/// Raft view of the quorum, for `runnel cluster describe` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node.
    pub node_id: BrokerId,
    /// Current Raft leader (the controller), if known.
    pub leader: Option<BrokerId>,
    /// Current term.
    pub term: u64,
    /// Voter ids.
    pub voters: Vec<BrokerId>,
    /// Learner (observer) ids.
    pub learners: Vec<BrokerId>,
    /// Last log index known committed.
    pub committed: u64,
    /// Last log index applied to the local state.
    pub applied: u64,
}

/// One broker's metadata node. Cheap to clone.
#[derive(Clone)]
pub struct MetaNode {
    _private: Arc<()>,
}

impl MetaNode {
    /// Opens the Raft storage in `config.dir`, binds the metadata listener and
    /// starts Raft. A node with no seeds and no stored state initializes a new
    /// one-voter cluster; a node with seeds and no stored state asks a seed to
    /// add it (as a learner, promoted to voter while there are fewer than
    /// `config.voters`); a node with stored state rejoins as what it was.
    /// Returns once the listener is bound (not waiting for a leader).
    pub async fn start(config: MetaConfig) -> Result<MetaNode, MetaError> {
        let _ = config;
        todo!()
    }

    /// The bound metadata listener address.
    pub fn listen_addr(&self) -> SocketAddr {
        todo!()
    }

    /// The applied state; changes after every applied command. Brokers react to it.
    pub fn state(&self) -> watch::Receiver<Arc<ClusterState>> {
        todo!()
    }

    /// Proposes a command through the controller (forwarded when this node is
    /// not the Raft leader) and returns once it is committed AND applied to this
    /// node's local state, so a caller reading [`MetaNode::state`] afterwards sees it.
    pub async fn propose(&self, command: Command) -> Result<Applied, MetaError> {
        let _ = command;
        todo!()
    }

    /// Waits until a controller is known and this node's state has caught up
    /// with the commit index seen at the call (so reads reflect the cluster).
    pub async fn wait_ready(&self) -> Result<(), MetaError> {
        todo!()
    }

    /// Registers this broker (RegisterBroker, retried until it succeeds or
    /// shutdown) and keeps heartbeating the controller every
    /// `heartbeat_interval`; after a fence it registers again.
    pub async fn register(&self, broker: BrokerInfo) -> Result<(), MetaError> {
        let _ = broker;
        todo!()
    }

    /// Raft view of the quorum.
    pub fn quorum(&self) -> QuorumStatus {
        todo!()
    }

    /// Clean shutdown: fences this broker (so leadership moves at once instead
    /// of after the session timeout), then stops Raft and closes the storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        todo!()
    }
}
