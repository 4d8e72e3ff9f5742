//! Test harness: the fake apiserver, a reconcile Context on it held to the chart's RBAC, and
//! real `runnel-broker` processes started for a Cluster's StatefulSet replicas (the harness
//! plays the kubelet).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
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

impl Broker {
    /// The broker's process id: the same id before and after an operation means the broker
    /// was not restarted.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
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

    fn agent(&self, _cluster: &Cluster, _ordinal: i32) -> Result<String, Error> {
        // No agents run beside the harness's brokers yet: a closed port.
        Ok("http://127.0.0.1:1".into())
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
    /// The broker running for each pod, by pod name (namespace NS).
    pub(crate) brokers: BTreeMap<String, Broker>,
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
        agent: None,
        rack_label: None,
        pod_template: None,
        metrics: None,
        rebalance: None,
        image_policy: Default::default(),
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
            brokers: BTreeMap::new(),
        }
    }

    /// Plays the StatefulSet controller and the kubelet for the Cluster's StatefulSet, from
    /// current state: for each replica, a Pod object that runs a broker (a Pod left behind by
    /// an orphaning delete is adopted with its broker kept; a broker whose Pod object is gone
    /// is stopped and started again, as a replaced pod would be), a bound claim
    /// `data-<pod>` from the volumeClaimTemplate (a grown request is expanded at once, as an
    /// online expansion ends); then the StatefulSet status reports every replica ready.
    pub(crate) async fn kubelet(&mut self, cluster: &str) {
        let sts_name = format!("{cluster}-brokers");
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), NS);
        let sts = sts_api
            .get(&sts_name)
            .await
            .expect("the Cluster reconciler created the StatefulSet");
        let replicas = sts.spec.replicas.unwrap_or(1);
        let owner = json!([{
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts_name,
            "uid": sts.metadata.uid, "controller": true, "blockOwnerDeletion": true,
        }]);
        let spec = serde_json::to_value(&sts.spec).expect("json");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), NS);
        let mut addrs = Vec::new();
        for ordinal in 0..replicas {
            let pod_name = format!("{sts_name}-{ordinal}");
            let pod = pods.get_opt(&pod_name).await.expect("get Pod");
            match (&pod, self.brokers.contains_key(&pod_name)) {
                (Some(pod), true) => {
                    if pod
                        .metadata
                        .owner_references
                        .as_ref()
                        .is_none_or(Vec::is_empty)
                    {
                        pods.patch(
                            &pod_name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"ownerReferences": owner}})),
                        )
                        .await
                        .expect("adopt Pod");
                    }
                }
                (_, running) => {
                    if running {
                        // The Pod object was deleted: its containers stop.
                        self.brokers.remove(&pod_name);
                    }
                    let broker = Broker::start();
                    let mut labels = spec["template"]["metadata"]["labels"].clone();
                    labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
                    let object = json!({
                        "metadata": {
                            "name": pod_name, "labels": labels, "ownerReferences": owner,
                            "annotations": {"runnel.test/pid": broker.pid().to_string()},
                        },
                        "spec": spec["template"]["spec"],
                        "status": {"phase": "Running"},
                    });
                    if pod.is_some() {
                        pods.delete(&pod_name, &DeleteParams::default())
                            .await
                            .expect("replace Pod");
                    }
                    pods.create(
                        &PostParams::default(),
                        &serde_json::from_value(object).expect("Pod"),
                    )
                    .await
                    .expect("create Pod");
                    self.brokers.insert(pod_name.clone(), broker);
                }
            }
            addrs.push(self.brokers[&pod_name].kafka_addr.clone());
            for template in spec["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let claim_name = format!(
                    "{}-{pod_name}",
                    template["metadata"]["name"]
                        .as_str()
                        .expect("template name")
                );
                match claims.get_opt(&claim_name).await.expect("get claim") {
                    None => {
                        let mut claim = template.clone();
                        claim["metadata"]["name"] = json!(claim_name);
                        claim["status"] = json!({
                            "phase": "Bound",
                            "capacity": template["spec"]["resources"]["requests"],
                        });
                        claims
                            .create(
                                &PostParams::default(),
                                &serde_json::from_value(claim).expect("claim"),
                            )
                            .await
                            .expect("create claim");
                    }
                    Some(claim) => {
                        let requests = claim
                            .spec
                            .and_then(|s| s.resources)
                            .and_then(|r| r.requests)
                            .unwrap_or_default();
                        let capacity = claim.status.and_then(|s| s.capacity).unwrap_or_default();
                        if requests.get("storage") != capacity.get("storage") {
                            claims
                                .patch_status(
                                    &claim_name,
                                    &PatchParams::default(),
                                    &Patch::Merge(json!({"status": {"capacity": requests}})),
                                )
                                .await
                                .expect("expand claim");
                        }
                    }
                }
            }
        }
        self.resolver.set(NS, cluster, addrs.join(","));
        let status = json!({"status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": "r1", "updateRevision": "r1",
        }});
        sts_api
            .patch_status(&sts_name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("StatefulSet status");
    }

    /// Creates a Cluster, reconciles it, starts its brokers and reconciles it again (Ready).
    pub(crate) async fn ready_cluster(&mut self, name: &str, replicas: i32) -> Cluster {
        self.ready_cluster_with(name, cluster_spec(replicas)).await
    }

    /// [`Env::ready_cluster`] with a whole spec.
    pub(crate) async fn ready_cluster_with(&mut self, name: &str, spec: ClusterSpec) -> Cluster {
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = api
            .create(&PostParams::default(), &Cluster::new(name, spec))
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
