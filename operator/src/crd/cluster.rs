//! The `Cluster` kind: a replicated set of Runnel brokers run as a StatefulSet.

// KubeSchema's derive re-declares each struct (with its `pub` fields) inside a function to build
// the schema; unreachable_pub fires on that private copy, so it is allowed for this module.
#![allow(unreachable_pub)]
// Several `printcolumn(type_ = "integer", ...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::{Message, Rule};
use kube::{CustomResource, KubeSchema};
use runnel_config::{ClusterAccess, KEYS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::listener::ListenerSpec;

/// Broker config keys the operator sets itself (per pod or for the pod layout); a `Cluster`
/// may not override them in `spec.config`. They are the keys runnel-config declares
/// [`ClusterAccess::Reserved`], in declaration order.
pub fn reserved_config_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|k| k.cluster == ClusterAccess::Reserved)
        .map(|k| k.name)
}

/// The CEL rule of `spec.config` that refuses the [`reserved_config_keys`], so the API server
/// rejects what the operator would refuse anyway.
fn reserved_config_keys_rule() -> Rule {
    let keys: Vec<&str> = reserved_config_keys().collect();
    let quoted: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    let listed = match keys.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    Rule::new(format!("self.all(k, !(k in [{}]))", quoted.join(", "))).message(Message::Message(
        format!("{listed} are set by the operator"),
    ))
}

/// Desired state of a Runnel broker cluster.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "rcl",
    category = "runnel",
    derive = "PartialEq",
    doc = "A Runnel broker cluster: a StatefulSet of brokers with its Services, ConfigMap and PodDisruptionBudget.",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyBrokers"),
    printcolumn(name = "Bootstrap", type_ = "string", json_path = ".status.bootstrap"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!has(self.rackLabel) || !has(self.config) || !('broker_rack' in self.config)"
    ).message(
        "config.broker_rack cannot be set with rackLabel: each broker's rack is its node's rackLabel value"
    ),
    validation = Rule::new(
        "!has(self.requireTlsExternal) || !self.requireTlsExternal || !has(self.listeners) || self.listeners.all(l, !has(l.type) || l.type == 'internal' || l.type == 'cluster-ip' || (has(l.tls) && l.tls))"
    ).message(
        "requireTlsExternal: every loadbalancer and nodeport listener needs tls: true"
    )
)]
pub struct ClusterSpec {
    /// Number of brokers (StatefulSet replicas); broker node ids are the pod ordinals 0..replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// Broker container image; defaults to the runnel-broker image of this operator's version
    /// when the Cluster is created (see `imagePolicy` for operator upgrades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Without `image`: `Pinned` (default) keeps the brokers on the image they run when the
    /// operator is upgraded; `FollowOperator` moves them to the new operator's default image
    /// (a rolling restart).
    #[serde(default, skip_serializing_if = "ImagePolicy::is_pinned")]
    pub image_policy: ImagePolicy,

    /// Persistent storage of each broker (one PersistentVolumeClaim per broker).
    pub storage: StorageSpec,

    /// Compute resources of the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Broker configuration (keys of runnel.toml, e.g. `log_retention_ms: "86400000"`); values are
    /// strings converted to the key's type. Keys the operator sets per pod are refused.
    /// Changing a key of runnel.toml restarts the brokers one at a time; the keys the brokers
    /// apply at runtime (`leader.replication.throttled.rate`,
    /// `follower.replication.throttled.rate`) are set through the admin API without a restart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = reserved_config_keys_rule())]
    #[schemars(extend("maxProperties" = 64))]
    pub config: BTreeMap<String, String>,

    /// The `runnel-agent` sidecar of each broker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,

    /// Node label whose values are racks (failure domains, e.g. `topology.kubernetes.io/zone`):
    /// brokers are spread evenly across them, and each broker's `broker_rack` (Kafka's
    /// `broker.rack`, which replica placement follows) is its node's value, read at start by an
    /// init container. Every node brokers may run on must carry the label. Needs the operator's
    /// rack RBAC (chart value `rackAwareness.enabled`, on by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub rack_label: Option<String>,

    /// Overrides for the broker pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// Kafka listeners for clients, beside the operator's own (`REPLICATION` on 9092, which
    /// brokers replicate through). Empty: clients use that one, PLAINTEXT. With listeners, a
    /// listener that authenticates (or `authorizer_enabled` in `config`) makes the Cluster
    /// authenticated: the operator generates the Secret `<cluster>-operator-credentials`, the
    /// brokers create its user (`runnel-operator`, a super user) and the replication listener
    /// becomes SASL_PLAINTEXT with those credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("listener names must be unique"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.port == a.port))")
            .message("listener ports must be unique"),
        validation = Rule::new("self.all(a, self.all(b, !has(a.certificate) || !has(b.certificate) || a.certificate == b.certificate))")
            .message("every tls listener uses the same certificate (the brokers serve one)"),
        validation = Rule::new("self.all(a, self.all(b, !(has(a.tls) && a.tls) || !(has(b.tls) && b.tls) || ((has(a.authentication) && a.authentication == 'tls') == (has(b.authentication) && b.authentication == 'tls'))))")
            .message("client certificates (authentication tls) apply to every tls listener or to none (the brokers have one ssl_client_auth)")
    )]
    pub listeners: Vec<ListenerSpec>,

    /// Refuse listeners reachable from outside the Kubernetes cluster (loadbalancer, nodeport) without
    /// TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_tls_external: bool,

    /// Metrics scraping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
    /// How replicas move when brokers are added (rebalance) or removed (drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,
}

/// Which broker image a Cluster without `spec.image` runs.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImagePolicy {
    /// Keep the image the brokers run; a new Cluster starts on the operator's default.
    #[default]
    Pinned,
    /// Always run the operator's default image (an operator upgrade rolls the brokers).
    FollowOperator,
}

impl ImagePolicy {
    fn is_pinned(&self) -> bool {
        *self == ImagePolicy::Pinned
    }
}

/// How replicas move between brokers.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Replication throttle (bytes/s, leader and follower side, on every broker involved)
    /// while replicas are copied for a rebalance or a drain; unset copies unthrottled. It is
    /// removed when the moves are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub throttle_bytes_per_second: Option<u64>,
}

fn default_replicas() -> i32 {
    3
}

/// Persistent storage of each broker. Volumes can grow (the operator expands every broker's
/// claim in place) but never shrink, and their class is fixed: Kubernetes can do neither to
/// an existing volume, so both are refused up front.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!isQuantity(self.size) || !isQuantity(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0"
    ).message(
        "storage.size may only grow: a volume cannot shrink (delete the brokers' PersistentVolumeClaims and recreate the Cluster to start smaller)"
    ),
    validation = Rule::new(
        "has(self.storageClass) == has(oldSelf.storageClass) && (!has(self.storageClass) || self.storageClass == oldSelf.storageClass)"
    ).message(
        "storage.storageClass is immutable: existing volumes cannot move to another StorageClass"
    )
)]
pub struct StorageSpec {
    /// Size of each broker's volume (a Kubernetes quantity, e.g. `10Gi`); may grow when the
    /// StorageClass allows volume expansion, never shrink.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("isQuantity(self)").message(
        "storage.size must be a Kubernetes quantity such as 10Gi"
    ))]
    pub size: String,

    /// StorageClass of the volumes; unset uses the cluster's default StorageClass; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,

    /// Delete the brokers' PersistentVolumeClaims when the Cluster is deleted (default: keep them).
    #[serde(default)]
    pub delete_claim: bool,
}

/// The `runnel-agent` sidecar of each broker pod.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// Compute resources of the agent container; unset gives requests of 50m CPU and 64Mi
    /// memory and a 128Mi memory limit. When set it replaces those defaults whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Overrides for the broker pod template.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Scheduling affinity of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Tolerations of the broker pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Extra annotations on the broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Extra labels on the broker pods (the operator's own labels take precedence).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Secrets (in the Cluster's namespace) used to pull the broker and agent images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Node labels a node must have to run a broker pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

/// Metrics scraping of the brokers.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Create a Prometheus Operator ServiceMonitor for the brokers' /metrics.
    #[serde(default)]
    pub service_monitor: bool,
}

/// Where clients reach one listener (`status.listeners`).
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// Comma-separated `host:port` list for a client's bootstrap servers: the bootstrap
    /// Service of a `cluster-ip` listener, every broker's address otherwise.
    pub bootstrap_servers: String,
    /// Each broker's address on the listener, by ordinal, as the brokers advertise it (for
    /// `nodeport`, with its Service's node port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<ListenerAddress>,
}

/// One broker's address on a listener.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerAddress {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: i32,
}

/// Observed state of a Runnel broker cluster.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Ready, Reconciling and Degraded conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Brokers whose pods are ready.
    #[serde(default)]
    pub ready_brokers: i32,

    /// Bootstrap address of the brokers' own listener on 9092 (`host:port` of the bootstrap
    /// Service); with `spec.listeners` it is the operator's replication listener, which on an
    /// authenticated Cluster lets only the operator in: clients use `listeners` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,

    /// Where clients reach each of `spec.listeners`, in their order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,

    /// The Kafka cluster id the brokers report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}
