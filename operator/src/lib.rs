//! The Runnel Kubernetes operator: the `runnel.dev/v1alpha1` custom resource types
//! (`Cluster`, `Topic`, `Consumer`, `User`), their generated CRDs, pure builders for the Kubernetes
//! objects a `Cluster` owns, and the controllers (`run`) that reconcile them.
//!
//! Modules:
//! - [`crd`]: the custom resource types (one module per kind) and CRD generation.
//! - [`run`]: `runnel-operator run`: HTTP endpoint, leader election, the controllers.
//! - [`controller`]: the reconcilers (one module per kind) and their shared `Context`.
//! - [`resources`]: pure builders of the objects a `Cluster` owns.
//! - [`apply`]: writing a Cluster's objects and status with server-side apply.
//! - [`status`], [`storage`], [`scale`], [`roll`], [`plan`], [`lag`]: the sans-IO cores of
//!   the Cluster, storage, scaling, rolling restart, Topic and Consumer decisions.
//! - [`kafka`]: reaching a Cluster's brokers over the Kafka protocol; [`agent`]: asking a
//!   broker's sidecar agent before acting on that broker.
//! - [`leader`]: leader election with a Lease; [`http`]: `/metrics`, `/healthz`,
//!   `/readyz`; [`metrics`]: the operator's Prometheus metrics.

pub mod agent;
pub mod apply;
pub mod controller;
pub mod crd;
pub mod http;
pub mod kafka;
pub mod lag;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod resources;
pub mod roll;
pub mod run;
pub mod scale;
pub mod status;
pub mod storage;

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
    /// A Kafka admin call to a Cluster's brokers failed.
    #[error("{what}: {source}")]
    Kafka {
        /// The call that failed.
        what: String,
        /// The client error.
        #[source]
        source: runnel_client::Error,
    },
    /// A call to a broker's sidecar agent failed.
    #[error("{what}: {reason}")]
    Agent {
        /// The call that failed, with the agent's endpoint.
        what: String,
        /// Why.
        reason: String,
    },
    /// Brokers or agents did not answer in time.
    #[error("{0}: timed out")]
    Timeout(String),
    /// Adding or removing a finalizer, or the cleanup behind it, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Something on the operator's own machine failed (e.g. its random number source).
    #[error("{what}: {reason}")]
    Local {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Another replica took the leader Lease (or it could not be renewed in time).
    #[error("lost the leader Lease {0}")]
    LostLeadership(String),
    /// A nodeport listener's Service has no node port (yet), so the broker behind it cannot
    /// be advertised.
    #[error("Service {0} has no node port")]
    NodePortMissing(String),
}

impl Error {
    /// A short label for the `reason` of the reconcile failure metric.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Serialize { .. } => "serialize",
            Error::MissingMetadata { .. } => "missing_metadata",
            Error::Kube { .. } => "kube_api",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::Kafka { .. } => "kafka",
            Error::Agent { .. } => "agent",
            Error::Timeout(_) => "timeout",
            Error::Finalizer(inner) => match inner.as_ref() {
                // The reconcile behind the finalizer failed: report its own reason.
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_reason(),
                _ => "finalizer",
            },
            Error::LostLeadership(_) => "lost_leadership",
            Error::Local { .. } => "local",
            Error::NodePortMissing(_) => "node_port_missing",
        }
    }
}
