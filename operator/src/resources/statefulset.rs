//! The brokers' StatefulSet: one pod per broker, node id = pod ordinal, one volume each.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::DATA_MOUNT;
use super::rack;
use super::serviceaccount::service_account_name;
use super::{
    headless_service_name, owned_meta, owner, render_broker_config, selector_labels, stable_hash,
    ADMIN_PORT, CONFIG_FILE, CONTROLLER_PORT, DEFAULT_BROKER_IMAGE, KAFKA_PORT,
};
use crate::crd::Cluster;
use crate::Error;

/// Pod annotation listing the node ports of a Cluster's nodeport listener Services
/// (`<service>=<port>,...`), so a changed node port rolls the brokers that advertise it.
pub const NODE_PORTS_ANNOTATION: &str = "runnel.dev/node-ports";
/// Pod annotation carrying the hash of `runnel.toml`, so a config change rolls the brokers.
pub const CONFIG_HASH_ANNOTATION: &str = "runnel.dev/config-hash";

/// Seconds a broker gets after SIGTERM to flush and fsync every partition before it is killed.
const TERMINATION_GRACE_SECONDS: i64 = 120;
const CONFIG_MOUNT: &str = "/etc/runnel";
/// User and group of the broker process (deploy/Dockerfile's distroless nonroot image).
const BROKER_UID: i64 = 65532;
/// gRPC port of the `runnel-agent` sidecar in each broker pod.
pub(crate) const AGENT_PORT: i32 = 9645;
/// Agent image used when the broker image is not a `runnel-broker` image it can be derived from.
pub(crate) const DEFAULT_AGENT_IMAGE: &str =
    concat!("ghcr.io/runnel/runnel-agent:", env!("CARGO_PKG_VERSION"));

/// The agent image matching `broker_image`: same registry, path and tag with the name
/// `runnel-broker` swapped for `runnel-agent`, so a pinned broker version pins the agent too.
/// Digests cannot be carried over and other names give no hint, so those get the default.
pub(crate) fn agent_image(broker_image: Option<&str>) -> String {
    let Some(image) = broker_image else {
        return DEFAULT_AGENT_IMAGE.into();
    };
    if image.contains('@') {
        return DEFAULT_AGENT_IMAGE.into();
    }
    let (prefix, last) = match image.rsplit_once('/') {
        Some((prefix, last)) => (format!("{prefix}/"), last),
        None => (String::new(), image),
    };
    let (name, tag) = match last.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (last, None),
    };
    if name != "runnel-broker" {
        return DEFAULT_AGENT_IMAGE.into();
    }
    match tag {
        Some(tag) => format!("{prefix}runnel-agent:{tag}"),
        None => format!("{prefix}runnel-agent"),
    }
}

/// Container security context required by the Pod Security "restricted" profile: no privilege
/// escalation, every capability dropped, never root (the pod sets the seccomp profile).
fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// Agent resources when `spec.agent.resources` is unset: the sidecar only relays a few gRPC
/// calls to its broker, but an unbounded container would count against nothing.
fn default_agent_resources() -> ResourceRequirements {
    let quantities = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect::<BTreeMap<_, _>>()
    };
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
        limits: Some(quantities(&[("memory", "128Mi")])),
        ..ResourceRequirements::default()
    }
}

fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The broker container's ports: Kafka (the replication listener with `spec.listeners`),
/// admin, metadata quorum, then each listener's.
fn broker_ports(cluster: &Cluster) -> Vec<ContainerPort> {
    let mut ports = vec![
        ContainerPort {
            name: Some("kafka".into()),
            container_port: KAFKA_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some("admin".into()),
            container_port: ADMIN_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some("controller".into()),
            container_port: CONTROLLER_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        },
    ];
    ports.extend(super::listeners::container_ports(cluster));
    ports
}

/// The StatefulSet `<cluster>-brokers`.
pub fn stateful_set(cluster: &Cluster) -> Result<StatefulSet, Error> {
    let owner = owner(cluster)?;
    let spec = &cluster.spec;
    let selector = selector_labels(owner.name);
    let overrides = spec.pod_template.clone().unwrap_or_default();

    // User labels first so the operator's selector labels win on conflicts.
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(super::common_labels(owner.name));
    let mut pod_annotations = overrides.annotations.clone();
    let mut hashed = render_broker_config(cluster)?;
    if super::has_node_port_listener(cluster) {
        // Each broker's own file adds its advertised listeners, which follow the listeners'
        // spec (node ports once allocated never change for a Service that stays).
        let listeners = serde_json::to_string(&spec.listeners).map_err(|e| Error::Local {
            what: "hash the listeners".into(),
            reason: e.to_string(),
        })?;
        hashed.push_str(&listeners);
    }
    pod_annotations.insert(
        CONFIG_HASH_ANNOTATION.to_string(),
        stable_hash(hashed.as_bytes()),
    );

    let mut env = vec![
        // StatefulSet pods carry their ordinal as this label (Kubernetes >= 1.28); the broker's
        // node id is the ordinal, so it is stable across restarts and rescheduling.
        env_from_field(
            "RUNNEL_NODE_ID",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
        env_from_field("POD_NAME", "metadata.name"),
        EnvVar {
            name: "RUNNEL_ADVERTISED_ADDRESS".into(),
            value: Some(format!(
                "$(POD_NAME).{}.{}.svc:{KAFKA_PORT}",
                headless_service_name(owner.name),
                owner.namespace
            )),
            ..EnvVar::default()
        },
        EnvVar {
            name: "RUNNEL_CONTROLLER_ADVERTISED_ADDRESS".into(),
            value: Some(format!(
                "$(POD_NAME).{}.{}.svc:{CONTROLLER_PORT}",
                headless_service_name(owner.name),
                owner.namespace
            )),
            ..EnvVar::default()
        },
        // Every pod gets the same seed, pod 0's metadata listener; pod 0 ignores
        // its own address and founds the cluster, the others join through it.
        EnvVar {
            name: "RUNNEL_SEEDS".into(),
            value: Some(format!(
                "{}-0.{}.{}.svc:{CONTROLLER_PORT}",
                headless_service_name(owner.name),
                headless_service_name(owner.name),
                owner.namespace
            )),
            ..EnvVar::default()
        },
    ];
    if !spec.listeners.is_empty() {
        // Named listeners replace the single advertised address.
        env.retain(|e| e.name != "RUNNEL_ADVERTISED_ADDRESS");
    }
    if let Some(advertised) = super::advertised_listeners(cluster)? {
        env.push(EnvVar {
            name: "RUNNEL_ADVERTISED_LISTENERS".into(),
            value: Some(advertised),
            ..EnvVar::default()
        });
    }
    let mut broker_mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_MOUNT.into(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: format!("{}-config", owner.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let (listener_volumes, listener_mounts) = super::listeners::volumes(cluster)?;
    volumes.extend(listener_volumes);
    broker_mounts.extend(listener_mounts);
    let mut init_containers = Vec::new();
    if let Some(label) = &spec.rack_label {
        // The broker's rack comes from its node's label, written by the init container.
        env.push(rack::broker_env());
        broker_mounts.push(rack::broker_mount());
        volumes.extend(rack::volumes());
        init_containers.push(rack::init_container(
            label,
            agent_image(spec.image.as_deref()),
            restricted_container_security_context(),
        ));
    }

    let container = Container {
        name: "broker".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_BROKER_IMAGE.into()),
        ),
        command: Some(vec!["runnel-broker".into()]),
        args: Some(vec![
            "--config".into(),
            if super::has_node_port_listener(cluster) {
                // Each broker its own file (its advertised node ports); the kubelet expands
                // the ordinal.
                format!(
                    "{CONFIG_MOUNT}/{}",
                    super::listeners::broker_config_file_template()
                )
            } else {
                format!("{CONFIG_MOUNT}/{CONFIG_FILE}")
            },
        ]),
        env: Some(env),
        ports: Some(broker_ports(cluster)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // Generous: recovery of a large log after a crash must not be cut short by a restart.
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(30),
            ..http_probe("/healthz", 10, 6)
        }),
        resources: spec.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(broker_mounts),
        ..Container::default()
    };

    // The sidecar talks to its broker over localhost; the operator calls it on AGENT_PORT
    // before restarting or removing that broker. On an authenticated Cluster it logs in as
    // the operator's user.
    let agent_sasl = super::listeners::agent_sasl(cluster);
    let mut agent_args = vec![
        "--listen".into(),
        format!("0.0.0.0:{AGENT_PORT}"),
        "--broker-admin".into(),
        format!("127.0.0.1:{ADMIN_PORT}"),
        "--broker-kafka".into(),
        format!("127.0.0.1:{KAFKA_PORT}"),
        "--data-dir".into(),
        format!("{DATA_MOUNT}/data"),
    ];
    let mut agent_mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: DATA_MOUNT.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    if let Some((args, mount)) = agent_sasl {
        agent_args.extend(args);
        agent_mounts.push(mount);
    }
    let agent = Container {
        name: "agent".into(),
        image: Some(agent_image(spec.image.as_deref())),
        command: Some(vec!["runnel-agent".into()]),
        args: Some(agent_args),
        env: Some(vec![env_from_field(
            "RUNNEL_NODE_ID",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        )]),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: AGENT_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(
            spec.agent
                .as_ref()
                .and_then(|a| a.resources.clone())
                .unwrap_or_else(default_agent_resources),
        ),
        security_context: Some(restricted_container_security_context()),
        // The data dir read-only, for its disk use in BrokerStatus.
        volume_mounts: Some(agent_mounts),
        ..Container::default()
    };

    let topology_spread_constraints = spec.rack_label.as_ref().map(|key| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.clone(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });

    let pod_spec = PodSpec {
        // The broker image runs as 65532 (distroless nonroot); fsGroup makes the volume writable.
        // With the containers' contexts this passes the Pod Security "restricted" profile.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        service_account_name: Some(service_account_name(owner.name)),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        containers: vec![container, agent],
        volumes: Some(volumes),
        affinity: overrides.affinity.clone(),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        image_pull_secrets: (!overrides.image_pull_secrets.is_empty())
            .then(|| overrides.image_pull_secrets.clone()),
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        priority_class_name: overrides.priority_class_name.clone(),
        topology_spread_constraints,
        ..PodSpec::default()
    };

    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(selector.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };

    Ok(StatefulSet {
        metadata: owned_meta(&owner, headless_service_name(owner.name)),
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(headless_service_name(owner.name)),
            // Brokers start independently (each recovers its own log); ordered start would
            // serialize recoveries for no benefit.
            pod_management_policy: Some("Parallel".into()),
            // Kubernetes never restarts a broker on its own: the operator deletes one
            // out-of-date pod at a time, after its agent says stopping it is safe.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        if spec.storage.delete_claim {
                            "Delete"
                        } else {
                            "Retain"
                        }
                        .into(),
                    ),
                    // A scale-down drains the brokers that go before the StatefulSet
                    // shrinks, so their volumes hold nothing the cluster still needs.
                    when_scaled: Some(
                        if spec.storage.delete_claim {
                            "Delete"
                        } else {
                            "Retain"
                        }
                        .into(),
                    ),
                },
            ),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AgentSpec;
    use crate::crd::PodTemplateOverrides;
    use crate::resources::pod_security::restricted_violations;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};
    use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
    use serde_json::json;

    fn selector() -> serde_json::Value {
        json!({
            "app.kubernetes.io/name": "runnel",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "broker",
        })
    }

    fn restricted_container_json() -> serde_json::Value {
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "runAsNonRoot": true,
        })
    }

    #[test]
    fn default_spec_gives_the_exact_statefulset() {
        let c = cluster(spec());
        let hash = stable_hash(render_broker_config(&c).expect("valid").as_bytes());
        let sts = stateful_set(&c).expect("valid");
        assert_eq!(
            serde_json::to_value(&sts).expect("serializes"),
            json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {
                    "name": "demo-brokers",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "spec": {
                    "replicas": 3,
                    "serviceName": "demo-brokers",
                    "podManagementPolicy": "Parallel",
                    "updateStrategy": { "type": "OnDelete" },
                    "selector": { "matchLabels": selector() },
                    "template": {
                        "metadata": {
                            "labels": labels_json(),
                            "annotations": { "runnel.dev/config-hash": hash },
                        },
                        "spec": {
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "fsGroup": 65532,
                                "seccompProfile": { "type": "RuntimeDefault" },
                            },
                            "serviceAccountName": "demo-broker",
                            "terminationGracePeriodSeconds": 120,
                            "containers": [{
                                "name": "broker",
                                "image": DEFAULT_BROKER_IMAGE,
                                "command": ["runnel-broker"],
                                "args": ["--config", "/etc/runnel/runnel.toml"],
                                "env": [
                                    { "name": "RUNNEL_NODE_ID", "valueFrom": { "fieldRef": {
                                        "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']" } } },
                                    { "name": "POD_NAME", "valueFrom": { "fieldRef": {
                                        "fieldPath": "metadata.name" } } },
                                    { "name": "RUNNEL_ADVERTISED_ADDRESS",
                                      "value": "$(POD_NAME).demo-brokers.kafka.svc:9092" },
                                    { "name": "RUNNEL_CONTROLLER_ADVERTISED_ADDRESS",
                                      "value": "$(POD_NAME).demo-brokers.kafka.svc:9093" },
                                    { "name": "RUNNEL_SEEDS",
                                      "value": "demo-brokers-0.demo-brokers.kafka.svc:9093" },
                                ],
                                "ports": [
                                    { "name": "kafka", "containerPort": 9092, "protocol": "TCP" },
                                    { "name": "admin", "containerPort": 9644, "protocol": "TCP" },
                                    { "name": "controller", "containerPort": 9093, "protocol": "TCP" },
                                ],
                                "readinessProbe": {
                                    "httpGet": { "path": "/readyz", "port": "admin" },
                                    "periodSeconds": 5,
                                    "failureThreshold": 3,
                                },
                                "livenessProbe": {
                                    "httpGet": { "path": "/healthz", "port": "admin" },
                                    "initialDelaySeconds": 30,
                                    "periodSeconds": 10,
                                    "failureThreshold": 6,
                                },
                                "securityContext": restricted_container_json(),
                                "volumeMounts": [
                                    { "name": "data", "mountPath": "/var/lib/runnel" },
                                    { "name": "config", "mountPath": "/etc/runnel", "readOnly": true },
                                ],
                            }, {
                                "name": "agent",
                                "image": DEFAULT_AGENT_IMAGE,
                                "command": ["runnel-agent"],
                                "args": [
                                    "--listen", "0.0.0.0:9645",
                                    "--broker-admin", "127.0.0.1:9644",
                                    "--broker-kafka", "127.0.0.1:9092",
                                    "--data-dir", "/var/lib/runnel/data",
                                ],
                                "env": [
                                    { "name": "RUNNEL_NODE_ID", "valueFrom": { "fieldRef": {
                                        "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']" } } },
                                ],
                                "ports": [
                                    { "name": "agent", "containerPort": 9645, "protocol": "TCP" },
                                ],
                                "resources": {
                                    "requests": { "cpu": "50m", "memory": "64Mi" },
                                    "limits": { "memory": "128Mi" },
                                },
                                "securityContext": restricted_container_json(),
                                "volumeMounts": [
                                    { "name": "data", "mountPath": "/var/lib/runnel", "readOnly": true },
                                ],
                            }],
                            "volumes": [{ "name": "config", "configMap": { "name": "demo-config" } }],
                        },
                    },
                    "volumeClaimTemplates": [{
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": { "name": "data", "labels": selector() },
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": { "requests": { "storage": "10Gi" } },
                        },
                    }],
                    "persistentVolumeClaimRetentionPolicy": {
                        "whenDeleted": "Retain",
                        "whenScaled": "Retain",
                    },
                },
            })
        );
    }

    #[test]
    fn overrides_reach_the_pod_template_without_breaking_the_selector() {
        let mut s = spec();
        s.replicas = 5;
        s.image = Some("example.com/runnel-broker:dev".into());
        s.storage.storage_class = Some("fast".into());
        s.storage.delete_claim = true;
        s.rack_label = Some("topology.kubernetes.io/zone".into());
        s.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("500m".into()),
            )])),
            ..ResourceRequirements::default()
        });
        s.pod_template = Some(PodTemplateOverrides {
            affinity: None,
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }],
            annotations: BTreeMap::from([("team".to_string(), "data".to_string())]),
            image_pull_secrets: vec![LocalObjectReference {
                name: "registry".into(),
            }],
            node_selector: BTreeMap::from([("disk".to_string(), "ssd".to_string())]),
            priority_class_name: Some("streaming-critical".into()),
            labels: BTreeMap::from([
                ("tier".to_string(), "streaming".to_string()),
                // Must not replace the operator's selector label.
                (
                    "app.kubernetes.io/instance".to_string(),
                    "other".to_string(),
                ),
            ]),
        });
        let sts = serde_json::to_value(stateful_set(&cluster(s)).expect("valid")).expect("json");
        let spec = &sts["spec"];
        let pod = &spec["template"]["spec"];
        assert_eq!(spec["replicas"], 5);
        assert_eq!(
            pod["containers"][0]["image"],
            "example.com/runnel-broker:dev"
        );
        assert_eq!(
            pod["containers"][1]["image"],
            "example.com/runnel-agent:dev"
        );
        assert_eq!(
            pod["containers"][0]["resources"],
            json!({ "requests": { "cpu": "500m" } })
        );
        assert_eq!(
            pod["tolerations"],
            json!([{ "key": "dedicated", "operator": "Exists" }])
        );
        assert_eq!(pod["imagePullSecrets"], json!([{ "name": "registry" }]));
        assert_eq!(pod["nodeSelector"], json!({ "disk": "ssd" }));
        assert_eq!(pod["priorityClassName"], "streaming-critical");
        assert_eq!(
            pod["topologySpreadConstraints"],
            json!([{
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": { "matchLabels": selector() },
            }])
        );
        let meta = &spec["template"]["metadata"];
        assert_eq!(meta["labels"]["tier"], "streaming");
        assert_eq!(meta["labels"]["app.kubernetes.io/instance"], "demo");
        assert_eq!(meta["annotations"]["team"], "data");
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "fast"
        );
        // deleteClaim: the claims go with the Cluster and with a drained, removed broker.
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({ "whenDeleted": "Delete", "whenScaled": "Delete" })
        );
    }

    #[test]
    fn broker_pods_pass_the_restricted_pod_security_profile() {
        let mut s = spec();
        s.rack_label = Some("topology.kubernetes.io/zone".into());
        s.pod_template = Some(PodTemplateOverrides {
            annotations: BTreeMap::from([("team".to_string(), "data".to_string())]),
            ..PodTemplateOverrides::default()
        });
        for s in [spec(), s] {
            let sts = stateful_set(&cluster(s)).expect("valid");
            assert_eq!(
                restricted_violations(&sts.spec.template),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn rack_label_adds_the_init_container_and_only_it_holds_an_api_token() {
        let mut s = spec();
        s.rack_label = Some("topology.kubernetes.io/zone".into());
        s.image = Some("registry.example/runnel-broker:1.2".into());
        let sts = serde_json::to_value(stateful_set(&cluster(s)).expect("valid")).expect("json");
        let pod = &sts["spec"]["template"]["spec"];
        let init = &pod["initContainers"];
        assert_eq!(init.as_array().map(Vec::len), Some(1), "{init}");
        let init = &init[0];
        assert_eq!(init["name"], "rack");
        assert_eq!(init["image"], "registry.example/runnel-agent:1.2");
        assert_eq!(init["command"], json!(["runnel-agent"]));
        assert_eq!(
            init["args"],
            json!([
                "rack",
                "--node",
                "$(NODE_NAME)",
                "--label",
                "topology.kubernetes.io/zone",
                "--out",
                "/var/run/runnel-rack/rack"
            ])
        );
        assert_eq!(
            init["env"],
            json!([{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}])
        );
        let mounts_of = |c: &serde_json::Value| -> Vec<(String, String, bool)> {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().to_string(),
                        m["mountPath"].as_str().unwrap_or_default().to_string(),
                        m["readOnly"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        };
        assert_eq!(
            mounts_of(init),
            [
                (
                    "rack".to_string(),
                    "/var/run/runnel-rack".to_string(),
                    false
                ),
                (
                    "rack-api-token".to_string(),
                    "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
                    true
                ),
            ]
        );
        let broker = &pod["containers"][0];
        assert_eq!(broker["name"], "broker");
        assert!(mounts_of(broker).contains(&(
            "rack".to_string(),
            "/var/run/runnel-rack".to_string(),
            true
        )));
        assert!(broker["env"]
            .as_array()
            .expect("env")
            .contains(&json!({"name": "RUNNEL_BROKER_RACK_FILE",
                              "value": "/var/run/runnel-rack/rack"})));
        // The broker and the agent hold no API credentials: the token is the init container's.
        for c in pod["containers"].as_array().expect("containers") {
            assert!(
                mounts_of(c)
                    .iter()
                    .all(|(name, _, _)| name != "rack-api-token"),
                "{} mounts the API token",
                c["name"]
            );
        }
        let volumes = pod["volumes"].as_array().expect("volumes");
        let token = volumes
            .iter()
            .find(|v| v["name"] == "rack-api-token")
            .expect("token volume");
        let sources = token["projected"]["sources"].as_array().expect("sources");
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        assert!(volumes
            .iter()
            .any(|v| v["name"] == "rack" && v["emptyDir"].is_object()));

        // Without rackLabel: no init container, no rack volume, no rack file.
        let plain =
            serde_json::to_value(stateful_set(&cluster(spec())).expect("valid")).expect("json");
        let pod = &plain["spec"]["template"]["spec"];
        assert!(pod["initContainers"].is_null());
        assert_eq!(pod["volumes"].as_array().map(Vec::len), Some(1));
        assert!(!pod["containers"][0]["env"]
            .to_string()
            .contains("RUNNEL_BROKER_RACK_FILE"));
    }

    #[test]
    fn restricted_checker_refuses_the_template_without_security_contexts() {
        let mut template = stateful_set(&cluster(spec())).expect("valid").spec.template;
        let pod = template.spec.as_mut().expect("pod spec");
        pod.security_context = None;
        for c in &mut pod.containers {
            c.security_context = None;
        }
        let errors = restricted_violations(&template);
        for expected in [
            "container broker: allowPrivilegeEscalation must be false",
            "container broker: capabilities.drop must include ALL",
            "container broker: runAsNonRoot must be true",
            "container broker: seccompProfile.type must be set",
            "container agent: allowPrivilegeEscalation must be false",
            "container agent: seccompProfile.type must be set",
        ] {
            assert!(
                errors.iter().any(|e| e == expected),
                "{expected} missing from {errors:?}"
            );
        }
    }

    #[test]
    fn agent_gets_default_resources_unless_the_spec_sets_them() {
        let agent_resources = |s| {
            let sts =
                serde_json::to_value(stateful_set(&cluster(s)).expect("valid")).expect("json");
            let containers = &sts["spec"]["template"]["spec"]["containers"];
            assert_eq!(containers[1]["name"], "agent");
            containers[1]["resources"].clone()
        };
        assert_eq!(
            agent_resources(spec()),
            json!({
                "requests": { "cpu": "50m", "memory": "64Mi" },
                "limits": { "memory": "128Mi" },
            })
        );
        let mut s = spec();
        s.agent = Some(AgentSpec {
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity("256Mi".into()),
                )])),
                ..ResourceRequirements::default()
            }),
        });
        assert_eq!(
            agent_resources(s),
            json!({ "limits": { "memory": "256Mi" } })
        );
    }

    #[test]
    fn agent_image_follows_the_broker_image() {
        assert_eq!(agent_image(None), DEFAULT_AGENT_IMAGE);
        assert_eq!(
            DEFAULT_AGENT_IMAGE,
            DEFAULT_BROKER_IMAGE.replace("runnel-broker", "runnel-agent")
        );
        assert_eq!(
            agent_image(Some("localhost:5000/team/runnel-broker:1.2")),
            "localhost:5000/team/runnel-agent:1.2"
        );
        assert_eq!(agent_image(Some("runnel-broker")), "runnel-agent");
        // Nothing to derive from: a digest or another image name.
        assert_eq!(
            agent_image(Some("ghcr.io/runnel/runnel-broker@sha256:abc")),
            DEFAULT_AGENT_IMAGE
        );
        assert_eq!(
            agent_image(Some("example.com/kafka:3")),
            DEFAULT_AGENT_IMAGE
        );
    }

    #[test]
    fn config_change_changes_the_pod_template_hash() {
        let a = stateful_set(&cluster(spec())).expect("valid");
        let mut s = spec();
        s.config.insert("log_retention_ms".into(), "1000".into());
        let b = stateful_set(&cluster(s)).expect("valid");
        let hash = |sts: &StatefulSet| {
            sts.spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned())
                .expect("hash annotation")
        };
        assert_ne!(hash(&a), hash(&b));
    }
}
