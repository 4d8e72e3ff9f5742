//! `rackLabel` end to end: the operator binds the chart's node-reading ClusterRole to the
//! Cluster's brokers (behind a finalizer), each pod's init container (`runnel-agent rack`, run
//! by the harness's kubelet with the pod's ServiceAccount under the fake's RBAC) writes its
//! node's label, and the broker serves it as its rack, which replica placement follows. A node
//! without the label keeps its pod in Init with the agent's message until it is labelled.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use runnel_client::NewTopic;
use runnel_operator::controller::cluster::RACK_FINALIZER;
use runnel_operator::crd::Cluster;
use serde_json::json;

use crate::harness::{cluster_spec, sts_name, Env, NS};

const ZONE: &str = "topology.kubernetes.io/zone";
const BINDING: &str = "runnel-broker-rack.kafka.demo";
const RBAC: &str = "apis/rbac.authorization.k8s.io/v1";

fn seed_node(env: &Env, name: &str, zone: Option<&str>) {
    let labels = match zone {
        Some(z) => json!({ ZONE: z, "kubernetes.io/hostname": name }),
        None => json!({ "kubernetes.io/hostname": name }),
    };
    env.api.seed(
        "api/v1",
        "nodes",
        "",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}),
    );
}

async fn racks_by_node_id(env: &Env) -> Vec<(i32, Option<String>)> {
    let meta = env
        .kafka("demo")
        .await
        .metadata(Some(&[]), false)
        .await
        .expect("metadata");
    let mut racks: Vec<(i32, Option<String>)> = meta
        .brokers
        .iter()
        .map(|b| (b.node_id, b.rack.clone()))
        .collect();
    racks.sort();
    racks
}

#[tokio::test]
async fn each_broker_gets_its_nodes_label_as_rack_and_the_binding_follows_the_spec() {
    let mut env = Env::new();
    // The harness's scheduler puts pod i on the i-th node by name.
    for (node, zone) in [("node-0", "zone-a"), ("node-1", "zone-b")] {
        seed_node(&env, node, Some(zone));
    }
    seed_node(&env, "node-2", Some("zone-a"));
    seed_node(&env, "node-3", Some("zone-b"));
    let mut spec = cluster_spec(4);
    spec.rack_label = Some(ZONE.into());
    let cluster = env.ready_cluster_with("demo", spec).await;

    assert_eq!(
        racks_by_node_id(&env).await,
        [
            (0, Some("zone-a".to_string())),
            (1, Some("zone-b".to_string())),
            (2, Some("zone-a".to_string())),
            (3, Some("zone-b".to_string())),
        ]
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    for ordinal in 0..4 {
        let pod = pods
            .get(&format!("{}-{ordinal}", sts_name("demo")))
            .await
            .expect("Pod");
        let node = pod.spec.and_then(|s| s.node_name);
        assert_eq!(node, Some(format!("node-{ordinal}")));
    }

    // Replica placement follows the racks: no partition keeps both replicas in one zone.
    let kafka = env.kafka("demo").await;
    kafka
        .create_topics(
            &[NewTopic {
                name: "spread".into(),
                partitions: Some(8),
                replication_factor: Some(2),
                configs: Vec::new(),
            }],
            false,
        )
        .await
        .expect("create topic");
    let meta = kafka
        .metadata(Some(&["spread".to_string()]), false)
        .await
        .expect("metadata");
    let zone_of = |id: i32| if id % 2 == 0 { "zone-a" } else { "zone-b" };
    let partitions = &meta.topics[0].partitions;
    assert_eq!(partitions.len(), 8);
    for p in partitions {
        let zones: BTreeSet<&str> = p.replicas.iter().map(|r| zone_of(*r)).collect();
        assert_eq!(
            zones.len(),
            2,
            "partition {} on {:?}",
            p.partition,
            p.replicas
        );
    }

    // The binding: the chart's role, to this Cluster's brokers only, no owner (cluster-scoped).
    let binding = env
        .api
        .get(RBAC, "clusterrolebindings", "", BINDING)
        .expect("rack ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
               "name": "runnel-broker-rack"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "demo-broker", "namespace": NS}])
    );
    assert!(cluster.finalizers().iter().any(|f| f == RACK_FINALIZER));
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());

    // rackLabel removed: the binding and the finalizer go.
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rackLabel": null}})),
        )
        .await
        .expect("drop rackLabel");
    env.reconcile_cluster("demo").await.expect("reconcile");
    assert!(env
        .api
        .get(RBAC, "clusterrolebindings", "", BINDING)
        .is_none());
    let c = clusters.get("demo").await.expect("Cluster");
    assert!(c.finalizers().is_empty(), "{:?}", c.finalizers());

    // Set again, then the Cluster is deleted: the finalizer holds it until the binding is gone.
    clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rackLabel": ZONE}})),
        )
        .await
        .expect("set rackLabel");
    env.reconcile_cluster("demo").await.expect("reconcile");
    assert!(env
        .api
        .get(RBAC, "clusterrolebindings", "", BINDING)
        .is_some());
    clusters
        .delete("demo", &DeleteParams::default())
        .await
        .expect("delete Cluster");
    let held = clusters.get("demo").await.expect("held by the finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    env.reconcile_cluster("demo").await.expect("reconcile");
    assert!(env
        .api
        .get(RBAC, "clusterrolebindings", "", BINDING)
        .is_none());
    assert!(clusters.get_opt("demo").await.expect("get").is_none());
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}

#[tokio::test]
async fn a_node_without_the_label_keeps_its_pod_in_init_until_it_is_labelled() {
    let mut env = Env::new();
    seed_node(&env, "node-0", Some("zone-a"));
    seed_node(&env, "node-1", None);
    let mut spec = cluster_spec(2);
    spec.rack_label = Some(ZONE.into());
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    clusters
        .create(&PostParams::default(), &Cluster::new("demo", spec))
        .await
        .expect("create Cluster");
    env.reconcile_cluster("demo").await.expect("reconcile");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    let pod1 = format!("{}-1", sts_name("demo"));
    for _ in 0..3 {
        env.kubelet("demo").await;
    }
    let pod = pods.get(&pod1).await.expect("Pod 1 exists");
    let status = serde_json::to_value(pod.status).expect("json");
    assert_eq!(status["phase"], "Pending");
    let message = status["initContainerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("node node-1 has no value for label \"topology.kubernetes.io/zone\""),
        "{message}"
    );
    assert!(!env.brokers.contains_key(&pod1), "the broker did not start");
    assert!(env.brokers.contains_key(&format!("{}-0", sts_name("demo"))));

    // Labelled: the next pass runs the init container again in the same Pod and starts it.
    let uid = pods.get(&pod1).await.expect("Pod").uid();
    Api::<Node>::all(env.client.clone())
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": { ZONE: "zone-b" }}})),
        )
        .await
        .expect("label node-1");
    env.wait_brokers("demo", 2, 60).await;
    assert_eq!(pods.get(&pod1).await.expect("Pod").uid(), uid, "same Pod");
    assert_eq!(
        racks_by_node_id(&env).await,
        [
            (0, Some("zone-a".to_string())),
            (1, Some("zone-b".to_string()))
        ]
    );
}

#[tokio::test]
async fn without_the_rack_rbac_the_operator_warns_and_binds_nothing() {
    let mut env = Env::new();
    // An operator installed with rackAwareness.enabled=false gets no --rack-cluster-role.
    std::sync::Arc::get_mut(&mut env.ctx)
        .expect("the only reference")
        .rack_cluster_role = None;
    let mut spec = cluster_spec(1);
    spec.rack_label = Some(ZONE.into());
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    clusters
        .create(&PostParams::default(), &Cluster::new("demo", spec))
        .await
        .expect("create Cluster");
    env.reconcile_cluster("demo").await.expect("reconcile");
    assert!(env
        .api
        .get(RBAC, "clusterrolebindings", "", BINDING)
        .is_none());
    let c = clusters.get("demo").await.expect("Cluster");
    assert!(c.finalizers().is_empty(), "{:?}", c.finalizers());
    assert!(
        env.api
            .event_reasons(NS, "demo")
            .contains(&"RackAwarenessUnavailable".to_string()),
        "{:?}",
        env.api.event_reasons(NS, "demo")
    );
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}
