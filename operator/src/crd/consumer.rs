//! The `Consumer` kind: observes one consumer group (members, lag) and applies one-shot
//! offset resets.

// KubeSchema's derive re-declares each struct (with its `pub` fields) inside a function to build
// the schema; unreachable_pub fires on that private copy, so it is allowed for this module.
#![allow(unreachable_pub)]
// Several `printcolumn(type_ = "integer", ...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterReference;

/// Most per-partition lag entries kept in a `Consumer` status (the largest lags first).
pub const MAX_LAG_ENTRIES: usize = 100;

/// A consumer group to observe.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Consumer",
    namespaced,
    status = "ConsumerStatus",
    shortname = "rconsumer",
    category = "runnel",
    derive = "PartialEq",
    doc = "Observes one consumer group of a Runnel Cluster: members, lag, lag alerts and offset resets.",
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.groupId"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.totalLag"),
    printcolumn(name = "MaxLag", type_ = "integer", json_path = ".status.maxLag"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    /// The Cluster (same namespace) the group lives on; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: ClusterReference,

    /// The consumer group id.
    #[schemars(length(min = 1, max = 255))]
    pub group_id: String,

    /// Only these topics (empty: every topic the group has committed offsets for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub topics: Vec<String>,

    /// Raise the LagHigh condition above this lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_alert: Option<LagAlert>,

    /// A one-shot offset reset, applied once per new nonce while the group has no members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
}

/// Lag alert threshold.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LagAlert {
    /// LagHigh is True while any partition's lag (records) exceeds this.
    #[schemars(range(min = 0))]
    pub max_lag: i64,
}

/// Where an offset reset moves the group's committed offsets.
#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResetStrategy {
    /// The log start offset of each partition.
    Earliest,
    /// The log end offset of each partition.
    Latest,
    /// The first offset at or after `timestamp`.
    Timestamp,
    /// The explicit `offsets`.
    Offsets,
}

/// A one-shot offset reset.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.strategy != 'timestamp' || has(self.timestamp)")
        .message("strategy timestamp needs timestamp"),
    validation = Rule::new("self.strategy != 'offsets' || size(self.offsets) > 0")
        .message("strategy offsets needs offsets")
)]
pub struct OffsetReset {
    /// Where to move the offsets.
    pub strategy: ResetStrategy,

    /// RFC 3339 time for strategy `timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: Option<String>,

    /// Explicit offsets for strategy `offsets`.
    #[serde(default)]
    #[schemars(length(max = 10000))]
    pub offsets: Vec<PartitionOffset>,

    /// Changing the nonce requests one reset.
    #[schemars(length(min = 1, max = 253))]
    pub nonce: String,
}

/// An explicit offset of one partition.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffset {
    /// Topic name.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Partition index.
    #[schemars(range(min = 0))]
    pub partition: i32,
    /// Offset to commit.
    #[schemars(range(min = 0))]
    pub offset: i64,
}

/// Observed state of a consumer group.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    /// Group state as the coordinator reports it (Empty, Stable, PreparingRebalance, Dead, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// Number of group members.
    #[serde(default)]
    pub members: i32,

    /// Sum of the lag of every observed partition.
    #[serde(default)]
    pub total_lag: i64,

    /// Largest lag of one partition.
    #[serde(default)]
    pub max_lag: i64,

    /// Lag per partition, largest first, at most 100 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub lag: Vec<PartitionLag>,

    /// The offsetReset nonce most recently applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_nonce: Option<String>,

    /// LagHigh and ResetPending conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Lag of one partition.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The group's committed offset.
    pub committed_offset: i64,
    /// The partition's log end offset.
    pub log_end_offset: i64,
    /// log end offset minus committed offset.
    pub lag: i64,
}
