//! Messages of `runnel.agent.v1.Agent`, written as prost structs instead of a `.proto` file.

/// Request of `Health` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthRequest {}

/// Reply of `Health`: the agent answers, so it is up; the broker may not be.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthResponse {
    /// Whether the broker's admin `/readyz` answered 200.
    #[prost(bool, tag = "1")]
    pub broker_reachable: bool,
    /// Why the broker is not reachable or not ready (empty when it is).
    #[prost(string, tag = "2")]
    pub detail: String,
}

/// Request of `BrokerStatus` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BrokerStatusRequest {}

/// Reply of `BrokerStatus`: what ISR-gated restarts and safe scale-down ask before acting.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BrokerStatusResponse {
    /// Node id of the broker beside this agent.
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    /// Whether the broker's `/readyz` answered 200.
    #[prost(bool, tag = "2")]
    pub ready: bool,
    /// Partitions this broker leads whose ISR is smaller than their replica set.
    #[prost(uint32, tag = "3")]
    pub under_replicated_leader_partitions: u32,
    /// Partitions this broker leads.
    #[prost(uint32, tag = "4")]
    pub leader_partitions: u32,
    /// Partitions this broker holds a replica of (led or followed).
    #[prost(uint32, tag = "5")]
    pub replica_partitions: u32,
    /// `topic-partition` hosted here whose ISR would drop below `min.insync.replicas`
    /// if this broker stopped.
    #[prost(string, repeated, tag = "6")]
    pub at_risk_partitions: Vec<String>,
    /// Partitions of the whole cluster whose ISR is smaller than their replica set.
    #[prost(uint32, tag = "7")]
    pub cluster_under_replicated_partitions: u32,
    /// Partitions of the whole cluster without a live leader.
    #[prost(uint32, tag = "8")]
    pub cluster_offline_partitions: u32,
    /// This broker's role in the metadata quorum ([`QuorumRole`]).
    #[prost(enumeration = "QuorumRole", tag = "9")]
    pub quorum_role: i32,
    /// Bytes of the files under the broker's data directory (0 when the agent was given none).
    #[prost(uint64, tag = "10")]
    pub data_dir_bytes: u64,
    /// Node id of the metadata quorum's leader (the controller), -1 when unknown.
    #[prost(int32, tag = "11")]
    pub quorum_leader_id: i32,
    /// Partitions this broker holds a replica of (the same as `replica_partitions`).
    #[prost(uint32, tag = "12")]
    pub hosted_partitions: u32,
}

/// A broker's role in the metadata quorum, as DescribeQuorum reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum QuorumRole {
    /// Not known (the quorum could not be described).
    Unspecified = 0,
    /// The Raft leader (the controller).
    Leader = 1,
    /// A voter that does not lead.
    Voter = 2,
    /// Listed as an observer, or not listed at all.
    Observer = 3,
}

/// Request of `CanRestart` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CanRestartRequest {}

/// Reply of `CanRestart`: whether stopping this broker now loses availability.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CanRestartResponse {
    /// True when no rule below fails.
    #[prost(bool, tag = "1")]
    pub safe: bool,
    /// One human sentence per failed rule (empty when safe).
    #[prost(string, repeated, tag = "2")]
    pub reasons: Vec<String>,
    /// `topic-partition` whose ISR would drop below `min.insync.replicas`.
    #[prost(string, repeated, tag = "3")]
    pub at_risk_partitions: Vec<String>,
}

/// Request of `Drain`: move every replica off this broker. While a drain runs,
/// another `Drain` joins it (streaming the same progress) and its own fields are ignored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DrainRequest {
    /// Replication throttle for the moves in bytes/s; 0 = unthrottled.
    #[prost(uint64, tag = "1")]
    pub throttle_bytes_per_second: u64,
    /// Brokers that must not receive replicas (others being removed at the same time).
    #[prost(int32, repeated, tag = "2")]
    pub avoid_brokers: Vec<i32>,
}

/// One progress report of a drain (the server-streamed reply of `Drain`). The
/// stream ends after a report with `done` set, or after one with `done` unset
/// whose `detail` says why the drain failed or that it was cancelled.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DrainProgress {
    /// Partitions still having this broker in their replica set.
    #[prost(uint32, tag = "1")]
    pub remaining_replicas: u32,
    /// Reassignments in flight that move a replica off this broker.
    #[prost(uint32, tag = "2")]
    pub moving_partitions: u32,
    /// The broker holds nothing and the throttle is removed.
    #[prost(bool, tag = "3")]
    pub done: bool,
    /// Human progress line, or the error that ended the drain.
    #[prost(string, tag = "4")]
    pub detail: String,
}

/// Request of `CancelDrain` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelDrainRequest {}

/// Reply of `CancelDrain`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelDrainResponse {
    /// Reassignments of the drain that were still in flight and are now cancelled.
    #[prost(uint32, tag = "1")]
    pub cancelled_partitions: u32,
}
