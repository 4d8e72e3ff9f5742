//! A `Cluster`'s Kafka listeners (`spec.listeners`): name, port, how clients reach it
//! (Service type), TLS and client authentication.

// KubeSchema's derive re-declares each struct (with its `pub` fields) inside a function to build
// the schema; unreachable_pub fires on that private copy, so it is allowed for this module.
#![allow(unreachable_pub)]

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One Kafka listener of every broker.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.authentication) || self.authentication != 'tls' || (has(self.tls) && self.tls)").message("authentication tls (client certificates) needs tls: true"),
    validation = Rule::new("!has(self.tls) || !self.tls || has(self.certificate)").message("a tls listener needs a certificate (secretName)"),
    validation = Rule::new("(has(self.tls) && self.tls) || !has(self.certificate)").message("certificate is only for tls listeners"),
    validation = Rule::new("!(self.port in [9092, 9093, 9644, 9645])").message("ports 9092, 9093, 9644 and 9645 are the brokers' own (replication, metadata quorum, admin, agent)"),
    validation = Rule::new("!has(self.type) || self.type != 'loadbalancer' || has(self.advertisedHostTemplate)").message("a loadbalancer listener needs advertisedHostTemplate"),
)]
pub struct ListenerSpec {
    /// Listener name (lower case; the brokers' listener name is its upper-case form, `-` as `_`).
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self != 'replication'").message("the listener name replication is the operator's own"))]
    pub name: String,

    /// Port of the listener on every broker (and of its Services).
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// How clients reach the listener.
    #[serde(rename = "type", default)]
    pub type_: ListenerType,

    /// Serve TLS (the certificate is `certificate`'s).
    #[serde(default)]
    pub tls: bool,

    /// How clients authenticate on it.
    #[serde(default)]
    pub authentication: ListenerAuthentication,

    /// The TLS certificate (with `tls`): a Secret of type kubernetes.io/tls (keys `tls.crt`,
    /// `tls.key` and, for client certificates, `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ListenerCertificate>,

    /// For `loadbalancer`: the host each broker is advertised as, with
    /// `{ordinal}` replaced by the broker's ordinal (e.g. `broker-{ordinal}.kafka.example.com`),
    /// which must resolve to that broker's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub advertised_host_template: Option<String>,
}

/// How clients reach a listener.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerType {
    /// Inside the Kubernetes cluster, through the headless Service (each broker by its pod's
    /// DNS name).
    #[default]
    #[serde(rename = "internal")]
    Internal,
    /// Inside the Kubernetes cluster, through a ClusterIP Service per broker and a bootstrap one.
    #[serde(rename = "cluster-ip")]
    ClusterIp,
    /// Through a LoadBalancer Service per broker and a bootstrap one.
    #[serde(rename = "loadbalancer")]
    LoadBalancer,
}

/// How clients authenticate on a listener.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerAuthentication {
    /// No authentication (`User:ANONYMOUS`).
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// SASL SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Client certificates (mutual TLS).
    #[serde(rename = "tls")]
    Tls,
}

/// Where a TLS listener's certificate comes from. (Certificates requested from cert-manager
/// are not offered yet: nothing would create their Secret.)
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerCertificate {
    /// A Secret of type kubernetes.io/tls in the Cluster's namespace (`tls.crt`, `tls.key`,
    /// and `ca.crt` for client certificates).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}
