//! Test harness: the fake apiserver, a reconcile Context on it held to the chart's RBAC, and
//! real `runnel-broker` processes started for a Cluster's StatefulSet replicas (the harness
//! plays the kubelet).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use runnel_operator::controller::{self, Context};
use runnel_operator::crd::{Cluster, ClusterSpec, StorageSpec, Topic};
use runnel_operator::kafka::BootstrapResolver;
use runnel_operator::metrics::Metrics;
use runnel_operator::Error;
use serde_json::json;

use crate::fake_api::FakeApi;
use crate::rbac::{ChartValues, Rbac};

pub(crate) const NS: &str = "kafka";

/// One `runnel-broker` process on port 0; killed on drop.
pub(crate) struct Broker {
    child: Child,
    pub(crate) kafka_addr: String,
    _data: tempfile::TempDir,
}

fn broker_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("RUNNEL_BROKER_BIN") {
        return bin.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/debug/runnel-broker");
    if !bin.exists() {
        // Build it once; the shared target directory makes later runs free.
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "runnel-server", "--bin", "runnel-broker"])
            .current_dir(&root)
            .status()
            .expect("run cargo build -p runnel-server");
        assert!(status.success(), "cargo build -p runnel-server failed");
    }
    bin
}

/// Brokers with a metadata quorum listener (replication work in progress) default it to a
/// fixed port; tests running in parallel need port 0 there too.
fn extra_listen_args(bin: &PathBuf) -> &'static [&'static str] {
    static HAS_CONTROLLER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let has = *HAS_CONTROLLER.get_or_init(|| {
        Command::new(bin)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--controller-listen"))
            .unwrap_or(false)
    });
    if has {
        &["--controller-listen", "127.0.0.1:0"]
    } else {
        &[]
    }
}

impl Broker {
    pub(crate) fn start() -> Broker {
        let data = tempfile::tempdir().expect("tempdir");
        let bin = broker_binary();
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra_listen_args(&bin))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start runnel-broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let kafka_addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("runnel-broker ready kafka=") {
                        break rest.split_whitespace().next().expect("address").to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("runnel-broker exited before its ready line");
                }
            }
        };
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Broker {
            child,
            kafka_addr,
            _data: data,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points each Cluster (by namespace/name) at the local brokers the harness started for it.
#[derive(Default)]
pub(crate) struct LocalBrokers(Mutex<HashMap<(String, String), String>>);

impl LocalBrokers {
    pub(crate) fn set(&self, ns: &str, name: &str, bootstrap: String) {
        self.0
            .lock()
            .expect("lock")
            .insert((ns.into(), name.into()), bootstrap);
    }
}

impl BootstrapResolver for LocalBrokers {
    fn bootstrap(&self, cluster: &Cluster) -> Result<String, Error> {
        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
        // An unknown cluster resolves to a closed port: connecting fails like an unreachable
        // Service would.
        Ok(self
            .0
            .lock()
            .expect("lock")
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:1".into()))
    }
}

/// A fake apiserver, a Context on it, and the brokers started so far.
pub(crate) struct Env {
    pub(crate) api: FakeApi,
    /// A cluster admin's client: tests create and observe objects with it, as a user would.
    pub(crate) client: kube::Client,
    /// The operator's client, held to the RBAC the chart grants it (`ctx` uses it too).
    pub(crate) operator: kube::Client,
    pub(crate) ctx: Arc<Context>,
    pub(crate) resolver: Arc<LocalBrokers>,
    pub(crate) brokers: Vec<Broker>,
}

pub(crate) fn cluster_spec(replicas: i32) -> ClusterSpec {
    ClusterSpec {
        replicas,
        image: None,
        storage: StorageSpec {
            size: "1Gi".into(),
            storage_class: None,
            delete_claim: false,
        },
        resources: None,
        config: Default::default(),
        rack_label: None,
        pod_template: None,
        metrics: None,
    }
}

/// Polls `check` until it returns Some, failing after `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Env {
    /// The operator installed with the chart's default values.
    pub(crate) fn new() -> Env {
        Env::installed_with(ChartValues::Default)
    }

    /// The operator installed with `values`: its client holds the RBAC the chart renders with
    /// them, and its settings are the flags the chart's Deployment passes with them.
    pub(crate) fn installed_with(values: ChartValues) -> Env {
        let api = FakeApi::new();
        let client = api.client();
        let operator = api.client_as(Rbac::chart(values));
        let resolver = Arc::new(LocalBrokers::default());
        let mut ctx = Context::new(
            operator.clone(),
            Metrics::new(),
            resolver.clone(),
            Some("test".into()),
        );
        ctx.service_monitors = matches!(values, ChartValues::ServiceMonitor);
        Env {
            api,
            client,
            operator,
            ctx: Arc::new(ctx),
            resolver,
            brokers: Vec::new(),
        }
    }

    /// Plays the kubelet for the Cluster's StatefulSet: starts one broker per replica and
    /// reports them ready in the StatefulSet status.
    pub(crate) async fn kubelet(&mut self, cluster: &str) {
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), NS);
        let sts = sts_api
            .get(&format!("{cluster}-brokers"))
            .await
            .expect("the Cluster reconciler created the StatefulSet");
        let replicas = sts.spec.replicas.unwrap_or(1);
        let mut addrs = Vec::new();
        for _ in 0..replicas {
            let b = Broker::start();
            addrs.push(b.kafka_addr.clone());
            self.brokers.push(b);
        }
        self.resolver.set(NS, cluster, addrs.join(","));
        let status = json!({"status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": "r1", "updateRevision": "r1",
        }});
        sts_api
            .patch_status(
                &format!("{cluster}-brokers"),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await
            .expect("StatefulSet status");
    }

    /// Creates a Cluster, reconciles it, starts its brokers and reconciles it again (Ready).
    pub(crate) async fn ready_cluster(&mut self, name: &str, replicas: i32) -> Cluster {
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = api
            .create(
                &PostParams::default(),
                &Cluster::new(name, cluster_spec(replicas)),
            )
            .await
            .expect("create Cluster");
        controller::cluster::reconcile(Arc::new(c), self.ctx.clone())
            .await
            .expect("reconcile Cluster");
        self.kubelet(name).await;
        let c = api.get(name).await.expect("Cluster");
        controller::cluster::reconcile(Arc::new(c), self.ctx.clone())
            .await
            .expect("reconcile Cluster");
        api.get(name).await.expect("Cluster")
    }

    /// A runnel-client admin client on the brokers of `cluster`.
    pub(crate) async fn kafka(&self, cluster: &str) -> runnel_client::Client {
        let c: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = c.get(cluster).await.expect("Cluster");
        runnel_operator::kafka::connect(&self.resolver.bootstrap(&c).expect("bootstrap"))
            .await
            .expect("connect")
    }

    pub(crate) fn topics(&self) -> Api<Topic> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Reconciles the Topic `name` as the controller would: again right away when the first
    /// pass only added the finalizer (the controller is woken by that write).
    pub(crate) async fn reconcile_topic(&self, name: &str) -> Result<(), Error> {
        for _ in 0..2 {
            let Some(t) = self.topics().get_opt(name).await.expect("get Topic") else {
                return Ok(());
            };
            let had_finalizer = t
                .finalizers()
                .iter()
                .any(|f| f == controller::topic::TOPIC_FINALIZER);
            controller::topic::reconcile(Arc::new(t), self.ctx.clone()).await?;
            if had_finalizer {
                break;
            }
        }
        Ok(())
    }
}
