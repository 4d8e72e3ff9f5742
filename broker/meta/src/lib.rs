//! The cluster metadata quorum. Brokers, topics, partition assignments,
//! leaders, leader epochs, ISR and configs live in one replicated state
//! machine ([`ClusterState`]) on openraft. Every broker runs a [`MetaNode`]:
//! the first `voters` brokers to join are Raft voters, the others learners
//! (Kafka's observers), so every broker holds the whole applied state locally
//! and reads it without a round trip. Changes are [`Command`]s proposed from
//! any broker (forwarded to the Raft leader, the *controller*) and applied by
//! the deterministic [`ClusterState::apply`]; placement and leader elections
//! happen inside `apply`, so every replica computes the same result. The
//! controller alone runs the timers: broker session expiry (fencing) and the
//! preferred-leader rebalance.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod election;
pub mod metrics;
pub mod node;
pub mod placement;
mod raft;
pub mod rebalance;
pub mod state;
pub mod types;

pub use config::MetaConfig;
pub use metrics::MetaMetrics;
pub use node::{MetaNode, QuorumStatus};
pub use raft::rpc::decode_rpc_request;
pub use types::*;

/// Errors of the metadata quorum, as seen by the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetaError {
    /// The command was applied and refused by the state machine (maps to a Kafka error code).
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// No controller is known right now (election in progress, no quorum); retriable.
    #[error("no metadata controller available: {0}")]
    NoController(String),
    /// The command may or may not have been applied (timeout, leader change); retriable by the client.
    #[error("metadata request timed out: {0}")]
    Timeout(String),
    /// Storage or network failure of this node.
    #[error("metadata quorum error: {0}")]
    Internal(String),
    /// The node is shutting down.
    #[error("metadata node is shutting down")]
    ShuttingDown,
}
