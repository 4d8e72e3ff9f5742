//! Day-2 operations of the Cluster reconciler against one replicated cluster of real brokers
//! with an agent per pod (the harness's kubelet), under the chart's RBAC as the fake enforces
//! it, with a third-party producer (librdkafka, idempotent, acks=all) checking that nothing
//! acknowledged is lost: scale-up rebalances, scale-down drains first, a scale-down that
//! cannot be done is refused, static config rolls one broker at a time, dynamic config and
//! an operator upgrade restart nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;
use runnel_client::NewTopic;
use runnel_operator::controller::cluster::{ROLLING_CONDITION, SCALING_CONDITION};
use runnel_operator::controller::{self, Context};
use runnel_operator::crd::{Cluster, RebalanceSpec};
use runnel_operator::kafka::BootstrapResolver;
use runnel_operator::metrics::Metrics;
use serde_json::json;

use crate::harness::{cluster_spec, max_down_at_once, restart_order, sts_name, Env, PodEvent, NS};
use crate::load::CheckedProducer;

fn condition<'a>(cluster: &'a Cluster, type_: &str) -> Option<&'a Condition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn has_condition(cluster: &Cluster, type_: &str, status: &str, reason: &str) -> bool {
    condition(cluster, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

async fn create_topic(env: &Env, name: &str, partitions: i32, rf: i16) {
    env.kafka("demo")
        .await
        .create_topics(
            &[NewTopic {
                name: name.into(),
                partitions: Some(partitions),
                replication_factor: Some(rf),
                configs: vec![("min.insync.replicas".into(), "2".into())],
            }],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
}

async fn patch_spec(env: &Env, spec: serde_json::Value) {
    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch Cluster spec");
}

/// Replicas held per broker, over every topic (internal ones included).
async fn replica_counts(env: &Env) -> BTreeMap<i32, usize> {
    let meta = env
        .kafka("demo")
        .await
        .metadata(None, false)
        .await
        .expect("metadata");
    let mut counts: BTreeMap<i32, usize> = meta.brokers.iter().map(|b| (b.node_id, 0)).collect();
    for p in meta.topics.iter().flat_map(|t| t.partitions.iter()) {
        for r in &p.replicas {
            *counts.entry(*r).or_default() += 1;
        }
    }
    counts
}

/// Partitions whose ISR is smaller than their replica set, and partitions on `brokers`.
async fn partition_health(env: &Env, brokers: &[i32]) -> (usize, Vec<String>) {
    let meta = env
        .kafka("demo")
        .await
        .metadata(None, false)
        .await
        .expect("metadata");
    let mut under = 0;
    let mut on = Vec::new();
    for t in &meta.topics {
        for p in &t.partitions {
            if p.isr.len() < p.replicas.len() {
                under += 1;
            }
            if p.replicas.iter().any(|r| brokers.contains(r)) {
                on.push(format!("{}-{} {:?}", t.name, p.partition, p.replicas));
            }
        }
    }
    (under, on)
}

/// The cluster-wide dynamic default of `key` (Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG source),
/// if one is set.
async fn cluster_default(env: &Env, key: &str) -> Option<String> {
    env.kafka("demo")
        .await
        .describe_broker_configs(None)
        .await
        .expect("cluster-wide configs")
        .into_iter()
        .find(|e| e.name == key && e.source == 3)
        .and_then(|e| e.value)
}

fn pids(env: &Env, n: i32) -> Vec<u32> {
    (0..n).map(|o| env.broker("demo", o).pid()).collect()
}

fn ready_brokers(c: &Cluster) -> i32 {
    c.status.as_ref().map_or(0, |s| s.ready_brokers)
}

fn bootstrap(env: &Env, cluster: &Cluster) -> String {
    env.resolver.bootstrap(cluster).expect("bootstrap")
}

#[tokio::test]
async fn scaling_3_to_5_under_load_leaves_every_broker_within_one_of_the_mean() {
    let mut env = Env::new();
    let mut spec = cluster_spec(3);
    spec.rebalance = Some(RebalanceSpec {
        throttle_bytes_per_second: Some(50 * 1024 * 1024),
    });
    let cluster = env.ready_cluster_with("demo", spec).await;
    create_topic(&env, "orders", 8, 3).await;
    create_topic(&env, "audit", 5, 2).await;
    let mut load = CheckedProducer::start(&bootstrap(&env, &cluster), "orders", 8);
    load.wait_acked(200, 60).await;

    patch_spec(&env, json!({ "replicas": 5 })).await;
    let c = env
        .drive("demo", 180, "5 brokers Ready and balanced", |c, _| {
            ready_brokers(c) == 5 && has_condition(c, SCALING_CONDITION, "False", "Balanced")
        })
        .await;

    let counts = replica_counts(&env).await;
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    let total: usize = counts.values().sum();
    for (broker, n) in &counts {
        // |n - total/5| <= 1, in integers.
        assert!(
            (*n * 5).abs_diff(total) <= 5,
            "broker {broker} holds {n} of {total} replicas: {counts:?}"
        );
    }
    let kafka = env.kafka("demo").await;
    assert!(kafka
        .list_reassignments(None)
        .await
        .expect("reassignments")
        .is_empty());
    for b in 0..5 {
        let throttled: Vec<String> = kafka
            .describe_broker_configs(Some(b))
            .await
            .expect("broker configs")
            .into_iter()
            // Kafka's DYNAMIC_BROKER_CONFIG source: set on this broker (the rebalance throttle).
            .filter(|e| e.name.ends_with("replication.throttled.rate") && e.source == 2)
            .map(|e| format!("{}={:?}", e.name, e.value))
            .collect();
        assert!(
            throttled.is_empty(),
            "broker {b} still throttled: {throttled:?}"
        );
    }
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .iter()
        .any(|r| r == "Rebalanced"));
    assert!(condition(&c, "Ready").is_some_and(|r| r.status == "True"));
    let after = load.acked();
    load.wait_acked(after + 100, 60).await;
    load.finish().await;
}

#[tokio::test]
async fn scaling_5_to_3_under_load_drains_the_removed_brokers_before_the_statefulset_shrinks() {
    let mut env = Env::new();
    let cluster = env.ready_cluster("demo", 5).await;
    create_topic(&env, "orders", 8, 3).await;
    let (_, on_removed) = partition_health(&env, &[3, 4]).await;
    assert!(
        !on_removed.is_empty(),
        "placement left brokers 3 and 4 empty"
    );
    let mut load = CheckedProducer::start(&bootstrap(&env, &cluster), "orders", 8);
    load.wait_acked(200, 60).await;
    let mark = Instant::now();

    patch_spec(&env, json!({ "replicas": 3 })).await;
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut shrunk = false;
    loop {
        let _ = env.reconcile_cluster("demo").await;
        let sts = sts_api.get(&sts_name("demo")).await.expect("StatefulSet");
        if sts.spec.replicas == Some(3) && !shrunk {
            // The kubelet has not stopped brokers 3 and 4 yet: they are still in the metadata,
            // and must hold nothing.
            let (_, on_removed) = partition_health(&env, &[3, 4]).await;
            assert!(
                on_removed.is_empty(),
                "the StatefulSet shrank while brokers 3 and 4 still hold {on_removed:?}"
            );
            shrunk = true;
        }
        if !shrunk {
            assert_eq!(sts.spec.replicas, Some(5), "shrunk before draining");
        }
        env.kubelet("demo").await;
        let c = Api::<Cluster>::namespaced(env.client.clone(), NS)
            .get("demo")
            .await
            .expect("Cluster");
        if shrunk
            && env.brokers.len() == 3
            && has_condition(&c, SCALING_CONDITION, "False", "Balanced")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; conditions {:?}",
            c.status.map(|s| s.conditions)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The quorum's voters (brokers 0-2) never stopped, so its majority held throughout.
    let stopped: BTreeSet<String> = env
        .timeline()
        .into_iter()
        .filter(|(at, _, e)| *at >= mark && *e == PodEvent::Stopping)
        .map(|(_, pod, _)| pod)
        .collect();
    assert_eq!(
        stopped,
        BTreeSet::from([
            format!("{}-3", sts_name("demo")),
            format!("{}-4", sts_name("demo"))
        ])
    );
    let quorum = env
        .kafka("demo")
        .await
        .describe_quorum()
        .await
        .expect("quorum");
    assert!(quorum.leader_id >= 0);
    assert_eq!(
        quorum.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .iter()
        .any(|r| r == "ScaledDown"));
    let after = load.acked();
    load.wait_acked(after + 100, 60).await;
    load.finish().await;
}

#[tokio::test]
async fn scaling_3_to_2_with_a_replication_factor_3_topic_is_refused_and_changes_nothing() {
    let mut env = Env::new();
    env.ready_cluster("demo", 3).await;
    create_topic(&env, "orders", 4, 3).await;
    let before = pids(&env, 3);
    let counts = replica_counts(&env).await;

    patch_spec(&env, json!({ "replicas": 2 })).await;
    env.reconcile_cluster("demo").await.expect("reconcile");
    env.kubelet("demo").await;
    env.reconcile_cluster("demo").await.expect("reconcile");

    let c = Api::<Cluster>::namespaced(env.client.clone(), NS)
        .get("demo")
        .await
        .expect("Cluster");
    let cond = condition(&c, SCALING_CONDITION).expect("Scaling condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "ScaleDownBlocked")
    );
    assert!(
        cond.message.contains("orders (replication factor 3)"),
        "{}",
        cond.message
    );
    let sts: StatefulSet = Api::namespaced(env.client.clone(), NS)
        .get(&sts_name("demo"))
        .await
        .expect("StatefulSet");
    assert_eq!(sts.spec.replicas, Some(3));
    assert_eq!(pids(&env, 3), before, "no broker restarted");
    assert_eq!(replica_counts(&env).await, counts, "no replica moved");
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .iter()
        .any(|r| r == "ScaleDownBlocked"));
}

#[tokio::test]
async fn a_static_config_change_rolls_one_broker_at_a_time_with_the_quorum_leader_last() {
    let mut env = Env::new();
    let cluster = env.ready_cluster("demo", 3).await;
    create_topic(&env, "orders", 6, 3).await;
    let leader = env
        .kafka("demo")
        .await
        .describe_quorum()
        .await
        .expect("quorum")
        .leader_id;
    let mut load = CheckedProducer::start(&bootstrap(&env, &cluster), "orders", 6);
    load.wait_acked(200, 60).await;
    let mark = Instant::now();

    patch_spec(
        &env,
        json!({ "config": { "log_retention_ms": "86400000" } }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(300);
    let names: Vec<String> = (0..3)
        .map(|o| format!("{}-{o}", sts_name("demo")))
        .collect();
    let uids = |pods: Api<Pod>, names: Vec<String>| async move {
        let mut out = BTreeMap::new();
        for name in names {
            let uid = pods
                .get_opt(&name)
                .await
                .expect("get pod")
                .and_then(|p| p.uid());
            out.insert(name, uid);
        }
        out
    };
    let mut known = uids(pods.clone(), names.clone()).await;
    let mut deletions_seen = 0;
    loop {
        let _ = env.reconcile_cluster("demo").await;
        // A pod the reconcile just deleted still has its broker running (the kubelet has not
        // stopped it): at that moment every partition must have been fully in sync.
        let now = uids(pods.clone(), names.clone()).await;
        let gone = names.iter().filter(|n| now[*n] != known[*n]).count();
        if gone > 0 {
            assert_eq!(gone, 1, "two broker pods deleted at once");
            let (under, _) = partition_health(&env, &[]).await;
            assert_eq!(
                under, 0,
                "a broker was restarted while partitions were under-replicated"
            );
            deletions_seen += 1;
        }
        env.kubelet("demo").await;
        known = uids(pods.clone(), names.clone()).await;
        let c = Api::<Cluster>::namespaced(env.client.clone(), NS)
            .get("demo")
            .await
            .expect("Cluster");
        let sts = sts_api.get(&sts_name("demo")).await.expect("StatefulSet");
        let settled = sts.status.as_ref().is_some_and(|s| {
            s.updated_replicas == Some(3)
                && s.ready_replicas == Some(3)
                && s.current_revision == s.update_revision
        });
        if settled && has_condition(&c, ROLLING_CONDITION, "False", "UpToDate") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; conditions {:?}",
            c.status.map(|s| s.conditions)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let timeline: Vec<_> = env
        .timeline()
        .into_iter()
        .filter(|(at, _, _)| *at >= mark)
        .collect();
    assert_eq!(max_down_at_once(&timeline), 1, "{timeline:?}");
    let order = restart_order(&timeline);
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(deletions_seen, 3);
    assert_eq!(
        order.last(),
        Some(&format!("{}-{leader}", sts_name("demo"))),
        "the quorum leader restarts last: {order:?}"
    );
    let after = load.acked();
    load.wait_acked(after + 100, 60).await;
    load.finish().await;
}

#[tokio::test]
async fn a_dynamic_config_change_is_applied_without_restarting_any_broker() {
    let mut env = Env::new();
    env.ready_cluster("demo", 3).await;
    let before = pids(&env, 3);
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let template = |sts: StatefulSet| sts.spec.template.metadata.and_then(|m| m.annotations);
    let annotations = template(sts_api.get(&sts_name("demo")).await.expect("sts"));

    patch_spec(
        &env,
        json!({ "config": { "follower.replication.throttled.rate": "1048576" } }),
    )
    .await;
    let c = env
        .drive("demo", 60, "the config applied", |c, _| {
            has_condition(c, ROLLING_CONDITION, "False", "UpToDate")
        })
        .await;
    assert_eq!(
        cluster_default(&env, "follower.replication.throttled.rate").await,
        Some("1048576".to_string())
    );
    assert_eq!(pids(&env, 3), before, "no broker restarted");
    assert_eq!(
        template(sts_api.get(&sts_name("demo")).await.expect("sts")),
        annotations,
        "the pod template did not change"
    );
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .iter()
        .any(|r| r == "ConfigApplied"));
    assert!(condition(&c, "Ready").is_some_and(|r| r.status == "True"));

    // Dropping it from the spec removes it (the manifest is the source of truth).
    patch_spec(&env, json!({ "config": null })).await;
    env.reconcile_cluster("demo").await.expect("reconcile");
    assert_eq!(
        cluster_default(&env, "follower.replication.throttled.rate").await,
        None
    );
    assert_eq!(pids(&env, 3), before);
}

#[tokio::test]
async fn the_restart_annotation_restarts_exactly_that_broker() {
    let mut env = Env::new();
    env.ready_cluster("demo", 3).await;
    let before = pids(&env, 3);
    Api::<Pod>::namespaced(env.client.clone(), NS)
        .patch(
            &format!("{}-1", sts_name("demo")),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"runnel.dev/restart": "true"}}})),
        )
        .await
        .expect("annotate pod");
    env.drive("demo", 90, "broker 1 restarted", |c, _| {
        has_condition(c, ROLLING_CONDITION, "False", "UpToDate")
    })
    .await;
    let after = pids(&env, 3);
    assert_ne!(after[1], before[1], "broker 1 restarted");
    assert_eq!(
        (after[0], after[2]),
        (before[0], before[2]),
        "only broker 1"
    );
}

#[tokio::test]
async fn an_operator_upgrade_keeps_pinned_brokers_on_their_image_unless_they_follow_it() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let image = |sts: &StatefulSet| {
        sts.spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
    };
    let before = image(&sts_api.get(&sts_name("demo")).await.expect("sts"));
    assert!(before.is_some());
    // The upgraded operator defaults to another image.
    let mut upgraded = Context::new(
        env.operator.clone(),
        Metrics::new(),
        env.resolver.clone(),
        Some("upgraded".into()),
    );
    upgraded.broker_image = Some("example.com/runnel-broker:9.9.9".into());
    let upgraded = Arc::new(upgraded);
    let reconcile = |ctx: Arc<Context>| async {
        let c = Api::<Cluster>::namespaced(env.client.clone(), NS)
            .get("demo")
            .await
            .expect("Cluster");
        controller::cluster::reconcile(Arc::new(c), ctx)
            .await
            .expect("reconcile");
    };
    reconcile(upgraded.clone()).await;
    assert_eq!(
        image(&sts_api.get(&sts_name("demo")).await.expect("sts")),
        before,
        "a pinned Cluster keeps its image"
    );
    patch_spec(&env, json!({ "imagePolicy": "FollowOperator" })).await;
    reconcile(upgraded).await;
    assert_eq!(
        image(&sts_api.get(&sts_name("demo")).await.expect("sts")).as_deref(),
        Some("example.com/runnel-broker:9.9.9")
    );
}
