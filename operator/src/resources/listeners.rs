//! A Cluster's Kafka listeners (`spec.listeners`) as broker configuration, pod ports, volumes
//! and Services. The operator's own listener `REPLICATION` (port 9092) is always first: brokers
//! replicate through it and the operator and agents reach the brokers on it. Without
//! `spec.listeners` nothing here applies and the brokers keep their single PLAINTEXT listener.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    KeyToPath, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{headless_service_name, owned_meta, owner, selector_labels, KAFKA_PORT};
use crate::crd::{
    Cluster, ListenerAddress, ListenerAuthentication, ListenerSpec, ListenerStatus, ListenerType,
};
use crate::Error;

/// The brokers' name of the operator's listener on [`KAFKA_PORT`].
pub const REPLICATION_LISTENER: &str = "REPLICATION";
/// The SCRAM user the brokers create at first start (a super user) and the operator and the
/// brokers themselves authenticate as, on an authenticated Cluster.
pub const OPERATOR_USER: &str = "runnel-operator";
/// Key of the operator credentials Secret holding the password.
pub const OPERATOR_PASSWORD_KEY: &str = "password";
/// Where the operator credentials Secret is mounted in the broker container.
pub(crate) const OPERATOR_CREDENTIALS_MOUNT: &str = "/etc/runnel/operator";
/// Where the listeners' TLS Secret is mounted in the broker container.
pub(crate) const TLS_MOUNT: &str = "/etc/runnel/tls";
/// Label of the Services of a listener (its name), so the operator finds the ones it no
/// longer needs.
pub const LISTENER_LABEL: &str = "runnel.dev/listener";
/// The label the StatefulSet controller puts on each pod with its name.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The Secret `<cluster>-operator-credentials` of an authenticated Cluster.
pub fn operator_credentials_secret_name(cluster_name: &str) -> String {
    format!("{cluster_name}-operator-credentials")
}

/// Whether the Cluster's brokers authenticate clients: it has listeners and one of them
/// authenticates, or the authorizer is on (then the operator must be a known principal).
pub fn authentication_enabled(cluster: &Cluster) -> bool {
    let spec = &cluster.spec;
    !spec.listeners.is_empty()
        && (spec
            .listeners
            .iter()
            .any(|l| l.authentication != ListenerAuthentication::None)
            || spec
                .config
                .get("authorizer_enabled")
                .is_some_and(|v| v.trim() == "true"))
}

/// The brokers' name of a listener: upper case, `-` as `_`.
pub fn broker_listener_name(listener: &ListenerSpec) -> String {
    listener.name.to_ascii_uppercase().replace('-', "_")
}

/// Kafka's security protocol of a listener.
pub fn security_protocol(listener: &ListenerSpec) -> &'static str {
    let sasl = matches!(
        listener.authentication,
        ListenerAuthentication::ScramSha256 | ListenerAuthentication::ScramSha512
    );
    match (listener.tls, sasl) {
        (false, false) => "PLAINTEXT",
        (false, true) => "SASL_PLAINTEXT",
        (true, false) => "SSL",
        (true, true) => "SASL_SSL",
    }
}

/// The Secret holding the listeners' certificate (`tls.crt`, `tls.key`, `ca.crt`): the one
/// given, or the one cert-manager writes for the Cluster's Certificate.
pub fn tls_secret_name(cluster: &Cluster) -> Option<String> {
    let certificate = cluster
        .spec
        .listeners
        .iter()
        .filter(|l| l.tls)
        .find_map(|l| l.certificate.as_ref())?;
    match (&certificate.secret_name, &certificate.cert_manager) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Some(_)) => Some(super::listener_certificate_name(
            cluster.metadata.name.as_deref().unwrap_or_default(),
        )),
        (None, None) => None,
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `runnel.toml` entries of the listeners (empty without `spec.listeners`). Names, ports
/// and paths are the operator's own or checked by the CRD's schema, so they need no quoting
/// beyond TOML's.
pub fn listener_config(cluster: &Cluster) -> BTreeMap<&'static str, String> {
    let spec = &cluster.spec;
    let mut entries = BTreeMap::new();
    if spec.listeners.is_empty() {
        return entries;
    }
    let auth = authentication_enabled(cluster);
    let mut listeners = vec![format!("{REPLICATION_LISTENER}://0.0.0.0:{KAFKA_PORT}")];
    let replication_protocol = if auth { "SASL_PLAINTEXT" } else { "PLAINTEXT" };
    let mut protocols = vec![format!("{REPLICATION_LISTENER}:{replication_protocol}")];
    for l in &spec.listeners {
        let name = broker_listener_name(l);
        listeners.push(format!("{name}://0.0.0.0:{}", l.port));
        protocols.push(format!("{name}:{}", security_protocol(l)));
    }
    entries.insert("listeners", toml_list(&listeners));
    entries.insert("listener_security_protocol_map", toml_list(&protocols));
    entries.insert(
        "inter_broker_listener_name",
        format!("\"{REPLICATION_LISTENER}\""),
    );
    if spec.listeners.iter().any(|l| l.tls) {
        entries.insert(
            "ssl_certificate_location",
            format!("\"{TLS_MOUNT}/tls.crt\""),
        );
        entries.insert("ssl_key_location", format!("\"{TLS_MOUNT}/tls.key\""));
    }
    if spec
        .listeners
        .iter()
        .any(|l| l.authentication == ListenerAuthentication::Tls)
    {
        entries.insert("ssl_truststore_location", format!("\"{TLS_MOUNT}/ca.crt\""));
        entries.insert("ssl_client_auth", "\"required\"".to_string());
    }
    if auth {
        entries.insert("sasl_bootstrap_user", format!("\"{OPERATOR_USER}\""));
        entries.insert(
            "sasl_bootstrap_password_file",
            format!("\"{OPERATOR_CREDENTIALS_MOUNT}/{OPERATOR_PASSWORD_KEY}\""),
        );
        // Brokers replicate as the same super user (inter_broker_sasl_username defaults to
        // the bootstrap user).
        entries.insert(
            "inter_broker_sasl_mechanism",
            "\"SCRAM-SHA-512\"".to_string(),
        );
    }
    entries
}

/// The node ports of a Cluster's nodeport listener Services as the API server holds them, by
/// Service name (`<cluster>-brokers-<ordinal>-<listener>`): given in `nodePorts` or allocated.
pub type NodePorts = BTreeMap<String, i32>;

/// Whether a listener is reached through node ports; then each broker's advertised port is
/// its own Service's node port, which no pod template can carry, so each broker reads its own
/// configuration file ([`broker_config_file`]) instead of one shared environment value.
pub fn has_node_port_listener(cluster: &Cluster) -> bool {
    cluster
        .spec
        .listeners
        .iter()
        .any(|l| l.type_ == ListenerType::NodePort)
}

/// The ConfigMap key (and mounted file name) of broker `ordinal`'s own `runnel.toml` on a
/// Cluster with a nodeport listener: the shared one plus its `advertised_listeners`.
pub fn broker_config_file(ordinal: i32) -> String {
    format!("broker-{ordinal}.toml")
}

/// [`broker_config_file`] with the ordinal left to the kubelet (`$(RUNNEL_NODE_ID)`, the pod's
/// ordinal), as the broker container's `--config` argument names it.
pub(crate) fn broker_config_file_template() -> String {
    "broker-$(RUNNEL_NODE_ID).toml".into()
}

/// The Service of broker `pod` for listener `l`.
fn broker_service_name(pod: &str, l: &ListenerSpec) -> String {
    format!("{pod}-{}", l.name)
}

/// `advertised_listeners` for the pod named `pod` with ordinal `ordinal` (literal values or
/// the kubelet's `$(POD_NAME)`, `$(RUNNEL_NODE_ID)`); `node_port` gives a nodeport listener's
/// port.
fn render_advertised(
    cluster: &Cluster,
    pod: &str,
    ordinal: &str,
    node_port: impl Fn(&ListenerSpec) -> Result<i32, Error>,
) -> Result<String, Error> {
    let owner = owner(cluster)?;
    let headless = headless_service_name(owner.name);
    let ns = owner.namespace;
    let mut out = vec![format!(
        "{REPLICATION_LISTENER}://{pod}.{headless}.{ns}.svc:{KAFKA_PORT}"
    )];
    for l in &cluster.spec.listeners {
        let name = broker_listener_name(l);
        let template = || {
            l.advertised_host_template
                .clone()
                .unwrap_or_default()
                .replace("{ordinal}", ordinal)
        };
        let (host, port) = match l.type_ {
            ListenerType::Internal => (format!("{pod}.{headless}.{ns}.svc"), l.port),
            ListenerType::ClusterIp => (format!("{pod}-{}.{ns}.svc", l.name), l.port),
            ListenerType::LoadBalancer => (template(), l.port),
            ListenerType::NodePort => (template(), node_port(l)?),
        };
        out.push(format!("{name}://{host}:{port}"));
    }
    Ok(out.join(","))
}

/// The per-pod `advertised_listeners` (the `RUNNEL_ADVERTISED_LISTENERS` environment value,
/// with `$(POD_NAME)` and `$(RUNNEL_NODE_ID)` expanded by the kubelet); None without listeners
/// and with a nodeport listener (see [`broker_advertised_listeners`]).
pub fn advertised_listeners(cluster: &Cluster) -> Result<Option<String>, Error> {
    if cluster.spec.listeners.is_empty() || has_node_port_listener(cluster) {
        return Ok(None);
    }
    render_advertised(cluster, "$(POD_NAME)", "$(RUNNEL_NODE_ID)", |l| Ok(l.port)).map(Some)
}

/// Broker `ordinal`'s `advertised_listeners`, literally, with each nodeport listener at its
/// Service's node port from `node_ports` ([`Error::NodePortMissing`] when it has none yet).
pub fn broker_advertised_listeners(
    cluster: &Cluster,
    ordinal: i32,
    node_ports: &NodePorts,
) -> Result<String, Error> {
    let owner = owner(cluster)?;
    let pod = format!("{}-{ordinal}", headless_service_name(owner.name));
    render_advertised(cluster, &pod, &ordinal.to_string(), |l| {
        let service = broker_service_name(&pod, l);
        node_ports
            .get(&service)
            .copied()
            .ok_or(Error::NodePortMissing(service))
    })
}

/// Where clients reach each listener (`status.listeners`): every broker's advertised
/// address (a nodeport listener's only once `node_ports` has all of its brokers' ports), and
/// the bootstrap servers: a `cluster-ip` listener's bootstrap Service, else those addresses.
pub fn listener_statuses(
    cluster: &Cluster,
    node_ports: &NodePorts,
) -> Result<Vec<ListenerStatus>, Error> {
    let owner = owner(cluster)?;
    let mut statuses = Vec::new();
    for (index, l) in cluster.spec.listeners.iter().enumerate() {
        let mut addresses = Vec::new();
        for ordinal in 0..cluster.spec.replicas {
            let advertised = match broker_advertised_listeners(cluster, ordinal, node_ports) {
                Ok(a) => a,
                Err(Error::NodePortMissing(_)) => {
                    addresses.clear();
                    break;
                }
                Err(e) => return Err(e),
            };
            // Entry 0 is REPLICATION; the listeners follow in spec order.
            let entry = advertised.split(',').nth(index + 1).unwrap_or_default();
            let address = entry.split_once("://").map_or(entry, |(_, a)| a);
            if let Some((host, port)) = address.rsplit_once(':') {
                addresses.push(ListenerAddress {
                    host: host.to_string(),
                    port: port.parse().unwrap_or_default(),
                });
            }
        }
        let bootstrap_servers = match l.type_ {
            ListenerType::ClusterIp => format!(
                "{}-{}-bootstrap.{}.svc:{}",
                owner.name, l.name, owner.namespace, l.port
            ),
            _ => addresses
                .iter()
                .map(|a| format!("{}:{}", a.host, a.port))
                .collect::<Vec<_>>()
                .join(","),
        };
        statuses.push(ListenerStatus {
            name: l.name.clone(),
            bootstrap_servers,
            addresses,
        });
    }
    Ok(statuses)
}

/// The node ports of the nodeport listener Services among `services` (as the API server
/// returned them).
pub fn node_ports_of(services: &[Service]) -> NodePorts {
    services
        .iter()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            if spec.type_.as_deref() != Some("NodePort") {
                return None;
            }
            let port = spec.ports.as_ref()?.first()?.node_port?;
            Some((s.metadata.name.clone()?, port))
        })
        .collect()
}

/// The container ports of the listeners (named `l-<name>`).
pub(crate) fn container_ports(cluster: &Cluster) -> Vec<k8s_openapi::api::core::v1::ContainerPort> {
    cluster
        .spec
        .listeners
        .iter()
        .map(|l| k8s_openapi::api::core::v1::ContainerPort {
            name: Some(port_name(l)),
            container_port: l.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect()
}

fn port_name(l: &ListenerSpec) -> String {
    // Port names are at most 15 characters; listener names too, so cut the prefix's room.
    let mut name = format!("l-{}", l.name);
    name.truncate(15);
    name.trim_end_matches('-').to_string()
}

/// On an authenticated Cluster the agent sidecar logs in to its broker as the operator's
/// user: the flags naming the user and the mounted password file, and that mount. `None`
/// otherwise.
pub(crate) fn agent_sasl(cluster: &Cluster) -> Option<(Vec<String>, VolumeMount)> {
    authentication_enabled(cluster).then(|| {
        (
            vec![
                "--sasl-username".into(),
                OPERATOR_USER.into(),
                "--sasl-password-file".into(),
                format!("{OPERATOR_CREDENTIALS_MOUNT}/{OPERATOR_PASSWORD_KEY}"),
                "--sasl-mechanism".into(),
                "SCRAM-SHA-512".into(),
            ],
            VolumeMount {
                name: "operator-credentials".into(),
                mount_path: OPERATOR_CREDENTIALS_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        )
    })
}

/// Volumes and broker mounts of the operator credentials and the listeners' certificate.
pub(crate) fn volumes(cluster: &Cluster) -> Result<(Vec<Volume>, Vec<VolumeMount>), Error> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if authentication_enabled(cluster) {
        let owner = owner(cluster)?;
        volumes.push(Volume {
            name: "operator-credentials".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(operator_credentials_secret_name(owner.name)),
                items: Some(vec![KeyToPath {
                    key: OPERATOR_PASSWORD_KEY.into(),
                    path: OPERATOR_PASSWORD_KEY.into(),
                    ..KeyToPath::default()
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "operator-credentials".into(),
            mount_path: OPERATOR_CREDENTIALS_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if let Some(secret) = tls_secret_name(cluster) {
        volumes.push(Volume {
            name: "listener-tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "listener-tls".into(),
            mount_path: TLS_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    Ok((volumes, mounts))
}

/// The Services of the listeners reached through Services (`cluster-ip`, `loadbalancer`,
/// `nodeport`): one
/// per broker (`<cluster>-brokers-<ordinal>-<listener>`, selecting that pod by name) and a
/// bootstrap one (`<cluster>-<listener>-bootstrap`), of the listener's type.
pub fn listener_services(cluster: &Cluster) -> Result<Vec<Service>, Error> {
    let owner = owner(cluster)?;
    let headless = headless_service_name(owner.name);
    let mut services = Vec::new();
    for l in &cluster.spec.listeners {
        let type_ = match l.type_ {
            ListenerType::Internal => continue,
            ListenerType::ClusterIp => "ClusterIP",
            ListenerType::LoadBalancer => "LoadBalancer",
            ListenerType::NodePort => "NodePort",
        };
        let port = ServicePort {
            name: Some(port_name(l)),
            port: l.port,
            target_port: Some(IntOrString::Int(l.port)),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        };
        let meta = |name: String| {
            let mut meta = owned_meta(&owner, name);
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .insert(LISTENER_LABEL.into(), l.name.clone());
            meta
        };
        services.push(Service {
            metadata: meta(format!("{}-{}-bootstrap", owner.name, l.name)),
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                selector: Some(selector_labels(owner.name)),
                ports: Some(vec![port.clone()]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
        for ordinal in 0..cluster.spec.replicas {
            let pod = format!("{headless}-{ordinal}");
            let mut selector = selector_labels(owner.name);
            selector.insert(POD_NAME_LABEL.into(), pod.clone());
            // A node port given in the spec is applied (and so owned); otherwise the API
            // server allocates one and keeps it on later applies that leave it out.
            let given = usize::try_from(ordinal)
                .ok()
                .and_then(|i| l.node_ports.get(i).copied());
            let port = ServicePort {
                node_port: given.filter(|_| l.type_ == ListenerType::NodePort),
                ..port.clone()
            };
            services.push(Service {
                metadata: meta(broker_service_name(&pod, l)),
                spec: Some(ServiceSpec {
                    type_: Some(type_.into()),
                    selector: Some(selector),
                    ports: Some(vec![port]),
                    // Clients reach each broker's own address while it starts, as on the
                    // headless Service.
                    publish_not_ready_addresses: Some(true),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            });
        }
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ListenerCertificate, ListenerSpec};
    use crate::resources::tests::{cluster, spec};

    fn listener(name: &str, port: i32, type_: ListenerType) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port,
            type_,
            tls: false,
            authentication: ListenerAuthentication::None,
            certificate: None,
            advertised_host_template: None,
            node_ports: Vec::new(),
        }
    }

    fn secured() -> Cluster {
        let mut s = spec();
        s.listeners = vec![
            ListenerSpec {
                authentication: ListenerAuthentication::ScramSha512,
                ..listener("internal", 9094, ListenerType::Internal)
            },
            ListenerSpec {
                tls: true,
                authentication: ListenerAuthentication::Tls,
                certificate: Some(ListenerCertificate {
                    secret_name: Some("kafka-tls".into()),
                    cert_manager: None,
                }),
                advertised_host_template: Some("b{ordinal}.kafka.example.com".into()),
                ..listener("external", 9095, ListenerType::LoadBalancer)
            },
            listener("apps", 9096, ListenerType::ClusterIp),
        ];
        cluster(s)
    }

    #[test]
    fn no_listeners_render_nothing() {
        let c = cluster(spec());
        assert!(listener_config(&c).is_empty());
        assert_eq!(advertised_listeners(&c).expect("ok"), None);
        assert!(container_ports(&c).is_empty());
        assert!(listener_services(&c).expect("ok").is_empty());
        let (volumes, mounts) = volumes(&c).expect("ok");
        assert!(volumes.is_empty() && mounts.is_empty());
        assert!(!authentication_enabled(&c));
    }

    #[test]
    fn listeners_render_protocols_tls_files_and_the_operator_user() {
        let c = secured();
        assert!(authentication_enabled(&c));
        let config = listener_config(&c);
        assert_eq!(
            config["listeners"],
            "[\"REPLICATION://0.0.0.0:9092\", \"INTERNAL://0.0.0.0:9094\", \
             \"EXTERNAL://0.0.0.0:9095\", \"APPS://0.0.0.0:9096\"]"
        );
        assert_eq!(
            config["listener_security_protocol_map"],
            "[\"REPLICATION:SASL_PLAINTEXT\", \"INTERNAL:SASL_PLAINTEXT\", \"EXTERNAL:SSL\", \
             \"APPS:PLAINTEXT\"]"
        );
        assert_eq!(config["inter_broker_listener_name"], "\"REPLICATION\"");
        assert_eq!(
            config["ssl_certificate_location"],
            "\"/etc/runnel/tls/tls.crt\""
        );
        assert_eq!(
            config["ssl_truststore_location"],
            "\"/etc/runnel/tls/ca.crt\""
        );
        assert_eq!(config["ssl_client_auth"], "\"required\"");
        assert_eq!(config["sasl_bootstrap_user"], "\"runnel-operator\"");
        assert_eq!(
            config["sasl_bootstrap_password_file"],
            "\"/etc/runnel/operator/password\""
        );
        assert_eq!(
            advertised_listeners(&c).expect("ok").as_deref(),
            Some(
                "REPLICATION://$(POD_NAME).demo-brokers.kafka.svc:9092,\
                 INTERNAL://$(POD_NAME).demo-brokers.kafka.svc:9094,\
                 EXTERNAL://b$(RUNNEL_NODE_ID).kafka.example.com:9095,\
                 APPS://$(POD_NAME)-apps.kafka.svc:9096"
            )
        );
        let (volumes, mounts) = volumes(&c).expect("ok");
        let secrets: Vec<_> = volumes
            .iter()
            .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
            .collect();
        assert_eq!(secrets, ["demo-operator-credentials", "kafka-tls"]);
        assert_eq!(mounts.len(), 2);
    }

    #[test]
    fn plaintext_listeners_without_the_authorizer_leave_replication_plaintext() {
        let mut s = spec();
        s.listeners = vec![listener("apps", 9096, ListenerType::Internal)];
        let c = cluster(s);
        assert!(!authentication_enabled(&c));
        let config = listener_config(&c);
        assert_eq!(
            config["listener_security_protocol_map"],
            "[\"REPLICATION:PLAINTEXT\", \"APPS:PLAINTEXT\"]"
        );
        assert!(!config.contains_key("sasl_bootstrap_user"));
        assert!(!config.contains_key("ssl_certificate_location"));
        let mut s = spec();
        s.listeners = vec![listener("apps", 9096, ListenerType::Internal)];
        s.config.insert("authorizer_enabled".into(), "true".into());
        assert!(
            authentication_enabled(&cluster(s)),
            "the authorizer needs a known operator"
        );
    }

    #[test]
    fn service_listeners_get_a_service_per_broker_and_a_bootstrap_one_of_their_type() {
        let c = secured();
        let services = listener_services(&c).expect("ok");
        let summary: Vec<(String, String, i32, Option<String>)> = services
            .iter()
            .map(|s| {
                let spec = s.spec.as_ref().expect("spec");
                (
                    s.metadata.name.clone().expect("name"),
                    spec.type_.clone().expect("type"),
                    spec.ports.as_ref().expect("ports")[0].port,
                    spec.selector
                        .as_ref()
                        .and_then(|sel| sel.get(POD_NAME_LABEL).cloned()),
                )
            })
            .collect();
        let replicas = c.spec.replicas;
        let mut expected = vec![(
            "demo-external-bootstrap".to_string(),
            "LoadBalancer".to_string(),
            9095,
            None,
        )];
        for i in 0..replicas {
            expected.push((
                format!("demo-brokers-{i}-external"),
                "LoadBalancer".into(),
                9095,
                Some(format!("demo-brokers-{i}")),
            ));
        }
        expected.push(("demo-apps-bootstrap".into(), "ClusterIP".into(), 9096, None));
        for i in 0..replicas {
            expected.push((
                format!("demo-brokers-{i}-apps"),
                "ClusterIP".into(),
                9096,
                Some(format!("demo-brokers-{i}")),
            ));
        }
        assert_eq!(summary, expected);
        let ports: Vec<(Option<String>, i32)> = container_ports(&c)
            .into_iter()
            .map(|p| (p.name, p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("l-internal".into()), 9094),
                (Some("l-external".into()), 9095),
                (Some("l-apps".into()), 9096)
            ]
        );
    }

    #[test]
    fn an_authenticated_cluster_keeps_the_operators_scram_mechanism() {
        let mut c = secured();
        c.spec
            .config
            .insert("sasl_enabled_mechanisms".into(), "SCRAM-SHA-256".into());
        let err = crate::resources::render_broker_config(&c).expect_err("refused");
        assert!(err.to_string().contains("SCRAM-SHA-512"), "{err}");
        c.spec.config.insert(
            "sasl_enabled_mechanisms".into(),
            "SCRAM-SHA-256, SCRAM-SHA-512".into(),
        );
        let toml = crate::resources::render_broker_config(&c).expect("accepted");
        assert!(toml.contains("sasl_enabled_mechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]"));
    }
}
