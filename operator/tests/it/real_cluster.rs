//! Tests against a real Kubernetes cluster (kind, k3d, ...): they run only when KUBECONFIG is
//! set and print why they skip otherwise. The second one needs the operator installed (README:
//! build and load the images, `helm install`) and uses namespace RUNNEL_TEST_NAMESPACE
//! (default "default").

use std::io::Write;

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use runnel_operator::controller::find_condition;
use runnel_operator::crd::{Cluster, ClusterReference, Consumer, DeletionPolicy, Topic, TopicSpec};

use crate::harness::{cluster_spec, eventually};

/// A client for the KUBECONFIG cluster, or None (with the reason printed) when it is not set.
async fn real_client(test: &str) -> Option<kube::Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        // Written to the stderr handle rather than with eprintln!, which the test harness
        // captures: the skip must be visible in a normal `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: KUBECONFIG is not set (it needs a real cluster, see README)"
        );
        return None;
    }
    Some(
        kube::Client::try_default()
            .await
            .expect("a client from KUBECONFIG"),
    )
}

#[tokio::test]
async fn real_cluster_serves_the_runnel_crds() {
    let Some(client) = real_client("real_cluster_serves_the_runnel_crds").await else {
        return;
    };
    let params = ListParams::default().limit(1);
    Api::<Cluster>::all(client.clone())
        .list(&params)
        .await
        .expect("the Cluster CRD is served (kubectl apply -f crds/)");
    Api::<Topic>::all(client.clone())
        .list(&params)
        .await
        .expect("the Topic CRD is served");
    Api::<Consumer>::all(client)
        .list(&params)
        .await
        .expect("the Consumer CRD is served");
}

#[tokio::test]
async fn real_cluster_operator_makes_a_cluster_and_its_topic_ready() {
    let Some(client) =
        real_client("real_cluster_operator_makes_a_cluster_and_its_topic_ready").await
    else {
        return;
    };
    let ns = std::env::var("RUNNEL_TEST_NAMESPACE").unwrap_or_else(|_| "default".into());
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns);
    let topics: Api<Topic> = Api::namespaced(client, &ns);
    let mut spec = cluster_spec(1);
    spec.storage.delete_claim = true;
    clusters
        .create(&PostParams::default(), &Cluster::new("runnel-it", spec))
        .await
        .expect("create Cluster");
    let topic = TopicSpec {
        cluster_ref: ClusterReference {
            name: "runnel-it".into(),
        },
        topic_name: None,
        partitions: 3,
        replication_factor: Some(1),
        config: [("retention.ms".to_string(), Some("3600000".to_string()))].into(),
        deletion_policy: DeletionPolicy::Delete,
    };
    topics
        .create(
            &PostParams::default(),
            &Topic::new("runnel-it-orders", topic),
        )
        .await
        .expect("create Topic");
    // Pulling images and scheduling take a while on a fresh kind/k3d cluster.
    eventually(600, "the Cluster to become Ready", || {
        let clusters = clusters.clone();
        async move {
            let s = clusters.get("runnel-it").await.ok()?.status?;
            (find_condition(&s.conditions, "Ready")?.status == "True").then_some(())
        }
    })
    .await;
    eventually(300, "the Topic to become Ready", || {
        let topics = topics.clone();
        async move {
            let s = topics.get("runnel-it-orders").await.ok()?.status?;
            (find_condition(&s.conditions, "Ready")?.status == "True" && s.partitions == Some(3))
                .then_some(())
        }
    })
    .await;
    topics
        .delete("runnel-it-orders", &DeleteParams::default())
        .await
        .expect("delete Topic");
    eventually(120, "the Topic's finalizer to delete it", || {
        let topics = topics.clone();
        async move {
            topics
                .get_opt("runnel-it-orders")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    clusters
        .delete("runnel-it", &DeleteParams::default())
        .await
        .expect("delete Cluster");
}
