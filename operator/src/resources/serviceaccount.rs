//! The brokers' ServiceAccount (brokers need no Kubernetes API access, so no token is mounted).

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{owned_meta, owner};
use crate::crd::Cluster;
use crate::Error;

/// Name of the brokers' ServiceAccount.
pub(crate) fn service_account_name(cluster_name: &str) -> String {
    format!("{cluster_name}-broker")
}

/// The ServiceAccount `<cluster>-broker`.
pub fn service_account(cluster: &Cluster) -> Result<ServiceAccount, Error> {
    let owner = owner(cluster)?;
    Ok(ServiceAccount {
        metadata: owned_meta(&owner, service_account_name(owner.name)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};
    use serde_json::json;

    #[test]
    fn service_account_mounts_no_token() {
        let sa = service_account(&cluster(spec())).expect("valid");
        assert_eq!(
            serde_json::to_value(&sa).expect("serializes"),
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "demo-broker",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "automountServiceAccountToken": false,
            })
        );
    }
}
