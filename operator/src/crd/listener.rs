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
    validation = Rule::new("!has(self.tls) || !self.tls || has(self.certificate)").message("a tls listener needs a certificate (secretName or certManager)"),
    validation = Rule::new("(has(self.tls) && self.tls) || !has(self.certificate)").message("certificate is only for tls listeners"),
    validation = Rule::new("!(self.port in [9092, 9093, 9644, 9645])").message("ports 9092, 9093, 9644 and 9645 are the brokers' own (replication, metadata quorum, admin, agent)"),
    validation = Rule::new("!has(self.type) || self.type != 'loadbalancer' || has(self.advertisedHostTemplate)").message("a loadbalancer listener needs advertisedHostTemplate"),
    validation = Rule::new("!has(self.type) || self.type != 'nodeport' || has(self.advertisedHostTemplate)").message("a nodeport listener needs advertisedHostTemplate"),
    validation = Rule::new("!has(self.nodePorts) || (has(self.type) && self.type == 'nodeport')").message("nodePorts is only for nodeport listeners"),
    validation = Rule::new("!has(self.nodePorts) || self.nodePorts.all(p, self.nodePorts.exists_one(q, q == p))").message("nodePorts must be unique"),
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
    /// `tls.key` and, for client certificates, `ca.crt`), given or requested from cert-manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ListenerCertificate>,

    /// For `loadbalancer` and `nodeport` (required for both): the host each broker is
    /// advertised as, with `{ordinal}` replaced by the broker's ordinal (e.g.
    /// `broker-{ordinal}.kafka.example.com`). For `loadbalancer` it must resolve to that
    /// broker's Service; for `nodeport` to a node of the Kubernetes cluster (any node: a
    /// NodePort Service listens on every node), and the broker is advertised with its
    /// Service's node port, not `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub advertised_host_template: Option<String>,

    /// For `nodeport`: the node port of each broker's Service, by ordinal (broker 0 first),
    /// each in 30000-32767 and free in the Kubernetes cluster. Brokers without an entry (all
    /// of them when it is absent), and the bootstrap Service, get the node port the API
    /// server allocates; the operator reads it back from the Service and advertises it before
    /// it writes that broker's configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self.all(p, p >= 30000 && p <= 32767)").message("node ports are in 30000-32767"))]
    pub node_ports: Vec<i32>,
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
    /// Through a NodePort Service per broker and a bootstrap one: clients reach a broker at
    /// its `advertisedHostTemplate` host and its Service's node port.
    #[serde(rename = "nodeport")]
    NodePort,
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

/// Where a TLS listener's certificate comes from: exactly one of a Secret the user provides
/// (`secretName`) or a certificate the operator requests from cert-manager (`certManager`).
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.secretName) != has(self.certManager)").message("a certificate is exactly one of secretName and certManager"),
)]
pub struct ListenerCertificate {
    /// A Secret of type kubernetes.io/tls in the Cluster's namespace (`tls.crt`, `tls.key`,
    /// and `ca.crt` for client certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,

    /// Request the certificate from cert-manager: the operator applies a `cert-manager.io/v1`
    /// Certificate `<cluster>-listener-tls` (owned by the Cluster) whose Secret of the same
    /// name the brokers mount. Its DNS names are every name the brokers are advertised as on
    /// the tls listeners (pod names on the headless Service for `internal`, the per-broker and
    /// bootstrap Services for `cluster-ip`, `advertisedHostTemplate` per broker for
    /// `loadbalancer` and `nodeport`); its usages are server auth, and client auth with
    /// `authentication: tls` (then the issuer's CA, the Secret's `ca.crt`, is the one client
    /// certificates are checked against). Needs cert-manager installed: without it the
    /// Cluster's `Certificate` condition is False with reason `CertManagerMissing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManagerCertificate>,
}

/// A certificate requested from cert-manager.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertManagerCertificate {
    /// The cert-manager issuer that signs it.
    pub issuer_ref: IssuerRef,
}

/// A cert-manager issuer (cert-manager's `issuerRef`).
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the Issuer (in the Cluster's namespace) or ClusterIssuer.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (default) or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
    /// API group of the issuer; cert-manager's own (`cert-manager.io`) when absent, another
    /// for external issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
}

/// Kind of a cert-manager issuer.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssuerKind {
    /// A namespaced Issuer, in the Cluster's namespace.
    #[default]
    Issuer,
    /// A cluster-scoped ClusterIssuer.
    ClusterIssuer,
}
