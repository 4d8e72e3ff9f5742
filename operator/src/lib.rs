//! The Runnel Kubernetes operator: the `runnel.dev/v1alpha1` custom resource types
//! (`Cluster`, `Topic`, `Consumer`), their generated CRDs, and pure builders for the
//! Kubernetes objects a `Cluster` owns.

pub mod apply;
pub mod crd;
pub mod lag;
pub mod plan;
pub mod resources;
pub mod status;

pub use crd::{crds, crds_yaml};

/// Errors of the operator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD or object could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The underlying serializer error.
        #[source]
        source: serde_yaml::Error,
    },
    /// The object lacks metadata a builder needs (name, namespace or uid).
    #[error("{kind} has no metadata.{field}")]
    MissingMetadata {
        /// Kind of the object.
        kind: &'static str,
        /// The missing metadata field.
        field: &'static str,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call that failed.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A `Cluster`'s `spec.config` entry cannot become broker configuration.
    #[error("invalid broker config {key}={value:?}: {reason}")]
    InvalidConfig {
        /// The config key.
        key: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
