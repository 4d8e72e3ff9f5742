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
//!
//! Modules:
//! - `node`: [`MetaNode`], the API a broker uses; `node/membership.rs` joins the
//!   quorum and heartbeats, `node/controller.rs` runs the controller's timers.
//! - `raft`: the openraft plumbing: log store, state machine, TCP transport and RPCs.
//! - `types`: the replicated data ([`ClusterState`], [`TopicMeta`], ...) and [`Command`]s.
//! - `state`: [`ClusterState::apply`], the deterministic transition function.
//! - `queries`: read-only views of a [`ClusterState`] and its partitions.
//! - `election`: partition leader election and reassignment as pure functions.
//! - `placement`: replica placement for new partitions.
//! - `rebalance`: which partitions the preferred-leader rebalance moves.
//! - `config`: [`MetaConfig`], the settings of one node.
//! - `metrics`: [`MetaMetrics`], the quorum's Prometheus metrics.
//! - `error`: [`MetaError`].
//! - `cluster_id`: [`generate_cluster_id`], Kafka's random cluster ids.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod acls;
mod cluster_id;
mod config;
mod election;
mod error;
mod metrics;
mod node;
mod placement;
mod queries;
mod raft;
mod rebalance;
mod state;
mod types;

pub use acls::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, AclRule, AclStore,
};
pub use cluster_id::generate_cluster_id;
pub use config::{MetaConfig, QuorumTls};
pub use error::MetaError;
pub use metrics::MetaMetrics;
pub use node::{MetaNode, QuorumStatus};
pub use raft::rpc::decode_rpc_request;
pub use types::{
    Applied, BrokerId, BrokerInfo, ClusterState, Command, Election, Endpoint, NewTopic,
    PartitionMeta, Placement, QuotaEntity, QuotaValue, Rejection, ScramCredential, ScramMechanism,
    TopicMeta, NO_LEADER, QUOTA_KEYS,
};
