//! The cert-manager `Certificate` of a Cluster whose tls listeners request their certificate
//! from cert-manager (`certificate.certManager`), built as a DynamicObject so the operator does
//! not depend on cert-manager's types. cert-manager writes the Secret it names, which the
//! brokers mount as they mount a Secret the user gives.

use kube::core::{ApiResource, DynamicObject};
use serde_json::json;

use super::{headless_service_name, owned_meta, owner};
use crate::crd::{
    CertManagerCertificate, Cluster, IssuerKind, ListenerAuthentication, ListenerType,
};
use crate::Error;

/// cert-manager's API group.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";
/// The cert-manager API version the operator writes.
pub const CERT_MANAGER_API_VERSION: &str = "cert-manager.io/v1";

/// The `cert-manager.io/v1` Certificate resource.
pub fn certificate_resource() -> ApiResource {
    ApiResource {
        group: CERT_MANAGER_GROUP.into(),
        version: "v1".into(),
        api_version: CERT_MANAGER_API_VERSION.into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    }
}

/// Name of the Certificate, and of the Secret cert-manager writes, of Cluster `cluster_name`:
/// one for every tls listener, since the brokers serve one certificate.
pub fn listener_certificate_name(cluster_name: &str) -> String {
    format!("{cluster_name}-listener-tls")
}

/// The cert-manager request of the Cluster's tls listeners, if they make one (the CRD's rules
/// make every tls listener name the same certificate).
pub fn cert_manager_request(cluster: &Cluster) -> Option<&CertManagerCertificate> {
    cluster
        .spec
        .listeners
        .iter()
        .filter(|l| l.tls)
        .find_map(|l| l.certificate.as_ref()?.cert_manager.as_ref())
}

/// Every name a client may reach a broker by on a tls listener, in order, without repeats.
pub fn certificate_dns_names(cluster: &Cluster) -> Result<Vec<String>, Error> {
    let owner = owner(cluster)?;
    let headless = headless_service_name(owner.name);
    let ns = owner.namespace;
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    for l in cluster.spec.listeners.iter().filter(|l| l.tls) {
        match l.type_ {
            ListenerType::Internal => add(format!("{headless}.{ns}.svc")),
            ListenerType::ClusterIp => {
                add(format!("{}-{}-bootstrap.{ns}.svc", owner.name, l.name));
            }
            ListenerType::LoadBalancer | ListenerType::NodePort => {}
        }
        for ordinal in 0..cluster.spec.replicas {
            let pod = format!("{headless}-{ordinal}");
            add(match l.type_ {
                ListenerType::Internal => format!("{pod}.{headless}.{ns}.svc"),
                ListenerType::ClusterIp => format!("{pod}-{}.{ns}.svc", l.name),
                ListenerType::LoadBalancer | ListenerType::NodePort => l
                    .advertised_host_template
                    .clone()
                    .unwrap_or_default()
                    .replace("{ordinal}", &ordinal.to_string()),
            });
        }
    }
    Ok(names)
}

/// The Certificate `<cluster>-listener-tls` (owned by the Cluster), or None when no tls
/// listener requests one from cert-manager.
pub fn listener_certificate(cluster: &Cluster) -> Result<Option<DynamicObject>, Error> {
    let Some(request) = cert_manager_request(cluster) else {
        return Ok(None);
    };
    let owner = owner(cluster)?;
    let name = listener_certificate_name(owner.name);
    let mut obj = DynamicObject::new(&name, &certificate_resource());
    obj.metadata = owned_meta(&owner, name.clone());
    let issuer = &request.issuer_ref;
    let mut usages = vec!["server auth"];
    if cluster
        .spec
        .listeners
        .iter()
        .any(|l| l.tls && l.authentication == ListenerAuthentication::Tls)
    {
        usages.push("client auth");
    }
    obj.data = json!({
        "spec": {
            "secretName": name,
            "issuerRef": {
                "name": issuer.name,
                "kind": match issuer.kind {
                    IssuerKind::Issuer => "Issuer",
                    IssuerKind::ClusterIssuer => "ClusterIssuer",
                },
                "group": issuer.group.as_deref().unwrap_or(CERT_MANAGER_GROUP),
            },
            "dnsNames": certificate_dns_names(cluster)?,
            "usages": usages,
        }
    });
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IssuerRef, ListenerCertificate, ListenerSpec};
    use crate::resources::tests::{cluster, spec};

    fn requested() -> ListenerCertificate {
        ListenerCertificate {
            secret_name: None,
            cert_manager: Some(CertManagerCertificate {
                issuer_ref: IssuerRef {
                    name: "ca".into(),
                    kind: IssuerKind::Issuer,
                    group: None,
                },
            }),
        }
    }

    fn listener(name: &str, type_: ListenerType, tls: bool) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            port: 9094,
            type_,
            tls,
            authentication: ListenerAuthentication::None,
            certificate: tls.then(requested),
            advertised_host_template: None,
            node_ports: Vec::new(),
        }
    }

    #[test]
    fn no_certificate_without_a_cert_manager_request() {
        let mut s = spec();
        s.listeners = vec![listener("plain", ListenerType::ClusterIp, false)];
        assert!(listener_certificate(&cluster(s)).expect("ok").is_none());
        let mut s = spec();
        s.listeners = vec![ListenerSpec {
            certificate: Some(ListenerCertificate {
                secret_name: Some("mine".into()),
                cert_manager: None,
            }),
            ..listener("given", ListenerType::Internal, true)
        }];
        let c = cluster(s);
        assert!(listener_certificate(&c).expect("ok").is_none());
        assert_eq!(
            crate::resources::tls_secret_name(&c).as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn the_certificate_names_the_tls_listeners_hosts_and_client_auth_with_mtls() {
        let mut s = spec();
        s.replicas = 2;
        s.listeners = vec![
            listener("plain", ListenerType::ClusterIp, false),
            ListenerSpec {
                authentication: ListenerAuthentication::Tls,
                ..listener("apps", ListenerType::ClusterIp, true)
            },
        ];
        let c = cluster(s);
        let cert = listener_certificate(&c).expect("ok").expect("requested");
        assert_eq!(cert.metadata.name.as_deref(), Some("demo-listener-tls"));
        assert_eq!(
            cert.data["spec"],
            json!({
                "secretName": "demo-listener-tls",
                "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"},
                "dnsNames": [
                    "demo-apps-bootstrap.kafka.svc",
                    "demo-brokers-0-apps.kafka.svc",
                    "demo-brokers-1-apps.kafka.svc",
                ],
                "usages": ["server auth", "client auth"],
            })
        );
        assert_eq!(
            crate::resources::tls_secret_name(&c).as_deref(),
            Some("demo-listener-tls")
        );
    }
}
