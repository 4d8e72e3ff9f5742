//! Reconcilers against the in-memory Kubernetes API and real brokers.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use runnel_client::{
    AlterConfigOp, Committer, OffsetCommit, Producer, ProducerConfig, ProducerRecord,
};
use runnel_operator::controller::{self, find_condition};
use runnel_operator::crd::{
    ClusterReference, Consumer, ConsumerSpec, DeletionPolicy, LagAlert, Topic, TopicSpec,
};
use serde_json::json;

use crate::harness::{eventually, Env, NS};

fn topic_spec(
    partitions: i32,
    rf: Option<i32>,
    config: &[(&str, Option<&str>)],
    policy: DeletionPolicy,
) -> TopicSpec {
    TopicSpec {
        cluster_ref: ClusterReference {
            name: "demo".into(),
        },
        topic_name: None,
        partitions,
        replication_factor: rf,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        deletion_policy: policy,
    }
}

async fn create_topic(env: &Env, name: &str, spec: TopicSpec) {
    env.topics()
        .create(&PostParams::default(), &Topic::new(name, spec))
        .await
        .expect("create Topic");
}

/// (status, reason, message) of the Topic's Ready condition.
async fn topic_ready(env: &Env, name: &str) -> (String, String, String) {
    let t = env.topics().get(name).await.expect("Topic");
    let status = t.status.expect("status written");
    let c = find_condition(&status.conditions, "Ready").expect("Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn topic_overrides(kafka: &runnel_client::Client, topic: &str) -> BTreeMap<String, String> {
    kafka
        .describe_topic_configs(topic)
        .await
        .expect("describe configs")
        .into_iter()
        .filter(|c| c.is_topic_override())
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect()
}

async fn patch_topic(env: &Env, name: &str, spec: serde_json::Value) {
    env.topics()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch Topic");
}

#[tokio::test]
async fn topic_is_created_then_grows_partitions_and_changes_config() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    create_topic(
        &env,
        "orders",
        topic_spec(
            2,
            Some(1),
            &[("retention.ms", Some("3600000")), ("segment.bytes", None)],
            DeletionPolicy::Delete,
        ),
    )
    .await;
    env.reconcile_topic("orders").await.expect("reconcile");

    let kafka = env.kafka("demo").await;
    let meta = kafka.describe_topic("orders").await.expect("topic exists");
    assert_eq!(meta.partition_count(), 2);
    let overrides = topic_overrides(&kafka, "orders").await;
    assert_eq!(
        overrides.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert!(
        !overrides.contains_key("segment.bytes"),
        "null config values are not managed"
    );
    assert_eq!(topic_ready(&env, "orders").await.0, "True");
    let t = env.topics().get("orders").await.expect("Topic");
    let status = t.status.expect("status");
    assert_eq!(status.partitions, Some(2));
    assert_eq!(status.replication_factor, Some(1));
    assert!(status.topic_id.is_some());
    assert_eq!(status.observed_generation, t.metadata.generation);
    assert!(t
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&controller::topic::TOPIC_FINALIZER.to_string()));

    patch_topic(
        &env,
        "orders",
        json!({"partitions": 5, "config": {"retention.ms": "7200000"}}),
    )
    .await;
    env.reconcile_topic("orders").await.expect("reconcile");
    let meta = kafka.describe_topic("orders").await.expect("topic");
    assert_eq!(meta.partition_count(), 5);
    assert_eq!(
        topic_overrides(&kafka, "orders")
            .await
            .get("retention.ms")
            .map(String::as_str),
        Some("7200000")
    );
    let t = env.topics().get("orders").await.expect("Topic");
    assert_eq!(t.status.as_ref().and_then(|s| s.partitions), Some(5));
    assert_eq!(
        t.status.and_then(|s| s.observed_generation),
        t.metadata.generation
    );
}

#[tokio::test]
async fn drift_made_with_other_tools_is_reverted_and_reported() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    create_topic(
        &env,
        "payments",
        topic_spec(
            1,
            None,
            &[("retention.ms", Some("3600000"))],
            DeletionPolicy::Delete,
        ),
    )
    .await;
    env.reconcile_topic("payments").await.expect("reconcile");
    let kafka = env.kafka("demo").await;

    kafka
        .alter_topic_configs(
            "payments",
            &[AlterConfigOp::Set("retention.ms".into(), "1000".into())],
            false,
        )
        .await
        .expect("out-of-band config change");
    env.reconcile_topic("payments").await.expect("reconcile");
    assert_eq!(
        topic_overrides(&kafka, "payments")
            .await
            .get("retention.ms")
            .map(String::as_str),
        Some("3600000"),
        "config drift reverted"
    );
    assert!(env
        .api
        .event_reasons(NS, "payments")
        .contains(&"ConfigDriftReverted".to_string()));

    kafka
        .delete_topics(&["payments".to_string()])
        .await
        .expect("out-of-band delete");
    env.reconcile_topic("payments").await.expect("reconcile");
    let meta = kafka
        .describe_topic("payments")
        .await
        .expect("topic came back");
    assert_eq!(meta.partition_count(), 1);
    assert_eq!(
        topic_overrides(&kafka, "payments")
            .await
            .get("retention.ms")
            .map(String::as_str),
        Some("3600000")
    );
    let reasons = env.api.event_reasons(NS, "payments");
    assert!(
        reasons.contains(&"TopicRecreated".to_string()),
        "an Event reports the recreation: {reasons:?}"
    );
    assert_eq!(topic_ready(&env, "payments").await.0, "True");
}

#[tokio::test]
async fn deleting_a_topic_follows_its_deletion_policy() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    create_topic(
        &env,
        "gone",
        topic_spec(1, None, &[], DeletionPolicy::Delete),
    )
    .await;
    create_topic(
        &env,
        "kept",
        topic_spec(1, None, &[], DeletionPolicy::Retain),
    )
    .await;
    env.reconcile_topic("gone").await.expect("reconcile");
    env.reconcile_topic("kept").await.expect("reconcile");
    let kafka = env.kafka("demo").await;
    kafka.describe_topic("gone").await.expect("created");
    kafka.describe_topic("kept").await.expect("created");

    for name in ["gone", "kept"] {
        env.topics()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete Topic");
        // The finalizer holds the object until the reconciler has applied the policy.
        assert!(env.topics().get_opt(name).await.expect("get").is_some());
        env.reconcile_topic(name).await.expect("cleanup");
        assert!(
            env.topics().get_opt(name).await.expect("get").is_none(),
            "finalizer removed, object gone"
        );
    }
    let names: Vec<String> = kafka
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.contains(&"gone".to_string()),
        "Delete removed the topic: {names:?}"
    );
    assert!(
        names.contains(&"kept".to_string()),
        "Retain kept the topic: {names:?}"
    );
}

#[tokio::test]
async fn impossible_changes_set_a_condition_and_leave_the_topic_as_it_is() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    let kafka = env.kafka("demo").await;

    // Fewer partitions than the topic has (the CRD refuses this on update; an object created
    // for an existing topic can still ask for it).
    kafka
        .create_topics(
            &[runnel_client::NewTopic {
                name: "wide".into(),
                partitions: Some(3),
                replication_factor: None,
                configs: vec![],
            }],
            false,
        )
        .await
        .expect("create out of band");
    create_topic(
        &env,
        "wide",
        topic_spec(1, None, &[], DeletionPolicy::Retain),
    )
    .await;
    env.reconcile_topic("wide").await.expect("no crash");
    let (status, reason, _) = topic_ready(&env, "wide").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PartitionsCannotShrink")
    );
    assert_eq!(
        kafka
            .describe_topic("wide")
            .await
            .expect("topic")
            .partition_count(),
        3
    );
    assert!(env
        .api
        .event_reasons(NS, "wide")
        .contains(&"PartitionsCannotShrink".to_string()));

    // Replication factor above the broker count: not created.
    create_topic(
        &env,
        "toomany",
        topic_spec(1, Some(2), &[], DeletionPolicy::Delete),
    )
    .await;
    env.reconcile_topic("toomany").await.expect("no crash");
    let (status, reason, message) = topic_ready(&env, "toomany").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ReplicationFactorTooLarge"),
        "{message}"
    );
    assert!(
        kafka.describe_topic("toomany").await.is_err(),
        "not created"
    );

    // A malformed config value: refused by the broker, other configs untouched.
    create_topic(
        &env,
        "typo",
        topic_spec(
            1,
            None,
            &[("retention.ms", Some("3600000"))],
            DeletionPolicy::Delete,
        ),
    )
    .await;
    env.reconcile_topic("typo").await.expect("reconcile");
    patch_topic(
        &env,
        "typo",
        json!({"config": {"retention.ms": "soon", "cleanup.policy": "compact"}}),
    )
    .await;
    env.reconcile_topic("typo").await.expect("no crash");
    let (status, reason, message) = topic_ready(&env, "typo").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidConfig"),
        "{message}"
    );
    let overrides = topic_overrides(&kafka, "typo").await;
    assert_eq!(
        overrides.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert!(
        !overrides.contains_key("cleanup.policy"),
        "nothing applied: {overrides:?}"
    );

    // An unknown config key.
    patch_topic(
        &env,
        "typo",
        json!({"config": {"retention.ms": "3600000", "cleanup.policy": null, "no.such.key": "1"}}),
    )
    .await;
    env.reconcile_topic("typo").await.expect("no crash");
    let (status, reason, message) = topic_ready(&env, "typo").await;
    assert_eq!(status, "False", "{reason}: {message}");
    assert!(
        message.contains("no.such.key") || reason == "InvalidConfig",
        "{reason}: {message}"
    );

    // A Cluster that does not exist.
    let mut spec = topic_spec(1, None, &[], DeletionPolicy::Delete);
    spec.cluster_ref.name = "nowhere".into();
    create_topic(&env, "orphan", spec).await;
    env.reconcile_topic("orphan").await.expect("no crash");
    let (status, reason, _) = topic_ready(&env, "orphan").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ClusterNotFound")
    );
}

#[tokio::test]
async fn replication_factor_above_the_live_brokers_is_refused_and_the_topic_kept() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    let kafka = env.kafka("demo").await;
    // A topic with RF 1 on a one-broker cluster asked to keep RF 1: nothing to do.
    create_topic(
        &env,
        "rf",
        topic_spec(1, Some(1), &[], DeletionPolicy::Delete),
    )
    .await;
    env.reconcile_topic("rf").await.expect("reconcile");
    assert_eq!(topic_ready(&env, "rf").await.0, "True");
    // Ask for RF 2 on one broker: refused before any call, the topic keeps RF 1.
    patch_topic(&env, "rf", json!({"replicationFactor": 2})).await;
    env.reconcile_topic("rf").await.expect("no crash");
    let (status, reason, _) = topic_ready(&env, "rf").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ReplicationFactorTooLarge")
    );
    assert_eq!(
        kafka
            .describe_topic("rf")
            .await
            .expect("topic")
            .replication_factor(),
        1
    );
}

async fn consumer_status(env: &Env, name: &str) -> runnel_operator::crd::ConsumerStatus {
    let api: Api<Consumer> = Api::namespaced(env.client.clone(), NS);
    api.get(name)
        .await
        .expect("Consumer")
        .status
        .expect("status")
}

async fn reconcile_consumer(env: &Env, name: &str) {
    let api: Api<Consumer> = Api::namespaced(env.client.clone(), NS);
    let c = api.get(name).await.expect("Consumer");
    controller::consumer::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile Consumer");
}

#[tokio::test]
async fn consumer_shows_lag_and_resets_offsets_only_while_the_group_is_empty() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    create_topic(
        &env,
        "events",
        topic_spec(1, None, &[], DeletionPolicy::Delete),
    )
    .await;
    env.reconcile_topic("events").await.expect("reconcile");
    let kafka = Arc::new(env.kafka("demo").await);
    let mut producer = Producer::new(&kafka, "events", ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..10 {
        producer
            .send(ProducerRecord {
                value: Some(format!("v{i}").into_bytes().into()),
                ..ProducerRecord::default()
            })
            .await
            .expect("send");
    }
    producer.flush().await.expect("flush");
    drop(producer);
    kafka
        .offset_commit(
            "billing",
            &Committer::admin(),
            &[OffsetCommit {
                topic: "events".into(),
                partition: 0,
                offset: 3,
                metadata: None,
            }],
        )
        .await
        .expect("commit");

    let consumers: Api<Consumer> = Api::namespaced(env.client.clone(), NS);
    let spec = ConsumerSpec {
        cluster_ref: ClusterReference {
            name: "demo".into(),
        },
        group_id: "billing".into(),
        topics: vec![],
        lag_alert: Some(LagAlert { max_lag: 5 }),
        offset_reset: None,
    };
    consumers
        .create(&PostParams::default(), &Consumer::new("billing", spec))
        .await
        .expect("create Consumer");
    reconcile_consumer(&env, "billing").await;
    let s = consumer_status(&env, "billing").await;
    assert_eq!((s.total_lag, s.max_lag, s.members), (7, 7, 0));
    assert_eq!(s.lag.len(), 1);
    assert_eq!(
        (s.lag[0].committed_offset, s.lag[0].log_end_offset),
        (3, 10)
    );
    let lag_high = find_condition(&s.conditions, "LagHigh").expect("LagHigh");
    assert_eq!(lag_high.status, "True");

    // A live member: the reset waits (ResetPending), offsets stay.
    let mut member = runnel_client::GroupConsumer::new(
        kafka.clone(),
        runnel_client::GroupConsumerConfig {
            auto_commit_interval: None,
            ..runnel_client::GroupConsumerConfig::new("billing", vec!["events".into()])
        },
    )
    .expect("member");
    member.ensure_joined().await.expect("join");
    let reset =
        |nonce: &str| json!({"spec": {"offsetReset": {"strategy": "latest", "nonce": nonce}}});
    consumers
        .patch(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(reset("one")),
        )
        .await
        .expect("patch");
    reconcile_consumer(&env, "billing").await;
    let s = consumer_status(&env, "billing").await;
    assert_eq!(s.members, 1);
    assert_eq!(
        find_condition(&s.conditions, "ResetPending")
            .expect("cond")
            .status,
        "True"
    );
    assert_eq!(s.last_applied_nonce, None);
    assert_eq!(
        s.total_lag, 7,
        "offsets untouched while the group has members"
    );

    // The member leaves: the reset runs once, lag drops to zero, the nonce is recorded.
    member.close().await.expect("leave");
    eventually(20, "group to become empty", || {
        let kafka = kafka.clone();
        async move {
            let g = kafka.describe_group("billing").await.ok()?;
            g.members.is_empty().then_some(())
        }
    })
    .await;
    reconcile_consumer(&env, "billing").await;
    let s = consumer_status(&env, "billing").await;
    assert_eq!(s.last_applied_nonce.as_deref(), Some("one"));
    assert_eq!(s.total_lag, 0);
    assert_eq!(
        find_condition(&s.conditions, "ResetPending")
            .expect("cond")
            .status,
        "False"
    );
    assert_eq!(
        find_condition(&s.conditions, "LagHigh")
            .expect("cond")
            .status,
        "False"
    );
    let committed = kafka.offset_fetch("billing", None).await.expect("offsets");
    assert_eq!(committed[0].offset, 10);
    assert!(env
        .api
        .event_reasons(NS, "billing")
        .contains(&"OffsetsReset".to_string()));

    // The same nonce again changes nothing; a new one (earliest) moves the offsets again.
    reconcile_consumer(&env, "billing").await;
    assert_eq!(
        kafka.offset_fetch("billing", None).await.expect("offsets")[0].offset,
        10
    );
    consumers
        .patch(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"offsetReset": {"strategy": "earliest", "nonce": "two"}}}),
            ),
        )
        .await
        .expect("patch");
    reconcile_consumer(&env, "billing").await;
    assert_eq!(
        kafka.offset_fetch("billing", None).await.expect("offsets")[0].offset,
        0
    );
    let s = consumer_status(&env, "billing").await;
    assert_eq!(
        (s.total_lag, s.last_applied_nonce.as_deref()),
        (10, Some("two"))
    );

    // Explicit offsets.
    consumers
        .patch(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"offsetReset": {
                "strategy": "offsets", "nonce": "three",
                "offsets": [{"topic": "events", "partition": 0, "offset": 6}],
            }}})),
        )
        .await
        .expect("patch");
    reconcile_consumer(&env, "billing").await;
    assert_eq!(
        kafka.offset_fetch("billing", None).await.expect("offsets")[0].offset,
        6
    );
    let s = consumer_status(&env, "billing").await;
    assert_eq!(
        (s.total_lag, s.last_applied_nonce.as_deref()),
        (4, Some("three"))
    );

    // A timestamp before every record moves to the first record; one after all to the end.
    for (nonce, timestamp, expected) in [
        ("four", "2000-01-01T00:00:00Z", 0),
        ("five", "2999-01-01T00:00:00Z", 10),
    ] {
        consumers
            .patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"offsetReset": {
                    "strategy": "timestamp", "nonce": nonce, "timestamp": timestamp, "offsets": [],
                }}})),
            )
            .await
            .expect("patch");
        reconcile_consumer(&env, "billing").await;
        assert_eq!(
            kafka.offset_fetch("billing", None).await.expect("offsets")[0].offset,
            expected,
            "reset to {timestamp}"
        );
    }
}

#[tokio::test]
async fn consumer_of_an_unknown_cluster_reports_it_without_failing() {
    let env = Env::new();
    let consumers: Api<Consumer> = Api::namespaced(env.client.clone(), NS);
    let spec = ConsumerSpec {
        cluster_ref: ClusterReference {
            name: "nowhere".into(),
        },
        group_id: "billing".into(),
        topics: vec![],
        lag_alert: None,
        offset_reset: None,
    };
    consumers
        .create(&PostParams::default(), &Consumer::new("orphan", spec))
        .await
        .expect("create Consumer");
    reconcile_consumer(&env, "orphan").await;
    let s = consumer_status(&env, "orphan").await;
    let ready = find_condition(&s.conditions, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ClusterNotFound")
    );
    assert!(env
        .api
        .event_reasons(NS, "orphan")
        .contains(&"ClusterNotFound".to_string()));
}

#[tokio::test]
async fn cluster_objects_are_applied_and_status_follows_the_brokers() {
    let mut env = Env::new();
    let clusters: Api<runnel_operator::crd::Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = clusters
        .create(
            &PostParams::default(),
            &runnel_operator::crd::Cluster::new("demo", crate::harness::cluster_spec(1)),
        )
        .await
        .expect("create Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    for (base, plural, name) in [
        ("api/v1", "serviceaccounts", "demo-broker"),
        ("api/v1", "configmaps", "demo-config"),
        ("api/v1", "services", "demo-brokers"),
        ("api/v1", "services", "demo-bootstrap"),
        ("apis/policy/v1", "poddisruptionbudgets", "demo-brokers"),
        ("apis/apps/v1", "statefulsets", "demo-brokers"),
    ] {
        let obj = env
            .api
            .get(base, plural, NS, name)
            .unwrap_or_else(|| panic!("{plural}/{name} applied"));
        assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "Cluster");
    }
    let status = clusters
        .get("demo")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    assert_eq!(status.ready_brokers, 0);
    assert_eq!(
        find_condition(&status.conditions, "Ready")
            .expect("Ready")
            .status,
        "False"
    );

    env.kubelet("demo").await;
    let c = clusters.get("demo").await.expect("Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    let status = clusters
        .get("demo")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    assert_eq!(status.ready_brokers, 1);
    assert_eq!(
        find_condition(&status.conditions, "Ready")
            .expect("Ready")
            .reason,
        "BrokersReady"
    );
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .contains(&"BrokersReady".to_string()));

    // A spec change reaches the StatefulSet (scale-up adds brokers).
    clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    let c = clusters.get("demo").await.expect("Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    let sts = env
        .api
        .get("apis/apps/v1", "statefulsets", NS, "demo-brokers")
        .expect("StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    let status = clusters
        .get("demo")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    assert_eq!(
        find_condition(&status.conditions, "Reconciling")
            .expect("Reconciling")
            .status,
        "True"
    );
}

#[tokio::test]
async fn unreachable_brokers_are_reported_and_retried_with_backoff() {
    let env = Env::new();
    // A Cluster whose brokers never start: the resolver points at a closed port.
    Api::<runnel_operator::crd::Cluster>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &runnel_operator::crd::Cluster::new("demo", crate::harness::cluster_spec(1)),
        )
        .await
        .expect("create Cluster");
    create_topic(
        &env,
        "orders",
        topic_spec(1, None, &[], DeletionPolicy::Delete),
    )
    .await;
    let err = env
        .reconcile_topic("orders")
        .await
        .expect_err("no brokers to talk to");
    let (status, reason, message) = topic_ready(&env, "orders").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BrokersUnreachable"),
        "{message}"
    );

    let topic = Arc::new(env.topics().get("orders").await.expect("Topic"));
    let first = controller::error_policy(topic.clone(), &err, env.ctx.clone());
    let second = controller::error_policy(topic, &err, env.ctx.clone());
    assert_ne!(
        first, second,
        "the retry delay grows with consecutive failures"
    );
    assert_eq!(env.ctx.metrics.failures_of("Topic", "kafka"), 2);
}
