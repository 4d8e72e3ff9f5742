//! The openraft plumbing of the metadata quorum: the type configuration, the
//! on-disk log store, the state machine around [`ClusterState`](crate::ClusterState),
//! and the TCP transport that carries Raft RPCs and this crate's own requests.

pub(crate) mod fsutil;
pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod rpc;
pub(crate) mod state_machine;

use std::io::Cursor;

use crate::types::{Applied, Command, Rejection};

openraft::declare_raft_types!(
    /// Runnel's Raft type configuration: broker ids as node ids, [`Command`]s
    /// as log payloads, the state machine's verdict as the response, and the
    /// serialized [`ClusterState`](crate::ClusterState) as snapshot data.
    pub(crate) TypeConfig:
        D = Command,
        R = Result<Applied, Rejection>,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of this crate.
pub(crate) type Raft = openraft::Raft<TypeConfig>;
/// Raft node id (a broker id as `u64`).
pub(crate) type NodeId = u64;
/// A log id of this configuration.
pub(crate) type LogId = openraft::LogId<NodeId>;
/// A log entry of this configuration.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// A storage error of this configuration.
pub(crate) type StorageError = openraft::StorageError<NodeId>;
/// Membership as stored with a log id.
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// Snapshot metadata of this configuration.
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
