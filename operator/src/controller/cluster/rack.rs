//! The rack step of the Cluster reconciler: while a Cluster sets `rackLabel`, the ClusterRoleBinding
//! that lets its brokers' init containers read their node's labels exists, and the Cluster carries
//! a finalizer; once the Cluster drops `rackLabel` or is deleted, the binding is deleted and the
//! finalizer removed. (A cluster-scoped binding cannot have a namespaced owner, so garbage
//! collection cannot remove it.)

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;

use super::super::Context;
use crate::apply::apply_object;
use crate::crd::Cluster;
use crate::resources::{name_and_namespace, rack_binding, rack_binding_name};
use crate::Error;

/// Finalizer that keeps a Cluster with `rackLabel` until its rack ClusterRoleBinding is deleted.
pub const RACK_FINALIZER: &str = "runnel.dev/rack-binding";

fn kube_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

/// Brings the Cluster's rack binding and finalizer to what its spec asks. Returns true when the
/// Cluster is being deleted: then nothing else may be applied for it.
pub(super) async fn reconcile_rack_binding(
    ctx: &Context,
    cluster: &Cluster,
) -> Result<bool, Error> {
    let (name, namespace) = name_and_namespace(cluster)?;
    let deleting = cluster.metadata.deletion_timestamp.is_some();
    let has_finalizer = cluster.finalizers().iter().any(|f| f == RACK_FINALIZER);
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    let binding_name = rack_binding_name(namespace, name);
    match (&cluster.spec.rack_label, &ctx.rack_cluster_role, deleting) {
        (Some(_), Some(role), false) => {
            if !has_finalizer {
                // The finalizer first: a binding must never exist without one to remove it.
                add_finalizer(&clusters, cluster).await?;
            }
            let desired = rack_binding(cluster, role)?;
            let existing = bindings
                .get_opt(&binding_name)
                .await
                .map_err(kube_err(format!("get ClusterRoleBinding {binding_name}")))?;
            if existing.is_some_and(|b| b.role_ref != desired.role_ref) {
                // roleRef cannot change (422): a binding to another role is replaced.
                delete_binding(&bindings, &binding_name).await?;
            }
            apply_object(&bindings, &desired).await?;
        }
        (Some(label), None, false) => {
            ctx.event(
                cluster,
                EventType::Warning,
                "RackAwarenessUnavailable",
                "Reconcile",
                format!(
                    "rackLabel {label:?} needs the operator's rack RBAC (chart value \
                     rackAwareness.enabled, flag --rack-cluster-role); without it the brokers' \
                     init container cannot read their node and the brokers do not start"
                ),
            )
            .await;
        }
        _ if has_finalizer => {
            delete_binding(&bindings, &binding_name).await?;
            remove_finalizer(&clusters, cluster).await?;
        }
        _ => {}
    }
    Ok(deleting)
}

async fn delete_binding(api: &Api<ClusterRoleBinding>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(kube_err(format!("delete ClusterRoleBinding {name}"))(e)),
    }
}

/// Adds the finalizer with a JSON patch that fails (409/422) if the list changed meanwhile, as
/// kube's `finalizer` helper does.
async fn add_finalizer(api: &Api<Cluster>, cluster: &Cluster) -> Result<(), Error> {
    let patch = if cluster.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [RACK_FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": cluster.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": RACK_FINALIZER},
        ])
    };
    patch_finalizers(api, cluster, patch, "add").await
}

async fn remove_finalizer(api: &Api<Cluster>, cluster: &Cluster) -> Result<(), Error> {
    let Some(i) = cluster
        .finalizers()
        .iter()
        .position(|f| f == RACK_FINALIZER)
    else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    let patch = json!([
        {"op": "test", "path": path, "value": RACK_FINALIZER},
        {"op": "remove", "path": path},
    ]);
    patch_finalizers(api, cluster, patch, "remove").await
}

async fn patch_finalizers(
    api: &Api<Cluster>,
    cluster: &Cluster,
    patch: serde_json::Value,
    what: &str,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| Error::Kube {
        what: format!("{what} finalizer {RACK_FINALIZER}"),
        source: kube::Error::SerdeError(e),
    })?;
    api.patch(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(kube_err(format!("{what} finalizer {RACK_FINALIZER}")))?;
    Ok(())
}
