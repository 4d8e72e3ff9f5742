//! The PodDisruptionBudget: voluntary disruptions (drains) take at most one broker at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{headless_service_name, owned_meta, owner, selector_labels};
use crate::crd::Cluster;
use crate::Error;

/// The PodDisruptionBudget `<cluster>-brokers` with `maxUnavailable: 1`.
pub fn pod_disruption_budget(cluster: &Cluster) -> Result<PodDisruptionBudget, Error> {
    let owner = owner(cluster)?;
    Ok(PodDisruptionBudget {
        metadata: owned_meta(&owner, headless_service_name(owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(owner.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};
    use serde_json::json;

    #[test]
    fn pdb_allows_one_unavailable_broker() {
        let pdb = pod_disruption_budget(&cluster(spec())).expect("valid");
        assert_eq!(
            serde_json::to_value(&pdb).expect("serializes"),
            json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {
                    "name": "demo-brokers",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "spec": {
                    "maxUnavailable": 1,
                    "selector": { "matchLabels": {
                        "app.kubernetes.io/name": "runnel",
                        "app.kubernetes.io/instance": "demo",
                        "app.kubernetes.io/component": "broker",
                    } },
                }
            })
        );
    }
}
