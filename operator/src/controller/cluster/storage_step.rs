//! The storage step of a Cluster reconcile: growing every broker's claim and replacing the
//! StatefulSet (whose `volumeClaimTemplates` are immutable) without restarting its pods.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::ResourceExt;

use super::get_stateful_set;
use crate::controller::Context;
use crate::crd::{Cluster, StorageSpec};
use crate::resources::{headless_service_name, label_selector};
use crate::storage;
use crate::Error;

/// The storage step of one pass, done.
pub(super) struct StorageStep {
    pub(super) plan: storage::StoragePlan,
    /// Why a claim could not grow (the apiserver's refusal), if one could not.
    pub(super) failure: Option<String>,
    /// Storage to apply the StatefulSet with instead of the spec's (its current one), when
    /// the spec's cannot be applied.
    pub(super) keep: Option<StorageSpec>,
    /// Whether to apply the StatefulSet on this pass (not while the old one is being deleted).
    pub(super) apply_stateful_set: bool,
}

/// Carries out a storage grow: expands every broker's claim, then replaces the StatefulSet
/// (its `volumeClaimTemplates` are immutable) by deleting it with `propagationPolicy:
/// Orphan`, which leaves the pods running; the StatefulSet applied afterwards has the same
/// name and selector and adopts them, so no broker restarts. A claim that cannot grow (e.g.
/// its StorageClass does not allow expansion) stops the step and keeps the StatefulSet as it
/// is, so the rest of the spec is still applied.
pub(super) async fn resize_storage(
    ctx: &Context,
    cluster: &Cluster,
    existing: Option<&StatefulSet>,
) -> Result<StorageStep, Error> {
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let claims_api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns);
    let claims = match existing {
        None => Vec::new(),
        Some(_) => {
            claims_api
                .list(&ListParams::default().labels(&label_selector(&name)))
                .await
                .map_err(|source| Error::Kube {
                    what: format!("list PersistentVolumeClaims of Cluster {ns}/{name}"),
                    source,
                })?
                .items
        }
    };
    let mut plan = storage::plan(cluster, existing, &claims);
    let mut step = StorageStep {
        keep: None,
        failure: None,
        apply_stateful_set: existing.is_none_or(|s| s.metadata.deletion_timestamp.is_none()),
        plan: plan.clone(),
    };
    if plan.refused.is_some() {
        step.keep = plan.current.clone();
        return Ok(step);
    }
    let grow = serde_json::json!({
        "spec": { "resources": { "requests": { "storage": plan.size } } }
    });
    for claim in &plan.grow {
        match claims_api
            .patch(claim, &PatchParams::default(), &Patch::Merge(&grow))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(refusal)) if matches!(refusal.code, 403 | 422) => {
                step.failure = Some(format!(
                    "PersistentVolumeClaim {claim} cannot grow to {}: {}",
                    plan.size, refusal.message
                ));
                step.keep = plan.current.clone();
                return Ok(step);
            }
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("expand PersistentVolumeClaim {ns}/{claim}"),
                    source,
                })
            }
        }
    }
    if plan.replace_stateful_set && step.apply_stateful_set {
        let sts_name = headless_service_name(&name);
        let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
        let orphan = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            // Only the StatefulSet this pass looked at; a newer one is already replaced.
            preconditions: Some(Preconditions {
                uid: existing.and_then(|s| s.metadata.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match sts_api.delete(&sts_name, &orphan).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("delete StatefulSet {ns}/{sts_name} (orphaning its pods)"),
                    source,
                })
            }
        }
        // The apiserver may keep it a moment while the garbage collector orphans the pods;
        // the next pass re-creates it then.
        step.apply_stateful_set = get_stateful_set(&sts_api, &ns, &sts_name).await?.is_none();
        plan.replace_stateful_set = !step.apply_stateful_set;
        step.plan = plan;
    }
    Ok(step)
}
