//! The `Topic` kind: a Kafka topic on a `Cluster`, managed through the Kafka admin API.

// KubeSchema's derive re-declares each struct (with its `pub` fields) inside a function to build
// the schema; unreachable_pub fires on that private copy, so it is allowed for this module.
#![allow(unreachable_pub)]
// Several `printcolumn(type_ = "integer", ...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterReference;

/// Desired state of a topic.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "rtopic",
    category = "runnel",
    derive = "PartialEq",
    doc = "A Kafka topic on a Runnel Cluster; the manifest is the source of truth.",
    validation = Rule::new(
        "(has(self.spec.topicName) ? self.spec.topicName : self.metadata.name) == (has(oldSelf.spec.topicName) ? oldSelf.spec.topicName : oldSelf.metadata.name)"
    ).message("spec.topicName is immutable (it defaults to metadata.name)"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The Cluster (same namespace) holding the topic; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: ClusterReference,

    /// Kafka topic name; defaults to metadata.name; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic_name: Option<String>,

    /// Number of partitions; may only grow.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 100000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions may only grow"))]
    pub partitions: i32,

    /// Replicas of each partition; unset uses the cluster's default_replication_factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,

    /// Topic configs (e.g. `retention.ms: "86400000"`); a null value means "not managed here".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub config: BTreeMap<String, Option<String>>,

    /// What deleting this object does to the Kafka topic.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_partitions() -> i32 {
    1
}

/// What deleting a `Topic` object does to the Kafka topic.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionPolicy {
    /// Delete the Kafka topic and its data.
    #[default]
    Delete,
    /// Keep the Kafka topic; only stop managing it.
    Retain,
}

/// Observed state of a topic.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Ready and other standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The Kafka topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,

    /// Actual number of partitions on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Actual replication factor on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,

    /// Why the desired state cannot be applied, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
