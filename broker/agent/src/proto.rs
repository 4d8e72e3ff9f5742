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
}
