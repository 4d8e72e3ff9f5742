//! Pure builders of the Kubernetes objects a `Cluster` owns: the same `Cluster` in gives the
//! same objects out, so a reconciler can apply them with server-side apply on every pass.

mod certificate;
mod configmap;
mod listeners;
mod pdb;
#[cfg(test)]
mod pod_security;
mod rack;
mod serviceaccount;
mod servicemonitor;
mod services;
mod statefulset;

pub use certificate::{
    cert_manager_request, certificate_dns_names, certificate_resource, listener_certificate,
    listener_certificate_name, CERT_MANAGER_API_VERSION, CERT_MANAGER_GROUP,
};
pub use configmap::{
    cluster_id_from_uid, config_map, dynamic_broker_config, render_broker_config, CONFIG_FILE,
};
pub use listeners::{
    advertised_listeners, authentication_enabled, broker_advertised_listeners, broker_config_file,
    broker_listener_name, has_node_port_listener, listener_config, listener_services,
    listener_statuses, node_ports_of, operator_credentials_secret_name, security_protocol,
    tls_secret_name, NodePorts, LISTENER_LABEL, OPERATOR_PASSWORD_KEY, OPERATOR_USER,
    REPLICATION_LISTENER,
};
pub use pdb::pod_disruption_budget;
pub use rack::{
    rack_binding, rack_binding_name, RACK_BINDING_CLUSTER_LABEL, RACK_BINDING_NAMESPACE_LABEL,
    RACK_INIT_CONTAINER,
};
pub use serviceaccount::service_account;
pub use servicemonitor::{service_monitor, service_monitor_resource};
pub use services::{agent_endpoint, bootstrap_address, bootstrap_service, headless_service};
pub use statefulset::{stateful_set, CONFIG_HASH_ANNOTATION, NODE_PORTS_ANNOTATION};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::Cluster;
use crate::Error;

/// Kafka listener port of every broker.
pub const KAFKA_PORT: i32 = 9092;
/// Admin HTTP port (/metrics, /healthz, /readyz) of every broker.
pub const ADMIN_PORT: i32 = 9644;
/// Metadata quorum (Raft) port of every broker.
pub const CONTROLLER_PORT: i32 = 9093;
/// Broker image used when `spec.image` is unset (built by deploy/Dockerfile).
pub const DEFAULT_BROKER_IMAGE: &str =
    concat!("ghcr.io/runnel/runnel-broker:", env!("CARGO_PKG_VERSION"));

/// Name, namespace and uid of a Cluster, which every owned object needs.
pub(crate) struct Owner<'a> {
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) owner_ref: OwnerReference,
}

fn missing_cluster_field(field: &'static str) -> Error {
    Error::MissingMetadata {
        kind: "Cluster",
        field,
    }
}

/// A Cluster's name and namespace (an object read from the API server has both).
pub(crate) fn name_and_namespace(cluster: &Cluster) -> Result<(&str, &str), Error> {
    let meta = &cluster.metadata;
    let name = meta.name.as_deref();
    let namespace = meta.namespace.as_deref();
    Ok((
        name.ok_or_else(|| missing_cluster_field("name"))?,
        namespace.ok_or_else(|| missing_cluster_field("namespace"))?,
    ))
}

pub(crate) fn owner(cluster: &Cluster) -> Result<Owner<'_>, Error> {
    let (name, namespace) = name_and_namespace(cluster)?;
    // controller_owner_ref is None only without a uid; owner references need one.
    let owner_ref = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| missing_cluster_field("uid"))?;
    Ok(Owner {
        name,
        namespace,
        owner_ref,
    })
}

/// [`selector_labels`] as a label selector string (`k=v,...`), for LIST calls.
pub fn label_selector(cluster_name: &str) -> String {
    selector_labels(cluster_name)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels that select one Cluster's broker pods (also the StatefulSet selector).
pub fn selector_labels(cluster_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "runnel".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster_name.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "broker".to_string(),
        ),
    ])
}

/// Labels on every object the operator creates for a Cluster.
pub fn common_labels(cluster_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster_name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "runnel-operator".to_string(),
    );
    labels
}

/// Metadata of an object owned by the Cluster, named `name`.
pub(crate) fn owned_meta(owner: &Owner<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(owner.namespace.to_string()),
        labels: Some(common_labels(owner.name)),
        owner_references: Some(vec![owner.owner_ref.clone()]),
        ..ObjectMeta::default()
    }
}

/// Name of the headless Service giving each broker a stable DNS name.
pub fn headless_service_name(cluster_name: &str) -> String {
    format!("{cluster_name}-brokers")
}

/// FNV-1a (64 bit) as hex: a hash that is stable across Rust releases and processes, used to
/// roll the brokers when their configuration changes.
pub(crate) fn stable_hash(data: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{ClusterSpec, StorageSpec};

    /// A minimal Cluster "demo" in namespace "kafka" with uid set, as the apiserver returns it.
    pub(crate) fn cluster(spec: ClusterSpec) -> Cluster {
        let mut c = Cluster::new("demo", spec);
        c.metadata.namespace = Some("kafka".into());
        c.metadata.uid = Some("0f8e5a4c-3b2a-4c1d-9e8f-7a6b5c4d3e2f".into());
        c
    }

    pub(crate) fn spec() -> ClusterSpec {
        ClusterSpec {
            replicas: 3,
            image: None,
            storage: StorageSpec {
                size: "10Gi".into(),
                storage_class: None,
                delete_claim: false,
            },
            resources: None,
            config: BTreeMap::new(),
            agent: None,
            rack_label: None,
            pod_template: None,
            metrics: None,
            rebalance: None,
            image_policy: Default::default(),
            listeners: Vec::new(),
            require_tls_external: false,
        }
    }

    pub(crate) fn owner_ref_json() -> serde_json::Value {
        serde_json::json!([{
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Cluster",
            "name": "demo",
            "uid": "0f8e5a4c-3b2a-4c1d-9e8f-7a6b5c4d3e2f",
            "controller": true,
        }])
    }

    pub(crate) fn labels_json() -> serde_json::Value {
        serde_json::json!({
            "app.kubernetes.io/name": "runnel",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "broker",
            "app.kubernetes.io/managed-by": "runnel-operator",
        })
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        // Reference values of FNV-1a 64.
        assert_eq!(stable_hash(b""), "cbf29ce484222325");
        assert_eq!(stable_hash(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn builders_refuse_a_cluster_without_uid() {
        let mut c = cluster(spec());
        c.metadata.uid = None;
        assert!(matches!(
            owner(&c),
            Err(Error::MissingMetadata { field: "uid", .. })
        ));
    }
}
