//! ServiceMonitors under the chart's RBAC: installed with default values the operator has no
//! rule for them and must never call for them (a real apiserver answers 403 even to a delete of
//! nothing); installed with `serviceMonitor.enabled` it applies and deletes them.

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams, PostParams};
use runnel_operator::controller::{self, find_condition};
use runnel_operator::crd::{Cluster, ClusterStatus, MetricsSpec};
use serde_json::json;

use crate::harness::{cluster_spec, Env, NS};
use crate::rbac::ChartValues;

const MONITORS: &str = "apis/monitoring.coreos.com/v1";

async fn create_cluster(env: &Env, name: &str, service_monitor: bool) -> Cluster {
    let mut spec = cluster_spec(1);
    spec.metrics = Some(MetricsSpec { service_monitor });
    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &Cluster::new(name, spec))
        .await
        .expect("create Cluster")
}

async fn reconcile(env: &Env, name: &str) -> ClusterStatus {
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = clusters.get(name).await.expect("Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile under the chart's RBAC");
    clusters
        .get(name)
        .await
        .expect("Cluster")
        .status
        .expect("status")
}

/// (status, reason) of the condition `type_`, if present.
fn condition(status: &ClusterStatus, type_: &str) -> Option<(String, String)> {
    find_condition(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn default_install_makes_a_cluster_ready_without_any_service_monitor_request() {
    let mut env = Env::new();
    create_cluster(&env, "demo", true).await;
    reconcile(&env, "demo").await;
    env.kubelet("demo").await;
    let status = reconcile(&env, "demo").await;

    assert_eq!(
        condition(&status, "Ready"),
        Some(("True".into(), "BrokersReady".into())),
        "everything but the ServiceMonitor is reconciled: {status:?}"
    );
    assert_eq!(
        condition(&status, "ServiceMonitor"),
        Some(("False".into(), "NotSupported".into()))
    );
    let message = &find_condition(&status.conditions, "ServiceMonitor")
        .expect("condition")
        .message;
    assert!(
        message.contains("without ServiceMonitor support"),
        "{message}"
    );
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .contains(&"NotSupported".to_string()));

    let requests = env.api.rbac_requests();
    assert!(
        requests.iter().any(|r| r.contains("/statefulsets/")),
        "the operator's requests are recorded: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("servicemonitors")),
        "{requests:?}"
    );
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
    assert!(env.api.list(MONITORS, "servicemonitors", NS).is_empty());
}

#[tokio::test]
async fn a_cluster_not_asking_for_a_service_monitor_gets_no_condition_about_it() {
    let env = Env::new();
    create_cluster(&env, "plain", false).await;
    let status = reconcile(&env, "plain").await;
    assert_eq!(condition(&status, "ServiceMonitor"), None);
    assert!(condition(&status, "Ready").is_some());
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}

#[tokio::test]
async fn service_monitor_install_applies_the_service_monitor_and_deletes_it_when_not_asked() {
    let env = Env::installed_with(ChartValues::ServiceMonitor);
    create_cluster(&env, "demo", true).await;
    let status = reconcile(&env, "demo").await;
    let monitor = env
        .api
        .get(MONITORS, "servicemonitors", NS, "demo-brokers")
        .expect("ServiceMonitor applied");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "admin", "path": "/metrics"}])
    );
    assert_eq!(monitor["metadata"]["ownerReferences"][0]["kind"], "Cluster");
    assert_eq!(
        condition(&status, "ServiceMonitor"),
        Some(("True".into(), "Applied".into()))
    );

    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"metrics": {"serviceMonitor": false}}})),
        )
        .await
        .expect("stop asking");
    let status = reconcile(&env, "demo").await;
    assert!(env
        .api
        .get(MONITORS, "servicemonitors", NS, "demo-brokers")
        .is_none());
    assert_eq!(condition(&status, "ServiceMonitor"), None);
    assert!(env.api.rbac_requests().contains(&format!(
        "DELETE /{MONITORS}/namespaces/{NS}/servicemonitors/demo-brokers"
    )));
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}
