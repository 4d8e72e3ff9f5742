//! The Cluster reconciler: applies the objects a Cluster owns (server-side apply, owner
//! references so they go with it) and writes its status from the StatefulSet and the brokers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{condition_changed, find_condition, now, resync, Context};
use crate::apply::{apply_cluster_objects, write_cluster_status};
use crate::crd::Cluster;
use crate::kafka;
use crate::resources::headless_service_name;
use crate::status::{cluster_status, service_monitor_condition};
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
    let mut desired = cluster.clone();
    if desired.spec.image.is_none() {
        desired.spec.image.clone_from(&ctx.broker_image);
    }
    apply_cluster_objects(&ctx.client, &desired, ctx.service_monitors).await?;

    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let sts_name = headless_service_name(&name);
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&sts_name)
        .await
        .map_err(|source| Error::Kube {
            what: format!("get StatefulSet {ns}/{sts_name}"),
            source,
        })?;
    let previous = cluster.status.clone().unwrap_or_default();
    let now = now();
    let mut status = cluster_status(cluster, sts.as_ref(), &previous.conditions, &now);
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
    Ok(resync(ctx))
}
