//! A Cluster whose tls listeners request their certificate from cert-manager: the operator
//! applies the `cert-manager.io/v1` Certificate when the API server serves cert-manager's
//! Certificates (API discovery), and reports with the `Certificate` condition whether the
//! Secret cert-manager writes exists yet. Without cert-manager the condition says so and
//! nothing else changes (the brokers' pods wait for the Secret, as for a missing given one).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams};
use kube::core::DynamicObject;
use kube::Client;

use crate::apply::apply_object;
use crate::controller::find_condition;
use crate::crd::Cluster;
use crate::resources::{
    certificate_resource, listener_certificate, listener_certificate_name, name_and_namespace,
    CERT_MANAGER_API_VERSION,
};
use crate::status::condition;
use crate::Error;

/// Type of the condition telling whether the listeners' cert-manager certificate is issued.
pub const CERTIFICATE_CONDITION: &str = "Certificate";

/// Applies the Cluster's Certificate (when cert-manager is installed) and returns the
/// `Certificate` condition; None when no tls listener asks cert-manager (then a Certificate
/// of an earlier request, which the previous `Certificate` condition tells, is deleted).
pub(super) async fn reconcile_certificate(
    client: &Client,
    cluster: &Cluster,
    previous: &[Condition],
    now: &Time,
) -> Result<Option<Condition>, Error> {
    let Some(certificate) = listener_certificate(cluster)? else {
        if find_condition(previous, CERTIFICATE_CONDITION).is_some() {
            // The Cluster asked cert-manager before and no longer does: its Certificate goes
            // (cert-manager leaves the Secret it wrote, as it always does).
            remove_certificate(client, cluster).await?;
        }
        return Ok(None);
    };
    let (name, ns) = name_and_namespace(cluster)?;
    let secret_name = listener_certificate_name(name);
    let generation = cluster.metadata.generation;
    if !cert_manager_installed(client).await? {
        return Ok(Some(condition(
            previous,
            CERTIFICATE_CONDITION,
            false,
            "CertManagerMissing",
            format!(
                "the listeners' certificate is to come from cert-manager, but the API server \
                 serves no {CERT_MANAGER_API_VERSION} certificates: install cert-manager, or \
                 name a Secret (certificate.secretName) instead"
            ),
            generation,
            now,
        )));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &certificate_resource());
    apply_object(&api, &certificate).await?;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&secret_name)
        .await
        .map_err(|source| Error::Kube {
            what: format!("get Secret {ns}/{secret_name}"),
            source,
        })?;
    let issued = secret
        .and_then(|s| s.data)
        .is_some_and(|d| d.contains_key("tls.crt") && d.contains_key("tls.key"));
    Ok(Some(if issued {
        condition(
            previous,
            CERTIFICATE_CONDITION,
            true,
            "CertificateIssued",
            format!("cert-manager wrote Secret {secret_name}; the brokers mount it"),
            generation,
            now,
        )
    } else {
        condition(
            previous,
            CERTIFICATE_CONDITION,
            false,
            "WaitingForCertificate",
            format!(
                "waiting for cert-manager to issue Certificate {secret_name} into Secret \
                 {secret_name}; the brokers start once it exists"
            ),
            generation,
            now,
        )
    }))
}

/// Deletes the Cluster's Certificate; gone already, or no cert-manager at all (404), is fine.
async fn remove_certificate(client: &Client, cluster: &Cluster) -> Result<(), Error> {
    let (name, ns) = name_and_namespace(cluster)?;
    let certificate = listener_certificate_name(name);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &certificate_resource());
    match api.delete(&certificate, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!("delete Certificate {ns}/{certificate}"),
            source,
        }),
    }
}

/// Whether API discovery shows cert-manager's Certificates (`cert-manager.io/v1`,
/// `certificates`); a 404 for the group version means cert-manager is not installed.
async fn cert_manager_installed(client: &Client) -> Result<bool, Error> {
    match client
        .list_api_group_resources(CERT_MANAGER_API_VERSION)
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "certificates")),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::Kube {
            what: format!("discover {CERT_MANAGER_API_VERSION}"),
            source,
        }),
    }
}
