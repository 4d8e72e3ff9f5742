//! The Cluster reconciler: applies the objects a Cluster owns (server-side apply, owner
//! references so they go with it), carries out storage grows (claims expanded, StatefulSet
//! replaced without restarting its pods) and writes its status from the StatefulSet and the
//! brokers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{condition_changed, find_condition, now, resync, Context};
use crate::apply::{apply_cluster_objects, write_cluster_status};
use crate::crd::{Cluster, StorageSpec};
use crate::kafka;
use crate::resources::{headless_service_name, selector_labels};
use crate::status::{cluster_status, service_monitor_condition};
use crate::storage;
use crate::Error;

/// Reconciles one Cluster (the `Controller` entry point, also called directly by tests).
#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any(), ns = cluster.namespace()))]
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Cluster");
    let result = apply(&cluster, &ctx).await;
    ctx.finished(cluster.as_ref(), result.is_ok());
    result
}

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let sts_name = headless_service_name(&name);
    let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    let existing = get_stateful_set(&sts_api, &ns, &sts_name).await?;

    let mut desired = cluster.clone();
    if desired.spec.image.is_none() {
        desired.spec.image.clone_from(&ctx.broker_image);
    }
    let storage = resize_storage(ctx, cluster, existing.as_ref()).await?;
    if let Some(kept) = storage.keep.clone() {
        desired.spec.storage = kept;
    }
    apply_cluster_objects(
        &ctx.client,
        &desired,
        ctx.service_monitors,
        storage.apply_stateful_set,
    )
    .await?;

    let sts = get_stateful_set(&sts_api, &ns, &sts_name).await?;
    let previous = cluster.status.clone().unwrap_or_default();
    let now = now();
    let mut status = cluster_status(cluster, sts.as_ref(), &previous.conditions, &now);
    if existing.is_some() {
        let storage_condition = storage::storage_condition(
            cluster,
            &storage.plan,
            storage.failure.as_deref(),
            &previous.conditions,
            &now,
        );
        if storage_condition.status == "False"
            && condition_changed(&previous.conditions, &storage_condition)
        {
            let type_ = if storage_condition.reason == "StorageResizeFailed" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event(
                cluster,
                type_,
                &storage_condition.reason,
                "ResizeStorage",
                storage_condition.message.clone(),
            )
            .await;
        }
        status.conditions.push(storage_condition);
    }
    if let Some(monitor) =
        service_monitor_condition(cluster, ctx.service_monitors, &previous.conditions, &now)
    {
        if monitor.status == "False" && condition_changed(&previous.conditions, &monitor) {
            ctx.event(
                cluster,
                EventType::Warning,
                &monitor.reason,
                "Reconcile",
                monitor.message.clone(),
            )
            .await;
        }
        status.conditions.push(monitor);
    }
    if status.ready_brokers > 0 {
        // The id the brokers report wins over the one derived from the spec; an unreachable
        // cluster keeps the derived one (the Ready condition already tells it is not serving).
        let bootstrap = ctx.resolver.bootstrap(cluster)?;
        let probe = async {
            let client = kafka::connect(&bootstrap).await?;
            client
                .metadata(Some(&[]), false)
                .await
                .map_err(kafka::kafka_err("read cluster metadata"))
        };
        if let Ok(Ok(meta)) = tokio::time::timeout(Duration::from_secs(10), probe).await {
            if let Some(id) = meta.cluster_id {
                status.cluster_id = Some(id);
            }
        }
    }
    if let Some(ready) = find_condition(&status.conditions, "Ready") {
        if condition_changed(&previous.conditions, ready) {
            let type_ = if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            ctx.event(
                cluster,
                type_,
                &ready.reason,
                "Reconcile",
                ready.message.clone(),
            )
            .await;
        }
    }
    write_cluster_status(&ctx.client, cluster, &status).await?;
    let storage_moving = storage.failure.is_none()
        && storage.plan.refused.is_none()
        && (!storage.plan.resizing.is_empty() || !storage.apply_stateful_set);
    if storage_moving {
        // Expansion is the storage provider's and the kubelet's work; look again soon.
        return Ok(Action::requeue(STORAGE_POLL));
    }
    Ok(resync(ctx))
}

/// How often a Cluster is looked at while its volumes are being expanded.
const STORAGE_POLL: Duration = Duration::from_secs(5);

async fn get_stateful_set(
    api: &Api<StatefulSet>,
    ns: &str,
    name: &str,
) -> Result<Option<StatefulSet>, Error> {
    api.get_opt(name).await.map_err(|source| Error::Kube {
        what: format!("get StatefulSet {ns}/{name}"),
        source,
    })
}

/// The storage step of one pass, done.
struct StorageStep {
    plan: storage::StoragePlan,
    /// Why a claim could not grow (the apiserver's refusal), if one could not.
    failure: Option<String>,
    /// Storage to apply the StatefulSet with instead of the spec's (its current one), when
    /// the spec's cannot be applied.
    keep: Option<StorageSpec>,
    /// Whether to apply the StatefulSet on this pass (not while the old one is being deleted).
    apply_stateful_set: bool,
}

/// Carries out a storage grow: expands every broker's claim, then replaces the StatefulSet
/// (its `volumeClaimTemplates` are immutable) by deleting it with `propagationPolicy:
/// Orphan`, which leaves the pods running; the StatefulSet applied afterwards has the same
/// name and selector and adopts them, so no broker restarts. A claim that cannot grow (e.g.
/// its StorageClass does not allow expansion) stops the step and keeps the StatefulSet as it
/// is, so the rest of the spec is still applied.
async fn resize_storage(
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
            let selector = selector_labels(&name)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            claims_api
                .list(&ListParams::default().labels(&selector))
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
