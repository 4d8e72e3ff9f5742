//! The Cluster reconciler: applies the objects a Cluster owns (server-side apply, owner
//! references so they go with it), then carries out day-2 changes one safe step per pass,
//! each decided from current state: storage grows (`storage_step`), scale-down drains and
//! scale-up rebalances (`scaling`), one-at-a-time restarts gated on replication (`rolling`),
//! runtime config (`dynamic_config`); and writes its status from the StatefulSet, the
//! brokers and those steps.

mod brokers;
mod certificate;
mod dynamic_config;
mod rack;
mod rolling;
mod scaling;
mod storage_step;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{condition_changed, find_condition, now, resync, Context};
use crate::apply::{apply_cluster_objects, write_cluster_status};
use crate::crd::{Cluster, ImagePolicy};
use crate::resources::headless_service_name;
use crate::status::{cluster_status, service_monitor_condition};
use crate::storage;
use crate::Error;

pub use certificate::CERTIFICATE_CONDITION;
pub use rack::RACK_FINALIZER;
pub use rolling::ROLLING_CONDITION;
pub use scaling::SCALING_CONDITION;

/// Reconciles one Cluster (the `Controller` entry point, also called directly by tests).
#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any(), ns = cluster.namespace()))]
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Cluster");
    let result = apply(&cluster, &ctx).await;
    ctx.finished(cluster.as_ref(), result.is_ok());
    result
}

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    if rack::reconcile_rack_binding(ctx, cluster).await? {
        // Being deleted: the owned objects go with it (garbage collection); nothing to apply.
        return Ok(Action::await_change());
    }
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let sts_name = headless_service_name(&name);
    let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    let existing = get_stateful_set(&sts_api, &ns, &sts_name).await?;
    let previous = cluster.status.clone().unwrap_or_default();
    let now = now();

    let mut desired = cluster.clone();
    desired.spec.image = broker_image(cluster, ctx, existing.as_ref());
    let storage = storage_step::resize_storage(ctx, cluster, existing.as_ref()).await?;
    if let Some(kept) = storage.keep.clone() {
        desired.spec.storage = kept;
    }
    // The brokers' own view: what scaling, rolling and runtime config decide from. None
    // before any broker serves, or when they cannot be reached (then nothing that needs the
    // view happens on this pass).
    let serving = existing
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        > 0;
    let view = if serving {
        match brokers::observe(ctx, cluster).await {
            Ok(view) => Some(view),
            Err(err) => {
                tracing::warn!(%err, "cannot read the brokers' view");
                None
            }
        }
    } else {
        None
    };
    let current_replicas = existing.as_ref().and_then(|s| s.spec.replicas);
    let scale = scaling::scale_down(
        ctx,
        cluster,
        current_replicas,
        view.as_ref(),
        &previous.conditions,
        &now,
    )
    .await?;
    desired.spec.replicas = scale.stateful_set_replicas;
    let node_ports = apply_cluster_objects(
        &ctx.client,
        &desired,
        ctx.service_monitors,
        storage.apply_stateful_set,
    )
    .await?;

    let sts = get_stateful_set(&sts_api, &ns, &sts_name).await?;
    let mut status = cluster_status(cluster, sts.as_ref(), &previous.conditions, &now);
    status.listeners = crate::resources::listener_statuses(&desired, &node_ports)?;
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

    // Day-2 steps, at most one kind of change at a time: a scale-down drains first, then
    // restarts roll, and only a cluster with nothing else going on is rebalanced.
    let mut busy = false;
    if let Some(cert) =
        certificate::reconcile_certificate(&ctx.client, cluster, &previous.conditions, &now).await?
    {
        if cert.status == "False" && condition_changed(&previous.conditions, &cert) {
            let type_ = if cert.reason == "CertManagerMissing" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event(
                cluster,
                type_,
                &cert.reason,
                "RequestCertificate",
                cert.message.clone(),
            )
            .await;
        }
        // cert-manager's Secret does not wake this Cluster (the Cluster does not own it):
        // look again soon while it is awaited.
        busy |= cert.reason == "WaitingForCertificate";
        status.conditions.push(cert);
    }
    let draining = scale.condition.is_some();
    if let Some(cond) = scale.condition {
        busy |= cond.status == "True";
        status.conditions.push(cond);
    }
    if let (Some(sts), false) = (sts.as_ref(), draining) {
        let pods = rolling::list_pods(ctx, cluster).await?;
        let roll = rolling::roll(
            ctx,
            cluster,
            sts,
            &pods,
            view.as_ref(),
            &previous.conditions,
            &now,
        )
        .await?;
        busy |= !roll.up_to_date;
        status.conditions.push(roll.condition);
        let all_ready = status.ready_brokers >= cluster.spec.replicas;
        if let (true, true, Some(view)) = (roll.up_to_date, all_ready, view.as_ref()) {
            let cond = scaling::rebalance(ctx, cluster, view, &previous.conditions, &now).await?;
            busy |= cond.status == "True";
            status.conditions.push(cond);
        }
    }
    if let Some(view) = view.as_ref() {
        let changed = dynamic_config::apply(cluster, view).await?;
        if !changed.is_empty() {
            ctx.event(
                cluster,
                EventType::Normal,
                "ConfigApplied",
                "Reconcile",
                format!("applied {} without a restart", changed.join(", ")),
            )
            .await;
        }
        // The id the brokers report wins over the one derived from the spec; an unreachable
        // cluster keeps the derived one (the Ready condition already tells it is not serving).
        if let Some(id) = view.metadata.cluster_id.clone() {
            status.cluster_id = Some(id);
        }
    }
    // Conditions a step did not report this pass keep their last value (a step that did not
    // run has nothing new to say).
    for kept in [scaling::SCALING_CONDITION, rolling::ROLLING_CONDITION] {
        if find_condition(&status.conditions, kept).is_none() {
            if let Some(c) = find_condition(&previous.conditions, kept) {
                status.conditions.push(c.clone());
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
    if busy {
        // Draining, rolling or rebalancing: each pass takes one step; look again soon.
        return Ok(Action::requeue(DAY2_POLL));
    }
    Ok(resync(ctx))
}

/// The broker image to run: the spec's; without one, the image the brokers run now
/// (`imagePolicy: Pinned`, so an operator upgrade restarts nothing) or this operator's
/// default (a new Cluster, or `imagePolicy: FollowOperator`). None = the built-in default.
fn broker_image(
    cluster: &Cluster,
    ctx: &Context,
    existing: Option<&StatefulSet>,
) -> Option<String> {
    if let Some(image) = &cluster.spec.image {
        return Some(image.clone());
    }
    if cluster.spec.image_policy == ImagePolicy::Pinned {
        let running = existing
            .and_then(|s| s.spec.template.spec.as_ref())
            .and_then(|p| p.containers.iter().find(|c| c.name == "broker"))
            .and_then(|c| c.image.clone());
        if running.is_some() {
            return running;
        }
    }
    ctx.broker_image.clone()
}

/// How often a Cluster is looked at while its volumes are being expanded.
const STORAGE_POLL: Duration = Duration::from_secs(5);

/// How often a Cluster is looked at while brokers drain, restart or rebalance.
const DAY2_POLL: Duration = Duration::from_secs(5);

pub(super) async fn get_stateful_set(
    api: &Api<StatefulSet>,
    ns: &str,
    name: &str,
) -> Result<Option<StatefulSet>, Error> {
    api.get_opt(name).await.map_err(|source| Error::Kube {
        what: format!("get StatefulSet {ns}/{name}"),
        source,
    })
}
