//! The whole `run` loop (controllers, leader election, HTTP endpoint) against the in-memory
//! Kubernetes API and a real broker, and the Lease elector on its own.

use std::time::Duration;

use kube::api::{Api, PostParams};
use runnel_operator::controller::find_condition;
use runnel_operator::crd::{Cluster, ClusterReference, DeletionPolicy, Topic, TopicSpec};
use runnel_operator::leader::{LeaderElector, LeaseConfig};
use runnel_operator::run::{run, RunConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{cluster_spec, eventually, Env, NS};

const LEASE_NS: &str = "runnel-system";

fn lease(identity: &str, duration_ms: u64) -> LeaseConfig {
    LeaseConfig {
        namespace: LEASE_NS.into(),
        name: "runnel-operator-leader".into(),
        identity: identity.into(),
        lease_duration: Duration::from_millis(duration_ms),
        renew_period: Duration::from_millis(100),
    }
}

/// A plain HTTP/1.0 GET: (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn run_loop_under_leader_election_makes_a_topic_ready() {
    let mut env = Env::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("addr");
    let config = RunConfig {
        namespaces: vec![],
        leader_election: Some(lease("operator-a", 3000)),
        broker_image: Some("example.com/runnel-broker:test".into()),
        service_monitors: false,
        rack_cluster_role: None,
        resync: Duration::from_secs(2),
        resolver: env.resolver.clone(),
        instance: Some("operator-a".into()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(env.operator.clone(), config, Some(listener), async {
        let _ = stopped.await;
    }));

    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &Cluster::new("demo", cluster_spec(1)),
        )
        .await
        .expect("create Cluster");
    let spec = TopicSpec {
        cluster_ref: ClusterReference {
            name: "demo".into(),
        },
        topic_name: None,
        partitions: 3,
        replication_factor: None,
        config: [("retention.ms".to_string(), Some("60000".to_string()))].into(),
        deletion_policy: DeletionPolicy::Delete,
    };
    env.topics()
        .create(&PostParams::default(), &Topic::new("orders", spec))
        .await
        .expect("create Topic");

    // The Cluster controller creates the StatefulSet; the harness then runs its broker.
    let api = env.api.clone();
    let sts = eventually(60, "the StatefulSet", || {
        let api = api.clone();
        async move { api.get("apis/apps/v1", "statefulsets", NS, "demo-brokers") }
    })
    .await;
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"], "example.com/runnel-broker:test",
        "--broker-image is used for a Cluster without spec.image"
    );
    env.kubelet("demo").await;

    let topics = env.topics();
    eventually(90, "the Topic to become Ready", || {
        let topics = topics.clone();
        async move {
            let t = topics.get("orders").await.ok()?;
            let ready = find_condition(&t.status?.conditions, "Ready")?.status == "True";
            ready.then_some(())
        }
    })
    .await;
    let kafka = env.kafka("demo").await;
    assert_eq!(
        kafka
            .describe_topic("orders")
            .await
            .expect("topic")
            .partition_count(),
        3
    );
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    eventually(60, "the Cluster to become Ready", || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("demo").await.ok()?;
            let s = c.status?;
            (find_condition(&s.conditions, "Ready")?.status == "True" && s.ready_brokers == 1)
                .then_some(())
        }
    })
    .await;

    let broker_cluster_id = kafka
        .metadata(Some(&[]), false)
        .await
        .expect("metadata")
        .cluster_id;
    let status = clusters
        .get("demo")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    assert_eq!(
        status.cluster_id, broker_cluster_id,
        "cluster id read from the brokers"
    );
    assert_eq!(
        status.bootstrap.as_deref(),
        Some("demo-bootstrap.kafka.svc:9092")
    );

    let holder = env
        .api
        .get(
            "apis/coordination.k8s.io/v1",
            "leases",
            LEASE_NS,
            "runnel-operator-leader",
        )
        .expect("the Lease exists");
    assert_eq!(holder["spec"]["holderIdentity"], "operator-a");
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    let (code, metrics) = http_get(http, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("runnel_operator_reconciles_total{kind=\"Topic\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runnel_operator_reconcile_duration_seconds_bucket{kind=\"Cluster\""),
        "{metrics}"
    );

    eventually(30, "the managed-objects gauge", || async move {
        let (_, metrics) = http_get(http, "/metrics").await;
        (metrics.contains("runnel_operator_managed_objects{kind=\"Topic\"} 1")
            && metrics.contains("runnel_operator_managed_objects{kind=\"Cluster\"} 1"))
        .then_some(())
    })
    .await;

    stop.send(()).expect("operator running");
    operator.await.expect("join").expect("clean shutdown");
    let lease = env
        .api
        .get(
            "apis/coordination.k8s.io/v1",
            "leases",
            LEASE_NS,
            "runnel-operator-leader",
        )
        .expect("the Lease exists");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the Lease is released on shutdown: {lease}"
    );
}

async fn topic_is_ready(topics: &Api<Topic>, name: &str) -> Option<()> {
    let t = topics.get(name).await.ok()?;
    (find_condition(&t.status?.conditions, "Ready")?.status == "True").then_some(())
}

/// The reconcile count of one kind from a /metrics page (0 when absent).
fn reconciles(metrics: &str, kind: &str) -> u64 {
    let prefix = format!("runnel_operator_reconciles_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_replicas_reconcile_only_while_leading_and_fail_over() {
    let mut env = Env::new();
    let start = |identity: &'static str, listener: tokio::net::TcpListener| {
        let config = RunConfig {
            namespaces: vec![NS.into()],
            leader_election: Some(lease(identity, 2000)),
            broker_image: None,
            service_monitors: false,
            rack_cluster_role: None,
            resync: Duration::from_secs(2),
            resolver: env.resolver.clone(),
            instance: Some(identity.into()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(env.operator.clone(), config, Some(listener), async {
            let _ = stopped.await;
        }));
        (stop, task)
    };
    let la = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (http_a, http_b) = (la.local_addr().expect("a"), lb.local_addr().expect("b"));
    let (stop_a, task_a) = start("operator-a", la);
    // a holds the Lease before b starts campaigning.
    let api = env.api.clone();
    eventually(30, "operator-a to lead", || {
        let api = api.clone();
        async move {
            let l = api.get(
                "apis/coordination.k8s.io/v1",
                "leases",
                LEASE_NS,
                "runnel-operator-leader",
            )?;
            (l["spec"]["holderIdentity"] == "operator-a").then_some(())
        }
    })
    .await;
    let (stop_b, task_b) = start("operator-b", lb);

    env.ready_cluster("demo", 1).await;
    let spec = |partitions| TopicSpec {
        cluster_ref: ClusterReference {
            name: "demo".into(),
        },
        topic_name: None,
        partitions,
        replication_factor: None,
        config: Default::default(),
        deletion_policy: DeletionPolicy::Delete,
    };
    let topics = env.topics();
    topics
        .create(&PostParams::default(), &Topic::new("first", spec(1)))
        .await
        .expect("create");
    eventually(60, "first Ready (reconciled by the leader)", || {
        topic_is_ready(&topics, "first")
    })
    .await;
    assert!(reconciles(&http_get(http_a, "/metrics").await.1, "Topic") > 0);
    assert_eq!(
        reconciles(&http_get(http_b, "/metrics").await.1, "Topic"),
        0,
        "the standby replica does not reconcile"
    );
    assert_eq!(
        http_get(http_b, "/readyz").await.0,
        200,
        "a standby is ready"
    );

    // a stops (and releases the Lease): b takes over and reconciles new objects.
    stop_a.send(()).expect("a running");
    task_a.await.expect("join").expect("a shuts down cleanly");
    topics
        .create(&PostParams::default(), &Topic::new("second", spec(2)))
        .await
        .expect("create");
    eventually(60, "second Ready (reconciled by the new leader)", || {
        topic_is_ready(&topics, "second")
    })
    .await;
    assert!(reconciles(&http_get(http_b, "/metrics").await.1, "Topic") > 0);
    let kafka = env.kafka("demo").await;
    assert_eq!(
        kafka
            .describe_topic("second")
            .await
            .expect("topic")
            .partition_count(),
        2
    );
    stop_b.send(()).expect("b running");
    task_b.await.expect("join").expect("b shuts down cleanly");
}

#[tokio::test]
async fn a_topic_waiting_for_its_cluster_is_reconciled_when_the_cluster_appears() {
    let mut env = Env::new();
    // A resync far beyond the test's deadlines: only the Cluster watch can wake the Topic.
    let config = RunConfig {
        namespaces: vec![],
        leader_election: None,
        broker_image: None,
        service_monitors: false,
        rack_cluster_role: None,
        resync: Duration::from_secs(3600),
        resolver: env.resolver.clone(),
        instance: Some("operator".into()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(env.operator.clone(), config, None, async {
        let _ = stopped.await;
    }));
    let spec = TopicSpec {
        cluster_ref: ClusterReference {
            name: "late".into(),
        },
        topic_name: None,
        partitions: 1,
        replication_factor: None,
        config: Default::default(),
        deletion_policy: DeletionPolicy::Delete,
    };
    let topics = env.topics();
    topics
        .create(&PostParams::default(), &Topic::new("early", spec))
        .await
        .expect("create Topic");
    eventually(30, "ClusterNotFound", || {
        let topics = topics.clone();
        async move {
            let t = topics.get("early").await.ok()?;
            (find_condition(&t.status?.conditions, "Ready")?.reason == "ClusterNotFound")
                .then_some(())
        }
    })
    .await;

    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &Cluster::new("late", cluster_spec(1)),
        )
        .await
        .expect("create Cluster");
    let api = env.api.clone();
    eventually(30, "the StatefulSet", || {
        let api = api.clone();
        async move { api.get("apis/apps/v1", "statefulsets", NS, "late-brokers") }
    })
    .await;
    env.kubelet("late").await;
    eventually(60, "the Topic to become Ready", || {
        topic_is_ready(&topics, "early")
    })
    .await;
    stop.send(()).expect("running");
    operator.await.expect("join").expect("clean shutdown");
}

#[tokio::test]
async fn one_candidate_holds_the_lease_until_it_releases_or_stops_renewing() {
    let env = Env::new();
    let a = LeaderElector::new(env.operator.clone(), lease("a", 300));
    let b = LeaderElector::new(env.operator.clone(), lease("b", 300));
    assert!(
        a.try_acquire_or_renew().await.expect("a"),
        "a takes the free Lease"
    );
    assert!(!b.try_acquire_or_renew().await.expect("b"), "b waits");
    assert!(a.try_acquire_or_renew().await.expect("a"), "a renews");
    assert!(
        !b.try_acquire_or_renew().await.expect("b"),
        "a renewed: b still waits"
    );
    a.release().await.expect("release");
    assert!(
        b.try_acquire_or_renew().await.expect("b"),
        "b takes a released Lease"
    );
    assert!(!a.try_acquire_or_renew().await.expect("a"), "a now waits");
    // b stops renewing: once a has seen the same record for a lease duration, a takes over.
    eventually(10, "a to take over an expired Lease", || {
        let a = &a;
        async move { a.try_acquire_or_renew().await.expect("a").then_some(()) }
    })
    .await;
    assert!(
        !b.try_acquire_or_renew().await.expect("b"),
        "b lost the Lease"
    );
}
