//! The headless Service (a stable DNS name per broker) and the bootstrap Service (one address
//! for clients).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::statefulset::AGENT_PORT;
use super::{headless_service_name, owned_meta, owner, selector_labels, ADMIN_PORT, KAFKA_PORT};
use crate::crd::Cluster;
use crate::Error;

fn ports() -> Vec<ServicePort> {
    vec![
        ServicePort {
            name: Some("kafka".into()),
            port: KAFKA_PORT,
            target_port: Some(IntOrString::String("kafka".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        },
        ServicePort {
            name: Some("admin".into()),
            port: ADMIN_PORT,
            target_port: Some(IntOrString::String("admin".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        },
        // The operator calls each broker's agent through its pod DNS name on this port.
        ServicePort {
            name: Some("agent".into()),
            port: AGENT_PORT,
            target_port: Some(IntOrString::String("agent".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        },
    ]
}

/// The headless Service `<cluster>-brokers`: DNS `<pod>.<cluster>-brokers.<ns>.svc` per broker,
/// published before readiness so brokers can reach each other while starting.
pub fn headless_service(cluster: &Cluster) -> Result<Service, Error> {
    let owner = owner(cluster)?;
    Ok(Service {
        metadata: owned_meta(&owner, headless_service_name(owner.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(owner.name)),
            ports: Some(ports()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The ClusterIP Service `<cluster>-bootstrap` over the ready brokers, for clients' first
/// connection (clients then talk to the brokers' advertised addresses).
pub fn bootstrap_service(cluster: &Cluster) -> Result<Service, Error> {
    let owner = owner(cluster)?;
    Ok(Service {
        metadata: owned_meta(&owner, format!("{}-bootstrap", owner.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(owner.name)),
            ports: Some(ports().into_iter().take(1).collect()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The bootstrap address Kafka clients in the cluster use (`Cluster` status `bootstrap`).
pub fn bootstrap_address(cluster: &Cluster) -> Result<String, Error> {
    let owner = owner(cluster)?;
    Ok(format!(
        "{}-bootstrap.{}.svc:{KAFKA_PORT}",
        owner.name, owner.namespace
    ))
}

/// The gRPC endpoint of the agent beside broker `ordinal`, through the headless Service:
/// `http://<cluster>-brokers-<ordinal>.<cluster>-brokers.<ns>.svc:9645`.
pub fn agent_endpoint(cluster: &Cluster, ordinal: i32) -> Result<String, Error> {
    let owner = owner(cluster)?;
    let headless = headless_service_name(owner.name);
    Ok(format!(
        "http://{headless}-{ordinal}.{headless}.{}.svc:{AGENT_PORT}",
        owner.namespace
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};
    use serde_json::json;

    fn selector() -> serde_json::Value {
        json!({
            "app.kubernetes.io/name": "runnel",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "broker",
        })
    }

    #[test]
    fn headless_service_exposes_kafka_admin_and_agent_of_every_broker() {
        let svc = headless_service(&cluster(spec())).expect("valid");
        assert_eq!(
            serde_json::to_value(&svc).expect("serializes"),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "demo-brokers",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": true,
                    "selector": selector(),
                    "ports": [
                        { "name": "kafka", "port": 9092, "targetPort": "kafka", "protocol": "TCP" },
                        { "name": "admin", "port": 9644, "targetPort": "admin", "protocol": "TCP" },
                        { "name": "agent", "port": 9645, "targetPort": "agent", "protocol": "TCP" },
                    ],
                }
            })
        );
    }

    #[test]
    fn agent_endpoint_is_the_pod_dns_name_on_the_agent_port() {
        assert_eq!(
            agent_endpoint(&cluster(spec()), 2).expect("valid"),
            "http://demo-brokers-2.demo-brokers.kafka.svc:9645"
        );
    }

    #[test]
    fn bootstrap_service_exposes_kafka_only() {
        let c = cluster(spec());
        let svc = bootstrap_service(&c).expect("valid");
        assert_eq!(
            serde_json::to_value(&svc).expect("serializes"),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "demo-bootstrap",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector(),
                    "ports": [
                        { "name": "kafka", "port": 9092, "targetPort": "kafka", "protocol": "TCP" },
                    ],
                }
            })
        );
        assert_eq!(
            bootstrap_address(&c).expect("valid"),
            "demo-bootstrap.kafka.svc:9092"
        );
    }
}
