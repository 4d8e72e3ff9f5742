//! Custom resource types of the `runnel.dev/v1alpha1` API, one module per kind, and the
//! generation of their CustomResourceDefinitions (what `runnel-operator crd` prints and what
//! `crds/` holds).

pub mod cluster;
pub mod consumer;
pub mod listener;
pub mod topic;
pub mod user;

pub use cluster::{
    reserved_config_keys, AgentSpec, Cluster, ClusterSpec, ClusterStatus, ImagePolicy,
    ListenerAddress, ListenerStatus, MetricsSpec, PodTemplateOverrides, RebalanceSpec, StorageSpec,
};
pub use consumer::{
    Consumer, ConsumerSpec, ConsumerStatus, LagAlert, OffsetReset, PartitionLag, PartitionOffset,
    ResetStrategy, MAX_LAG_ENTRIES,
};
pub use listener::{
    CertManagerCertificate, IssuerKind, IssuerRef, ListenerAuthentication, ListenerCertificate,
    ListenerSpec, ListenerType,
};
pub use topic::{DeletionPolicy, Topic, TopicSpec, TopicStatus};
pub use user::{
    AclOperation, AclPatternType, AclPermission, AclResourceType, AclRule, AppliedCredential,
    AuthenticationType, PasswordSource, SecretKeyRef, User, UserAuthentication, UserSpec,
    UserStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Runnel custom resource.
pub const GROUP: &str = "runnel.dev";

/// A reference to a `Cluster` in the same namespace as the referring object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the `Cluster` (same namespace).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// The CRDs of all kinds, in a fixed order (Cluster, Topic, Consumer, User).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Cluster::crd(), Topic::crd(), Consumer::crd(), User::crd()]
}

/// The CRDs of all kinds as one multi-document YAML stream (`runnel-operator crd`).
pub fn crds_yaml() -> Result<String, crate::Error> {
    crds().iter().map(crd_yaml).collect()
}

/// One CRD as a YAML document (the content of `crds/<kind>.yaml`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, crate::Error> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let doc = serde_yaml::to_string(crd).map_err(|source| crate::Error::Serialize {
        what: format!("CRD {name}"),
        source,
    })?;
    Ok(format!("---\n{doc}"))
}
