//! What a Cluster with `rackLabel` adds so each broker learns its node's rack (`broker_rack`):
//! an init container running `runnel-agent rack`, which reads the label of the pod's node from
//! the API server and writes it to a volume the broker reads as `broker_rack_file` (node labels
//! are not in the downward API); the API token it needs, projected into that container only;
//! and the ClusterRoleBinding that lets the brokers' ServiceAccount read nodes (nodes are
//! cluster-scoped, so a RoleBinding cannot grant it and an owner reference cannot delete it:
//! the Cluster reconciler removes it behind a finalizer).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    EmptyDirVolumeSource, EnvVar, KeyToPath, ObjectFieldSelector, ProjectedVolumeSource,
    ResourceRequirements, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::serviceaccount::service_account_name;
use super::{common_labels, name_and_namespace};
use crate::crd::Cluster;
use crate::Error;

/// Where the rack file's volume is mounted (init container read-write, broker read-only).
pub(crate) const RACK_MOUNT: &str = "/var/run/runnel-rack";
/// The file the init container writes and the broker reads.
pub(crate) const RACK_FILE: &str = "/var/run/runnel-rack/rack";
/// Where an in-cluster client looks for its token, CA and namespace.
pub(crate) const API_TOKEN_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name of the init container.
pub const RACK_INIT_CONTAINER: &str = "rack";
const RACK_VOLUME: &str = "rack";
const API_TOKEN_VOLUME: &str = "rack-api-token";
/// Lifetime of the projected token (the kubelet's default for the automounted one); the init
/// container uses it within seconds.
const TOKEN_SECONDS: i64 = 3607;

/// Label on a rack ClusterRoleBinding naming its Cluster's namespace (the binding is
/// cluster-scoped, so its name and these labels say whose it is).
pub const RACK_BINDING_NAMESPACE_LABEL: &str = "runnel.dev/cluster-namespace";
/// Label on a rack ClusterRoleBinding naming its Cluster.
pub const RACK_BINDING_CLUSTER_LABEL: &str = "runnel.dev/cluster";

/// Name of the ClusterRoleBinding of Cluster `name` in `namespace`. Namespaces are DNS labels
/// (no dots), so no two Clusters share a name.
pub fn rack_binding_name(namespace: &str, name: &str) -> String {
    format!("runnel-broker-rack.{namespace}.{name}")
}

/// The ClusterRoleBinding giving the Cluster's brokers' ServiceAccount the ClusterRole
/// `cluster_role` (the chart's `<release>-broker-rack`, which allows `get` on nodes).
pub fn rack_binding(cluster: &Cluster, cluster_role: &str) -> Result<ClusterRoleBinding, Error> {
    let (name, namespace) = name_and_namespace(cluster)?;
    let mut labels = common_labels(name);
    labels.insert(RACK_BINDING_NAMESPACE_LABEL.into(), namespace.into());
    labels.insert(RACK_BINDING_CLUSTER_LABEL.into(), name.into());
    Ok(ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(rack_binding_name(namespace, name)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: service_account_name(name),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    })
}

/// The init container writing the rack of the pod's node, label `label`, to [`RACK_FILE`].
pub(crate) fn init_container(
    label: &str,
    image: String,
    security_context: SecurityContext,
) -> Container {
    let quantities = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect::<BTreeMap<_, _>>()
    };
    Container {
        name: RACK_INIT_CONTAINER.into(),
        image: Some(image),
        command: Some(vec!["runnel-agent".into()]),
        args: Some(vec![
            "rack".into(),
            "--node".into(),
            "$(NODE_NAME)".into(),
            "--label".into(),
            label.into(),
            "--out".into(),
            RACK_FILE.into(),
        ]),
        env: Some(vec![EnvVar {
            name: "NODE_NAME".into(),
            value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..Default::default()
            }),
            ..EnvVar::default()
        }]),
        // One API read and a file write.
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "10m"), ("memory", "32Mi")])),
            limits: Some(quantities(&[("memory", "64Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security_context),
        volume_mounts: Some(vec![
            VolumeMount {
                name: RACK_VOLUME.into(),
                mount_path: RACK_MOUNT.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: API_TOKEN_VOLUME.into(),
                mount_path: API_TOKEN_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

/// The broker container's read-only mount of the rack file's volume.
pub(crate) fn broker_mount() -> VolumeMount {
    VolumeMount {
        name: RACK_VOLUME.into(),
        mount_path: RACK_MOUNT.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// The broker's `RUNNEL_BROKER_RACK_FILE`.
pub(crate) fn broker_env() -> EnvVar {
    EnvVar {
        name: "RUNNEL_BROKER_RACK_FILE".into(),
        value: Some(RACK_FILE.into()),
        ..EnvVar::default()
    }
}

/// The rack file's volume and the init container's API token (what the kubelet projects for an
/// automounted token: the token, the cluster CA, the namespace).
pub(crate) fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: RACK_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: API_TOKEN_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(TOKEN_SECONDS),
                            ..ServiceAccountTokenProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                ..KeyToPath::default()
                            }]),
                            ..ConfigMapProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..ObjectFieldSelector::default()
                                }),
                                ..DownwardAPIVolumeFile::default()
                            }]),
                        }),
                        ..VolumeProjection::default()
                    },
                ]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, spec};
    use serde_json::json;

    #[test]
    fn the_binding_grants_the_role_to_the_brokers_service_account() {
        let binding = rack_binding(&cluster(spec()), "runnel-broker-rack").expect("valid");
        let json = serde_json::to_value(&binding).expect("serializes");
        assert_eq!(json["metadata"]["name"], "runnel-broker-rack.kafka.demo");
        assert_eq!(
            json["metadata"]["labels"][RACK_BINDING_NAMESPACE_LABEL],
            "kafka"
        );
        assert_eq!(
            json["metadata"]["labels"][RACK_BINDING_CLUSTER_LABEL],
            "demo"
        );
        assert!(
            json["metadata"]["ownerReferences"].is_null(),
            "a cluster-scoped object cannot be owned by a namespaced one"
        );
        assert_eq!(
            json["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                   "name": "runnel-broker-rack"})
        );
        assert_eq!(
            json["subjects"],
            json!([{"kind": "ServiceAccount", "name": "demo-broker", "namespace": "kafka"}])
        );
    }

    #[test]
    fn binding_names_of_different_clusters_never_collide() {
        // "a-b"/"c" and "a"/"b-c" would collide if joined with dashes.
        assert_ne!(rack_binding_name("a-b", "c"), rack_binding_name("a", "b-c"));
    }
}
